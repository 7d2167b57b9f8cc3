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

A preset entry may name a checkpoint folder instead of training (``{name: av-vae, fusion: gated,
checkpoint: DIR}``): :func:`check_checkpoint` compares its format tag, name, fusion and the
entry's params with ``config.json`` when the spec is loaded, and :func:`checksum` (SHA-256 of
``checkpoint.pt``) stands for it in the job keys.
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


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The ``checkpoint.pt`` of a checkpoint folder (or the file itself)."""
    p = Path(path)
    return p / CHECKPOINT_FILE if p.is_dir() else p


def checksum(path: str | os.PathLike) -> str:
    """SHA-256 of a checkpoint's ``checkpoint.pt`` (folder or file): its content identity, so
    a changed checkpoint changes the job keys that use it."""
    import hashlib

    h = hashlib.sha256()
    with open(checkpoint_file(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _differences(want: Any, have: Any, key: str) -> list[tuple[str, Any, Any]]:
    """(dotted key, wanted, found) for every key of ``want`` whose value ``have`` does not match
    (nested mappings compared key by key; keys absent from ``want`` are not compared)."""
    if isinstance(want, dict) and isinstance(have, dict):
        out: list[tuple[str, Any, Any]] = []
        for k, v in want.items():
            out += _differences(v, have.get(k), f"{key}.{k}")
        return out
    if isinstance(want, (list, tuple)) and isinstance(have, (list, tuple)):
        return [] if list(want) == list(have) else [(key, want, have)]
    return [] if want == have else [(key, want, have)]


def check_checkpoint(path: str | os.PathLike, name: str, fusion: Optional[str] = None,
                     params: Optional[dict[str, Any]] = None) -> tuple[dict[str, Any], list[tuple[str, Any, Any]]]:
    """Check a checkpoint folder against a preset's model entry without loading its weights.

    Reads ``config.json`` (:func:`read_meta`); a missing folder or file is a
    :class:`FileNotFoundError` naming the path, a wrong format tag a :class:`ValueError`. Returns
    the header and the mismatches as ``(key, entry value, checkpoint value)`` with ``key`` one of
    ``name``, ``fusion`` (when the entry names one) or ``params.<dotted key>`` (only the keys the
    entry sets are compared: the others are the checkpoint's)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint folder {p} does not exist")
    if not checkpoint_file(p).exists():
        raise FileNotFoundError(f"{checkpoint_file(p)}: no {CHECKPOINT_FILE} (not a checkpoint folder written by "
                                "run_benchmark.py train / run)")
    header = read_meta(p)
    if header.get("format") != FORMAT:
        raise ValueError(f"{p}: format tag {header.get('format')!r}, expected {FORMAT!r} (not an avfusion-bench "
                         "speech-model checkpoint)")
    config = dict(header.get("config") or {})
    bad = _differences(name, header.get("name"), "name")
    if fusion is not None:
        bad += _differences(fusion, config.get("fusion"), "fusion")
    bad += _differences(dict(params or {}), config, "params")
    return header, bad
