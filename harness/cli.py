"""The ``auh`` command.

It knows no subcommand: each lives in the module that owns its work, a
plugin whose ``auh_add_commands(subparsers)`` hook adds its parser and sets
``func(args) -> int`` (the core's own commands come the same way).
Every error the user can cause is a :class:`harness.errors.UserError`,
printed as one line with exit status 2 (``--debug`` shows the traceback).
"""
from __future__ import annotations

import argparse
import gc
import inspect
import os
import sys
from typing import Any, Callable, NoReturn

from harness.errors import UserError, one_line
from harness.fileio import ENVIRONMENT_ERRNOS

class Parser(argparse.ArgumentParser):
    """argparse with the CLI's error contract: one line on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        hint = f" (see `{self.prog} --help`)"
        print(f"auh: error: {one_line(message)}{hint}", file=sys.stderr)
        raise SystemExit(2)


def add_command(subparsers: Any, name: str, func: Callable[[argparse.Namespace], int],
                **kwargs: Any) -> argparse.ArgumentParser:
    """Add the subcommand ``name``, run by ``func(args) -> exit status``.

    Its one-line help is the first line of ``func``'s docstring, its
    description the rest; ``kwargs`` go to ``add_parser`` (an epilog, a formatter).
    """
    summary, _, rest = (inspect.getdoc(func) or "").partition("\n")
    parser = subparsers.add_parser(name, help=summary, description=" ".join(rest.split()) or summary,
                                   **kwargs)
    parser.set_defaults(func=func)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="auh",
        description="au-harness: train, ensemble, threshold and score facial action unit "
                    "detectors; run AU challenges with an MLflow ledger and a leaderboard.",
    )
    _common_options(parser, None)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       parser_class=_subparser_class())
    _add_commands(subparsers)
    return parser


def _version() -> str:
    from harness.registry import _own_version

    return _own_version()


def _common_options(parser: argparse.ArgumentParser, default: object) -> None:
    """``--plugin``, ``--debug`` and ``--quiet``, accepted before or after the subcommand."""
    parser.add_argument("--plugin", action="append", default=[] if default is None else default,
                        metavar="MODULE_OR_FILE",
                        help="load a plugin module (dotted name) or .py file; repeatable")
    parser.add_argument("--debug", action="store_true", default=False if default is None else default,
                        help="show tracebacks on errors")
    parser.add_argument("--quiet", action="store_true", default=False if default is None else default,
                        help="no progress bars")


def _subparser_class() -> type:
    class SubcommandParser(Parser):
        # The subcommand's copies default to SUPPRESS so they never overwrite
        # a value given before the subcommand.
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            _common_options(self, argparse.SUPPRESS)

    return SubcommandParser


def _add_commands(subparsers: argparse._SubParsersAction) -> None:
    # A broken third-party plugin must not make ``auh --help`` or the built-in
    # commands unusable: the built-ins alone add theirs, and the plugin's error
    # is raised again, as one line, when a command needs the registry.
    import harness
    from harness.registry import Registry

    try:
        registry = harness.get_registry()
    except UserError:
        registry = Registry()
        registry.load_builtins()
    registry.add_commands(subparsers)


def console() -> NoReturn:
    """The ``auh`` command (and ``python -m harness``): :func:`main` on ``sys.argv``, then exit.

    What the command leaves in memory is frozen out of the garbage collector first:
    MLflow, SQLAlchemy and pandas make hundreds of thousands of objects, and interpreter
    shutdown spent most of a second collecting what the process is about to drop
    (0.8 s of a 6 s ``auh score`` here). Exit handlers still run, files still close.
    """
    code = main()
    gc.freeze()
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 prints as \xNN
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        parser = build_parser()
    except UserError as exc:  # the built-in plugins themselves cannot load
        print(f"auh: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.quiet or os.environ.get("CI"):
        os.environ["AUH_QUIET"] = "1"
    try:
        if args.plugin:
            from harness import load_plugins

            load_plugins(args.plugin)
        return int(args.func(args) or 0)
    except UserError as exc:
        if args.debug:
            raise
        print(f"auh: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("auh: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `auh ... | head`: the reader left; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # a bug, not bad input: still one line unless --debug
        if args.debug:
            raise
        if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
            # The machine, not the code: a full disk, a read-only or forbidden path.
            where = f"{exc.filename}: " if exc.filename else ""
            print(f"auh: error: {one_line(where + (exc.strerror or str(exc)))}", file=sys.stderr)
            return 2
        print(f"auh: internal error: {type(exc).__name__}: {one_line(str(exc))} "
              f"(a bug in au-harness or a plugin; rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
