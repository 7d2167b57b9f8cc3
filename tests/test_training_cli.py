"""``run_benchmark.py train`` on the tiny synthetic corpus: artifacts, summary, reuse, models.load."""
from __future__ import annotations

import pytest

import models
from benchmark.cli import main


@pytest.fixture(autouse=True)
def _threads(monkeypatch):
    monkeypatch.setenv("AVBENCH_TRAIN_THREADS", "1")


def test_train_command_trains_avae_first_and_reuses(tiny_corpus, tmp_path, capsys):
    argv = ["train", "--model", "av-vae", "--fusion", "gated", "--corpus", str(tiny_corpus), "--out", str(tmp_path),
            "--no-progress", "--set", "training.epochs=2", "--set", "training.lr=0.001"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "training summary" in out and "a-vae" in out and "av-vae/gated" in out and "vs A-VAE" in out
    for key in ("a-vae", "av-vae__gated"):
        d = tmp_path / "models" / key
        for f in ("checkpoint.pt", "config.json", "curves.csv", "curves.png"):
            assert (d / f).exists(), (key, f)
    m = models.load(tmp_path / "models" / "av-vae__gated")
    assert m.name == "av-vae" and m.config.fusion == "gated"
    assert m.checkpoint_meta["init_from"].endswith("checkpoint.pt")
    mtime = (tmp_path / "models" / "a-vae" / "checkpoint.pt").stat().st_mtime_ns
    assert main(argv) == 0  # everything up to date: nothing retrained
    assert (tmp_path / "models" / "a-vae" / "checkpoint.pt").stat().st_mtime_ns == mtime
    assert (tmp_path / "models" / "training_summary.csv").exists()


def test_train_command_unknown_fusion_lists_known(tiny_corpus, tmp_path, capfd):
    """A fusion typo is a configuration error (exit 2) naming the option, a suggestion and the
    known names, before any work."""
    out = tmp_path / "run"
    rc = main(["train", "--model", "av-vae", "--fusion", "gatd", "--corpus", str(tiny_corpus), "--out", str(out),
               "--no-progress", "--set", "training.epochs=1", "--set", "training.init_from_avae=false"])
    err = capfd.readouterr().err
    assert rc == 2
    assert "--fusion" in err and "did you mean 'gated'" in err and "known:" in err
    assert not (out / "models").exists()
