"""Reading video files: frames decoded one at a time with PyAV (FFmpeg's Python binding).

A video is never held whole in memory: :func:`decode_frames` yields one
frame after another, so whoever consumes it decides how many frames exist at
once (``auh predict`` keeps one batch). Frames are numbered from 0 in
decoding (presentation) order, the first frame the file shows being frame 0;
``--every N`` keeps frames 0, N, 2N, ... Each frame's timestamp is its
presentation time in seconds as the container states it.

A file that cannot be opened, has no video stream, or stops decoding before
its end (a damaged or truncated file: FFmpeg raises, or fewer frames decode
than the container declares) raises :class:`VideoError`, which names the
frame where decoding stopped; the frames yielded before it stand.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from harness.errors import UserError

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm", ".wmv", ".mpg", ".mpeg"})
"""File name endings taken for videos when a folder is listed."""


class VideoError(UserError):
    """A video that could not be decoded (wholly or from ``frame`` on)."""

    def __init__(self, path: str | Path, frame: int, reason: str) -> None:
        self.path, self.frame, self.reason = str(path), frame, reason
        super().__init__(f"{str(path)!r}: {reason}")


def is_video(path: str | Path) -> bool:
    """Whether ``path`` is taken for a video (by its file name ending)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def decode_frames(path: str | Path, every: int = 1) -> Iterator[tuple[int, float, "Image.Image"]]:
    """``(frame number, timestamp in seconds, RGB image)`` for frames 0, every, 2*every, ...

    Raises :class:`VideoError` where decoding stops early (after yielding what decoded).
    """
    try:
        import av
    except ImportError:  # a dependency of au-harness, but an environment may lack it
        raise VideoError(path, 0, "cannot be decoded: PyAV is not installed (pip install av)") from None
    path = Path(path)
    if not path.is_file():
        raise VideoError(path, 0, "no such video file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(path, 0, f"cannot be opened as a video ({_why(exc)})") from None
    with container:
        if not container.streams.video:
            raise VideoError(path, 0, "has no video stream")
        stream = container.streams.video[0]
        declared = stream.frames  # 0 where the container does not say
        rate = float(stream.average_rate or 0) or None
        decoded = 0  # frames decoded so far: the number of the next one
        try:
            for frame in container.decode(stream):
                if decoded % every == 0:
                    time = frame.time if frame.time is not None else decoded / rate if rate else float("nan")
                    yield decoded, float(time), frame.to_image()
                decoded += 1
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise VideoError(path, decoded, f"decoding stopped at frame {decoded} ({_why(exc)})") from None
    if decoded == 0 or decoded < declared:
        of = f" of {declared}" if declared else ""
        raise VideoError(path, decoded, f"decoding stopped at frame {decoded}{of} (the file ends "
                                        f"early: truncated or damaged)")


def _why(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "strerror", None) or exc).split())
