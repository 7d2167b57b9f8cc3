"""Shared helpers of the real-corpus adapters (GRID, TCD-TIMIT / NTCD-TIMIT, generic folder).

(Over 400 lines on purpose: the one contract every real-corpus adapter builds on -- option
checks, audio and lip loading, mouth cropping, speaker splits, the conversion loop -- imported by
each adapter module.)

Every adapter turns a corpus on disk (``CorpusSpec.options["source"]``) into the same corpus
form as the synthetic generator: ``<root>/audio/<speaker>/<utt>.wav`` (16 kHz float32 mono),
``<root>/lips/<speaker>/<utt>.npy`` (uint8 ``N x H x W``, ``lip_size`` square) and
``<root>/manifest.parquet`` + ``corpus.json`` written by
:func:`benchmark.corpus.manifest.write_manifest`. The lip frames keep the corpus's own frame
rate (GRID 25 fps, NTCD-TIMIT 30 fps); the manifest's ``fps`` column records it.

What lives here: option checking, the source-root check with an "expected layout" message,
audio loading with resampling (soxr) and optional down-mixing, video reading, lip resizing,
the Haar-cascade mouth cropper, speaker-split helpers and the item loop (joblib + tqdm) that
validates every item and either aborts on the first bad one or, with ``CorpusSpec.skip_bad``,
skips it and lists it in ``<root>/bad_items.csv``.
"""
from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from benchmark.audio_io import (  # read_video: adapters call it as C.read_video
    SAMPLE_RATE, DataError, check_av_duration, read_sound, read_video, validate_audio, validate_lips, write_audio,
    write_lips,
)
from benchmark.configtools import ConfigError
from benchmark.corpus.manifest import ManifestRow, write_manifest

log = logging.getLogger(__name__)

BAD_ITEMS_FILE = "bad_items.csv"

#: options every adapter understands (each adapter adds its own)
COMMON_OPTIONS: dict[str, str] = {
    "source": "folder of the corpus on disk (required)",
    "allow_downmix": "average the channels of multichannel audio instead of failing (default false)",
    "av_tolerance_s": "largest allowed audio/video duration difference in seconds (default 0.2)",
    "max_utts_per_speaker": "keep at most this many utterances per speaker, first by name (default: all)",
    "speakers": "restrict the build to these speakers (default: all found)",
    "resize_lips": "resize lip crops to CorpusSpec.lip_size (default true)",
}


class LayoutError(DataError):
    """The corpus source folder is missing or does not have the expected layout."""

    def __init__(self, path: str | os.PathLike | None, corpus: str, problem: str, layout: str) -> None:
        self.layout = layout
        super().__init__(path, f"{problem}; the {corpus} adapter expects this layout:\n{layout.rstrip()}")


def check_options(options: dict[str, Any], known: dict[str, str], corpus: str) -> dict[str, Any]:
    """Reject unknown option keys (naming the key and the known ones); return the options."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        lines = "\n".join(f"  {k}: {v}" for k, v in sorted(known.items()))
        raise ConfigError(f"corpus.options: unknown key {unknown[0]!r} for corpus {corpus!r}; known options:\n{lines}")
    return options


def opt(options: dict[str, Any], key: str, default: Any, types: type | tuple[type, ...], corpus: str) -> Any:
    """Option ``key`` (or ``default`` when absent or null), type-checked with a message naming the key."""
    if options.get(key) is None:
        return default
    value = options[key]
    allowed = types if isinstance(types, tuple) else (types,)
    if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
        names = " or ".join(t.__name__ for t in allowed)
        raise ConfigError(f"corpus.options.{key} ({corpus}): expected {names}, got {type(value).__name__} {value!r}")
    return value


def opt_list(options: dict[str, Any], key: str, default: Optional[Sequence[str]], corpus: str) -> Optional[list[str]]:
    """A list-of-strings option (a single string is one item; numbers become strings)."""
    value = options.get(key, default)
    if value is None:
        return None
    if isinstance(value, (str, int)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"corpus.options.{key} ({corpus}): expected a list of names, got {type(value).__name__} {value!r}")
    return [str(v) for v in value]


def require_source(options: dict[str, Any], corpus: str, layout: str) -> Path:
    """The existing source folder named by ``options["source"]``, or a :class:`LayoutError`."""
    src = options.get("source")
    if not src:
        raise LayoutError(None, corpus, "no corpus source folder given (set corpus.options.source=/path/to/corpus)", layout)
    path = Path(os.path.expanduser(str(src)))
    if not path.exists():
        raise LayoutError(path, corpus, "corpus source folder not found", layout)
    if not path.is_dir():
        raise LayoutError(path, corpus, "corpus source is not a folder", layout)
    return path


# ---------------------------------------------------------------------------------------------
# audio


def load_audio(path: str | os.PathLike, *, allow_downmix: bool = False, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Read any wav/flac as float32 mono at ``sr``: resampled with soxr (logged) when needed;
    multichannel audio is an error unless ``allow_downmix`` (then the channels are averaged).
    The result is validated (NaN/inf, silence, clipping, length)."""
    x, file_sr = read_sound(path, always_2d=True)
    if x.shape[1] > 1:
        if not allow_downmix:
            raise DataError(path, f"audio has {x.shape[1]} channels (stereo/multichannel); set corpus.options.allow_downmix=true to average them")
        log.info("%s: down-mixing %d channels to mono", path, x.shape[1])
        x = x.mean(axis=1, keepdims=True)
    x = x[:, 0]
    if not np.all(np.isfinite(x)):
        raise DataError(path, f"audio contains {int(np.sum(~np.isfinite(x)))} NaN/inf samples")
    if file_sr != sr:
        import soxr

        log.info("%s: resampling %d Hz -> %d Hz (soxr)", path, file_sr, sr)
        x = soxr.resample(x, file_sr, sr, quality="HQ").astype(np.float32)
    return validate_audio(x, sr, path=path, expected_sr=sr)


# ---------------------------------------------------------------------------------------------
# video and lips


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize ``N x H x W`` uint8 frames to ``size x size`` (area interpolation when shrinking)."""
    import cv2

    if frames.shape[1] == size and frames.shape[2] == size:
        return frames
    shrink = frames.shape[1] > size or frames.shape[2] > size
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in frames])


def read_mat_frames(path: str | os.PathLike, *, side: Optional[int] = None) -> np.ndarray:
    """Lip frames from a MATLAB ``.mat`` file: the largest numeric array in it, as ``N x H x W``
    (``H x W x N`` is transposed; a ``D x N`` flattened array needs ``side`` with side**2 == D,
    read column-major as MATLAB stores it)."""
    from scipy.io import loadmat

    path = Path(path)
    try:
        data = loadmat(str(path))
    except Exception as exc:
        raise DataError(path, f"cannot read .mat file ({type(exc).__name__}: {exc})") from exc
    arrays = [v for k, v in data.items() if not k.startswith("__") and isinstance(v, np.ndarray) and v.dtype.kind in "fiu"]
    if not arrays:
        raise DataError(path, "no numeric array found in .mat file")
    a = max(arrays, key=lambda v: v.size)
    if a.ndim == 3:
        # MATLAB stacks frames last (H x W x N) unless the first axis is clearly the frame axis
        return np.moveaxis(a, -1, 0) if a.shape[0] == a.shape[1] else a
    if a.ndim == 2:
        d, n = a.shape
        s = side or int(round(np.sqrt(d)))
        if s * s != d:
            d, n = n, d
            a = a.T
            s = side or int(round(np.sqrt(d)))
        if s * s != d:
            raise DataError(path, f".mat array of shape {a.shape} is not a flattened square lip ROI")
        return a.reshape(s, s, n, order="F").transpose(2, 0, 1)
    raise DataError(path, f".mat array has unsupported shape {a.shape}")


def flat_roi_to_frames(a: np.ndarray, *, path: str | os.PathLike, transpose: bool = True) -> np.ndarray:
    """A flattened lip-ROI matrix ``D x N`` (or ``N x D``), D a square number (67*67 = 4489 for
    NTCD-TIMIT ``*Raw.npy``), to ``N x H x W``. With ``transpose`` each image is transposed after
    reshaping, as the avse-vae code does when it displays these arrays (the ROI is stored
    column-major)."""
    a = np.asarray(a)
    if a.ndim != 2:
        raise DataError(path, f"flattened lip ROI must be 2-D (D x N), got shape {a.shape}")
    d = a.shape[0]
    s = int(round(np.sqrt(d)))
    if s * s != d:
        a = a.T
        d = a.shape[0]
        s = int(round(np.sqrt(d)))
    if s * s != d:
        raise DataError(path, f"flattened lip ROI of shape {a.shape}: neither axis is a square number of pixels")
    frames = a.T.reshape(-1, s, s)
    if transpose:
        frames = frames.transpose(0, 2, 1)
    return np.ascontiguousarray(frames)


@dataclass(frozen=True)
class CropBox:
    """A crop rectangle in pixels (x, y = top-left)."""

    x: int
    y: int
    w: int
    h: int

    def apply(self, frame: np.ndarray) -> np.ndarray:
        H, W = frame.shape[:2]
        x0, y0 = max(0, self.x), max(0, self.y)
        x1, y1 = min(W, self.x + self.w), min(H, self.y + self.h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise ValueError(f"crop box {self} lies outside a {W}x{H} frame")
        return frame[y0:y1, x0:x1]


FaceDetector = Callable[[np.ndarray], Sequence[tuple[int, int, int, int]]]


def haar_face_detector(min_size_fraction: float = 0.2) -> FaceDetector:
    """OpenCV's frontal-face Haar cascade (``haarcascade_frontalface_default.xml`` from
    ``cv2.data.haarcascades``, shipped in the opencv-python wheels up to 4.x) as a function
    ``gray frame -> [(x, y, w, h), ...]``. Parameters: scaleFactor 1.1, minNeighbors 5, minimum
    face side ``min_size_fraction`` of the shorter frame side."""
    import cv2

    if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
        raise RuntimeError(
            f"this OpenCV ({cv2.__version__}) has no Haar cascades (OpenCV 5 removed them); install opencv-python-headless<5"
        )
    xml = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    if not xml.exists():
        raise RuntimeError(f"Haar cascade not found: {xml}")
    cascade = cv2.CascadeClassifier(str(xml))

    def detect(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
        m = int(min(gray.shape[:2]) * min_size_fraction)
        faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(m, m))
        return [tuple(int(v) for v in f) for f in faces]

    return detect


@dataclass
class MouthCropper:
    """Fixed per-utterance mouth crop from a face detector.

    The detector runs on every ``detect_every``-th frame; the largest face of each detection is
    kept and the **median** box over the utterance is used for all frames (GRID talkers sit still
    in front of the camera, so a fixed box avoids jitter). The mouth crop is the **lower third of
    the face box** (rows ``y + 2h/3 .. y + h``) and its **middle half horizontally** (columns
    ``x + w/4 .. x + 3w/4``), then resized to ``lip_size x lip_size``. When no face is found in
    any sampled frame, the fallback is a fixed square of side ``min(H, W) / 3`` centred
    horizontally at 62 % of the frame height (about where the mouth of a centred talker is); this
    is logged as a warning and reported in the result's ``fallback`` flag.
    """

    lip_size: int = 64
    detect_every: int = 5
    detector: Optional[FaceDetector] = None
    _det: Optional[FaceDetector] = field(default=None, init=False, repr=False)

    def _detector(self) -> FaceDetector:
        if self.detector is not None:
            return self.detector
        if self._det is None:
            self._det = haar_face_detector()
        return self._det

    def face_box(self, gray: np.ndarray) -> Optional[CropBox]:
        """Median face box over the sampled frames, or ``None`` when no face is found."""
        det = self._detector()
        boxes = []
        for fr in gray[:: max(1, self.detect_every)]:
            faces = det(fr)
            if len(faces):
                boxes.append(max(faces, key=lambda f: f[2] * f[3]))
        if not boxes:
            return None
        x, y, w, h = (int(round(v)) for v in np.median(np.asarray(boxes, dtype=np.float64), axis=0))
        return CropBox(x, y, w, h)

    @staticmethod
    def mouth_box(face: CropBox) -> CropBox:
        """Lower third of the face box, middle half horizontally."""
        return CropBox(face.x + face.w // 4, face.y + (2 * face.h) // 3, max(2, face.w // 2), max(2, face.h - (2 * face.h) // 3))

    @staticmethod
    def fallback_box(height: int, width: int) -> CropBox:
        side = max(2, min(height, width) // 3)
        cx, cy = width // 2, int(round(0.62 * height))
        return CropBox(cx - side // 2, cy - side // 2, side, side)

    def crop(self, gray: np.ndarray, *, name: str = "") -> tuple[np.ndarray, CropBox, bool]:
        """Mouth crops of ``N x H x W`` frames: ``(lips uint8 N x S x S, box, fallback_used)``."""
        face = self.face_box(gray)
        fallback = face is None
        if fallback:
            box = self.fallback_box(*gray.shape[1:3])
            log.warning("%s: no face found by the detector; using the fixed centre crop %s", name or "video", box)
        else:
            box = self.mouth_box(face)
        lips = np.stack([box.apply(f) for f in gray])
        return resize_frames(lips, self.lip_size), box, fallback


# ---------------------------------------------------------------------------------------------
# splits


def split_items_by_speaker(items: list, options: dict, default_test: Sequence[str], default_val: Sequence[str],
                           corpus: str) -> list:
    """Assign each item's ``split`` from its speaker with the ``test/val/babble/train_speakers``
    options (defaults ``default_test``/``default_val``); items of unlisted speakers are dropped."""
    splits = assign_splits(
        sorted({it.speaker for it in items}),
        test=opt_list(options, "test_speakers", default_test, corpus),
        val=opt_list(options, "val_speakers", default_val, corpus),
        babble=opt_list(options, "babble_speakers", (), corpus) or (),
        train=opt_list(options, "train_speakers", None, corpus),
    )
    items = [it for it in items if it.speaker in splits]
    for it in items:
        it.split = splits[it.speaker]
    return items


def assign_splits(
    speakers: Iterable[str],
    *,
    test: Sequence[str] = (),
    val: Sequence[str] = (),
    babble: Sequence[str] = (),
    train: Optional[Sequence[str]] = None,
) -> dict[str, str]:
    """Speaker -> split. Listed speakers go to test/val/babble; the rest to train (or, when
    ``train`` is given, only those; speakers in no list are then dropped). A speaker in two lists
    is an error."""
    seen: dict[str, str] = {}
    for split, names in (("test", test), ("val", val), ("babble", babble), ("train", train or ())):
        for s in names:
            if s in seen and seen[s] != split:
                raise ConfigError(f"corpus.options: speaker {s!r} is listed in both {seen[s]!r} and {split!r} splits")
            seen[s] = split
    out = {}
    for s in speakers:
        if s in seen:
            out[s] = seen[s]
        elif train is None:
            out[s] = "train"
    return out


def seeded_split(speakers: Sequence[str], seed: int, *, val_fraction: float, test_fraction: float, tag: str) -> dict[str, str]:
    """Speakers shuffled by a generator seeded from ``(seed, tag, sorted speakers)`` (not from
    process order); the first ``ceil(test_fraction*n)`` (at least 1) go to test, the next
    ``round(val_fraction*n)`` to val, the rest to train (at least 1)."""
    from benchmark.seeding import rng

    names = sorted(set(speakers))
    n = len(names)
    if n < 2:
        raise ConfigError(f"need at least 2 speakers to split train/test, found {n}: {names}")
    order = [names[i] for i in rng(seed, tag, tuple(names)).permutation(n)]
    n_test = max(1, int(np.ceil(test_fraction * n)))
    n_val = int(round(val_fraction * n))
    n_val = max(0, min(n_val, n - n_test - 1))
    n_test = min(n_test, n - 1)
    out = {}
    for i, s in enumerate(order):
        out[s] = "test" if i < n_test else ("val" if i < n_test + n_val else "train")
    return out


# ---------------------------------------------------------------------------------------------
# the item loop


@dataclass
class Item:
    """One utterance to convert: ids, split, sources and adapter-specific extras."""

    utt_id: str
    speaker: str
    split: str
    audio_src: Path
    lips_src: Path
    transcript: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Converted:
    """What a loader returns for one item: clean audio, lip frames, their fps, and notes."""

    audio: np.ndarray
    lips: np.ndarray
    fps: float
    phones: list[tuple[float, float, str]] = field(default_factory=list)
    transcript: Optional[str] = None  # overrides Item.transcript when set (e.g. read from an align file)
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class BadItem:
    utt_id: str
    path: str
    problem: str


Loader = Callable[[Item], Converted]


def audio_rel(item: Item) -> str:
    return f"audio/{item.speaker}/{item.utt_id}.wav"


def lips_rel(item: Item) -> str:
    return f"lips/{item.speaker}/{item.utt_id}.npy"


def convert_item(item: Item, loader: Loader, root: Path, *, lip_size: Optional[int], av_tolerance_s: float) -> ManifestRow | BadItem:
    """Load, validate and write one item; a :class:`DataError` becomes a :class:`BadItem`."""
    import json

    try:
        conv = loader(item)
        lips = validate_lips(conv.lips, path=item.lips_src)
        if lip_size is not None:
            lips = resize_frames(lips, lip_size)
        check_av_duration(conv.audio.size, SAMPLE_RATE, lips.shape[0], conv.fps, path=item.lips_src, tolerance_s=av_tolerance_s)
    except DataError as exc:
        return BadItem(item.utt_id, exc.path, exc.problem)
    write_audio(root / audio_rel(item), conv.audio)
    write_lips(root / lips_rel(item), lips)
    return ManifestRow(
        utt_id=item.utt_id, speaker=item.speaker, split=item.split, audio_path=audio_rel(item),
        lips_path=lips_rel(item), fps=float(conv.fps), n_frames=int(lips.shape[0]), n_samples=int(conv.audio.size),
        transcript=conv.transcript if conv.transcript is not None else item.transcript, phones=json.dumps([list(p) for p in conv.phones]),
    )


def _convert_job(item: Item, loader: Loader, root: Path, lip_size: Optional[int], av_tolerance_s: float):
    return convert_item(item, loader, root, lip_size=lip_size, av_tolerance_s=av_tolerance_s)


def build_corpus(
    root: Path,
    items: Sequence[Item],
    loader: Loader,
    *,
    info: dict[str, Any],
    skip_bad: bool,
    jobs: int = 1,
    lip_size: Optional[int] = None,
    av_tolerance_s: float = 0.2,
    progress: bool = True,
    desc: str = "corpus",
) -> Path:
    """Convert ``items`` with ``loader`` (in parallel when ``jobs > 1``), write the manifest and
    ``bad_items.csv``; return ``root``. Without ``skip_bad`` the first bad item aborts the build
    with its :class:`DataError` (naming the file and the problem)."""
    from tqdm import tqdm

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if not items:
        raise DataError(info.get("source"), "no utterances found to build the corpus from")
    items = sorted(items, key=lambda it: it.utt_id)
    dup = [a.utt_id for a, b in zip(items, items[1:]) if a.utt_id == b.utt_id]
    if dup:
        raise DataError(info.get("source"), f"two source files map to the same utterance id {dup[0]!r}")
    if jobs > 1 and len(items) > 1:
        from joblib import Parallel, delayed

        gen = Parallel(n_jobs=jobs, return_as="generator")(
            delayed(_convert_job)(it, loader, root, lip_size, av_tolerance_s) for it in items
        )
    else:
        gen = (_convert_job(it, loader, root, lip_size, av_tolerance_s) for it in items)
    rows: list[ManifestRow] = []
    bad: list[BadItem] = []
    for res in tqdm(gen, total=len(items), desc=desc, disable=not progress, unit="utt"):
        if isinstance(res, BadItem):
            if not skip_bad:
                raise DataError(res.path, f"{res.problem} (utterance {res.utt_id}; set corpus.skip_bad=true to skip bad items)")
            log.warning("skipping %s: %s: %s", res.utt_id, res.path, res.problem)
            bad.append(res)
        else:
            rows.append(res)
    write_bad_items(root, bad)
    if not rows:
        raise DataError(info.get("source"), f"every one of the {len(items)} utterances is bad (see {root / BAD_ITEMS_FILE})")
    info = dict(info)
    info["n_bad_items"] = len(bad)
    write_manifest(root, rows, info)
    log.info("%s: wrote %d utterances (%d skipped as bad) to %s", desc, len(rows), len(bad), root)
    return root


def write_bad_items(root: Path, bad: Sequence[BadItem]) -> Path:
    """``bad_items.csv`` (utt_id, path, problem); written even when empty."""
    path = Path(root) / BAD_ITEMS_FILE
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["utt_id", "path", "problem"])
        for b in bad:
            w.writerow([b.utt_id, b.path, b.problem])
    return path


def limit_per_speaker(items: Sequence[Item], n: Optional[int]) -> list[Item]:
    """At most ``n`` items per speaker (the first by utterance id)."""
    if n is None:
        return list(items)
    out, count = [], {}
    for it in sorted(items, key=lambda i: i.utt_id):
        if count.get(it.speaker, 0) < n:
            out.append(it)
            count[it.speaker] = count.get(it.speaker, 0) + 1
    return out


def spec_settings(spec: Any) -> dict[str, Any]:
    """The CorpusSpec fields recorded in the sidecar."""
    from benchmark.configtools import to_dict

    return to_dict(spec)
