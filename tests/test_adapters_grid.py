"""GRID adapter on a tiny fixture tree in the real layout (audio_25k/, video/*.mpg, align/)."""
from __future__ import annotations

import csv
import logging

import numpy as np
import pytest

from benchmark.audio_io import DataError
from benchmark.configtools import ConfigError
from benchmark.corpus.adapters import common as C
from benchmark.corpus.adapters import grid as G
from benchmark.corpus.manifest import load_utterance, read_manifest, read_sidecar
from benchmark.spec import CorpusSpec
from fixtures_real import GRID_ALIGN, cartoon_face, face_frames, make_grid_tree


def _spec(src, **kw):
    opts = kw.pop("options", {})
    return CorpusSpec(name="grid", options={"source": str(src), **opts}, jobs=1, **kw)


@pytest.fixture(scope="module")
def grid_corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("grid")
    src = make_grid_tree(base / "src")
    out = G.build(_spec(src, lip_size=48), base / "corpus", progress=False)
    return src, out


def test_grid_builds_manifest_with_default_split(grid_corpus):
    src, out = grid_corpus
    df = read_manifest(out)
    assert len(df) == 8
    split = dict(zip(df["speaker"], df["split"]))
    assert split == {"s1": "test", "s2": "test", "s3": "val", "s5": "train"}  # LipNet unseen + s3/s4 val
    assert set(df["fps"]) == {25.0}
    assert set(df["n_samples"]) == {int(1.2 * 16000)}  # 25 kHz resampled to 16 kHz
    assert set(df["n_frames"]) == {30}
    assert set(df["transcript"]) == {"bin blue at f two now"}
    side = read_sidecar(out)
    assert side["synthetic"] is False and side["generator"] == "grid-adapter"
    assert side["speakers"]["test"] == ["s1", "s2"]


def test_grid_utterance_loads_and_validates(grid_corpus):
    _, out = grid_corpus
    df = read_manifest(out)
    u = load_utterance(out, df.iloc[0])
    assert u.audio.dtype == np.float32 and u.audio.size == 19200
    assert u.lips.shape == (30, 48, 48) and u.lips.dtype == np.uint8
    # the crop shows the (dark) mouth on the (light) face: its dark pixels lie in the upper half of the crop
    dark = u.lips[10] < 100
    rows = np.nonzero(dark.any(axis=1))[0]
    assert rows.size and rows.mean() < 48 * 0.6


def test_haar_detector_finds_the_face_and_crops_the_mouth():
    frames = face_frames(10, h=144, w=180)
    cropper = C.MouthCropper(lip_size=32, detect_every=2)
    face = cropper.face_box(frames)
    assert face is not None, "Haar cascade did not find the cartoon face"
    mouth = cropper.mouth_box(face)
    s = int(min(144, 180) * 0.24)
    mx, my = 180 // 2, int(144 * 0.48) + int(s * 0.7)  # where the fixture draws the mouth
    assert mouth.x <= mx <= mouth.x + mouth.w and mouth.y <= my <= mouth.y + mouth.h
    lips, box, fallback = cropper.crop(frames)
    assert not fallback and lips.shape == (10, 32, 32)


def test_no_face_falls_back_to_centre_crop_and_logs(caplog):
    frames = np.full((6, 120, 160), 128, np.uint8)
    with caplog.at_level(logging.WARNING):
        lips, box, fallback = C.MouthCropper(lip_size=24).crop(frames, name="blank.mpg")
    assert fallback and lips.shape == (6, 24, 24)
    assert box == C.MouthCropper.fallback_box(120, 160)
    assert "no face found" in caplog.text and "blank.mpg" in caplog.text


def test_injected_detector_is_used():
    frames = np.stack([cartoon_face(100, 100)] * 3)
    lips, box, fallback = C.MouthCropper(lip_size=16, detector=lambda g: [(10, 10, 60, 60)]).crop(frames)
    assert not fallback and box == C.CropBox(25, 50, 30, 20)


def test_parse_align_units_and_transcript(tmp_path):
    p = tmp_path / "a.align"
    p.write_text(GRID_ALIGN)
    words = G.parse_align(p)
    assert words[0] == (0.0, 12250 / 25000, "sil")
    assert words[-1][1] == pytest.approx(3.0)  # 75000 units = 75 frames at 25 fps = 3 s
    assert G.align_transcript(words) == "bin blue at f two now"


def test_parse_align_bad_line_names_file_and_line(tmp_path):
    p = tmp_path / "bad.align"
    p.write_text("0 100 sil\n100 abc bin\n")
    with pytest.raises(DataError, match=r"bad\.align: line 2"):
        G.parse_align(p)


def test_grid_missing_root_explains_layout(tmp_path):
    with pytest.raises(C.LayoutError) as ei:
        G.build(_spec(tmp_path / "nope"), tmp_path / "out", progress=False)
    msg = str(ei.value)
    assert "nope" in msg and "not found" in msg and "audio_25k/sN" in msg and "video/sN" in msg


def test_grid_wrong_layout_and_no_source(tmp_path):
    (tmp_path / "src" / "random").mkdir(parents=True)
    with pytest.raises(C.LayoutError, match="no audio folder"):
        G.build(_spec(tmp_path / "src"), tmp_path / "out", progress=False)
    with pytest.raises(C.LayoutError, match="options.source"):
        G.build(CorpusSpec(name="grid"), tmp_path / "out", progress=False)


def test_grid_unknown_option_names_key(tmp_path):
    with pytest.raises(ConfigError, match="'colour'.*grid"):
        G.build(_spec(tmp_path, options={"colour": 1}), tmp_path / "out", progress=False)


def test_grid_nested_video_folder_and_overrides(tmp_path):
    src = make_grid_tree(tmp_path / "src", speakers=("s7", "s8", "s9"), utts=("bbaf2n",), video_subdir="video/mpg_6000")
    out = G.build(_spec(src, options={"test_speakers": ["s7"], "val_speakers": [], "babble_speakers": ["s9"],
                                      "face_detector": "none"}), tmp_path / "out", progress=False)
    df = read_manifest(out)
    assert dict(zip(df["speaker"], df["split"])) == {"s7": "test", "s8": "train", "s9": "babble"}


def test_grid_speaker_in_two_splits_is_an_error(tmp_path):
    src = make_grid_tree(tmp_path / "src", speakers=("s1", "s2"), utts=("bbaf2n",))
    with pytest.raises(ConfigError, match="'s1'.*both"):
        G.build(_spec(src, options={"test_speakers": ["s1"], "val_speakers": ["s1"]}), tmp_path / "out", progress=False)


def test_grid_bad_video_aborts_or_is_skipped(tmp_path):
    src = make_grid_tree(tmp_path / "src", speakers=("s1", "s6"), utts=("bbaf2n", "lgaz8p"))
    bad = src / "video" / "s6" / "lgaz8p.mpg"
    bad.write_bytes(b"this is not a video" * 10)
    with pytest.raises(DataError) as ei:
        G.build(_spec(src, options={"face_detector": "none"}), tmp_path / "out1", progress=False)
    assert "lgaz8p.mpg" in str(ei.value) and "unreadable video" in str(ei.value) and "skip_bad" in str(ei.value)
    out = G.build(_spec(src, skip_bad=True, options={"face_detector": "none"}), tmp_path / "out2", progress=False)
    df = read_manifest(out)
    assert "s6_lgaz8p" not in set(df["utt_id"]) and len(df) == 3
    with open(out / C.BAD_ITEMS_FILE) as f:
        rows = list(csv.DictReader(f))
    assert [r["utt_id"] for r in rows] == ["s6_lgaz8p"] and "unreadable video" in rows[0]["problem"]
    assert read_sidecar(out)["n_bad_items"] == 1
