"""Speed benchmark of the enhancement algorithms (a script, not a test).

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
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import resource
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

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


def run_perf(model: Any, inputs: list, algorithms: list[str], devices: list[str], *, params: Optional[dict[str, dict]] = None,
             reference: bool = True, seed: int = 0, frame_budget: int = 20000) -> tuple[list[PerfRow], dict[str, Any]]:
    """Time every (algorithm, mode, device); returns the rows and the reference figures."""
    from models.enhancement.api import enhance
    from models.enhancement.mcem import MCEMConfig

    params = params or {}
    dur = sum(i.mixture.size for i in inputs) / 16000.0
    rows: list[PerfRow] = []
    for dev in devices:  # warm-up (thread pools, kernels, allocator) outside the timings
        for alg in algorithms:
            enhance(model, alg, inputs[:1], params=dict(params.get(alg) or {}, n_iter=1), device=dev, progress=False)
        for alg in algorithms:
            for mode, budget in (("one-by-one", 1), ("batched", frame_budget)):
                if dev.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                    torch.cuda.synchronize()
                with _RssPeak() as rss:
                    t0 = time.perf_counter()
                    outs = enhance(model, alg, inputs, params=params.get(alg), device=dev, frame_budget=budget, seed=seed, progress=False)
                    wall = time.perf_counter() - t0
                peak = torch.cuda.max_memory_allocated() / 2 ** 20 if dev.startswith("cuda") else rss.peak
                per = tuple(si_sdr(o.estimate, i.clean) if o.error is None else float("nan") for o, i in zip(outs, inputs))
                n_ok = int(np.sum(np.isfinite(per)))
                sdr = float(np.nanmean(per)) if n_ok else float("nan")
                rows.append(PerfRow(alg, mode, dev, wall, wall / dur, len(inputs) / wall, peak, sdr, len(inputs) - n_ok, per))
                log.info("%s %s %s: %.2f s, SI-SDR %.2f dB", alg, mode, dev, wall, sdr)
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


def quality_line(ours: tuple[float, ...], ref: tuple[float, ...], tol_db: float = 0.3) -> str:
    """The paired SI-SDR difference (ours - reference) with a 95% CI over utterances, and whether it
    is within ``tol_db``. MCEM is a sampler: two runs with different random streams differ per
    utterance by up to several dB, so the comparison needs the CI, not only the mean."""
    d = np.asarray(ours, float) - np.asarray(ref, float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return "SI-SDR diff: no paired utterances"
    half = 1.96 * float(np.std(d, ddof=1)) / np.sqrt(d.size) if d.size > 1 else float("inf")
    mean = float(d.mean())
    verdict = ("equal quality (within %.1f dB)" % tol_db if abs(mean) <= tol_db
               else "NOT within %.1f dB%s" % (tol_db, "; the CI includes 0" if abs(mean) <= half else ""))
    return f"SI-SDR diff {mean:+.2f} dB (95% CI +-{half:.2f}, {d.size} utterances): {verdict}"


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


def main_args(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    model = load_model(args.checkpoint, args.model, args.fusion)
    av = bool(getattr(model, "is_audio_visual", False))
    if args.corpus:
        inputs = corpus_inputs(args.corpus, args.n_utts, args.duration, seed=args.seed, lips=av)
    else:
        inputs = make_inputs(args.n_utts, args.duration, seed=args.seed, lips=av)
    params = {a: {"n_iter": args.n_iter} for a in args.algorithms} if args.n_iter else {}
    if args.n_iter:
        params["mcem"] = {"n_iter": args.n_iter}
    rows, ref = run_perf(model, inputs, args.algorithms, devices, params=params, reference=not args.no_reference, seed=args.seed)
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
    if "cuda" in devices:
        machine += f", {torch.cuda.get_device_name(0)}"
    print(f"model: {args.checkpoint or 'random-init ' + args.model}; EM iterations: {args.n_iter or 'published defaults'}; "
          f"utterances: {'corpus ' + args.corpus + ' (test split)' if args.corpus else 'synthetic harmonic toys'} in white noise at 0 dB")
    print(format_table(rows, ref, inputs, machine))
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.perf", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    logging.basicConfig(level=logging.WARNING)
    return main_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
