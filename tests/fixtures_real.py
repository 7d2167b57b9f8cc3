"""Tiny fixture trees in the layouts of the real corpora and noise datasets (built by the tests
themselves in tmp_path; nothing is downloaded). The audio is a synthetic voiced signal (harmonics
with a syllable-rate envelope), the videos are small grayscale frames written with
cv2.VideoWriter; GRID frames show a drawn cartoon face that OpenCV's Haar cascade detects.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import soundfile as sf


def voiced(duration_s: float, sr: int = 16000, seed: int = 0, f0: float = 120.0) -> np.ndarray:
    """A speech-like test signal: a few harmonics of ``f0`` under a 4 Hz syllable envelope, peak 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(duration_s * sr))) / sr
    x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in range(1, 6))
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6.28))
    x = x * env + 0.01 * rng.standard_normal(t.size)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def write_wav(path: Path, x: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype=subtype)
    return path


def cartoon_face(h: int, w: int, mouth_open: float = 0.3, scale: float | None = None) -> np.ndarray:
    """A grayscale cartoon face (head, brows, eyes, nose, mouth) centred in an ``h x w`` frame."""
    import cv2

    s = int(scale or min(h, w) * 0.24)
    cx, cy = w // 2, int(h * 0.48)
    img = np.full((h, w), 60, np.uint8)
    cv2.ellipse(img, (cx, cy), (s, int(s * 1.3)), 0, 0, 360, 190, -1, cv2.LINE_AA)
    for dx in (-1, 1):
        cv2.ellipse(img, (cx + dx * int(s * 0.4), cy - int(s * 0.45)), (int(s * 0.25), max(1, int(s * 0.06))), 0, 0, 360, 70, -1, cv2.LINE_AA)
        cv2.ellipse(img, (cx + dx * int(s * 0.4), cy - int(s * 0.25)), (int(s * 0.18), int(s * 0.1)), 0, 0, 360, 40, -1, cv2.LINE_AA)
    cv2.ellipse(img, (cx, cy + int(s * 0.25)), (int(s * 0.12), int(s * 0.08)), 0, 0, 360, 130, -1, cv2.LINE_AA)
    cv2.ellipse(img, (cx, cy + int(s * 0.7)), (int(s * 0.35), max(2, int(s * 0.2 * mouth_open))), 0, 0, 360, 50, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (5, 5), 1.5)


def write_video(path: Path, frames: np.ndarray, fps: float, fourcc: str = "mp4v") -> Path:
    """Write grayscale ``N x H x W`` uint8 frames with cv2.VideoWriter."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    n, h, w = frames.shape
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), (w, h), False)
    assert vw.isOpened(), f"cannot open a video writer for {path}"
    for f in frames:
        vw.write(np.ascontiguousarray(f))
    vw.release()
    return path


def face_frames(n: int, h: int = 144, w: int = 180, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    opens = 0.2 + 0.8 * np.abs(np.sin(np.linspace(0, 3 * np.pi, n) + rng.uniform(0, 3)))
    return np.stack([cartoon_face(h, w, float(o)) for o in opens])


def lip_frames(n: int, size: int = 67, seed: int = 0) -> np.ndarray:
    """Simple mouth-ROI frames: a dark ellipse whose opening varies, on a lighter background."""
    import cv2

    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size), np.uint8)
    for i in range(n):
        img = np.full((size, size), 150, np.uint8)
        o = 0.15 + 0.3 * abs(np.sin(0.4 * i + rng.uniform(0, 1)))
        cv2.ellipse(img, (size // 2, size // 2), (int(size * 0.3), max(1, int(size * o))), 0, 0, 360, 40, -1, cv2.LINE_AA)
        out[i] = img
    return out


GRID_ALIGN = "0 12250 sil\n12250 19250 bin\n19250 27250 blue\n27250 30750 at\n30750 35000 f\n35000 44000 two\n44000 55000 now\n55000 75000 sil\n"


def make_grid_tree(root: Path, speakers: Sequence[str] = ("s1", "s2", "s3", "s5"), utts: Sequence[str] = ("bbaf2n", "lgaz8p"),
                   duration_s: float = 1.2, sr: int = 25000, fps: float = 25.0, video_subdir: str = "") -> Path:
    """GRID layout: audio_25k/sN/*.wav (25 kHz), video/sN/[subdir/]*.mpg, align/sN/*.align."""
    n = int(round(duration_s * fps))
    for si, spk in enumerate(speakers):
        for ui, u in enumerate(utts):
            write_wav(root / "audio_25k" / spk / f"{u}.wav", voiced(duration_s, sr, seed=10 * si + ui), sr)
            vdir = root / "video" / spk / video_subdir if video_subdir else root / "video" / spk
            write_video(vdir / f"{u}.mpg", face_frames(n, seed=si), fps, fourcc="PIM1")
            (root / "align" / spk).mkdir(parents=True, exist_ok=True)
            (root / "align" / spk / f"{u}.align").write_text(GRID_ALIGN)
    return root


def make_tcd_tree(root: Path, speakers: Sequence[str] = ("01M", "09F", "17F", "30M"), utts: Sequence[str] = ("sa1", "si1392"),
                  duration_s: float = 1.0, lips: str = "mp4", fps: float = 30.0, sr: int = 16000) -> Path:
    """NTCD-TIMIT clean layout: volunteers/<spk>/straightcam/<utt>.wav + lip ROI (mp4 | raw | npy | mat)."""
    n = int(round(duration_s * fps))
    for si, spk in enumerate(speakers):
        d = root / "volunteers" / spk / "straightcam"
        for ui, u in enumerate(utts):
            write_wav(d / f"{u}.wav", voiced(duration_s, sr, seed=100 + 10 * si + ui), sr)
            fr = lip_frames(n, 67, seed=si * 7 + ui)
            if lips == "mp4":
                write_video(d / f"{u}.mp4", fr, fps)
            elif lips == "raw":  # avse-vae *Raw.npy: D x N floats in [0, 1], each image stored transposed
                np.save(d / f"{u}Raw.npy", (fr.transpose(0, 2, 1).reshape(n, -1).T / 255.0).astype(np.float32))
            elif lips == "npy":
                np.save(d / f"{u}.npy", fr)
            elif lips == "mat":
                from scipy.io import savemat

                savemat(str(d / f"{u}.mat"), {"lips": fr.transpose(1, 2, 0)})
            else:
                raise ValueError(lips)
    return root


def make_ntcd_noisy_tree(root: Path, speakers: Iterable[str], utts: Iterable[str], noises=("Babble", "LR"), snrs=(-5, 0, 5),
                         duration_s: float = 1.0, sr: int = 16000) -> Path:
    """NTCD-TIMIT noisy layout: <noise>/<snr>/volunteers/<spk>/straightcam/<utt>.wav."""
    rng = np.random.default_rng(0)
    for nz in noises:
        for snr in snrs:
            for spk in speakers:
                for u in utts:
                    x = voiced(duration_s, sr, seed=1) + 0.05 * rng.standard_normal(int(duration_s * sr)).astype(np.float32)
                    write_wav(root / nz / str(snr) / "volunteers" / spk / "straightcam" / f"{u}.wav", x, sr)
    return root


def make_generic_tree(root: Path, speakers: Sequence[str] = ("alice", "bob", "carol", "dave", "erin"), utts: int = 2,
                      duration_s: float = 1.0, lips: str = "npy", fps: float = 25.0, sr: int = 16000, with_txt: bool = True) -> Path:
    """Generic layout: <speaker>/<name>.wav + <name>.npy|.mp4 (+ <name>.txt)."""
    n = int(round(duration_s * fps))
    for si, spk in enumerate(speakers):
        for ui in range(utts):
            name = f"utt{ui:02d}"
            write_wav(root / spk / f"{name}.wav", voiced(duration_s, sr, seed=200 + 10 * si + ui), sr)
            fr = lip_frames(n, 48, seed=si + ui)
            if lips == "npy":
                np.save(root / spk / f"{name}.npy", fr)
            else:
                write_video(root / spk / f"{name}.{lips}", fr, fps, fourcc="mp4v" if lips == "mp4" else "MJPG")
            if with_txt:
                (root / spk / f"{name}.txt").write_text(f"hello from {spk} number {ui}\n")
    return root


def make_noise_wav(path: Path, duration_s: float = 4.0, sr: int = 16000, seed: int = 0, channels: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    x = (0.1 * rng.standard_normal((int(duration_s * sr), channels))).astype(np.float32)
    return write_wav(path, x[:, 0] if channels == 1 else x, sr, subtype="FLOAT")
