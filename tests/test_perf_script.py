"""The speed benchmark script runs end to end (tiny settings; the figures themselves are not asserted)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from benchmark import perf


def test_perf_runs_and_reports_every_mode(one_torch_thread):
    model = perf.load_model(None, "a-vae")
    inputs = perf.make_inputs(2, 0.5, lips=False)
    rows, ref = perf.run_perf(model, inputs, ["mcem", "ldem"], ["cpu"], params={"mcem": {"n_iter": 1}, "ldem": {"n_iter": 1}})
    assert {(r.algorithm, r.mode) for r in rows} == {(a, m) for a in ("mcem", "ldem") for m in ("one-by-one", "batched")}
    assert all(r.n_failed == 0 and r.wall_s > 0 and np.isfinite(r.si_sdr) for r in rows)
    assert ref["wall_s"] > 0 and np.isfinite(ref["si_sdr"])
    table = perf.format_table(rows, ref, inputs, "test machine")
    assert "reference-mcem" in table and "batched / one-by-one throughput, mcem" in table


def test_corpus_inputs_crop_and_mix(tiny_corpus):
    ins = perf.corpus_inputs(str(tiny_corpus), 2, 0.5, lips=True)
    assert len(ins) == 2
    for i in ins:
        assert i.mixture.size == 8000 and i.clean.size == 8000
        assert i.lips.shape[0] == int(round(0.5 * i.fps))
        snr = 10 * np.log10(np.sum(i.clean ** 2) / np.sum(i.noise ** 2))
        assert abs(snr) < 1e-3
    with pytest.raises(ValueError, match="only"):
        perf.corpus_inputs(str(tiny_corpus), 2, 1000.0)
    joined = perf.corpus_inputs(str(tiny_corpus), 1, 4.0, lips=True)[0]  # longer than any one utterance
    assert joined.mixture.size == 64000 and joined.lips.shape[0] == int(round(4.0 * joined.fps))


def test_quality_line_paired_difference():
    assert "equal quality" in perf.quality_line((5.0, 6.0, 7.0), (5.1, 6.1, 6.9))
    far = perf.quality_line((5.0, 6.0, 7.0), (4.0, 5.0, 6.1))
    assert "NOT within 0.3 dB" in far and "+0.97" in far and "includes 0" not in far
    noisy = perf.quality_line((9.0, 1.0, 6.0, 2.0), (1.0, 8.0, 1.0, 6.0))
    assert "NOT within" in noisy and "includes 0" in noisy


def test_rss_peak_sees_a_temporary_allocation():
    with perf._RssPeak() as rss:
        base = rss.peak
        x = np.ones(200 * 2 ** 20 // 8)  # 200 MB, touched
        time.sleep(0.1)  # the sampler thread runs while the array is held
        del x
    assert rss.peak - base > 150


def test_classify_op_by_name():
    assert perf.classify_op("aten::addmm") == "GEMM / matmul"
    assert perf.classify_op("aten::_convolution") == "GEMM / matmul"
    assert perf.classify_op("aten::mul_") == "elementwise"
    assert perf.classify_op("aten::tanh_backward") == "elementwise"
    assert perf.classify_op("aten::logsumexp") == "reductions"
    assert perf.classify_op("aten::normal_") == "random numbers"
    assert perf.classify_op("aten::copy_") == "other"


def test_profile_kinds_sum_within_wall_and_see_the_gemms(one_torch_thread):
    model = perf.load_model(None, "a-vae")
    inputs = perf.make_inputs(2, 0.5, lips=False)
    for alg in ("mcem", "ldem"):
        r = perf.profile_em(model, inputs, alg, "cpu", n_iter=2)
        assert r.n_timed == 1 and r.batch_size == 2 and r.wall_ms > 0 and r.wall_unprofiled_ms > 0
        assert set(r.kinds_ms) == set(perf.OP_KINDS) | {perf.OTHER_KIND, perf.OVERHEAD_KIND}
        assert all(v >= 0 for k, v in r.kinds_ms.items() if k != perf.OVERHEAD_KIND)
        assert r.op_ms <= r.wall_ms  # the operators ran inside the window, one after another
        assert r.kinds_ms[perf.OVERHEAD_KIND] == pytest.approx(r.wall_ms - r.op_ms)
        assert r.kinds_ms["GEMM / matmul"] > 0 and r.kinds_ms["random numbers"] > 0  # decoder GEMMs; the sampler draws
        assert any("addmm" in name or "mm" in name for name, _ in r.top_ops)
    with pytest.raises(ValueError, match="n_iter >= 2"):
        perf.profile_em(model, inputs, "vem", "cpu", n_iter=1)
    text = perf.format_profile([r], 0.5)
    assert "launch/Python overhead" in text and "ldem on cpu" in text


def test_repeated_inputs_get_their_own_ids_and_random_streams(one_torch_thread):
    from models.enhancement.api import enhance

    base = perf.make_inputs(2, 0.5, lips=False)
    rep = perf.repeat_inputs(base, 5)
    assert [i.item_id for i in rep] == ["perf/u000", "perf/u001", "perf/u000~r1", "perf/u001~r1", "perf/u000~r2"]
    assert len({i.pair_id or i.item_id for i in rep}) == 5
    assert all(np.array_equal(r.mixture, base[j % 2].mixture) for j, r in enumerate(rep))
    outs = enhance(perf.load_model(None, "a-vae"), "mcem", rep[:3], params={"n_iter": 1}, progress=False)
    assert not np.allclose(outs[0].estimate, outs[2].estimate)  # same mixture, another random stream


def test_curve_rows_and_absent_devices_are_skipped(one_torch_thread, monkeypatch, capsys):
    monkeypatch.setattr(perf.torch.cuda, "is_available", lambda: False)
    assert perf.available_devices(["cpu", "cuda", "cpu"]) == (["cpu"], ["cuda: skipped (CUDA is not available on this machine)"])
    model = perf.load_model(None, "a-vae")
    rows = perf.run_curve(model, perf.make_inputs(2, 0.5, lips=False), ["vem"], ["cpu"], [1, 3], params={"vem": {"n_iter": 1}})
    assert [(r.algorithm, r.batch_size) for r in rows] == [("vem", 1), ("vem", 3)]
    assert all(r.n_failed == 0 and r.wall_s > 0 and r.utts_per_s == pytest.approx(r.batch_size / r.wall_s) for r in rows)
    assert rows[1].rtf == pytest.approx(rows[1].wall_s / 1.5)
    assert perf.main(["--n-utts", "1", "--duration", "0.5", "--n-iter", "2", "--algorithms", "vem", "--devices", "cpu", "cuda",
                      "--batch-sizes", "1", "2"]) == 0
    out = capsys.readouterr().out
    assert "cuda: skipped" in out and "batch-size curve" in out and "reference-mcem" not in out


def test_device_agreement_of_a_device_with_itself(one_torch_thread):
    model = perf.load_model(None, "a-vae")
    inputs = perf.make_inputs(2, 0.5, lips=False)
    rows = perf.device_agreement(model, inputs, ["peem", "mcem"], ("cpu", "cpu"), params={"peem": {"n_iter": 2}, "mcem": {"n_iter": 1}})
    assert [r.algorithm for r in rows] == ["peem", "mcem"] and all(r.ok and r.max_abs == 0.0 for r in rows)
    assert rows[0].same_stream and not rows[1].same_stream


def test_gpu_check_script_parses_and_names_its_steps():
    """The GPU check script is only run by hand on a CUDA machine; here: bash accepts it and every
    step it documents is one it runs."""
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    for s in ("agreement", "curve", "profile", "flags", "smoke", "repro"):
        assert f"\n    {s})" in text
    assert "set -euo pipefail" in text and "training.device=cuda" in text and "enhance.device=cuda" in text


def test_compile_warm_up_covers_the_whole_and_a_shrunk_batch(monkeypatch):
    """A compiled variant is warmed up on the timed batch and on one utterance fewer (dynamo's
    dynamic-batch recompilation, which a timed run would otherwise pay when converged utterances
    leave the batch); nothing is run for the exact path."""
    calls = []
    import models.enhancement.api as api

    monkeypatch.setattr(api, "enhance", lambda model, alg, inputs, **kw: calls.append((len(inputs), kw["params"])))
    inputs = list(range(5))
    perf._compile_warm_up(None, "mcem", inputs, "cpu", {"tol": 1e-5}, 20000, 0)
    assert calls == []
    perf._compile_warm_up(None, "mcem", inputs, "cpu", {"compile": "default"}, 20000, 0)
    assert [n for n, _ in calls] == [5, 4]
    assert all(p == {"compile": "default", "n_iter": 2} for _, p in calls)
