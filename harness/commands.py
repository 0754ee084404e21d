"""Core subcommands: ``auh plugins``."""
from __future__ import annotations

import argparse

import harness


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "plugins", help="list every registered component",
        description="List every registered component: kind, name, the plugin that provides "
                    "it, and that plugin's distribution and version.")
    p.add_argument("--kind", choices=sorted(_kinds()), help="only this kind")
    p.set_defaults(func=cmd_plugins)


def _kinds() -> list[str]:
    from harness.registry import KINDS

    return list(KINDS)


def cmd_plugins(args: argparse.Namespace) -> int:
    table = harness.get_registry().table
    rows = [("KIND", "NAME", "PLUGIN", "DISTRIBUTION", "DESCRIPTION")]
    for kind in _kinds():
        if args.kind and kind != args.kind:
            continue
        for name in sorted(table[kind]):
            c = table[kind][name]
            dist = f"{c.provider.distribution} {c.provider.version}".strip() or "-"
            rows.append((kind, name, c.provider.plugin, dist, c.summary))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(r[:4], widths)) + "  " + r[4])
    return 0
