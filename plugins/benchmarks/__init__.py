"""The built-in benchmarks and metrics, registered like any plugin's.

One file per benchmark declares it (:data:`BENCHMARK`, plain data: numpy and
the standard library only); this module registers them with
``auh_benchmarks`` and the metrics of :mod:`plugins.metrics` with ``auh_metrics``,
and ships the standard fold partitions of the datasets that have one.
"""
from __future__ import annotations

import importlib
import importlib.resources
from pathlib import Path
from typing import Callable

from harness import hookimpl
from harness.benchmark import Benchmark
from harness.metrics import Metric

BENCHMARK_MODULES = ("enc2020", "abaw_au", "bp4d", "disfa")
# The standard subject partitions, per dataset (ME-GraphAU's: subject lists per fold, as JSON).
SHIPPED_MANIFESTS = {"bp4d": "bp4d_folds.json", "disfa": "disfa_folds.json"}


def shipped_manifest(dataset: str) -> Path:
    """The fold manifest shipped for ``dataset`` (package data beside the benchmarks)."""
    return Path(str(importlib.resources.files(__name__) / SHIPPED_MANIFESTS[dataset]))


def _returns(value: object, doc: str) -> Callable[[], object]:
    def factory() -> object:
        return value

    factory.__doc__ = doc
    return factory


@hookimpl
def auh_benchmarks() -> dict[str, Callable[[], Benchmark]]:
    found = [importlib.import_module(f"{__name__}.{name}").BENCHMARK for name in BENCHMARK_MODULES]
    return {b.name: _returns(b, b.description) for b in found}


@hookimpl
def auh_metrics() -> dict[str, Callable[[], Metric]]:
    from plugins.metrics import BUILTIN

    return {m.name: _returns(m, f"final = {m.headline}") for m in BUILTIN.values()}
