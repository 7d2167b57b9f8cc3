"""A small but realistic *fake* run folder for testing and demonstrating the report.

Everything here is synthetic: the "speech" is a harmonic tone with a syllable-like envelope,
the metrics are drawn from a simple generative story (enhancement helps more at low SNR, the
weighted fusions lose less when the video is corrupted and move their visual weight down on
corrupted frames), and the models never existed. It follows the run-folder layout and the
column names of :mod:`benchmark.schema` so the report can be built and tested before (and
independently of) the real harness. With ``FakeRunSpec.train_seeds`` every system with a model
is "trained" once per seed (a per-(system, seed) offset of SD ``seed_sd_db`` on its SI-SDR
gain) and its rows carry ``train_seed``; the baselines (no model) are not trained and have an
empty ``train_seed``. :func:`fake_results_table` writes no files: a results table of any size
(e.g. to time the statistics of a large study). Nothing produced here is a result.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.report.diagnostics import weight_summary
from benchmark.schema import STATUS_FAILED, STATUS_OK, WEIGHT_COLUMNS, item_id, model_key
from benchmark.seeding import rng

SR = 16000
FRAME_RATE = SR / 256


@dataclass
class FakeSystem:
    """One fake system: how much it improves SI-SDR and how its visual weight behaves."""

    model_id: str
    model: str
    fusion: str | None
    algorithm: str = "ldem"
    gain_db: float = 6.0           # SI-SDR improvement at 0 dB with clean video
    visual_help_db: float = 1.5    # part of the gain that needs the video
    robustness: float = 0.0        # 0: loses all visual help under corruption, 1: loses none
    weights: bool = False          # writes weights_encoder/decoder traces
    weight_tracking: float = 0.0   # visual weight drop on corrupted frames


DEFAULT_SYSTEMS = [
    FakeSystem("", "", None, algorithm="noisy", gain_db=0.0, visual_help_db=0.0, robustness=1.0),
    FakeSystem("", "", None, algorithm="oracle-wiener", gain_db=12.0, visual_help_db=0.0, robustness=1.0),
    FakeSystem("a-vae", "a-vae", None, gain_db=5.0, visual_help_db=0.0, robustness=1.0),
    FakeSystem("av-vae/concat", "av-vae", "concat", gain_db=6.5, visual_help_db=1.5, robustness=-0.3),
    FakeSystem("av-vae/gated", "av-vae", "gated", gain_db=6.6, visual_help_db=1.6, robustness=0.5, weights=True,
               weight_tracking=0.25),
    FakeSystem("av-vae/modality-attention", "av-vae", "modality-attention", gain_db=6.8, visual_help_db=1.8,
               robustness=0.8, weights=True, weight_tracking=0.45),
    FakeSystem("mixture-vae", "mixture-vae", None, gain_db=6.2, visual_help_db=1.2, robustness=0.9, weights=True,
               weight_tracking=0.6),
]


@dataclass
class FakeRunSpec:
    """Size of the fake grid."""

    n_utts: int = 4
    noises: list[str] = field(default_factory=lambda: ["white", "babble"])
    snrs_db: list[float] = field(default_factory=lambda: [-5.0, 0.0, 5.0])
    corruptions: list[str] = field(default_factory=lambda: ["none", "occlusion@0.5", "occlusion@1.0", "blur@1.0"])
    systems: list[FakeSystem] = field(default_factory=lambda: list(DEFAULT_SYSTEMS))
    duration_s: float = 1.2
    fps: float = 25.0
    lip_size: int = 32
    seed: int = 0
    fail_one: bool = True          # make one row a failure (NaN metrics, status failed)
    name: str = "fake"
    train_seeds: list[int] | None = None  # None: no train_seed column (one training run)
    seed_sd_db: float = 0.3        # SD of the per-(system, training seed) offset of the gain


def _parse_corruption(c: str) -> tuple[str, float]:
    if c == "none":
        return "none", 0.0
    kind, _, sev = c.partition("@")
    return kind, float(sev or 1.0)


def _speech(n: int, r: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SR
    f0 = r.uniform(100, 220)
    sig = sum(np.sin(2 * np.pi * f0 * h * t + r.uniform(0, 6.28)) / h for h in range(1, 12))
    env = np.clip(np.sin(2 * np.pi * r.uniform(2.5, 4.0) * t + r.uniform(0, 6.28)), 0, None) ** 2
    x = sig * env
    return (0.3 * x / (np.abs(x).max() + 1e-9)).astype(np.float32)


def _lips(n_frames: int, size: int, r: np.random.Generator, corruption: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    frames = np.empty((n_frames, size, size), dtype=np.uint8)
    for i in range(n_frames):
        opening = 0.15 + 0.12 * (1 + np.sin(i * 0.7 + r.uniform(0, 0.3)))
        ell = ((xx - size / 2) / (0.35 * size)) ** 2 + ((yy - size / 2) / (opening * size)) ** 2
        img = np.where(ell < 1.0, 60, 170).astype(np.float64)
        if corruption[i] > 0:
            h = int(size * min(1.0, 0.3 + 0.7 * corruption[i]))
            img[size // 2 - h // 2: size // 2 + h // 2, :] = 20
        frames[i] = np.clip(img + r.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    return frames


def write_fake_run(run_dir: str | Path, spec: FakeRunSpec | None = None) -> Path:
    """Write a fake run folder (run.json, mixtures/, enhanced/, the three Parquet tables,
    results.csv) under ``run_dir`` and return its path."""
    import soundfile as sf

    spec = spec or FakeRunSpec()
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    n = int(spec.duration_s * SR)
    n_video = int(round(spec.duration_s * spec.fps))
    n_stft = 1 + n // 256
    vid_idx = np.minimum((np.arange(n_stft) * 256 / SR * spec.fps).astype(int), n_video - 1)
    mix_rows, enh_rows, res_rows = [], [], []
    utts = [f"spk{u % 2}_utt{u:02d}" for u in range(spec.n_utts)]
    for noise in spec.noises:
        for snr in spec.snrs_db:
            for corr in spec.corruptions:
                kind, sev = _parse_corruption(corr)
                cid = f"{noise}_snr{snr:+g}_{corr}"
                for utt in utts:
                    r = rng(spec.seed, "fake", utt)
                    clean = _speech(n, r)
                    rn = rng(spec.seed, "fake-noise", cid, utt)
                    nz = rn.normal(0, 1, n).astype(np.float32)
                    if noise == "babble":
                        nz = np.convolve(nz, np.ones(8) / 8, mode="same").astype(np.float32)
                    nz *= np.sqrt(np.mean(clean ** 2) / np.mean(nz ** 2) / 10 ** (snr / 10))
                    mix = clean + nz
                    # corruption per video frame: a contiguous corrupted span
                    cmask = np.zeros(n_video, dtype=np.float32)
                    if sev > 0:
                        start = int(rn.integers(0, n_video // 3))
                        cmask[start:start + max(2, int(n_video * 0.5))] = sev
                    d = run / "mixtures" / cid / utt
                    d.mkdir(parents=True, exist_ok=True)
                    for name, x in (("mixture", mix), ("clean", clean), ("noise", nz)):
                        sf.write(d / f"{name}.wav", x, SR, subtype="FLOAT")
                    np.save(d / "lips.npy", _lips(n_video, spec.lip_size, r, cmask))
                    np.save(d / "corruption.npy", cmask)
                    iid = item_id(utt, cid)
                    ids = {"item_id": iid, "utt_id": utt, "speaker": utt.split("_")[0], "condition_id": cid,
                           "noise": noise, "snr_db": snr, "snr_definition": "energy", "corruption": kind,
                           "severity": sev, "seed": spec.seed}
                    rel = f"mixtures/{cid}/{utt}"
                    mix_rows.append({**ids, "mixture_path": f"{rel}/mixture.wav", "clean_path": f"{rel}/clean.wav",
                                     "noise_path": f"{rel}/noise.wav", "lips_path": f"{rel}/lips.npy",
                                     "corruption_path": f"{rel}/corruption.npy", "fps": spec.fps, "n_samples": n,
                                     "snr_measured_db": snr, "corrupted_fraction": float(np.mean(cmask > 0))})
                    corr_stft = cmask[vid_idx]
                    in_sisdr = snr + rn.normal(0, 0.3)
                    in_pesq = float(np.clip(1.1 + 0.08 * (snr + 5) + rn.normal(0, 0.05), 1.0, 4.5))
                    in_stoi = float(np.clip(0.55 + 0.02 * (snr + 5) + rn.normal(0, 0.02), 0, 1))
                    for sys, tseed in [(sy, ts) for sy in spec.systems
                                       for ts in ((spec.train_seeds or [None]) if sy.model_id else [None])]:
                        rs = rng(spec.seed, "fake-sys", sys.model_id, sys.algorithm, cid, utt, *([] if tseed is None else [tseed]))
                        seed_off = (0.0 if tseed is None else
                                    float(rng(spec.seed, "fake-train-seed", sys.model_id, tseed).normal(0, spec.seed_sd_db)))
                        frac_corr = float(np.mean(corr_stft > 0)) * sev
                        lost = sys.visual_help_db * frac_corr * (1 - sys.robustness)
                        gain = sys.gain_db * (1 - 0.04 * snr) + sys.visual_help_db - lost + rs.normal(0, 0.6) + seed_off
                        if sys.gain_db == 0:
                            gain = 0.0
                        out_sisdr = in_sisdr + gain
                        key = model_key(sys.model_id) if sys.model_id else "baseline"
                        ed = run / "enhanced" / key / sys.algorithm / cid
                        ed.mkdir(parents=True, exist_ok=True)
                        g = 10 ** (-gain / 20)
                        enh = (clean + g * nz).astype(np.float32)
                        first_seed = tseed is None or tseed == spec.train_seeds[0]
                        if first_seed:  # one audio file per system: the other seeds' rows share it
                            sf.write(ed / f"{utt}.wav", enh, SR, subtype="FLOAT")
                        traces_path = ""
                        weight_cols = dict.fromkeys(WEIGHT_COLUMNS, np.nan)
                        if sys.weights:
                            base = 0.55 + 0.02 * np.clip(-snr, -10, 10)
                            w = base - sys.weight_tracking * (corr_stft > 0) * sev + rs.normal(0, 0.08, n_stft)
                            w = np.clip(w, 0.01, 0.99)
                            wd = np.stack([1 - w, w], axis=1).astype(np.float32)
                            we = np.clip(wd + rs.normal(0, 0.03, wd.shape), 0, 1).astype(np.float32)
                            if first_seed:
                                np.savez(ed / f"{utt}.npz", weights_encoder=we, weights_decoder=wd,
                                         corruption_stft=corr_stft, cost=np.linspace(10, 1, 20), frame_rate=FRAME_RATE)
                            traces_path = str((ed / f"{utt}.npz").relative_to(run))
                            weight_cols = weight_summary(w, corr_stft)  # as the runner's scoring does
                        elif sys.model_id:
                            if first_seed:
                                np.savez(ed / f"{utt}.npz", corruption_stft=corr_stft, cost=np.linspace(10, 1, 20),
                                         frame_rate=FRAME_RATE)
                            traces_path = str((ed / f"{utt}.npz").relative_to(run))
                        wall = float(rs.uniform(0.2, 0.4)) * (3 if sys.weights else 1) if sys.model_id else 0.001
                        status, err = STATUS_OK, ""
                        metrics = {
                            "si_sdr": out_sisdr, "input_si_sdr": in_sisdr,
                            "pesq_wb": float(np.clip(in_pesq + 0.08 * gain + rs.normal(0, 0.05), 1.0, 4.64)),
                            "input_pesq_wb": in_pesq,
                            "stoi": float(np.clip(in_stoi + 0.012 * gain + rs.normal(0, 0.01), 0, 1)), "input_stoi": in_stoi,
                            "estoi": float(np.clip(in_stoi - 0.1 + 0.015 * gain + rs.normal(0, 0.01), 0, 1)),
                            "input_estoi": float(np.clip(in_stoi - 0.1, 0, 1)),
                            "sdr": out_sisdr + 0.5, "input_sdr": in_sisdr + 0.5,
                        }
                        if (spec.fail_one and sys.fusion == "gated" and cid == f"{spec.noises[0]}_snr{spec.snrs_db[0]:+g}_none"
                                and utt == utts[0] and (tseed is None or tseed == spec.train_seeds[0])):
                            status, err = STATUS_FAILED, "RuntimeError: synthetic failure for testing"
                            metrics = {k: np.nan for k in metrics}
                        for m in ("si_sdr", "pesq_wb", "stoi", "estoi", "sdr"):
                            metrics[f"delta_{m}"] = metrics[m] - metrics[f"input_{m}"]
                            metrics[f"{m}_error"] = "" if status == STATUS_OK else err
                        rel_enh = str((ed / f"{utt}.wav").relative_to(run))
                        mid = sys.model_id or ""
                        if first_seed:  # enhanced.parquet: one row per (item, model, algorithm)
                            enh_rows.append({"item_id": iid, "model_id": mid, "model": sys.model, "fusion": sys.fusion,
                                             "algorithm": sys.algorithm, "enhanced_path": rel_enh,
                                             "traces_path": traces_path, "wall_time_s": wall,
                                             "rtf": wall / spec.duration_s, "device": "cpu", "status": status,
                                             "error": err})
                        seed_col = {} if spec.train_seeds is None else {"train_seed": np.nan if tseed is None else tseed}
                        res_rows.append({**ids, **seed_col, "model_id": mid, "model": sys.model, "fusion": sys.fusion,
                                         "algorithm": sys.algorithm, **metrics, "status": status, "error": err,
                                         "wall_time_s": wall, "rtf": wall / spec.duration_s,
                                         **weight_cols})
    pd.DataFrame(mix_rows).to_parquet(run / "mixtures.parquet", index=False)
    pd.DataFrame(enh_rows).to_parquet(run / "enhanced.parquet", index=False)
    res = pd.DataFrame(res_rows)
    res.to_parquet(run / "results.parquet", index=False)
    res.to_csv(run / "results.csv", index=False)
    run_json = {
        "name": spec.name, "synthetic_fake_run": True,
        "note": "FAKE run folder written by benchmark.report.synthetic_run for tests; not results.",
        "spec": {"name": spec.name, "corpus": {"name": "synthetic"},
                 "conditions": {"noises": spec.noises, "snrs_db": spec.snrs_db, "corruptions": spec.corruptions},
                 "metrics": {"names": ["si_sdr", "pesq", "stoi", "estoi", "sdr"], "pesq_mode": "wb"},
                 "report": {"bootstrap": 200, "ci": 0.95, "n_examples": 1, "seed": 0}},
        "git_commit": "0000000", "versions": {"python": "3"}, "machine": {"host": "fake"},
    }
    (run / "run.json").write_text(json.dumps(run_json, indent=2))
    return run


def fake_results_table(n_systems: int = 20, n_conditions: int = 40, n_seeds: int = 3, n_utts: int = 100, *,
                       seed: int = 0, seed_sd_db: float = 0.3, utt_sd_db: float = 2.0, noise_sd_db: float = 1.0,
                       snrs_db: tuple[float, ...] = (-10.0, -5.0, 0.0, 5.0)) -> pd.DataFrame:
    """A results table only (no files): ``n_systems`` systems (two baselines without a model,
    the rest models, among them ``a-vae`` and ``av-vae/concat``), ``n_conditions`` conditions
    (noise x SNR x corruption), ``n_seeds`` training seeds, ``n_utts`` utterances; columns of
    :mod:`benchmark.schema` plus ``system``, ``train_seed`` (empty for the baselines) and
    ``si_sdr``/``input_si_sdr``/``delta_si_sdr``. SI-SDR = input + system gain + utterance
    effect (SD ``utt_sd_db``, shared by all systems and seeds) + (system, seed) offset (SD
    ``seed_sd_db``) + residual (SD ``noise_sd_db``). Made-up numbers, vectorised."""
    r = rng(seed, "fake-table")
    noises = ["white", "babble", "cafe", "street", "ssn"]
    corrs = ["none", "occlusion@0.5", "occlusion@1.0", "blur@1.0", "drop@1.0", "bursty@1.0"]
    conds = [(nz, snr, c) for c in corrs for nz in noises for snr in snrs_db][:n_conditions]
    models = ["a-vae", "av-vae/concat"] + [f"av-vae/fusion{i}" for i in range(max(0, n_systems - 4))]
    systems = [("", "noisy"), ("", "oracle-wiener")] + [(m, "ldem") for m in models]
    systems = systems[:n_systems]
    utts = np.array([f"spk{u % 8}_utt{u:03d}" for u in range(n_utts)], dtype=object)
    utt_eff = r.normal(0, utt_sd_db, n_utts)
    parts = []
    for si, (mid, algo) in enumerate(systems):
        seeds = list(range(n_seeds)) if mid else [None]
        gain = 0.0 if algo == "noisy" else (12.0 if algo == "oracle-wiener" else 3.0 + 0.1 * si)
        for ts in seeds:
            off = 0.0 if ts is None else float(r.normal(0, seed_sd_db))
            for nz, snr, c in conds:
                kind, sev = _parse_corruption(c)
                cid = f"{nz}_snr{snr:+g}_{c}"
                inp = snr + 0.1 * utt_eff
                res = 0.0 if algo == "noisy" else r.normal(0, noise_sd_db, n_utts)
                out = inp + gain + (utt_eff if mid else 0.0) + off + res
                parts.append(pd.DataFrame({
                    "item_id": [f"{cid}/{u}" for u in utts], "utt_id": utts, "condition_id": cid, "noise": nz,
                    "snr_db": snr, "corruption": kind, "severity": sev, "model_id": mid,
                    "model": mid.split("/")[0], "fusion": mid.split("/")[1] if "/" in mid else None,
                    "algorithm": algo, "system": mid or algo, "train_seed": np.nan if ts is None else ts,
                    "si_sdr": out, "input_si_sdr": inp, "delta_si_sdr": out - inp, "status": STATUS_OK,
                }))
    return pd.concat(parts, ignore_index=True)
