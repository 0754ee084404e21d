"""The HTML leaderboard in a real headless browser (Debian's chromium package).

CI installs it with ``apt-get install -y chromium``; without it these tests skip.
``--dump-dom`` prints the DOM after the page's scripts ran, so it shows both
what the sortable-table script did and whatever an injected handler would have
done (an injected ``onerror`` would rewrite the title).
"""
from __future__ import annotations

import html
import re
import shutil
import subprocess

import pytest

from leaderboard.ledger import Entry
from leaderboard.ranking import Board, build_rows
from leaderboard.render import html_page, write

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(apt-get install -y chromium)")

EVIL = "<img src=x onerror=\"document.title='pwned';alert(1)\">"
TEAMS = [("quiet", 0.71), (EVIL, 0.74), ("<script>document.title='pwned'</script>", 0.52),
         ("a&b", 0.66)]


def dump_dom(url: str, tmp_path) -> str:
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", url],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def team_cells(dom: str) -> list[tuple[int, str]]:
    """(rank, team text) for each body row, in document order."""
    body = dom.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r'<tr><td data-sort="(\d+)">\d+</td><td class="text team"[^>]*>(.*?)</td>', body)
    return [(int(rank), html.unescape(text)) for rank, text in rows]


@pytest.fixture
def page(tmp_path):
    entries = [Entry(run_id=str(i), team=team, submission_sha256=str(i), truth_sha256="t",
                     truth_path="", submission_name=f"{team}.csv", start_time=i, previous_run="",
                     metrics={"final": final, "accuracy": 0.9, "f1": 2 * final - 0.9,
                              "au/AU1/f1": final})
               for i, (team, final) in enumerate(TEAMS)]
    rows = build_rows(entries, ["AU1"], "", "best")
    path = tmp_path / "board.html"
    write(path, html_page(Board("xss <i>demo</i>", "all", "best", ("AU1",), rows)))
    return path


def test_renders_in_rank_order_and_runs_no_injected_code(page, tmp_path):
    dom = dump_dom(page.as_uri(), tmp_path)
    assert 'data-sortable="ready"' in dom  # the page's own script ran under its CSP
    expected = [name for name, _ in sorted(TEAMS, key=lambda t: -t[1])]
    assert team_cells(dom) == list(enumerate(expected, start=1))
    title = re.search(r"<title>(.*?)</title>", dom, re.S).group(1)
    assert html.unescape(title) == "xss <i>demo</i>"  # not 'pwned'
    assert "pwned" not in title
    assert "<img src=\"x\"" not in dom and "<img src=x" not in dom  # no injected element
    assert "<script>document.title" not in dom


def test_table_sorts_in_the_browser(page, tmp_path):
    dom = dump_dom(page.as_uri() + "#sort=2", tmp_path)  # column 2 = final, ascending
    ranks = [rank for rank, _ in team_cells(dom)]
    assert ranks == [4, 3, 2, 1]
