"""Train the preset's speech models on the clean train split of its corpus (nothing noisy is seen).

Each model goes to ``<out>/models/<model_key>/`` (``checkpoint.pt``, ``config.json``,
``curves.csv``, ``curves.png``) through the runner's training jobs, the same as ``run``'s: a model
already trained with the same settings, corpus and initialisation (here or by ``run``) is reused
unless ``--force``. AV models are initialised from the A-VAE when
``training.init_from_avae`` is on (the A-VAE is trained first if needed). The summary prints each
model's validation reconstruction loss (Itakura-Saito divergence per TF bin, clean video) and the
negative ELBO, and compares the AV models with the A-VAE; for each AV model it prints whether
the model uses the video at all (``video gain``: validation negative ELBO with zeroed video minus
clean video, nats per frame, from the checkpoint's ``video_gain_nats_per_frame``). The summary is
also written to ``<out>/models/training_summary.csv``. Last, it prints each checkpoint folder and
the preset line that names it (``{name: av-vae, fusion: gated, checkpoint: DIR}``: that entry then
uses the checkpoint instead of training). Entries that already name a ``checkpoint`` are listed
too (not trained); outside systems (``name: external``) are skipped.

Examples::

    python run_benchmark.py train --preset smoke                     # every model of the preset
    python run_benchmark.py train --model av-vae --fusion gated --preset smoke
    python run_benchmark.py train --model av-vae --fusion uncertainty --set training.epochs=5
"""
from __future__ import annotations

import argparse
import csv
import logging
import math
from pathlib import Path
from typing import Any

from benchmark.cli import add_spec_arguments

NAME = "train"
HELP = "train speech models (A-VAE, AV-VAEs with fusions) on clean speech"

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_spec_arguments(p)
    p.add_argument("--model", default=None, help="train only this model name (e.g. av-vae); default: all of the preset")
    p.add_argument("--fusion", default=None, help="with --model: the fusion (e.g. gated)")
    p.add_argument("--corpus", default=None, metavar="PATH", help="an existing corpus root (default: build/reuse the preset's)")
    p.add_argument("--force", action="store_true", help="retrain even if an up-to-date checkpoint exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _select(spec, model: str | None, fusion: str | None):
    from benchmark.spec import ModelEntry

    if model is None:
        if fusion:
            raise SystemExit("--fusion needs --model")
        return list(spec.models)
    chosen = [e for e in spec.models if e.name == model and (fusion is None or e.fusion == fusion)]
    return chosen or [ModelEntry(name=model, fusion=fusion)]


def _check_names(entries) -> None:
    """Unknown model / fusion names fail before any work: a ConfigError (exit 2) naming the
    option, with the registry's did-you-mean and known names."""
    from benchmark.configtools import ConfigError
    from models.registry import FUSIONS, MODELS

    for e in entries:
        for option, registry, name in (("--model", MODELS, e.name), ("--fusion", FUSIONS, e.fusion)):
            if name is None:
                continue
            try:
                registry.get(name)
            except KeyError as exc:
                raise ConfigError(f"{option}: {exc.args[0]}") from None


def preset_line(entry: Any, checkpoint_dir: Path) -> str:
    """The preset entry that names a trained checkpoint, e.g. ``{name: av-vae, fusion: gated,
    checkpoint: /abs/runs/x/models/av-vae__gated}`` (``id`` kept when the entry has one; params
    are not repeated: those the entry leaves out are the checkpoint's)."""
    parts = [f"name: {entry.name}"]
    if entry.fusion:
        parts.append(f"fusion: {entry.fusion}")
    if entry.id:
        parts.append(f"id: {entry.id}")
    parts.append(f"checkpoint: {Path(checkpoint_dir).resolve()}")
    return "{" + ", ".join(parts) + "}"


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from benchmark.runner.pipeline import RunOptions, run_stages
    from benchmark.runner.stages.train import init_source, needs_training
    from benchmark.cli import load_stage_spec
    from benchmark.spec import ModelEntry
    from benchmark.report.models_table import training_row
    from models.checkpoint import read_meta
    from models.training import load_training_data

    spec, out = load_stage_spec(args)
    entries = [e for e in _select(spec, args.model, args.fusion) if not e.external]  # outside systems: no model
    _check_names(entries)
    avae_entry = next((e for e in spec.models if e.name == "a-vae"), ModelEntry(name="a-vae"))
    # what an entry starts from is declared by its model class (``init_from``, e.g. the A-VAE)
    sources = {init_source(e) for e in entries if spec.training.init_from_avae and e.training.get("init_from_avae", True)}
    for src in sorted(s for s in sources if s is not None and not any(e.name == s for e in entries)):
        first = next((e for e in spec.models if e.name == src), ModelEntry(name=src))
        log.info("AV models are initialised from the %s (training.init_from_avae): training/reusing %s first",
                 src, first.label)
        entries = [first] + entries
    entries = sorted(entries, key=lambda e: init_source(e) is not None)  # the models others start from first

    # the runner's training jobs (same keys as `run`: a model trained here is reused there and
    # vice versa); composite models (mixture/switching VAEs) need no training
    progress = not args.no_progress
    opts = RunOptions(jobs=spec.runner.jobs, progress=progress, report=False, preset=args.preset,
                      corpus_root=args.corpus, force=("train",) if args.force else ())
    rs, produced = run_stages(dataclasses.replace(spec, models=entries), out, "train", opts)
    root = produced["corpus_root"]
    trained = produced["trained"]
    failed = [e.label for e in entries if e.label not in trained and needs_training(e)]
    if failed:
        for k in rs.stages["train"].failed_keys:
            rec = rs.stages["train"].records.get(k, {})
            log.error("training %s failed: %s", rec.get("label", k), rec.get("error"))
    entries = [e for e in entries if e.label in trained]
    if not entries:
        print(f"no model trained ({', '.join(failed)} failed; see {out / 'jobs' / 'train'})")
        return 1
    done: dict[str, Path] = {e.label: Path(trained[e.label]["checkpoint"]) for e in entries}
    data_cache: dict[int, Any] = {}

    rows = []
    for e in entries:
        meta = read_meta(done[e.label]).get("meta", {})
        rows.append({**training_row(meta, e.label), "checkpoint": str(done[e.label])})
    summary = out / "models" / "training_summary.csv"
    summary.parent.mkdir(parents=True, exist_ok=True)
    with open(summary, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"training summary (validation on clean held-out speakers; corpus {root}):")
    print(f"  {'model':<34} {'params':>9} {'epochs':>6} {'val IS/bin':>10} {'val KL':>8} {'val -ELBO':>10} "
          f"{'video gain':>10} {'min':>5}")
    for r in rows:
        gain = r["video_gain_nats_per_frame"]
        gain_s = f"{gain:>+10.2f}" if math.isfinite(gain) else f"{'-':>10}"
        print(f"  {r['model']:<34} {r['params'] or 0:>9} {r['epochs']:>6} {r['val_is_per_bin']:>10.4f} "
              f"{r['val_kl']:>8.2f} {r['val_neg_elbo']:>10.1f} {gain_s} {r['minutes']:>5.1f}")
    if any(math.isfinite(r["video_gain_nats_per_frame"]) for r in rows):
        print("  (video gain: validation -ELBO with zeroed video minus clean video, nats/frame; ~0 = the video is "
              "not used)")
    base = next((r for r in rows if r["model"] == avae_entry.label), None)
    if base is not None:
        for r in rows:
            if r is base:
                continue
            d = r["val_is_per_bin"] - base["val_is_per_bin"]
            verdict = "lower (video helps)" if d < 0 else "NOT lower"
            print(f"  {r['model']}: val IS/bin {r['val_is_per_bin']:.4f} vs A-VAE {base['val_is_per_bin']:.4f} "
                  f"-> {verdict} ({100 * d / base['val_is_per_bin']:+.1f}%)")
    probe_lines = []
    for e in entries:
        if e.name == "a-vae":
            continue
        from models import load
        from models.training import reliability_probe

        model = load(done[e.label])
        lip = int(model.config.lip_size)
        if lip not in data_cache:
            data_cache[lip] = load_training_data(root, lip, progress=progress)
        probe = reliability_probe(model, data_cache[lip].val)
        if probe:
            parts = [f"{cond} " + "/".join(f"{probe[cond][k]:.2f}" for k in sorted(probe[cond])) for cond in probe]
            probe_lines.append(f"  {e.label:<34} {', '.join(parts)}  ({'/'.join(sorted(probe['clean']))})")
    if probe_lines:
        print("mean visual weight on validation speech (clean video vs. corrupted; diagnostic):")
        print("\n".join(probe_lines))
    print(f"summary written to {summary}")
    print("checkpoints (a preset entry naming one uses it instead of training; the line to paste into models:):")
    for e in entries:
        print(f"  {e.label}: {done[e.label].parent}")
        print(f"    - {preset_line(e, done[e.label].parent)}")
    if failed:
        print(f"FAILED: {', '.join(failed)} (see {out / 'jobs' / 'train'}; rerun with `run --retry-failed`)")
    return 1 if failed else 0

