"""IR (improved residual) networks of ArcFace / face.evoLve: ``ir50``, ``ir101``,
``ir152`` and their squeeze-excitation versions ``ir_se50``, ``ir_se101``, ``ir_se152``.

Layout: a stem (3x3 conv 64, BN, PReLU); four stages
of widths 64/128/256/512, each starting with a stride-2 unit; unit = BN ->
3x3 conv -> PReLU -> 3x3 conv (stride s) -> BN (-> SE), plus a shortcut
(``MaxPool(1, s)`` when the width is unchanged, else 1x1 conv + BN). The
head keeps the spatial map (no global pooling, as in the paper): adaptive
average pooling to 7x7 (the identity at 112 px; 224 px inputs share the
head), BN -> Dropout -> Flatten -> Linear(512*7*7 -> embedding) -> BN1d.
A separate ``classifier`` Linear maps the embedding to the logits.

Module names follow face.evoLve (``input_layer``, ``body``, ``output_layer``;
``shortcut_layer`` / ``res_layer`` in units; ``fc1`` / ``fc2`` in SE), so its
published IR checkpoints load with :func:`harness.weights.load_weights`.
"""
from __future__ import annotations

import torch
from torch import nn

from harness.protocols import IR_NORMALIZATION

# Units per stage.
DEPTHS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 14, 3),
    101: (3, 13, 30, 3),  # the "IR-100" layout of ArcFace
    152: (3, 8, 36, 3),
}
WIDTHS = (64, 128, 256, 512)
HEAD_GRID = 7  # spatial size the head sees


class SEModule(nn.Module):
    """Squeeze-excitation: channel gates from global average pooling (reduction 16)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class IRUnit(nn.Module):
    """One residual unit: BN -> conv3x3 -> PReLU -> conv3x3 (stride) -> BN [-> SE]."""

    def __init__(self, in_channels: int, depth: int, stride: int, se: bool = False) -> None:
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        layers = [
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        ]
        if se:
            layers.append(SEModule(depth))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRNet(nn.Module):
    """An IR backbone with a classification head: ``forward(x) -> logits [B, num_classes]``.

    ``features(x)`` gives the ``[B, embedding_size]`` embedding;
    ``reset_classifier(n)`` swaps the head for ``n`` classes, as timm models
    do. Inputs are normalized to ``[-1, 1]`` (:data:`normalization`), as the
    face-recognition IR nets were trained.
    """

    normalization = IR_NORMALIZATION

    def __init__(self, num_layers: int, num_classes: int, input_size: int = 112,
                 embedding_size: int = 512, dropout: float = 0.5, se: bool = False) -> None:
        super().__init__()
        if num_layers not in DEPTHS:
            raise ValueError(f"IR depth must be one of {sorted(DEPTHS)}, got {num_layers}")
        _check_positive(num_classes=num_classes, embedding_size=embedding_size)
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 16:
            raise ValueError(f"input_size must be an integer >= 16, got {input_size!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.input_size = input_size
        self.embedding_size = embedding_size
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        units: list[nn.Module] = []
        in_channels = 64
        for width, n in zip(WIDTHS, DEPTHS[num_layers]):
            units.append(IRUnit(in_channels, width, 2, se))
            units.extend(IRUnit(width, width, 1, se) for _ in range(n - 1))
            in_channels = width
        self.body = nn.Sequential(*units)
        self.pool = nn.AdaptiveAvgPool2d(HEAD_GRID)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(dropout),
            nn.Flatten(),
            nn.Linear(512 * HEAD_GRID * HEAD_GRID, embedding_size),
            nn.BatchNorm1d(embedding_size),
        )
        self.classifier = nn.Linear(embedding_size, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding ``[B, embedding_size]`` of images ``[B, 3, S, S]``."""
        return self.output_layer(self.pool(self.body(self.input_layer(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classification head with a fresh ``Linear(embedding, num_classes)``."""
        _check_positive(num_classes=num_classes)
        device = self.classifier.weight.device
        self.classifier = nn.Linear(self.embedding_size, num_classes, device=device)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _factory(num_layers: int, se: bool):
    def factory(num_classes: int, input_size: int = 112, embedding_size: int = 512,
                dropout: float = 0.5) -> IRNet:
        return IRNet(num_layers, num_classes, input_size, embedding_size, dropout, se)

    kind = "IR-SE" if se else "IR"
    factory.__doc__ = (f"{kind}-{num_layers} ({'/'.join(map(str, DEPTHS[num_layers]))} units), "
                       f"no-final-pooling head (Deng et al., ArcFace)")
    factory.__name__ = f"ir{'_se' if se else ''}{num_layers}"
    return factory


FACTORIES = {f"ir{'_se' if se else ''}{n}": _factory(n, se) for se in (False, True) for n in DEPTHS}
