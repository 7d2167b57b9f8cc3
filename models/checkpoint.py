"""Save and load speech models by registry name.

A checkpoint folder holds ``checkpoint.pt`` (``{"format", "name", "config", "state_dict", "meta"}``)
and ``config.json`` (the same name/config/meta, readable without torch). :func:`load` accepts the
``.pt`` file or its folder and rebuilds the registered class with ``cls.from_config(config)``.

``meta`` is what :func:`models.training.train_model` records: the entry, the resolved training
settings, the stopping epoch and validation figures, and for AV models whether the video is used
at all (``video_gain_nats_per_frame``: validation negative ELBO with zeroed video minus clean
video; ``video_gain_is_per_bin``, ``val_loss_zero_video``), plus the reliability-training options
in force (``augmentation``, ``audio_masking``, ``reliability_supervision``; ``None`` when off).
:func:`read_meta` reads it without torch.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Optional

import torch

from models.base import SpeechModel

log = logging.getLogger(__name__)

FORMAT = "avfusion-bench/speech-model/1"
CHECKPOINT_FILE = "checkpoint.pt"
CONFIG_FILE = "config.json"


def _model_class(name: str):
    from models.registry import MODELS

    try:
        return MODELS.get(name)
    except ImportError as exc:  # another family module of the registry failed to import
        import models.vae as vae

        local = {vae.AVAE.name: vae.AVAE, vae.AVVAE.name: vae.AVVAE}
        if name in local:
            log.warning("model registry incomplete (%s); using %s from models.vae", exc, name)
            return local[name]
        raise


def build_model(name: str, params: Optional[dict[str, Any]] = None, *, fusion: Optional[str] = None) -> SpeechModel:
    """Build the registered model ``name`` from config overrides (``fusion`` sets ``params["fusion"]``)."""
    cls = _model_class(name)
    params = dict(params or {})
    if fusion is not None:
        params["fusion"] = fusion
    if hasattr(cls, "from_config"):
        return cls.from_config(params)
    return cls(**params)


def save(model: SpeechModel, out_dir: str | os.PathLike, *, meta: Optional[dict[str, Any]] = None) -> Path:
    """Write ``checkpoint.pt`` and ``config.json`` into ``out_dir`` atomically; return the ``.pt`` path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header = {"format": FORMAT, "name": model.name, "config": model.config_dict(), "meta": dict(meta or {})}
    tmp = out / f".{CHECKPOINT_FILE}.{os.getpid()}.tmp"
    torch.save({**header, "state_dict": model.state_dict()}, tmp)
    os.replace(tmp, out / CHECKPOINT_FILE)
    tmpj = out / f".{CONFIG_FILE}.{os.getpid()}.tmp"
    tmpj.write_text(json.dumps(header, indent=2, sort_keys=True, default=str))
    os.replace(tmpj, out / CONFIG_FILE)
    return out / CHECKPOINT_FILE


def load(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> SpeechModel:
    """Load a checkpoint (file or folder) into the right registered class, in eval mode."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_FILE
    if not p.exists():
        raise FileNotFoundError(f"{p}: checkpoint not found (train the model first: run_benchmark.py train)")
    try:
        blob = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"{p}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{p}: not an avfusion-bench speech-model checkpoint (format {blob.get('format') if isinstance(blob, dict) else type(blob).__name__!r})")
    model = build_model(blob["name"], blob["config"])
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"{p}: weights do not match model {blob['name']!r}: {exc}") from exc
    model.checkpoint_meta = blob.get("meta", {})
    return model.eval()


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of a checkpoint folder (name, config, meta), without loading weights."""
    p = Path(path)
    if p.is_file():
        p = p.parent
    f = p / CONFIG_FILE
    if not f.exists():
        raise FileNotFoundError(f"{f}: checkpoint config not found")
    return json.loads(f.read_text())
