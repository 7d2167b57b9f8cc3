"""The condition grid (noises x SNRs x visual corruptions) applied to a corpus split.

Pure, per-item functions (importable by the runner's cached jobs):

* :func:`expand_conditions` turns a :class:`~benchmark.spec.ConditionsSpec` into
  :class:`Condition` objects with readable, file-system-safe, unique ``condition_id`` values;
* :func:`make_item` mixes one utterance under one condition (no I/O);
* :func:`write_item` writes its files atomically and returns its ``MIX_COLUMNS`` row;
* :func:`build_mixtures` is a simple driver writing ``<run_dir>/mixtures.parquet``.

Seeds (same (utterance, condition, seed) -> same bytes in any process order): the noise segment
is drawn with ``derive_seed(seed, utt_id, "noise", noise)`` and the video corruption with
``derive_seed(seed, utt_id, "video", corruption)``, so the same utterance gets the same noise
segment at every SNR and the same corrupted video under every noise (paired comparisons); the
mixing offset uses ``derive_seed(seed, utt_id, "mix", noise)``, so conditions that differ only in
SNR or in the video corruption mix exactly the same noise samples.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.audio_io import SAMPLE_RATE, write_audio, write_lips
from benchmark.conditions.corruptions import apply_corruption, canonical, severity_of
from benchmark.conditions.mixing import mix
from benchmark.schema import MIX_COLUMNS, item_id
from benchmark.seeding import derive_seed, stable_hash

log = logging.getLogger(__name__)

MIX_DIR = "mixtures"
MIX_TABLE = "mixtures.parquet"
_SAFE = re.compile(r"[^A-Za-z0-9._+-]")


def _safe(text: str) -> str:
    """File-system-safe text; a short hash is appended when characters had to be replaced."""
    out = _SAFE.sub("-", text)
    return out if out == text else f"{out}-{stable_hash(text, length=6)}"


@dataclass(frozen=True)
class Condition:
    """One test condition: noise, SNR (and its definition), visual corruption, seed."""

    noise: str
    snr_db: float
    snr_definition: str = "energy"
    corruption: str = "none"
    seed: int = 0
    peak_normalise: bool = False
    allow_noise_loop: bool = True

    @property
    def condition_id(self) -> str:
        """Readable, file-system-safe, unique id, e.g. ``babble_snr-5_occlusion-0.7``."""
        snr = f"{float(self.snr_db):g}"
        parts = [_safe(self.noise), f"snr{snr}" + ("act" if self.snr_definition == "active" else "")]
        corr = canonical(self.corruption)
        parts.append(_safe(corr.replace("@", "-").replace(":", "f")))
        if self.peak_normalise:
            parts.append("pk")
        if int(self.seed) != 0:
            parts.append(f"s{int(self.seed)}")
        return "_".join(parts)


def expand_conditions(spec: Any) -> list[Condition]:
    """All (noise x SNR x corruption) conditions of a ``ConditionsSpec``, in that order, without
    duplicates and without those its ``exclude`` filters match (:mod:`benchmark.conditions.subsets`)."""
    from benchmark.conditions.subsets import excluded
    from noise_sets import NOISES

    for n in spec.noises:
        NOISES.get(n)  # unknown noise names fail early with the list of known ones
    out: list[Condition] = []
    seen: set[str] = set()
    for noise in spec.noises:
        for snr in spec.snrs_db:
            for corr in spec.corruptions:
                c = Condition(noise=str(noise), snr_db=float(snr), snr_definition=spec.snr_definition,
                              corruption=canonical(str(corr)), seed=int(spec.seed),
                              peak_normalise=bool(spec.peak_normalise), allow_noise_loop=bool(spec.allow_noise_loop))
                if excluded(getattr(spec, "exclude", None) or [], c.noise, c.snr_db, c.corruption):
                    continue
                if c.condition_id not in seen:
                    seen.add(c.condition_id)
                    out.append(c)
    return out


@dataclass
class MixedItem:
    """One utterance under one condition: the signals and frames to write (all in memory)."""

    utt_id: str
    speaker: str
    condition: Condition
    mixture: np.ndarray  # float32
    clean: np.ndarray  # float32 reference (scaled like the mixture if peak-normalised)
    noise: np.ndarray  # float32 scaled noise; mixture == clean + noise
    lips: np.ndarray  # uint8 N x H x W (corrupted)
    level: np.ndarray  # float32 [N] corruption level per video frame (0 = untouched)
    fps: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def item_id(self) -> str:
        return item_id(self.utt_id, self.condition.condition_id)


def item_seeds(utt_id: str, cond: Condition) -> dict[str, int]:
    """The seeds of one item (see the module doc)."""
    return {
        "noise": derive_seed(int(cond.seed), utt_id, "noise", cond.noise),
        "mix": derive_seed(int(cond.seed), utt_id, "mix", cond.noise),
        "video": derive_seed(int(cond.seed), utt_id, "video", canonical(cond.corruption)),
    }


def make_item(utt: Any, cond: Condition, noise_source: Any) -> MixedItem:
    """Mix ``utt`` (an :class:`~benchmark.corpus.manifest.Utterance`) under ``cond`` (pure, no I/O)."""
    split = utt.split if utt.split in ("train", "val", "test") else None
    if split is None:
        raise ValueError(f"utterance {utt.utt_id}: split {utt.split!r} is reserved for babble noise and cannot be mixed")
    seeds = item_seeds(utt.utt_id, cond)
    where = f"utterance {utt.utt_id} under {cond.condition_id}"
    noise = noise_source.segment(int(utt.audio.size), seeds["noise"], split)
    mixture, scaled, info = mix(utt.audio, noise, cond.snr_db, seeds["mix"], definition=cond.snr_definition,
                                peak_normalise=cond.peak_normalise, allow_loop=cond.allow_noise_loop,
                                sr=int(utt.sample_rate), item=where)
    clean = np.asarray(utt.audio, dtype=np.float32)
    if info["clean_gain"] != 1.0:
        clean = (clean.astype(np.float64) * info["clean_gain"]).astype(np.float32)
    lips, level = apply_corruption(utt.lips, cond.corruption, seeds["video"])
    info = dict(info, noise_split=split, seeds=seeds)
    return MixedItem(utt_id=utt.utt_id, speaker=utt.speaker, condition=cond, mixture=mixture, clean=clean,
                     noise=scaled, lips=lips, level=level, fps=float(utt.fps), info=info)


def item_dir(cond: Condition, utt_id: str) -> str:
    """Folder of an item relative to the run folder: ``mixtures/<condition_id>/<utt_id>``."""
    return f"{MIX_DIR}/{cond.condition_id}/{_safe(utt_id)}"


def _save_npy(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, arr)
    os.replace(tmp, path)


def write_item(item: MixedItem, out_dir: Path | str) -> dict[str, Any]:
    """Write an item's files under the run folder ``out_dir`` (atomic) and return its MIX_COLUMNS row."""
    out_dir = Path(out_dir)
    rel = item_dir(item.condition, item.utt_id)
    paths = {k: f"{rel}/{f}" for k, f in (("mixture_path", "mixture.wav"), ("clean_path", "clean.wav"),
                                           ("noise_path", "noise.wav"), ("lips_path", "lips.npy"),
                                           ("corruption_path", "corruption.npy"))}
    write_audio(out_dir / paths["mixture_path"], item.mixture, SAMPLE_RATE)
    write_audio(out_dir / paths["clean_path"], item.clean, SAMPLE_RATE)
    write_audio(out_dir / paths["noise_path"], item.noise, SAMPLE_RATE)
    write_lips(out_dir / paths["lips_path"], item.lips)
    _save_npy(out_dir / paths["corruption_path"], np.asarray(item.level, dtype=np.float32))
    c = item.condition
    row = {
        "item_id": item.item_id, "utt_id": item.utt_id, "speaker": item.speaker, "condition_id": c.condition_id,
        "noise": c.noise, "snr_db": float(c.snr_db), "snr_definition": c.snr_definition, "corruption": canonical(c.corruption),
        "severity": severity_of(c.corruption), "seed": int(c.seed), **paths, "fps": float(item.fps),
        "n_samples": int(item.mixture.size), "snr_measured_db": float(item.info["snr_measured_db"]),
        "corrupted_fraction": float(np.mean(np.asarray(item.level) > 0)),
    }
    return {k: row[k] for k in MIX_COLUMNS}


# ---------------------------------------------------------------------------------------------
# simple driver


def _mix_condition(corpus_root: str, rows: list[dict[str, Any]], cond: Condition, noise_options: dict[str, Any],
                   run_dir: str) -> list[dict[str, Any]]:
    from benchmark.corpus.manifest import load_utterance
    from noise_sets import NOISES

    source = NOISES.get(cond.noise)(corpus_root=Path(corpus_root), **noise_options)
    out = []
    for r in rows:
        utt = load_utterance(corpus_root, r)
        out.append(write_item(make_item(utt, cond, source), run_dir))
    return out


def build_mixtures(spec: Any, corpus_root: Path | str, run_dir: Path | str, jobs: int = 1,
                   progress: bool = True) -> pd.DataFrame:
    """Mix the spec's split under every condition; write files and ``<run_dir>/mixtures.parquet``.

    ``spec`` is an :class:`~benchmark.spec.ExperimentSpec` (or its ``ConditionsSpec``). One job per
    condition (``jobs`` processes via joblib); rows sorted by (condition order, utt_id)."""
    from joblib import Parallel, delayed
    from tqdm import tqdm

    from benchmark.corpus.manifest import read_manifest, select

    cs = getattr(spec, "conditions", spec)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    df = select(read_manifest(corpus_root), cs.split, cs.n_utterances)
    if df.empty:
        raise ValueError(f"corpus {corpus_root}: no utterances in split {cs.split!r}")
    rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in df.to_dict("records")]
    conds = expand_conditions(cs)
    log.info("mixing %d utterances x %d conditions into %s", len(rows), len(conds), run_dir)
    args = [(str(corpus_root), rows, c, cs.options_for(c.noise), str(run_dir)) for c in conds]
    if jobs <= 1:
        results = [_mix_condition(*a) for a in tqdm(args, desc="mixing", unit="condition", disable=not progress)]
    else:
        results = Parallel(n_jobs=jobs, backend="loky")(delayed(_mix_condition)(*a) for a in args)
    table = pd.DataFrame([r for res in results for r in res], columns=MIX_COLUMNS)
    tmp = run_dir / f".{MIX_TABLE}.tmp"
    table.to_parquet(tmp, index=False)
    os.replace(tmp, run_dir / MIX_TABLE)
    log.info("wrote %s (%d items)", run_dir / MIX_TABLE, len(table))
    return table


def condition_from_row(row: dict[str, Any] | pd.Series, **extra: Any) -> Condition:
    """Rebuild a :class:`Condition` from a mixtures-table row (inverse of :func:`write_item`'s columns)."""
    r = dict(row)
    return Condition(noise=str(r["noise"]), snr_db=float(r["snr_db"]), snr_definition=str(r["snr_definition"]),
                     corruption=str(r["corruption"]), seed=int(r["seed"]), **extra)


__all__ = ["Condition", "MixedItem", "expand_conditions", "make_item", "write_item", "build_mixtures",
           "item_seeds", "item_dir", "condition_from_row", "MIX_DIR", "MIX_TABLE"]
