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


def note(message: str, *, transient: bool = False) -> None:
    """The one way to tell the user something that is not an error (a warning, what a
    run is doing): a line on stderr that stays, printed above any progress bar, not
    through it. ``transient`` lines only say how the work goes (an arm-seed started)
    and are left out under ``--quiet`` (``AUH_QUIET``); every other note is printed."""
    if transient and quiet():
        return
    tqdm.write(message, file=sys.stderr)
    sys.stderr.flush()
