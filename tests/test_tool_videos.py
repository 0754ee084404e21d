"""Readers on the tools' real outputs (../shared/data/tool-outputs, byte for byte as the
tools wrote them) and on variants of them the tools also write: one key per video frame,
first frame to first frame, OpenFace's separators and layouts, failed and several faces.

The tests that need ../shared skip cleanly where it is absent.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from harness.errors import UserError
from harness.benchmark import get_benchmark
from harness.cli import main
from leaderboard.other_tools import Rules, assign, choose_faces, read_output

SHARED = Path(os.environ.get("AUH_SHARED", Path(__file__).resolve().parents[2] / "shared"))
TOOLS = SHARED / "data" / "tool-outputs"
OPENFACE_VIDEO = TOOLS / "openface2" / "emoinfer_default_video_nospace.csv"
OPENFACE_LANDMARKS = TOOLS / "openface2" / "tinderswiper_sample2_image_3faces_lmkonly.csv"
PYFEAT_VIDEO = TOOLS / "pyfeat" / "news_sample_001_detector_v1.csv"
PYFEAT_IMAGE = TOOLS / "pyfeat" / "Feat_Test_image_1face.csv"
LIBREFACE_IMAGE = TOOLS / "libreface" / "cose471_Atul10459_image.csv"


def real(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"real tool outputs not available at {path}")
    return path


def copy_as(source: Path, target: Path, transform=lambda text: text) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(transform(source.read_bytes().decode()).encode())
    return target


# ------------------------------------------------------------------ real files
def test_openface_feature_extraction_one_key_per_frame_named_after_the_file(tmp_path):
    video = copy_as(real(OPENFACE_VIDEO), tmp_path / "default.csv")  # OpenFace's name for default.wmv
    out = read_output("openface2", video)
    frames = np.loadtxt(OPENFACE_VIDEO, delimiter=",", skiprows=1, usecols=0)
    assert out.keys == [f"default/{int(n)}" for n in frames] and len(set(out.keys)) == len(frames)
    assert out.keys[0] == "default/1" and out.first_frame == 1 and set(out.videos) == {"default"}


def test_pyfeat_video_rows_get_one_key_per_frame():
    out = read_output("pyfeat", real(PYFEAT_VIDEO))
    assert out.keys == [f"001/{n}" for n in range(0, 40, 2)]  # every 2nd frame, from 0
    assert out.first_frame == 0 and set(out.videos) == {"001"}


def test_pyfeat_image_rows_keep_the_image_path():
    out = read_output("pyfeat", real(PYFEAT_IMAGE))
    assert out.videos is None and out.keys[0].endswith("/single_face.jpg")


def test_libreface_per_image_csv_names_the_image_by_its_file_name(tmp_path):
    one = copy_as(real(LIBREFACE_IMAGE), tmp_path / "faces" / "Atul10459.csv")
    copy_as(LIBREFACE_IMAGE, tmp_path / "faces" / "Bea0001.csv")
    assert read_output("libreface", one).keys == ["Atul10459"]
    folder = read_output("libreface", tmp_path / "faces")
    assert folder.keys == ["Atul10459", "Bea0001"] and not folder.failed.any()
    truth = ["Atul10459.png", "Bea0001.png", "other.png"]
    assert assign(folder, truth, None).tolist() == [0, 1]


def test_openface_landmarks_only_output_is_refused_in_one_line():
    with pytest.raises(UserError, match="no AUxx_c or AUxx_r columns") as exc:
        read_output("openface2", real(OPENFACE_LANDMARKS))
    assert "\n" not in str(exc.value)


# ------------------------------------------------------- first frame to first frame
ABAW = get_benchmark("abaw_au")


def frame_truth(video: str, n: int) -> list[str]:
    """The ABAW benchmark's names of a video's frames: VIDEO/00001.jpg is the first (Aff-Wild2)."""
    return [ABAW.frame(video, k) for k in range(1, n + 1)]


def libreface_video(tmp_path: Path) -> Path:
    """LibreFace's video table (save_facial_attributes_video): pandas' index, frame_idx from 0,
    the frame's time and where it saved it (TEMP/VIDEO/0000000000.png), then the image columns."""
    head, row = real(LIBREFACE_IMAGE).read_text().splitlines()[:2]
    lines = [",frame_idx,frame_time_in_ms,path_to_frame,aligned_frame_path," + head]
    lines += [f"{i},{i},{i * 40.0},./tmp/clip/{i:010d}.png,./tmp/clip/aligned/{i:010d}.png,{row}"
              for i in range(3)]
    path = tmp_path / "video_results.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("tool", ["openface2", "pyfeat", "libreface"])
def test_the_tools_first_frame_matches_the_benchmarks_first_frame(tool, tmp_path):
    path = {"openface2": lambda: copy_as(real(OPENFACE_VIDEO), tmp_path / "clip.csv"),
            "pyfeat": lambda: real(PYFEAT_VIDEO),
            "libreface": lambda: libreface_video(tmp_path)}[tool]()
    out = read_output(tool, path)
    video = out.videos[0]
    truth = frame_truth(video, 400)
    rows = assign(out, truth, None, ABAW.frame_name)
    first = int(np.argmin(out.frames))
    assert out.frames[first] == out.first_frame  # the tool's own first frame ...
    assert truth[rows[first]] == f"{video}/00001.jpg"  # ... is the benchmark's first frame
    np.testing.assert_array_equal(rows, out.frames.astype(int) - out.first_frame)


def test_frame_names_follow_the_benchmarks_naming():
    out = read_output("pyfeat", real(PYFEAT_VIDEO))
    truth = [f"001/{k}.png" for k in range(1, 41)]  # another benchmark's frame names: no padding, png
    assert assign(out, truth, None, "{video}/{frame}.png").tolist() == list(range(0, 40, 2))
    assert Rules().frame_name is None  # an image benchmark: video rows need a --map


def test_a_frame_not_in_the_truth_names_the_video_frame_and_the_map_spelling():
    out = read_output("pyfeat", real(PYFEAT_VIDEO))
    with pytest.raises(UserError) as exc:
        assign(out, frame_truth("001", 10), None, ABAW.frame_name)
    message = str(exc.value)
    assert "frame 10 of video '001'" in message and "'001/00011.jpg'" in message and "'001/10'" in message


def test_auh_check_matches_pyfeat_video_rows_to_abaw_frames(tmp_path, capsys):
    """The real py-feat video output against an ABAW truth of its video (40 frames): its 20
    rows (frames 0, 2, ...) are the truth's frames 1, 3, ...; the other 20 are missing."""
    truth = tmp_path / "truth"
    truth.mkdir()
    rows = np.random.default_rng(0).choice([0, 1, -1], size=(40, 12))
    (truth / "001.txt").write_text("\n".join([",".join(ABAW.aus), *(",".join(map(str, r)) for r in rows)]) + "\n")
    assert main(["check", "--benchmark", "abaw_au", "--truth", str(truth), "--from", "pyfeat",
                 "--submission", str(real(PYFEAT_VIDEO)), "--missing", "zeros"]) == 0
    out = capsys.readouterr().out
    assert "001/00002.jpg" in out and "001/00001.jpg" not in out  # frame 2 (from 1) is missing, not 1


def test_a_map_takes_video_slash_frame_as_the_tool_wrote_it(tmp_path):
    out = read_output("pyfeat", real(PYFEAT_VIDEO))
    names = [f"still_{i}.jpg" for i in range(20)]
    mapping = tmp_path / "map.csv"
    mapping.write_text("key,image\n" + "".join(f"001/{2 * i},{n}\n" for i, n in enumerate(names)))
    assert assign(out, names, mapping).tolist() == list(range(20))
    bare = tmp_path / "bare.csv"  # one video: the bare frame number is enough
    bare.write_text("key,image\n" + "".join(f"{2 * i},{n}\n" for i, n in enumerate(names)))
    assert assign(out, names, bare).tolist() == list(range(20))


# ------------------------------------------------------------ OpenFace variants
def variants():
    def spaced(sep):
        return lambda text: text.replace(",", sep)

    def header_only(text):
        head, rest = text.split("\n", 1)
        return head.replace(",", ", ") + "\n" + rest
    return {"comma-space (Windows binaries)": spaced(", "), "comma-two-spaces": spaced(",  "),
            "comma-space header over comma rows": header_only,
            "CRLF": lambda text: text.replace("\n", "\r\n"),
            "no final newline": lambda text: text.rstrip("\n"),
            "CRLF, comma-space, no final newline": lambda text: text.replace(",", ", ").replace(
                "\n", "\r\n").rstrip("\r\n")}


@pytest.mark.parametrize("name", list(variants()))
def test_openface_separators_and_line_ends_read_the_same(name, tmp_path):
    original = read_output("openface2", copy_as(real(OPENFACE_VIDEO), tmp_path / "a" / "default.csv"))
    variant = read_output("openface2", copy_as(OPENFACE_VIDEO, tmp_path / "b" / "default.csv", variants()[name]))
    assert variant.keys == original.keys
    for kind in ("presence", "intensity", "pose"):
        got, want = getattr(variant, kind), getattr(original, kind)
        assert got.keys() == want.keys()
        for au in want:
            np.testing.assert_array_equal(got[au], want[au])
    np.testing.assert_array_equal(variant.failed, original.failed)


def edit_rows(text: str, edit) -> str:
    """The CSV with each row's cells (a dict) passed through ``edit``, which yields the rows to write."""
    head, *rows = text.rstrip("\n").split("\n")
    out = [cells for i, row in enumerate(rows) for cells in edit(i, dict(zip(head.split(","), row.split(","))))]
    return "\n".join([",".join(out[0]), *(",".join(cells.values()) for cells in out)]) + "\n"


def test_pre_2_0_layout_without_face_id_is_read(tmp_path):
    def drop_face_id(i, cells):
        cells.pop("face_id")
        yield cells
    old = copy_as(real(OPENFACE_VIDEO), tmp_path / "default.csv", lambda t: edit_rows(t, drop_face_id))
    assert "face_id" not in old.read_text().splitlines()[0]
    out = read_output("openface2", old)
    assert out.keys[:2] == ["default/1", "default/2"] and len(out.keys) == 288


def test_success_0_rows_are_failed_even_with_non_zero_aus(tmp_path):
    def fail_frame_2(i, cells):
        if i == 1:
            cells["success"], cells["confidence"] = "0", "0.05"
            assert float(cells["AU01_r"]) > 0 or float(cells["AU02_r"]) > 0  # it still carries AU values
        yield cells
    path = copy_as(real(OPENFACE_VIDEO), tmp_path / "default.csv", lambda t: edit_rows(t, fail_frame_2))
    out = read_output("openface2", path)
    assert out.failed.tolist()[:3] == [False, True, False]
    chosen, _ = choose_faces(out, assign(out, frame_truth("default", 300), None, ABAW.frame_name), 300, "largest")
    assert chosen[1] == -1 and chosen[0] == 0  # the failed frame has no usable face


def test_several_faces_per_frame_the_more_confident_is_chosen(tmp_path):
    """FaceLandmarkVidMulti: face_id 0 and 1 in every frame; the second face more confident on
    even frames."""
    def two_faces(i, cells):
        other = dict(cells, face_id="1", confidence="0.99" if i % 2 == 0 else "0.10")
        cells["confidence"] = "0.50"
        yield cells
        yield other
    path = copy_as(real(OPENFACE_VIDEO), tmp_path / "multi.csv", lambda t: edit_rows(t, two_faces))
    out = read_output("openface2", path)
    assert out.keys[:4] == ["multi/1", "multi/1", "multi/2", "multi/2"]
    chosen, rule = choose_faces(out, assign(out, frame_truth("multi", 300), None, ABAW.frame_name), 300,
                                "largest")
    assert rule == "highest confidence"  # no landmarks written: no face box
    assert chosen[:4].tolist() == [1, 2, 5, 6]
