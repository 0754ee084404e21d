"""Backbones: the IR family (:mod:`plugins.backbones.ir`) and ``timm:*``
(:mod:`plugins.backbones.timm`).

Every backbone maps ``[B, 3, S, S]`` images to logits ``[B, num_classes]``
and offers ``features(x)`` (the embedding before the classifier) and
``reset_classifier(num_classes)`` (a fresh head, for pretraining ->
fine-tuning). Loading local weights (``init = "path"``) is the core's
:func:`harness.weights.load_weights`.
"""
from harness import hookimpl


@hookimpl
def auh_backbones():
    from plugins.backbones.ir import FACTORIES
    from plugins.backbones.timm import timm_backbone

    return {**FACTORIES, "timm:*": timm_backbone}
