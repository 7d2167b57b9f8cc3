"""``dnsmos_sig``, ``dnsmos_bak``, ``dnsmos_ovrl``, ``dnsmos_p808``: non-intrusive DNSMOS through
the ``speechmos`` package (optional extra ``dnsmos``: ``pip install -e .[dnsmos]``).

``speechmos`` 0.0.1.1 (Microsoft's DNS Challenge organisers) ships the ONNX models in its wheel
(``dnsmos_models/sig_bak_ovr.onnx``, the DNSMOS P.835 model of the DNS Challenge script, and
``model_v8.onnx``, the P.808 model) and runs them with ``onnxruntime``; nothing is downloaded at
run time (checked with the network disabled). Its ``dnsmos.run(x, 16000)`` tiles a clip shorter
than 9.01 s by repeating it until it is at least 9.01 s long, scores every 9.01 s window at a 1 s
hop and averages the windows; SIG/BAK/OVRL are the P.835 model's raw outputs passed through the
DNS Challenge's cubic calibration polynomials (the non-personalised ones), P.808 is the P.808
model on the log-mel spectrogram. The reference is ignored (``input_*``: the mixture's DNSMOS).
Input samples outside [-1, 1] are an error of the package, reported as NaN with that reason.
Cost on our 2-core CPU: about 0.7 s per 3 s utterance after a one-off ~20 s start (numba/ONNX
initialisation in each process), so no preset computes it by default: add the names to
``metrics.names``.
"""
from __future__ import annotations

import hashlib
from typing import Optional

import numpy as np

from benchmark.metrics import MetricError, metric

PACKAGE = "speechmos"
_KEYS = {"dnsmos_sig": "sig_mos", "dnsmos_bak": "bak_mos", "dnsmos_ovrl": "ovrl_mos", "dnsmos_p808": "p808_mos"}
_MODEL = ("speechmos.dnsmos.run (DNS Challenge DNSMOS, ONNX models shipped in the package, non-personalised "
          "calibration; clips tiled to >= 9.01 s, 9.01 s windows at 1 s hop averaged; 16 kHz; no reference)")
DEFINITIONS = {
    "dnsmos_sig": f"DNSMOS P.835 SIG (speech signal quality, 1..5): {_MODEL}.",
    "dnsmos_bak": f"DNSMOS P.835 BAK (background noise intrusiveness, 1..5): {_MODEL}.",
    "dnsmos_ovrl": f"DNSMOS P.835 OVRL (overall quality, 1..5): {_MODEL}.",
    "dnsmos_p808": f"DNSMOS P.808 MOS (model_v8.onnx on the log-mel spectrogram): {_MODEL}.",
}


def dnsmos_scores(x: np.ndarray, sr: int = 16000) -> dict[str, float]:
    """The four DNSMOS scores of a 1-D signal at 16 kHz (``{dnsmos_sig, dnsmos_bak, dnsmos_ovrl,
    dnsmos_p808}``); a :class:`MetricError` when speechmos is missing or rejects the input."""
    if sr != 16000:
        raise MetricError(f"DNSMOS needs 16 kHz audio, got {sr} Hz")
    try:
        from speechmos import dnsmos
    except ImportError as exc:
        raise MetricError(f"DNSMOS needs the optional package speechmos (pip install -e .[dnsmos]): {exc}") from exc
    x = np.asarray(x, np.float32)
    if not (np.all(x >= -1.0) and np.all(x <= 1.0)):
        raise MetricError(f"speechmos DNSMOS rejects samples outside [-1, 1] (peak {float(np.max(np.abs(x))):.3f})")
    try:
        res = dnsmos.run(x, sr)
    except Exception as exc:  # noqa: BLE001 - onnxruntime / librosa errors become a reason
        raise MetricError(f"speechmos DNSMOS failed: {type(exc).__name__}: {exc}") from exc
    return {col: float(res[key]) for col, key in _KEYS.items()}


def _cached(est: np.ndarray, sr: int, cache: Optional[dict]) -> dict[str, float]:
    key = ("dnsmos", hashlib.sha1(np.ascontiguousarray(est).tobytes()).hexdigest())
    if cache is not None and key in cache:
        return cache[key]
    val = dnsmos_scores(est, sr)
    if cache is not None:
        cache[key] = val
    return val


def _register(name: str, doc: str) -> None:
    def fn(ref, est, *, sr: int = 16000, cache=None, **_):
        return _cached(est, sr, cache)[name]

    fn.__name__ = f"_{name}"
    metric(name, doc, definition=DEFINITIONS[name], package=PACKAGE, needs_reference=False)(fn)


_register("dnsmos_sig", "DNSMOS P.835 SIG (speechmos, non-intrusive; optional extra dnsmos).")
_register("dnsmos_bak", "DNSMOS P.835 BAK (speechmos, non-intrusive; optional extra dnsmos).")
_register("dnsmos_ovrl", "DNSMOS P.835 OVRL (speechmos, non-intrusive; optional extra dnsmos).")
_register("dnsmos_p808", "DNSMOS P.808 MOS (speechmos, non-intrusive; optional extra dnsmos).")
