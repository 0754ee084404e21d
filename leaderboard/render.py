"""Leaderboards as Markdown, CSV or one self-contained HTML page.

Every user-supplied string (team names, file names, challenge and phase
names) is escaped for its format: HTML entities in HTML and Markdown (so a
Markdown renderer that passes HTML through still shows text), ``\\|`` in
Markdown tables, and a leading ``'`` before ``= + - @`` in CSV cells so a
spreadsheet never evaluates them. The HTML page loads nothing from the
network; its Content-Security-Policy allows only its own script (by hash),
so even a string that escaped escaping could not run.
"""
from __future__ import annotations

import base64
import hashlib
import html
import io
import os
import string
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from harness.fileio import atomic_open
from leaderboard.ranking import Board, Row

FORMATS = ("md", "csv", "html")


def render(board: Board, fmt: str) -> str:
    """The board as text in ``fmt`` (``md``, ``csv`` or ``html``)."""
    return {"md": markdown, "csv": csv_text, "html": html_page}[fmt](board)


def write(path: str | os.PathLike, text: str) -> None:
    """Write a rendered board atomically (a reader never sees half a page)."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


# ------------------------------------------------------------------ columns
def _num(x: float | None, digits: int = 4) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def _ci(row: Row) -> str:
    return "" if row.ci95 is None else f"[{row.ci95[0]:.4f}, {row.ci95[1]:.4f}]"


def _coverage(row: Row, aus: tuple[str, ...]) -> str:
    return f"{len(aus) if row.covered is None else row.covered}/{len(aus)}"


def _gap(row: Row) -> str:
    if row.gap is None:
        return ""
    verdict = "significant" if row.significant else "not significant"
    return f"+{row.gap.diff:.4f}, p={row.gap.p_a_better:.3f} ({verdict})"


# ----------------------------------------------------------------- markdown
def _md(text: str) -> str:
    return html.escape(" ".join(str(text).split()), quote=False).replace("|", "\\|")


def markdown(board: Board) -> str:
    head = ["rank", "team", "final", "accuracy", "F1", "coverage", "95% CI", "subs", "vs next",
            *board.aus, "file", "tie"]
    lines = [f"## {_md(board.title)}", "", _md(_subtitle(board)), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in board.rows:
        cells = [str(r.rank), _md(r.team), _num(r.final), _num(r.accuracy), _num(r.f1),
                 _coverage(r, board.aus), _ci(r),
                 str(r.submissions), _gap(r), *(_num(r.per_au_f1[au], 3) for au in board.aus),
                 _md(r.entry.submission_name), _md(r.tie)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [f"- {_md(n)}" for n in board.notes]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------- csv
def _cell(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_text(board: Board) -> str:
    """Machine-readable: full-precision numbers, one row per team."""
    records = []
    for r in board.rows:
        rec = {"rank": r.rank, "team": _cell(r.team), "final": r.final, "accuracy": r.accuracy,
               "f1": r.f1, "ci95_lo": r.ci95[0] if r.ci95 else None,
               "ci95_hi": r.ci95[1] if r.ci95 else None, "submissions": r.submissions,
               "p_better_than_next": r.gap.p_a_better if r.gap else None,
               "significant": r.significant, "tie": _cell(r.tie),
               "file": _cell(r.entry.submission_name), "submitted": r.submitted,
               "run_id": r.entry.run_id, "coverage": _coverage(r, board.aus)}
        rec.update({f"{au}_f1": r.per_au_f1[au] for au in board.aus})
        records.append(rec)
    columns = None if records else ["rank", "team", "final", "accuracy", "f1"]
    # RFC 4180's CRLF line end: Python's csv module then quotes a field holding a
    # bare CR, which under "\n" it leaves bare (a CSV reader would start a row there).
    return pd.DataFrame(records, columns=columns).to_csv(index=False, lineterminator="\r\n")


# --------------------------------------------------------------------- html
TEMPLATES = Path(__file__).resolve().parent / "templates"


def _template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def html_page(board: Board) -> str:
    esc: Callable[[object], str] = lambda s: html.escape(str(s), quote=True)
    numeric = ["final", "accuracy", "F1", *board.aus]
    head = ['<th data-type="num">rank</th>', '<th class="text">team</th>']
    head += [f'<th data-type="num">{esc(h)}</th>' for h in numeric[:3]]
    head += ['<th class="text">coverage</th>', '<th class="text">95% CI</th>',
             '<th data-type="num">subs</th>', '<th data-type="num">vs next (p)</th>']
    head += [f'<th data-type="num">{esc(au)}</th>' for au in board.aus]
    head += ['<th class="text">file</th>', '<th class="text">submitted</th>',
             '<th class="text">tie</th>']
    body = "\n".join(_html_row(r, board.aus, esc) for r in board.rows)
    script = _template("sortable.js")
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return string.Template(_template("leaderboard.html")).substitute(
        title=esc(board.title), subtitle=esc(_subtitle(board)), head="".join(head), body=body,
        notes="\n".join(f"<li>{esc(n)}</li>" for n in board.notes), heatmap=_heatmap(board),
        script=script, script_hash=f"sha256-{digest}")


def _html_row(r: Row, aus: tuple[str, ...], esc: Callable[[object], str]) -> str:
    def num(x: float | None, digits: int = 4) -> str:
        return f'<td data-sort="{"" if x is None else repr(float(x))}">{_num(x, digits)}</td>'

    p = r.gap.p_a_better if r.gap else None
    gap_cls = ' class="sig"' if r.significant else ""
    cells = [f'<td data-sort="{r.rank}">{r.rank}</td>',
             f'<td class="text team" title="{esc(r.team)}">{esc(r.team)}</td>',
             num(r.final), num(r.accuracy), num(r.f1),
             f'<td class="text">{esc(_coverage(r, aus))}</td>', f'<td class="text">{esc(_ci(r))}</td>',
             f"<td>{r.submissions}</td>",
             f'<td{gap_cls} data-sort="{"" if p is None else p}" title="{esc(_gap(r))}">'
             f'{"" if p is None else f"{p:.3f}"}</td>',
             *(num(r.per_au_f1[au], 3) for au in aus),
             f'<td class="text">{esc(r.entry.submission_name)}</td>',
             f'<td class="text">{esc(r.submitted)}</td>', f'<td class="text">{esc(r.tie)}</td>']
    return "<tr>" + "".join(cells) + "</tr>"


def _heatmap(board: Board) -> str:
    """Per-AU F1 of every team as an embedded PNG (teams top to bottom in rank order)."""
    if not board.rows:
        return "<p>No entries yet.</p>"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.array([[np.nan if r.per_au_f1[au] is None else r.per_au_f1[au] for au in board.aus]
                       for r in board.rows], dtype=float)
    labels = [_plain(f"{r.rank}. {r.team}") for r in board.rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(board.aus) + 3),
                                    max(2.0, 0.4 * len(board.rows) + 1.2)))
    try:
        im = ax.imshow(values, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(board.aus)), board.aus, rotation=90)
        ax.set_yticks(range(len(labels)), labels)
        if values.size <= 400:
            for (i, j), v in np.ndenumerate(values):
                if not np.isnan(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if v < 0.6 else "black")
        fig.colorbar(im, ax=ax, label="F1")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
    finally:
        plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="per-AU F1 heatmap" src="data:image/png;base64,{data}">'


def _plain(text: str, width: int = 32) -> str:
    """A label matplotlib draws literally: no mathtext, bounded length."""
    text = " ".join(text.split())
    text = text if len(text) <= width else text[:width - 1] + "\u2026"
    return text.replace("$", r"\$")


def _subtitle(board: Board) -> str:
    rows = {"public": "public rows", "private": "private rows", "all": "all rows"}[board.view]
    return (f"{len(board.rows)} team{'s' * (len(board.rows) != 1)}, scored on {rows}, "
            f"{board.pick} submission per team. vs next: gap in final to the next team and the "
            f"paired-bootstrap probability p that this team is better (significant from p = 0.95).")
