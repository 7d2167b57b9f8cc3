"""`python -m benchmark.reproducibility` compares two run folders artifact by artifact: bit-identical
folders read as such, and a change of one sample, one weight or one score is found and sized."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.audio_io import write_audio
from benchmark.reproducibility import _verdict, compare


def _run_folder(d, bump=0.0, weight_bump=0.0, score_bump=0.0):
    r = np.random.default_rng(0)
    write_audio(d / "mixtures" / "c1" / "u1" / "mixture.wav", (0.1 * r.standard_normal(1600)).astype(np.float32))
    np.save(d / "mixtures" / "c1" / "u1" / "lips.npy", r.integers(0, 255, (5, 8, 8), dtype=np.uint8))
    y = (0.1 * r.standard_normal(1600)).astype(np.float32)
    y[10] += bump
    write_audio(d / "enhanced" / "a-vae" / "ldem" / "c1" / "u1.wav", y)
    (d / "models" / "a-vae").mkdir(parents=True)
    w = torch.ones(3, 2)
    w[0, 0] += weight_bump
    torch.save({"format": "x", "state_dict": {"w": w, "b": torch.zeros(2)}}, d / "models" / "a-vae" / "checkpoint.pt")
    pd.DataFrame({"item_id": ["c1/u1"], "model_id": ["a-vae"], "algorithm": ["ldem"],
                  "si_sdr": [3.0 + score_bump], "stoi": [0.8]}).to_parquet(d / "results.parquet")
    return d


def test_identical_and_different_run_folders(tmp_path):
    a = _run_folder(tmp_path / "a")
    same = compare(a, _run_folder(tmp_path / "b"))
    assert all(s["n"] > 0 and s["n_identical"] == s["n"] and s["max_abs_diff"] == 0.0 for s in same.values()), same
    assert _verdict(same["checkpoint tensors"]) == "bit-identical (2)"
    diff = compare(a, _run_folder(tmp_path / "c", bump=0.25, weight_bump=1e-3, score_bump=0.5))
    assert diff["enhanced signals"]["max_abs_diff"] == pytest.approx(0.25, abs=1e-4)
    assert diff["checkpoint tensors"]["n_identical"] == 1 and diff["checkpoint tensors"]["max_abs_diff"] == pytest.approx(1e-3, rel=1e-3)
    assert diff["score si_sdr"]["max_abs_diff"] == pytest.approx(0.5)
    assert diff["mixtures"]["max_abs_diff"] == 0.0 and diff["score stoi"]["max_abs_diff"] == 0.0
    shutil.rmtree(tmp_path / "c" / "enhanced")
    gone = compare(a, tmp_path / "c")
    assert gone["enhanced signals"]["missing"] and "one side only" in _verdict(gone["enhanced signals"])
    json.dumps(gone)  # the result is what reproducibility.json holds


def test_run_json_states_what_reproduces(tmp_path, monkeypatch):
    from benchmark.runner.provenance import write_run_json

    monkeypatch.setenv("AVBENCH_ENHANCE_THREADS", "2")
    info = write_run_json(tmp_path, {"name": "x", "seed": 0})
    rep = json.loads((tmp_path / "run.json").read_text())["reproducibility"]
    assert rep == info["reproducibility"]
    assert rep["threads_per_job"] == {"AVBENCH_TRAIN_THREADS": 1, "AVBENCH_ENHANCE_THREADS": 2}
    assert "benchmark.reproducibility" in rep["measure_with"]
