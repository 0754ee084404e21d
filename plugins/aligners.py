"""Face aligners: ``mtcnn`` (the paper's), ``oracle``, ``center`` and ``none``.

Each satisfies :class:`harness.protocols.Aligner`; its ``cache_key`` (name,
parameters and implementation version) keys the on-disk crop cache
(:mod:`harness.facecache`).

Coordinates are pixel indices (the centre of the top-left pixel is
``(0, 0)``), the convention of the 5-point template below (ArcFace's,
used with OpenCV's ``warpAffine``). Landmark order: left eye, right eye,
nose, left mouth corner, right mouth corner, "left" as seen in the image.

``oracle`` declares the ``landmarks`` capability: ``align(images, landmarks=[...])``
takes the dataset's ground-truth landmarks; the crop cache passes them through.
``mtcnn`` declares ``all_faces``: ``align_all(images)`` gives every face it
detects in each image, the one ``align`` selects first (``auh predict``
reports them all).

Each face also carries where it is in the source image (``box``,
``source_landmarks``) and, from a detector, its ``score``; a fallback crop
(``found=False``) has none of them.
"""
from __future__ import annotations

import importlib.metadata as md
from typing import Sequence

import numpy as np
from PIL import Image

from harness import hookimpl
from harness.data import AlignedFace
from harness.errors import UserError

# The 112 x 112 five-point template of ArcFace / InsightFace.
TEMPLATE_112 = np.array(
    [[38.2946, 51.6963],   # left eye
     [73.5318, 51.5014],   # right eye
     [56.0252, 71.7366],   # nose
     [41.5493, 92.3655],   # left mouth corner
     [70.7299, 92.2041]],  # right mouth corner
    dtype=np.float64,
)
# Bump when a change in this module changes the crops: old caches are then ignored.
VERSION = 1

# Pixel-index -> continuous coordinates (PIL samples pixel i at i + 0.5).
_HALF = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])


def template(size: int) -> np.ndarray:
    """The five template points for a ``size`` x ``size`` crop, ``[5, 2]`` float64."""
    return TEMPLATE_112 * (size / 112.0)


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """Least-squares similarity transform (Umeyama) taking ``src`` points to
    ``dst`` points, as a ``[3, 3]`` matrix; ``None`` for degenerate points."""
    from skimage.transform import SimilarityTransform  # lazy: scipy is slow to import

    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        return None
    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        tf = SimilarityTransform.from_estimate(src, dst)
        ok = bool(tf)
    else:  # pragma: no cover - older scikit-image
        tf = SimilarityTransform()
        ok = tf.estimate(src, dst)
    if not ok or not np.isfinite(tf.params).all() or abs(np.linalg.det(tf.params[:2, :2])) < 1e-12:
        return None
    return tf.params


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a ``[3, 3]`` affine ``matrix`` to ``[K, 2]`` points."""
    return np.asarray(points, dtype=np.float64) @ matrix[:2, :2].T + matrix[:2, 2]


def footprint(matrix: np.ndarray, size: int) -> np.ndarray:
    """The source-image box ``[x0, y0, x1, y1]`` around what a ``size`` crop made
    by ``matrix`` (image -> crop, pixel indices) shows: its pixels' outer edges."""
    edge = size - 0.5
    corners = np.array([[-0.5, -0.5], [edge, -0.5], [-0.5, edge], [edge, edge]])
    back = transform_points(np.linalg.inv(matrix), corners)
    return np.concatenate([back.min(0), back.max(0)]).astype(np.float32)


def _located(crop: Image.Image, matrix: np.ndarray, size: int, crop_points: np.ndarray,
             source_points: np.ndarray | None = None) -> AlignedFace:
    """A found face whose place in the source image follows from ``matrix``."""
    if source_points is None:
        source_points = transform_points(np.linalg.inv(matrix), crop_points)
    return AlignedFace(crop, np.asarray(crop_points, dtype=np.float32), True, box=footprint(matrix, size),
                       source_landmarks=np.asarray(source_points, dtype=np.float32))


def warp(image: Image.Image, matrix: np.ndarray, size: int) -> Image.Image:
    """Warp ``image`` by ``matrix`` (pixel-index coordinates, image -> crop)
    into a ``size`` x ``size`` crop, bilinear.

    PIL's affine warp does not low-pass filter, so a strong shrink would
    alias: the image is first box-reduced by the integer factor that keeps
    the remaining shrink under 2x.
    """
    cont = _HALF @ matrix @ np.linalg.inv(_HALF)
    scale = float(np.sqrt(abs(np.linalg.det(cont[:2, :2]))))
    factor = int(1.0 / scale) if scale < 0.5 else 1
    factor = min(factor, image.width, image.height)
    if factor > 1:
        image = image.reduce(factor)
        cont = cont @ np.diag([factor, factor, 1.0])
    inverse = np.linalg.inv(cont)  # PIL wants crop -> image
    return image.transform((size, size), Image.Transform.AFFINE, data=tuple(inverse[:2].ravel()),
                           resample=Image.Resampling.BILINEAR)


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an integer >= 16, got {size!r}")
    return size


class CenterAligner:
    """Center crop (a square, ``fraction`` of the shorter side) resized to ``size``; no detection."""

    def __init__(self, size: int = 112, fraction: float = 1.0) -> None:
        self.size = _check_size(size)
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
        self.fraction = float(fraction)
        self.cache_key = f"center/v{VERSION}:size={self.size},fraction={self.fraction:g}"

    def align(self, images: Sequence[Image.Image]) -> list[AlignedFace]:
        """Crops flagged ``found=True``: nothing is detected, so nothing is missed."""
        return [self.crop(img, found=True) for img in images]

    def crop(self, image: Image.Image, found: bool) -> AlignedFace:
        """The center crop of one image, with the template as its landmarks
        (where a centred face would have them). Only a found face says where
        it is in the image: a fallback crop shows no face it could locate."""
        image = _rgb(image)
        side = self.fraction * min(image.size)
        x0, y0 = (image.width - side) / 2, (image.height - side) / 2
        crop = image.resize((self.size, self.size), Image.Resampling.BILINEAR,
                            box=(x0, y0, x0 + side, y0 + side))
        points = template(self.size)
        if not found:
            return AlignedFace(crop, points.astype(np.float32), False)
        return _located(crop, _scaling(self.size / side, self.size / side, x0, y0), self.size, points)


def _scaling(sx: float, sy: float, x0: float, y0: float) -> np.ndarray:
    """Image -> crop matrix (pixel indices) of a resize of the region starting at
    continuous ``(x0, y0)`` by ``(sx, sy)``."""
    scale = np.array([[sx, 0.0, -x0 * sx], [0.0, sy, -y0 * sy], [0.0, 0.0, 1.0]])
    return np.linalg.inv(_HALF) @ scale @ _HALF


class ResizeAligner:
    """Resize the whole image to ``size`` x ``size`` (aspect not kept); no detection."""

    def __init__(self, size: int = 112) -> None:
        self.size = _check_size(size)
        self.cache_key = f"none/v{VERSION}:size={self.size}"

    def align(self, images: Sequence[Image.Image]) -> list[AlignedFace]:
        """Resized images flagged ``found=True``, with the template as landmarks."""
        points = template(self.size)
        return [_located(_rgb(img).resize((self.size, self.size), Image.Resampling.BILINEAR),
                         _scaling(self.size / img.width, self.size / img.height, 0.0, 0.0),
                         self.size, points) for img in images]


class _TemplateAligner:
    """Shared by the landmark-based aligners: 5 points -> template crop."""

    def __init__(self, size: int) -> None:
        self.size = _check_size(size)
        self.template = template(self.size)
        self.fallback = CenterAligner(self.size)

    def to_template(self, image: Image.Image, points: np.ndarray | None) -> AlignedFace:
        """Warp ``image`` so that ``points`` land on the template; a center
        crop flagged ``found=False`` where there are no usable points."""
        matrix = None if points is None else similarity_matrix(points, self.template)
        if matrix is None:
            return self.fallback.crop(image, found=False)
        crop = warp(_rgb(image), matrix, self.size)
        return _located(crop, matrix, self.size, transform_points(matrix, points), points)


class OracleAligner(_TemplateAligner):
    """Align with the dataset's ground-truth 5-point landmarks (``align(images, landmarks=...)``)."""

    capabilities = frozenset({"landmarks"})

    def __init__(self, size: int = 112) -> None:
        super().__init__(size)
        self.cache_key = f"oracle/v{VERSION}:size={self.size}"

    def align(self, images: Sequence[Image.Image],
              landmarks: Sequence[np.ndarray] | np.ndarray | None = None) -> list[AlignedFace]:
        """``landmarks[i]`` (``[5, 2]``, image pixel coordinates) belongs to
        ``images[i]``; an entry that is ``None`` or has NaNs gives a center
        crop with ``found=False``."""
        if landmarks is None:
            raise UserError("aligner 'oracle' needs ground-truth landmarks, and this dataset "
                             "has none; use aligner 'mtcnn' or 'center'")
        if len(landmarks) != len(images):
            raise ValueError(f"aligner 'oracle': {len(images)} images but {len(landmarks)} landmarks")
        return [self.to_template(img, None if lm is None else np.asarray(lm, dtype=np.float64).reshape(5, 2))
                for img, lm in zip(images, landmarks)]


class MTCNNAligner(_TemplateAligner):
    """MTCNN (facenet-pytorch) face and 5 landmarks, similarity-aligned to the template."""

    capabilities = frozenset({"all_faces"})

    def __init__(self, size: int = 112, select: str = "prob", min_face_size: int = 20,
                 thresholds: Sequence[float] = (0.6, 0.7, 0.7), factor: float = 0.709,
                 batch_size: int = 32, device: str = "cpu") -> None:
        super().__init__(size)
        if select not in ("prob", "largest"):
            raise ValueError(f"select must be 'prob' (most probable face) or 'largest', got {select!r}")
        thresholds = tuple(float(t) for t in thresholds)
        if len(thresholds) != 3 or not all(0.0 < t < 1.0 for t in thresholds):
            raise ValueError(f"thresholds must be 3 numbers in (0, 1) (P-, R-, O-net), got {thresholds!r}")
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor (image pyramid scale step) must be in (0, 1), got {factor!r}")
        if batch_size < 1 or min_face_size < 1:
            raise ValueError("batch_size and min_face_size must be >= 1")
        import torch
        from facenet_pytorch import MTCNN

        self.select = select
        self.batch_size = int(batch_size)
        self.detector = MTCNN(min_face_size=min_face_size, thresholds=list(thresholds), factor=factor,
                              select_largest=False, keep_all=True, device=torch.device(device)).eval()
        self.cache_key = (f"mtcnn/v{VERSION}:size={self.size},select={select},"
                          f"min_face_size={min_face_size},thresholds={'/'.join(f'{t:g}' for t in thresholds)},"
                          f"factor={factor:g};facenet-pytorch={md.version('facenet-pytorch')}")

    def align(self, images: Sequence[Image.Image]) -> list[AlignedFace]:
        """Aligned crops; images without a face get a center crop and ``found=False``."""
        return [self._face(img, found, 0) for img, found in zip(images, self._detect_all(images))]

    def align_all(self, images: Sequence[Image.Image]) -> list[list[AlignedFace]]:
        """Every detected face of each image, in the order of ``select`` (the face
        ``align`` returns first); an image without a face gets its fallback crop."""
        faces = []
        for img, found in zip(images, self._detect_all(images)):
            n = 0 if found is None else len(found[0])
            faces.append([self._face(img, found, k) for k in range(n)] or [self._face(img, None, 0)])
        return faces

    def detect(self, images: Sequence[Image.Image]) -> list[np.ndarray | None]:
        """The selected face's 5 landmarks per image (``[5, 2]`` float64), or ``None``."""
        return [None if found is None else found[2][0] for found in self._detect_all(images)]

    def _face(self, image: Image.Image, found: tuple | None, k: int) -> AlignedFace:
        if found is None:
            return self.to_template(image, None)
        boxes, probs, points = found
        face = self.to_template(image, points[k])
        if face.found:  # the detector's box and confidence, not the crop's footprint
            face.box, face.score = boxes[k].astype(np.float32), float(probs[k])
        return face

    def _detect_all(self, images: Sequence[Image.Image]) -> list[tuple | None]:
        """Per image ``(boxes [K,4], probs [K], points [K,5,2])``, float64, ordered
        by ``select`` (best first), or ``None`` where no face was found.

        MTCNN batches only images of one size, so images are grouped by size
        and each group is run in chunks of ``batch_size``.
        """
        images = [_rgb(img) for img in images]
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(images):
            by_size.setdefault(img.size, []).append(i)
        found: list[tuple | None] = [None] * len(images)
        for idx in by_size.values():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start:start + self.batch_size]
                boxes, probs, pts = self.detector.detect([images[i] for i in chunk], landmarks=True)
                for j, i in enumerate(chunk):
                    found[i] = self._order(boxes[j], probs[j], pts[j])
        return found

    def _order(self, boxes, probs, points) -> tuple | None:
        # Under numpy 2 facenet-pytorch returns object arrays (None where no face).
        if boxes is None:
            return None
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        probs = np.asarray(probs, dtype=np.float64).reshape(-1)
        points = np.asarray(points, dtype=np.float64).reshape(-1, 5, 2)
        key = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) if self.select == "largest" else probs
        order = np.argsort(-key, kind="stable")  # ties: the detector's order, as argmax took
        return boxes[order], probs[order], points[order]


@hookimpl
def auh_aligners():
    return {"mtcnn": MTCNNAligner, "oracle": OracleAligner, "center": CenterAligner,
            "none": ResizeAligner}
