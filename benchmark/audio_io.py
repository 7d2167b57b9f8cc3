"""Reading, writing and validating audio and lip-frame files.

Every problem raises :class:`DataError` naming the file and the problem. Audio is float32 mono
16 kHz in memory; lip frames are uint8 grayscale ``N x H x W``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000


class DataError(ValueError):
    """A data file is missing, unreadable or invalid; the message names the file."""

    def __init__(self, path: str | os.PathLike | None, problem: str) -> None:
        self.path = str(path) if path is not None else "<array>"
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def validate_audio(
    x: np.ndarray,
    sr: int,
    *,
    path: str | os.PathLike | None = None,
    expected_sr: int = SAMPLE_RATE,
    min_duration_s: float = 0.1,
    silence_rms: float = 1e-5,
    clip_fraction: float = 0.01,
) -> np.ndarray:
    """Check sample rate, channels, finiteness, length, silence and clipping; return float32 mono."""
    if sr != expected_sr:
        raise DataError(path, f"wrong sample rate {sr} Hz (expected {expected_sr} Hz)")
    x = np.asarray(x)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise DataError(path, f"expected mono audio, got shape {x.shape} (stereo or multichannel)")
    if not np.all(np.isfinite(x)):
        raise DataError(path, f"audio contains {int(np.sum(~np.isfinite(x)))} NaN/inf samples")
    if x.size < int(min_duration_s * sr):
        raise DataError(path, f"audio too short: {x.size} samples ({x.size / sr:.3f} s < {min_duration_s} s)")
    x = x.astype(np.float32, copy=False)
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    if rms < silence_rms:
        raise DataError(path, f"audio is silent (RMS {rms:.2e} < {silence_rms:.0e})")
    clipped = float(np.mean(np.abs(x) >= 0.999))
    if clipped > clip_fraction:
        raise DataError(path, f"audio is clipped: {100 * clipped:.2f}% of samples at full scale")
    return x


def read_sound(path: str | os.PathLike, *, always_2d: bool = False) -> tuple[np.ndarray, int]:
    """The float32 samples (``[n]`` mono / ``[n, channels]``, or always ``[n, channels]`` with
    ``always_2d``) and the sample rate of a wav/flac file; a :class:`DataError` when it is missing
    or unreadable."""
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=always_2d)
    except Exception as exc:  # soundfile raises RuntimeError/LibsndfileError on corrupt files
        raise DataError(path, f"cannot read audio ({type(exc).__name__}: {exc})") from exc
    return x, int(sr)


def read_audio(path: str | os.PathLike, *, expected_sr: int = SAMPLE_RATE, validate: bool = True, **kw) -> np.ndarray:
    """Read a wav/flac file as float32 mono at ``expected_sr``; validated unless told otherwise."""
    x, sr = read_sound(path)
    if not validate:
        if sr != expected_sr:
            raise DataError(path, f"wrong sample rate {sr} Hz (expected {expected_sr} Hz)")
        return np.asarray(x, dtype=np.float32)
    return validate_audio(x, sr, path=path, expected_sr=expected_sr, **kw)


def write_audio(path: str | os.PathLike, x: np.ndarray, sr: int = SAMPLE_RATE, subtype: str = "FLOAT") -> Path:
    """Write mono audio atomically (temp file + rename). Default subtype float32 (lossless)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    sf.write(str(tmp), np.asarray(x, dtype=np.float32), sr, subtype=subtype, format="WAV")
    _strip_wav_peak_chunk(tmp)
    os.replace(tmp, path)
    return path


def _strip_wav_peak_chunk(path: Path) -> None:
    """Drop the ``PEAK`` chunk libsndfile adds to float WAVs: it holds a write *timestamp*, which
    would make the same audio give different bytes (and corpus checksums) on every write."""
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE" or b"PEAK" not in data[:4096]:
        return
    out, pos = [data[:12]], 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        end = pos + 8 + size + (size & 1)
        if cid != b"PEAK":
            out.append(data[pos:end])
        pos = end
    body = b"".join(out)
    path.write_bytes(body[:4] + (len(body) - 8).to_bytes(4, "little") + body[8:])


def validate_lips(frames: np.ndarray, *, path: str | os.PathLike | None = None) -> np.ndarray:
    """Check lip frames are a non-empty uint8 ``N x H x W`` array."""
    frames = np.asarray(frames)
    if frames.ndim == 4 and frames.shape[-1] == 1:
        frames = frames[..., 0]
    if frames.ndim != 3:
        raise DataError(path, f"lip frames must be N x H x W grayscale, got shape {frames.shape}")
    if frames.shape[0] == 0:
        raise DataError(path, "lip video has no frames")
    if frames.dtype != np.uint8:
        if np.issubdtype(frames.dtype, np.floating):
            if not np.all(np.isfinite(frames)):
                raise DataError(path, "lip frames contain NaN/inf")
            scale = 255.0 if frames.max() <= 1.0 + 1e-6 else 1.0
            frames = np.clip(np.round(frames * scale), 0, 255).astype(np.uint8)
        else:
            frames = np.clip(frames, 0, 255).astype(np.uint8)
    return frames


def read_lips(path: str | os.PathLike) -> np.ndarray:
    """Read lip frames from ``.npy``/``.npz`` (uint8 or [0,1] float) or a video file (mp4/avi, via OpenCV)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            frames = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                frames = z[z.files[0]]
        else:
            frames, _ = read_video(path, require_fps=False)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(path, f"cannot read lip frames ({type(exc).__name__}: {exc})") from exc
    return validate_lips(frames, path=path)


def read_video(path: str | os.PathLike, *, color: bool = False, require_fps: bool = True) -> tuple[np.ndarray, float]:
    """All frames of a video file (OpenCV) as uint8 ``N x H x W`` grayscale (``N x H x W x 3`` BGR
    if ``color``), and the frame rate stored in the file (a :class:`DataError` when it has none
    and ``require_fps``; 0.0 otherwise). The one video reader of the project."""
    import cv2

    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(path, "unreadable video (OpenCV could not open it)")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    frames = []
    while True:
        ok, fr = cap.read()
        if not ok:
            break
        if fr.ndim == 3 and not color:
            fr = cv2.cvtColor(fr, cv2.COLOR_BGR2GRAY)
        frames.append(fr)
    cap.release()
    if not frames:
        raise DataError(path, "unreadable video (no frames decoded)")
    if not np.isfinite(fps) or fps <= 0:
        if require_fps:
            raise DataError(path, "video has no usable frame rate")
        fps = 0.0
    return np.stack(frames), fps


def write_lips(path: str | os.PathLike, frames: np.ndarray) -> Path:
    """Write uint8 lip frames as ``.npy`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, validate_lips(frames, path=path))
    os.replace(tmp, path)
    return path


def check_av_duration(
    n_samples: int, sr: int, n_frames: int, fps: float, *, path: str | os.PathLike | None = None, tolerance_s: float = 0.2
) -> None:
    """Audio and video durations must agree within ``tolerance_s`` seconds."""
    da, dv = n_samples / sr, n_frames / fps
    if abs(da - dv) > tolerance_s:
        raise DataError(
            path, f"audio/video duration mismatch: audio {da:.3f} s vs video {dv:.3f} s ({n_frames} frames at {fps:g} fps), tolerance {tolerance_s} s"
        )


# ---------------------------------------------------------------------------------------------
# lists of files: folders and Kaldi-style wav.scp

AUDIO_SUFFIXES = (".wav", ".flac")


def read_wav_scp(path: str | os.PathLike) -> dict[str, Path]:
    """Utterance id -> audio file of a Kaldi-style ``wav.scp`` (one ``<utt-id> <path>`` per line;
    blank lines and ``#`` comments skipped; the path is the rest of the line, so it may contain
    spaces). A relative path is taken from the current directory, as Kaldi does, or else from the
    scp file's folder. Kaldi's piped commands (``... |``) and ``ark:`` offsets are not supported:
    a :class:`DataError` naming the line, as is a duplicate id or a line without a path."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "wav.scp file not found")
    out: dict[str, Path] = {}
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            raise DataError(path, f"line {n}: expected '<utt-id> <path>', got {line!r}")
        uid, target = parts[0], parts[1].strip()
        if target.endswith("|") or ".ark:" in target:
            raise DataError(path, f"line {n}: piped commands and ark offsets are not supported ({target!r}); list plain wav/flac files")
        if uid in out:
            raise DataError(path, f"line {n}: duplicate utterance id {uid!r}")
        p = Path(os.path.expanduser(target))
        if not p.is_absolute() and not p.exists() and (path.parent / p).exists():
            p = path.parent / p
        out[uid] = p
    if not out:
        raise DataError(path, "wav.scp lists no files")
    return out


def is_scp(path: str | os.PathLike) -> bool:
    """True for a file that is a list (``*.scp`` or any file that is not a wav/flac)."""
    p = Path(path)
    return p.is_file() and p.suffix.lower() not in AUDIO_SUFFIXES


def audio_list(path: str | os.PathLike, *, keep_suffix: bool = True) -> dict[str, Path]:
    """Id -> audio file for a folder (every wav/flac under it, id = relative posix path, with its
    suffix unless ``keep_suffix`` is False), a single wav/flac file (id = its stem) or a
    ``wav.scp`` list (:func:`read_wav_scp`; id = the utterance id). A :class:`DataError` when
    ``path`` does not exist."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
        rel = (f.relative_to(p) for f in files)
        return {(r.as_posix() if keep_suffix else r.with_suffix("").as_posix()): f for r, f in zip(rel, files)}
    if p.is_file():
        return {p.stem: p} if p.suffix.lower() in AUDIO_SUFFIXES else read_wav_scp(p)
    raise DataError(p, "not found (expected a folder, a wav/flac file or a wav.scp list)")


def write_wav_scp(path: str | os.PathLike, entries: dict[str, str | os.PathLike]) -> Path:
    """Write ``<utt-id> <path>`` lines (ids sorted) atomically; ids must not contain whitespace."""
    path = Path(path)
    bad = [k for k in entries if not k or any(c.isspace() for c in k)]
    if bad:
        raise ValueError(f"wav.scp ids must be non-empty without whitespace: {bad[:3]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(f"{k} {Path(v)}\n" for k, v in sorted(entries.items())), encoding="utf-8")
    os.replace(tmp, path)
    return path
