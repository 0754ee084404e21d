"""Other tools' outputs (`auh score/check/convert --from TOOL`): each reader on files written
in the tool's own format, quirks included, and the scores against scikit-learn."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

import harness
from harness.cli import main
from harness.labels import read_labels, write_labels
from harness.schema import ENC2020, UNKNOWN
from harness.tooloutput import ToolOutput
from leaderboard import ledger

AUS = ENC2020.aus
N = 24
NAMES = [f"N_{i:04d}.jpg" for i in range(N)]
OF2_R = ("01", "02", "04", "05", "06", "07", "09", "10", "12", "14", "15", "17", "20", "23", "25",
         "26", "45")
OF2_C = tuple(sorted(OF2_R + ("28",)))
OF2_COVERS = ["AU1", "AU2", "AU4", "AU5", "AU6", "AU9", "AU10", "AU12", "AU15", "AU17", "AU20",
              "AU25", "AU26", "AU28"]
FEAT_AUS = ("01", "02", "04", "05", "06", "07", "09", "10", "11", "12", "14", "15", "17", "20", "23",
            "24", "25", "26", "28", "43")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def truth(in_tmp) -> Path:
    rng = np.random.default_rng(7)
    labels = (rng.random((N, len(AUS))) < 0.4).astype(int)
    labels[rng.random(labels.shape) < 0.1] = UNKNOWN
    write_labels(in_tmp / "truth.txt", NAMES, labels)
    return in_tmp / "truth.txt"


def sklearn_au(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Accuracy and F1 of one AU on its known rows, by scikit-learn."""
    known = y != UNKNOWN
    return accuracy_score(y[known], p[known]), f1_score(y[known], p[known], zero_division=0)


def oracle(pred: dict[str, np.ndarray], truth: np.ndarray, uncovered: str = "not-predicted",
           aus: tuple[str, ...] = AUS) -> tuple[float, float, float]:
    """(final, accuracy, f1): the mean over AUs with a known row; an AU the tool does not
    predict scores 0 and 0 (not predicted) or is predicted absent (zeros)."""
    scores = []
    for j, au in enumerate(aus):
        y = truth[:, j]
        if (y == UNKNOWN).all():
            continue
        if au in pred or uncovered == "zeros":
            scores.append(sklearn_au(y, pred.get(au, np.zeros_like(y))))
        else:
            scores.append((0.0, 0.0))
    acc, f1 = np.mean(scores, axis=0)
    return (acc + f1) / 2, acc, f1


def score_json(capsys, truth: Path, tool: str, output: Path, *extra: str) -> dict:
    code, out, err = run(capsys, "score", "--truth", truth, "--from", tool, "--submission", output,
                         "--json", "--resamples", "0", *extra)
    assert code == 0, err
    return json.loads(out)


def assert_scores(card: dict, pred: dict[str, np.ndarray], labels: np.ndarray, **kw) -> None:
    """The scorecard on all AUs and on the covered ones equals the scikit-learn oracle."""
    final, acc, f1 = oracle(pred, labels, **kw)
    assert (card["final"], card["accuracy"], card["f1"]) == pytest.approx((final, acc, f1), abs=1e-12)
    covered = tuple(pred)
    only = oracle(pred, labels[:, [AUS.index(au) for au in covered]], aus=covered)
    assert card["covered"]["final"] == pytest.approx(only[0], abs=1e-12)


# ------------------------------------------------------------- OpenFace 2
def of2_sequence(path: Path, rows: list[tuple[int, int, bool, np.ndarray, np.ndarray]],
                 poses: list[tuple[float, float, float]] | None = None) -> None:
    """FeatureExtraction's CSV as OpenFace 2.0 writes it: ', ' between header names and values;
    ``poses``: per row pose_Rx, pose_Ry, pose_Rz in radians."""
    head = ["frame", "face_id", "timestamp", "confidence", "success", "pose_Tx", "pose_Ty",
            "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
    head += [f"AU{a}_r" for a in OF2_R] + [f"AU{a}_c" for a in OF2_C]
    lines = [", ".join(head)]
    for i, (frame, face, ok, r, c) in enumerate(rows):
        r, c = (r, c) if ok else (np.zeros_like(r), np.zeros_like(c))  # a failed frame: all 0
        rx, ry, rz = poses[i] if poses else (0.1, -0.05, 0.02)
        vals = [str(frame), str(face), f"{(frame - 1) * 0.033:.3f}", "0.98" if ok else "0.00",
                "1" if ok else "0", "10.1", "-3.2", "400.5", f"{rx:.3f}", f"{ry:.3f}", f"{rz:.3f}"]
        vals += [f"{x:.2f}" for x in r] + [f"{x:.1f}" for x in c]
        lines.append(", ".join(vals))
    path.write_text("\n".join(lines) + "\n")


def of2_values(rng) -> tuple[np.ndarray, np.ndarray]:
    # rounded as OpenFace writes them, so the test's values are the file's
    return rng.uniform(0, 5, len(OF2_R)).round(2), (rng.random(len(OF2_C)) < 0.4).astype(float)


def test_openface2_feature_extraction_frames_map_and_failed_rows(truth, capsys):
    rng = np.random.default_rng(1)
    values = [of2_values(rng) for _ in NAMES]
    failed = {3, 7}
    of2_sequence(truth.parent / "fe.csv", [(i + 1, 0, i not in failed, *values[i]) for i in range(N)])
    frames = "".join(f"{i + 1},{n}\n" for i, n in enumerate(NAMES))  # -fdir reads images in order
    (truth.parent / "map.csv").write_text("key,image\n" + frames)
    code, _, err = run(capsys, "check", "--truth", truth, "--from", "openface2", "--submission",
                       truth.parent / "fe.csv", "--missing", "zeros")
    assert code == 2 and "frame 1 of video 'fe'" in err and "not in the truth" in err and "--map" in err
    card = score_json(capsys, truth, "openface2", truth.parent / "fe.csv", "--map",
                      truth.parent / "map.csv", "--missing", "zeros")
    assert card["coverage"]["covered"] == OF2_COVERS
    assert card["missing"] == {"count": 2, "rule": "zeros", "images": [NAMES[3], NAMES[7]]}
    _, labels = read_labels(truth)
    pred = {}
    for au in OF2_COVERS:  # the tool's own presence decisions; failed frames: predicted absent
        col = OF2_C.index(f"{int(au[2:]):02d}")
        pred[au] = np.array([0 if i in failed else int(values[i][1][col]) for i in range(N)])
    assert_scores(card, pred, labels)
    assert card["per_au"]["AU18"] == {"accuracy": None, "f1": None, "n": card["per_au"]["AU18"]["n"],
                                      "predicted": False}


def test_openface2_head_pose_aus_derived_from_pose(truth, capsys):
    rng = np.random.default_rng(12)
    frames = "".join(f"{i + 1},{n}\n" for i, n in enumerate(NAMES))
    (truth.parent / "map.csv").write_text("key,image\n" + frames)

    def output(name: str) -> np.ndarray:
        poses = rng.uniform(-0.5, 0.5, (N, 3)).round(3)  # radians, as written (3 decimals)
        of2_sequence(truth.parent / name, [(i + 1, 0, True, *of2_values(rng)) for i in range(N)],
                     [tuple(p) for p in poses])
        return np.degrees(poses)  # pitch, yaw, roll

    val_pose = output("val.csv")
    val = (rng.random((N, len(AUS))) < 0.4).astype(int)
    yaw = val_pose[:, 1]
    val[:, AUS.index("AU51")] = yaw < -10  # this tool's left turn is a negative yaw ...
    val[:, AUS.index("AU52")] = yaw > 10  # ... and its right turn a positive one
    write_labels(truth.parent / "val.txt", NAMES, val)
    test_pose = output("test.csv")
    args = ["--map", truth.parent / "map.csv", "--fit-thresholds", truth.parent / "val.txt",
            truth.parent / "val.csv"]
    card = score_json(capsys, truth, "openface2", truth.parent / "test.csv", "--pose-aus", *args)
    pose_aus = ["AU51", "AU52", "AU53", "AU54", "AU55", "AU56"]
    assert card["coverage"]["derived_from_pose"] == pose_aus
    assert card["coverage"]["covered"] == OF2_COVERS + pose_aus
    assert card["per_au"]["AU51"]["derived_from_pose"] is True
    t51, t52 = card["thresholds"]["AU51"], card["thresholds"]["AU52"]
    assert (t51["from"], t51["sign"], t52["sign"]) == ("pose yaw", -1, 1)
    # perfectly separable on validation: the search keeps the lowest positive score
    assert t51["threshold"] == pytest.approx(min(-yaw[yaw < -10]))
    assert t52["threshold"] == pytest.approx(min(yaw[yaw > 10]))
    angle = {"yaw": test_pose[:, 1], "pitch": test_pose[:, 0], "roll": test_pose[:, 2]}
    _, labels = read_labels(truth)
    for au in pose_aus:  # each derived AU on the test rows, by scikit-learn
        t = card["thresholds"][au]
        pred = (t["sign"] * angle[t["from"].split()[1]] >= t["threshold"] - 1e-9).astype(int)
        expected = sklearn_au(labels[:, AUS.index(au)], pred)
        assert (card["per_au"][au]["accuracy"], card["per_au"][au]["f1"]) == pytest.approx(expected)
    code, _, err = run(capsys, "check", "--truth", truth, "--from", "openface2", "--submission",
                       truth.parent / "test.csv", "--pose-aus", "--map", truth.parent / "map.csv")
    assert code == 2 and "--pose-aus: expected --fit-thresholds" in err


def of2_image_csv(path: Path, faces: list[tuple[float, np.ndarray, np.ndarray]]) -> None:
    """FaceLandmarkImg's per-image CSV: 'face, confidence', 68 landmarks, AUs; no face, no row."""
    head = ["face", "confidence"] + [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]
    head += [f"AU{a}_r" for a in OF2_R] + [f"AU{a}_c" for a in OF2_C]
    lines = [", ".join(head)]
    for face, (size, r, c) in enumerate(faces):
        xs = np.linspace(100, 100 + size, 68)
        vals = [str(face), "0.950"] + [f"{x:.1f}" for x in xs] + [f"{x:.1f}" for x in xs]
        lines.append(", ".join(vals + [f"{x:.2f}" for x in r] + [f"{x:.1f}" for x in c]))
    path.write_text("\n".join(lines) + "\n")


def test_openface2_image_folder_largest_face_intensity_and_exclude(truth, capsys):
    rng = np.random.default_rng(2)
    folder = truth.parent / "processed"
    folder.mkdir()
    chosen = {}
    for i, name in enumerate(NAMES):
        faces = [(50.0, *of2_values(rng))]
        if i == 5:
            faces.append((80.0, *of2_values(rng)))  # a second, larger face: the one scored
        if i == 9:
            faces = []  # no face detected: a header-only file
        of2_image_csv(folder / f"{Path(name).stem}.csv", faces)
        if faces:
            chosen[i] = max(faces, key=lambda f: f[0])
    card = score_json(capsys, truth, "openface2", folder, "--missing", "exclude",
                      "--intensity-threshold", "2")
    assert card["missing"]["images"] == [NAMES[9]] and card["n_images"] == N - 1
    _, labels = read_labels(truth)
    keep = [i for i in range(N) if i in chosen]
    pred = {}
    for au in OF2_COVERS:  # AUxx_r >= 2 where OpenFace has an intensity; AU28 only has _c
        code = f"{int(au[2:]):02d}"
        pred[au] = np.array([int(chosen[i][1][OF2_R.index(code)] >= 2) if code in OF2_R
                             else int(chosen[i][2][OF2_C.index(code)]) for i in keep])
    assert_scores(card, pred, labels[keep])
    assert "AUxx_r >= the intensity threshold" in card["rules"] and "intensity >= 2" in card["rules"]
    assert card["thresholds"]["AU1"] == {"from": "intensity", "threshold": 2.0}
    assert card["thresholds"]["AU28"] == {"from": "presence", "threshold": 0.5}


# ----------------------------------------------------------------- py-feat
def fex_csv(path: Path, rows: list[tuple[str, list[float] | None, np.ndarray | None]]) -> None:
    """``Fex.to_csv``: pandas' unnamed index first; a frame without a face is a row of NaN."""
    head = ["", "FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight", "FaceScore"]
    head += [f"AU{a}" for a in FEAT_AUS] + ["anger", "Pitch", "Roll", "Yaw", "input", "frame"]
    lines = [",".join(head)]
    for i, (name, face, probs) in enumerate(rows):
        face_cells = ["" if face is None else f"{v}" for v in (face or [None] * 5)]
        au_cells = [""] * len(FEAT_AUS) if probs is None else [f"{p:.6f}" for p in probs]
        rest = ["", "", "", ""] if probs is None else ["0.1", f"{i}.5", "-2.0", f"-{i}.25"]
        lines.append(",".join([str(i), *face_cells, *au_cells, *rest, f"/data/enc/{name}", str(i)]))
    path.write_text("\n".join(lines) + "\n")


def feat_rows(rng):
    rows, probs = [], {}
    for i, name in enumerate(NAMES):
        if i == 4:
            rows.append((name, None, None))  # no face
            continue
        p = rng.random(len(FEAT_AUS)).round(6)
        rows.append((name, [10.0, 12.0, 40.0, 50.0, 0.99], p))
        probs[i] = p
        if i == 6:  # a second face: smaller box but a higher detection score
            q = rng.random(len(FEAT_AUS)).round(6)
            rows.append((name, [90.0, 12.0, 20.0, 25.0, 0.999], q))
            probs[(i, "second")] = q
    return rows, probs


FEAT_COVERS = [f"AU{int(a)}" for a in FEAT_AUS if f"AU{int(a)}" in AUS]


@pytest.mark.parametrize("face", ["largest", "confidence"])
def test_pyfeat_nan_rows_faces_and_threshold(truth, capsys, face):
    rng = np.random.default_rng(3)
    rows, probs = feat_rows(rng)
    fex_csv(truth.parent / "fex.csv", rows)
    card = score_json(capsys, truth, "pyfeat", truth.parent / "fex.csv", "--missing", "zeros",
                      "--threshold", "0.3", "--face", face)
    assert card["coverage"]["covered"] == FEAT_COVERS and len(FEAT_COVERS) == 16
    assert card["missing"]["images"] == [NAMES[4]]
    _, labels = read_labels(truth)
    pick = {i: probs[i] for i in range(N) if i in probs}
    if face == "confidence":
        pick[6] = probs[(6, "second")]
    pred = {au: np.array([int(pick[i][FEAT_AUS.index(f"{int(au[2:]):02d}")] >= 0.3) if i in pick else 0
                          for i in range(N)]) for au in FEAT_COVERS}
    assert_scores(card, pred, labels)


def test_pyfeat_reader_api(truth):
    rows, probs = feat_rows(np.random.default_rng(3))
    fex_csv(truth.parent / "fex.csv", rows)
    out = harness.create("reader", "pyfeat").read(truth.parent / "fex.csv")
    assert len(out.keys) == N + 1 and out.keys[0] == "/data/enc/N_0000.jpg"
    assert np.flatnonzero(out.failed).tolist() == [4]  # the NaN row
    assert out.where[5] == f"{truth.parent / 'fex.csv'}: line 7"
    assert sorted(out.covered) == sorted(FEAT_COVERS) and not out.presence and not out.intensity
    assert out.pose["pitch"][0] == 0.5 and out.pose["yaw"][3] == -3.25 and out.pose["roll"][1] == -2.0
    assert out.box_area[0] == 40.0 * 50.0 and out.confidence[0] == 0.99


def test_pyfeat_uncovered_zeros_is_stated(truth, capsys):
    rng = np.random.default_rng(3)
    rows, probs = feat_rows(rng)
    fex_csv(truth.parent / "fex.csv", rows)
    card = score_json(capsys, truth, "pyfeat", truth.parent / "fex.csv", "--missing", "zeros",
                      "--uncovered", "zeros")
    assert card["coverage"]["uncovered"] == "scored as predicted absent (--uncovered zeros)"
    assert card["per_au"]["AU51"]["f1"] is not None
    _, labels = read_labels(truth)
    pred = {au: np.array([int(probs[i][FEAT_AUS.index(f"{int(au[2:]):02d}")] >= 0.5) if i in probs else 0
                          for i in range(N)]) for au in FEAT_COVERS}
    assert_scores(card, pred, labels, uncovered="zeros")
    code, out, _ = run(capsys, "score", "--truth", truth, "--from", "pyfeat", "--submission",
                       truth.parent / "fex.csv", "--missing", "zeros", "--resamples", "0")
    assert code == 0 and "AU51" in out and "not predicted" in out and "covers    16 of 23 AUs" in out


def test_fit_thresholds_use_the_search_thresholder(truth, capsys):
    rng = np.random.default_rng(4)
    rows, probs = feat_rows(rng)
    fex_csv(truth.parent / "fex.csv", rows)
    val_rows, val_probs = feat_rows(rng)
    fex_csv(truth.parent / "val.csv", val_rows)
    val_labels = (rng.random((N, len(AUS))) < 0.3).astype(int)
    write_labels(truth.parent / "val.txt", NAMES, val_labels)
    card = score_json(capsys, truth, "pyfeat", truth.parent / "fex.csv", "--missing", "zeros",
                      "--fit-thresholds", truth.parent / "val.txt", truth.parent / "val.csv")
    cols = [FEAT_AUS.index(f"{int(au[2:]):02d}") for au in FEAT_COVERS]
    seen = [i for i in range(N) if i in val_probs]  # the largest face of each; image 4 has none
    scores = np.array([val_probs[i][cols] for i in seen])
    expected = harness.create("thresholder", "search").fit(
        scores, val_labels[seen][:, [AUS.index(au) for au in FEAT_COVERS]]).thresholds_
    _, labels = read_labels(truth)
    pred = {au: np.array([int(probs[i][c] >= t) if i in probs else 0 for i in range(N)])
            for au, c, t in zip(FEAT_COVERS, cols, expected)}
    assert_scores(card, pred, labels)
    assert "fitted on validation" in card["rules"]
    assert card["thresholds"]["AU1"] == {"from": "probability", "threshold": float(expected[0])}


# --------------------------------------------------------------- LibreFace
LIBRE_DET = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
LIBRE_INT = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)


def test_libreface_presence_then_intensity(truth, capsys):
    rng = np.random.default_rng(5)
    det = (rng.random((N, len(LIBRE_DET))) < 0.4).astype(int)
    inten = rng.uniform(0, 5, (N, len(LIBRE_INT))).round(3)
    head = ["image_path"] + [f"au_{k}" for k in LIBRE_DET] + [f"au_{k}_intensity" for k in LIBRE_INT]
    lines = [",".join(head)]
    for i, name in enumerate(NAMES):
        if i == 2:
            lines.append(",".join([f"imgs/{name}"] + [""] * (len(head) - 1)))  # failed: empty
            continue
        lines.append(",".join([f"imgs/{name}", *map(str, det[i]), *(f"{x:.3f}" for x in inten[i])]))
    (truth.parent / "libre.csv").write_text("\n".join(lines) + "\n")
    card = score_json(capsys, truth, "libreface", truth.parent / "libre.csv", "--missing", "zeros")
    covers = [au for au in AUS if int(au[2:]) in LIBRE_DET + LIBRE_INT]
    assert card["coverage"]["covered"] == covers and len(covers) == 14
    _, labels = read_labels(truth)
    pred = {}
    for au in covers:
        k = int(au[2:])
        col = det[:, LIBRE_DET.index(k)] if k in LIBRE_DET else (
            inten[:, LIBRE_INT.index(k)] >= 1).astype(int)  # intensity-only AUs: >= 1
        pred[au] = np.where(np.arange(N) == 2, 0, col)
    assert_scores(card, pred, labels)


# ------------------------------------------------------------- OpenGraphAU
def test_opengraphau_left_right_max(truth, capsys):
    from plugins.readers.opengraphau import COLUMNS

    rng = np.random.default_rng(6)
    probs = rng.random((N, len(COLUMNS))) * 0.45  # all below 0.5 ...
    probs[0, COLUMNS.index("AUL1")] = 0.8  # ... but the left AU1 of image 0
    probs[1, COLUMNS.index("AUR12")] = 0.7  # and the right AU12 of image 1
    lines = [",".join(("image",) + COLUMNS)]
    lines += [",".join([name, *(f"{p:.4f}" for p in probs[i])]) for i, name in enumerate(NAMES)]
    (truth.parent / "ogau.csv").write_text("\n".join(lines) + "\n")
    code, out, _ = run(capsys, "convert", truth.parent / "ogau.csv", "--truth", truth, "--from",
                       "opengraphau", "--out", truth.parent / "sub.csv")
    assert code == 0 and "covers    15 of 23 AUs" in out
    names, sub = read_labels(truth.parent / "sub.csv")
    assert names == NAMES
    assert sub[0, AUS.index("AU1")] == 1 and sub[1, AUS.index("AU12")] == 1
    assert sub[2:].sum() == 0 and sub.sum() == 2  # nothing else reaches 0.5; uncovered written 0


# -------------------------------------------------------------- OpenFace 3
def test_openface3_action_unit_lists(truth, capsys):
    rng = np.random.default_rng(8)
    units = rng.random((N, 8)).round(4)
    head = ["timestamp", "image_path", "face_id", "face_detection", "landmarks", "emotion",
            "gaze_yaw", "gaze_pitch", "action_units"]
    lines = ["\t".join(head)]

    def row(i: int, box: list[float], au: str) -> str:
        return "\t".join([f"{1.7e9 + i:.3f}", f"clip.mp4_frame_{i:05d}.jpg", "0", str(box),
                          "[[10.0, 20.0], [11.5, 21.0]]", "3", "0.1", "-0.2", au])

    for i in range(N):
        if i == 1:
            continue  # no face: the script writes no row for this frame
        lines.append(row(i, [10.0, 10.0, 60.0, 70.0, 0.98], "[" + str(units[i].tolist()) + "]"))
    lines.append(row(3, [0.0, 0.0, 20.0, 20.0, 0.99], "[" + str([0.99] * 8) + "]"))  # a smaller face
    (truth.parent / "of3.tsv").write_text("\n".join(lines) + "\n")
    (truth.parent / "map.csv").write_text("key,image\n" + "".join(
        f"clip.mp4_frame_{i:05d}.jpg,{n}\n" for i, n in enumerate(NAMES)))
    card = score_json(capsys, truth, "openface3", truth.parent / "of3.tsv", "--missing", "exclude",
                      "--map", truth.parent / "map.csv")
    covers = ["AU1", "AU2", "AU4", "AU6", "AU9", "AU12", "AU25", "AU26"]
    assert card["coverage"]["covered"] == covers and card["missing"]["images"] == [NAMES[1]]
    assert "face: largest box" in card["rules"]
    _, labels = read_labels(truth)
    keep = [i for i in range(N) if i != 1]
    pred = {au: (units[keep, j] >= 0.5).astype(int) for j, au in enumerate(covers)}
    assert_scores(card, pred, labels[keep])


# --------------------------------------------------------------- bad input
@pytest.fixture
def tool_files(truth) -> Path:
    rng = np.random.default_rng(9)
    rows, _ = feat_rows(rng)
    fex_csv(truth.parent / "fex.csv", rows)
    text = (truth.parent / "fex.csv").read_text().splitlines()
    cells = text[2].split(",")
    cells[7] = "1.5"
    (truth.parent / "bad_prob.csv").write_text("\n".join(text[:2] + [",".join(cells)] + text[3:]) + "\n")
    cells = text[2].split(",")
    (truth.parent / "long.csv").write_text("\n".join(text[:2] + [",".join(cells + ["7"])] + text[3:]) + "\n")
    cells[8] = ""
    (truth.parent / "partly.csv").write_text("\n".join(text[:2] + [",".join(cells)] + text[3:]) + "\n")
    (truth.parent / "twice.csv").write_text("\n".join([text[0].replace("AU02", "AU01")] + text[1:]) + "\n")
    (truth.parent / "extra.csv").write_text("\n".join(text + [text[1].replace(NAMES[0], "other.jpg")]) + "\n")
    (truth.parent / "map.csv").write_text("key,image\n/data/enc/N_0000.jpg,nope.jpg\n")
    (truth.parent / "of2.csv").write_text("frame, face_id, timestamp, confidence, success, AU01_c\n"
                                          "1, 0, 0.000, 0.98, 1, yes\n")
    return truth.parent


@pytest.mark.parametrize("args, message", [
    (["--from", "openface9", "--submission", "fex.csv"],
     "unknown reader 'openface9'; available: libreface, openface2, openface3, opengraphau, pyfeat"),
    (["--from", "pyfeat", "--submission", "fex.csv"],
     "fex.csv: 1 of 24 truth images have no usable face in the pyfeat output"),
    (["--from", "pyfeat", "--submission", "bad_prob.csv", "--missing", "zeros"],
     "bad_prob.csv: line 3, column AU02: value '1.5', expected a number in [0, 1]"),
    (["--from", "pyfeat", "--submission", "long.csv", "--missing", "zeros"],
     "long.csv: line 3: 33 fields, expected 32 as in the header"),
    (["--from", "pyfeat", "--submission", "partly.csv", "--missing", "zeros"],
     "partly.csv: line 3: the AU4 value is empty but other AU values are not"),
    (["--from", "pyfeat", "--submission", "twice.csv", "--missing", "zeros"],
     "twice.csv: line 1: column 'AU01' repeated"),
    (["--from", "pyfeat", "--submission", "extra.csv", "--missing", "zeros"],
     "extra.csv: line 27: image '/data/enc/other.jpg' is not in the truth"),
    (["--from", "pyfeat", "--submission", "fex.csv", "--missing", "zeros", "--map", "map.csv"],
     "map.csv: line 2: image 'nope.jpg' is not in the truth"),
    (["--from", "openface2", "--submission", "of2.csv", "--missing", "zeros"],
     "of2.csv: line 2, column AU01_c: value 'yes', expected a number in [0, 1]"),
    (["--from", "pyfeat", "--submission", "missing.csv"], "missing.csv: no such file or folder"),
    (["--from", "pyfeat", "--submission", "fex.csv", "--threshold", "0"], "--threshold: expected"),
])
def test_bad_tool_input_is_one_line_exit_2_and_writes_nothing(tool_files, capsys, args, message):
    for command in ("check", "score"):
        code, out, err = run(capsys, command, "--truth", "truth.txt", *args)
        assert code == 2 and err.count("\n") == 1 and message in err, err
    code, _, err = run(capsys, "convert", args[3], "--truth", "truth.txt", "--out", "sub.csv",
                       *args[:2], *args[4:])
    assert code == 2 and message in err
    assert not (tool_files / "mlflow.db").exists() and not (tool_files / "sub.csv").exists()


def test_convert_refuses_exclude(tool_files, capsys):
    code, _, err = run(capsys, "convert", "fex.csv", "--truth", "truth.txt", "--from", "pyfeat",
                       "--out", "sub.csv", "--missing", "exclude")
    assert code == 2 and "a submission needs a row for every truth image" in err
    assert not (tool_files / "sub.csv").exists()


# ------------------------------------------------------------- leaderboard
def test_tools_on_the_leaderboard_with_coverage_and_tags(truth, capsys):
    rng = np.random.default_rng(10)
    rows, _ = feat_rows(rng)
    fex_csv(truth.parent / "fex.csv", rows)
    from plugins.readers.opengraphau import COLUMNS

    probs = rng.random((N, len(COLUMNS)))
    lines = [",".join(("image",) + COLUMNS)]
    lines += [",".join([n, *(f"{p:.4f}" for p in probs[i])]) for i, n in enumerate(NAMES)]
    (truth.parent / "ogau.csv").write_text("\n".join(lines) + "\n")
    finals = {}
    for tool, path in (("pyfeat", "fex.csv"), ("opengraphau", "ogau.csv")):
        code, out, err = run(capsys, "score", "--truth", truth, "--from", tool, "--submission",
                             truth.parent / path, "--missing", "zeros", "--tool-version", "1.2",
                             "--resamples", "30", "--json")
        assert code == 0, err
        finals[tool] = json.loads(out)["final"]
    entries = {e.team: e for e in ledger.entries("scoring/test")}
    assert entries["pyfeat"].tags["tool"] == "pyfeat" and entries["pyfeat"].tags["tool_version"] == "1.2"
    assert entries["pyfeat"].tags["coverage"].split(",") == FEAT_COVERS
    assert "NaN AUs" in entries["pyfeat"].tags["reader_rules"]
    assert entries["opengraphau"].metrics["covered/final"] > 0
    assert entries["opengraphau"].submission_name == "ogau.csv"
    code, out, _ = run(capsys, "leaderboard", "--format", "csv", "--resamples", "30")
    assert code == 0
    header, *body = [line.split(",") for line in out.splitlines()]
    got = [dict(zip(header, line)) for line in body]
    order = sorted(finals, key=lambda t: -finals[t])
    assert [g["team"] for g in got] == order
    assert [float(g["final"]) for g in got] == [finals[t] for t in order]
    assert {g["team"]: g["coverage"] for g in got} == {"pyfeat": "16/23", "opengraphau": "15/23"}
    assert got[0]["p_better_than_next"] != ""  # the paired bootstrap ran on the stored predictions


def test_openface2_folder_of_feature_extraction_csvs_is_one_video_each(truth):
    """OpenFace names each CSV after its video: a folder of them keys every row VIDEO/FRAME."""
    from leaderboard.other_tools import read_output

    folder = truth.parent / "processed"
    folder.mkdir()
    rng = np.random.default_rng(11)
    of2_sequence(folder / "clip_a.csv", [(1, 0, True, *of2_values(rng)), (2, 0, True, *of2_values(rng))])
    of2_sequence(folder / "clip_b.csv", [(1, 0, True, *of2_values(rng))])
    out = read_output("openface2", folder)
    assert out.keys == ["clip_a/1", "clip_a/2", "clip_b/1"] and out.first_frame == 1
    assert out.videos == ["clip_a", "clip_a", "clip_b"] and out.frames.tolist() == [1, 2, 1]


def test_a_broken_reader_plugin_is_named(truth, capsys, monkeypatch):
    monkeypatch.setattr(harness.registry, "_REGISTRY", None)  # a registry of its own, dropped afterwards
    (truth.parent / "broken.py").write_text(
        "from harness import hookimpl\n\n\nclass Broken:\n    def read(self, path):\n"
        "        return {}['AU1']\n\n\n@hookimpl\ndef auh_readers():\n    return {'broken': Broken}\n")
    (truth.parent / "out.csv").write_text("image,AU1\n")
    code, _, err = run(capsys, "--plugin", truth.parent / "broken.py", "check", "--truth", truth,
                       "--from", "broken", "--submission", truth.parent / "out.csv")
    assert code == 2 and "reader 'broken' (plugin " in err and "failed on" in err and "KeyError" in err


@pytest.mark.parametrize("option", [["--map", "m.csv"], ["--missing", "zeros"], ["--uncovered", "zeros"],
                                    ["--tool-version", "2"], ["--fit-thresholds", "a", "b"]])
def test_tool_options_need_from(truth, capsys, option):
    code, _, err = run(capsys, "check", "--truth", truth, "--submission", truth, *option)
    assert code == 2 and f"{option[0]}: only with --from TOOL" in err


def test_tools_in_a_challenge_with_public_and_private_rows(in_tmp, capsys):
    import shutil

    from leaderboard.challenge import load_challenge

    examples = Path(__file__).resolve().parents[1] / "submissions" / "examples"
    shutil.copytree(examples, in_tmp / "ex")
    toml = in_tmp / "ex" / "challenge.toml"
    names, labels = read_labels(in_tmp / "ex" / "truth.txt")
    rng = np.random.default_rng(13)
    rows = [(n, [1.0, 2.0, 30.0, 30.0, 0.9], rng.random(len(FEAT_AUS)).round(6)) for n in names[1:]]
    fex_csv(in_tmp / "fex.csv", rows)  # names[0] is missing
    for flag in ("zeros", "exclude"):
        code, out, err = run(capsys, "score", "--challenge", toml, "--from", "pyfeat", "--submission",
                             in_tmp / "fex.csv", "--missing", flag, "--team", f"feat-{flag}",
                             "--resamples", "20", "--json")
        assert code == 0, err
    ch = load_challenge(toml)
    public = ch.public_mask(ch.phase("test"), names)
    probs = {n: p for n, _, p in rows}
    pred = {au: np.array([int(probs[n][FEAT_AUS.index(f"{int(au[2:]):02d}")] >= 0.5) if n in probs else 0
                          for n in names]) for au in FEAT_COVERS}
    entries = {e.team: e for e in ledger.entries("enc2020-demo/test")}
    for view, rows_ in (("public", public), ("private", ~public)):
        expected = oracle({au: p[rows_] for au, p in pred.items()}, labels[rows_])[0]
        assert entries["feat-zeros"].metrics[f"{view}/final"] == pytest.approx(expected, abs=1e-12)
    code, out, _ = run(capsys, "leaderboard", "--challenge", toml, "--private", "--resamples", "20")
    assert code == 0 and "| 16/23 |" in out
    assert "scored with --missing exclude (rows differ; no gap test): feat-exclude" in out


# ------------------------------------------------------------- the Python API
def toy_output(keys: list[str], area=None, conf=None, failed=None) -> ToolOutput:
    n = len(keys)
    return ToolOutput(source="toy.csv", keys=keys, where=[f"toy.csv: line {i + 2}" for i in range(n)],
                      failed=np.zeros(n, bool) if failed is None else np.array(failed),
                      probability={"AU12": np.linspace(0, 1, n)},
                      box_area=None if area is None else np.array(area, float),
                      confidence=None if conf is None else np.array(conf, float))


def test_matching_by_basename_then_unique_stem():
    from harness.errors import UserError
    from leaderboard.other_tools import assign

    names = ["a.jpg", "b.jpg", "b.png", "c.jpg"]
    out = toy_output(["/x/a.jpg", "C:\\data\\c.jpg", "dir/b.png", "a"])  # a Windows path too
    assert assign(out, names, None).tolist() == [0, 3, 2, 0]
    with pytest.raises(UserError, match=r"toy.csv: line 2: image 'b' is not in the truth"):
        assign(toy_output(["b"]), names, None)  # b.jpg or b.png: ambiguous, refused


def test_face_choice_and_ties():
    from leaderboard.other_tools import choose_faces

    rows = np.array([0, 0, 0, 1, 2])
    out = toy_output(["a"] * 5, area=[10, 30, 30, 5, 1], conf=[0.9, 0.1, 0.2, 0.5, 0.7],
                     failed=[False, False, False, False, True])
    chosen, rule = choose_faces(out, rows, 3, "largest")
    assert chosen.tolist() == [1, 3, -1] and rule == "largest box"  # a tie: the earlier row
    chosen, rule = choose_faces(out, rows, 3, "confidence")
    assert chosen.tolist() == [0, 3, -1] and rule == "highest confidence"


def test_not_predicted_scores_zero_accuracy_and_f1():
    from harness.metrics import challenge_score
    from leaderboard.other_tools import not_predicted

    truth = np.array([[1, 0], [0, 999], [1, 1], [0, 0]])
    per_au = challenge_score(not_predicted(truth), truth, ("A", "B"))["per_au"]
    assert per_au == {"A": {"accuracy": 0.0, "f1": 0.0, "n": 4}, "B": {"accuracy": 0.0, "f1": 0.0, "n": 3}}
