"""Validation of audio, lip and manifest files (benchmark.audio_io, benchmark.corpus.manifest):
every problem is a DataError that names the file and the problem."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from benchmark.audio_io import (
    DataError, check_av_duration, read_audio, read_lips, validate_audio, validate_lips, write_audio, write_lips,
)
from benchmark.corpus.manifest import (
    MANIFEST_FILE, ManifestRow, load_utterance, read_manifest, write_manifest,
)
from fixtures_real import voiced


@pytest.fixture()
def good_wav(tmp_path):
    return write_audio(tmp_path / "good.wav", voiced(1.0))


def test_read_good_audio(good_wav):
    x = read_audio(good_wav)
    assert x.dtype == np.float32 and x.shape == (16000,)


def test_wrong_sample_rate(tmp_path):
    p = tmp_path / "sr8k.wav"
    sf.write(str(p), voiced(1.0, 8000), 8000)
    with pytest.raises(DataError) as ei:
        read_audio(p)
    assert ei.value.path == str(p) and "wrong sample rate 8000 Hz (expected 16000 Hz)" in str(ei.value)
    with pytest.raises(DataError, match="wrong sample rate"):
        read_audio(p, validate=False)


def test_stereo(tmp_path):
    p = tmp_path / "stereo.wav"
    x = voiced(1.0)
    sf.write(str(p), np.stack([x, x], axis=1), 16000)
    with pytest.raises(DataError, match=r"stereo\.wav: expected mono audio, got shape \(16000, 2\)"):
        read_audio(p)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf(tmp_path, bad):
    x = voiced(1.0)
    x[100:110] = bad
    p = write_audio(tmp_path / "nonfinite.wav", x)
    with pytest.raises(DataError, match=r"nonfinite\.wav: audio contains 10 NaN/inf samples"):
        read_audio(p)


def test_silence_and_clipping_and_short(tmp_path):
    p = write_audio(tmp_path / "quiet.wav", np.full(16000, 1e-7, np.float32))
    with pytest.raises(DataError, match=r"quiet\.wav: audio is silent"):
        read_audio(p)
    x = np.clip(voiced(1.0) * 8, -1, 1)  # heavily clipped
    p = write_audio(tmp_path / "clipped.wav", x)
    with pytest.raises(DataError, match=r"clipped\.wav: audio is clipped: \d+\.\d+% of samples"):
        read_audio(p)
    ok = voiced(1.0)
    ok[:50] = 1.0  # 0.3 % at full scale: below the 1 % threshold
    assert read_audio(write_audio(tmp_path / "fine.wav", ok)).size == 16000
    p = write_audio(tmp_path / "short.wav", voiced(0.05))
    with pytest.raises(DataError, match=r"short\.wav: audio too short"):
        read_audio(p)


def test_missing_and_corrupt_audio(tmp_path):
    with pytest.raises(DataError, match=r"absent\.wav: file not found"):
        read_audio(tmp_path / "absent.wav")
    p = tmp_path / "corrupt.wav"
    p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage garbage")
    with pytest.raises(DataError, match=r"corrupt\.wav: cannot read audio"):
        read_audio(p)


def test_write_audio_is_byte_deterministic(tmp_path):
    x = voiced(0.5)
    a = write_audio(tmp_path / "a.wav", x)
    time.sleep(1.05)  # libsndfile's PEAK chunk would carry a different timestamp now
    b = write_audio(tmp_path / "b.wav", x)
    assert a.read_bytes() == b.read_bytes()
    assert np.array_equal(read_audio(a), x)


def test_lip_validation(tmp_path):
    with pytest.raises(DataError, match="N x H x W"):
        validate_lips(np.zeros((4, 8)), path="l.npy")
    with pytest.raises(DataError, match="no frames"):
        validate_lips(np.zeros((0, 8, 8), np.uint8), path="l.npy")
    with pytest.raises(DataError, match="NaN/inf"):
        validate_lips(np.full((2, 4, 4), np.nan), path="l.npy")
    f = validate_lips(np.full((2, 4, 4), 0.5, np.float32))
    assert f.dtype == np.uint8 and f[0, 0, 0] == 128  # [0, 1] floats are scaled to 0..255
    p = write_lips(tmp_path / "ok.npy", np.zeros((3, 8, 8, 1), np.uint8))
    assert read_lips(p).shape == (3, 8, 8)
    np.save(tmp_path / "flat.npy", np.zeros((3, 64)))
    with pytest.raises(DataError, match=r"flat\.npy: lip frames must be N x H x W"):
        read_lips(tmp_path / "flat.npy")
    with pytest.raises(DataError, match=r"gone\.npy: file not found"):
        read_lips(tmp_path / "gone.npy")


def test_unreadable_video_and_corrupt_npy(tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x01" * 500)
    with pytest.raises(DataError, match=r"broken\.mp4: unreadable video"):
        read_lips(tmp_path / "broken.mp4")
    (tmp_path / "broken.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match=r"broken\.npy: cannot read lip frames"):
        read_lips(tmp_path / "broken.npy")


def test_av_duration_tolerance():
    check_av_duration(16000, 16000, 27, 25.0, tolerance_s=0.2)  # 1.0 s vs 1.08 s: fine
    with pytest.raises(DataError, match=r"lips\.npy: audio/video duration mismatch: audio 1\.000 s vs video 1\.400 s"):
        check_av_duration(16000, 16000, 35, 25.0, path="lips.npy", tolerance_s=0.2)


# -- the manifest ---------------------------------------------------------------------------


def _corpus(root, n_frames=25):
    rows = []
    for i, spk in enumerate(("a", "b")):
        write_audio(root / f"audio/{spk}.wav", voiced(1.0, seed=i))
        write_lips(root / f"lips/{spk}.npy", np.full((n_frames, 8, 8), 100, np.uint8))
        rows.append(ManifestRow(utt_id=f"{spk}_0", speaker=spk, split="train" if i else "test",
                                audio_path=f"audio/{spk}.wav", lips_path=f"lips/{spk}.npy", fps=25.0,
                                n_frames=n_frames, n_samples=16000))
    write_manifest(root, rows, {"generator": "test"})
    return root


def test_manifest_round_trip(tmp_path):
    root = _corpus(tmp_path)
    df = read_manifest(root)
    assert list(df["utt_id"]) == ["a_0", "b_0"]
    u = load_utterance(root, df.iloc[0])
    assert u.audio.size == 16000 and u.lips.shape == (25, 8, 8) and u.split == "test"


def test_load_utterance_names_the_bad_file(tmp_path):
    root = _corpus(tmp_path, n_frames=40)  # 1.6 s of video for 1 s of audio
    with pytest.raises(DataError, match=r"lips/a\.npy: audio/video duration mismatch"):
        load_utterance(root, read_manifest(root).iloc[0])
    (root / "audio" / "b.wav").unlink()
    with pytest.raises(DataError, match=r"audio/b\.wav: file not found"):
        load_utterance(root, read_manifest(root).iloc[1])


def test_missing_and_corrupt_manifest(tmp_path):
    with pytest.raises(DataError, match="manifest not found"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_FILE).write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError) as ei:
        read_manifest(tmp_path)
    assert MANIFEST_FILE in str(ei.value) and "corrupt manifest" in str(ei.value)
    pd.DataFrame({"utt_id": ["x"], "speaker": ["s"]}).to_parquet(tmp_path / MANIFEST_FILE)
    with pytest.raises(DataError, match="manifest lacks columns"):
        read_manifest(tmp_path)


def test_manifest_rows_are_checked():
    with pytest.raises(ValueError, match="u1: unknown split 'dev'"):
        ManifestRow(utt_id="u1", speaker="s", split="dev", audio_path="a", lips_path="l", fps=25, n_frames=1, n_samples=1)


def test_duplicate_utt_ids_are_refused(tmp_path):
    write_audio(tmp_path / "a.wav", voiced(1.0))
    write_lips(tmp_path / "a.npy", np.zeros((25, 4, 4), np.uint8))
    row = ManifestRow(utt_id="u", speaker="s", split="train", audio_path="a.wav", lips_path="a.npy", fps=25, n_frames=25, n_samples=16000)
    with pytest.raises(ValueError, match="duplicate utt_id 'u'"):
        write_manifest(tmp_path, [row, row], {})


def test_validate_audio_on_arrays_names_array():
    with pytest.raises(DataError, match=r"^<array>: wrong sample rate"):
        validate_audio(voiced(1.0), 22050)
