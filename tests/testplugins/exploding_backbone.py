"""A backbone plugin for tests: it builds (so a recipe naming it passes every check before
a run), then raises on its first forward pass, as a broken model would in the middle of a
run. Used to make an arm-seed's child process fail, deterministically and at once."""
from __future__ import annotations

import torch

from harness import hookimpl

MESSAGE = "exploding backbone: forward pass refused on purpose"


class Exploding(torch.nn.Module):
    normalization = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

    def __init__(self, num_classes: int, input_size: int) -> None:
        super().__init__()
        self.head = torch.nn.Linear(3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(MESSAGE)  # what torch itself raises for a broken model


@hookimpl
def auh_backbones() -> dict:
    return {"exploding": Exploding}
