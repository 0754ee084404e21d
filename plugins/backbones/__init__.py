"""Backbones: the IR family (:mod:`plugins.backbones.ir`) and ``timm:*``
(:mod:`plugins.backbones.timm`).

Each satisfies :class:`harness.protocols.Backbone`: ``[B, 3, S, S]`` images,
normalized as its ``normalization`` says, to logits ``[B, num_classes]``.
Loading local weights (``init = "path"``) is the core's
:func:`harness.weights.load_weights`.
"""
from harness import hookimpl


@hookimpl
def auh_backbones():
    from plugins.backbones.ir import FACTORIES
    from plugins.backbones.timm import timm_backbone

    return {**FACTORIES, "timm:*": timm_backbone}
