"""The training data path on the device: uint8 crops in, normalized float batches out.

The loader ships each batch as the face cache stores it, uint8 ``[B,S,S,3]``
(4x fewer bytes than float, pinned for a non-blocking copy); conversion,
augmentation, resizing to the model's input and normalization then run
batched on the training device (:func:`model_input`). On a GPU that takes
the per-image float work off the loader's CPU cores; on the CPU it is the
same arithmetic in the same process.

Augmentation is seeded: its parameters are drawn per image on the CPU, by
the loader, from a generator seeded by ``(epoch seed, batch number)``
(:meth:`Augment.draw`), so they depend neither on the number of loader
workers nor on the device, and the same batch gets the same crops and
colours on CPU and GPU (to float tolerance). Horizontal flips, which also
swap left/right AU columns, stay with the loader (see
``harness.training.CropBatches``). Prediction never augments.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from harness.protocols import Normalization

_GRAY = (0.2989, 0.587, 0.114)  # the luma weights of torchvision's rgb_to_grayscale


@dataclass(frozen=True)
class Augment:
    """Random crop / scale / shift and colour jitter, per image.

    ``scale``: the crop's side as a fraction of the face crop, drawn uniformly
    from ``[lo, hi]`` (``(1, 1)``: no zoom). ``shift``: the crop's centre moves
    by up to this fraction of the side, in x and y. ``jitter``: brightness,
    contrast and saturation factors drawn from ``[1 - jitter, 1 + jitter]``.
    The defaults do nothing.
    """

    scale: tuple[float, float] = (1.0, 1.0)
    shift: float = 0.0
    jitter: float = 0.0

    @property
    def active(self) -> bool:
        return tuple(self.scale) != (1.0, 1.0) or self.shift > 0 or self.jitter > 0

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Parameters of ``n`` images, float32 ``[n, 6]``: scale, dx, dy, brightness,
        contrast, saturation."""
        lo, hi = self.scale
        params = np.empty((n, 6), dtype=np.float32)
        params[:, 0] = rng.uniform(lo, hi, n)
        params[:, 1:3] = rng.uniform(-self.shift, self.shift, (n, 2))
        params[:, 3:6] = rng.uniform(1 - self.jitter, 1 + self.jitter, (n, 3))
        return params


def model_input(crops: torch.Tensor, input_size: int, device: torch.device | str,
                channels_last: bool = True, params: torch.Tensor | None = None, *,
                normalization: Normalization) -> torch.Tensor:
    """uint8 crops ``[B,S,S,3]`` -> normalized float ``[B,3,input_size,input_size]`` on ``device``.

    ``params`` (from :meth:`Augment.draw`) augments each image; ``None`` is the
    deterministic path used for validation and prediction. ``normalization``
    is the backbone's ``(mean, std)`` per channel.
    """
    x = crops.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
    if params is not None:
        params = params.to(x.device, non_blocking=True)
        x = _crop(x, params[:, 0], params[:, 1:3])
    if x.shape[-1] != input_size:
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", antialias=True,
                          align_corners=False)
    if params is not None:
        x = _jitter(x, params[:, 3], params[:, 4], params[:, 5])
    mean, std = (torch.tensor(v, dtype=x.dtype, device=x.device).view(1, 3, 1, 1) for v in normalization)
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def _crop(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Each image's square window of side ``scale`` centred at ``shift`` (both as
    fractions of the side), resampled to the input's size; edges repeat outward."""
    theta = torch.zeros(len(x), 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = 2 * shift  # grid coordinates span [-1, 1]: a side is 2 units
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _jitter(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor,
            saturation: torch.Tensor) -> torch.Tensor:
    """torchvision's ColorJitter order (brightness, contrast, saturation), batched."""
    def gray(img: torch.Tensor) -> torch.Tensor:
        r, g, b = img.unbind(1)
        return (_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).unsqueeze(1)

    x = (x * brightness.view(-1, 1, 1, 1)).clamp_(0, 1)
    mean = gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = (mean + (x - mean) * contrast.view(-1, 1, 1, 1)).clamp_(0, 1)
    g = gray(x)
    return (g + (x - g) * saturation.view(-1, 1, 1, 1)).clamp_(0, 1)
