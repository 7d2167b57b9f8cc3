"""What is bit-reproducible, measured: the same small run repeated under different settings.

``python -m benchmark.reproducibility`` runs one reduced pipeline (default: the smoke preset cut
to three models, one noise, one SNR, clean and occluded video, one test utterance, a few
epochs and LDEM iterations) several times from scratch, each in its own run folder and its own
processes, and compares what they wrote, artifact by artifact:

* ``rerun``: the same settings again (same machine, same torch threads);
* ``threads-2``: ``AVBENCH_TRAIN_THREADS=2`` and ``AVBENCH_ENHANCE_THREADS=2`` instead of 1;
* ``cuda``: training and enhancement on CUDA (``--devices cpu cuda``, when a GPU is present).

Compared: the mixtures (and their clean / noise / lips / corruption files), the checkpoints'
tensors, the enhanced signals and the scores (SI-SDR, ...). Each comparison prints
"bit-identical" or the largest absolute difference, and the whole result is written to
``<out>/reproducibility.json``. The corpus is built once and shared by content hash (its own
determinism is tested in ``tests/test_corpus_synthetic.py``). Nothing here is assumed: a reader
reruns it on their machine. The README's "Reproducibility" section reports what it measured.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]

#: the reduced run (overrides of the smoke preset): every stage, three model kinds, seconds of work
REDUCED = [
    "models=[{name: a-vae}, {name: av-vae, fusion: gated, training: {epochs: 2}}, "
    "{name: av-cvae, fusion: concat, training: {epochs: 2}}]",
    "training.epochs=3", "conditions.noises=[white]", "conditions.snrs_db=[0.0]",
    "conditions.corruptions=[none, occlusion@0.7]", "enhance.algorithm_params={ldem: {n_iter: 8, n_chains: 3}}",
    "enhance.baselines=[noisy]", "metrics.names=[si_sdr, stoi]",
]


def _run(out: Path, preset: str, overrides: list[str], limit: int, env: dict[str, str]) -> None:
    cmd = [sys.executable, str(REPO / "run_benchmark.py"), "run", "--preset", preset, "--out", str(out), "--limit",
           str(limit), "--no-report", "--no-progress"]
    for o in overrides:
        cmd += ["--set", o]
    log.info("run %s (%s)", out.name, " ".join(f"{k}={v}" for k, v in env.items() if k.startswith("AVBENCH")))
    subprocess.run(cmd, cwd=REPO, env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    """0.0 when bit-identical (same shape and bytes), else the largest |a - b| (inf on shape mismatch)."""
    if a.shape != b.shape:
        return float("inf")
    if a.dtype == b.dtype and a.tobytes() == b.tobytes():
        return 0.0
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def _files(run: Path, pattern: str) -> dict[str, Path]:
    return {str(p.relative_to(run)): p for p in sorted(run.glob(pattern)) if p.is_file()}


def _load_array(p: Path) -> np.ndarray:
    if p.suffix == ".npy":
        return np.load(p)
    from benchmark.audio_io import read_sound

    return read_sound(p)[0]


def _checkpoint_tensors(p: Path) -> dict[str, np.ndarray]:
    import torch

    blob = torch.load(p, map_location="cpu", weights_only=False)
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else blob
    return {k: v.detach().cpu().numpy() for k, v in state.items() if hasattr(v, "detach")}


def compare(a: Path, b: Path) -> dict[str, dict[str, Any]]:
    """Per artifact kind: number of files compared, how many are bit-identical, the largest
    absolute difference (0.0 = all bit-identical) and the files missing on one side."""
    out: dict[str, dict[str, Any]] = {}
    kinds = {"mixtures": "mixtures/**/*.wav", "video and corruption": "mixtures/**/*.npy",
             "enhanced signals": "enhanced/**/*.wav"}
    for kind, pattern in kinds.items():
        fa, fb = _files(a, pattern), _files(b, pattern)
        diffs = [_max_diff(_load_array(fa[k]), _load_array(fb[k])) for k in sorted(set(fa) & set(fb))]
        out[kind] = _summary(diffs, set(fa) ^ set(fb))
    ca, cb = _files(a, "models/**/checkpoint.pt"), _files(b, "models/**/checkpoint.pt")
    diffs = []
    for k in sorted(set(ca) & set(cb)):
        ta, tb = _checkpoint_tensors(ca[k]), _checkpoint_tensors(cb[k])
        diffs += [_max_diff(ta[n], tb[n]) if n in tb else float("inf") for n in ta]
    out["checkpoint tensors"] = _summary(diffs, set(ca) ^ set(cb))
    ra, rb = pd.read_parquet(a / "results.parquet"), pd.read_parquet(b / "results.parquet")
    key = [c for c in ("item_id", "model_id", "algorithm", "train_seed") if c in ra and c in rb]
    m = ra.merge(rb, on=key, suffixes=("_a", "_b"))
    for metric in ("si_sdr", "stoi"):
        if f"{metric}_a" in m:
            d = np.abs(pd.to_numeric(m[f"{metric}_a"], errors="coerce") - pd.to_numeric(m[f"{metric}_b"], errors="coerce"))
            out[f"score {metric}"] = _summary([0.0 if v == 0 else float(v) for v in d.dropna()], set())
    return out


def _summary(diffs: list[float], missing: set[str]) -> dict[str, Any]:
    return {"n": len(diffs), "n_identical": int(sum(d == 0.0 for d in diffs)),
            "max_abs_diff": float(max(diffs)) if diffs else float("nan"), "missing": sorted(missing)}


def _verdict(s: dict[str, Any]) -> str:
    if s["missing"]:
        return f"{len(s['missing'])} file(s) on one side only"
    if s["n"] == 0:
        return "nothing to compare"
    if s["n_identical"] == s["n"]:
        return f"bit-identical ({s['n']})"
    return f"{s['n_identical']}/{s['n']} identical, max |diff| {s['max_abs_diff']:.3g}"


VARIANTS = ("rerun", "threads-2", "cuda")


def measure(out: Path, *, preset: str = "smoke", limit: int = 1, devices: tuple[str, ...] = ("cpu",),
            extra: Optional[list[str]] = None, variants: tuple[str, ...] = VARIANTS) -> dict[str, Any]:
    """Run the reduced pipeline as the baseline and each variant; return (and write to
    ``out/reproducibility.json``) every comparison against the baseline."""
    import torch

    from benchmark.runner.provenance import device_info, machine_info, package_versions

    overrides = REDUCED + list(extra or [])
    one = {"AVBENCH_TRAIN_THREADS": "1", "AVBENCH_ENHANCE_THREADS": "1"}
    runs: dict[str, tuple[dict[str, str], list[str]]] = {
        "rerun": (one, []),
        "threads-2": ({"AVBENCH_TRAIN_THREADS": "2", "AVBENCH_ENHANCE_THREADS": "2"}, []),
    }
    if "cuda" in devices:
        if torch.cuda.is_available():
            runs["cuda"] = (one, ["training.device=cuda", "enhance.device=cuda"])
        else:
            log.warning("--devices cuda: no CUDA device here; the CPU/GPU comparison is left out")
    runs = {k: v for k, v in runs.items() if k in variants}
    _run(out / "baseline", preset, overrides, limit, one)
    result: dict[str, Any] = {"preset": preset, "limit": limit, "overrides": overrides, "machine": machine_info(),
                              "device": device_info(), "versions": package_versions(), "comparisons": {}}
    for name, (env, sets) in runs.items():
        _run(out / name, preset, overrides + sets, limit, env)
        result["comparisons"][name] = compare(out / "baseline", out / name)
    (out / "reproducibility.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.reproducibility", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="smoke", help="preset the reduced run starts from (default smoke)")
    p.add_argument("--limit", type=int, default=1, help="test utterances (default 1)")
    p.add_argument("--devices", nargs="+", default=["cpu"], choices=("cpu", "cuda"),
                   help="add 'cuda' to compare a GPU run with the CPU baseline")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                   help="which variants to run against the baseline (default: all; cuda only with --devices cuda)")
    p.add_argument("--out", default=None, help="folder for the runs and reproducibility.json (default: a temporary one)")
    p.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                   help="more overrides of the reduced run (repeatable)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    with tempfile.TemporaryDirectory(prefix="avbench-repro-") as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        res = measure(out, preset=args.preset, limit=args.limit, devices=tuple(args.devices), extra=args.extra,
                      variants=tuple(args.variants))
        rows = [{"variant": v, "artifact": k, "result": _verdict(s)} for v, c in res["comparisons"].items()
                for k, s in c.items()]
        table = pd.DataFrame(rows)
        print(f"reproducibility of a reduced {args.preset} run against its baseline "
              f"(1 torch thread per job, CPU; {res['machine'].get('processor') or res['machine'].get('machine')}):")
        print(table.to_string(index=False))
        if args.out:
            print(f"details: {out / 'reproducibility.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
