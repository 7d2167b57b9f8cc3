"""The `mix`, `mix preview` and `score` subcommands end to end on tiny data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.audio_io import write_audio
from benchmark.cli import main


def test_mix_command_on_existing_corpus(tiny_corpus, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["mix", "--corpus", str(tiny_corpus), "--out", str(out), "--jobs", "1",
               "--set", "conditions.n_utterances=1", "--set", "conditions.noises=[white, babble]",
               "--set", "conditions.snrs_db=[0]", "--set", "conditions.corruptions=[none, occlusion@0.7]"])
    assert rc == 0
    table = pd.read_parquet(out / "mixtures.parquet")
    assert len(table) == 4 and table["condition_id"].nunique() == 4
    assert all((out / p).exists() for p in table["lips_path"])
    assert "max |measured - target SNR|" in capsys.readouterr().out


def test_corruption_grid_png(tiny_corpus, tmp_path):
    from benchmark.conditions.preview import corruption_grid
    from benchmark.corpus.manifest import load_utterance, read_manifest

    df = read_manifest(tiny_corpus)
    utt = load_utterance(tiny_corpus, df[df["split"] == "test"].iloc[0])
    png = corruption_grid(utt.lips, tmp_path / "c.png", kinds=["occlusion", "freeze"])
    assert png.stat().st_size > 5000


@pytest.mark.slow
def test_mix_preview_command(tiny_corpus, tmp_path, capsys):
    rc = main(["mix", "preview", "--corpus", str(tiny_corpus), "--out", str(tmp_path)])
    assert rc == 0
    printed = capsys.readouterr().out.split()
    assert any(p.endswith("corruptions.png") for p in printed) and any(p.endswith("spectrograms.png") for p in printed)
    assert (tmp_path / "preview" / "first" / "spectrograms.png").stat().st_size > 10000


def test_score_command_matches_by_name(tmp_path, capsys):
    r = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    for name in ("a", "b", "sub/c"):
        s = (0.1 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
        n = (0.02 * r.standard_normal(s.size)).astype(np.float32)
        write_audio(tmp_path / "ref" / f"{name}.wav", s)
        write_audio(tmp_path / "mix" / f"{name}.wav", s + n)
        if name != "b":
            write_audio(tmp_path / "est" / f"{name}.wav", s + 0.3 * n)
    out = tmp_path / "res.csv"
    rc = main(["score", "--ref", str(tmp_path / "ref"), "--est", str(tmp_path / "est"), "--mix", str(tmp_path / "mix"),
               "--out", str(out), "--metrics", "si_sdr", "stoi"])
    assert rc == 0
    df = pd.read_csv(out, keep_default_na=False)
    assert sorted(df["name"]) == ["a.wav", "sub/c.wav"]
    assert (df["delta_si_sdr"].astype(float) > 9).all()  # 0.3 x the noise: about +10.5 dB
    assert "scored 2 pairs (1 unmatched)" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="not a folder"):
        main(["score", "--ref", str(tmp_path / "ref"), "--est", str(tmp_path / "nothing_here")])
    (tmp_path / "empty").mkdir()
    assert main(["score", "--ref", str(tmp_path / "ref"), "--est", str(tmp_path / "empty")]) == 2
