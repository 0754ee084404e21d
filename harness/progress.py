"""Progress bars that stay quiet under ``--quiet``, in CI and in tests."""
from __future__ import annotations

import os
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def quiet() -> bool:
    return bool(os.environ.get("AUH_QUIET"))


def progress(iterable: Iterable[T], **kwargs) -> Iterable[T]:
    """``tqdm(iterable)``, disabled when ``AUH_QUIET`` is set."""
    return tqdm(iterable, disable=quiet(), **kwargs)
