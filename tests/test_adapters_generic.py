"""Generic folder adapter and the shared adapter helpers (audio loading, splits, options)."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from benchmark.audio_io import DataError
from benchmark.configtools import ConfigError
from benchmark.corpus.adapters import common as C
from benchmark.corpus.adapters import generic as Gen
from benchmark.corpus.manifest import load_utterance, read_manifest
from benchmark.spec import CorpusSpec
from fixtures_real import lip_frames, make_generic_tree, voiced, write_wav


def _spec(src, **kw):
    opts = kw.pop("options", {})
    return CorpusSpec(name="generic", options={"source": str(src), **opts}, jobs=1, **kw)


def test_generic_npy_folder_with_transcripts_and_seeded_split(tmp_path):
    src = make_generic_tree(tmp_path / "src")
    out = Gen.build(_spec(src, lip_size=32, fps=25.0, seed=3), tmp_path / "o1", progress=False)
    df = read_manifest(out)
    assert len(df) == 10 and set(df["speaker"]) == {"alice", "bob", "carol", "dave", "erin"}
    assert (df.set_index("utt_id").loc["bob_utt01", "transcript"]) == "hello from bob number 1"
    splits = df.groupby("speaker")["split"].first().to_dict()
    assert list(splits.values()).count("test") == 1 and "train" in splits.values()
    u = load_utterance(out, df.iloc[0])
    assert u.lips.shape == (25, 32, 32) and u.fps == 25.0
    # same seed -> same split; the split never depends on file order
    again = read_manifest(Gen.build(_spec(src, lip_size=32, seed=3), tmp_path / "o2", progress=False))
    assert again.groupby("speaker")["split"].first().to_dict() == splits
    seeds = {tuple(sorted(C.seeded_split(list(splits), s, val_fraction=0.2, test_fraction=0.2, tag="generic-split").items())) for s in range(8)}
    assert len(seeds) > 1  # the seed really changes the split


def test_generic_splits_csv_and_missing_speaker(tmp_path):
    src = make_generic_tree(tmp_path / "src", speakers=("a1", "b2", "c3"), utts=1)
    (src / "splits.csv").write_text("speaker,split\na1,test\nb2,val\nc3,train\n")
    df = read_manifest(Gen.build(_spec(src), tmp_path / "o1", progress=False))
    assert df.groupby("speaker")["split"].first().to_dict() == {"a1": "test", "b2": "val", "c3": "train"}
    (src / "splits.csv").write_text("speaker,split\na1,test\nb2,val\n")
    with pytest.raises(DataError, match=r"splits\.csv: speakers \['c3'\] have no split"):
        Gen.build(_spec(src), tmp_path / "o2", progress=False)
    (src / "splits.csv").write_text("speaker,split\na1,testing\n")
    with pytest.raises(DataError, match=r"splits\.csv: line 2: unknown split 'testing'"):
        Gen.build(_spec(src), tmp_path / "o3", progress=False)


def test_generic_flat_folder_with_speaker_regex_and_video_lips(tmp_path):
    src = tmp_path / "flat"
    for spk in ("spk01", "spk02"):
        nested = make_generic_tree(tmp_path / "tmp" / spk, speakers=(spk,), utts=1, lips="mp4", with_txt=False)
        for f in (nested / spk).iterdir():
            (src).mkdir(exist_ok=True)
            f.rename(src / f"{spk}_{f.name}")
    with pytest.raises(DataError, match="directly in the source folder"):
        Gen.build(_spec(src), tmp_path / "o1", progress=False)
    out = Gen.build(_spec(src, options={"speaker_regex": r"^(?P<speaker>spk\d+)_", "test_speakers": ["spk02"]}),
                    tmp_path / "o2", progress=False)
    df = read_manifest(out)
    assert df.groupby("speaker")["split"].first().to_dict() == {"spk01": "train", "spk02": "test"}
    assert set(df["fps"]) == {25.0}  # read from the mp4 files


def test_generic_missing_root_and_empty_folder(tmp_path):
    with pytest.raises(C.LayoutError) as ei:
        Gen.build(_spec(tmp_path / "absent"), tmp_path / "o", progress=False)
    assert "absent" in str(ei.value) and "<source>/<speaker>/<name>.wav" in str(ei.value)
    (tmp_path / "e" / "x").mkdir(parents=True)
    write_wav(tmp_path / "e" / "x" / "a.wav", voiced(1.0), 16000)  # no lip file
    with pytest.raises(C.LayoutError, match="no <name>.wav with a mouth-ROI file"):
        Gen.build(_spec(tmp_path / "e"), tmp_path / "o", progress=False)


def test_generic_stereo_needs_downmix_and_resampling_is_logged(tmp_path, caplog):
    src = make_generic_tree(tmp_path / "src", speakers=("a1", "b2"), utts=1)
    x = voiced(1.0, 44100)
    write_wav(src / "a1" / "utt00.wav", np.stack([x, 0.5 * x], axis=1), 44100)
    with pytest.raises(DataError, match=r"utt00\.wav: audio has 2 channels.*allow_downmix"):
        Gen.build(_spec(src, options={"test_speakers": ["a1"]}), tmp_path / "o1", progress=False)
    with caplog.at_level(logging.INFO):
        out = Gen.build(_spec(src, options={"test_speakers": ["a1"], "allow_downmix": True}), tmp_path / "o2", progress=False)
    assert "resampling 44100 Hz -> 16000 Hz" in caplog.text and "down-mixing 2 channels" in caplog.text
    row = read_manifest(out).set_index("utt_id").loc["a1_utt00"]
    assert row["n_samples"] == 16000 and row["sample_rate"] == 16000


def test_generic_option_errors(tmp_path):
    src = make_generic_tree(tmp_path / "src", speakers=("a1", "b2"), utts=1)
    with pytest.raises(ConfigError, match="unknown key 'speaker_re'"):
        Gen.build(_spec(src, options={"speaker_re": "x"}), tmp_path / "o", progress=False)
    with pytest.raises(ConfigError, match="speaker_regex: invalid regular expression"):
        Gen.build(_spec(src, options={"speaker_regex": "(unclosed"}), tmp_path / "o", progress=False)
    with pytest.raises(ConfigError, match=r"max_utts_per_speaker \(generic\): expected int"):
        Gen.build(_spec(src, options={"max_utts_per_speaker": "two"}), tmp_path / "o", progress=False)
    with pytest.raises(ConfigError, match="test_fraction"):
        Gen.build(_spec(src, options={"test_fraction": 1.5}), tmp_path / "o", progress=False)


def test_max_utts_per_speaker(tmp_path):
    src = make_generic_tree(tmp_path / "src", speakers=("a1", "b2"), utts=3)
    df = read_manifest(Gen.build(_spec(src, options={"max_utts_per_speaker": 2}), tmp_path / "o", progress=False))
    assert df.groupby("speaker").size().to_dict() == {"a1": 2, "b2": 2}


# -- shared helpers ---------------------------------------------------------------------------


def test_load_audio_errors_name_the_file(tmp_path):
    p = write_wav(tmp_path / "nan.wav", np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    with pytest.raises(DataError, match=r"nan\.wav: audio contains 16000 NaN/inf"):
        C.load_audio(p)
    p = write_wav(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    with pytest.raises(DataError, match=r"silent\.wav: audio is silent"):
        C.load_audio(p)
    (tmp_path / "junk.wav").write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(DataError, match=r"junk\.wav: cannot read audio"):
        C.load_audio(tmp_path / "junk.wav")
    with pytest.raises(DataError, match="file not found"):
        C.load_audio(tmp_path / "none.wav")


def test_resampling_preserves_a_tone(tmp_path):
    sr = 25000
    t = np.arange(sr) / sr
    p = write_wav(tmp_path / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr, subtype="FLOAT")
    y = C.load_audio(p)
    assert y.size == 16000
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) * 16000 / y.size - 440) <= 1.0


def test_flat_roi_to_frames_shapes(tmp_path):
    fr = lip_frames(5, 9)
    flat = fr.reshape(5, -1).T  # D x N without the transpose convention
    assert np.array_equal(C.flat_roi_to_frames(flat, path="x", transpose=False), fr)
    assert np.array_equal(C.flat_roi_to_frames(flat.T, path="x", transpose=False), fr)  # N x D accepted
    with pytest.raises(DataError, match="square number"):
        C.flat_roi_to_frames(np.zeros((10, 3)), path="x")


def test_read_video_errors(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match=r"bad\.mp4: unreadable video"):
        C.read_video(tmp_path / "bad.mp4")
    with pytest.raises(DataError, match="file not found"):
        C.read_video(tmp_path / "none.mp4")


def test_adapters_are_registered_with_the_builder_signature():
    from benchmark.corpus import CORPORA
    from benchmark.corpus.adapters import grid, tcd_timit

    assert CORPORA.get("generic") is Gen.build
    assert CORPORA.get("grid") is grid.build
    assert CORPORA.get("tcd-timit") is tcd_timit.build_tcd_timit
    assert CORPORA.get("ntcd-timit") is tcd_timit.build_ntcd_timit


def test_parallel_build_gives_the_same_bytes(tmp_path):
    from benchmark.corpus.manifest import read_sidecar

    src = make_generic_tree(tmp_path / "src", speakers=("a1", "b2", "c3"), utts=2)
    one = Gen.build(_spec(src), tmp_path / "o1", progress=False)
    two = Gen.build(CorpusSpec(name="generic", options={"source": str(src)}, jobs=2), tmp_path / "o2", progress=False)
    assert read_sidecar(one)["checksum"] == read_sidecar(two)["checksum"]
    assert read_manifest(one).equals(read_manifest(two))


def test_ensure_corpus_builds_through_the_registry_and_reuses(tmp_path, caplog):
    from benchmark.corpus.build import ensure_corpus
    from benchmark.corpus.manifest import read_sidecar

    src = make_generic_tree(tmp_path / "src", speakers=("a1", "b2"), utts=1)
    spec = CorpusSpec(name="generic", root=str(tmp_path / "corpus"), options={"source": str(src)}, jobs=1)
    root = ensure_corpus(spec, progress=False)
    assert len(read_manifest(root)) == 2 and read_sidecar(root)["generator"] == "generic-adapter"
    with caplog.at_level(logging.INFO):
        assert ensure_corpus(spec, progress=False) == root
    assert "reusing corpus" in caplog.text
