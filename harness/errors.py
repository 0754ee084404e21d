"""Errors that reach the user as one clear line.

Anything the user can get wrong (a file, a recipe field, a plugin, a
submission) raises :class:`UserError` with a message saying what is wrong,
where (file / row / column / recipe field), and what was expected. The CLI
prints that line and exits with status 2; ``--debug`` shows the traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""

    exit_code = 2


class RefusedError(UserError):
    """A valid request that policy refuses (for example a submission cap)."""
