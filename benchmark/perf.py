"""Speed benchmark of the enhancement algorithms (a script, not a test).

(Over 400 lines on purpose: one command-line benchmark script, ``run_benchmark.py perf``; its
parts -- timing, batch-size curves, profiles, device agreement, flag effects -- share the inputs,
the model loading and the report formatting, and nothing in the pipeline imports it.)

Side by side, in one run, on the same utterances: real-time factor and utterances per second of
each algorithm, one-by-one (``frame_budget`` = 1: one utterance per batch) versus batched, on CPU
and on CUDA when present, with the peak memory; plus the reference per-utterance NumPy MCEM
(:mod:`models.enhancement.reference_mcem`, structured like the published code) and the speed-up
of ours over it, with the SI-SDR of both (equal quality: within 0.3 dB).

Runs without a trained checkpoint: by default a random-init ``a-vae`` (or ``--checkpoint PATH``)
on SYNTHETIC harmonic "speech" (:func:`models.enhancement.toy.synth_utterance`) plus white noise
at 0 dB. With a random-init model the SI-SDR values only serve the equal-output comparison.

    python -m benchmark.perf --n-utts 8 --duration 3
    python -m benchmark.perf --checkpoint runs/smoke/models/a-vae/checkpoint.pt --devices cpu cuda

Three further modes (any combination; the comparison above runs when none is asked for, or with
``--compare``):

* ``--batch-sizes 1 16 128 512``: the scaling curve. For every device, algorithm and batch size
  ``B``: one batch of ``B`` utterances (one ``enhance`` call whose frame budget holds them all),
  with throughput (utterances/s), RTF and peak memory. Every row uses the same inputs: the
  ``--n-utts`` distinct utterances, repeated when ``B`` is larger, each repeat with its own item
  and pair id (so its own random streams; :func:`repeat_inputs`).
* ``--profile``: a few EM iterations of each algorithm under ``torch.profiler``, with the time
  per EM iteration by kind of operator (:data:`OP_KINDS`) and the gap between the wall time and
  the summed operator time ("launch/Python overhead"); :func:`profile_em`.
* ``--agreement``: CUDA-vs-CPU agreement of the estimates on the same inputs
  (:func:`device_agreement`; the tolerance is documented there).
* ``--flag-effects``: each EM speed option (:data:`FLAG_VARIANTS`: TF32 matrix products, a bf16
  decoder, ``torch.compile`` of the step functions) against the exact default, side by side:
  wall time, RTF and the paired SI-SDR difference with its 95 % CI (:func:`flag_effects`).

``--compile``, ``--matmul-precision`` and ``--decoder-dtype`` set those EM options
(:class:`models.enhancement.em.EMConfig`) for every mode; all default to the exact eager path.

A device that is named but absent (``--devices cuda`` without CUDA) is skipped with a line
saying so.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import platform
import resource
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)


def si_sdr(est: np.ndarray, ref: np.ndarray) -> float:
    """Scale-invariant SDR in dB."""
    a = float(np.dot(est, ref) / np.dot(ref, ref))
    t = a * ref
    return float(10 * np.log10(np.sum(t ** 2) / max(np.sum((est - t) ** 2), 1e-20)))


@dataclass
class PerfRow:
    algorithm: str
    mode: str
    device: str
    wall_s: float
    rtf: float
    utts_per_s: float
    peak_mem_mb: float
    si_sdr: float
    n_failed: int = 0
    si_sdrs: tuple[float, ...] = ()  # per utterance (NaN where it failed)


def _in_white_noise(x: np.ndarray, snr_db: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mixture, scaled noise)``: ``x`` plus seeded white noise at exactly ``snr_db`` (the
    project's mixer, :func:`benchmark.conditions.mixing.mix`)."""
    from benchmark.conditions.mixing import mix

    noise = np.random.default_rng(seed).standard_normal(x.size)
    mixture, scaled, _ = mix(x, noise, snr_db, seed)
    return mixture, scaled


def make_inputs(n: int, duration: float, snr_db: float = 0.0, seed: int = 0, lips: bool = True):
    """``n`` synthetic noisy utterances (EnhanceInput) of ``duration`` seconds (white noise)."""
    from models.enhancement.api import EnhanceInput
    from models.enhancement.toy import synth_utterance

    out = []
    for i in range(n):
        x, lp, fps = synth_utterance(np.random.default_rng(seed + i), duration, lip_size=64)
        y, noise = _in_white_noise(x, snr_db, seed + 1000 + i)
        out.append(EnhanceInput(f"perf/u{i:03d}", y, lp if lips else None, fps, clean=x, noise=noise))
    return out


def corpus_inputs(root: str, n: int, duration: float, snr_db: float = 0.0, seed: int = 0, lips: bool = True, split: str = "test"):
    """``n`` inputs of exactly ``duration`` seconds from a built corpus's ``split``, in white noise at
    ``snr_db`` (EnhanceInput): in-distribution input for a checkpoint trained on that corpus, unlike
    the harmonic toy utterances. Consecutive utterances of one speaker are joined (audio and lips)
    until the duration is reached, then cropped."""
    from benchmark.corpus.manifest import load_utterance, read_manifest
    from models.enhancement.api import EnhanceInput

    man = read_manifest(root)
    man = man[man["split"] == split]
    out = []
    for spk, rows in man.groupby("speaker", sort=True):
        audio: list[np.ndarray] = []
        frames: list[np.ndarray] = []
        for _, row in rows.iterrows():
            if len(out) == n:
                break
            u = load_utterance(root, row)
            audio.append(u.audio.astype(np.float32))
            frames.append(u.lips)
            ns = int(round(duration * u.sample_rate))
            if sum(a.size for a in audio) < ns:
                continue
            x = np.concatenate(audio)[:ns]
            nv = max(1, int(round(duration * u.fps)))
            y, noise = _in_white_noise(x, snr_db, seed + 1000 + len(out))
            lp = np.concatenate(frames)[:nv] if lips else None
            out.append(EnhanceInput(f"perf/{spk}/{len(out):03d}", y, lp, u.fps, clean=x, noise=noise))
            audio, frames = [], []
    if len(out) < n:
        raise ValueError(f"corpus {root}: only {len(out)} inputs of {duration} s from the {split} split (asked for {n})")
    return out


def load_model(checkpoint: Optional[str], name: str = "a-vae", fusion: Optional[str] = None):
    """A checkpoint, or a random-init registered model (seeded)."""
    if checkpoint:
        from models.checkpoint import load

        return load(checkpoint)
    from models.checkpoint import build_model

    torch.manual_seed(0)
    return build_model(name, {"lip_size": 64} if fusion else {}, fusion=fusion)


class _RssPeak:
    """Peak resident memory (MB) of this process *during* a ``with`` block, sampled every 5 ms from
    ``/proc/self/statm`` (Linux); elsewhere the process-lifetime peak ``ru_maxrss``."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def _rss_mb(self) -> float:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self._page / 2 ** 20
        except OSError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss_mb())

    def __enter__(self) -> "_RssPeak":
        self.peak = self._rss_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss_mb())


def available_devices(devices: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(usable devices, one line per skipped device)``: a ``cuda`` device without CUDA is skipped."""
    ok: list[str] = []
    skipped: list[str] = []
    for d in devices:
        if d.startswith("cuda") and not torch.cuda.is_available():
            skipped.append(f"{d}: skipped (CUDA is not available on this machine)")
        elif d not in ok:
            ok.append(d)
    return ok, skipped


def _warm_up(model: Any, algorithms: Sequence[str], inputs: list, dev: str, params: dict[str, dict],
             frame_budget: int = 20000, seed: int = 0) -> None:
    """One 1-iteration run per algorithm on one input: thread pools, kernels and the allocator are
    set up outside the timings; for an algorithm with ``compile`` on, also the compilations the
    timed runs need (:func:`_compile_warm_up`)."""
    from models.enhancement.api import enhance

    for alg in algorithms:
        enhance(model, alg, inputs[:1], params=dict(params.get(alg) or {}, n_iter=1), device=dev, progress=False)
        _compile_warm_up(model, alg, inputs, dev, params.get(alg), frame_budget, seed)


def _compile_warm_up(model: Any, alg: str, inputs: list, dev: str, params: Optional[dict], frame_budget: int,
                     seed: int) -> None:
    """With ``compile`` on in ``params``: 2-iteration runs (the final estimate included) on the whole
    batch and on the batch without its last utterance, so that the step functions are compiled for
    these shapes *and* in their dynamic-batch form (dynamo recompiles a function with the batch
    dimension dynamic when it sees a second batch size, as in a timed run once converged
    utterances leave the batch); no compilation is then timed. Nothing with ``compile`` off."""
    from models.enhancement.api import enhance

    if (params or {}).get("compile", "off") == "off":
        return
    for part in (inputs, inputs[:-1]) if len(inputs) > 1 else (inputs,):
        enhance(model, alg, part, params=dict(params or {}, n_iter=2), device=dev, frame_budget=frame_budget, seed=seed,
                progress=False)


def _timed_enhance(model: Any, alg: str, inputs: list, dev: str, params: Optional[dict], frame_budget: int,
                   seed: int) -> tuple[float, float, tuple[float, ...], float]:
    """One timed ``enhance`` call: ``(wall s, peak MB, per-utterance SI-SDR (NaN where it failed),
    seconds of audio)``. Peak MB: resident memory sampled during the call on CPU, max allocated on CUDA."""
    from models.enhancement.api import enhance

    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    with _RssPeak() as rss:
        t0 = time.perf_counter()
        outs = enhance(model, alg, inputs, params=params, device=dev, frame_budget=frame_budget, seed=seed, progress=False)
        wall = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if dev.startswith("cuda") else rss.peak
    per = tuple(si_sdr(o.estimate, i.clean) if o.error is None else float("nan") for o, i in zip(outs, inputs))
    return wall, peak, per, sum(i.mixture.size for i in inputs) / 16000.0


def _mean_sdr(per: Sequence[float]) -> tuple[float, int]:
    """``(mean SI-SDR over the utterances that did not fail, number that failed)`` (NaN marks a failure)."""
    n_ok = int(np.sum(np.isfinite(per)))
    return (float(np.nanmean(per)) if n_ok else float("nan")), len(per) - n_ok


def run_perf(model: Any, inputs: list, algorithms: list[str], devices: list[str], *, params: Optional[dict[str, dict]] = None,
             reference: bool = True, seed: int = 0, frame_budget: int = 20000) -> tuple[list[PerfRow], dict[str, Any]]:
    """Time every (algorithm, mode, device); returns the rows and the reference figures."""
    from models.enhancement.mcem import MCEMConfig

    params = params or {}
    rows: list[PerfRow] = []
    for dev in devices:
        _warm_up(model, algorithms, inputs, dev, params, frame_budget, seed)
        for alg in algorithms:
            for mode, budget in (("one-by-one", 1), ("batched", frame_budget)):
                wall, peak, per, dur = _timed_enhance(model, alg, inputs, dev, params.get(alg), budget, seed)
                sdr, n_failed = _mean_sdr(per)
                rows.append(PerfRow(alg, mode, dev, wall, wall / dur, len(inputs) / wall, peak, sdr, n_failed, per))
                log.info("%s %s %s: %.2f s, SI-SDR %.2f dB", alg, mode, dev, wall, sdr)
    dur = sum(i.mixture.size for i in inputs) / 16000.0
    ref: dict[str, Any] = {}
    if reference:
        from models.enhancement.reference_mcem import reference_mcem

        cfg = MCEMConfig(**(params.get("mcem") or {}))
        model.to("cpu")
        t0 = time.perf_counter()
        sdrs = []
        for inp in inputs:
            y, _ = reference_mcem(model, inp.mixture, inp.lips, inp.fps, item_id=inp.item_id, config=cfg, seed=seed)
            sdrs.append(si_sdr(y, inp.clean))
        wall = time.perf_counter() - t0
        ref = {"wall_s": wall, "rtf": wall / dur, "utts_per_s": len(inputs) / wall, "si_sdr": float(np.mean(sdrs)), "si_sdrs": tuple(sdrs)}
    return rows, ref


def paired_diff(ours: Sequence[float], ref: Sequence[float]) -> tuple[float, float, int]:
    """``(mean, 95 % CI half-width, n)`` of the paired differences ``ours - ref`` over the finite pairs
    (half-width inf for one pair; mean NaN for none)."""
    d = np.asarray(ours, float) - np.asarray(ref, float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return float("nan"), float("inf"), 0
    half = 1.96 * float(np.std(d, ddof=1)) / np.sqrt(d.size) if d.size > 1 else float("inf")
    return float(d.mean()), half, int(d.size)


def quality_line(ours: tuple[float, ...], ref: tuple[float, ...], tol_db: float = 0.3) -> str:
    """The paired SI-SDR difference (ours - reference) with a 95% CI over utterances, and whether it
    is within ``tol_db``. MCEM is a sampler: two runs with different random streams differ per
    utterance by up to several dB, so the comparison needs the CI, not only the mean."""
    mean, half, n = paired_diff(ours, ref)
    if n == 0:
        return "SI-SDR diff: no paired utterances"
    verdict = ("equal quality (within %.1f dB)" % tol_db if abs(mean) <= tol_db
               else "NOT within %.1f dB%s" % (tol_db, "; the CI includes 0" if abs(mean) <= half else ""))
    return f"SI-SDR diff {mean:+.2f} dB (95% CI +-{half:.2f}, {n} utterances): {verdict}"


def format_table(rows: list[PerfRow], ref: dict[str, Any], inputs: list, machine: str) -> str:
    dur = sum(i.mixture.size for i in inputs) / 16000.0
    in_sdr = np.mean([si_sdr(i.mixture, i.clean) for i in inputs])
    lines = [f"machine: {machine}", f"{len(inputs)} utterances, {dur:.1f} s of audio, input SI-SDR {in_sdr:.2f} dB",
             f"{'algorithm':<16}{'mode':<12}{'device':<8}{'wall s':>9}{'RTF':>9}{'utt/s':>9}{'peak MB':>10}{'SI-SDR':>9}{'vs ref':>9}"]
    for r in rows:
        sp = f"{ref['wall_s'] / r.wall_s:8.1f}x" if ref else "       -"
        lines.append(f"{r.algorithm:<16}{r.mode:<12}{r.device:<8}{r.wall_s:9.2f}{r.rtf:9.3f}{r.utts_per_s:9.2f}{r.peak_mem_mb:10.0f}{r.si_sdr:9.2f}{sp}")
    lines.append("peak MB: resident memory of the process during the row on CPU, max allocated on CUDA")
    if ref:
        lines.append(f"{'reference-mcem':<16}{'per-utt':<12}{'cpu':<8}{ref['wall_s']:9.2f}{ref['rtf']:9.3f}{ref['utts_per_s']:9.2f}{'':>10}{ref['si_sdr']:9.2f}{'1.0x':>9}")
    by = {(r.algorithm, r.mode, r.device): r for r in rows}
    for dev in sorted({r.device for r in rows}):
        for alg in sorted({r.algorithm for r in rows}):
            a, b = by.get((alg, "one-by-one", dev)), by.get((alg, "batched", dev))
            if a and b:
                lines.append(f"batched / one-by-one throughput, {alg} on {dev}: {a.wall_s / b.wall_s:.2f}x (target >= 3x on CPU)")
    if ref:
        for mode in ("one-by-one", "batched"):
            m = by.get(("mcem", mode, "cpu"))
            if m:
                lines.append(f"our MCEM ({mode}, cpu) vs reference: {ref['wall_s'] / m.wall_s:.1f}x faster; "
                             + quality_line(m.si_sdrs, ref.get("si_sdrs", ())))
        l_ = by.get(("ldem", "batched", "cpu"))
        if l_:
            lines.append(f"batched LDEM (cpu) vs reference MCEM: {ref['wall_s'] / l_.wall_s:.1f}x faster (target >= 20x); "
                         f"SI-SDR {l_.si_sdr:.2f} vs {ref['si_sdr']:.2f} dB")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The batch-size curve


def repeat_inputs(inputs: list, n: int) -> list:
    """``n`` inputs cycling through ``inputs``; the ``k``-th repeat (k >= 1) of an input gets the item
    id ``<id>~r<k>`` and the pair id ``<pair id>~r<k>``, so it has its own random streams (the EM and
    NMF generators are seeded by the pair id), unlike a plain copy."""
    out = []
    for j in range(n):
        inp = inputs[j % len(inputs)]
        k = j // len(inputs)
        if k == 0:
            out.append(inp)
        else:
            pid = inp.pair_id or inp.item_id
            out.append(dataclasses.replace(inp, item_id=f"{inp.item_id}~r{k}", pair_id=f"{pid}~r{k}"))
    return out


@dataclass
class CurveRow:
    """One point of the batch-size curve: one batch of ``batch_size`` utterances on ``device``."""

    algorithm: str
    device: str
    batch_size: int
    wall_s: float
    rtf: float
    utts_per_s: float
    peak_mem_mb: float
    si_sdr: float
    n_failed: int = 0


def run_curve(model: Any, inputs: list, algorithms: Sequence[str], devices: Sequence[str], batch_sizes: Sequence[int], *,
              params: Optional[dict[str, dict]] = None, seed: int = 0) -> list[CurveRow]:
    """Throughput, RTF and peak memory of one batch of ``B`` utterances for every device, algorithm
    and ``B`` of ``batch_sizes`` (inputs from :func:`repeat_inputs`, so every row sees the same
    utterances; the frame budget is set to hold the whole batch). A batch that fails is retried
    one by one by :func:`models.enhancement.api.enhance`, which the wall time then shows."""
    from models.spectral import STFTConfig

    params = params or {}
    rows: list[CurveRow] = []
    for dev in devices:
        _warm_up(model, algorithms, inputs, dev, params)
        for alg in algorithms:
            for b in batch_sizes:
                batch = repeat_inputs(inputs, int(b))
                budget = len(batch) * (max(i.mixture.size for i in batch) // STFTConfig().hop + 8)  # >= B x T_max frames
                wall, peak, per, dur = _timed_enhance(model, alg, batch, dev, params.get(alg), budget, seed)
                sdr, n_failed = _mean_sdr(per)
                rows.append(CurveRow(alg, dev, len(batch), wall, wall / dur, len(batch) / wall, peak, sdr, n_failed))
                log.info("%s %s B=%d: %.2f s", alg, dev, len(batch), wall)
    return rows


def format_curve(rows: list[CurveRow], duration: float) -> str:
    """The curve as a table, plus each row's throughput relative to ``B`` = 1 (or the smallest ``B``)."""
    lines = [f"batch-size curve ({duration:g} s utterances; one batch per row)",
             f"{'algorithm':<12}{'device':<8}{'batch':>7}{'wall s':>10}{'RTF':>10}{'utt/s':>10}{'x B-min':>9}{'peak MB':>10}{'SI-SDR':>9}{'failed':>8}"]
    first: dict[tuple[str, str], CurveRow] = {}
    for r in rows:
        base = first.setdefault((r.algorithm, r.device), r)
        lines.append(f"{r.algorithm:<12}{r.device:<8}{r.batch_size:>7}{r.wall_s:10.2f}{r.rtf:10.4f}{r.utts_per_s:10.2f}"
                     f"{r.utts_per_s / base.utts_per_s:8.1f}x{r.peak_mem_mb:10.0f}{r.si_sdr:9.2f}{r.n_failed:>8}")
    lines.append("x B-min: throughput relative to the smallest batch of the same algorithm and device; "
                 "peak MB: resident memory on CPU, max allocated on CUDA")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Profile of the EM iterations

#: Kinds of operator, by the operator's base name (``aten::mul_`` -> ``mul``; a trailing ``_``
#: (in place) and a ``_backward`` suffix are dropped before the look-up, so ``tanh_backward`` is
#: elementwise like ``tanh``). Any other operator (copies, indexing, cat, views, the optimiser's
#: fused steps) is "other". Only operators count (:func:`_is_operator`): the self time of
#: ``record_function`` annotations and of the autograd engine's frames is left in the
#: launch/Python overhead.
OP_KINDS: dict[str, frozenset[str]] = {
    "GEMM / matmul": frozenset({"mm", "addmm", "bmm", "baddbmm", "addbmm", "matmul", "linear", "mv", "addmv", "dot",
                                "einsum", "tensordot", "_convolution", "convolution", "conv1d", "conv2d", "conv3d",
                                "mkldnn_convolution", "cudnn_convolution", "_scaled_mm", "addmm_activation"}),
    "elementwise": frozenset({"add", "sub", "rsub", "mul", "div", "neg", "abs", "exp", "exp2", "expm1", "log", "log1p",
                              "log2", "log10", "pow", "sqrt", "rsqrt", "square", "reciprocal", "tanh", "sigmoid", "relu",
                              "leaky_relu", "gelu", "silu", "elu", "softplus", "clamp", "clamp_min", "clamp_max", "clip",
                              "maximum", "minimum", "where", "masked_fill", "lt", "le", "gt", "ge", "eq", "ne",
                              "logical_and", "logical_or", "logical_not", "bitwise_and", "bitwise_or", "bitwise_not",
                              "addcmul", "addcdiv", "lerp", "sign", "floor", "ceil", "round", "trunc", "fmod",
                              "remainder", "sin", "cos", "atan2", "hypot", "isfinite", "isnan", "nan_to_num",
                              "fill", "zero", "threshold", "xlogy", "erf", "erfc", "angle", "real", "imag",
                              "_log_softmax", "_softmax", "log_softmax", "softmax", "logaddexp", "lgamma"}),
    "reductions": frozenset({"sum", "mean", "prod", "amax", "amin", "max", "min", "argmax", "argmin", "logsumexp",
                             "norm", "linalg_vector_norm", "var", "std", "var_mean", "std_mean", "any", "all",
                             "cumsum", "cumprod", "count_nonzero", "nansum", "nanmean", "median", "topk", "sort"}),
    "random numbers": frozenset({"normal", "randn", "rand", "uniform", "bernoulli", "multinomial", "randint",
                                 "exponential", "random", "randperm", "randn_like", "rand_like", "normal_like"}),
}
OTHER_KIND = "other"
OVERHEAD_KIND = "launch/Python overhead"
_MARK = "avbench::em_iteration"


def classify_op(name: str) -> str:
    """The kind (a key of :data:`OP_KINDS`, or ``other``) of a profiler event named ``name``."""
    base = name.rsplit("::", 1)[-1].strip()
    if base.endswith("_backward"):
        base = base[: -len("_backward")]
    base = base.rstrip("_") if base not in ("_convolution", "_softmax", "_log_softmax", "_scaled_mm") else base
    for kind, names in OP_KINDS.items():
        if base in names:
            return kind
    return OTHER_KIND


@dataclass
class ProfileResult:
    """Milliseconds per EM iteration (E-step + M-step + cost; the setup before the first iteration
    and the final estimate after the last are outside the window) of ``algorithm`` on ``device``."""

    algorithm: str
    device: str
    batch_size: int
    n_timed: int  # iterations inside the timed window (n_iter - 1)
    wall_ms: float  # per iteration, under the profiler
    wall_unprofiled_ms: float  # per iteration, the same run without the profiler
    kinds_ms: dict[str, float] = field(default_factory=dict)  # OP_KINDS + other + launch/Python overhead
    top_ops: list[tuple[str, float]] = field(default_factory=list)  # (operator, ms per iteration), largest first

    @property
    def op_ms(self) -> float:
        """Summed operator time per iteration (every kind but the overhead)."""
        return sum(v for k, v in self.kinds_ms.items() if k != OVERHEAD_KIND)


def _is_operator(ev: Any) -> bool:
    """Whether a profiler event is an operator (``aten::mul``, ``prim::...``): named with a namespace,
    not a ``record_function`` annotation (``Optimizer.step#Adam.step``, our iteration marks) and
    not a frame of the autograd engine (``autograd::engine::evaluate_function: ...``). The
    self time of the others is Python / engine time, which stays in the overhead."""
    if getattr(ev, "is_user_annotation", False) or ev.name == _MARK:
        return False
    return "::" in ev.name and not ev.name.startswith("autograd::")


def _self_time_us(ev: Any, cuda: bool) -> float:
    if cuda:  # the kernels an operator launched (device time), not its CPU time
        return float(getattr(ev, "self_device_time_total", getattr(ev, "self_cuda_time_total", 0.0)))
    return float(ev.self_cpu_time_total)


def profile_em(model: Any, inputs: list, algorithm: str, device: str = "cpu", *, n_iter: int = 5,
               params: Optional[dict] = None, seed: int = 0, nmf_rank: int = 10) -> ProfileResult:
    """Run ``n_iter`` EM iterations of ``algorithm`` on one batch of ``inputs`` three times (warm-up,
    timed without the profiler, under ``torch.profiler``) and split the time of iterations
    ``0 .. n_iter-2`` (from the start of the first E-step to the start of the last) by kind of
    operator (:func:`classify_op`).

    Operator time is each profiler event's *self* time (so nested operators are not counted
    twice): CPU time on CPU; on CUDA the device time of the kernels each operator launched (the
    device is synchronised at every iteration boundary so the window is the GPU's). The rest of
    the window, wall minus summed operator time, is "launch/Python overhead": the Python of the
    EM loop, the dispatcher between operators, and the profiler's own cost (compare
    ``wall_ms`` with ``wall_unprofiled_ms``). ``tol`` is switched off so that every utterance runs
    all ``n_iter`` iterations. Runs :func:`models.enhancement.em.run_em` directly (models with a
    ``custom_enhance``, the mixture / switching VAEs, are not profiled here)."""
    from models.enhancement.api import make_algorithm, resolve_device
    from models.enhancement.batch import make_batch, prepare_item
    from models.enhancement.em import EMAlgorithm, run_em

    if n_iter < 2:
        raise ValueError(f"profile_em needs n_iter >= 2 (one timed iteration), got {n_iter}")
    if hasattr(model, "custom_enhance"):
        raise ValueError("profile_em profiles the shared EM loop; this model has its own (custom_enhance)")
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    model.to(dev)
    model.eval()
    av = bool(getattr(model, "is_audio_visual", False))
    items = [prepare_item(inp, i, need_lips=av, need_level=bool(getattr(model, "uses_level", False)))
             for i, inp in enumerate(inputs)]
    cfg = dict(params or {}, n_iter=n_iter, tol=None)

    def once(label: Optional[str]) -> list[float]:
        algo = make_algorithm(algorithm, cfg)
        if not isinstance(algo, EMAlgorithm):
            raise ValueError(f"{algorithm!r} is not an EM algorithm")
        marks: list[float] = []
        inner = algo.e_step

        def e_step(ctx: Any, st: Any, it: int) -> torch.Tensor:  # marks the iteration boundaries
            if cuda:
                torch.cuda.synchronize(dev)
            marks.append(time.perf_counter())
            with torch.profiler.record_function(label) if label else nullcontext():
                return inner(ctx, st, it)

        algo.e_step = e_step  # type: ignore[method-assign]  # this instance only
        run_em(algo, model, make_batch(items, dev), rank=nmf_rank, seed=seed)
        return marks

    once(None)
    marks = once(None)
    unprof_ms = (marks[-1] - marks[0]) * 1e3 / (len(marks) - 1)
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=acts) as prof:
        once(_MARK)
    events = list(prof.events())
    starts = sorted(ev.time_range.start for ev in events if ev.name == _MARK)
    w0, w1 = starts[0], starts[-1]
    n_timed = len(starts) - 1
    kinds = {k: 0.0 for k in OP_KINDS} | {OTHER_KIND: 0.0}
    per_op: dict[str, float] = {}
    for ev in events:
        if not _is_operator(ev) or not (w0 <= ev.time_range.start < w1):
            continue
        if getattr(ev, "device_type", None) is not None and str(ev.device_type).endswith("CUDA"):
            continue  # kernel events: their time is counted through the operator that launched them
        us = _self_time_us(ev, cuda)
        if us <= 0:
            continue
        kinds[classify_op(ev.name)] += us
        per_op[ev.name] = per_op.get(ev.name, 0.0) + us
    wall_ms = (w1 - w0) / 1e3 / n_timed
    kinds_ms = {k: v / 1e3 / n_timed for k, v in kinds.items()}
    kinds_ms[OVERHEAD_KIND] = wall_ms - sum(kinds_ms.values())
    top = sorted(((k, v / 1e3 / n_timed) for k, v in per_op.items()), key=lambda kv: -kv[1])[:8]
    return ProfileResult(algorithm, dev.type, len(inputs), n_timed, wall_ms, unprof_ms, kinds_ms, top)


def format_profile(results: list[ProfileResult], duration: float) -> str:
    """One block per (algorithm, device): ms per EM iteration by kind, with shares of the wall time."""
    lines = []
    for r in results:
        lines.append(f"profile {r.algorithm} on {r.device}, batch {r.batch_size} x {duration:g} s, {r.n_timed} timed EM "
                     f"iterations: {r.wall_ms:.2f} ms per iteration under the profiler "
                     f"({r.wall_unprofiled_ms:.2f} ms without it)")
        for k, v in r.kinds_ms.items():
            lines.append(f"  {k:<24}{v:10.2f} ms {100 * v / r.wall_ms:6.1f} %")
        lines.append("  top operators (ms/iteration): " + ", ".join(f"{n} {v:.2f}" for n, v in r.top_ops[:5]))
    lines.append("op time: self time per operator (CPU time on CPU, its kernels' device time on CUDA); kinds by "
                 "operator name (benchmark.perf.OP_KINDS); overhead = wall - op time, profiler cost included")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# CUDA vs CPU agreement

#: Algorithms whose CUDA and CPU runs use the same numbers: no EM sampling (PEEM's point
#: estimate); their NMF init is drawn on the CPU (NumPy) for every device. MCEM, VEM and LDEM draw
#: from per-utterance *CUDA* generators on CUDA (models/enhancement/em.py), so their two runs are
#: different random streams of the same sampler: only their quality is compared.
SAME_STREAM_ALGORITHMS = frozenset({"peem"})
#: Minimum SI-SDR (dB) of the CUDA estimate measured against the CPU estimate for the
#: same-stream algorithms: float32 rounding (different GEMM blocking and reduction orders,
#: TF32 off) through 100 EM iterations stays far below a 1e-3 relative error energy.
AGREE_MIN_DB = 30.0
#: Sampling algorithms: the paired SI-SDR difference (CUDA - CPU, against the clean speech) must be
#: within this many dB, or its 95 % CI include 0 (few utterances, several dB of per-run spread).
AGREE_QUALITY_DB = 0.3


@dataclass
class AgreementRow:
    algorithm: str
    same_stream: bool
    between_db: float  # mean over utterances of SI-SDR(CUDA estimate, CPU estimate)
    max_abs: float  # largest |CUDA - CPU| sample difference
    quality: str  # the paired SI-SDR line (vs the clean speech), :func:`quality_line`
    ok: bool


def device_agreement(model: Any, inputs: list, algorithms: Sequence[str], devices: Sequence[str] = ("cpu", "cuda"), *,
                     params: Optional[dict[str, dict]] = None, seed: int = 0) -> list[AgreementRow]:
    """Enhance ``inputs`` on ``devices[0]`` and ``devices[1]`` and compare the estimates (tolerances:
    :data:`AGREE_MIN_DB` for :data:`SAME_STREAM_ALGORITHMS`, :data:`AGREE_QUALITY_DB` or a CI
    including 0 for the others)."""
    from models.enhancement.api import enhance

    params = params or {}
    a_dev, b_dev = devices[0], devices[1]
    rows = []
    for alg in algorithms:
        outs = [enhance(model, alg, inputs, params=params.get(alg), device=d, seed=seed, progress=False) for d in (a_dev, b_dev)]
        between, mx, sa, sb = [], 0.0, [], []
        for oa, ob, inp in zip(outs[0], outs[1], inputs):
            if oa.error or ob.error:
                between.append(float("nan"))
                continue
            diff = float(np.max(np.abs(oa.estimate - ob.estimate)))
            mx = max(mx, diff)
            between.append(200.0 if diff == 0.0 else si_sdr(ob.estimate, oa.estimate))
            sa.append(si_sdr(oa.estimate, inp.clean))
            sb.append(si_sdr(ob.estimate, inp.clean))
        same = alg in SAME_STREAM_ALGORITHMS
        q = quality_line(tuple(sb), tuple(sa), tol_db=AGREE_QUALITY_DB)
        mean, half, _ = paired_diff(sb, sa)
        if not np.all(np.isfinite(between)):
            ok = False
        elif same:
            ok = min(between) >= AGREE_MIN_DB
        else:
            ok = abs(mean) <= max(AGREE_QUALITY_DB, half)
        rows.append(AgreementRow(alg, same, float(np.mean(between)), mx, q, ok))
    return rows


def format_agreement(rows: list[AgreementRow], devices: Sequence[str]) -> str:
    lines = [f"agreement of the estimates, {devices[1]} vs {devices[0]} (same inputs, seed and settings)"]
    for r in rows:
        rule = f"SI-SDR between >= {AGREE_MIN_DB:g} dB" if r.same_stream else "quality (different random streams)"
        lines.append(f"{r.algorithm:<8} {'OK  ' if r.ok else 'FAIL'} {rule}: between {r.between_db:.1f} dB, "
                     f"max |diff| {r.max_abs:.2e}; {r.quality}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The effect of the EM speed options

#: the non-default values of the EM speed options, each compared alone with the exact default
FLAG_VARIANTS: dict[str, dict[str, str]] = {
    "matmul_precision=high": {"matmul_precision": "high"},
    "decoder_dtype=bfloat16": {"decoder_dtype": "bfloat16"},
    "compile=default": {"compile": "default"},
}


@dataclass
class FlagRow:
    """One option against the exact default: same inputs, seed and batch."""

    algorithm: str
    device: str
    flag: str
    wall_s: float
    rtf: float
    si_sdr: float
    diff_db: float  # mean paired SI-SDR difference (flag - exact)
    ci_db: float  # its 95 % CI half-width
    max_abs: float  # largest |flag - exact| sample difference of the estimates
    n_failed: int = 0


def flag_effects(model: Any, inputs: list, algorithms: Sequence[str], devices: Sequence[str], *,
                 params: Optional[dict[str, dict]] = None, seed: int = 0, frame_budget: int = 20000,
                 variants: Optional[dict[str, dict[str, str]]] = None) -> list[FlagRow]:
    """For every device and algorithm: one batched run with the exact options (``params`` without
    the speed options) and one per variant of :data:`FLAG_VARIANTS`, each warmed up first on the
    same batch (so a compiled variant's compilation is not timed); the paired SI-SDR difference to the exact run
    with its 95 % CI (:func:`paired_diff`) and the largest sample difference of the first
    utterance's estimates (one more run of that utterance alone per variant)."""
    from models.enhancement.api import enhance

    variants = FLAG_VARIANTS if variants is None else variants
    speed_keys = {k for v in FLAG_VARIANTS.values() for k in v}
    rows: list[FlagRow] = []
    for dev in devices:
        for alg in algorithms:
            base = {k: v for k, v in (params or {}).get(alg, {}).items() if k not in speed_keys}
            runs = {"exact": base} | {name: dict(base, **v) for name, v in variants.items()}
            outs: dict[str, tuple] = {}
            for name, p in runs.items():
                # warm-up on the same batch (2 iterations, the final estimate included): a compiled
                # variant compiles here for these shapes and for a shrinking batch, not in the timed run
                _timed_enhance(model, alg, inputs, dev, dict(p, n_iter=2), frame_budget, seed)
                _compile_warm_up(model, alg, inputs, dev, p, frame_budget, seed)
                wall, _, per, dur = _timed_enhance(model, alg, inputs, dev, p, frame_budget, seed)
                est = enhance(model, alg, inputs[:1], params=p, device=dev, seed=seed, progress=False)[0].estimate
                outs[name] = (wall, dur, per, est)
            _, _, ref_per, ref_est = outs["exact"]
            for name, (wall, dur, per, est) in outs.items():
                mean, half, _ = paired_diff(per, ref_per)
                sdr, n_failed = _mean_sdr(per)
                mx = float(np.max(np.abs(est - ref_est))) if est is not None and ref_est is not None else float("nan")
                rows.append(FlagRow(alg, dev, name, wall, wall / dur, sdr, mean, half, mx, n_failed))
                log.info("%s %s %s: %.2f s, SI-SDR %.2f dB", alg, dev, name, wall, sdr)
    return rows


def format_flag_effects(rows: list[FlagRow]) -> str:
    lines = ["EM speed options vs the exact default (one batch, same inputs and seed)",
             f"{'algorithm':<10}{'device':<8}{'option':<25}{'wall s':>9}{'RTF':>9}{'SI-SDR':>9}{'diff dB':>9}{'95% CI':>9}{'max|diff|':>11}"]
    for r in rows:
        diff = "" if r.flag == "exact" else f"{r.diff_db:+9.3f}{'+-%.3f' % r.ci_db:>9}{r.max_abs:11.2e}"
        lines.append(f"{r.algorithm:<10}{r.device:<8}{r.flag:<25}{r.wall_s:9.2f}{r.rtf:9.4f}{r.si_sdr:9.2f}{diff}")
    lines.append("diff dB: mean paired SI-SDR difference (option - exact) over the utterances with its 95% CI; "
                 "max|diff|: largest sample difference of the first utterance's estimate (the sampler's chains "
                 "may take other paths once one MH decision flips)")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None, help="model checkpoint (default: random-init a-vae)")
    p.add_argument("--model", default="a-vae", help="registered model for the random init (default a-vae)")
    p.add_argument("--fusion", default=None, help="fusion of a random-init av-vae")
    p.add_argument("--algorithms", nargs="+", default=["mcem", "ldem", "peem", "vem"])
    p.add_argument("--devices", nargs="+", default=None, help="cpu and/or cuda (default: cpu, plus cuda when present)")
    p.add_argument("--corpus", default=None, help="a built corpus root: use its test utterances (cropped to --duration) "
                   "instead of synthetic harmonic toy utterances")
    p.add_argument("--n-utts", type=int, default=8)
    p.add_argument("--duration", type=float, default=3.0, help="seconds per utterance")
    p.add_argument("--n-iter", type=int, default=None, help="EM iterations for every algorithm (default: published 100)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-reference", action="store_true", help="skip the reference NumPy MCEM")
    p.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("modes (the one-by-one / batched / reference comparison runs when none is given)")
    g.add_argument("--compare", action="store_true", help="the comparison too, with any mode below")
    g.add_argument("--batch-sizes", type=int, nargs="+", default=None, metavar="B",
                   help="the batch-size curve: one batch of B utterances per row (inputs repeated with their own ids)")
    g.add_argument("--profile", action="store_true", help="time per EM iteration by kind of operator (torch.profiler)")
    g.add_argument("--profile-iters", type=int, default=5, help="EM iterations of the profiled runs (>= 2; default 5)")
    g.add_argument("--profile-batch", type=int, default=1, help="utterances in the profiled batch (default 1)")
    g.add_argument("--flag-effects", action="store_true", help="each EM speed option vs the exact default: time and paired SI-SDR")
    o = p.add_argument_group("EM speed options (models.enhancement.em.EMConfig; default: the exact eager path)")
    o.add_argument("--compile", default=None, choices=("off", "default", "reduce-overhead"), help="torch.compile of the EM step functions")
    o.add_argument("--matmul-precision", default=None, choices=("highest", "high"), help="high: TF32 matrix products on CUDA")
    o.add_argument("--decoder-dtype", default=None, choices=("float32", "bfloat16"), help="bfloat16: the decoder under bf16 autocast")
    g.add_argument("--agreement", action="store_true", help="CUDA vs CPU agreement of the estimates (exit 1 if outside tolerance)")


def main_args(args: argparse.Namespace) -> int:
    """Run the asked modes and print their tables. Exit status 1 when ``--agreement`` finds a
    disagreement, 2 when no named device is available or the agreement lacks a second device."""
    if args.threads:
        torch.set_num_threads(args.threads)
    asked = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    devices, skipped = available_devices(asked)
    for line in skipped:
        print(line)
    if not devices:
        print("nothing to run: none of the devices is available")
        return 2
    model = load_model(args.checkpoint, args.model, args.fusion)
    av = bool(getattr(model, "is_audio_visual", False))
    if args.corpus:
        inputs = corpus_inputs(args.corpus, args.n_utts, args.duration, seed=args.seed, lips=av)
    else:
        inputs = make_inputs(args.n_utts, args.duration, seed=args.seed, lips=av)
    opts = {k: v for k, v in (("n_iter", args.n_iter), ("compile", args.compile), ("matmul_precision", args.matmul_precision),
                              ("decoder_dtype", args.decoder_dtype)) if v}
    params = {a: dict(opts) for a in args.algorithms} if opts else {}
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
    if any(d.startswith("cuda") for d in devices):
        machine += f", {torch.cuda.get_device_name(0)}"
    compare = args.compare or not (args.batch_sizes or args.profile or args.agreement or args.flag_effects)
    if not compare:  # the comparison's table names the machine itself
        print(f"machine: {machine}")
    print(f"model: {args.checkpoint or 'random-init ' + args.model}; EM iterations: {args.n_iter or 'published defaults'}; "
          f"EM options: {', '.join(f'{k}={v}' for k, v in opts.items() if k != 'n_iter') or 'exact (defaults)'}; "
          f"utterances: {'corpus ' + args.corpus + ' (test split)' if args.corpus else 'synthetic harmonic toys'} in white noise at 0 dB")
    rc = 0
    if compare:
        rows, ref = run_perf(model, inputs, args.algorithms, devices, params=params, reference=not args.no_reference, seed=args.seed)
        print(format_table(rows, ref, inputs, machine))
    if args.batch_sizes:
        curve = run_curve(model, inputs, args.algorithms, devices, args.batch_sizes, params=params, seed=args.seed)
        print(format_curve(curve, args.duration))
    if args.profile:
        prof_in = repeat_inputs(inputs, args.profile_batch)
        results = []
        for dev in devices:
            for alg in args.algorithms:
                try:
                    results.append(profile_em(model, prof_in, alg, dev, n_iter=args.profile_iters, params=params.get(alg), seed=args.seed))
                except ValueError as exc:
                    print(f"profile {alg} on {dev}: skipped ({exc})")
        print(format_profile(results, args.duration))
    if args.flag_effects:
        print(format_flag_effects(flag_effects(model, inputs, args.algorithms, devices, params=params, seed=args.seed)))
    if args.agreement:
        pair = devices if len(devices) >= 2 else None
        if pair is None:
            print(f"agreement: not checked (needs two usable devices, have {devices})")
            rc = 2
        else:
            agree = device_agreement(model, inputs, args.algorithms, pair[:2], params=params, seed=args.seed)
            print(format_agreement(agree, pair[:2]))
            rc = 0 if all(r.ok for r in agree) else 1
    return rc


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.perf", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    logging.basicConfig(level=logging.WARNING)
    return main_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
