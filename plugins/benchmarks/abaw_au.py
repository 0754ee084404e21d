"""The ABAW AU detection track on Aff-Wild2 (CVPR 2022-2026 editions).

Facts from the track's description (as summarized in au-harness issue 27):
12 AUs 1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26; labels per video frame,
-1 = not annotated (dropped from scoring); metric: the mean over the 12 AUs
of per-AU F1. Annotation and validation-prediction files are one
``VIDEO.txt`` per video: the header ``AU1,AU2,...,AU26`` then one line of 12
comma-separated values per frame, in frame order; the frames of the
cropped-aligned release are ``VIDEO/00001.jpg`` (counted from 1, 5 digits).
The 6th edition's test submission is one ``predictions.txt``: header
``image_location,AU1,...,AU26``, rows ``VIDEO/00001.jpg,0,1,...``.
"""
from harness.benchmark import Benchmark
from harness.schema import AUSchema, Coding

SCHEMA = AUSchema(
    name="abaw_au",
    aus=tuple(f"AU{n}" for n in (1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26)),
    coding=Coding(present=(1,), absent=(0,), unknown=(-1,)),
)

BENCHMARK = Benchmark(
    name="abaw_au", schema=SCHEMA, metric="mean_f1", unit="frame",
    truth_layouts=("frame_files",), submission_layouts=("frame_files", "frame_table"),
    protocol="official", image_column="image_location", frame_name="{video}/{frame:05d}.jpg",
    description="ABAW AU track (Aff-Wild2): 12 AUs per video frame, -1 not annotated, mean F1",
)
