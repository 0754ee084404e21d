"""AU schemas and label codings.

The core never hard-codes an AU list or a label code: a benchmark
(:mod:`harness.benchmark`, registered by a plugin) carries its
:class:`AUSchema`, and the schema its :class:`Coding`, the codes its files use.

In memory every label is one of three values, whatever the benchmark:
:data:`POSITIVE` (present), :data:`NEGATIVE` (absent) and :data:`UNKNOWN`
(not known: occluded, not annotated, not coded). Reading a file maps the
benchmark's codes onto them and writing maps them back, so every component
(metrics, losses, samplers, thresholders) sees one coding.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

POSITIVE, NEGATIVE, UNKNOWN = 1, 0, 999
"""The in-memory label values: 1 present, 0 absent, 999 not known (left out of every score)."""


@dataclass(frozen=True)
class Coding:
    """The integer codes of a benchmark's label files.

    ``present`` and ``absent`` are the codes read as present and absent,
    ``unknown`` those read as not known (left out of scoring). A dataset that
    gives intensities lists them: DISFA's 0-5 with presence from 2 is
    ``Coding(present=(2, 3, 4, 5), absent=(0, 1), unknown=())``
    (:meth:`intensities`). Writing uses the first code of each.
    """

    present: tuple[int, ...] = (POSITIVE,)
    absent: tuple[int, ...] = (NEGATIVE,)
    unknown: tuple[int, ...] = (UNKNOWN,)

    def __post_init__(self) -> None:
        codes = (*self.present, *self.absent, *self.unknown)
        if not self.present or not self.absent:
            raise ValueError("a coding needs at least one present and one absent code")
        if len(set(codes)) != len(codes):
            raise ValueError(f"a label code appears twice in {self}")
        if any(not isinstance(c, int) or isinstance(c, bool) or not -32767 <= c <= 32767 for c in codes):
            raise ValueError(f"label codes must be integers in [-32767, 32767], got {codes}")

    @classmethod
    def intensities(cls, top: int, present_from: int, unknown: tuple[int, ...] = ()) -> "Coding":
        """Intensities ``0..top``, present from ``present_from`` on."""
        return cls(tuple(range(present_from, top + 1)), tuple(range(present_from)), unknown)

    @property
    def accepted(self) -> tuple[int, ...]:
        """Every code a truth file may hold, in the order messages list them."""
        return (*self.absent, *self.present, *self.unknown)

    @property
    def is_memory(self) -> bool:
        """True when the file codes are the in-memory values (no mapping needed)."""
        return (self.present, self.absent, self.unknown) == ((POSITIVE,), (NEGATIVE,), (UNKNOWN,))

    def to_memory(self, codes: np.ndarray) -> np.ndarray:
        """File codes (each one of :attr:`accepted`) to the in-memory 1/0/999, int64."""
        codes = np.asarray(codes, dtype=np.int64)
        if self.is_memory:
            return codes
        out = np.full(codes.shape, UNKNOWN, dtype=np.int64)
        out[np.isin(codes, self.present)] = POSITIVE
        out[np.isin(codes, self.absent)] = NEGATIVE
        return out

    def to_file(self, labels: np.ndarray) -> np.ndarray:
        """In-memory 1/0/999 to this coding's first present/absent/unknown code.

        An unknown label with no unknown code to write is refused (ValueError).
        """
        labels = np.asarray(labels, dtype=np.int64)
        if self.is_memory:
            return labels
        unknown = labels == UNKNOWN
        if unknown.any() and not self.unknown:
            raise ValueError("this coding has no code for an unknown label")
        out = np.where(labels == POSITIVE, self.present[0], self.absent[0])
        return np.where(unknown, self.unknown[0] if self.unknown else 0, out).astype(np.int64)

    def to_dict(self) -> dict[str, list[int]]:
        return {"present": list(self.present), "absent": list(self.absent), "unknown": list(self.unknown)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Coding":
        return cls(*(tuple(int(c) for c in data[k]) for k in ("present", "absent", "unknown")))


@dataclass(frozen=True)
class AUSchema:
    """An ordered list of AU column names, e.g. ``("AU1", "AU2", ...)``, and their coding.

    ``flip_pairs`` names the AUs that swap under a horizontal flip
    (left/right head turn and tilt), so augmentation can keep labels right.
    """

    name: str
    aus: tuple[str, ...]
    flip_pairs: tuple[tuple[str, str], ...] = ()
    coding: Coding = field(default_factory=Coding)

    def __post_init__(self) -> None:
        if len(set(self.aus)) != len(self.aus):
            raise ValueError(f"schema {self.name!r} repeats an AU: {self.aus}")
        for a, b in self.flip_pairs:
            if a not in self.aus or b not in self.aus:
                raise ValueError(f"schema {self.name!r}: flip pair {a}/{b} not in its AUs")

    def __len__(self) -> int:
        return len(self.aus)

    def flip_permutation(self) -> list[int]:
        """Column permutation that maps labels of an image to its mirror image."""
        index = {au: i for i, au in enumerate(self.aus)}
        perm = list(range(len(self.aus)))
        for a, b in self.flip_pairs:
            perm[index[a]], perm[index[b]] = index[b], index[a]
        return perm


def __getattr__(name: str) -> Any:
    # ENC-2020's schema is declared by its benchmark plugin; ``harness.schema.ENC2020``,
    # its older home, stays importable for code written against it. The declaration is
    # imported as data, never through the plugin registry: a plugin module that asked for
    # it while being imported would otherwise build the registry around itself half-made.
    if name == "ENC2020":
        return importlib.import_module("plugins.benchmarks.enc2020").SCHEMA
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
