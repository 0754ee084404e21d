"""au-harness: a plugin-based benchmark and challenge harness for facial AU detection.

The public API for plugin authors and scripts::

    from harness import hookimpl, create, available

    @hookimpl
    def auh_samplers():
        return {"my_sampler": MySampler}

    sampler = create("sampler", "mlros", percent=25)
    available("sampler")  # ['mlros', 'uniform', 'weighted', ...]
"""
from __future__ import annotations

import os
from typing import Any, Iterable

# Before torch loads its OpenMP runtime: idle threads sleep instead of
# spinning, which on a shared machine took cores from other jobs (see
# harness.threads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pluggy  # noqa: E402

from harness.errors import UserError  # noqa: E402
from harness.registry import get_registry  # noqa: E402

__all__ = ["hookimpl", "create", "available", "get_registry", "load_plugins", "run", "compare", "ablate",
           "UserError"]

hookimpl = pluggy.HookimplMarker("au_harness")

def load_plugins(specs: Iterable[str]) -> None:
    """Add ``--plugin`` modules or ``.py`` files to the process-wide registry."""
    reg = get_registry()
    for spec in specs:
        reg.load_plugin(spec)


def create(kind: str, name: str, **params: Any) -> Any:
    """Build the component ``name`` of ``kind`` (``"sampler"``, ``"backbone"``, ...)."""
    return get_registry().create(kind, name, **params)


def available(kind: str) -> list[str]:
    """Names registered for ``kind``, sorted."""
    return get_registry().available(kind)


def run(recipe: Any = None, *, overrides: Iterable[str] = (), resume: bool = False) -> Any:
    """Run the pipeline, as ``auh run``: ``recipe`` is a TOML path, a recipe dict, a
    :class:`harness.recipe.Recipe`, or ``None`` (the demo recipe); ``overrides`` are
    ``--set`` items (``"train.epochs=2"``). Returns the :class:`harness.results.RunResult`
    (``.final``, ``.accuracy``, ``.f1``, ``.per_au``, ``.folds``, ``.bundle``, ...)."""
    from harness import recipe as recipes
    from harness.pipeline import run as run_pipeline

    resolved = recipes.from_source(recipes.demo_recipe() if recipe is None else recipe, list(overrides))
    return run_pipeline(resolved, resume=resume)


def compare(recipe_a: Any, recipe_b: Any = None, **options: Any) -> Any:
    """Run two recipes on the same seeds and return the paired ``harness.verdict.Verdict``
    (see :func:`harness.comparison.compare` for the options: ``vs``, ``seeds``, ``jobs``...)."""
    from harness.comparison import compare as _compare

    return _compare(recipe_a, recipe_b, **options)


def ablate(recipe: Any = None, **options: Any) -> Any:
    """Run a recipe's ablation rows (``auh ablate``) and return the
    :class:`harness.ablation.Ablation` (its table, where it was written, each row's
    result, or with ``seeds`` the paired verdicts); see :func:`harness.ablation.ablate`
    for the options: ``seeds``, ``jobs``, ``resamples``, ``overrides``, ``out``..."""
    from harness.ablation import ablate as _ablate

    return _ablate(recipe, **options)
