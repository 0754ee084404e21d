"""A benchmark: what a set of AU labels is scored against, declared by a plugin.

A :class:`Benchmark` states everything the scorer, the leaderboard and the
exports follow: the AUs and their flip pairs and label coding (its
:class:`~harness.schema.AUSchema`), the metric (a registered ``metric``
component), the unit of evaluation (an image, or a frame of a video), the
truth and submission layouts it reads and writes (:mod:`harness.layouts`),
and its default evaluation protocol. Plugins register benchmarks with the
``auh_benchmarks`` hook; the core knows none of them by content.

Only numpy and the standard library are used: a benchmark travels as plain
data (:meth:`Benchmark.to_dict`) into the scorer that ``auh export`` packages.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.schema import AUSchema, Coding

DEFAULT_BENCHMARK = "enc2020"
UNITS = ("image", "frame")
# Layouts the core reads and writes (harness.layouts): truth files, then submissions.
TRUTH_LAYOUTS = ("labels", "frame_files")
SUBMISSION_LAYOUTS = ("csv", "frame_files", "frame_table")


@dataclass(frozen=True)
class Benchmark:
    """A declared benchmark.

    ``unit`` is ``"image"`` (rows are images, named as the truth names them)
    or ``"frame"`` (rows are frames of videos, named ``frame_name`` with
    ``video`` and ``frame``, counted from 1; the video is the group a
    bootstrap or a split must keep whole). ``image_column`` is the name
    column of a CSV submission (``frame_table`` layout included);
    ``protocol`` names the default evaluation protocol (``"official"``: the
    dataset's own split; ``"subject_3fold"``: subject-exclusive 3-fold CV).
    """

    name: str
    schema: AUSchema
    metric: str
    unit: str = "image"
    truth_layouts: tuple[str, ...] = ("labels",)
    submission_layouts: tuple[str, ...] = ("csv",)
    protocol: str = "official"
    image_column: str = "image"
    frame_name: str = "{video}/{frame:05d}.jpg"
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"benchmark name {self.name!r}: expected letters, digits, '_' and '-'")
        if self.unit not in UNITS:
            raise ValueError(f"benchmark {self.name!r}: unit {self.unit!r}, expected one of {UNITS}")
        for kind, layouts, known in (("truth", self.truth_layouts, TRUTH_LAYOUTS),
                                     ("submission", self.submission_layouts, SUBMISSION_LAYOUTS)):
            bad = [layout for layout in layouts if layout not in known]
            if bad or not layouts:
                raise ValueError(f"benchmark {self.name!r}: {kind} layouts {layouts}, expected "
                                 f"some of {known}")
        if self.unit == "image" and any(layout.startswith("frame") for layout in
                                        (*self.truth_layouts, *self.submission_layouts)):
            raise ValueError(f"benchmark {self.name!r}: frame layouts need unit 'frame'")

    @property
    def aus(self) -> tuple[str, ...]:
        return self.schema.aus

    @property
    def coding(self) -> Coding:
        return self.schema.coding

    def frame(self, video: str, frame: int) -> str:
        """The row name of ``frame`` (counted from 1) of ``video``."""
        return self.frame_name.format(video=video, frame=frame)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON), from which :meth:`from_dict` rebuilds the benchmark."""
        return {"name": self.name, "aus": list(self.aus),
                "flip_pairs": [list(p) for p in self.schema.flip_pairs],
                "coding": self.coding.to_dict(), "metric": self.metric, "unit": self.unit,
                "truth_layouts": list(self.truth_layouts),
                "submission_layouts": list(self.submission_layouts), "protocol": self.protocol,
                "image_column": self.image_column, "frame_name": self.frame_name,
                "description": self.description}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Benchmark":
        schema = AUSchema(data["name"], tuple(data["aus"]), tuple(tuple(p) for p in data["flip_pairs"]),
                          Coding.from_dict(data["coding"]))
        return cls(data["name"], schema, data["metric"], data["unit"], tuple(data["truth_layouts"]),
                   tuple(data["submission_layouts"]), data["protocol"], data["image_column"],
                   data["frame_name"], data["description"])


def benchmark_of(schema: AUSchema) -> Benchmark:
    """The registered benchmark a dataset's schema names (a recipe's dataset names its
    benchmark this way), else the default benchmark."""
    from harness.registry import get_registry

    known = get_registry().available("benchmark")
    return get_benchmark(schema.name if schema.name in known else DEFAULT_BENCHMARK)


def default_benchmark() -> Benchmark:
    """The benchmark of callers that name none (:data:`DEFAULT_BENCHMARK`)."""
    return get_benchmark(DEFAULT_BENCHMARK)


def get_benchmark(name: str) -> Benchmark:
    """The registered benchmark ``name`` (``auh plugins --kind benchmark`` lists them)."""
    from harness.registry import get_registry

    benchmark = get_registry().create("benchmark", name)
    if not isinstance(benchmark, Benchmark):
        from harness.errors import UserError

        raise UserError(f"benchmark {name!r}: its factory gave {type(benchmark).__name__}, "
                        f"not a harness.benchmark.Benchmark")
    return benchmark
