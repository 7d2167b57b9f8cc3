"""Generic audio-visual folder adapter: any tree of ``<name>.wav`` + mouth-ROI files.

Expected layout under ``corpus.options.source``::

    <speaker>/<name>.wav                 audio (any rate: resampled to 16 kHz with soxr)
    <speaker>/<name>.mp4|.avi|.mov       mouth-ROI video (frame rate from the file), or
    <speaker>/<name>.npy|.npz            mouth-ROI frames N x H x W (frame rate: options.fps)
    <speaker>/<name>.txt                 optional transcript
    splits.csv                           optional: columns speaker,split (split in train/val/test/babble)

Files may sit deeper (``<speaker>/<session>/<name>.wav``). The **speaker** is the first folder
below ``source``, or, with ``speaker_regex``, the named group ``speaker`` (else group 1) of a
regular expression searched in the file's path relative to ``source`` (for flat folders such as
``spk01_utt003.wav``: ``speaker_regex: '^(spk\\d+)_'``).

**Splits**, first that applies: ``splits.csv`` (in ``source`` or at ``options.splits_csv``);
``test_speakers``/``val_speakers``/``babble_speakers`` options (others train); otherwise a
seeded rule: the sorted speakers are shuffled by a generator seeded from
``(CorpusSpec.seed, "generic-split", speakers)`` and ``test_fraction`` (default 0.2, at least
one speaker) go to test, ``val_fraction`` (default 0.1) to val, the rest to train.
"""
from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional


from benchmark.audio_io import DataError
from benchmark.configtools import ConfigError
from benchmark.corpus import CORPORA
from benchmark.corpus.adapters import common as C
from benchmark.corpus.manifest import SPLITS

log = logging.getLogger(__name__)

NAME = "generic"
LIP_EXTS = (".mp4", ".avi", ".mov", ".npy", ".npz")

LAYOUT = """\
  <source>/<speaker>/<name>.wav              audio
  <source>/<speaker>/<name>.mp4|.avi|.npy    mouth-ROI video or N x H x W frames
  <source>/<speaker>/<name>.txt              optional transcript
  <source>/splits.csv                        optional speaker,split table
  (or a flat folder with corpus.options.speaker_regex naming the speaker part of each file name)"""

OPTIONS: dict[str, str] = {
    **C.COMMON_OPTIONS,
    "speaker_regex": "regex searched in the relative path; named group 'speaker' or group 1 is the speaker",
    "splits_csv": "speaker,split CSV (default: <source>/splits.csv when it exists)",
    "test_speakers": "test speakers (used when there is no splits.csv)",
    "val_speakers": "validation speakers (used when there is no splits.csv)",
    "babble_speakers": "babble-only speakers (used when there is no splits.csv)",
    "test_fraction": "seeded rule: fraction of speakers for test (default 0.2, at least 1)",
    "val_fraction": "seeded rule: fraction of speakers for val (default 0.1)",
    "fps": "frame rate of .npy/.npz lip frames (default CorpusSpec.fps)",
}


def speaker_of(rel: Path, regex: Optional[re.Pattern]) -> str:
    """Speaker of a file at ``rel`` (relative to the source root)."""
    text = rel.as_posix()
    if regex is not None:
        m = regex.search(text)
        if not m:
            raise DataError(rel, f"speaker_regex {regex.pattern!r} does not match this path")
        if "speaker" in regex.groupindex:
            return m.group("speaker")
        return m.group(1) if regex.groups else m.group(0)
    if len(rel.parts) < 2:
        raise DataError(rel, "file sits directly in the source folder: put it in a <speaker>/ subfolder or set corpus.options.speaker_regex")
    return rel.parts[0]


def read_splits_csv(path: Path) -> dict[str, str]:
    """``speaker,split`` rows -> mapping (errors name the file and the line)."""
    out: dict[str, str] = {}
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"speaker", "split"} <= {c.strip() for c in reader.fieldnames}:
                raise DataError(path, f"splits file needs columns 'speaker' and 'split', has {reader.fieldnames}")
            for i, row in enumerate(reader, 2):
                spk, split = (row.get("speaker") or "").strip(), (row.get("split") or "").strip()
                if split not in SPLITS:
                    raise DataError(path, f"line {i}: unknown split {split!r} (known: {', '.join(SPLITS)})")
                if not spk:
                    raise DataError(path, f"line {i}: empty speaker")
                if spk in out and out[spk] != split:
                    raise DataError(path, f"line {i}: speaker {spk!r} listed in both {out[spk]!r} and {split!r}")
                out[spk] = split
    except OSError as exc:
        raise DataError(path, f"cannot read splits file ({exc})") from exc
    return out


@dataclass
class GenericLoader:
    """Loads one item: audio and the lip video/array (picklable)."""

    fps: float
    allow_downmix: bool = False
    lip_size: Optional[int] = None

    def __call__(self, item: C.Item) -> C.Converted:
        audio = C.load_audio(item.audio_src, allow_downmix=self.allow_downmix)
        path = item.lips_src
        fps = self.fps
        if path.suffix.lower() in (".npy", ".npz"):
            from benchmark.audio_io import read_lips

            lips = read_lips(path)
        else:
            lips, fps = C.read_video(path)
        if self.lip_size is not None:
            from benchmark.audio_io import validate_lips

            lips = C.resize_frames(validate_lips(lips, path=path), self.lip_size)
        return C.Converted(audio=audio, lips=lips, fps=fps)


def scan(src: Path, options: dict[str, Any]) -> list[C.Item]:
    """All ``<name>.wav`` with a lip file of the same name, with speakers and transcripts."""
    pattern = C.opt(options, "speaker_regex", None, str, NAME)
    try:
        regex = re.compile(pattern) if pattern else None
    except re.error as exc:
        raise ConfigError(f"corpus.options.speaker_regex: invalid regular expression {pattern!r}: {exc}") from exc
    wanted = C.opt_list(options, "speakers", None, NAME)
    items, n_missing = [], 0
    for wav in sorted(src.rglob("*.wav")):
        lp = next((wav.with_suffix(e) for e in LIP_EXTS if wav.with_suffix(e).exists()), None)
        if lp is None:
            n_missing += 1
            continue
        rel = wav.relative_to(src)
        spk = speaker_of(rel, regex)
        if wanted is not None and spk not in wanted:
            continue
        txt = wav.with_suffix(".txt")
        items.append(C.Item(
            utt_id=rel.with_suffix("").as_posix().replace("/", "_"), speaker=spk, split="train", audio_src=wav,
            lips_src=lp, transcript=txt.read_text(errors="replace").strip() if txt.exists() else "",
        ))
    if n_missing:
        log.warning("generic: %d wav files under %s have no lip file (%s) of the same name; skipped", n_missing, src, "/".join(LIP_EXTS))
    if not items:
        raise C.LayoutError(src, NAME, "no <name>.wav with a mouth-ROI file of the same name found", LAYOUT)
    return items


def choose_splits(speakers: list[str], src: Path, options: dict[str, Any], seed: int) -> dict[str, str]:
    """Speaker -> split from splits.csv, the speaker-list options, or the seeded rule."""
    csv_opt = C.opt(options, "splits_csv", None, str, NAME)
    csv_path = Path(csv_opt) if csv_opt else src / "splits.csv"
    if csv_opt and not csv_path.exists():
        raise DataError(csv_path, "splits file (corpus.options.splits_csv) not found")
    if csv_path.exists():
        table = read_splits_csv(csv_path)
        missing = sorted(set(speakers) - set(table))
        if missing:
            raise DataError(csv_path, f"speakers {missing} have no split in this file")
        return {s: table[s] for s in speakers}
    test = C.opt_list(options, "test_speakers", None, NAME)
    if test is not None:
        return C.assign_splits(speakers, test=test, val=C.opt_list(options, "val_speakers", (), NAME) or (),
                               babble=C.opt_list(options, "babble_speakers", (), NAME) or ())
    tf = float(C.opt(options, "test_fraction", 0.2, (int, float), NAME))
    vf = float(C.opt(options, "val_fraction", 0.1, (int, float), NAME))
    if not (0.0 < tf < 1.0) or not (0.0 <= vf < 1.0) or tf + vf >= 1.0:
        raise ConfigError(f"corpus.options: test_fraction ({tf}) and val_fraction ({vf}) must lie in (0, 1) with a sum below 1")
    return C.seeded_split(speakers, seed, val_fraction=vf, test_fraction=tf, tag="generic-split")


@CORPORA.register(NAME)
def build(spec: Any, root: Path, *, progress: bool = True) -> Path:
    """Generic folder of <name>.wav + mouth-ROI video/.npy (real data on disk), speaker from folder or regex."""
    options = C.check_options(dict(spec.options), OPTIONS, NAME)
    src = C.require_source(options, NAME, LAYOUT)
    items = scan(src, options)
    splits = choose_splits(sorted({it.speaker for it in items}), src, options, spec.seed)
    items = [it for it in items if it.speaker in splits]
    for it in items:
        it.split = splits[it.speaker]
    items = C.limit_per_speaker(items, C.opt(options, "max_utts_per_speaker", None, int, NAME))
    loader = GenericLoader(
        fps=float(C.opt(options, "fps", spec.fps, (int, float), NAME)),
        allow_downmix=C.opt(options, "allow_downmix", False, bool, NAME),
        lip_size=spec.lip_size if C.opt(options, "resize_lips", True, bool, NAME) else None,
    )
    info = {"generator": "generic-adapter", "version": 1, "source": str(src), "seed": spec.seed,
            "settings": C.spec_settings(spec), "synthetic": False}
    return C.build_corpus(
        Path(root), items, loader, info=info, skip_bad=spec.skip_bad, jobs=spec.jobs, lip_size=None,
        av_tolerance_s=float(C.opt(options, "av_tolerance_s", 0.2, (int, float), NAME)), progress=progress, desc=NAME,
    )


__all__ = ["build", "scan", "choose_splits", "read_splits_csv", "speaker_of"]


build.version = "generic-1"  # read by benchmark.corpus.build (part of the corpus settings hash)
