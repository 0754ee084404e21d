"""AU schemas and label coding.

The core never hard-codes an AU list: a dataset carries its :class:`AUSchema`.
ENC-2020 is provided because the challenge file formats default to it.
"""
from __future__ import annotations

from dataclasses import dataclass

POSITIVE, NEGATIVE, UNKNOWN = 1, 0, 999
"""Label coding: 1 present, 0 absent, 999 occluded / not annotated."""


@dataclass(frozen=True)
class AUSchema:
    """An ordered list of AU column names, e.g. ``("AU1", "AU2", ...)``.

    ``flip_pairs`` names the AUs that swap under a horizontal flip
    (left/right head turn and tilt), so augmentation can keep labels right.
    """

    name: str
    aus: tuple[str, ...]
    flip_pairs: tuple[tuple[str, str], ...] = ()

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


ENC2020 = AUSchema(
    name="enc2020",
    aus=tuple(
        f"AU{n}"
        for n in (1, 2, 4, 5, 6, 9, 10, 12, 15, 17, 18, 20, 24, 25, 26, 28, 43, 51, 52, 53, 54, 55, 56)
    ),
    # 51/52: head turn left/right; 55/56: head tilt left/right.
    flip_pairs=(("AU51", "AU52"), ("AU55", "AU56")),
)

SCHEMAS: dict[str, AUSchema] = {ENC2020.name: ENC2020}


def get_schema(name: str) -> AUSchema:
    """Look up a schema by name (``enc2020``)."""
    from harness.errors import UserError

    try:
        return SCHEMAS[name]
    except KeyError:
        raise UserError(f"unknown AU schema {name!r}; available: {', '.join(sorted(SCHEMAS))}") from None
