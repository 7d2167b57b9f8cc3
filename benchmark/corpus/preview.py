"""Looking at a corpus: a PNG contact sheet of lip frames and a short MP4 with audio.

Works on any corpus that follows the manifest contract; viseme labels are drawn when the
manifest has viseme timings.
"""
from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from benchmark.corpus.manifest import load_utterance, read_manifest

log = logging.getLogger(__name__)


def _label_at(segments: list, t: float) -> str:
    for s, e, v in segments:
        if s <= t < e:
            return str(v)
    return ""


def pick_utterances(df: pd.DataFrame, n: int, split: Optional[str] = None) -> list[str]:
    """The first utterance of each of the first ``n`` speakers (of ``split`` if given)."""
    d = df if split is None else df[df["split"] == split]
    firsts = d.sort_values("utt_id").groupby("speaker", sort=True).head(1)
    return firsts["utt_id"].head(n).tolist()


def contact_sheet(root: str | os.PathLike, out_png: str | os.PathLike, *, utt_ids: Optional[Sequence[str]] = None,
                  n_rows: int = 6, n_cols: int = 12, scale: int = 2) -> Path:
    """A grid: one utterance per row, ``n_cols`` frames spread over it, viseme label on each."""
    import cv2

    root = Path(root)
    df = read_manifest(root).set_index("utt_id", drop=False)
    utt_ids = list(utt_ids) if utt_ids else pick_utterances(df.reset_index(drop=True), n_rows)
    rows = []
    for uid in utt_ids:
        u = load_utterance(root, df.loc[uid])
        idx = np.linspace(0, len(u.lips) - 1, n_cols).round().astype(int)
        tiles = []
        for k in idx:
            big = cv2.resize(u.lips[k], None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
            big = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
            lab = _label_at(u.visemes, (k + 0.5) / u.fps) or _label_at(u.phones, (k + 0.5) / u.fps)
            cv2.putText(big, lab, (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 255, 255), 1, cv2.LINE_AA)
            tiles.append(np.pad(big, ((1, 1), (1, 1), (0, 0))))
        row = np.hstack(tiles)
        header = np.zeros((14, row.shape[1], 3), np.uint8)
        cv2.putText(header, f"{uid} [{u.split}] {u.transcript[:70]}", (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                    (255, 255, 255), 1, cv2.LINE_AA)
        rows.append(np.vstack([header, row]))
    width = max(r.shape[1] for r in rows)
    sheet = np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), sheet):
        raise OSError(f"{out}: could not write the contact sheet")
    return out


def preview_video(root: str | os.PathLike, out_mp4: str | os.PathLike, *, utt_ids: Optional[Sequence[str]] = None,
                  n: int = 3, side: int = 256) -> tuple[Path, Path]:
    """An MP4 of a few utterances (lips upscaled, viseme and transcript overlaid) with the audio
    muxed in (AAC) and the same audio as a WAV next to it; returns (mp4, wav)."""
    import cv2
    import imageio.v2 as imageio
    import imageio_ffmpeg

    from benchmark.audio_io import write_audio

    root = Path(root)
    df = read_manifest(root).set_index("utt_id", drop=False)
    utt_ids = list(utt_ids) if utt_ids else pick_utterances(df.reset_index(drop=True), n, split="test") or pick_utterances(df.reset_index(drop=True), n)
    utts = [load_utterance(root, df.loc[uid]) for uid in utt_ids]
    fps = utts[0].fps
    if any(abs(u.fps - fps) > 1e-6 for u in utts):
        raise ValueError("preview: the chosen utterances have different frame rates")
    frames, audio = [], []
    for u in utts:
        n_fr = len(u.lips)
        for k in range(n_fr):
            img = cv2.resize(u.lips[k], (side, side), interpolation=cv2.INTER_CUBIC)
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
            lab = _label_at(u.visemes, (k + 0.5) / fps)
            cv2.putText(img, f"{u.utt_id}  {lab}", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
            cv2.putText(img, u.transcript[:36], (4, side - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
            frames.append(img)
        # pad/cut the audio to exactly the video length so the streams stay in sync
        n_samp = int(round(n_fr / fps * u.sample_rate))
        audio.append(np.pad(u.audio, (0, max(0, n_samp - u.audio.size)))[:n_samp])
    out = Path(out_mp4)
    out.parent.mkdir(parents=True, exist_ok=True)
    wav = write_audio(out.with_suffix(".wav"), np.concatenate(audio), utts[0].sample_rate)
    with tempfile.TemporaryDirectory() as tmp:
        silent = Path(tmp) / "video.mp4"
        imageio.mimwrite(str(silent), frames, fps=fps, codec="libx264", quality=8, macro_block_size=16)
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(silent), "-i", str(wav),
               "-c:v", "copy", "-c:a", "aac", "-b:a", "96k", "-shortest", str(out)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            log.warning("could not mux audio into the preview (%s); writing the silent video and the WAV", res.stderr.strip())
            os.replace(silent, out)
    return out, wav
