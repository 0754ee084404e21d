"""Progress bars that stay quiet under ``--quiet``, in CI and in tests."""
from __future__ import annotations

import os
import sys
from typing import Any, Iterable

from tqdm.auto import tqdm


def quiet() -> bool:
    return bool(os.environ.get("AUH_QUIET"))


def progress(iterable: Iterable[Any] | None = None, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, ...)``, disabled when ``AUH_QUIET`` is set; without an
    iterable, a bar to ``update`` by hand (``total=...``)."""
    return tqdm(iterable, disable=quiet(), **kwargs)


def note(message: str) -> None:
    """A line on stderr that stays (printed above any progress bar, not through it)."""
    tqdm.write(message, file=sys.stderr)
