"""The procedural face renderer: one identity + AU intensities + scene -> image.

Drawing happens on a canvas ``SUPERSAMPLE`` times the output size with
PIL ``ImageDraw`` polygons (computed with numpy), then the canvas is
reduced (anti-aliasing) and the camera effects are applied at output size.
Soft shading (eye sockets, nose and cheek shadows, folds) is drawn into a
grey "shade" layer that is box-blurred and multiplied in together with the
head ellipsoid's Lambert shading.

Every AU moves or marks its own part of the face (see ``_brows``, ``_eyes``,
``_nose``, ``_mouth``, ``_wrinkles``); :data:`AU_REGIONS` lists, per AU, the
face points whose occlusion makes that AU unknown (999).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from plugins.synth.face import AU_INDEX, RENDER_AUS, Identity, Scene, head_pose
from plugins.synth.geometry import FaceGeometry

if TYPE_CHECKING:
    from plugins.synth.occluders import Occluder

SUPERSAMPLE = 2

# Face points (face units, see geometry.py) that must be visible to judge each AU.
# An AU is unknown when more than half of its points are covered by an occluder;
# bilateral AUs list both sides, so one visible side is enough.
_BROWS_IN = [(-0.2, -0.42), (0.2, -0.42), (-0.1, -0.40), (0.1, -0.40)]
_BROWS_OUT = [(-0.55, -0.44), (0.55, -0.44), (-0.45, -0.45), (0.45, -0.45)]
_EYES = [(-0.36, -0.15), (0.36, -0.15), (-0.26, -0.15), (0.26, -0.15), (-0.46, -0.15), (0.46, -0.15)]
_CHEEKS = [(-0.42, 0.08), (0.42, 0.08), (-0.52, -0.12), (0.52, -0.12)]
_NOSE = [(0.0, -0.05), (0.0, 0.10), (-0.12, 0.28), (0.12, 0.28)]
_UPPER_LIP = [(0.0, 0.62), (-0.12, 0.63), (0.12, 0.63), (-0.2, 0.45), (0.2, 0.45)]
_CORNERS = [(-0.28, 0.68), (0.28, 0.68), (-0.32, 0.72), (0.32, 0.72)]
_LIPS = [(0.0, 0.66), (0.0, 0.74), (-0.12, 0.70), (0.12, 0.70)]
_CHIN = [(0.0, 0.95), (0.0, 1.08), (-0.15, 1.0), (0.15, 1.0)]
AU_REGIONS: dict[str, np.ndarray] = {au: np.array(pts, dtype=np.float64) for au, pts in {
    "AU1": _BROWS_IN, "AU2": _BROWS_OUT, "AU4": _BROWS_IN, "AU5": _EYES, "AU6": _EYES + _CHEEKS,
    "AU9": _NOSE, "AU10": _UPPER_LIP, "AU12": _CORNERS, "AU15": _CORNERS, "AU17": _CHIN,
    "AU18": _LIPS, "AU20": _CORNERS, "AU24": _LIPS, "AU25": _LIPS, "AU26": _LIPS + _CHIN,
    "AU28": _LIPS, "AU43": _EYES, "AU7": _EYES, "AU14": _CORNERS, "AU23": _LIPS,
}.items()}


@dataclass
class Rendered:
    """A rendered face: the image, its 5 landmarks, and which AUs an occluder hides."""

    image: Image.Image
    landmarks: np.ndarray   # [5, 2] float32 pixels: left eye, right eye, nose, left/right mouth corner
    hidden: np.ndarray      # bool, one per AU of the vector rendered (RENDER_AUS order)


def _rgb(c: np.ndarray) -> tuple[int, int, int]:
    c = np.minimum(np.maximum(c, 0), 255)
    return int(c[0]), int(c[1]), int(c[2])


def _flat(p: np.ndarray) -> list[float]:
    return p.ravel().tolist()


def _curve(left: np.ndarray, mid: np.ndarray, right: np.ndarray, n: int = 9) -> np.ndarray:
    """Quadratic Bezier from ``left`` to ``right`` passing through ``mid`` at t = 0.5."""
    ctrl = 2 * mid - (left + right) / 2
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * left + 2 * t * (1 - t) * ctrl + t ** 2 * right


class _Painter:
    """Draws one face; holds the canvases and the geometry while doing it."""

    def __init__(self, ident: Identity, au: np.ndarray, scene: Scene, geo: FaceGeometry,
                 smirk: float) -> None:
        self.id, self.au, self.scene, self.g = ident, au, scene, geo
        self.smirk = smirk
        side = geo.side
        self.img = Image.new("RGB", (side, side))
        self.draw = ImageDraw.Draw(self.img)
        self.shade = Image.new("L", (side, side), 128)
        self.sdraw = ImageDraw.Draw(self.shade)
        self.px_per = geo.scale
        self.skin = ident.skin

    def a(self, name: str) -> float:
        return float(self.au[AU_INDEX[name]])

    def w(self, units: float) -> int:
        """A line width in pixels for a width in face units."""
        return max(1, int(round(units * self.px_per)))

    # ---------------------------------------------------------------- scene
    def background(self) -> None:
        rng = np.random.default_rng(self.scene.background_seed)
        side = self.g.side
        base = rng.integers(30, 230, 3)
        self.draw.rectangle([0, 0, side, side], fill=_rgb(base))
        for _ in range(self.scene.clutter):
            kind = rng.integers(0, 4)
            col = _rgb(np.clip(base + rng.normal(0, 70, 3), 0, 255))
            x, y = rng.random(2) * side
            w, h = (0.05 + 0.5 * rng.random(2)) * side
            if kind == 0:
                self.draw.rectangle([x - w / 2, y - h / 2, x + w / 2, y + h / 2], fill=col)
            elif kind == 1:
                self.draw.ellipse([x - w / 4, y - h / 4, x + w / 4, y + h / 4], fill=col)
            elif kind == 2:
                x2, y2 = rng.random(2) * side
                self.draw.line([x, y, x2, y2], fill=col, width=int(1 + 0.04 * side * rng.random()))
            else:
                pts = np.array([x, y]) + (rng.random((3, 2)) - 0.5) * side * 0.6
                self.draw.polygon(_flat(pts), fill=col)

    def body(self, rng: np.random.Generator) -> None:
        g, s = self.g, self.g.scale
        c = g.center
        cloth = _rgb(rng.integers(10, 240, 3))
        cos, sin = np.cos(g.roll_rad * 0.5), np.sin(g.roll_rad * 0.5)
        rot = np.array([[cos, -sin], [sin, cos]])
        neck = np.array([[-0.5, 0.6], [0.5, 0.6], [0.58, 1.75], [-0.58, 1.75]]) * s
        shoulders = np.array([[-0.55, 1.6], [0.55, 1.6], [2.6, 2.3], [2.8, 4.0], [-2.8, 4.0],
                              [-2.6, 2.3]]) * s
        self.draw.polygon(_flat(neck @ rot.T + c), fill=_rgb(self.skin * 0.72))
        self.draw.polygon(_flat(shoulders @ rot.T + c), fill=cloth)

    # ----------------------------------------------------------------- head
    def back_hair(self) -> None:
        if self.id.hair_style < 2:
            return
        outline, pts = self.g.silhouette(40, dilate=1.12)
        keep = pts[:, 1] < 0.4 * self.g.axes[1]
        top = outline[keep]
        drop = np.array([0.0, 1.1 * self.g.scale])
        low = top[[np.argmin(top[:, 0]), np.argmax(top[:, 0])]]
        poly = np.vstack([top[np.argsort(np.arctan2(top[:, 1] - self.g.center[1],
                                                     top[:, 0] - self.g.center[0]))]])
        poly = np.vstack([poly[poly[:, 1] <= self.g.center[1] + 0.3 * self.g.scale],
                          low[1] + drop, low[0] + drop])
        self.draw.polygon(_flat(poly), fill=_rgb(self.id.hair * 0.8))

    def head(self) -> np.ndarray:
        outline, _ = self.g.silhouette(56)
        self.draw.polygon(_flat(outline), fill=_rgb(self.skin))
        return outline

    def hair_cap(self) -> None:
        """Hair over the top of the head: the outline arc above the temples closed by the hairline."""
        ident, g = self.id, self.g
        if ident.hair_style == 0 and ident.hairline > -0.8:
            return  # bald
        hw = g.axes[0]
        x = np.linspace(-0.99, 0.99, 17) * hw
        front = g.px(np.column_stack([x, ident.hairline + (-0.25 - ident.hairline) * np.abs(x / hw) ** 4]),
                     0.02)
        outline, pts = g.silhouette(56, dilate=1.03)
        above = pts[:, 1] < -0.2
        # The outline is a closed curve and y varies along it like a sinusoid: the
        # points above the temples form one arc; rotate the array so it is contiguous.
        start = int(np.flatnonzero(above & ~np.roll(above, 1))[0])
        arc = np.roll(outline, -start, axis=0)[: int(above.sum())]
        if np.linalg.norm(arc[-1] - front[-1]) < np.linalg.norm(arc[-1] - front[0]):
            front = front[::-1]
        self.draw.polygon(_flat(np.vstack([arc, front])), fill=_rgb(ident.hair))

    # ------------------------------------------------------------- features
    def brows(self) -> None:
        ident, g = self.id, self.g
        e1, e2, e4 = self.a("AU1"), self.a("AU2"), self.a("AU4")
        t = np.linspace(0, 1, 9)
        color = _rgb(ident.hair * 0.7)
        for side in (-1, 1):
            inner = 0.10 - 0.05 * e4
            outer = ident.eye_x + ident.eye_w + 0.08
            x = side * (inner + (outer - inner) * t)
            arch = -0.06 * np.sin(np.pi * t ** 0.8)
            dy = (1 - t) ** 1.5 * (-0.11 * e1 + 0.05 * e4) + t ** 1.5 * (-0.10 * e2) + 0.05 * e4
            y = ident.brow_y + arch + dy
            thick = ident.brow_thick * (1.2 - 0.6 * t)
            upper = g.px(np.column_stack([x, y - thick / 2]), 0.02)
            lower = g.px(np.column_stack([x, y + thick / 2]), 0.02)
            self.draw.polygon(_flat(np.vstack([upper, lower[::-1]])), fill=color)

    def eyes(self) -> None:
        ident, g = self.id, self.g
        e5, e6, e43, e4 = self.a("AU5"), self.a("AU6"), self.a("AU43"), self.a("AU4")
        e7 = self.a("AU7")
        openness = 1.0 - 0.97 * e43
        h_up = ident.eye_h * (1 + 1.0 * e5) * (1 - 0.3 * e6) * (1 - 0.25 * e4) * (1 - 0.2 * e7) * openness
        # AU7 (lid tightener) raises and straightens the lower lid: a narrow eye from below
        h_low = ident.eye_h * 0.65 * (1 - 0.75 * e6) * (1 - 0.8 * e7) * openness
        t = np.linspace(-1, 1, 11)
        lash = _rgb(ident.hair * 0.4)
        sclera = _rgb(np.array([235.0, 232.0, 225.0]))
        for side in (-1, 1):
            cx, cy = side * ident.eye_x, ident.eye_y
            x = cx + side * t * ident.eye_w
            upper = np.column_stack([x, cy - h_up * (1 - t ** 2) - 0.008 * e6])
            lower = np.column_stack([x, cy + h_low * (1 - t ** 2) - 0.02 * e6 * (1 - t ** 2)])
            up_px, low_px = g.px(upper), g.px(lower)
            # Eye socket shadow (soft layer), deeper with a lowered brow.
            self.sdraw.polygon(_flat(g.ellipse(cx, cy - 0.05, ident.eye_w * 1.5, 0.16, 14)),
                               fill=int(100 - 15 * e4))
            self.draw.polygon(_flat(np.vstack([up_px, low_px[::-1]])), fill=sclera)
            r = 0.52 * ident.eye_w
            self.draw.polygon(_flat(g.ellipse(cx, cy, r, r, 14, 0.01)), fill=_rgb(ident.iris))
            self.draw.polygon(_flat(g.ellipse(cx, cy, 0.42 * r, 0.42 * r, 10, 0.012)), fill=(15, 12, 12))
            self.draw.polygon(_flat(g.ellipse(cx - 0.3 * r, cy - 0.3 * r, 0.18 * r, 0.18 * r, 6,
                                              0.013)), fill=(245, 245, 245))
            # Lids: skin above the upper and below the lower lid clip the iris.
            lid_top = np.column_stack([x, cy - max(h_up, r) - 0.05 - 0.02 * (1 - t ** 2)])
            lid_bot = np.column_stack([x, cy + r + 0.04 + 0.0 * t])
            self.draw.polygon(_flat(np.vstack([up_px, g.px(lid_top)[::-1]])), fill=_rgb(self.skin * 0.96))
            self.draw.polygon(_flat(np.vstack([low_px, g.px(lid_bot)[::-1]])), fill=_rgb(self.skin))
            self.draw.line(_flat(up_px), fill=lash, width=self.w(0.025))
            self.draw.line(_flat(low_px), fill=_rgb(self.skin * 0.7), width=self.w(0.01))
            # Upper lid crease.
            crease = np.column_stack([x[1:-1], (cy - h_up * (1 - t[1:-1] ** 2)) - 0.045 - 0.01 * e5])
            self.draw.line(_flat(g.px(crease)), fill=_rgb(self.skin * 0.78), width=self.w(0.012))
            if e7 > 0:  # tightened lower lid: a bulge line just below it
                bulge = np.column_stack([x[2:-2], cy + h_low * (1 - t[2:-2] ** 2) + 0.035])
                self.draw.line(_flat(g.px(bulge)), fill=_rgb(self.skin * (1 - 0.3 * e7)), width=self.w(0.014))
            if e6 > 0:  # cheek raiser: bunched lower lid and a raised, lit cheek
                self.sdraw.polygon(_flat(g.ellipse(cx + side * 0.03, cy + 0.15 - 0.04 * e6, 0.19, 0.06, 12)),
                                   fill=int(128 - 45 * e6))
                self.sdraw.polygon(_flat(g.ellipse(cx + side * 0.08, cy + 0.32 - 0.06 * e6, 0.22, 0.12, 12)),
                                   fill=int(128 + 12 * e6))

    def nose(self) -> None:
        ident, g = self.id, self.g
        e9 = self.a("AU9")
        tip_y, nw = ident.nose_len, ident.nose_w * (1 + 0.25 * e9)
        lift = -0.05 * e9
        light_side = 1 if self.scene.light[0] > 0 else -1
        # Bridge shadow on the side away from the light; shadow under the tip.
        bridge = np.array([[-light_side * 0.07, ident.eye_y + 0.05], [-light_side * 0.11, tip_y - 0.05],
                           [-light_side * 0.05, tip_y - 0.05], [-light_side * 0.035, ident.eye_y + 0.05]])
        self.sdraw.polygon(_flat(g.px(bridge, 0.05)), fill=95)
        self.sdraw.polygon(_flat(g.ellipse(0, tip_y + 0.09 + lift, nw * 0.9, 0.05, 12, 0.05)), fill=85)
        self.sdraw.polygon(_flat(g.ellipse(0, tip_y - 0.02, 0.05, 0.04, 8, 0.3)), fill=160)
        for side in (-1, 1):
            nx = side * nw * 0.5
            self.draw.polygon(_flat(g.ellipse(nx, tip_y + 0.045 + lift, 0.045 * (1 + 0.3 * e9), 0.022, 8,
                                              0.12)), fill=_rgb(self.skin * 0.35))
            ala = np.column_stack([side * nw * np.array([0.55, 0.95, 1.0, 0.8]),
                                   tip_y + lift + np.array([-0.1, -0.04, 0.03, 0.07])])
            self.draw.line(_flat(g.px(ala, 0.08)), fill=_rgb(self.skin * 0.65), width=self.w(0.018))

    def mouth(self) -> None:
        ident, g = self.id, self.g
        a = self.a
        e10, e12, e15, e17, e18, e20 = a("AU10"), a("AU12"), a("AU15"), a("AU17"), a("AU18"), a("AU20")
        e24, e25, e26, e28 = a("AU24"), a("AU25"), a("AU26"), a("AU28")
        e14, e23 = a("AU14"), a("AU23")
        cy = ident.mouth_y
        # AU23 (lip tightener) narrows the red of both lips
        thin = max(0.15, 1 - 0.55 * e24 - 0.8 * e28 + 0.6 * e18 - 0.35 * e20 - 0.6 * e23)
        tu, tl = ident.lip_thick * thin, ident.lip_thick * 1.25 * thin + 0.025 * e17
        gap = 0.0
        if e25 > 0:
            gap = 0.04 + 0.06 * e25 + 0.22 * e26
        line_up = cy - 0.07 * e10 - 0.015 * e17
        corners = []
        for side in (-1, 1):
            e12s = e12 * (1 + self.smirk * side)
            # AU14 (dimpler) tightens the corners inward; AU23 narrows the mouth a little
            cx = side * (ident.mouth_w * (1 - 0.38 * e18 - 0.08 * e14 - 0.06 * e23) + 0.06 * e12s + 0.10 * e20)
            cyy = cy - 0.10 * e12s + 0.09 * e15 + 0.02 * e20
            corners.append(np.array([cx, cyy]))
        left, right = corners
        mid_up = np.array([0.0, line_up])
        mid_low = np.array([0.0, line_up + gap])
        # A smile lifts the corners more than the middle: the lip line bends with them.
        upper_inner = _curve(left, mid_up, right)
        lower_inner = _curve(left, mid_low, right)
        upper_outer = _curve(left, mid_up - [0, tu], right)
        bow = np.exp(-((np.linspace(-1, 1, 9) ** 2) / 0.02)) * 0.018 * thin
        upper_outer[:, 1] += bow  # Cupid's bow dip
        lower_outer = _curve(left, mid_low + [0, tl], right)
        dz = 0.03 + 0.08 * e18
        lip = self.skin * np.array([0.80, 0.55, 0.55]) + np.array([35.0, 5.0, 12.0]) * ident.lip_tint
        lip = lip * (1 - 0.3 * e28) + self.skin * 0.3 * e28
        # Soft shading: mentolabial furrow below the lower lip, philtrum above.
        self.sdraw.polygon(_flat(g.px(_curve(left * [0.7, 1], mid_low + [0, tl + 0.05], right * [0.7, 1])
                                      + [0, 0.03], dz)), fill=int(110 - 30 * e17))
        if gap > 0:
            self.draw.polygon(_flat(g.px(np.vstack([upper_inner, lower_inner[::-1]]), dz)), fill=(45, 18, 20))
            teeth_h = min(gap * 0.6, 0.06)
            teeth = np.vstack([upper_inner[2:-2], (upper_inner[2:-2] + [0, teeth_h])[::-1]])
            self.draw.polygon(_flat(g.px(teeth, dz)), fill=(225, 220, 205))
        elif e10 > 0:  # raised upper lip bares the upper teeth above a closed mouth
            bare = _curve(left * [0.6, 1], mid_up + [0, 0.05 * e10], right * [0.6, 1])
            self.draw.polygon(_flat(g.px(np.vstack([upper_inner[2:-2], bare[::-1][2:-2]]), dz)),
                              fill=(215, 210, 195))
        self.draw.polygon(_flat(g.px(np.vstack([upper_outer, upper_inner[::-1]]), dz)), fill=_rgb(lip * 0.86))
        self.draw.polygon(_flat(g.px(np.vstack([lower_inner, lower_outer[::-1]]), dz)), fill=_rgb(lip))
        self.draw.line(_flat(g.px(upper_inner, dz)), fill=_rgb(lip * 0.45),
                       width=self.w(0.012 + 0.015 * e24 + 0.02 * e28))
        self.landmark_corners = g.px(np.vstack([left, right]), dz)
        self._mouth_marks(left, right, lower_outer)

    def _mouth_marks(self, left: np.ndarray, right: np.ndarray, lower_outer: np.ndarray) -> None:
        """AU-specific folds and bulges around the mouth (soft layer)."""
        g, a = self.g, self.a
        e10, e12, e15, e17, e20, e24 = a("AU10"), a("AU12"), a("AU15"), a("AU17"), a("AU20"), a("AU24")
        ident = self.id
        fold = 0.25 + 0.9 * e10 + 0.8 * e12 + 0.3 * e20
        for side, corner in ((-1, left), (1, right)):
            nl = np.array([[side * (ident.nose_w + 0.05), ident.nose_len - 0.02 - 0.04 * e10],
                           [side * (ident.nose_w + 0.12 + 0.05 * e12), ident.nose_len + 0.18],
                           corner + [side * 0.07, 0.02]])
            self.sdraw.line(_flat(g.px(nl)), fill=int(128 - 45 * min(fold, 1.3)), width=self.w(0.035))
            if e15 > 0:
                self.sdraw.line(_flat(g.px(np.array([corner + [0, 0.03], corner + [side * 0.04, 0.16]]))),
                                fill=int(128 - 60 * e15), width=self.w(0.035))
            if e20 > 0:
                self.sdraw.line(_flat(g.px(np.array([corner + [side * 0.05, -0.07], corner + [side * 0.06,
                                                                                      0.08]]))),
                                fill=int(128 - 60 * e20), width=self.w(0.025))
        e14 = a("AU14")
        if e14 > 0:  # dimpler: a dimple in the cheek just outside each lip corner
            for side, corner in ((-1, left), (1, right)):
                dimple = corner + [side * 0.07, -0.01]
                self.sdraw.polygon(_flat(g.ellipse(dimple[0], dimple[1], 0.025, 0.045, 8)),
                                   fill=int(128 - 70 * e14))
                self.draw.line(_flat(g.px(np.array([dimple + [0, -0.04], dimple + [side * 0.01, 0.04]]))),
                               fill=_rgb(self.skin * (1 - 0.35 * e14)), width=self.w(0.012))
        if e24 > 0:  # pressed lips bulge the skin above and below
            self.sdraw.polygon(_flat(g.ellipse(0, ident.mouth_y - 0.13, 0.2, 0.04, 10)), fill=int(128 + 45 * e24))
            self.sdraw.polygon(_flat(g.ellipse(0, ident.mouth_y + 0.17, 0.18, 0.04, 10)), fill=int(128 + 45 * e24))
        if e17 > 0:  # chin boss pushed up: wrinkled, lit chin
            chin_y = ident.mouth_y + 0.33
            self.sdraw.polygon(_flat(g.ellipse(0, chin_y, 0.17, 0.1, 12)), fill=int(128 + 35 * e17))
            for dx, dy in ((-0.07, -0.02), (0.06, 0.0), (0.0, 0.05), (-0.03, 0.08), (0.08, 0.07)):
                self.sdraw.polygon(_flat(g.ellipse(dx, chin_y + dy, 0.022, 0.016, 6)), fill=int(128 - 70 * e17))

    def wrinkles(self) -> None:
        """Forehead lines (AU1, AU2), glabella lines (AU4), nose wrinkles (AU9), crow's feet (AU6)."""
        ident, g = self.id, self.g
        e1, e2, e4, e6, e9 = self.a("AU1"), self.a("AU2"), self.a("AU4"), self.a("AU6"), self.a("AU9")
        width = self.w(0.014)

        def line(pts: np.ndarray, e: float) -> None:
            self.draw.line(_flat(g.px(pts)), fill=_rgb(self.skin * (1 - 0.4 * e)), width=width)

        base = ident.brow_y - 0.2
        t = np.linspace(-1, 1, 7)
        for k in range(3):
            y = base - 0.08 * k
            if e1 > 0:
                line(np.column_stack([0.2 * t, y + 0.03 * t ** 2]), e1)
            if e2 > 0:
                for side in (-1, 1):
                    line(np.column_stack([side * (0.42 + 0.14 * t), y - 0.02 + 0.02 * t * side]), e2)
        if e4 > 0:
            for side in (-1, 1):
                line(np.array([[side * 0.05, ident.brow_y + 0.03], [side * 0.07, ident.brow_y - 0.12]]), e4)
            self.sdraw.polygon(_flat(g.ellipse(0, ident.brow_y + 0.02, 0.1, 0.06, 10)), fill=int(128 - 40 * e4))
        if e9 > 0:
            for k in range(3):
                y = ident.eye_y + 0.02 + 0.045 * k
                self.draw.line(_flat(g.px(np.column_stack([0.09 * t, y - 0.01 * t ** 2]), 0.12 + 0.03 * k)),
                               fill=_rgb(self.skin * (1 - 0.4 * e9)), width=width)
        if e6 > 0:
            for side in (-1, 1):
                x0 = side * (ident.eye_x + ident.eye_w + 0.03)
                for dy in (-0.06, 0.0, 0.06):
                    line(np.array([[x0, ident.eye_y + dy * 0.5], [x0 + side * 0.12, ident.eye_y + dy * 1.6]]), e6)

    def glasses(self) -> None:
        ident, g = self.id, self.g
        col, width = _rgb(ident.glasses_color), self.w(0.03)
        for side in (-1, 1):
            rim = g.ellipse(side * ident.eye_x, ident.eye_y + 0.01, ident.eye_w + 0.08, 0.14, 20, 0.08)
            self.draw.line(_flat(np.vstack([rim, rim[:1]])), fill=col, width=width)
            arm = g.px(np.array([[side * (ident.eye_x + ident.eye_w + 0.08), ident.eye_y],
                                 [side * 0.98 * g.axes[0], ident.eye_y - 0.02]]), 0.05)
            self.draw.line(_flat(arm), fill=col, width=width)
        bridge = g.px(np.array([[-ident.eye_x + ident.eye_w + 0.06, ident.eye_y - 0.03],
                                [0, ident.eye_y - 0.06], [ident.eye_x - ident.eye_w - 0.06, ident.eye_y - 0.03]]),
                      0.12)
        self.draw.line(_flat(bridge), fill=col, width=width)

    # -------------------------------------------------------------- shading
    def apply_shading(self, outline: np.ndarray) -> None:
        side = self.g.side
        mask = Image.new("L", (side, side), 0)
        ImageDraw.Draw(mask).polygon(_flat(outline), fill=255)
        x0, y0 = np.clip(np.floor(outline.min(0)).astype(int), 0, side)
        x1, y1 = np.clip(np.ceil(outline.max(0)).astype(int) + 1, 0, side)
        if x1 <= x0 or y1 <= y0:
            return
        box = (int(x0), int(y0), int(x1), int(y1))
        soft = self.shade.filter(ImageFilter.BoxBlur(max(1, self.w(0.04))))
        factor = np.asarray(soft.crop(box), dtype=np.float32) / 128.0
        half = self.g.lambert(self.scene.light, self.scene.ambient, box)
        lam = np.asarray(Image.fromarray(half).resize((box[2] - box[0], box[3] - box[1]),
                                                            Image.BILINEAR))
        m = np.asarray(mask.crop(box), dtype=np.float32) / 255.0
        factor = factor * (1 - m + m * lam)
        region = np.asarray(self.img.crop(box), dtype=np.float32) * factor[..., None]
        self.img.paste(Image.fromarray(np.clip(region, 0, 255).astype(np.uint8)), box[:2])
        self.draw = ImageDraw.Draw(self.img)


def render(ident: Identity, au: np.ndarray, scene: Scene, size: int, *,
           occluder: "Occluder | None" = None, pose_jitter: np.ndarray | None = None,
           smirk: float = 0.0, rng: np.random.Generator | None = None) -> Rendered:
    """Render one face.

    ``au``: intensities in :data:`RENDER_AUS` order (0 absent, (0, 1] present); a
    shorter vector (ENC-2020's 23) leaves the AUs after it absent. ``hidden``
    has one entry per AU of ``au`` as given.
    ``pose_jitter``: 3 values in [-1, 1] for axes with no pose AU (default 0).
    ``smirk`` in [-1, 1] makes AU12 one-sided (contempt). ``rng`` drives the
    scene noise and the clothes colour (default: seeded from the scene).
    """
    given = np.asarray(au, dtype=np.float64)
    au = np.zeros(len(RENDER_AUS))
    au[:len(given)] = given
    rng = rng if rng is not None else np.random.default_rng(scene.background_seed + 1)
    pose = head_pose(au, np.zeros(3) if pose_jitter is None else pose_jitter)
    side = size * SUPERSAMPLE
    geo = FaceGeometry(ident, scene, pose, 0.22 * au[AU_INDEX["AU26"]], side)
    p = _Painter(ident, au, scene, geo, smirk)
    p.background()
    p.back_hair()
    p.body(rng)
    outline = p.head()
    p.nose()
    p.eyes()
    p.brows()
    p.mouth()
    p.wrinkles()
    p.hair_cap()
    p.apply_shading(outline)
    if ident.glasses:
        p.glasses()
    hidden = np.zeros(len(RENDER_AUS), dtype=bool)
    if occluder is not None:
        mask = occluder.draw(p.img, geo, ident)
        hidden = _hidden(mask, geo)
    hidden = hidden[:len(given)]
    lm = np.vstack([geo.px(np.array([[-ident.eye_x, ident.eye_y], [ident.eye_x, ident.eye_y]])),
                    geo.px(np.array([[0.0, ident.nose_len]]), 0.3), p.landmark_corners])
    lm = lm[[0, 1, 2, 3, 4]] if lm[0, 0] <= lm[1, 0] else lm[[1, 0, 2, 4, 3]]
    image = _camera(p.img.reduce(SUPERSAMPLE), scene, rng)
    return Rendered(image, (lm / SUPERSAMPLE).astype(np.float32), hidden)


def _hidden(mask: Image.Image, geo: FaceGeometry) -> np.ndarray:
    """Which AUs have more than half of their region points under the occluder mask."""
    m = np.asarray(mask)
    hidden = np.zeros(len(RENDER_AUS), dtype=bool)
    for au, pts in AU_REGIONS.items():
        xy = np.round(geo.px(pts)).astype(int)
        inside = (xy >= 0).all(1) & (xy < geo.side).all(1)
        covered = np.zeros(len(xy), dtype=bool)
        covered[inside] = m[xy[inside, 1], xy[inside, 0]] > 0
        hidden[AU_INDEX[au]] = covered.mean() > 0.5
    return hidden


def _camera(img: Image.Image, scene: Scene, rng: np.random.Generator) -> Image.Image:
    """Blur, illumination ramp, colour cast, brightness and sensor noise at output size."""
    if scene.blur > 0.05:
        img = img.filter(ImageFilter.GaussianBlur(scene.blur))
    arr = np.array(img, dtype=np.float32)
    h, w = arr.shape[:2]
    gx, gy = scene.gradient
    ramp = 1 + gx * (np.arange(w, dtype=np.float32) / w - 0.5)[None, :] \
        + gy * (np.arange(h, dtype=np.float32) / h - 0.5)[:, None]
    gain = np.asarray(scene.gain, dtype=np.float32) * scene.brightness
    arr *= ramp[..., None] * gain
    if scene.noise > 0:
        arr += rng.standard_normal(arr.shape, dtype=np.float32) * np.float32(scene.noise)
    np.clip(arr, 0, 255, out=arr)
    return Image.fromarray(arr.astype(np.uint8))
