"""Errors that reach the user as one clear line.

Anything the user can get wrong (a file, a recipe field, a plugin, a
submission) raises :class:`UserError` with a message saying what is wrong,
where (file / row / column / recipe field), and what was expected. The CLI
prints that line and exits with status 2 (:class:`ChildRunFailed`: 1);
``--debug`` shows the traceback. What is not an error (a note, a warning, a
progress line) is printed by :func:`harness.progress.note`, the one way.
"""
from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""

    exit_code = 2


class RefusedError(UserError):
    """A valid request that policy refuses (for example a submission cap)."""


class ChildRunFailed(UserError):
    """An arm-seed's run failed in its child process (``auh compare --jobs``,
    ``auh ablate --seeds --jobs``): one line naming the arm-seed, its run folder and
    its log (where the child's own error is), exit status 1. The failure may be a
    bug as well as bad input; what it was is in the log, not in this process."""

    exit_code = 1


_LONG_TOKEN = 300  # characters of one echoed value kept before it is cut
_MAX_LINE = 2000


def one_line(message: str) -> str:
    """``message`` as one readable terminal line.

    Values echoed from outside (file, team and image names) may hold line
    ends, control characters, bytes that were not UTF-8 (surrogate escapes)
    or tens of thousands of characters: control characters are escaped, such
    bytes shown as ``\\xNN``, and any run of more than a few hundred
    characters without a space is cut in the middle.
    """
    try:
        raw = message.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no file name produced
        raw = message.encode("utf-8", "backslashreplace")
    text = raw.decode("utf-8", "backslashreplace")
    text = "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
                   for c in text)
    text = _cut_long_tokens(text)
    if len(text) > _MAX_LINE:
        text = f"{text[:_MAX_LINE - 60]}...[{len(text) - _MAX_LINE + 60:,} characters cut]"
    return text


def _cut_long_tokens(text: str) -> str:
    def cut(part: str) -> str:
        if len(part) <= _LONG_TOKEN:
            return part
        keep = _LONG_TOKEN // 2
        return f"{part[:keep]}...[{len(part) - 2 * keep:,} characters cut]...{part[-keep:]}"

    return " ".join(cut(part) for part in text.split(" "))
