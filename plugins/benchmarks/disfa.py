"""DISFA, as AU detection papers report it.

Facts (as summarized in au-harness issue 27): 8 AUs 1, 2, 4, 6, 9, 12, 25,
26; labels in ``ActionUnit_Labels/<SN>/<SN>_au<k>.txt``, lines
``frame,intensity`` with intensities 0-5; an AU is present at intensity
>= 2; subject-exclusive 3-fold cross-validation; metric: mean F1. Truth here
is an image-level CSV ``image,AU1,...,AU26`` of the intensities 0-5 (one row
per frame image); submissions are 0/1 presence.
"""
from harness.benchmark import Benchmark
from harness.schema import AUSchema, Coding

SCHEMA = AUSchema(
    name="disfa",
    aus=tuple(f"AU{n}" for n in (1, 2, 4, 6, 9, 12, 25, 26)),
    coding=Coding.intensities(top=5, present_from=2),
)

BENCHMARK = Benchmark(
    name="disfa", schema=SCHEMA, metric="mean_f1", unit="image",
    truth_layouts=("labels",), submission_layouts=("csv",), protocol="subject_3fold",
    description="DISFA: 8 AUs, intensities 0-5 present at >= 2, mean F1, subject-exclusive 3-fold CV",
)
