"""Score any folder of (reference, estimate) pairs matched by file name.

Every ``*.wav``/``*.flac`` under ``--est`` (relative path, e.g. ``a/utt1.wav``) is paired with the
file of the same relative path under ``--ref`` (and ``--mix`` if given, which adds the input_*
and delta_* columns and enables sir/sar). Files without a partner are listed and skipped. A
metric that fails on a pair gives NaN and a reason in ``<metric>_error``; it never stops the
batch. Scoring runs in ``--jobs`` processes and the table is the same for any ``--jobs``.

Example::

    python run_benchmark.py score --ref data/clean --est runs/x/enhanced --mix data/noisy --out results.csv
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

NAME = "score"
HELP = "score a folder of estimates against references (PESQ, STOI, ESTOI, SI-SDR, SDR, ...)"

log = logging.getLogger(__name__)
AUDIO_SUFFIXES = (".wav", ".flac")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ref", required=True, help="folder of clean reference files")
    p.add_argument("--est", required=True, help="folder of estimates (matched to references by relative path)")
    p.add_argument("--mix", default=None, help="folder of unprocessed mixtures (adds input_* and delta_* columns)")
    p.add_argument("--out", default="results.csv", help="output table (.csv or .parquet; default results.csv)")
    p.add_argument("--metrics", nargs="+", default=None, help="metric names (default: si_sdr pesq stoi estoi sdr)")
    p.add_argument("--pesq-mode", default="wb", choices=("wb", "nb"), help="PESQ mode (default wb)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")


def audio_files(folder: Path) -> dict[str, Path]:
    """Relative path (posix) -> file, for the audio files under ``folder``."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES}


def match_pairs(ref: Path, est: Path, mix: Path | None = None) -> tuple[list[dict], list[str]]:
    """Pairs (``name``, ``ref``, ``est``, optional ``mixture`` paths) and the names left unmatched."""
    for what, d in (("--ref", ref), ("--est", est), ("--mix", mix)):
        if d is not None and not d.is_dir():
            raise SystemExit(f"score: {what} {d} is not a folder")
    refs, ests = audio_files(ref), audio_files(est)
    mixes = audio_files(mix) if mix is not None else {}
    pairs, unmatched = [], []
    for name, e in ests.items():
        if name not in refs or (mix is not None and name not in mixes):
            unmatched.append(name)
            continue
        rec = {"name": name, "ref": str(refs[name]), "est": str(e)}
        if mix is not None:
            rec["mixture"] = str(mixes[name])
        pairs.append(rec)
    unmatched += [f"(no estimate) {n}" for n in refs if n not in ests]
    return pairs, unmatched


def run(args: argparse.Namespace) -> int:
    from benchmark.metrics import DEFAULT_METRICS, score_many

    pairs, unmatched = match_pairs(Path(args.ref), Path(args.est), Path(args.mix) if args.mix else None)
    for n in unmatched[:20]:
        log.warning("unmatched: %s", n)
    if len(unmatched) > 20:
        log.warning("... and %d more unmatched files", len(unmatched) - 20)
    if not pairs:
        log.error("no (reference, estimate) pairs matched by file name under %s and %s", args.ref, args.est)
        return 2
    names = args.metrics or list(DEFAULT_METRICS)
    table = score_many(pairs, names, jobs=args.jobs, pesq_mode=args.pesq_mode)
    table = table.drop(columns=[c for c in ("ref", "est", "mixture") if c in table.columns])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        table.to_parquet(out, index=False)
    else:
        table.to_csv(out, index=False)
    value_cols = [c for c in table.columns if c != "name" and not c.endswith("_error")]
    print(f"scored {len(table)} pairs ({len(unmatched)} unmatched) -> {out}")
    print(table[value_cols].mean(numeric_only=True).round(3).to_string())
    failed = {c: int((table[c] != "").sum()) for c in table.columns if c.endswith("_error")}
    failed = {k: v for k, v in failed.items() if v}
    if failed:
        print(f"metric failures (NaN, reason in *_error): {failed}")
    return 0
