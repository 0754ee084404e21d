"""Occluders: things in front of the face that hide some AUs.

Each occluder is drawn on the image and into a mask; the renderer then
marks as unknown (999) every AU whose region is mostly under the mask (see
``renderer.AU_REGIONS``), so labels follow what is actually hidden.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from plugins.synth.face import SKIN_TONES, Identity, _mix
from plugins.synth.geometry import FaceGeometry

# Probability of each occluder per image (the rest: none). Mouth occluders are
# rare because ENC-2020 rarely marks mouth AUs such as AU10 or AU20 unknown.
OCCLUDER_RATES: dict[str, float] = {
    "fringe": 0.03,       # hair over the brows
    "sunglasses": 0.025,
    "eye_bar": 0.01,      # a censoring bar across the eyes
    "hand_cheek": 0.012,  # a hand resting on one cheek
    "hand_mouth": 0.006,
    "face_mask": 0.005,
    "mouth_bar": 0.003,
}
KINDS: tuple[str, ...] = tuple(OCCLUDER_RATES)


def _flat(p: np.ndarray) -> list[float]:
    return p.ravel().tolist()


@dataclass
class Occluder:
    """One occluder: its kind and the random numbers that place and colour it."""

    kind: str
    u: np.ndarray = field(default_factory=lambda: np.full(8, 0.5))

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Occluder | None":
        """An occluder with the probabilities of :data:`OCCLUDER_RATES`, or ``None``."""
        x = rng.random()
        u = rng.random(8)
        for kind, rate in OCCLUDER_RATES.items():
            if x < rate:
                return cls(kind, u)
            x -= rate
        return None

    def draw(self, img: Image.Image, geo: FaceGeometry, ident: Identity) -> Image.Image:
        """Draw onto ``img``; return the ``L`` mask of what it covers."""
        mask = Image.new("L", img.size, 0)
        layers = (ImageDraw.Draw(img), ImageDraw.Draw(mask))
        getattr(self, "_" + self.kind)(layers, geo, ident)
        return mask

    # Each _kind draws polygons into (image, mask); colour None means "mask only".
    def _fill(self, layers: tuple, poly: np.ndarray, colour: tuple[int, int, int]) -> None:
        layers[0].polygon(_flat(poly), fill=colour)
        layers[1].polygon(_flat(poly), fill=255)

    def _colour(self, k: int) -> tuple[int, int, int]:
        rng = np.random.default_rng(int(self.u[k] * 2**31))
        return tuple(int(c) for c in rng.integers(0, 255, 3))

    def _fringe(self, layers: tuple, geo: FaceGeometry, ident: Identity) -> None:
        x = np.linspace(-0.95, 0.95, 21) * geo.axes[0]
        bottom = ident.brow_y + 0.07 + 0.05 * self.u[0] + 0.04 * np.sin(x * 23 + 6 * self.u[1])
        top = np.full_like(x, -1.05)
        poly = np.vstack([geo.px(np.column_stack([x, top]), 0.05),
                          geo.px(np.column_stack([x, bottom]), 0.05)[::-1]])
        self._fill(layers, poly, tuple(int(c) for c in ident.hair * 0.9))

    def _sunglasses(self, layers: tuple, geo: FaceGeometry, ident: Identity) -> None:
        tint = int(15 + 40 * self.u[0])
        for side in (-1, 1):
            lens = geo.ellipse(side * ident.eye_x, ident.eye_y + 0.02, ident.eye_w + 0.11,
                               0.16 + 0.03 * self.u[1], 20, 0.08)
            self._fill(layers, lens, (tint, tint, int(tint * (1 + self.u[2]))))
        bridge = geo.px(np.array([[-0.12, ident.eye_y - 0.05], [0.12, ident.eye_y - 0.05]]), 0.12)
        layers[0].line(_flat(bridge), fill=(tint, tint, tint), width=max(1, int(0.03 * geo.scale)))

    def _bar(self, layers: tuple, geo: FaceGeometry, centre_y: float, half_h: float, k: int) -> None:
        half_w = 0.75 + 0.3 * self.u[k]
        rect = np.array([[-half_w, centre_y - half_h], [half_w, centre_y - half_h],
                         [half_w, centre_y + half_h], [-half_w, centre_y + half_h]])
        # A censoring bar lies flat in the image plane, aligned with the eyes.
        cos, sin = np.cos(geo.roll_rad), np.sin(geo.roll_rad)
        anchor = geo.px(np.array([[0.0, centre_y]]), 0.3)[0]
        flat = (rect - [0, centre_y]) * geo.scale @ np.array([[cos, sin], [-sin, cos]]) + anchor
        self._fill(layers, flat, (0, 0, 0) if self.u[k + 1] < 0.6 else self._colour(k + 2))

    def _eye_bar(self, layers: tuple, geo: FaceGeometry, ident: Identity) -> None:
        self._bar(layers, geo, ident.eye_y, 0.13 + 0.04 * self.u[0], 1)

    def _mouth_bar(self, layers: tuple, geo: FaceGeometry, ident: Identity) -> None:
        self._bar(layers, geo, ident.mouth_y, 0.14 + 0.04 * self.u[0], 1)

    def _hand(self, layers: tuple, geo: FaceGeometry, centre: np.ndarray, radius: float,
              finger_dir: float) -> None:
        skin = tuple(int(c) for c in _mix(SKIN_TONES, float(self.u[3])) * 0.95)
        palm = geo.ellipse(centre[0], centre[1], radius, radius * 0.85, 18, 0.35)
        self._fill(layers, palm, skin)
        c = geo.px(centre[None], 0.35)[0]
        # Four fingers fanning out from the palm edge, in image space.
        for k, spread in enumerate(np.linspace(-0.45, 0.45, 4)):
            ang = finger_dir + spread
            d = np.array([np.cos(ang), np.sin(ang)])
            n = np.array([-d[1], d[0]])
            base = c + d * radius * 0.6 * geo.scale
            tip = base + d * radius * (1.1 - 0.2 * abs(k - 1.5)) * geo.scale
            wdt = 0.09 * geo.scale
            finger = np.array([base + n * wdt, tip + n * wdt * 0.8, tip - n * wdt * 0.8, base - n * wdt])
            self._fill(layers, finger, skin)
        layers[0].line(_flat(palm[3:9]), fill=tuple(int(v * 0.7) for v in skin), width=1)

    def _hand_mouth(self, layers: tuple, geo: FaceGeometry, ident: Identity) -> None:
        centre = np.array([0.08 * (self.u[0] - 0.5), ident.mouth_y + 0.05 * self.u[1]])
        self._hand(layers, geo, centre, 0.40 + 0.05 * self.u[2], np.pi * (0.1 if self.u[4] < 0.5 else 0.9))

    def _hand_cheek(self, layers: tuple, geo: FaceGeometry, ident: Identity) -> None:
        side = -1 if self.u[0] < 0.5 else 1
        centre = np.array([side * (0.55 + 0.1 * self.u[1]), 0.35 + 0.15 * self.u[2]])
        self._hand(layers, geo, centre, 0.32 + 0.06 * self.u[4], -np.pi / 2 + side * 0.2)

    def _face_mask(self, layers: tuple, geo: FaceGeometry, ident: Identity) -> None:
        hw = geo.axes[0]
        top_y = ident.eye_y + 0.22 + 0.05 * self.u[0]
        x = np.linspace(-0.93, 0.93, 11) * hw
        top = np.column_stack([x, top_y + 0.08 * (x / hw) ** 2 - 0.05 * np.exp(-(x / 0.15) ** 2)])
        lower = np.array([[0.9, 0.75], [0.7, 1.05], [0.35, 1.28], [0.0, 1.36], [-0.35, 1.28], [-0.7, 1.05],
                          [-0.9, 0.75]]) * [hw, geo.axes[1] / 1.33]
        poly = geo.px(np.vstack([top, lower]), 0.06)
        colour = [(200, 220, 235), (240, 240, 240), (30, 30, 35), self._colour(1)][int(self.u[2] * 4)]
        self._fill(layers, poly, colour)
        for k in range(3):  # pleats
            y = top_y + 0.2 + 0.12 * k
            pleat = geo.px(np.array([[-0.7 * hw, y], [0.7 * hw, y]]), 0.08)
            layers[0].line(_flat(pleat), fill=tuple(int(c * 0.8) for c in colour), width=1)
