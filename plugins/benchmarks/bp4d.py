"""BP4D-Spontaneous, as AU detection papers report it.

Facts (as summarized in au-harness issue 27): 12 AUs 1, 2, 4, 6, 7, 10, 12,
14, 15, 17, 23, 24; frame labels in ``AUCoding/AU_OCC/<subject>_<task>.csv``
with values 0/1 and 9 = not coded; metric: per-AU F1 and its mean;
subject-exclusive 3-fold cross-validation. Scored here on image-level CSVs
``image,AU1,...,AU24`` (one row per frame image).
"""
from harness.benchmark import Benchmark
from harness.schema import AUSchema, Coding

SCHEMA = AUSchema(
    name="bp4d",
    aus=tuple(f"AU{n}" for n in (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)),
    coding=Coding(present=(1,), absent=(0,), unknown=(9,)),
)

BENCHMARK = Benchmark(
    name="bp4d", schema=SCHEMA, metric="mean_f1", unit="image",
    truth_layouts=("labels",), submission_layouts=("csv",), protocol="subject_3fold",
    description="BP4D: 12 AUs, 1/0 with 9 not coded, mean F1, subject-exclusive 3-fold CV",
)
