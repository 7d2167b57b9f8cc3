"""The built-in synthetic audio-visual corpus: espeak-ng speech + rendered viseme-driven lips.

``CORPORA.get("synthetic")(spec, root)`` synthesises ``spec.utts_per_speaker`` utterances for each
speaker of the train/val/test/babble splits (disjoint speakers), renders the matching mouth video
and writes the manifest. Work is spread over ``spec.jobs`` worker processes (joblib/loky), one
task per speaker; each utterance is synthesised in a child forked from its worker, so espeak-ng's
global state starts pristine for every utterance (see :func:`.tts.synthesize_isolated`). Every
random choice is seeded from ``(spec.seed, speaker, utterance index)``: the same spec gives the
same bytes, whatever the number of jobs or the order of the work.

This corpus is a synthetic stand-in for real AV speech (formant TTS voices, cartoon-like mouth
renderings); it is documented as such in the sidecar (``corpus.json``).
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.audio_io import (
    SAMPLE_RATE, DataError, check_av_duration, validate_audio, validate_lips, write_audio, write_lips,
)
from benchmark.corpus import CORPORA
from benchmark.corpus.adapters.common import BadItem, write_bad_items
from benchmark.corpus.manifest import ManifestRow, write_manifest
from benchmark.corpus.synthetic.lips import LipRenderer
from benchmark.corpus.synthetic.sentences import SENTENCES
from benchmark.corpus.synthetic.speakers import Speaker, make_speakers
from benchmark.corpus.synthetic.tts import Synthesis, TTSError, onsets_to_segments, synthesize_isolated
from benchmark.corpus.synthetic.visemes import SIL, articulation_trajectory, phone_to_viseme, phones_to_visemes
from benchmark.seeding import rng
from benchmark.spec import CorpusSpec

log = logging.getLogger(__name__)

VERSION = "1"
MIN_DURATION_S, MAX_DURATION_S = 1.5, 4.0
DEFAULT_OPTIONS: dict[str, Any] = {
    "min_duration_s": MIN_DURATION_S,
    "max_duration_s": MAX_DURATION_S,
    "target_rms_dbfs": -24.0,  # speech level, +-2 dB per utterance, peak capped at 0.9
    "margin_s": (0.10, 0.20),  # silence kept before/after speech after trimming
}


@dataclasses.dataclass
class Rendered:
    """One synthesised utterance in memory (audio at 16 kHz, lips uint8)."""

    transcript: str
    audio: np.ndarray
    phones: list[tuple[float, float, str]]
    visemes: list[tuple[float, float, str]]
    lips: np.ndarray


def _options(spec: CorpusSpec) -> dict[str, Any]:
    unknown = set(spec.options) - set(DEFAULT_OPTIONS)
    if unknown:
        raise ValueError(f"corpus.options: unknown key(s) {sorted(unknown)} for the synthetic corpus; known: {sorted(DEFAULT_OPTIONS)}")
    return {**DEFAULT_OPTIONS, **spec.options}


def _speech_bounds(x: np.ndarray, sr: int, floor_db: float = -40.0) -> tuple[int, int]:
    """First and last sample of the part louder than ``floor_db`` below the peak (10 ms frames)."""
    hop = max(1, sr // 100)
    n = len(x) // hop
    e = np.sqrt(np.mean(x[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-20)
    active = np.nonzero(20 * np.log10(e / e.max()) > floor_db)[0]
    if active.size == 0:
        return 0, len(x)
    return int(active[0] * hop), int(min(len(x), (active[-1] + 1) * hop))


def _trim_and_resample(syn: Synthesis, r: np.random.Generator, opts: dict[str, Any]) -> tuple[np.ndarray, list]:
    """Trim leading/trailing silence (keep a random margin), resample to 16 kHz, shift phone times."""
    import soxr

    sr = syn.sample_rate
    a, b = _speech_bounds(syn.audio, sr)
    lo, hi = opts["margin_s"]
    pre, post = int(r.uniform(lo, hi) * sr), int(r.uniform(lo, hi) * sr)
    start, stop = a - pre, b + post  # may reach outside the synthesised audio: zero-padded
    seg = np.zeros(stop - start, np.float64)
    src_lo, src_hi = max(0, start), min(len(syn.audio), stop)
    seg[src_lo - start : src_hi - start] = syn.audio[src_lo:src_hi]
    audio = soxr.resample(seg, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
    dur = audio.size / SAMPLE_RATE
    t0, speech_on = start / sr, (a - start) / sr
    phones = []
    for s, e, p in onsets_to_segments(syn.phone_onsets, syn.audio.size / sr):
        s, e = max(0.0, s - t0), min(dur, e - t0)
        if not phones and not p.startswith("_"):
            s = max(s, speech_on - 0.01)  # the first phone starts where the sound does
        if e - s > 1e-4:
            phones.append((round(s, 4), round(e, 4), p))
    if not phones or phones[0][0] > 0:
        phones.insert(0, (0.0, phones[0][0] if phones else dur, "_"))
    if phones[-1][1] < dur - 1e-4:
        phones.append((phones[-1][1], round(dur, 4), "_"))
    return audio, phones


def _normalise(audio: np.ndarray, r: np.random.Generator, opts: dict[str, Any]) -> np.ndarray:
    """Scale to the target RMS (+-2 dB), never above a 0.9 peak."""
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    target = 10 ** ((opts["target_rms_dbfs"] + r.uniform(-2.0, 2.0)) / 20)
    g = target / max(rms, 1e-9)
    g = min(g, 0.9 / max(float(np.abs(audio).max()), 1e-9))
    return (audio * g).astype(np.float32)


def synthesize_utterance(speaker: Speaker, utt_index: int, seed: int, fps: float, renderer: LipRenderer,
                         opts: dict[str, Any] | None = None) -> Rendered:
    """Speech, phone/viseme timings and lip video of utterance ``utt_index`` of ``speaker``."""
    opts = opts or DEFAULT_OPTIONS
    r = rng(seed, "utterance", speaker.speaker_id, utt_index)
    kind = "grid" if r.random() < speaker.grid_fraction else "free"
    text = SENTENCES.get(kind)(r)
    best = None
    for _attempt in range(8):
        syn = synthesize_isolated(text, speaker.voice, seed=int(r.integers(1 << 31)))
        audio, phones = _trim_and_resample(syn, r, opts)
        dur = audio.size / SAMPLE_RATE
        miss = max(0.0, opts["min_duration_s"] - dur, dur - opts["max_duration_s"])
        if best is None or miss < best[0]:
            best = (miss, text, audio, phones)
        if miss == 0.0:
            break
        # too short: add a phrase; too long: draw a fresh (GRID, shorter) sentence
        text = text.rstrip(".") + " " + SENTENCES.get("grid")(r) if dur < opts["min_duration_s"] else SENTENCES.get("grid")(r)
    _, text, audio, phones = best
    audio = _normalise(audio, r, opts)
    dur = audio.size / SAMPLE_RATE
    visemes = phones_to_visemes(phones)
    n_frames = max(1, int(round(dur * fps)))
    times = (np.arange(n_frames) + 0.5) / fps  # each frame shows the middle of its interval
    traj = articulation_trajectory(visemes, times, speaker.style)
    lips = renderer.render(traj, times, rng(seed, "lips", speaker.speaker_id, utt_index))
    return Rendered(transcript=text, audio=audio, phones=phones, visemes=visemes, lips=lips)


def build_speaker(speaker: Speaker, spec_dict: dict[str, Any], root: str) -> list[dict[str, Any]]:
    """Worker task: all utterances of one speaker, written under ``root``; returns manifest rows."""
    spec = CorpusSpec(**spec_dict)
    opts = _options(spec)
    renderer = LipRenderer(spec.lip_size, speaker.appearance)
    rows: list[dict[str, Any]] = []
    for k in range(spec.utts_per_speaker):
        utt_id = f"{speaker.speaker_id}_{k:03d}"
        apath = f"audio/{speaker.speaker_id}/{utt_id}.wav"
        lpath = f"lips/{speaker.speaker_id}/{utt_id}.npy"
        try:
            utt = synthesize_utterance(speaker, k, spec.seed, spec.fps, renderer, opts)
            validate_audio(utt.audio, SAMPLE_RATE, path=apath)
            validate_lips(utt.lips, path=lpath)
            check_av_duration(utt.audio.size, SAMPLE_RATE, utt.lips.shape[0], spec.fps, path=lpath, tolerance_s=1.0 / spec.fps)
        except (DataError, TTSError) as exc:
            rows.append({"bad": True, "utt_id": utt_id, "path": getattr(exc, "path", apath), "problem": str(exc)})
            continue
        write_audio(Path(root) / apath, utt.audio)
        write_lips(Path(root) / lpath, utt.lips)
        rows.append(dataclasses.asdict(ManifestRow(
            utt_id=utt_id, speaker=speaker.speaker_id, split=speaker.split, audio_path=apath, lips_path=lpath,
            fps=float(spec.fps), n_frames=int(utt.lips.shape[0]), n_samples=int(utt.audio.size),
            sample_rate=SAMPLE_RATE, transcript=utt.transcript, phones=json.dumps(utt.phones),
            visemes=json.dumps(utt.visemes),
        )))
    return rows


def speaker_counts(spec: CorpusSpec) -> dict[str, int]:
    return {"train": spec.n_train_speakers, "val": spec.n_val_speakers, "test": spec.n_test_speakers,
            "babble": spec.n_babble_speakers}


@CORPORA.register("synthetic")
def build(spec: CorpusSpec, root: Path, *, progress: bool = True) -> Path:
    """Built-in synthetic AV corpus (espeak-ng speech + viseme-driven rendered lips)."""
    from joblib import Parallel, delayed
    from tqdm import tqdm

    import pandas as pd

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _options(spec)  # fail early on unknown options
    speakers = make_speakers(spec.seed, speaker_counts(spec))
    spec_dict = dataclasses.asdict(spec)
    log.info("building synthetic corpus: %d speakers x %d utterances -> %s (jobs=%d)",
             len(speakers), spec.utts_per_speaker, root, spec.jobs)
    if spec.jobs > 1:
        results = Parallel(n_jobs=spec.jobs, backend="loky", return_as="generator")(
            delayed(build_speaker)(s, spec_dict, str(root)) for s in speakers)
    else:  # in this process (each utterance still synthesised in a forked child)
        results = (build_speaker(s, spec_dict, str(root)) for s in speakers)
    rows: list[dict[str, Any]] = []
    bad: list[BadItem] = []
    for res in tqdm(results, total=len(speakers), desc="synthetic corpus (speakers)", disable=not progress):
        for row in res:
            if row.get("bad"):
                if not spec.skip_bad:
                    raise DataError(row["path"], f"{row['problem']} (utterance {row['utt_id']}; set corpus.skip_bad=true to skip bad items)")
                log.warning("skipping %s: %s", row["utt_id"], row["problem"])
                bad.append(BadItem(utt_id=row["utt_id"], path=str(row["path"]), problem=row["problem"]))
            else:
                rows.append(row)
    write_bad_items(root, bad)
    if not rows:
        raise DataError(root, "every synthetic utterance failed (see bad_items.csv)")
    df = pd.DataFrame(rows)
    info = {
        "generator": "synthetic",
        "version": VERSION,
        "seed": spec.seed,
        "n_bad_items": len(bad),
        "settings": {k: v for k, v in spec_dict.items() if k not in ("root", "jobs")},
        "note": "SYNTHETIC stand-in corpus: espeak-ng formant TTS voices and rendered (cartoon) mouth ROI "
                "driven by phoneme-derived visemes; not real audio-visual speech.",
        "speaker_details": {s.speaker_id: {"split": s.split, "sex": s.sex, **dataclasses.asdict(s.voice)} for s in speakers},
    }
    write_manifest(root, df, info)
    return root


build.version = VERSION  # type: ignore[attr-defined]  # part of the corpus settings hash


# phone_to_viseme/SIL are re-exported for callers that label frames from the manifest
__all__ = ["build", "synthesize_utterance", "build_speaker", "VERSION", "phone_to_viseme", "SIL"]
