"""``auh ablate``'s rows for the paper's method: its Table 2 derived from any recipe.

Five rows: each view alone without alignment or balancing, both views, +
alignment, + balancing (ML-ROS and selective learning, or whatever sampler
and loss the recipe names). The core's ``auh ablate`` runs whatever rows the
``auh_ablation`` hook returns; this plugin gives the paper's.
"""
from __future__ import annotations

import copy
from typing import Any

from harness import hookimpl
from harness.errors import UserError


@hookimpl
def auh_ablation(recipe: dict[str, Any]) -> tuple[list[tuple[str, dict[str, Any]]], str]:
    return rows(recipe), legend(recipe)


def rows(base: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The paper's Table 2 as ``(row name, recipe)`` pairs derived from ``base``, in table order.

    Without alignment the aligner is ``none`` (resize only); without
    balancing the sampler is ``uniform`` and the loss plain ``bce``. The
    single-view rows keep the base recipe's ``face`` / ``emotion`` views
    (the first and second view when named otherwise; rows say ``F_<view>``).
    A base recipe that already runs without alignment, or without any
    balancing, is refused: its "+ Align" or "+ balancing" row would repeat
    the row before it under a name that says otherwise.
    """
    views = list(base["views"])
    if len(views) < 2:
        raise UserError("auh ablate needs a recipe with two views (face and emotion)")
    if base["aligner"]["name"] == "none":
        raise UserError("auh ablate: the recipe's aligner is 'none', so its '+ Align' row would "
                        "repeat the row without alignment; set aligner.name to the aligner to ablate")
    if base["sampler"]["name"] == "uniform" and base["loss"]["name"] == "bce":
        raise UserError("auh ablate: the recipe's sampler is 'uniform' and its loss 'bce', so its "
                        "'+ balancing' row would repeat the row without it; name the sampler or "
                        "loss to ablate")
    face = "face" if "face" in views else views[0]
    emotion = "emotion" if "emotion" in views else views[1]
    both = f"F_{face} + F_{emotion}"

    def variant(view_names: list[str], aligned: bool, balanced: bool) -> dict[str, Any]:
        r = copy.deepcopy(base)
        r["views"] = {v: r["views"][v] for v in view_names}
        if not aligned:
            r["aligner"] = {"name": "none"}
        if not balanced:
            r["sampler"], r["loss"] = {"name": "uniform"}, {"name": "bce"}
        return r

    table = [(f"F_{face}", variant([face], False, False)),
             (f"F_{emotion}", variant([emotion], False, False)),
             (both, variant([face, emotion], False, False)),
             (f"Align + {both}", variant([face, emotion], True, False)),
             (f"Align + {both} + balancing", variant([face, emotion], True, True))]
    for row, r in table:
        slug = row.lower().replace(" + ", "+").replace(" ", "_")
        r["run"]["name"] = f"{base['run']['name']}-ablate-{slug}"
    return table


def legend(base: dict[str, Any]) -> str:
    """What "Align" and "balancing" stand for in the rows derived from ``base``."""
    return (f"Align = aligner {base['aligner']['name']!r}; balancing = sampler "
            f"{base['sampler']['name']!r} + loss {base['loss']['name']!r} "
            f"(without: aligner 'none', sampler 'uniform', loss 'bce')")
