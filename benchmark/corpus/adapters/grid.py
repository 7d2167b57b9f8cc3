"""GRID audio-visual corpus adapter (Cooke et al. 2006; 34 talkers s1..s34, 1000 sentences each,
3 s, video 25 fps).

Expected layout under ``corpus.options.source``::

    audio_25k/sN/<utt>.wav     (or audio/sN/, audio_50k/sN/; any sample rate, resampled to 16 kHz with soxr)
    video/sN/**/<utt>.mpg      (.mpg/.mp4/.avi at any depth below video/sN/, e.g. video/s1/video/mpg_6000/)
    align/sN/<utt>.align       (or alignments/sN/; optional, gives the transcript)

**Align files** hold one word per line, ``start end word``, with times in units of 1/25000 s,
i.e. 1/1000 of a 40 ms video frame (a 3 s sentence ends at 75000). Verified against two
independent public GRID parsers (one documents "sample indices at 25000 Hz ... 1 frame = 1000
audio samples", the other divides the times by 1000 to get 25-fps frame indices). ``sil`` and
``sp`` (silence, short pause) are not words; the transcript is the other words joined by spaces.

**Mouth crops**: OpenCV's frontal-face Haar cascade (shipped with ``opencv-python-headless<5`` in
``cv2.data.haarcascades``) on every ``detect_every``-th frame; the median face box over the
utterance; the lower third of the face box, middle half horizontally; resized to
``CorpusSpec.lip_size``. When no face is found: a fixed centre crop (logged). See
:class:`benchmark.corpus.adapters.common.MouthCropper`.

**Speaker split** (defaults, overridable with ``test_speakers``/``val_speakers``/
``babble_speakers``/``train_speakers``): test = s1, s2, s20, s22 (the "unseen speakers" split of
LipNet, Assael et al. 2016, used by later GRID lip-reading work); val = s3, s4 (our choice, not
from a publication); every other speaker found is train. Speaker s21 has no video in the public
release; speakers missing a folder are simply not found.

Options (``corpus.options``): see :data:`OPTIONS`.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.audio_io import DataError
from benchmark.configtools import ConfigError
from benchmark.corpus import CORPORA
from benchmark.corpus.adapters import common as C

log = logging.getLogger(__name__)

NAME = "grid"
UNITS_PER_SECOND = 25000.0  # align-file time unit: 1/25000 s = 1/1000 of a 25-fps frame
DEFAULT_TEST = ("s1", "s2", "s20", "s22")  # LipNet "unseen speakers"
DEFAULT_VAL = ("s3", "s4")  # our choice
SILENCE_TOKENS = ("sil", "sp")
AUDIO_DIRS = ("audio_25k", "audio", "audio_50k")
ALIGN_DIRS = ("align", "alignments")
VIDEO_EXTS = (".mpg", ".mp4", ".avi", ".mov")

LAYOUT = """\
  <source>/audio_25k/sN/<utt>.wav    (or audio/sN/ or audio_50k/sN/)
  <source>/video/sN/**/<utt>.mpg     (.mpg/.mp4/.avi, any depth below video/sN/)
  <source>/align/sN/<utt>.align      (optional; or alignments/sN/)
  with speakers sN = s1 .. s34"""

OPTIONS: dict[str, str] = {
    **C.COMMON_OPTIONS,
    "test_speakers": f"test speakers (default {list(DEFAULT_TEST)}, LipNet unseen-speaker split)",
    "val_speakers": f"validation speakers (default {list(DEFAULT_VAL)})",
    "babble_speakers": "speakers kept only for babble noise (default none)",
    "train_speakers": "training speakers (default: every speaker not listed elsewhere)",
    "audio_dir": f"audio folder name under source (default: first of {list(AUDIO_DIRS)} that exists)",
    "detect_every": "run the face detector on every k-th frame (default 5)",
    "face_detector": "'haar' (default) or 'none' (always the fixed centre crop)",
}

_SPK = re.compile(r"^s\d+$")


def parse_align(path: str | Path) -> list[tuple[float, float, str]]:
    """Words of a GRID ``.align`` file as ``(start_s, end_s, word)``, silences included."""
    path = Path(path)
    out = []
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(path, f"cannot read align file ({exc})") from exc
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3:
            raise DataError(path, f"line {i}: expected 'start end word', got {line!r}")
        try:
            a, b = int(parts[0]), int(parts[1])
        except ValueError:
            raise DataError(path, f"line {i}: start/end are not integers: {line!r}") from None
        if b < a or a < 0:
            raise DataError(path, f"line {i}: end {b} before start {a}")
        out.append((a / UNITS_PER_SECOND, b / UNITS_PER_SECOND, parts[2]))
    if not out:
        raise DataError(path, "empty align file")
    return out


def align_transcript(words: list[tuple[float, float, str]]) -> str:
    """The spoken words of an alignment (silence tokens dropped)."""
    return " ".join(w for _, _, w in words if w.lower() not in SILENCE_TOKENS)


@dataclass
class GridLoader:
    """Loads one GRID item: resampled audio and Haar-cascade mouth crops (picklable for joblib)."""

    lip_size: int
    detect_every: int = 5
    use_detector: bool = True
    allow_downmix: bool = False

    def __call__(self, item: C.Item) -> C.Converted:
        audio = C.load_audio(item.audio_src, allow_downmix=self.allow_downmix)
        gray, fps = C.read_video(item.lips_src)
        if self.use_detector:
            cropper = C.MouthCropper(lip_size=self.lip_size, detect_every=self.detect_every)
        else:
            cropper = C.MouthCropper(lip_size=self.lip_size, detect_every=self.detect_every, detector=lambda g: [])
        lips, box, fallback = cropper.crop(gray, name=str(item.lips_src))
        ap = item.extra.get("align")
        transcript = align_transcript(parse_align(ap)) if ap else None
        return C.Converted(audio=audio, lips=lips, fps=fps, transcript=transcript, notes={"crop": box, "fallback": fallback})


def _find_audio_dir(src: Path, options: dict[str, Any]) -> Path:
    name = C.opt(options, "audio_dir", None, str, NAME)
    if name:
        d = src / name
        if not d.is_dir():
            raise C.LayoutError(d, NAME, "audio folder not found", LAYOUT)
        return d
    for n in AUDIO_DIRS:
        if (src / n).is_dir():
            return src / n
    raise C.LayoutError(src, NAME, f"no audio folder ({' / '.join(AUDIO_DIRS)}) in the corpus source", LAYOUT)


def scan(src: Path, options: dict[str, Any]) -> list[C.Item]:
    """Items of a GRID tree (all speakers and utterances that have both audio and video)."""
    audio_dir = _find_audio_dir(src, options)
    video_dir = src / "video"
    if not video_dir.is_dir():
        raise C.LayoutError(video_dir, NAME, "no video folder in the corpus source", LAYOUT)
    align_dir = next((src / d for d in ALIGN_DIRS if (src / d).is_dir()), None)
    wanted = C.opt_list(options, "speakers", None, NAME)
    speakers = sorted(
        (p.name for p in video_dir.iterdir() if p.is_dir() and _SPK.match(p.name) and (audio_dir / p.name).is_dir()),
        key=lambda s: int(s[1:]),
    )
    if wanted is not None:
        missing = sorted(set(wanted) - set(speakers))
        if missing:
            raise C.LayoutError(src, NAME, f"speakers {missing} have no audio+video folders", LAYOUT)
        speakers = [s for s in speakers if s in wanted]
    if not speakers:
        raise C.LayoutError(src, NAME, f"no speaker folders sN present in both {audio_dir.name}/ and video/", LAYOUT)
    items = []
    for spk in speakers:
        videos = {p.stem: p for p in sorted((video_dir / spk).rglob("*")) if p.suffix.lower() in VIDEO_EXTS}
        n_no_video = 0
        for wav in sorted((audio_dir / spk).glob("*.wav")):
            vid = videos.get(wav.stem)
            if vid is None:
                n_no_video += 1
                continue
            transcript = ""
            extra: dict[str, Any] = {}
            if align_dir is not None:
                ap = align_dir / spk / f"{wav.stem}.align"
                if ap.exists():
                    extra["align"] = str(ap)
            items.append(C.Item(utt_id=f"{spk}_{wav.stem}", speaker=spk, split="train", audio_src=wav,
                                lips_src=vid, transcript=transcript, extra=extra))
        if n_no_video:
            log.warning("grid %s: %d audio files have no matching video; skipped", spk, n_no_video)
    return items


@CORPORA.register(NAME)
def build(spec: Any, root: Path, *, progress: bool = True) -> Path:
    """GRID (real corpus on disk): Haar-cascade mouth crops, LipNet unseen-speaker test split."""
    options = C.check_options(dict(spec.options), OPTIONS, NAME)
    src = C.require_source(options, NAME, LAYOUT)
    items = scan(src, options)
    items = C.split_items_by_speaker(items, options, DEFAULT_TEST, DEFAULT_VAL, NAME)
    if not any(it.split == "test" for it in items):
        log.warning("grid: no test speaker among the speakers found (%s)", sorted({it.speaker for it in items}))
    items = C.limit_per_speaker(items, C.opt(options, "max_utts_per_speaker", None, int, NAME))
    detector = C.opt(options, "face_detector", "haar", str, NAME)
    if detector not in ("haar", "none"):
        raise ConfigError(f"corpus.options.face_detector (grid): must be 'haar' or 'none', got {detector!r}")
    loader = GridLoader(
        lip_size=spec.lip_size, detect_every=C.opt(options, "detect_every", 5, int, NAME),
        use_detector=detector == "haar", allow_downmix=C.opt(options, "allow_downmix", False, bool, NAME),
    )
    info = {
        "generator": "grid-adapter", "version": 1, "source": str(src), "seed": spec.seed,
        "settings": C.spec_settings(spec), "synthetic": False,
        "mouth_crop": "Haar frontal face (median box), lower third x middle half, resized" if detector == "haar" else "fixed centre crop",
        "align_time_unit_s": 1.0 / UNITS_PER_SECOND,
    }
    return C.build_corpus(
        Path(root), items, loader, info=info, skip_bad=spec.skip_bad, jobs=spec.jobs, lip_size=None,
        av_tolerance_s=float(C.opt(options, "av_tolerance_s", 0.2, (int, float), NAME)), progress=progress, desc="grid",
    )


build.version = "grid-1"  # read by benchmark.corpus.build (part of the corpus settings hash)
