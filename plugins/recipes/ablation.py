"""``auh ablate``'s rows for the paper's method: its Table 2 derived from any recipe.

Five rows: each view alone without alignment or balancing, both views, +
alignment, + balancing (ML-ROS and selective learning, or whatever sampler
and loss the recipe names). The core's ``auh ablate`` runs whatever rows the
``auh_ablation`` hook returns; this plugin gives the paper's.
"""
from __future__ import annotations

import dataclasses

from harness import hookimpl
from harness.errors import UserError
from harness.recipe import ComponentSpec, Recipe


@hookimpl
def auh_ablation(recipe: Recipe) -> tuple[list[tuple[str, Recipe]], str]:
    return rows(recipe), legend(recipe)


def rows(base: Recipe) -> list[tuple[str, Recipe]]:
    """The paper's Table 2 as ``(row name, recipe)`` pairs derived from ``base``, in table order.

    Without alignment the aligner is ``none`` (resize only); without
    balancing the sampler is ``uniform`` and the loss plain ``bce``. The
    single-view rows keep the base recipe's ``face`` / ``emotion`` views
    (the first and second view when named otherwise; rows say ``F_<view>``).
    A base recipe that already runs without alignment, or without any
    balancing, is refused: its "+ Align" or "+ balancing" row would repeat
    the row before it under a name that says otherwise.
    """
    views = list(base.views)
    if len(views) < 2:
        raise UserError("auh ablate needs a recipe with two views (face and emotion)")
    if base.aligner.name == "none":
        raise UserError("auh ablate: the recipe's aligner is 'none', so its '+ Align' row would "
                        "repeat the row without alignment; set aligner.name to the aligner to ablate")
    if base.sampler.name == "uniform" and base.loss.name == "bce":
        raise UserError("auh ablate: the recipe's sampler is 'uniform' and its loss 'bce', so its "
                        "'+ balancing' row would repeat the row without it; name the sampler or "
                        "loss to ablate")
    face = "face" if "face" in views else views[0]
    emotion = "emotion" if "emotion" in views else views[1]
    both = f"F_{face} + F_{emotion}"

    def variant(row: str, view_names: list[str], aligned: bool, balanced: bool) -> tuple[str, Recipe]:
        changes: dict = {"views": {v: base.views[v] for v in view_names}}
        if not aligned:
            changes["aligner"] = ComponentSpec("none")
        if not balanced:
            changes.update(sampler=ComponentSpec("uniform"), loss=ComponentSpec("bce"))
        slug = row.lower().replace(" + ", "+").replace(" ", "_")
        return row, dataclasses.replace(base, **changes).with_run(name=f"{base.run.name}-ablate-{slug}")

    return [variant(f"F_{face}", [face], False, False),
            variant(f"F_{emotion}", [emotion], False, False),
            variant(both, [face, emotion], False, False),
            variant(f"Align + {both}", [face, emotion], True, False),
            variant(f"Align + {both} + balancing", [face, emotion], True, True)]


def legend(base: Recipe) -> str:
    """What "Align" and "balancing" stand for in the rows derived from ``base``."""
    return (f"Align = aligner {base.aligner.name!r}; balancing = sampler "
            f"{base.sampler.name!r} + loss {base.loss.name!r} "
            f"(without: aligner 'none', sampler 'uniform', loss 'bce')")
