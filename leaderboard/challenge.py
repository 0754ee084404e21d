"""Challenge definitions: a TOML file an organizer writes once.

::

    name = "enc2020-demo"            # experiment names in the ledger: "<name>/<phase>"
    benchmark = "enc2020"            # the benchmark (auh plugins --kind benchmark); default enc2020
                                     # ("schema" is accepted as its older name)
    tie_break = ["final", "f1", "accuracy", "time"]   # the default order
    split_salt = ""                  # optional secret: hides the public/private split

    [phases.test]
    truth = "truth.txt"              # relative to this file (a folder for per-video truth)
    cap = 5                          # distinct submissions per team (omit: no cap)
    public_fraction = 0.5            # rows on the public board; the rest are private
    start = 2026-01-15               # optional dates (TOML dates or date-times, UTC),
    end = 2026-03-31T23:59:00        # used by `auh export` for the platforms' phases

Rows are public or private by a hash of ``salt/phase/image name`` (for a
frame-level truth, the video's name: a video is public or private whole): the
split is fixed by the file, independent of row order, and the same in every run.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.benchmark import DEFAULT_BENCHMARK, Benchmark
from harness.errors import UserError
from harness.layouts import Videos
from harness.metrics import Metric, get_metric
from harness.schema import AUSchema

TIE_KEYS = ("final", "f1", "accuracy", "time")
DEFAULT_TIE_BREAK = TIE_KEYS
DEFAULT_CHALLENGE = "scoring"  # ledger name for `auh score` without --challenge (default benchmark)
DEFAULT_PHASE = "test"


@dataclass(frozen=True)
class Phase:
    """One phase: its truth file, submission cap and public share of the rows."""

    name: str
    truth: Path | None
    cap: int | None = None
    public_fraction: float = 1.0
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    videos: Videos | None = None  # a frame-level truth packaged as one table: its videos

    @property
    def has_private(self) -> bool:
        return self.public_fraction < 1.0


@dataclass(frozen=True)
class Challenge:
    name: str
    benchmark: Benchmark
    phases: dict[str, Phase]
    tie_break: tuple[str, ...] = DEFAULT_TIE_BREAK
    split_salt: str = ""
    metric: Metric | None = None  # the benchmark's metric, resolved (None: look it up by name)

    def __post_init__(self) -> None:
        if self.metric is None:  # from the plugin registry: the packaged scorer passes its metric
            object.__setattr__(self, "metric", get_metric(self.benchmark.metric))

    @property
    def schema(self) -> AUSchema:
        """The benchmark's AUs and label coding."""
        return self.benchmark.schema

    def phase(self, name: str | None) -> Phase:
        """Phase ``name``; ``None`` means the first phase defined."""
        if name is None:
            return next(iter(self.phases.values()))
        if name not in self.phases:
            raise UserError(f"challenge {self.name!r} has no phase {name!r}; "
                            f"phases: {', '.join(self.phases)}")
        return self.phases[name]

    def experiment(self, phase: Phase) -> str:
        """The ledger experiment of ``phase``."""
        return f"{self.name}/{phase.name}"

    def split_id(self, phase: Phase) -> str:
        """Which public/private split ``phase`` has now: ``"all"`` without private rows,
        else a digest of its public fraction and the salt (the salt stays secret)."""
        if not phase.has_private:
            return "all"
        key = f"{phase.public_fraction!r}/{self.split_salt}/{phase.name}".encode()
        return hashlib.sha256(key).hexdigest()[:16]

    def public_mask(self, phase: Phase, names: Sequence[str]) -> np.ndarray:
        """Boolean ``[N]``: which rows are on the public board."""
        return public_mask(names, phase.public_fraction, f"{self.split_salt}/{phase.name}")


def adhoc(phase: str | None, truth: Path | None, benchmark: Benchmark) -> Challenge:
    """The implicit challenge of ``auh score --truth T`` without ``--challenge``: one
    ledger experiment per benchmark (runs of two benchmarks never share a board)."""
    name = phase or DEFAULT_PHASE
    _check_phase_name(name, "--phase")
    challenge = DEFAULT_CHALLENGE if benchmark.name == DEFAULT_BENCHMARK else \
        f"{DEFAULT_CHALLENGE}-{benchmark.name}"
    return Challenge(challenge, benchmark, {name: Phase(name, truth)})


def public_mask(names: Sequence[str], fraction: float, salt: str = "") -> np.ndarray:
    """Rows whose salted name hash falls below ``fraction`` (deterministic)."""
    if fraction >= 1.0:
        return np.ones(len(names), dtype=bool)
    prefix = salt.encode() + b"/"
    # First 8 bytes of blake2b as a uniform number in [0, 1).
    hashes = np.fromiter(
        (int.from_bytes(hashlib.blake2b(prefix + n.encode(), digest_size=8).digest(), "big")
         for n in names), dtype=np.uint64, count=len(names))
    return hashes / np.float64(2 ** 64) < fraction


# ------------------------------------------------------------------ loading
def load_challenge(path: str | Path) -> Challenge:
    """Read and validate a challenge TOML; truth paths resolve against its folder."""
    # Imported here: the packaged scorer (`auh export`) uses this module without TOML,
    # on Pythons older than tomllib.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such challenge file")
    if not path.is_file():
        raise UserError(f"{path}: not a file; expected a challenge TOML file")
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    where = str(path)
    _known(data, {"name", "benchmark", "schema", "phases", "tie_break", "split_salt"}, where)
    name = _field(data, "name", str, where)
    if not name.strip() or "/" in name or not name.isprintable() or len(name) > 200:
        raise UserError(f"{where}: name: expected a printable name of at most 200 characters "
                        f"without '/', got {name!r}")
    benchmark = _benchmark(data, where)
    tie_break = tuple(_field(data, "tie_break", list, where, default=list(DEFAULT_TIE_BREAK)))
    for key in tie_break:
        if key not in TIE_KEYS:
            raise UserError(f"{where}: tie_break: unknown key {key!r}; expected some of "
                            f"{', '.join(TIE_KEYS)}")
    phases_data = data.get("phases")
    if not isinstance(phases_data, dict) or not phases_data:
        raise UserError(f"{where}: phases: expected at least one [phases.<name>] table")
    phases = {pname: _phase(pname, body, path.parent, f"{where}: phases.{pname}", benchmark)
              for pname, body in phases_data.items()}
    salt = _field(data, "split_salt", str, where, default="")
    return Challenge(name, benchmark, phases, tie_break, salt)


def _benchmark(data: dict, where: str) -> Benchmark:
    """``benchmark = "NAME"`` (or its older name ``schema``; both must agree)."""
    from harness.benchmark import get_benchmark

    names = {key: _field(data, key, str, where) for key in ("benchmark", "schema") if key in data}
    if len(set(names.values())) > 1:
        raise UserError(f"{where}: benchmark {names['benchmark']!r} and schema {names['schema']!r} "
                        f"disagree; expected one benchmark (schema is its older name)")
    key, name = next(iter(names.items()), ("benchmark", DEFAULT_BENCHMARK))
    import harness
    from harness.registry import unknown_message

    known = harness.get_registry().available("benchmark")
    if name not in known:
        what = "AU schema" if key == "schema" else "benchmark"
        raise UserError(f"{where}: {key}: {unknown_message(what, name, known)}")
    return get_benchmark(name)


def _phase(name: str, body: Any, root: Path, where: str, benchmark: Benchmark) -> Phase:
    _check_phase_name(name, where)
    if not isinstance(body, dict):
        raise UserError(f"{where}: expected a table, got {type(body).__name__} {body!r}")
    _known(body, {"truth", "cap", "public_fraction", "start", "end"}, where)
    truth = root / _field(body, "truth", str, where)
    folders = "frame_files" in benchmark.truth_layouts
    if truth.exists() and not truth.is_file() and not (folders and truth.is_dir()):
        expected = "a truth label file" + (" or a folder of per-video files" if folders else "")
        raise UserError(f"{where}.truth: {str(truth)!r} is not a file; expected {expected}")
    cap = body.get("cap")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
        raise UserError(f"{where}.cap: expected a positive integer, got {cap!r}")
    fraction = body.get("public_fraction", 1.0)
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 < fraction <= 1:
        raise UserError(f"{where}.public_fraction: expected a number in (0, 1], got {fraction!r}")
    start, end = _date(body, "start", where), _date(body, "end", where)
    if start and end and end <= start:
        raise UserError(f"{where}.end: expected a time after start ({start}), got {end}")
    return Phase(name, truth, cap, float(fraction), start, end)


def _date(body: dict, key: str, where: str) -> dt.datetime | None:
    """A TOML date or date-time as a naive UTC datetime (a date is its midnight)."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    raise UserError(f"{where}.{key}: expected a TOML date such as 2026-01-15 or "
                    f"2026-01-15T12:00:00, got {value!r}")


def _check_phase_name(name: str, where: str) -> None:
    if not name.strip() or "/" in name or not name.isprintable() or len(name) > 100:
        raise UserError(f"{where}: expected a printable phase name of at most 100 characters "
                        f"without '/', got {name!r}")


def _field(data: dict, key: str, kind: type, where: str, default: Any = ...) -> Any:
    if key not in data:
        if default is ...:
            raise UserError(f"{where}: missing field {key!r}")
        return default
    value = data[key]
    if not isinstance(value, kind):
        expected = {str: "a string", list: "a list", int: "an integer"}.get(kind, kind.__name__)
        raise UserError(f"{where}: {key}: expected {expected}, got {type(value).__name__} {value!r}")
    return value


def _known(data: dict, allowed: set[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise UserError(f"{where}: unknown field {key!r}; expected one of "
                            f"{', '.join(sorted(allowed))}")
