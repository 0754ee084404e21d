"""Face coordinates to image pixels.

Face ("body") coordinates: x to image right, y down, z towards the camera;
the unit is the head's half-width. The head is an ellipsoid; features sit on
its surface (plus an offset for the nose). A point goes through

1. a jaw warp (the jaw is narrower than the cheeks; a jaw drop moves
   everything below the mouth down),
2. the head rotation (yaw about y, pitch about x, roll about z),
3. orthographic projection, scale and translation to pixels.
"""
from __future__ import annotations

import math

import numpy as np

from plugins.synth.face import Identity, Scene


def rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """``Rz(roll) @ Rx(pitch) @ Ry(yaw)``; see :func:`plugins.synth.face.head_pose` for signs."""
    y, p, r = (math.radians(a) for a in (yaw_deg, pitch_deg, roll_deg))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


class FaceGeometry:
    """Projects face coordinates of one rendered face to pixels of a ``side``-pixel canvas."""

    def __init__(self, ident: Identity, scene: Scene, pose_deg: tuple[float, float, float],
                 jaw_drop: float, side: int) -> None:
        self.ident = ident
        self.axes = np.array([ident.half_width, ident.half_height, 0.95 * ident.half_width])
        yaw, pitch, roll = pose_deg
        self.rot = rotation(yaw, pitch, roll + scene.roll_deg)
        self.roll_rad = math.radians(roll + scene.roll_deg)
        self.scale = scene.face_scale * side  # pixels per face unit
        self._to_px = self.rot[:2].T * self.scale  # rotate, drop z, scale: one matmul
        self.center = np.array(scene.center) * side
        self.jaw_drop = jaw_drop
        self._inv_jaw_span = 1.0 / (self.axes[1] - 0.15)
        self.side = side

    # --------------------------------------------------------------- points
    def surface(self, xy: np.ndarray, dz: float | np.ndarray = 0.0) -> np.ndarray:
        """Lift ``[N, 2]`` face points onto the ellipsoid's front surface (+ ``dz``)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        a, b, c = self.axes
        out = np.empty((len(xy), 3))
        out[:, :2] = xy
        # np.maximum/np.minimum: np.clip's Python wrapper dominates on arrays this small.
        out[:, 2] = c * np.sqrt(np.maximum(1 - (xy[:, 0] / a) ** 2 - (xy[:, 1] / b) ** 2, 0.0)) + dz
        return out

    def warp(self, p: np.ndarray) -> np.ndarray:
        """Jaw taper and jaw drop (see the module docstring)."""
        p = p.copy()
        y = p[:, 1]
        below = np.minimum(np.maximum((y - 0.15) * self._inv_jaw_span, 0.0), 1.0)
        p[:, 0] *= 1.0 - self.ident.jaw_taper * below * below
        if self.jaw_drop:
            ramp = np.minimum(np.maximum((y - self.ident.mouth_y - 0.05) / 0.3, 0.0), 1.0)
            p[:, 1] += self.jaw_drop * ramp * ramp * (3 - 2 * ramp)
        return p

    def project3(self, p: np.ndarray) -> np.ndarray:
        """``[N, 3]`` face points to ``[N, 2]`` pixels."""
        return self.warp(p) @ self._to_px + self.center

    def px(self, xy: np.ndarray, dz: float | np.ndarray = 0.0) -> np.ndarray:
        """``[N, 2]`` surface points (face units) to ``[N, 2]`` pixels."""
        return self.project3(self.surface(xy, dz))

    def depth(self, xy: np.ndarray) -> np.ndarray:
        """Camera-space z of surface points (> 0: facing the camera side of the head centre)."""
        return (self.warp(self.surface(xy)) @ self.rot.T)[:, 2]

    # ----------------------------------------------------------- silhouette
    def silhouette(self, n: int = 48, dilate: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Outline of the head as seen by the camera: ``(pixels[n, 2], face points[n, 3])``.

        Orthographic outline of an ellipsoid: the points whose normal is
        orthogonal to the view direction, a plane section through the centre.
        """
        axes = self.axes * dilate
        d = self.rot[2]  # view direction in face coordinates
        m = d / axes ** 2
        m /= np.linalg.norm(m)
        u = np.cross(m, [0.0, 0.0, 1.0] if abs(m[2]) < 0.9 else [1.0, 0.0, 0.0])
        u /= np.linalg.norm(u)
        v = np.cross(m, u)
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        dirs = np.cos(t)[:, None] * u + np.sin(t)[:, None] * v
        dirs /= np.sqrt(((dirs / axes) ** 2).sum(1))[:, None]
        return self.project3(dirs), dirs

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, n: int = 16,
                dz: float = 0.0) -> np.ndarray:
        """A surface ellipse in face units, projected to pixels."""
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        return self.px(np.column_stack([cx + rx * np.cos(t), cy + ry * np.sin(t)]), dz)

    def lambert(self, light: tuple[float, float], ambient: float,
                box: tuple[int, int, int, int]) -> np.ndarray:
        """Per-pixel diffuse shading of the (unwarped) head ellipsoid inside ``box``.

        Returns float32 factors in ``[ambient, 1]`` on every second pixel
        (``[ceil(h/2), ceil(w/2)]``); pixels off the ellipsoid get the rim value.
        """
        x0, y0, x1, y1 = box
        # Shading is smooth: evaluate on every second pixel and let the caller upsample.
        xs = (np.arange(x0, x1, 2, dtype=np.float32) + 1.0 - self.center[0]) / self.scale
        ys = (np.arange(y0, y1, 2, dtype=np.float32) + 1.0 - self.center[1]) / self.scale
        if self.jaw_drop:  # undo the jaw drop (approximately: rows, ignoring the head's roll)
            ramp = np.clip((ys - self.ident.mouth_y - 0.05 - self.jaw_drop / 2) / 0.3, 0, 1)
            ys = ys - self.jaw_drop * ramp * ramp * (3 - 2 * ramp)
        q = (self.rot @ np.diag(1.0 / self.axes ** 2) @ self.rot.T).astype(np.float32)
        X, Y = xs[None, :], ys[:, None]
        # q33 z^2 + 2 (q13 X + q23 Y) z + (q11 X^2 + 2 q12 X Y + q22 Y^2 - 1) = 0, front root.
        bh = q[0, 2] * X + q[1, 2] * Y
        cc = q[0, 0] * X * X + 2 * q[0, 1] * X * Y + q[1, 1] * Y * Y - 1
        z = (-bh + np.sqrt(np.maximum(bh * bh - q[2, 2] * cc, 0))) / q[2, 2]
        nx, ny, nz = q[0, 0] * X + q[0, 1] * Y + q[0, 2] * z, q[0, 1] * X + q[1, 1] * Y + q[1, 2] * z, \
            q[0, 2] * X + q[1, 2] * Y + q[2, 2] * z
        lx, ly = light
        norm = math.sqrt(lx * lx + ly * ly + 1)
        dot = (nx * lx + ny * ly + nz) / (np.sqrt(nx * nx + ny * ny + nz * nz) * norm)
        return ambient + (1 - ambient) * np.clip(dot, 0, 1)
