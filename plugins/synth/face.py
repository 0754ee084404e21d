"""What a synthetic image is made of: an identity, an expression and a scene.

* :class:`Identity` is who the face is (shape, skin, eyes, hair, glasses);
  the identity companion set renders one identity many times.
* :class:`Scene` is how this picture was taken (background, framing,
  camera roll, light, colour cast, blur, noise, JPEG quality).
* Expression is an AU intensity vector in :data:`RENDER_AUS` order: ENC-2020's
  23 AUs, then the AUs other benchmarks label (7, 14, 23); a vector of ENC-2020's
  23 leaves those at 0 (absent, (0, 1] = present with that intensity); head pose
  AUs 51-56 become angles through :func:`head_pose`.

Everything is drawn from a ``numpy.random.Generator`` so one image's seed
fixes it completely.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from plugins.benchmarks.enc2020 import SCHEMA as ENC2020

AUS: tuple[str, ...] = ENC2020.aus
# Appended after ENC-2020's, so an ENC-2020 vector is a prefix and renders as before.
RENDER_AUS: tuple[str, ...] = AUS + ("AU7", "AU14", "AU23")
AU_INDEX: dict[str, int] = {au: i for i, au in enumerate(RENDER_AUS)}

# Light to dark skin tones (sRGB), interpolated; spans Fitzpatrick I-VI roughly.
SKIN_TONES = np.array([(255, 226, 204), (240, 196, 166), (224, 172, 135), (198, 137, 98),
                       (160, 104, 70), (120, 78, 54), (96, 63, 46)], dtype=np.float32)
HAIR_COLORS = np.array([(20, 16, 14), (48, 34, 26), (92, 62, 40), (150, 110, 70),
                        (210, 180, 120), (130, 50, 30), (160, 160, 160)], dtype=np.float32)
IRIS_COLORS = np.array([(60, 40, 25), (100, 70, 40), (70, 100, 60), (70, 110, 150),
                        (40, 30, 25)], dtype=np.float32)

# Head pose: a positive pose AU turns the head this far (degrees, by intensity);
# absent pose AUs leave a small jitter below POSE_JITTER so labels stay unambiguous.
POSE_MIN_DEG, POSE_SPAN_DEG, POSE_JITTER_DEG = 16.0, 20.0, 5.0


def _mix(palette: np.ndarray, u: float) -> np.ndarray:
    pos = u * (len(palette) - 1)
    i = min(int(pos), len(palette) - 2)
    t = pos - i
    return palette[i] * (1 - t) + palette[i + 1] * t


@dataclass
class Identity:
    """Face shape and appearance: fixed for a person across images."""

    half_width: float = 1.0        # ellipsoid semi-axis x (face units)
    half_height: float = 1.33      # ellipsoid semi-axis y
    jaw_taper: float = 0.22        # how much narrower the jaw is than the cheeks
    eye_x: float = 0.36            # eye centre distance from the midline
    eye_y: float = -0.15
    eye_w: float = 0.17            # eye half-width
    eye_h: float = 0.075           # upper-lid opening height
    brow_y: float = -0.40
    brow_thick: float = 0.06
    nose_len: float = 0.30         # tip y
    nose_w: float = 0.15
    mouth_y: float = 0.70
    mouth_w: float = 0.27          # corner distance from the midline
    lip_thick: float = 0.07
    skin: np.ndarray = field(default_factory=lambda: SKIN_TONES[1].copy())
    hair: np.ndarray = field(default_factory=lambda: HAIR_COLORS[1].copy())
    iris: np.ndarray = field(default_factory=lambda: IRIS_COLORS[1].copy())
    lip_tint: float = 0.5
    hair_style: int = 1            # 0 very short, 1 short, 2 long, 3 long with fringe line
    hairline: float = -0.78
    glasses: bool = False
    glasses_color: np.ndarray = field(default_factory=lambda: np.array([30.0, 30.0, 30.0]))

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Identity":
        u = rng.random(24)
        skin = _mix(SKIN_TONES, u[0]) * (0.95 + 0.08 * u[1:4])
        hair = _mix(HAIR_COLORS, u[4] ** 1.6) * (0.85 + 0.3 * u[5])
        return cls(
            half_width=0.95 + 0.10 * u[6], half_height=1.26 + 0.14 * u[7],
            jaw_taper=0.12 + 0.16 * u[8], eye_x=0.34 + 0.05 * u[9], eye_y=-0.18 + 0.06 * u[10],
            eye_w=0.16 + 0.04 * u[11], eye_h=0.07 + 0.025 * u[12],
            brow_y=-0.44 + 0.07 * u[13], brow_thick=0.045 + 0.035 * u[14],
            nose_len=0.26 + 0.08 * u[15], nose_w=0.13 + 0.05 * u[16],
            mouth_y=0.66 + 0.08 * u[17], mouth_w=0.24 + 0.07 * u[18], lip_thick=0.055 + 0.03 * u[19],
            skin=np.clip(skin, 0, 255), hair=np.clip(hair, 0, 255),
            iris=_mix(IRIS_COLORS, u[20]), lip_tint=float(u[21]),
            hair_style=int(rng.integers(0, 4)), hairline=-0.86 + 0.16 * u[22],
            glasses=bool(u[23] < 0.12),
            glasses_color=np.array(rng.choice([(20, 20, 20), (90, 60, 30), (160, 160, 170)]),
                                   dtype=np.float64),
        )


@dataclass
class Scene:
    """Camera and environment for one picture (sizes are fractions of the image side)."""

    face_scale: float = 0.30       # face half-width in image sides
    center: tuple[float, float] = (0.5, 0.47)
    roll_deg: float = 0.0          # camera roll, kept small (head tilt AUs are larger)
    light: tuple[float, float] = (-0.3, -0.4)   # light direction (x, y) towards the face
    ambient: float = 0.45
    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)  # colour cast
    brightness: float = 1.0
    gradient: tuple[float, float] = (0.0, 0.0)  # illumination ramp across the image
    blur: float = 0.0              # Gaussian blur radius in output pixels
    noise: float = 0.0             # noise sigma in 8-bit units
    jpeg_quality: int = 90
    background_seed: int = 0
    clutter: int = 12              # number of background shapes

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Scene":
        u = rng.random(16)
        return cls(
            face_scale=0.21 + 0.12 * u[0],
            center=(0.5 + 0.14 * (u[1] - 0.5), 0.47 + 0.12 * (u[2] - 0.5)),
            roll_deg=float(rng.normal(0, 2.0)),
            light=(1.2 * (u[3] - 0.5), -0.2 - 0.6 * u[4]),
            ambient=0.4 + 0.25 * u[5],
            gain=tuple(np.exp(rng.normal(0, 0.09, 3))),
            brightness=0.8 + 0.45 * u[6],
            gradient=(0.5 * (u[7] - 0.5), 0.5 * (u[8] - 0.5)),
            blur=float(1.1 * u[9] ** 2),
            noise=float(7.0 * u[10] ** 2),
            jpeg_quality=int(35 + 60 * u[11]),
            background_seed=int(rng.integers(2**31)),
            clutter=int(4 + 20 * u[12]),
        )

    @classmethod
    def clean(cls) -> "Scene":
        """A centred, evenly lit, noise-free scene (for tests and figures)."""
        return cls(blur=0.0, noise=0.0, jpeg_quality=95, clutter=0)


def head_pose(intensity: np.ndarray, jitter: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from the pose AUs.

    Sign conventions (image x right, y down, z towards the camera): AU51 (head
    turn left, to the subject's left) is yaw > 0, the nose moving to image
    right; AU53 (head up) is pitch > 0; AU55 (tilt left, towards the subject's
    left shoulder) is roll > 0. A horizontal flip negates yaw and roll, which
    is why ENC-2020 swaps 51/52 and 55/56 under flips. ``jitter`` (3 values in
    [-1, 1]) sets the small angle of an axis with no pose AU.
    """
    def axis(pos: str, neg: str, j: float) -> float:
        ip, ineg = intensity[AU_INDEX[pos]], intensity[AU_INDEX[neg]]
        if ip > 0:
            return POSE_MIN_DEG + POSE_SPAN_DEG * ip
        if ineg > 0:
            return -(POSE_MIN_DEG + POSE_SPAN_DEG * ineg)
        return POSE_JITTER_DEG * j

    return axis("AU51", "AU52", jitter[0]), axis("AU53", "AU54", jitter[1]), axis("AU55", "AU56", jitter[2])
