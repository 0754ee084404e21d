"""Atomic file writes: a kill never leaves a half file that a later run trusts."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Sequence

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
    tmp_path = _temporary_beside(path)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        raise UserError(f"{path}: cannot write: {exc.strerror}") from exc
    finally:
        tmp_path.unlink(missing_ok=True)


def _temporary_beside(path: Path) -> Path:
    """An empty temporary file in ``path``'s folder (created if needed).

    Creating it is the file system's verdict on the folder: any refusal (a
    full disk, no permission even for root, a pseudo file system such as
    ``/proc`` that holds no new files) is the path's fault, named as such.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise UserError(f"{path}: cannot write: {exc.strerror or exc}") from None
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~UMASK)
    return tmp_path


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


def check_not_inputs(outputs: dict[str, str | os.PathLike],
                     inputs: dict[str, str | os.PathLike | None]) -> None:
    """Refuse, before any work, an output that would replace an input or another output.

    ``outputs`` and ``inputs`` map what the user named (``--out``,
    ``--truth``) to the path. An output is refused when it is the same file
    as an input (through any link) or lies inside an input folder (a tool's
    output folder, whose every file is read), and two outputs may not be
    the same file. Inputs given as ``None`` are not set.
    """
    seen: dict[Path, str] = {}
    for what, out in outputs.items():
        target = Path(out).resolve()
        if target in seen:
            raise UserError(f"{what} and {seen[target]} name the same file ({out})")
        seen[target] = what
        for source, given in inputs.items():
            if given is None:
                continue
            inside = Path(given).is_dir() and Path(given).resolve() in target.parents
            if inside or _same_file(Path(out), Path(given)):
                where = "is inside" if inside else "is"
                raise UserError(f"{what} {str(out)!r} {where} the input {source} ({str(given)!r}); "
                                f"expected a new file name (nothing is written over an input)")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return a.resolve() == b.resolve()


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
    """Why files cannot be created in the existing path ``folder``, or ``None``.

    Permission bits do not answer it (root passes every ``os.access`` test,
    and ``/proc`` or a read-only mount refuses new files whatever the bits
    say): a file is created there and removed at once.
    """
    if not folder.is_dir():
        return f"{str(folder)!r} is a file, not a folder"
    try:
        fd, probe = tempfile.mkstemp(prefix=".auh-probe-", dir=folder)
    except OSError as exc:
        return f"folder {str(folder)!r} is not writable ({exc.strerror or exc})"
    os.close(fd)
    os.unlink(probe)
    return None


def check_input_file(path: str | os.PathLike, what: str = "") -> Path:
    """Refuse, before opening it, an input that is not a regular file.

    A directory, a named pipe (opening it would wait for a writer for ever),
    a socket or a device is refused with one line naming ``what`` (the
    option or field, e.g. ``--map``) and the path; so is a missing file.
    ``stat`` follows symbolic links and never blocks.
    """
    path = Path(path)
    where = f"{what} {str(path)!r}" if what else str(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UserError(f"{where}: no such file") from None
    except OSError as exc:
        raise UserError(f"{where}: cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        kind = ("a directory" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode)
                or stat.S_ISBLK(mode) else "not a regular file")
        raise UserError(f"{where}: is {kind}; expected a regular file")
    return path


def read_npz(path: str | os.PathLike, keys: Sequence[str], what: str) -> dict[str, Any]:
    """The arrays ``keys`` of an ``.npz`` file this project wrote; a damaged file (cut
    short, not a zip, an array missing) is one line naming ``what`` and the file."""
    import zipfile

    import numpy as np

    try:
        with np.load(check_input_file(path), allow_pickle=False) as z:
            return {key: z[key] for key in keys}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise UserError(f"{what}: {path} is damaged ({type(exc).__name__}: {exc}); expected the "
                        f"complete file: delete its run folder and run it again") from None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(check_input_file(path), "rb") as fh:
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
