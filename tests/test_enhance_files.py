"""`enhance-files` on your own recordings (folder, wav/flac file or wav.scp; any sample rate;
lips by id), with tiny A-VAE and AV-VAE checkpoints trained here; and `score` on wav.scp lists."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from benchmark.audio_io import DataError, audio_list, read_wav_scp, write_audio
from benchmark.cli import main
from benchmark.spec import ModelEntry, TrainingSpec
from models.enhancement.toy import synth_utterance
from models.training import load_training_data, train_model
from test_training_toycorpus import FPS, LIP, build_toy_corpus

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = ["--set", "n_iter=3", "--device", "cpu", "--no-progress"]
RATES = {"u1": 16000, "u2": 8000, "sub/u3": 22050}  # id -> the file's sample rate


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Tiny trained A-VAE and AV-VAE (gated fusion) checkpoints (two epochs on the toy corpus)."""
    work = tmp_path_factory.mktemp("ckpt")
    root = build_toy_corpus(work / "corpus", n_train=2, n_val=1, utts=2)
    data = load_training_data(root, LIP, progress=False)
    spec = TrainingSpec(epochs=2, lr=3e-3, batch_size=16, seq_len=32, patience=3, reliability_augmentation=False)
    a = train_model(ModelEntry("a-vae"), spec, root, work / "a-vae", data=data, progress=False)
    av = train_model(ModelEntry("av-vae", "gated", params={"lip_size": LIP}), spec, root, work / "av-vae", data=data,
                     progress=False)
    return a.parent, av.parent


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    """Noisy wavs at 16, 8 and 22.05 kHz (one in a subfolder), lips for u1 and u3 only (u3's by its
    base name), and a wav.scp of the same files plus their clean references."""
    d = tmp_path_factory.mktemp("noisy")
    for i, (uid, sr) in enumerate(RATES.items()):
        rng = np.random.default_rng(10 + i)
        x, lips, fps = synth_utterance(rng, 1.0, sr=sr, fps=FPS, lip_size=LIP)
        x = (0.5 * x / np.max(np.abs(x))).astype(np.float32)
        n = (0.05 * rng.standard_normal(x.size)).astype(np.float32)
        (d / "in" / uid).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(d / "in" / f"{uid}.wav"), x + n, sr)  # a plain PCM wav at its own rate
        write_audio(d / "clean" / f"{uid}.wav", x if sr == 16000 else _resampled(x, sr))
        write_audio(d / "mix" / f"{uid}.wav", (x + n) if sr == 16000 else _resampled(x + n, sr))
        if uid != "u2":
            (d / "lips").mkdir(exist_ok=True)
            np.save(d / "lips" / f"{uid.split('/')[-1]}.npy", lips)
    (d / "list").mkdir()
    (d / "list" / "wav.scp").write_text("# id path\n" + "".join(
        f"{uid.replace('/', '-')} ../in/{uid}.wav\n" for uid in RATES))
    return d


def _resampled(x: np.ndarray, sr: int) -> np.ndarray:
    import soxr

    return soxr.resample(x, sr, 16000, quality="HQ").astype(np.float32)


def test_audio_only_checkpoint_any_rate_batched_equals_alone(ckpts, noisy, tmp_path, capsys):
    a, _ = ckpts
    out = tmp_path / "out"
    assert main(["enhance-files", "--checkpoint", str(a), "--algorithm", "ldem", "--input", str(noisy / "in"),
                 "--out", str(out), *FAST]) == 0
    assert "enhanced 3/3 files" in capsys.readouterr().out
    for uid, sr in RATES.items():
        y, ysr = sf.read(out / f"{uid}.wav")
        assert ysr == 16000 and np.all(np.isfinite(y))
        assert abs(y.size - round(sf.info(str(noisy / "in" / f"{uid}.wav")).frames * 16000 / sr)) <= 1
        with np.load(out / f"{uid}.npz") as z:
            assert z["cost"].shape == (3,)
    assert set(read_wav_scp(out / "wav.scp")) == set(RATES)
    table = pd.read_csv(out / "enhance_files.csv")
    assert (table["status"] == "ok").all() and (table["rtf"] > 0).all()
    # one file at a time gives the same audio: the random streams are seeded by the file id
    alone = tmp_path / "alone"
    assert main(["enhance-files", "--checkpoint", str(a), "--input", str(noisy / "in"), "--out", str(alone),
                 "--chunk", "1", *FAST]) == 0
    for uid in RATES:
        np.testing.assert_allclose(sf.read(alone / f"{uid}.wav")[0], sf.read(out / f"{uid}.wav")[0], atol=1e-5)


def test_av_checkpoint_lips_by_id_and_missing_lips_fail_alone(ckpts, noisy, tmp_path, capsys):
    _, av = ckpts
    out = tmp_path / "av"
    rc = main(["enhance-files", "--checkpoint", str(av), "--input", str(noisy / "in"), "--lips", str(noisy / "lips"),
               "--out", str(out), *FAST])
    printed = capsys.readouterr().out
    assert rc == 1
    assert "1 file(s) failed" in printed and "u2" in printed and "no lip file" in printed
    assert not (out / "u2.wav").exists()
    for uid in ("u1", "sub/u3"):
        assert sf.read(out / f"{uid}.wav")[1] == 16000
        with np.load(out / f"{uid}.npz") as z:
            w = z["weights_encoder"]
            assert w.ndim == 2 and w.shape[1] == 2 and np.all((w >= 0) & (w <= 1))
    table = pd.read_csv(out / "enhance_files.csv", keep_default_na=False).set_index("id")
    assert table.loc["u2", "status"] == "failed" and table.loc["u1", "status"] == "ok"
    assert set(read_wav_scp(out / "wav.scp")) == {"u1", "sub/u3"}


def test_wav_scp_in_and_scored_per_utterance(ckpts, noisy, tmp_path):
    a, _ = ckpts
    out = tmp_path / "scp"
    assert main(["enhance-files", "--checkpoint", str(a), "--input", str(noisy / "list" / "wav.scp"),
                 "--out", str(out), *FAST]) == 0
    ids = {uid.replace("/", "-") for uid in RATES}
    assert set(read_wav_scp(out / "wav.scp")) == ids
    # score: a wav.scp of estimates against folders of references and mixtures (ids = paths without suffix)
    (tmp_path / "ref").mkdir()
    for uid in RATES:  # the references under the scp ids
        write_audio(tmp_path / "ref" / f"{uid.replace('/', '-')}.wav", sf.read(noisy / "clean" / f"{uid}.wav")[0])
        write_audio(tmp_path / "mix" / f"{uid.replace('/', '-')}.wav", sf.read(noisy / "mix" / f"{uid}.wav")[0])
    res = tmp_path / "scores.csv"
    assert main(["score", "--ref", str(tmp_path / "ref"), "--est", str(out / "wav.scp"), "--mix", str(tmp_path / "mix"),
                 "--out", str(res), "--metrics", "si_sdr", "stoi"]) == 0
    df = pd.read_csv(res, keep_default_na=False)
    assert sorted(df["name"]) == sorted(ids)
    assert {"si_sdr", "input_si_sdr", "delta_si_sdr", "stoi"} <= set(df.columns)
    assert np.all(np.isfinite(df["si_sdr"].astype(float)))


def test_bad_arguments_and_lists(ckpts, noisy, tmp_path):
    a, _ = ckpts
    base = ["enhance-files", "--input", str(noisy / "in"), "--out", str(tmp_path / "x"), "--no-progress"]
    assert main([*base, "--checkpoint", str(a), "--set", "n_iterr=3"]) == 2  # unknown algorithm parameter
    assert main([*base, "--algorithm", "ldem"]) == 2  # an EM algorithm needs a checkpoint
    assert main([*base, "--algorithm", "noisy"]) == 0  # a baseline needs none
    assert sf.read(tmp_path / "x" / "u2.wav")[1] == 16000
    scp = tmp_path / "bad.scp"
    scp.write_text("a sox x.wav -t wav - |\n")
    with pytest.raises(DataError, match="piped"):
        read_wav_scp(scp)
    scp.write_text("a x.wav\na y.wav\n")
    with pytest.raises(DataError, match="duplicate"):
        read_wav_scp(scp)
    spaced = tmp_path / "dir with space"
    write_audio(spaced / "f.wav", np.ones(1600, np.float32) * 0.1)
    scp.write_text(f"k {spaced / 'f.wav'}\n")
    assert read_wav_scp(scp) == {"k": spaced / "f.wav"}
    assert audio_list(noisy / "in", keep_suffix=False).keys() == set(RATES)


def _em_algorithms() -> list[str]:
    from models.enhancement.em import EMAlgorithm
    from models.enhancement.registry import ALGORITHMS

    return [n for n in ALGORITHMS.names() if issubclass(ALGORITHMS.get(n), EMAlgorithm)]


@pytest.mark.parametrize("algorithm", _em_algorithms())
def test_every_em_algorithm_on_one_file(ckpts, noisy, tmp_path, algorithm):
    _, av = ckpts
    out = tmp_path / algorithm
    assert main(["enhance-files", "--checkpoint", str(av), "--algorithm", algorithm, "--input", str(noisy / "in" / "u1.wav"),
                 "--lips", str(noisy / "lips"), "--out", str(out), "--set", "n_iter=2", "--device", "cpu", "--no-progress"]) == 0
    y, sr = sf.read(out / "u1.wav")
    assert sr == 16000 and y.size == 16000 and np.all(np.isfinite(y))


@pytest.mark.parametrize("composite", ["mixture-vae", "switching-vae"])
def test_composite_from_component_checkpoints(ckpts, noisy, tmp_path, composite):
    """`--model mixture-vae|switching-vae --component audio=A --component visual=AV`: built from the
    two checkpoints, run with its switching E-step; the per-frame AV responsibility is a trace."""
    a, av = ckpts
    out = tmp_path / composite
    args = ["enhance-files", "--model", composite, "--component", f"audio={a}", "--component", f"visual={av}",
            "--model-set", "stay_prob=0.9", "--algorithm", "ldem", "--input", str(noisy / "in" / "u1.wav"),
            "--lips", str(noisy / "lips"), "--out", str(out), *FAST]
    assert main(args) == 0
    y, sr = sf.read(out / "u1.wav")
    assert sr == 16000 and y.size == 16000 and np.all(np.isfinite(y))
    traces = np.load(out / "u1.npz")
    resp = [k for k in traces.files if "resp" in k or "switch" in k]
    assert resp, traces.files
    r = traces[resp[0]]
    assert np.all((r >= 0) & (r <= 1))


def test_composite_bad_arguments(ckpts, noisy, tmp_path):
    a, av = ckpts
    base = ["enhance-files", "--input", str(noisy / "in" / "u1.wav"), "--lips", str(noisy / "lips"),
            "--out", str(tmp_path / "x"), *FAST]
    comp = ["--component", f"audio={a}", "--component", f"visual={av}"]
    assert main([*base, "--model", "mixture-vae", "--component", f"audio={a}"]) == 2  # a role missing
    assert main([*base, "--model", "mixture-vae", *comp, "--component", f"video={av}"]) == 2  # unknown role
    assert main([*base, "--model", "mixture-vae", "--component", f"audio={av}", "--component", f"visual={a}"]) == 2  # swapped
    assert main([*base, "--model", "mixture-vae", *comp, "--model-set", "stay_prob=2"]) == 2  # out of range
    assert main([*base, "--model", "mixture-vae", *comp, "--algorithm", "vem"]) == 2  # no switching E-step for VEM
    assert main([*base, "--model", "a-vae", *comp]) == 2  # not a composite
    assert main([*base, "--model", "mixture-vae", *comp, "--checkpoint", str(a)]) == 2  # both
    assert main([*base, "--checkpoint", str(a), "--component", f"audio={a}"]) == 2  # --component without --model
    assert main([*base, "--model", "mixture-vae", "--component", f"audio={a}", "--component",
                 f"visual={tmp_path / 'nowhere'}"]) == 2  # unreadable checkpoint
    assert not (tmp_path / "x" / "u1.wav").exists()
