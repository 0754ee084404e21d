"""Another tool's output on the truth images: match, pick a face, binarize, score with coverage.

The same for every tool; a reader plugin (``auh_readers``) only parses
the tool's files into a :class:`harness.tooloutput.ToolOutput`.

* Matching: a row's image is its path's basename (or, failing that, the
  basename without extension) among the truth names, or its entry in a
  ``--map`` CSV ``key,image``. A row matching no truth image is refused.
  A frame of a video (key ``VIDEO/FRAME``, the frame number as the tool wrote
  it) is converted: the reader declares the number its tool gives a video's
  first frame (OpenFace 1, py-feat 0), the benchmark names its frames
  (``Benchmark.frame_name``, frames counted from 1: Aff-Wild2's
  ``VIDEO/00001.jpg`` is the first frame), so OpenFace's ``default/1`` and
  py-feat's ``default/0`` both match ``default/00001.jpg``. A ``--map``
  takes the key as written, ``VIDEO/FRAME``, or for a single video the bare
  frame number.
* Faces: among an image's rows that did not fail, the largest box
  (``--face largest``; the highest confidence where the tool gives no
  boxes) or the highest confidence; ties go to the earlier row.
* Missing images (no row, or only failed rows) are listed, and scored as
  predicted absent (``--missing zeros``) or left out (``--missing exclude``);
  with neither, scoring refuses.
* Binarization: probabilities ``>=`` 0.5 (``--threshold``); a tool's own
  presence decision as it is; intensity ``>=`` 1 (``--intensity-threshold``,
  which also makes intensity win over presence where a tool has both);
  or per-AU thresholds fitted on a validation pair (``--fit-thresholds``).
* Coverage: AUs the tool does not predict are "not predicted": they count
  in the means over all AUs with accuracy 0 and F1 0 (no credit for an AU
  never predicted), unless ``--uncovered zeros`` scores them as predicted
  absent. The covered AUs are also scored on their own.
* Head pose (``--pose-aus``, with ``--fit-thresholds``): AUs 51-56 derived
  from the tool's yaw, pitch and roll, threshold and sign fitted on
  validation, labelled "derived from pose".
"""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

import harness
from harness.errors import UserError
from harness.fileio import check_input_file
from harness.metrics import per_au_counts, per_au_scores
from harness.schema import NEGATIVE
from harness.tooloutput import ToolOutput

FACE_RULES = ("largest", "confidence")
MISSING_RULES = ("zeros", "exclude")
UNCOVERED_RULES = ("not-predicted", "zeros")
DEFAULT_THRESHOLD = 0.5
DEFAULT_INTENSITY = 1.0
# Head-pose AUs and the angle each is derived from with --pose-aus. The sign is
# fitted with the threshold: tools do not agree on which way an angle is positive.
POSE_AUS = {"AU51": "yaw", "AU52": "yaw", "AU53": "pitch", "AU54": "pitch", "AU55": "roll",
            "AU56": "roll"}
_NEVER = 180.0  # degrees: a pose threshold no angle reaches (an AU without validation positives)
_SHOWN = 5  # missing images named in a message

Fitted = dict[str, tuple[float, int]]  # AU -> (threshold, sign of the score)


@dataclass(frozen=True)
class Rules:
    """How a tool's output becomes 0/1 predictions for the truth images."""

    face: str = "largest"
    missing: str | None = None
    threshold: float = DEFAULT_THRESHOLD
    intensity_threshold: float | None = None
    uncovered: str = "not-predicted"
    map_path: Path | None = None
    pose_aus: bool = False
    # how the benchmark names frame k (from 1) of a video (harness.benchmark.Benchmark.frame_name);
    # None: an image benchmark, whose truth names no frames
    frame_name: str | None = None


@dataclass
class Prediction:
    """A tool's 0/1 predictions for the truth images, and how they were made."""

    tool: str
    covered: tuple[str, ...]  # schema order
    pred: np.ndarray  # [N, len(covered)]; a missing image's row is 0
    missing: list[str]
    keep: np.ndarray  # bool [N]: rows that are scored
    rules: str  # the rules applied, one line
    settings: Rules = Rules()
    thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)  # AU -> column kind, threshold
    derived: tuple[str, ...] = ()  # head-pose AUs derived from pose angles


def read_output(tool: str, path: str | os.PathLike, aus: Sequence[str] | None = None) -> ToolOutput:
    """What the reader ``tool`` reads from ``path``; a reader whose factory takes ``aus``
    is given the benchmark's AUs (the others keep their own AU names; the scorer
    maps them onto the benchmark's)."""
    takes_aus = "aus" in inspect.signature(harness.get_registry().get("reader", tool)[0].factory).parameters
    reader = harness.create("reader", tool, **({"aus": tuple(aus)} if takes_aus and aus is not None else {}))
    if not Path(path).exists():
        raise UserError(f"{path}: no such file or folder (the {tool} output)")
    try:
        return reader.read(Path(path))
    except UserError:
        raise
    except Exception as exc:  # the reader failed, not only the input: say which one
        provider = harness.get_registry().get("reader", tool)[0].provider
        raise UserError(f"reader {tool!r} (plugin {provider}) failed on {path}: "
                        f"{type(exc).__name__}: {exc}") from exc


def predict(tool: str, path: str | os.PathLike, truth_names: Sequence[str], aus: Sequence[str],
            rules: Rules, fitted: Fitted | None = None) -> Prediction:
    """Read, match, pick faces and binarize; refuses missing images without a ``missing`` rule."""
    if rules.pose_aus and fitted is None:
        raise UserError("--pose-aus: expected --fit-thresholds VAL_TRUTH VAL_OUTPUT too (head-pose "
                        "AUs are derived by thresholds fitted on validation data)")
    out = read_output(tool, path, aus)
    covered, derived = covered_aus(out, aus, rules)
    if not covered:
        raise UserError(f"{path}: the {tool} output predicts none of the schema's AUs")
    rows = assign(out, truth_names, rules.map_path, rules.frame_name)
    chosen, face_rule = choose_faces(out, rows, len(truth_names), rules.face)
    missing = _missing(out, chosen, truth_names, rules, tool)
    found = chosen >= 0
    pred = np.zeros((len(truth_names), len(covered)), dtype=np.int64)
    thresholds = {}
    for j, au in enumerate(covered):
        level, sign = (fitted or {}).get(au, (None, 1))
        values, kind, default = score_column(out, au, rules, fitted is not None, sign)
        level = default if level is None else level
        thresholds[au] = {"from": kind, "threshold": level, **({"sign": sign} if au in derived else {})}
        pred[found, j] = values[chosen[found]] >= level
    keep = found | (rules.missing != "exclude")
    return Prediction(tool, covered, pred, missing, keep,
                      describe(out.rules, rules, face_rule, fitted is not None), rules, thresholds,
                      derived)


def fit_thresholds(tool: str, path: str | os.PathLike, truth_names: Sequence[str],
                   truth: np.ndarray, aus: Sequence[str], rules: Rules) -> Fitted:
    """Per covered AU, the threshold the ``search`` thresholder picks on a validation pair, and
    for a head-pose AU derived from an angle the sign of the angle that scores better.

    Validation images the tool missed are left out of the fit.
    """
    out = read_output(tool, path, aus)
    rows = assign(out, truth_names, rules.map_path, rules.frame_name)
    chosen, _ = choose_faces(out, rows, len(truth_names), rules.face)
    found = chosen >= 0
    if not found.any():
        raise UserError(f"{path}: no validation image has a usable face in the {tool} output")
    covered, derived = covered_aus(out, aus, rules)
    labels = {au: truth[found, list(aus).index(au)] for au in covered}
    fitted: Fitted = {}
    for au in covered:
        signs = (1, -1) if au in derived else (1,)
        candidates = []
        for sign in signs:
            values, _, default = score_column(out, au, rules, True, sign)
            scores = values[chosen[found]]
            level = _search(scores, labels[au], _NEVER if au in derived else default)
            candidates.append((_objective(scores >= level, labels[au]), level, sign))
        _, level, sign = max(candidates, key=lambda c: c[0])  # a tie keeps the + sign
        fitted[au] = (level, sign)
    return fitted


def _search(scores: np.ndarray, labels: np.ndarray, default: float) -> float:
    """The project's ``search`` thresholder on one AU."""
    thresholder = harness.create("thresholder", "search", default=default)
    return float(thresholder.fit(scores[:, None], labels[:, None]).thresholds_[0])


def _objective(pred: np.ndarray, labels: np.ndarray) -> float:
    """(acc + F1) / 2 of one AU by the project's metric; -inf when no row is known."""
    acc, f1, _ = per_au_scores(*per_au_counts(pred[:, None].astype(np.int64), labels[:, None]))
    value = float((acc[0] + f1[0]) / 2)
    return -np.inf if np.isnan(value) else value


# ------------------------------------------------------------------ matching
def assign(out: ToolOutput, truth_names: Sequence[str], map_path: Path | None,
           frame_name: str | None = None) -> np.ndarray:
    """Per row of ``out``, the index of its truth image; refuses a row matching none.

    A video frame without ``--map`` is the benchmark's frame image ``frame_name`` of its
    video and frame, converted from the tool's first frame (``out.first_frame``) to the
    benchmark's count from 1."""
    index = {name: i for i, name in enumerate(truth_names)}
    videos = out.videos or [""] * len(out.keys)

    def benchmark_frame(r: int) -> str:
        return str(frame_name).format(video=videos[r], frame=int(out.frames[r]) - out.first_frame + 1)
    if map_path is not None:
        mapping, hint = read_map(map_path, index), f"an entry in --map {map_path}"
        single = len({v for v in videos if v}) == 1  # a bare frame number names one frame

        def lookup(r: int, key: str) -> int | None:
            return mapping.get(key, mapping.get(key.rsplit("/", 1)[-1]) if single and videos[r] else None)
    else:
        by_name, hint = _by_basename(index), "its basename among the truth's images (or give --map)"

        def lookup(r: int, key: str) -> int | None:
            return index.get(benchmark_frame(r)) if videos[r] and frame_name else by_name(key)
    rows = np.empty(len(out.keys), dtype=np.int64)
    for r, key in enumerate(out.keys):
        found = lookup(r, key)
        if found is None and videos[r] and map_path is None:
            named = f"the benchmark's {benchmark_frame(r)!r}" if frame_name else "the benchmark names no frames"
            raise UserError(
                f"{out.where[r]}: frame {int(out.frames[r])} of video {videos[r]!r} (the tool's first "
                f"frame is {out.first_frame}; {named}) is not in the truth; expected the truth's "
                f"image of that frame, or give --map with keys VIDEO/FRAME as the tool numbers "
                f"frames ({key!r})")
        if found is None:
            raise UserError(f"{out.where[r]}: image {key!r} is not in the truth; expected {hint}")
        rows[r] = found
    return rows


def _by_basename(index: dict[str, int]) -> Callable[[str], int | None]:
    """Key -> truth row by the path's basename, else by the basename without extension (if unique)."""
    stems: dict[str, list[int]] = {}
    for name, i in index.items():
        stems.setdefault(Path(name).stem, []).append(i)

    def lookup(key: str) -> int | None:
        base = key.replace("\\", "/").rsplit("/", 1)[-1]
        same = stems.get(Path(base).stem, [])
        return index.get(base, same[0] if len(same) == 1 else None)
    return lookup


def read_map(path: Path, index: dict[str, int]) -> dict[str, int]:
    """A ``--map`` CSV with header ``key,image``: the tool's path or frame number -> truth image."""
    check_input_file(path, "--map")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a CSV 'key,image': {exc}") from None
    if [c.strip() for c in frame.columns] != ["key", "image"]:
        raise UserError(f"{path}: line 1: header {','.join(frame.columns)!r}; expected 'key,image'")
    mapping: dict[str, int] = {}
    for line, (key, image) in enumerate(zip(frame.iloc[:, 0].str.strip(), frame.iloc[:, 1].str.strip()), 2):
        if image not in index:
            raise UserError(f"{path}: line {line}: image {image!r} is not in the truth; expected "
                            f"a truth image name")
        if key in mapping:
            raise UserError(f"{path}: line {line}: key {key!r} is mapped twice; expected one "
                            f"image per key")
        mapping[key] = index[image]
    return mapping


def choose_faces(out: ToolOutput, rows: np.ndarray, n: int, face: str) -> tuple[np.ndarray, str]:
    """Per truth image, the row of its chosen face (-1: none), and the rule used."""
    if face not in FACE_RULES:
        raise UserError(f"--face: expected one of {', '.join(FACE_RULES)}, got {face!r}")
    measure, rule = out.box_area, "largest box"
    if face == "confidence" or measure is None:
        measure, rule = out.confidence, "highest confidence"
    ok = np.flatnonzero(~out.failed)
    if measure is None:
        several = np.bincount(rows[ok], minlength=n) > 1
        if several.any():
            r = ok[int(np.argmax(several[rows[ok]]))]
            raise UserError(f"{out.where[r]}: image {out.keys[r]!r} has several faces and the "
                            f"tool gives neither face boxes nor confidences; expected one row "
                            f"per image")
        measure, rule = np.zeros(len(rows)), "the only face"
    size = np.nan_to_num(measure[ok], nan=-np.inf)
    order = np.lexsort((ok, -size, rows[ok]))  # by image, then larger first, then earlier row
    images, first = np.unique(rows[ok][order], return_index=True)
    chosen = np.full(n, -1, dtype=np.int64)
    chosen[images] = ok[order][first]
    return chosen, rule


def _missing(out: ToolOutput, chosen: np.ndarray, truth_names: Sequence[str], rules: Rules,
             tool: str) -> list[str]:
    missing = [truth_names[i] for i in np.flatnonzero(chosen < 0)]
    if missing and rules.missing not in MISSING_RULES:
        shown = ", ".join(repr(m) for m in missing[:_SHOWN]) + (", ..." if len(missing) > _SHOWN else "")
        raise UserError(f"{out.source}: {len(missing):,} of {len(truth_names):,} truth images have "
                        f"no usable face in the {tool} output (not in it, or failed detections: "
                        f"{shown}); expected --missing zeros (score them as predicted absent) or "
                        f"--missing exclude (leave them out)")
    return missing


# -------------------------------------------------------------- binarizing
def covered_aus(out: ToolOutput, aus: Sequence[str],
                rules: Rules) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(covered, derived)`` in schema order: the AUs the tool predicts and, with
    ``pose_aus``, the head-pose AUs derived from its pose angles (also in ``covered``)."""
    derived: tuple[str, ...] = ()
    if rules.pose_aus:
        if not out.pose:
            raise UserError(f"{out.source}: --pose-aus: this output has no head pose angles; "
                            f"expected a tool output with pose (OpenFace 2 pose_R*, py-feat Pitch/Yaw/Roll)")
        derived = tuple(au for au in aus if au in POSE_AUS and au not in out.covered
                        and POSE_AUS[au] in out.pose)
    return tuple(au for au in aus if au in out.covered or au in derived), derived


def score_column(out: ToolOutput, au: str, rules: Rules, fitted: bool,
                 sign: int = 1) -> tuple[np.ndarray, str, float]:
    """``(values, kind, default threshold)`` of ``au``: a probability, else the intensity where
    asked for (a threshold given or fitted) or where there is no presence decision, else
    presence; a head-pose AU the tool does not predict is ``sign`` times its pose angle."""
    if au not in out.covered and au in POSE_AUS:
        return sign * out.pose[POSE_AUS[au]], f"pose {POSE_AUS[au]}", _NEVER
    if au in out.probability:
        return out.probability[au], "probability", rules.threshold
    wants_intensity = rules.intensity_threshold is not None or fitted or au not in out.presence
    if au in out.intensity and wants_intensity:
        level = DEFAULT_INTENSITY if rules.intensity_threshold is None else rules.intensity_threshold
        return out.intensity[au], "intensity", level
    return out.presence[au], "presence", 0.5


def describe(reader_rules: str, rules: Rules, face_rule: str, fitted: bool) -> str:
    """The rules of one scoring, one line (scorecard and ledger tag)."""
    level = DEFAULT_INTENSITY if rules.intensity_threshold is None else rules.intensity_threshold
    binarize = ("per-AU thresholds fitted on validation (search thresholder)" if fitted else
                f"probability >= {rules.threshold:g}, intensity >= {level:g}")
    matching = f"--map {rules.map_path.name}" if rules.map_path else "basename"
    pose = "; head-pose AUs derived from pose (threshold and sign fitted)" if rules.pose_aus else ""
    return (f"{reader_rules}; images by {matching}; face: {face_rule}; "
            f"{binarize}; missing: {rules.missing or 'none'}; uncovered: {rules.uncovered}{pose}")


# ----------------------------------------------------------------- scoring
def not_predicted(truth: np.ndarray) -> np.ndarray:
    """Predictions that score accuracy 0 and F1 0 on every known row: the complement of the truth.

    An AU a tool never predicts is scored this way so that the project's
    own metric (and its bootstrap) counts it as no credit, neither as a
    hit nor as the tool having said 0.
    """
    return (np.asarray(truth) == NEGATIVE).astype(np.int64)


def full_predictions(pred: np.ndarray, covered: Sequence[str], truth: np.ndarray,
                     aus: Sequence[str], uncovered: str) -> np.ndarray:
    """``[N, len(aus)]``: the covered AUs as predicted, the others by the ``uncovered`` rule."""
    if uncovered not in UNCOVERED_RULES:
        raise UserError(f"--uncovered: expected one of {', '.join(UNCOVERED_RULES)}, got {uncovered!r}")
    full = not_predicted(truth) if uncovered == "not-predicted" else np.zeros(truth.shape, np.int64)
    full[:, [list(aus).index(au) for au in covered]] = pred
    return full


UNCOVERED_TEXT = {
    "not-predicted": "not predicted: accuracy 0 and F1 0 in the means over all AUs",
    "zeros": "scored as predicted absent (--uncovered zeros)",
}
