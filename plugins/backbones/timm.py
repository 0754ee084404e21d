"""``timm:<model name>``: any timm model as a backbone.

``create("backbone", "timm:resnet18", num_classes=23, input_size=112)``
builds ``timm.create_model("resnet18", num_classes=23, ...)``; extra recipe
parameters go to ``timm.create_model``. Models with a fixed input size
(ViT-style) are built for ``input_size`` (``img_size``) unless given.
``pretrained = true`` downloads from the Hugging Face hub, or reads its
local cache; offline without a cached copy it is a one-line error.
"""
from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from harness.errors import UserError
from harness.registry import unknown_message


class TimmBackbone(nn.Module):
    """A timm model as a :class:`harness.protocols.Backbone` (``forward`` -> logits,
    also ``features`` -> pooled embedding, ``reset_classifier``); the timm model
    itself is ``.model``. Its ``normalization`` is the model's own
    ``pretrained_cfg`` mean and std (ImageNet's where it names none)."""

    def __init__(self, model: nn.Module, input_size: int) -> None:
        from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

        super().__init__()
        self.model = model
        self.input_size = input_size
        cfg = getattr(model, "pretrained_cfg", None) or {}
        self.normalization = (tuple(map(float, cfg.get("mean", IMAGENET_DEFAULT_MEAN))),
                              tuple(map(float, cfg.get("std", IMAGENET_DEFAULT_STD))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled, pre-logits embedding ``[B, model.num_features]``."""
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def get_classifier(self) -> nn.Module:
        return self.model.get_classifier()

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classification head (timm's own ``reset_classifier``)."""
        self.model.reset_classifier(num_classes)


def timm_backbone(model_name: str, num_classes: int, input_size: int = 224, pretrained: bool = False,
                  **timm_kwargs: Any) -> TimmBackbone:
    """Any timm model, ``timm:<name>`` (``pretrained`` needs the hub or its cache)."""
    import timm  # here, not at import time: ``auh`` starts faster

    if not timm.is_model(model_name):
        close = timm.list_models(f"*{model_name[:4]}*") or timm.list_models()
        raise UserError(unknown_message("timm model", model_name, close).replace(
            "available:", "e.g.:", 1) + "; see timm.list_models()")
    if timm.get_pretrained_cfg(model_name) and timm.get_pretrained_cfg(model_name).fixed_input_size:
        timm_kwargs.setdefault("img_size", input_size)
    try:
        model = timm.create_model(model_name, pretrained=pretrained, num_classes=num_classes,
                                  **timm_kwargs)
    except OSError as exc:  # hub unreachable or file not cached (huggingface_hub errors are OSErrors)
        if not pretrained:
            raise
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise UserError(
            f"backbone 'timm:{model_name}': pretrained weights are not in the local Hugging Face "
            f"cache and the hub cannot be reached{offline}; fetch them once where the hub is "
            f"reachable, or set pretrained = false (optionally init = \"path/to/weights\")") from exc
    return TimmBackbone(model, input_size)
