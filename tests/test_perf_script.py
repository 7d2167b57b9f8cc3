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
