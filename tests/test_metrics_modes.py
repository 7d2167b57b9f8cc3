"""PESQ wide- and narrow-band as separate columns (both MOS-LQO), DNSMOS through speechmos (optional),
each metric's declared definition/package reaching run.json and the report's Methods section."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from benchmark.metrics import DEFAULT_METRICS, METRICS, metric_columns, metric_provenance, score_input, score_pair


def _speech_like(n: int = 32000, seed: int = 0) -> np.ndarray:
    """A voiced, amplitude-modulated harmonic signal with pauses (PESQ's VAD finds utterances in it)."""
    t = np.arange(n) / 16000
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = np.clip(np.sin(2 * np.pi * 1.5 * t), 0, None) ** 0.5
    return (0.2 * x * env + 1e-3 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def test_pesq_wb_and_nb_are_separate_default_columns_of_mapped_mos():
    from pesq import pesq

    from benchmark.spec import MetricsSpec, load_spec

    assert {"pesq_wb", "pesq_nb"} <= set(DEFAULT_METRICS) and {"pesq_wb", "pesq_nb"} <= set(MetricsSpec().names)
    for preset in ("smoke", "paper-table", "visual-stress", "ablation"):
        assert {"pesq_wb", "pesq_nb"} <= set(load_spec(preset).metrics.names), preset
    s = _speech_like()
    noise = np.random.default_rng(1).standard_normal(s.size).astype(np.float32) * 0.05
    mix, est = s + noise, s + 0.3 * noise
    out = score_pair(s, est, mix, names=["pesq_wb", "pesq_nb"])
    assert out["pesq_wb_error"] == "" and out["pesq_nb_error"] == ""
    assert out["pesq_wb"] == pytest.approx(pesq(16000, s, est, "wb"))
    assert out["pesq_nb"] == pytest.approx(pesq(16000, s, est, "nb"))
    assert out["pesq_wb"] != out["pesq_nb"]
    for col in ("pesq_wb", "pesq_nb"):
        assert out[f"delta_{col}"] == pytest.approx(out[col] - out[f"input_{col}"]) and out[f"delta_{col}"] > 0
    # narrow-band is the P.862.1 MOS-LQO mapping, not the raw P.862 score: raw tops out at 4.5,
    # the mapping of 4.5 is 0.999 + 4 / (1 + exp(-1.4945 * 4.5 + 4.6607)) = 4.549
    ident = score_pair(s, s, names=["pesq_nb"])["pesq_nb"]
    assert ident == pytest.approx(0.999 + 4 / (1 + math.exp(-1.4945 * 4.5 + 4.6607)), abs=2e-3) and ident > 4.5
    # the legacy name `pesq` follows pesq_mode and is scored once when its column is also named
    assert metric_columns(["pesq", "pesq_wb", "stoi"], "wb", with_input=False) == ["pesq_wb", "pesq_wb_error", "stoi", "stoi_error"]
    assert score_pair(s, est, names=["pesq"], pesq_mode="nb")["pesq_nb"] == out["pesq_nb"]
    assert set(score_input(s, mix, names=["pesq", "pesq_nb"], pesq_mode="nb")) == {"input_pesq_nb", "input_pesq_nb_error"}


def test_every_metric_declares_definition_and_package_and_run_json_records_them():
    from benchmark.runner.provenance import metrics_of

    prov = {e["name"]: e for e in metric_provenance()}
    assert set(prov) == set(METRICS.names())
    for name, e in prov.items():
        assert len(e["definition"]) > 30, name
        if e["package"] in ("pesq", "pystoi", "mir_eval"):
            assert e["version"], name  # installed dependencies: their version is recorded
    assert prov["si_sdr"]["package"] is None and "zero-mean" in prov["si_sdr"]["definition"]
    assert "BSS Eval v3" in prov["sdr"]["definition"] and "mir_eval" in prov["sdr"]["definition"]
    assert "P.862.1" in prov["pesq_nb"]["definition"] and "P.862.2" in prov["pesq_wb"]["definition"]
    assert "extended=True" in prov["estoi"]["definition"] and "extended=False" in prov["stoi"]["definition"]
    assert "P.835" in prov["dnsmos_ovrl"]["definition"] and not prov["dnsmos_ovrl"]["needs_reference"]
    rec = metrics_of({"metrics": {"names": ["si_sdr", "pesq", "estoi"], "pesq_mode": "nb"}})
    assert [e["column"] for e in rec] == ["si_sdr", "pesq_nb", "estoi"]


def test_report_methods_section_reads_the_declarations():
    from benchmark.report.html import methods_html, metric_methods

    recorded = {"metrics": metric_provenance(["si_sdr", "pesq_wb", "estoi"])}
    html = methods_html(metric_methods(recorded, ["si_sdr", "pesq_wb"]))
    assert "P.862.2" in html and "zero-mean" in html and "ESTOI" not in html  # only the columns present
    from_registry = methods_html(metric_methods({}, ["stoi", "sdr", "pesq_nb"]))
    assert "extended=False" in from_registry and "BSS Eval v3" in from_registry and "P.862.1" in from_registry


def test_dnsmos_without_speechmos_is_nan_with_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "speechmos", None)  # import speechmos -> ImportError
    s = _speech_like(16000)
    out = score_pair(s, s, names=["dnsmos_ovrl", "dnsmos_p808"])
    for col in ("dnsmos_ovrl", "dnsmos_p808"):
        assert math.isnan(out[col]) and "speechmos" in out[f"{col}_error"]


def test_dnsmos_rejects_out_of_range_samples_with_a_reason():
    pytest.importorskip("speechmos")
    s = _speech_like(16000)
    out = score_pair(s, 3.0 * s / np.max(np.abs(s)), names=["dnsmos_sig"])
    assert math.isnan(out["dnsmos_sig"]) and "outside [-1, 1]" in out["dnsmos_sig_error"]


@pytest.mark.slow
def test_dnsmos_scores_clean_above_noisy_and_ignores_the_reference():
    pytest.importorskip("speechmos")
    s = _speech_like(48000)
    noisy = np.clip(s + 0.1 * np.random.default_rng(2).standard_normal(s.size).astype(np.float32), -1, 1)
    names = ["dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"]
    out = score_pair(s, s, noisy, names=names)
    for col in names:
        assert out[f"{col}_error"] == "" and 1.0 <= out[col] <= 5.0, (col, out)
    assert out["dnsmos_bak"] > out["input_dnsmos_bak"]  # white noise is a worse background
    other_ref = score_pair(np.roll(s, 4000), s, names=names)
    assert all(other_ref[c] == out[c] for c in names)  # non-intrusive: the reference plays no part
