"""The report's model table: how every trained model of a run ended its training.

One row per trained checkpoint under ``<run>/models/`` (``<model_key>/config.json``, or
``<model_key>/seed-<s>/config.json`` with several training seeds), read from the checkpoint's
metadata (:func:`models.checkpoint.read_meta`, written by :func:`models.training.train_model`):
epochs run, best epoch and why training stopped (early stopping on the validation speakers),
the best validation IS divergence per time-frequency bin, KL and negative ELBO (nats per frame),
and -- for audio-visual models -- the **video gain**: validation negative ELBO with zeroed video
minus clean video (nats per frame; ~0 means the model does not use the video) and the share of
the visual front-end's output units that are constant on the corpus's validation lips
(:func:`visual_units_constant`; dead ReLUs). These are the numbers that say whether a prior is
good enough for the comparison to mean something. :func:`lip_information` adds the corpus's
lip-information check when the corpus has one.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: columns of :func:`training_table`, in order
COLUMNS = ["model", "train_seed", "params", "epochs", "best_epoch", "stop", "val_is_per_bin", "val_kl",
           "val_neg_elbo", "video_gain_nats_per_frame", "video_gain_is_per_bin", "visual_units_constant", "minutes"]


def training_row(meta: dict[str, Any], label: str, train_seed: Optional[int] = None) -> dict[str, Any]:
    """One row of :data:`COLUMNS` from a checkpoint's ``meta`` (``config.json``'s ``meta``)."""
    def num(key: str) -> float:
        v = meta.get(key)
        return float(v) if isinstance(v, (int, float)) else float("nan")

    return {"model": label, "train_seed": train_seed, "params": meta.get("params"), "epochs": meta.get("epochs_run"),
            "best_epoch": meta.get("best_epoch"), "stop": meta.get("stop_reason") or "",
            "val_is_per_bin": num("best_val_is_per_bin"), "val_kl": num("best_val_kl"),
            "val_neg_elbo": num("best_val_loss"), "video_gain_nats_per_frame": num("video_gain_nats_per_frame"),
            "video_gain_is_per_bin": num("video_gain_is_per_bin"), "visual_units_constant": float("nan"),
            "minutes": num("train_seconds") / 60}


def validation_lips(corpus_root: str | Path, *, split: str = "val", limit: int = 40) -> list[np.ndarray]:
    """uint8 lip frames ``[N, H, W]`` of up to ``limit`` utterances of ``split`` (spread over the
    speakers), for :func:`visual_units_constant`; empty when the corpus cannot be read."""
    from benchmark.corpus.manifest import read_manifest, select
    from benchmark.audio_io import read_lips

    root = Path(corpus_root)
    try:
        rows = select(read_manifest(root), split, limit)
        return [read_lips(root / str(p)) for p in rows["lips_path"]]
    except Exception as exc:  # noqa: BLE001 - a diagnostic: the report goes on without it
        log.warning("%s: no %s lips for the visual-unit check (%s)", root, split, exc)
        return []


def visual_units_constant(checkpoint: str | Path, lips: Sequence[np.ndarray]) -> float:
    """Share of the visual front-end's output units that are constant (max - min < 1e-6) over
    every frame of ``lips``: a dead ReLU unit reads 0 on every frame and carries nothing to the
    fusion. NaN for a model without a visual front-end, or without frames."""
    import torch

    from models import load

    model = load(checkpoint)
    if not getattr(model, "is_audio_visual", False) or not hasattr(model, "visual_features") or not lips:
        return float("nan")
    lo = hi = None
    with torch.no_grad():
        for frames in lips:
            arr = np.asarray(frames)
            x = torch.from_numpy(arr.astype(np.float32) / (255.0 if arr.dtype == np.uint8 else 1.0))[None]
            f = model.visual_features(x, torch.ones(x.shape[:2], dtype=torch.bool))[0]
            a, b = f.amin(dim=0), f.amax(dim=0)
            lo, hi = (a, b) if lo is None else (torch.minimum(lo, a), torch.maximum(hi, b))
    return float(((hi - lo) < 1e-6).float().mean())


def training_table(run_dir: str | Path, *, order: Optional[Sequence[str]] = None, probe_units: bool = True,
                   labels: Optional[Iterable[str]] = None) -> pd.DataFrame:
    """:data:`COLUMNS` for every checkpoint under ``run_dir/models`` (empty when there is none);
    rows sorted by ``order`` (model labels; others after) then training seed. A checkpoint whose
    ``config.json`` cannot be read is skipped with a warning naming it. ``probe_units``: run each
    audio-visual model's front-end on the validation lips of the run's corpus
    (:func:`visual_units_constant`; needs ``run_dir/corpus``). ``labels``: only the checkpoints of
    these model labels (a run folder resumed with fewer models, or copied from another run, keeps
    the other models' folders); None: all."""
    from models.checkpoint import read_meta

    root = Path(run_dir) / "models"
    keep = None if labels is None else set(labels)
    lips: Optional[list[np.ndarray]] = None
    rows = []
    for cfg in sorted(root.glob("*/config.json")) + sorted(root.glob("*/seed-*/config.json")):
        try:
            blob = read_meta(cfg.parent)
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("%s: unreadable checkpoint config (%s); left out of the model table", cfg, exc)
            continue
        meta = blob.get("meta") or {}
        seed_dir = cfg.parent.name
        seed = int(seed_dir.split("-", 1)[1]) if seed_dir.startswith("seed-") and seed_dir[5:].isdigit() else None
        if seed is None and isinstance(meta.get("training"), dict) and isinstance(meta["training"].get("seed"), int):
            seed = int(meta["training"]["seed"])
        label = str(meta.get("label") or (cfg.parent.parent.name if seed_dir.startswith("seed-") else cfg.parent.name))
        if keep is not None and label not in keep:
            continue
        row = training_row(meta, label, seed)
        if probe_units and np.isfinite(row["video_gain_nats_per_frame"]) and (cfg.parent / "checkpoint.pt").exists():
            if lips is None:
                lips = validation_lips(Path(run_dir) / "corpus")
            try:
                row["visual_units_constant"] = visual_units_constant(cfg.parent, lips)
            except Exception as exc:  # noqa: BLE001 - a diagnostic: the table goes on without it
                log.warning("%s: visual-unit check failed (%s)", cfg.parent, exc)
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.DataFrame(rows, columns=COLUMNS)
    rank = {m: i for i, m in enumerate(order or ())}
    out["_o"] = out["model"].map(lambda m: rank.get(m, len(rank)))
    return out.sort_values(["_o", "model", "train_seed"]).drop(columns="_o").reset_index(drop=True)


def training_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per model over its training seeds: number of seeds, mean epochs, and mean [min, max] of
    the validation IS per bin and of the video gain -- the compact form the report shows."""
    if table.empty:
        return pd.DataFrame()

    def span(v: pd.Series, fmt: str) -> str:
        v = pd.to_numeric(v, errors="coerce").dropna()
        if v.empty:
            return "–"
        if len(v) == 1:
            return format(float(v.iloc[0]), fmt)
        return f"{format(float(v.mean()), fmt)} [{format(float(v.min()), fmt)}, {format(float(v.max()), fmt)}]"

    rows = []
    for model, g in table.groupby("model", sort=False):
        stops = g["stop"].astype(str)
        rows.append({"model": model, "n_seeds": len(g), "params": g["params"].iloc[0],
                     "epochs (mean)": float(np.nanmean(pd.to_numeric(g["epochs"], errors="coerce"))),
                     "early-stopped": f"{int(stops.str.startswith('early stop').sum())}/{len(g)}",
                     "val IS/bin": span(g["val_is_per_bin"], ".4f"),
                     "video gain (nats/frame)": span(g["video_gain_nats_per_frame"], "+.2f"),
                     "visual units constant": span(g["visual_units_constant"], ".0%"),
                     "minutes (total)": float(pd.to_numeric(g["minutes"], errors="coerce").sum())})
    return pd.DataFrame(rows)


def lip_information(run_dir: str | Path) -> Optional[str]:
    """The corpus's lip-information check (``corpus check``: what the lips alone tell about the
    speech on held-out speakers, :mod:`benchmark.corpus.infocheck`), formatted; None when the run's
    corpus has no ``infocheck.json``. Read beside the video gains: a corpus whose lips carry
    information and a model whose video gain is ~0 point at the model, not the corpus."""
    from benchmark.corpus.infocheck import REPORT_FILE, InfoCheckReport, format_report

    path = Path(run_dir) / "corpus" / REPORT_FILE
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
        known = set(InfoCheckReport.__dataclass_fields__)
        return format_report(InfoCheckReport(**{k: v for k, v in d.items() if k in known}))
    except (OSError, ValueError, TypeError) as exc:
        log.warning("%s: unreadable lip-information check (%s); left out of the report", path, exc)
        return None
