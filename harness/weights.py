"""Model weights on disk: load a local checkpoint into a module, save as safetensors.

``load_weights`` is what a recipe's ``init = "path"`` runs. It is forgiving
about naming and strict about safety:

* ``.safetensors`` files, or ``.pth`` / ``.pt`` / ``.bin`` files read with
  ``torch.load(weights_only=True)`` (a checkpoint that needs arbitrary
  unpickling is refused: it could run code);
* a checkpoint that wraps its weights (``{"state_dict": ...}``,
  ``{"model": ...}``, ...) is unwrapped;
* key prefixes added by wrappers (``module.`` from DataParallel/DDP,
  ``model.``, ``backbone.``, ``_orig_mod.`` from ``torch.compile``) are
  ignored on both sides when matching names;
* tensors whose shape differs from the module's (a classifier for another
  number of classes) are skipped and reported, not loaded.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Mapping, NamedTuple

import torch
from torch import nn

from harness.errors import UserError
from harness.fileio import atomic_path

PREFIXES = ("module.", "model.", "backbone.", "_orig_mod.")
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "state_dict_ema", "module", "net")
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


class LoadReport(NamedTuple):
    """What :func:`load_weights` did not load, as module / checkpoint key names."""

    missing: list[str]      # module keys with no tensor in the checkpoint (left as they were)
    unexpected: list[str]   # checkpoint keys that match nothing in the module
    mismatched: list[str]   # keys present on both sides with different shapes (skipped)

    def summary(self) -> str:
        """One line for logs: counts and the first few names of each."""
        def part(name: str, keys: list[str]) -> str:
            head = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
            return f"{len(keys)} {name}" + (f" ({head})" if keys else "")

        return "; ".join((part("missing", self.missing), part("unexpected", self.unexpected),
                          part("shape-mismatched", self.mismatched)))


def strip_prefixes(key: str) -> str:
    """``module.model.body.0.weight`` -> ``body.0.weight``."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, unwrapped, on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as exc:
            raise UserError(f"weights file {str(path)!r}: not a readable safetensors file: {exc}") from None
    if path.suffix not in TORCH_SUFFIXES:
        raise UserError(f"weights file {str(path)!r}: unknown format; expected .safetensors or "
                        f"{', '.join(TORCH_SUFFIXES)}")
    return _unwrap(safe_torch_load(path), path)


def safe_torch_load(path: str | Path) -> object:
    """``torch.load(weights_only=True)`` on the CPU: tensors, containers and plain
    values only. A file that needs any other unpickling (which could run code)
    or is not a readable checkpoint raises :class:`UserError`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"weights file {str(path)!r}: refused, it holds pickled objects other than "
                        f"tensors (torch.load weights_only=True: {first}); re-save its state_dict "
                        f"or convert it to .safetensors") from None
    except (RuntimeError, OSError, EOFError) as exc:
        raise UserError(f"weights file {str(path)!r}: not a readable torch checkpoint: {exc}") from None


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    while isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise UserError(f"weights file {str(path)!r}: expected a state dict (name -> tensor), "
                        f"got {type(obj).__name__}")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise UserError(f"weights file {str(path)!r}: no tensors found (top-level keys: "
                        f"{', '.join(map(str, list(obj)[:8]))})")
    return tensors


def load_weights(module: nn.Module, path: str | Path) -> LoadReport:
    """Copy matching tensors of the checkpoint at ``path`` into ``module``.

    Names match after :func:`strip_prefixes` on both sides. Returns the
    :class:`LoadReport`; raises :class:`UserError` when nothing matches (the
    checkpoint is for another architecture).
    """
    source = read_state_dict(path)
    target = module.state_dict()
    by_stripped = {strip_prefixes(k): k for k in target}
    matched: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    mismatched: list[str] = []
    for key, tensor in source.items():
        own = key if key in target else by_stripped.get(strip_prefixes(key))
        if own is None:
            unexpected.append(key)
        elif tuple(target[own].shape) != tuple(tensor.shape):
            mismatched.append(own)
        else:
            matched[own] = tensor
    if not matched:
        raise UserError(f"weights file {str(path)!r}: none of its {len(source)} tensors match the "
                        f"model (checkpoint keys like {next(iter(source))!r}, model keys like "
                        f"{next(iter(target), '(none)')!r})")
    module.load_state_dict(matched, strict=False)
    missing = [k for k in target if k not in matched and k not in mismatched]
    return LoadReport(missing, unexpected, mismatched)


def save_weights(module: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``module``'s state dict to ``path`` as safetensors, atomically."""
    from safetensors.torch import save_model

    path = Path(path)
    with atomic_path(path) as tmp:
        # save_model (not save_file) copes with tied / shared tensors;
        # channels_last weights are not contiguous.
        save_model(module, str(tmp), metadata=metadata, force_contiguous=True)
    return path


def save_state_dict(tensors: dict[str, torch.Tensor], path: str | Path) -> Path:
    """Write ``tensors`` (CPU copies, none sharing memory) as safetensors, atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    return path
