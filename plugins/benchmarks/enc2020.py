"""EmotioNet Challenge 2020 (ENC-2020): the default benchmark.

23 AUs; labels 1 present, 0 absent, 999 occluded or not annotated; one row
per image; final = (mean accuracy + mean F1) / 2 over the AUs; truth in the
challenge text format (``image l1 ... l23``) or a CSV, submissions a CSV
``image,AU1,...``.
"""
from harness.benchmark import Benchmark
from harness.schema import AUSchema, Coding

SCHEMA = AUSchema(
    name="enc2020",
    aus=tuple(
        f"AU{n}"
        for n in (1, 2, 4, 5, 6, 9, 10, 12, 15, 17, 18, 20, 24, 25, 26, 28, 43, 51, 52, 53, 54, 55, 56)
    ),
    # 51/52: head turn left/right; 55/56: head tilt left/right.
    flip_pairs=(("AU51", "AU52"), ("AU55", "AU56")),
    coding=Coding(present=(1,), absent=(0,), unknown=(999,)),
)

BENCHMARK = Benchmark(
    name="enc2020", schema=SCHEMA, metric="enc2020", unit="image",
    truth_layouts=("labels",), submission_layouts=("csv",), protocol="official",
    description="EmotioNet Challenge 2020: 23 AUs, 1/0/999, final = (accuracy + F1) / 2, per image",
)
