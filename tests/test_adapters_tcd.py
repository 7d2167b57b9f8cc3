"""TCD-TIMIT / NTCD-TIMIT adapters on tiny fixture trees (volunteers/<spk>/straightcam/...)."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.audio_io import DataError, write_audio
from benchmark.configtools import ConfigError
from benchmark.corpus.adapters import common as C
from benchmark.corpus.adapters import tcd_timit as T
from benchmark.corpus.manifest import load_utterance, read_manifest, read_sidecar
from benchmark.spec import CorpusSpec
from fixtures_real import lip_frames, make_ntcd_noisy_tree, make_tcd_tree, voiced


def _spec(src, name="tcd-timit", **kw):
    opts = kw.pop("options", {})
    return CorpusSpec(name=name, options={"source": str(src), **opts}, jobs=1, **kw)


def test_tcd_mp4_lips_default_official_split(tmp_path):
    src = make_tcd_tree(tmp_path / "src", lips="mp4")
    out = T.build_tcd_timit(_spec(src, lip_size=67), tmp_path / "out", progress=False)
    df = read_manifest(out)
    assert len(df) == 8
    assert dict(zip(df["speaker"], df["split"])) == {"09F": "test", "17F": "val", "01M": "train", "30M": "train"}
    assert set(df["fps"]) == {30.0} and set(df["n_frames"]) == {30}
    assert df["utt_id"].str.match(r"^\d\d[MF]_s[ai]").all()
    u = load_utterance(out, df.iloc[0])
    assert u.lips.shape == (30, 67, 67) and u.audio.size == 16000


@pytest.mark.parametrize("fmt", ["raw", "npy", "mat"])
def test_tcd_array_lip_formats_round_trip_exactly(tmp_path, fmt):
    src = make_tcd_tree(tmp_path / "src", speakers=("09F", "02M"), utts=("sa1",), lips=fmt)
    out = T.build_tcd_timit(_spec(src, lip_size=67), tmp_path / "out", progress=False)
    df = read_manifest(out).set_index("utt_id")
    lips = np.load(out / df.loc["09F_sa1", "lips_path"])
    expected = lip_frames(30, 67, seed=0)  # speaker index 0, utt 0 in the fixture
    assert lips.dtype == np.uint8 and lips.shape == expected.shape
    assert np.abs(lips.astype(int) - expected.astype(int)).max() <= 1  # *Raw.npy stores x/255 floats
    assert df.loc["09F_sa1", "fps"] == 30.0  # options.fps default for array formats


def test_raw_npy_transpose_option_matters(tmp_path):
    src = make_tcd_tree(tmp_path / "src", speakers=("09F", "02M"), utts=("sa1",), lips="raw")
    out = T.build_tcd_timit(_spec(src, lip_size=67, options={"raw_npy_transpose": False}), tmp_path / "out", progress=False)
    df = read_manifest(out).set_index("utt_id")
    lips = np.load(out / df.loc["09F_sa1", "lips_path"])
    expected = lip_frames(30, 67, seed=0)
    assert np.abs(lips.astype(int) - expected.transpose(0, 2, 1).astype(int)).max() <= 1


def test_tcd_missing_root_explains_layout(tmp_path):
    with pytest.raises(C.LayoutError) as ei:
        T.build_ntcd_timit(_spec(tmp_path / "missing", name="ntcd-timit"), tmp_path / "out", progress=False)
    assert "missing" in str(ei.value) and "volunteers/<spk>/straightcam/<utt>.wav" in str(ei.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(C.LayoutError, match="no volunteers/ folder"):
        T.build_tcd_timit(_spec(tmp_path / "empty"), tmp_path / "out", progress=False)


def test_tcd_lips_in_separate_folder_and_missing_lips(tmp_path):
    audio = make_tcd_tree(tmp_path / "audio", speakers=("09F", "03F"), utts=("sa1",), lips="npy")
    lips = tmp_path / "lips"
    for spk in ("09F", "03F"):
        d = lips / "volunteers" / spk / "straightcam"
        d.mkdir(parents=True)
        (audio / "volunteers" / spk / "straightcam" / "sa1.npy").rename(d / "sa1.npy")
    with pytest.raises(C.LayoutError, match="no utterance with both audio and lip files"):
        T.build_tcd_timit(_spec(audio), tmp_path / "o1", progress=False)
    out = T.build_tcd_timit(_spec(audio, options={"lips_source": str(lips)}), tmp_path / "o2", progress=False)
    assert len(read_manifest(out)) == 2


def test_tcd_av_duration_mismatch_is_a_bad_item(tmp_path):
    src = make_tcd_tree(tmp_path / "src", speakers=("09F", "04M"), utts=("sa1", "sa2"), lips="npy")
    np.save(src / "volunteers" / "04M" / "straightcam" / "sa2.npy", lip_frames(60, 67))  # 2 s of video, 1 s audio
    with pytest.raises(DataError, match=r"sa2\.npy: audio/video duration mismatch"):
        T.build_tcd_timit(_spec(src), tmp_path / "o1", progress=False)
    out = T.build_tcd_timit(_spec(src, skip_bad=True), tmp_path / "o2", progress=False)
    assert "04M_sa2" not in set(read_manifest(out)["utt_id"])


def test_tcd_lipspeakers_and_speaker_filter(tmp_path):
    src = make_tcd_tree(tmp_path / "src", speakers=("09F", "05M"), utts=("sa1",), lips="npy")
    ls = src / "lipspeakers" / "Lipspkr1" / "straightcam"
    ls.mkdir(parents=True)
    write_audio(ls / "sa1.wav", voiced(1.0))
    np.save(ls / "sa1.npy", lip_frames(30, 67))
    df = read_manifest(T.build_tcd_timit(_spec(src), tmp_path / "o1", progress=False))
    assert "Lipspkr1" not in set(df["speaker"])
    df = read_manifest(T.build_tcd_timit(_spec(src, options={"include_lipspeakers": True}), tmp_path / "o2", progress=False))
    assert dict(zip(df["speaker"], df["split"]))["Lipspkr1"] == "train"
    with pytest.raises(C.LayoutError, match=r"\['99F'\] not found"):
        T.build_tcd_timit(_spec(src, options={"speakers": ["09F", "99F"]}), tmp_path / "o3", progress=False)


def test_ntcd_noisy_paths_and_pairs(tmp_path):
    noisy = make_ntcd_noisy_tree(tmp_path / "noisy", ["09F"], ["sa1"], noises=("Babble", "LR"), snrs=(-5, 0, 5))
    p = T.ntcd_noisy_path(noisy, "Babble", 5, "09F", "sa1")
    assert p == noisy / "Babble" / "5" / "volunteers" / "09F" / "straightcam" / "sa1.wav"
    assert T.ntcd_noisy_path(noisy, "babble", 5.0, "09F", "sa1") == p
    assert T.ntcd_noisy_path(noisy, "Babble", "5", "09F", "sa1") == p
    assert T.list_ntcd_noisy(noisy) == [("Babble", -5.0), ("Babble", 0.0), ("Babble", 5.0), ("LR", -5.0), ("LR", 0.0), ("LR", 5.0)]
    with pytest.raises(DataError, match=r"SNR 10 dB not available \(available: -5, 0, 5\)"):
        T.ntcd_noisy_path(noisy, "Babble", 10, "09F", "sa1")
    with pytest.raises(DataError, match="noise type 'Car' not found.*Babble, LR"):
        T.ntcd_noisy_path(noisy, "Car", 0, "09F", "sa1")
    with pytest.raises(DataError, match="noisy file not found"):
        T.ntcd_noisy_path(noisy, "LR", 0, "09F", "sx99")
    with pytest.raises(C.LayoutError, match="<noise>/<snr>/volunteers"):
        T.list_ntcd_noisy(tmp_path / "nothing")


def test_ntcd_build_records_noisy_source_and_loads_mixtures(tmp_path):
    src = make_tcd_tree(tmp_path / "src", speakers=("09F", "06M"), utts=("sa1",), lips="npy")
    noisy = make_ntcd_noisy_tree(tmp_path / "noisy", ["09F"], ["sa1"], noises=("White",), snrs=(0, 10))
    out = T.build_ntcd_timit(_spec(src, name="ntcd-timit", options={"noisy_source": str(noisy)}), tmp_path / "o", progress=False)
    side = read_sidecar(out)
    assert side["noisy_pairs"] == [["White", 0.0], ["White", 10.0]]
    nz = T.NtcdNoisy.from_corpus(out)
    row = read_manifest(out).set_index("utt_id").loc["09F_sa1"]
    x = nz.load("White", 10, "09F", "09F_sa1", n_samples=int(row["n_samples"]))
    assert x.dtype == np.float32 and x.size == row["n_samples"]
    assert T.source_utt_name("09F_sa1", "09F") == "sa1"
    with pytest.raises(ConfigError, match="only used by corpus 'ntcd-timit'"):
        T.build_tcd_timit(_spec(src, options={"noisy_source": str(noisy)}), tmp_path / "o2", progress=False)
    plain = T.build_tcd_timit(_spec(src), tmp_path / "o3", progress=False)
    with pytest.raises(DataError, match="no NTCD-TIMIT noisy_source"):
        T.NtcdNoisy.from_corpus(plain)
