"""The corpus contract: an :class:`Utterance` and a manifest table (one row per utterance).

On disk a corpus is ``<root>/manifest.parquet`` plus ``<root>/corpus.json`` (a sidecar that
describes it: generator, version, seed, settings, checksum) and the audio (16 kHz float32 mono
wav) and lip (uint8 ``N x H x W`` ``.npy`` or a video file) files named by the manifest with
paths relative to ``root``. Every adapter writes this same form.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import pandas as pd

from benchmark.audio_io import SAMPLE_RATE, DataError, check_av_duration, read_audio, read_lips

MANIFEST_FILE = "manifest.parquet"
SIDECAR_FILE = "corpus.json"
SPLITS = ("train", "val", "test", "babble")  # "babble": speakers reserved for babble noise only

COLUMNS = [
    "utt_id", "speaker", "split", "audio_path", "lips_path", "sample_rate", "n_samples",
    "duration_s", "fps", "n_frames", "transcript", "phones", "visemes",
]


@dataclass
class Utterance:
    """One clean audio-visual utterance (a row of the manifest contract of the module docstring)."""

    utt_id: str
    speaker: str
    split: str
    audio: np.ndarray  # float32 mono, 16 kHz
    lips: np.ndarray  # uint8, N x H x W
    fps: float
    transcript: str = ""
    phones: list[tuple[float, float, str]] = field(default_factory=list)  # (start_s, end_s, phone)
    visemes: list[tuple[float, float, str]] = field(default_factory=list)  # (start_s, end_s, viseme)
    sample_rate: int = SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return self.audio.size / self.sample_rate


@dataclass
class ManifestRow:
    """One row of the manifest table (paths relative to the corpus root)."""

    utt_id: str
    speaker: str
    split: str
    audio_path: str
    lips_path: str
    fps: float
    n_frames: int
    n_samples: int
    sample_rate: int = SAMPLE_RATE
    duration_s: float = 0.0
    transcript: str = ""
    phones: str = "[]"  # JSON list of [start_s, end_s, phone]
    visemes: str = "[]"  # JSON list of [start_s, end_s, viseme]

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"utterance {self.utt_id}: unknown split {self.split!r} (known: {SPLITS})")
        if not self.duration_s:
            self.duration_s = self.n_samples / self.sample_rate


def rows_to_frame(rows: Iterable[ManifestRow]) -> pd.DataFrame:
    df = pd.DataFrame([asdict(r) for r in rows], columns=COLUMNS)
    return df.sort_values("utt_id").reset_index(drop=True)


def file_checksum(paths: Iterable[Path]) -> str:
    """SHA-256 over the bytes of ``paths`` in the given order."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def write_manifest(root: str | os.PathLike, rows: Iterable[ManifestRow] | pd.DataFrame, info: dict[str, Any]) -> Path:
    """Write ``manifest.parquet`` and the ``corpus.json`` sidecar (with a content checksum)."""
    root = Path(root)
    df = rows if isinstance(rows, pd.DataFrame) else rows_to_frame(rows)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"manifest is missing columns {missing}")
    df = df[COLUMNS].sort_values("utt_id").reset_index(drop=True)
    if df["utt_id"].duplicated().any():
        dup = df.loc[df["utt_id"].duplicated(), "utt_id"].iloc[0]
        raise ValueError(f"manifest has duplicate utt_id {dup!r}")
    files = [root / p for p in list(df["audio_path"]) + list(df["lips_path"])]
    sidecar = dict(info)
    sidecar["n_utterances"] = int(len(df))
    sidecar["splits"] = {s: int((df["split"] == s).sum()) for s in SPLITS if (df["split"] == s).any()}
    sidecar["speakers"] = {s: sorted(df.loc[df["split"] == s, "speaker"].unique().tolist()) for s in sidecar["splits"]}
    sidecar["checksum"] = file_checksum(files)
    tmp = root / f".{MANIFEST_FILE}.tmp"
    df.to_parquet(tmp, index=False)
    os.replace(tmp, root / MANIFEST_FILE)
    (root / SIDECAR_FILE).write_text(json.dumps(sidecar, indent=2, sort_keys=True, default=str))
    return root / MANIFEST_FILE


def read_manifest(root: str | os.PathLike) -> pd.DataFrame:
    """Read a corpus manifest; a missing or malformed one is a :class:`DataError`."""
    root = Path(root)
    path = root / MANIFEST_FILE
    if not path.exists():
        raise DataError(path, "corpus manifest not found (build the corpus first: run_benchmark.py corpus build)")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:
        raise DataError(path, f"corrupt manifest ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(path, f"manifest lacks columns {missing}")
    return df


def read_sidecar(root: str | os.PathLike) -> dict[str, Any]:
    path = Path(root) / SIDECAR_FILE
    if not path.exists():
        raise DataError(path, "corpus sidecar not found")
    return json.loads(path.read_text())


def _timings(text: Any) -> list[tuple[float, float, str]]:
    if not isinstance(text, str) or not text:
        return []
    return [(float(a), float(b), str(c)) for a, b, c in json.loads(text)]


def load_utterance(root: str | os.PathLike, row: pd.Series | dict[str, Any], *, av_tolerance_s: float = 0.2) -> Utterance:
    """Load and validate one utterance of a manifest (errors name the file and the problem)."""
    root = Path(root)
    r = dict(row)
    apath, lpath = root / r["audio_path"], root / r["lips_path"]
    audio = read_audio(apath, expected_sr=int(r.get("sample_rate", SAMPLE_RATE)))
    lips = read_lips(lpath)
    fps = float(r["fps"])
    check_av_duration(audio.size, int(r.get("sample_rate", SAMPLE_RATE)), lips.shape[0], fps, path=lpath, tolerance_s=av_tolerance_s)
    return Utterance(
        utt_id=str(r["utt_id"]), speaker=str(r["speaker"]), split=str(r["split"]), audio=audio, lips=lips,
        fps=fps, transcript=str(r.get("transcript") or ""), phones=_timings(r.get("phones")),
        visemes=_timings(r.get("visemes")), sample_rate=int(r.get("sample_rate", SAMPLE_RATE)),
    )


def select(df: pd.DataFrame, split: Optional[str] = None, limit: Optional[int] = None) -> pd.DataFrame:
    """Rows of ``split`` (sorted by utt_id), at most ``limit`` of them, spread over speakers."""
    out = df if split is None else df[df["split"] == split]
    out = out.sort_values(["speaker", "utt_id"]).reset_index(drop=True)
    if limit is not None and limit < len(out):
        # round-robin over speakers so a small limit still covers several speakers
        out = out.assign(_k=out.groupby("speaker").cumcount()).sort_values(["_k", "speaker", "utt_id"])
        out = out.head(limit).drop(columns="_k").sort_values("utt_id").reset_index(drop=True)
    return out
