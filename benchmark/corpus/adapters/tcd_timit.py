"""TCD-TIMIT / NTCD-TIMIT adapters (Harte & Gillen 2015; Abdelaziz 2017): 59 volunteers + 3
lipspeakers reading TIMIT sentences (98 per speaker), straight camera, lip ROIs at 30 fps
(NTCD-TIMIT ships 67x67 grayscale ROIs).

Expected layout under ``corpus.options.source`` (clean audio)::

    volunteers/<spk>/straightcam/<utt>.wav      (spk = 01M .. 59F)
    lipspeakers/<spk>/straightcam/<utt>.wav     (optional; used only with include_lipspeakers)

and the lip ROIs, under ``corpus.options.lips_source`` (default: the same folder), in the same
``<group>/<spk>/straightcam/`` folders, first found of:

    <utt>.mp4 | <utt>.avi | <utt>.mov            provided lip-ROI videos (frame rate read from the file)
    <utt>Raw.npy                                 flattened ROI D x N (67*67 = 4489 rows, values in [0, 1]),
                                                 as used by the avse-vae / av-dkf code
    <utt>.npy | <utt>.npz                        N x H x W frames
    <utt>.mat                                    MATLAB ROI (largest numeric array; H x W x N or D x N)

(``.npy``/``.npz``/``.mat`` carry no frame rate: ``corpus.options.fps``, default 30). With
``lips_from: face``, mouths are instead cropped from the full-face clips
``<group>/<spk>/Clips/straightcam/<utt>.mp4`` with the Haar-cascade cropper of the GRID adapter.

**Speaker split** (defaults, overridable): test = 09F 24M 26M 27M 33F 40F 47M 49F 56M (the 9
test speakers of the av-dkf NTCD-TIMIT evaluation, ``build_test_data.py``; verified in that code);
val = 17F 20M 35M 38F 42M 52M 59F (the 7 speakers the av-dkf code uses for validation-time speech
enhancement, ``learning_algo.py``; verified in that code); every other volunteer is train. The
paper's 39/8/9 split could not be verified (our default gives 43/7/9 of 59 volunteers).
Lipspeakers are left out unless ``include_lipspeakers: true`` (then they are train).

**NTCD-TIMIT noisy files**: the pre-mixed noisy versions live in
``<noisy_source>/<noise>/<snr>/volunteers/<spk>/straightcam/<utt>.wav`` (noises LR, White, Cafe,
Car, Babble, Street; SNR folders such as -5, 0, 5 ... 20). :func:`ntcd_noisy_path`,
:func:`list_ntcd_noisy` and :class:`NtcdNoisy` expose them so the runner can use the real
mixtures; the ``ntcd-timit`` builder records ``noisy_source`` and the available (noise, SNR)
pairs in ``corpus.json``.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from benchmark.audio_io import DataError
from benchmark.configtools import ConfigError
from benchmark.corpus import CORPORA
from benchmark.corpus.adapters import common as C

log = logging.getLogger(__name__)

DEFAULT_TEST = ("09F", "24M", "26M", "27M", "33F", "40F", "47M", "49F", "56M")  # av-dkf build_test_data.py
DEFAULT_VAL = ("17F", "20M", "35M", "38F", "42M", "52M", "59F")  # av-dkf learning_algo.py SE_Eval
NTCD_NOISES = ("LR", "White", "Cafe", "Car", "Babble", "Street")
CAMERA = "straightcam"
VIDEO_EXTS = (".mp4", ".avi", ".mov")
DEFAULT_LIPS_FPS = 30.0

LAYOUT = """\
  <source>/volunteers/<spk>/straightcam/<utt>.wav          clean audio (spk = 01M .. 59F)
  <lips_source>/volunteers/<spk>/straightcam/<utt>.mp4     lip ROI video, or <utt>Raw.npy (4489 x N),
                                                           <utt>.npy (N x H x W) or <utt>.mat
  (lipspeakers/<spk>/straightcam/ likewise, optional)"""

NOISY_LAYOUT = """\
  <noisy_source>/<noise>/<snr>/volunteers/<spk>/straightcam/<utt>.wav
  noise in LR, White, Cafe, Car, Babble, Street; snr folders like -5, 0, 5, 10, 15, 20"""

OPTIONS: dict[str, str] = {
    **C.COMMON_OPTIONS,
    "lips_source": "folder holding the lip ROIs in the same volunteers/<spk>/straightcam/ layout (default: source)",
    "lips_from": "'roi' (default: provided lip ROIs) or 'face' (Haar mouth crops of Clips/straightcam/*.mp4)",
    "fps": f"frame rate of .npy/.npz/.mat ROIs (default {DEFAULT_LIPS_FPS:g})",
    "raw_npy_transpose": "transpose each image of a flattened *Raw.npy ROI (stored column-major; default true)",
    "test_speakers": f"test speakers (default {list(DEFAULT_TEST)})",
    "val_speakers": f"validation speakers (default {list(DEFAULT_VAL)})",
    "babble_speakers": "speakers kept only for babble noise (default none)",
    "train_speakers": "training speakers (default: every volunteer not listed elsewhere)",
    "include_lipspeakers": "also use lipspeakers/ (as train speakers; default false)",
    "noisy_source": "NTCD-TIMIT noisy tree <noise>/<snr>/volunteers/... (ntcd-timit only; optional)",
    "detect_every": "lips_from=face: run the face detector on every k-th frame (default 5)",
}

_VOLUNTEER = re.compile(r"^\d{2}[MF]$")


# ---------------------------------------------------------------------------------------------
# NTCD-TIMIT pre-mixed noisy files


def _snr_value(name: str) -> Optional[float]:
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*(?:db)?\s*", name, flags=re.IGNORECASE)
    return float(m.group(1)) if m else None


def _noise_dir(root: Path, noise: str) -> Path:
    d = root / noise
    if d.is_dir():
        return d
    for p in sorted(root.iterdir()) if root.is_dir() else []:
        if p.is_dir() and p.name.lower() == noise.lower():
            return p
    known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    raise DataError(root / noise, f"NTCD-TIMIT noise type {noise!r} not found (available: {', '.join(known) or 'none'})")


def _snr_dir(noise_dir: Path, snr: float | int | str) -> Path:
    d = noise_dir / str(snr)
    if d.is_dir():
        return d
    target = float(snr) if not isinstance(snr, str) else _snr_value(snr)
    avail = {}
    for p in sorted(noise_dir.iterdir()):
        v = _snr_value(p.name) if p.is_dir() else None
        if v is not None:
            avail[v] = p
    if target is not None and target in avail:
        return avail[target]
    raise DataError(noise_dir / str(snr), f"SNR {snr} dB not available (available: {', '.join(f'{v:g}' for v in sorted(avail)) or 'none'})")


def ntcd_noisy_path(root: str | Path, noise: str, snr: float | int | str, speaker: str, utt: str, *, group: str = "volunteers") -> Path:
    """Path of the NTCD-TIMIT pre-mixed noisy file ``<root>/<noise>/<snr>/<group>/<speaker>/straightcam/<utt>.wav``.

    ``noise`` matches the folder name case-insensitively; ``snr`` matches the SNR folder
    numerically (``5``, ``5.0`` and ``"5"`` all find folder ``5``). A missing root, noise, SNR or
    file is a :class:`DataError` that lists what is available.
    """
    root = Path(root)
    if not root.is_dir():
        raise C.LayoutError(root, "ntcd-timit", "NTCD-TIMIT noisy folder not found", NOISY_LAYOUT)
    path = _snr_dir(_noise_dir(root, noise), snr) / group / speaker / CAMERA / f"{utt}.wav"
    if not path.exists():
        raise DataError(path, "NTCD-TIMIT noisy file not found")
    return path


def list_ntcd_noisy(root: str | Path) -> list[tuple[str, float]]:
    """The (noise, SNR dB) pairs present under an NTCD-TIMIT noisy root, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise C.LayoutError(root, "ntcd-timit", "NTCD-TIMIT noisy folder not found", NOISY_LAYOUT)
    out = []
    for nd in sorted(p for p in root.iterdir() if p.is_dir()):
        for sd in sorted(p for p in nd.iterdir() if p.is_dir()):
            v = _snr_value(sd.name)
            if v is not None and any(sd.rglob("*.wav")):
                out.append((nd.name, v))
    return sorted(out, key=lambda t: (t[0].lower(), t[1]))


def source_utt_name(utt_id: str, speaker: str) -> str:
    """The corpus's own utterance name (``sa1``) of a manifest ``utt_id`` (``09F_sa1``)."""
    prefix = f"{speaker}_"
    if not utt_id.startswith(prefix):
        raise ValueError(f"utterance id {utt_id!r} does not start with its speaker {speaker!r}")
    return utt_id[len(prefix):]


@dataclass
class NtcdNoisy:
    """Access to NTCD-TIMIT's pre-mixed noisy files for the utterances of a built corpus."""

    root: Path

    @classmethod
    def from_corpus(cls, corpus_root: str | Path) -> "NtcdNoisy":
        """From the ``noisy_source`` recorded in a built corpus's ``corpus.json``."""
        from benchmark.corpus.manifest import read_sidecar

        side = read_sidecar(corpus_root)
        src = side.get("noisy_source")
        if not src:
            raise DataError(Path(corpus_root) / "corpus.json", "corpus has no NTCD-TIMIT noisy_source (build it with corpus.name=ntcd-timit and corpus.options.noisy_source=...)")
        return cls(Path(src))

    def pairs(self) -> list[tuple[str, float]]:
        return list_ntcd_noisy(self.root)

    def path(self, noise: str, snr: float | int | str, speaker: str, utt_id: str) -> Path:
        return ntcd_noisy_path(self.root, noise, snr, speaker, source_utt_name(utt_id, speaker))

    def load(self, noise: str, snr: float | int | str, speaker: str, utt_id: str, *, n_samples: Optional[int] = None) -> np.ndarray:
        """The noisy mixture as float32 mono 16 kHz (resampled if needed); with ``n_samples``
        its length must match the clean utterance within 10 ms and is cut/zero-padded to it."""
        path = self.path(noise, snr, speaker, utt_id)
        x = C.load_audio(path)
        if n_samples is not None:
            if abs(x.size - n_samples) > 160:
                raise DataError(path, f"noisy file has {x.size} samples, the clean utterance {n_samples}")
            x = np.pad(x, (0, max(0, n_samples - x.size)))[:n_samples]
        return x


# ---------------------------------------------------------------------------------------------
# clean corpus


def find_lips(folder: Path, utt: str) -> Optional[Path]:
    """The lip-ROI file of ``utt`` in ``folder`` (video, then ``Raw.npy``, ``.npy``/``.npz``, ``.mat``)."""
    cands = [folder / f"{utt}{e}" for e in VIDEO_EXTS] + [folder / f"{utt}Raw.npy", folder / f"{utt}.npy", folder / f"{utt}.npz", folder / f"{utt}.mat"]
    return next((p for p in cands if p.exists()), None)


@dataclass
class TcdLoader:
    """Loads one TCD-TIMIT item (picklable): audio, then lip ROIs or Haar mouth crops."""

    lip_size: int
    fps: float = DEFAULT_LIPS_FPS
    raw_transpose: bool = True
    resize: bool = True
    from_face: bool = False
    detect_every: int = 5
    allow_downmix: bool = False

    def __call__(self, item: C.Item) -> C.Converted:
        audio = C.load_audio(item.audio_src, allow_downmix=self.allow_downmix)
        path = item.lips_src
        if self.from_face:
            gray, fps = C.read_video(path)
            lips, _, _ = C.MouthCropper(lip_size=self.lip_size, detect_every=self.detect_every).crop(gray, name=str(path))
            return C.Converted(audio=audio, lips=lips, fps=fps)
        suffix = path.suffix.lower()
        fps = self.fps
        if suffix in VIDEO_EXTS:
            lips, fps = C.read_video(path)
        elif suffix == ".mat":
            lips = C.read_mat_frames(path)
        elif suffix in (".npy", ".npz"):
            try:
                if suffix == ".npy":
                    a = np.load(path, allow_pickle=False)
                else:
                    with np.load(path, allow_pickle=False) as z:
                        a = z[z.files[0]]
            except Exception as exc:
                raise DataError(path, f"cannot read lip frames ({type(exc).__name__}: {exc})") from exc
            lips = C.flat_roi_to_frames(a, path=path, transpose=self.raw_transpose) if a.ndim == 2 else a
        else:
            raise DataError(path, f"unsupported lip file type {suffix!r}")
        from benchmark.audio_io import validate_lips

        lips = validate_lips(lips, path=path)
        if self.resize:
            lips = C.resize_frames(lips, self.lip_size)
        return C.Converted(audio=audio, lips=lips, fps=fps)


def scan(src: Path, options: dict[str, Any], corpus: str) -> list[C.Item]:
    """Items (speaker, utterance, audio and lip files) of a TCD-TIMIT tree."""
    lips_root = Path(C.opt(options, "lips_source", str(src), str, corpus))
    if not lips_root.is_dir():
        raise C.LayoutError(lips_root, corpus, "lip-ROI folder (corpus.options.lips_source) not found", LAYOUT)
    from_face = C.opt(options, "lips_from", "roi", str, corpus) == "face"
    groups = ["volunteers"] + (["lipspeakers"] if C.opt(options, "include_lipspeakers", False, bool, corpus) else [])
    if not (src / "volunteers").is_dir():
        raise C.LayoutError(src / "volunteers", corpus, "no volunteers/ folder in the corpus source", LAYOUT)
    wanted = C.opt_list(options, "speakers", None, corpus)
    items: list[C.Item] = []
    for group in groups:
        gdir = src / group
        if not gdir.is_dir():
            log.warning("%s: no %s/ folder in %s", corpus, group, src)
            continue
        for sdir in sorted(p for p in gdir.iterdir() if p.is_dir()):
            spk = sdir.name
            if group == "volunteers" and not _VOLUNTEER.match(spk):
                log.warning("%s: skipping folder %s (not a volunteer id like 09F)", corpus, sdir)
                continue
            if wanted is not None and spk not in wanted:
                continue
            adir = sdir / CAMERA
            if not adir.is_dir():
                log.warning("%s: speaker %s has no %s/ folder; skipped", corpus, spk, CAMERA)
                continue
            ldir = (lips_root / group / spk / "Clips" / CAMERA) if from_face else (lips_root / group / spk / CAMERA)
            n_missing = 0
            for wav in sorted(adir.glob("*.wav")):
                lp = (ldir / f"{wav.stem}.mp4") if from_face else find_lips(ldir, wav.stem)
                if lp is None or not lp.exists():
                    n_missing += 1
                    continue
                txt = wav.with_suffix(".txt")
                items.append(C.Item(utt_id=f"{spk}_{wav.stem}", speaker=spk, split="train", audio_src=wav, lips_src=lp,
                                    transcript=_read_transcript(txt) if txt.exists() else "", extra={"group": group}))
            if n_missing:
                log.warning("%s %s: %d audio files have no lip file in %s; skipped", corpus, spk, n_missing, ldir)
    if wanted is not None:
        found = {it.speaker for it in items}
        missing = sorted(set(wanted) - found)
        if missing:
            raise C.LayoutError(src, corpus, f"speakers {missing} not found (or without audio+lips)", LAYOUT)
    if not items:
        raise C.LayoutError(src, corpus, "no utterance with both audio and lip files found", LAYOUT)
    return items


def _read_transcript(path: Path) -> str:
    """TIMIT-style ``.txt`` (``0 46797 She had your dark suit ...``) or a plain sentence."""
    text = path.read_text(errors="replace").strip()
    parts = text.split(maxsplit=2)
    if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
        return parts[2].strip()
    return text


def _build(spec: Any, root: Path, *, progress: bool, corpus: str) -> Path:
    options = C.check_options(dict(spec.options), OPTIONS, corpus)
    if corpus != "ntcd-timit" and options.get("noisy_source"):
        raise ConfigError(f"corpus.options.noisy_source is only used by corpus 'ntcd-timit' (got corpus {corpus!r})")
    src = C.require_source(options, corpus, LAYOUT)
    lips_from = C.opt(options, "lips_from", "roi", str, corpus)
    if lips_from not in ("roi", "face"):
        raise ConfigError(f"corpus.options.lips_from ({corpus}): must be 'roi' or 'face', got {lips_from!r}")
    items = scan(src, options, corpus)
    items = C.split_items_by_speaker(items, options, DEFAULT_TEST, DEFAULT_VAL, corpus)
    items = C.limit_per_speaker(items, C.opt(options, "max_utts_per_speaker", None, int, corpus))
    loader = TcdLoader(
        lip_size=spec.lip_size, fps=float(C.opt(options, "fps", DEFAULT_LIPS_FPS, (int, float), corpus)),
        raw_transpose=C.opt(options, "raw_npy_transpose", True, bool, corpus),
        resize=C.opt(options, "resize_lips", True, bool, corpus), from_face=lips_from == "face",
        detect_every=C.opt(options, "detect_every", 5, int, corpus),
        allow_downmix=C.opt(options, "allow_downmix", False, bool, corpus),
    )
    info: dict[str, Any] = {
        "generator": f"{corpus}-adapter", "version": 1, "source": str(src), "seed": spec.seed,
        "settings": C.spec_settings(spec), "synthetic": False, "lips_from": lips_from,
    }
    noisy = C.opt(options, "noisy_source", None, str, corpus)
    if noisy:
        pairs = list_ntcd_noisy(noisy)
        if not pairs:
            raise C.LayoutError(Path(noisy), corpus, "no noisy wav files found", NOISY_LAYOUT)
        info["noisy_source"] = str(Path(noisy).resolve())
        info["noisy_pairs"] = [[n, s] for n, s in pairs]
    return C.build_corpus(
        Path(root), items, loader, info=info, skip_bad=spec.skip_bad, jobs=spec.jobs, lip_size=None,
        av_tolerance_s=float(C.opt(options, "av_tolerance_s", 0.2, (int, float), corpus)), progress=progress, desc=corpus,
    )


@CORPORA.register("tcd-timit")
def build_tcd_timit(spec: Any, root: Path, *, progress: bool = True) -> Path:
    """TCD-TIMIT (real corpus on disk): volunteers' straight-camera audio + lip ROIs, av-dkf speaker split."""
    return _build(spec, root, progress=progress, corpus="tcd-timit")


@CORPORA.register("ntcd-timit")
def build_ntcd_timit(spec: Any, root: Path, *, progress: bool = True) -> Path:
    """NTCD-TIMIT (real corpus on disk): clean audio + 67x67 lip ROIs, and its pre-mixed noisy files."""
    return _build(spec, root, progress=progress, corpus="ntcd-timit")


build_tcd_timit.version = "tcd-timit-1"  # read by benchmark.corpus.build (part of the corpus settings hash)
build_ntcd_timit.version = "ntcd-timit-1"
