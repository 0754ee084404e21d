"""Atomic file writes: a kill never leaves a half file that a later run trusts."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from harness.errors import UserError

# Failures of the machine, not of the code (a full disk, a read-only or forbidden
# path): wherever they surface, the path and the reason are reported.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                                errno.EFBIG, errno.ENAMETOOLONG})
# Writing one file, a directory or a file in the way is also the path's fault.
WRITE_ERRNOS = ENVIRONMENT_ERRNOS | {errno.EISDIR, errno.ENOTDIR, errno.EEXIST}

# The process umask, read once: mkstemp creates files 0600, and a written
# result (a leaderboard page, a submission) should get the mode open() gives.
UMASK = os.umask(0)
os.umask(UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    A failure of the file system itself (no space, read-only, no permission,
    a directory in the way) is a :class:`UserError` naming ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory; expected a file name to write")
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        os.chmod(tmp_path, 0o666 & ~UMASK)
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        raise UserError(f"{path}: cannot write: {exc.strerror}") from exc
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """``open`` for writing, atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def check_output_file(path: str | os.PathLike, what: str = "--out") -> Path:
    """Refuse, before any work, an output file that cannot be written.

    ``path`` must not be a directory, and its folder must exist, be a folder
    and be writable. Creates nothing.
    """
    path = Path(path)
    if path.is_dir():
        reason = "is a directory; expected a file name"
    elif not path.parent.exists():
        reason = f"folder {str(path.parent)!r} does not exist"
    else:
        reason = _unwritable(path.parent)
    if reason:
        raise UserError(f"{what} {str(path)!r}: {reason}")
    return path


def check_output_folder(path: str | os.PathLike, what: str) -> Path:
    """Refuse, before any work, a folder that cannot be created or written into.

    The folder may not exist yet; then its nearest existing ancestor must be
    a writable folder. Creates nothing.
    """
    path = Path(path)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    reason = _unwritable(probe)
    if reason:
        raise UserError(f"{what} {str(path)!r}: {reason}")
    return path


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be created in the existing path ``folder``, or ``None``."""
    if not folder.is_dir():
        return f"{str(folder)!r} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"folder {str(folder)!r} is not writable"
    return None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(folder: str | os.PathLike) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every file under ``folder``, sorted."""
    root = Path(folder)
    return {f.relative_to(root).as_posix(): sha256_file(f)
            for f in sorted(root.rglob("*")) if f.is_file()}


def damaged_files(folder: str | os.PathLike, recorded: dict[str, str]) -> list[str]:
    """The files of ``recorded`` (from :func:`tree_sha256`) that are missing
    under ``folder`` or whose sha256 differs, in ``recorded``'s order."""
    root = Path(folder)
    return [name for name, digest in recorded.items()
            if not (root / name).is_file() or sha256_file(root / name) != digest]
