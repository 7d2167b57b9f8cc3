"""Score any folder or list of (reference, estimate) pairs matched by file name or utterance id.

Every ``*.wav``/``*.flac`` under ``--est`` (relative path, e.g. ``a/utt1.wav``) is paired with the
file of the same relative path under ``--ref`` (and ``--mix`` if given, which adds the input_*
and delta_* columns and enables sir/sar). Any of the three may instead be a Kaldi-style
``wav.scp`` (``<utt-id> <path>`` per line): then everything matches by utterance id, a folder's
id being its relative path without the suffix. The output table has one row per utterance
(``name``: the relative path or utterance id) and the metric columns. Files without a partner
are listed and skipped. A
metric that fails on a pair gives NaN and a reason in ``<metric>_error``; it never stops the
batch. Scoring runs in ``--jobs`` processes and the table is the same for any ``--jobs``.

Without ``--ref``/``--est`` it scores a run instead: ``score --preset NAME --out runs/NAME`` runs
the runner's cached stages up to the results table (corpus, training, mixing, enhancement and
scoring jobs are the same as ``run``'s, so whatever is done is reused) and writes
``<out>/results.parquet``/``results.csv`` (no report).

With ``--systems NAME=DIR [...]`` and ``--out runs/X`` it adds outside systems to a finished
run: each is a ``name: external`` model entry (:mod:`benchmark.runner.stages.enhance`: its files
matched by item id, ``<condition_id>/<utt_id>.wav`` under ``DIR`` or a ``wav.scp`` keyed by
``<condition_id>/<utt_id>``), scored by the run's own scoring jobs, added to ``results.*``
(``external`` = True, algorithm ``external``; an item without a file is a failed row ``missing
output``) and to the report (``--no-report`` skips rewriting it). Every cached job of the run is
reused.

Examples::

    python run_benchmark.py score --ref data/clean --est runs/x/enhanced --mix data/noisy --out results.csv
    python run_benchmark.py score --ref clean/wav.scp --est enhanced/wav.scp --mix noisy/wav.scp --out scores.csv
    python run_benchmark.py score --preset smoke --out runs/smoke
    python run_benchmark.py score --out runs/smoke --systems flowavse=outputs/flowavse
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from benchmark.audio_io import DataError, audio_list, is_scp
from benchmark.cli import add_spec_arguments

NAME = "score"
HELP = "score a folder or wav.scp of estimates against references (PESQ, STOI, ESTOI, SI-SDR, SDR, DNSMOS, ...)"

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ref", default=None, help="folder or wav.scp of clean references (folder mode)")
    p.add_argument("--est", default=None, help="folder or wav.scp of estimates (matched by relative path / utterance id)")
    p.add_argument("--mix", default=None, help="folder or wav.scp of unprocessed mixtures (adds input_* and delta_* columns)")
    p.add_argument("--out", default=None, help="folder mode: output table (.csv or .parquet; default results.csv); "
                   "run mode: the run folder (default runs/<preset name>)")
    p.add_argument("--metrics", nargs="+", default=None, help="metric names (default: si_sdr pesq_wb pesq_nb stoi estoi sdr; "
                   "`list metrics` shows all, e.g. dnsmos_ovrl with the dnsmos extra)")
    p.add_argument("--pesq-mode", default=None, choices=("wb", "nb"), help="mode of the legacy metric name `pesq` (default wb)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default 1; run mode: runner.jobs)")
    add_spec_arguments(p, out=False)
    p.add_argument("--limit", type=int, default=None, metavar="N", help="run mode: use at most N test utterances")
    p.add_argument("--systems", nargs="+", default=None, metavar="NAME=DIR",
                   help="add outside systems to the finished run --out (each a folder <condition_id>/<utt_id>.wav "
                   "or a wav.scp keyed by item id): scored, added to its results table and report, marked external")
    p.add_argument("--no-report", action="store_true", help="with --systems: do not rewrite the run's report")


def match_pairs(ref: Path, est: Path, mix: Path | None = None) -> tuple[list[dict], list[str]]:
    """Pairs (``name``, ``ref``, ``est``, optional ``mixture`` paths) and the names left unmatched.

    Each of ``ref``/``est``/``mix`` is a folder or a Kaldi-style ``wav.scp``. Folders only: files
    match by relative path (``name`` = ``a/utt1.wav``). With any list: by utterance id, a folder's
    id being its relative path without the suffix (``a/utt1``)."""
    for what, d in (("--ref", ref), ("--est", est), ("--mix", mix)):
        if d is not None and not (d.is_dir() or is_scp(d)):
            raise SystemExit(f"score: {what} {d} is not a folder or a wav.scp list")
    lists = any(d is not None and is_scp(d) for d in (ref, est, mix))
    try:
        refs, ests = audio_list(ref, keep_suffix=not lists), audio_list(est, keep_suffix=not lists)
        mixes = audio_list(mix, keep_suffix=not lists) if mix is not None else {}
    except DataError as exc:
        raise SystemExit(f"score: {exc}") from exc
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


def run_scores_of_run(args: argparse.Namespace) -> int:
    """Run mode: the runner's cached stages up to the results table of ``--preset``/``--out``."""
    from benchmark.cli import load_stage_spec
    from benchmark.runner.pipeline import RunOptions, run_stages

    extra = []
    if args.metrics:
        extra.append(f"metrics.names=[{', '.join(args.metrics)}]")
    if args.pesq_mode:
        extra.append(f"metrics.pesq_mode={args.pesq_mode}")
    spec, out = load_stage_spec(args, extra)
    jobs = args.jobs if args.jobs is not None else spec.runner.jobs
    summary, produced = run_stages(spec, out, "results", RunOptions(jobs=jobs, report=False, preset=args.preset))
    print(summary.text())
    print(f"results: {out / 'results.parquet'} (and results.csv)")
    return 0 if summary.ok else 1


def parse_systems(items: list[str]) -> list[dict[str, str]]:
    """``["NAME=DIR", ...]`` -> external model entries ``{name: external, id: NAME, outputs: DIR}``
    (``DIR`` absolute, resolved against the current directory)."""
    out = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise SystemExit(f"score: --systems {item!r}: expected NAME=DIR (a folder or wav.scp of enhanced files)")
        out.append({"name": "external", "id": name.strip(), "outputs": str(Path(path.strip()).resolve())})
    return out


def add_systems_to_run(args: argparse.Namespace) -> int:
    """``--systems`` mode: the finished run ``--out`` (its spec and corpus from ``run.json``) with
    the outside systems added as ``name: external`` entries; the runner reuses every cached job,
    brings in and scores the new files, rewrites ``results.parquet``/``results.csv`` and (unless
    ``--no-report``) the report in ``reports/<run folder name>``."""
    import json

    from benchmark.configtools import ConfigError
    from benchmark.runner.pipeline import Pipeline, RunOptions, run_stages
    from benchmark.spec import spec_from_dict

    if args.out is None or not (Path(args.out) / "run.json").exists():
        log.error("score --systems: --out must name a finished run folder (with run.json), e.g. --out runs/smoke")
        return 2
    run_dir = Path(args.out)
    info = json.loads((run_dir / "run.json").read_text())
    last = (info.get("invocations") or [{}])[-1].get("options") or {}
    data = dict(info["spec"])
    added = parse_systems(args.systems)
    names = {e["id"] for e in added}
    data["models"] = [m for m in data.get("models", []) if (m.get("id") not in names or m.get("name") != "external")]
    clash = names & {(m.get("id") or m.get("name")) for m in data["models"]}
    if clash:
        log.error("score --systems: %s already label(s) of the run's models; choose other names", sorted(clash))
        return 2
    data["models"] += added
    try:
        spec = spec_from_dict(data, source=f"{run_dir / 'run.json'} (with --systems)")
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    opts = RunOptions(jobs=args.jobs or spec.runner.jobs, report=False, preset=str(info.get("preset") or ""),
                      corpus_root=last.get("corpus_root"))
    summary, produced = run_stages(spec, run_dir, "results", opts)
    print(summary.text())
    res = produced.get("results")
    if res is not None and len(res):
        for name in sorted(names):
            sub = res[res["model_id"] == name]
            n_missing = int((sub["error"] == "missing output").sum())
            print(f"  {name} (external): {int((sub['status'] == 'ok').sum())} scored, {len(sub) - int((sub['status'] == 'ok').sum())} "
                  f"failed ({n_missing} missing output)")
    print(f"results: {run_dir / 'results.parquet'} (and results.csv)")
    if not args.no_report:
        p = Pipeline(spec, run_dir, RunOptions(report=True, progress=False), executor=None)
        path = p.report()
        print(f"report: {path}" if path else "report: failed (see the log)")
    return 0 if summary.ok else 1


def run(args: argparse.Namespace) -> int:
    from benchmark.metrics import DEFAULT_METRICS, score_many

    if args.systems:
        if args.ref is not None or args.est is not None:
            log.error("score: --systems adds outside systems to a finished run (--out runs/X), not to --ref/--est")
            return 2
        return add_systems_to_run(args)
    if args.ref is None and args.est is None:
        return run_scores_of_run(args)
    if args.ref is None or args.est is None:
        log.error("score: folder mode needs both --ref and --est (or neither, to score a run: --preset/--out)")
        return 2
    if args.overrides or args.limit is not None:
        log.error("score: --set/--limit apply to run mode (--preset/--out), not to --ref/--est folders")
        return 2
    args.out = args.out or "results.csv"
    args.jobs = args.jobs if args.jobs is not None else 1
    args.pesq_mode = args.pesq_mode or "wb"
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
