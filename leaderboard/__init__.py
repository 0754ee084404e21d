"""The organizer side: challenge definitions, scoring into an MLflow ledger, leaderboards.

* :mod:`leaderboard.challenge`: the challenge TOML (phases, caps, public split, tie-break).
* :mod:`leaderboard.scoring`: validate + score + bootstrap + record (``auh score``).
* :mod:`leaderboard.ledger`: the immutable MLflow ledger.
* :mod:`leaderboard.ranking`: one row per team, ties, significance of gaps.
* :mod:`leaderboard.render`: Markdown, CSV and a self-contained HTML page.
* :mod:`leaderboard.scoring_cli`: ``auh check``, ``auh score``, ``auh leaderboard``.
"""
