"""Does the lip video carry information about the speech? A held-out-speaker check.

Small classifiers are trained on lip frames alone (pixels shrunk to 16x16, each utterance's mean
frame subtracted, PCA, a few neighbouring frames stacked, logistic regression) using the
*train* speakers, and scored on the frames of the *test* speakers (never seen in training):

- speech activity per video frame (from the phone timings, else from the audio energy);
- viseme class per video frame (from the manifest's viseme timings, when present);
- the audio envelope regressed from the same features (R^2);
- the correlation between a pixel-derived mouth-openness proxy (share of dark pixels in the
  centre of the frame) and the audio envelope at lags of -200..+200 ms; a positive best lag
  means the lips lead the sound.

Chance is the accuracy of always answering the training set's majority class. Works for any
corpus that follows the manifest contract.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from benchmark.corpus.manifest import load_utterance, read_manifest

log = logging.getLogger(__name__)

REPORT_FILE = "infocheck.json"
FEAT_SIDE = 16
CONTEXT = (-2, -1, 0, 1, 2)


@dataclass
class InfoCheckConfig:
    """Settings of the check."""

    train_split: str = "train"
    test_split: str = "test"
    max_utts_per_split: int = 400
    n_components: int = 40
    max_lag_s: float = 0.2
    min_pause_s: float = 0.1  # pauses shorter than this count as speech (word boundaries)
    seed: int = 0


@dataclass
class InfoCheckReport:
    """The figures of the check (accuracies in [0, 1], lag in ms: positive = lips lead)."""

    n_train_speakers: int = 0
    n_test_speakers: int = 0
    n_train_frames: int = 0
    n_test_frames: int = 0
    activity_source: str = ""
    activity_accuracy: float = float("nan")
    activity_chance: float = float("nan")
    activity_balanced_accuracy: float = float("nan")
    viseme_accuracy: Optional[float] = None
    viseme_chance: Optional[float] = None
    viseme_top3_accuracy: Optional[float] = None
    viseme_n_classes: Optional[int] = None
    envelope_r2: float = float("nan")
    openness_envelope_r: float = float("nan")
    openness_envelope_r_lag0: float = float("nan")
    openness_best_lag_ms: float = float("nan")
    lag_curve: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Frames:
    feats: list[np.ndarray]  # per utterance [N, FEAT_SIDE^2]
    openness: list[np.ndarray]  # per utterance [N]
    envelope: list[np.ndarray]  # per utterance [N]
    activity: list[np.ndarray]  # per utterance [N] bool
    visemes: list[Optional[np.ndarray]]  # per utterance [N] labels or None
    speakers: set
    activity_source: str


def frame_envelope(audio: np.ndarray, sr: int, n_frames: int, fps: float) -> np.ndarray:
    """RMS of the audio in a window of one video frame centred on each frame's midpoint."""
    centres = ((np.arange(n_frames) + 0.5) / fps * sr).astype(int)
    half = int(sr / fps / 2)
    out = np.empty(n_frames)
    for k, c in enumerate(centres):
        seg = audio[max(0, c - half) : c + half]
        out[k] = np.sqrt(np.mean(seg.astype(np.float64) ** 2)) if seg.size else 0.0
    return out


def openness_proxy(lips: np.ndarray) -> np.ndarray:
    """Share of dark pixels in the central half of each frame (threshold set per utterance)."""
    n, h, w = lips.shape
    box = lips[:, h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].astype(np.float32)
    med, dark = np.median(box), np.percentile(box, 1)
    thr = 0.5 * (med + dark)
    return (box < thr).mean(axis=(1, 2))


def _activity_from_phones(phones: list, times: np.ndarray, min_pause_s: float) -> Optional[np.ndarray]:
    if not phones:
        return None
    act = np.zeros(len(times), bool)
    speech = [(s, e) for s, e, p in phones if not str(p).startswith("_") and str(p).lower() not in ("sil", "sp", "pau", "h#")]
    if not speech:
        return None
    merged = [list(speech[0])]
    for s, e in speech[1:]:
        if s - merged[-1][1] < min_pause_s:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    for s, e in merged:
        act[(times >= s) & (times < e)] = True
    return act


def _activity_from_energy(env: np.ndarray) -> np.ndarray:
    db = 20 * np.log10(env / (env.max() + 1e-12) + 1e-12)
    return db > -30.0


def _load_split(root: Path, df: pd.DataFrame, cfg: InfoCheckConfig) -> _Frames:
    import cv2

    from benchmark.corpus.synthetic.visemes import viseme_at

    rows = df.sort_values("utt_id")
    if len(rows) > cfg.max_utts_per_split:
        rows = rows.sample(n=cfg.max_utts_per_split, random_state=cfg.seed).sort_values("utt_id")
    fr = _Frames([], [], [], [], [], set(), "phones")
    sources = set()
    for _, row in rows.iterrows():
        u = load_utterance(root, row)
        n = u.lips.shape[0]
        times = (np.arange(n) + 0.5) / u.fps
        small = np.stack([cv2.resize(f, (FEAT_SIDE, FEAT_SIDE), interpolation=cv2.INTER_AREA) for f in u.lips]).astype(np.float32)
        small = small.reshape(n, -1)
        small -= small.mean(axis=0, keepdims=True)  # per-utterance normalisation (removes the speaker's look)
        env = frame_envelope(u.audio, u.sample_rate, n, u.fps)
        act = _activity_from_phones(u.phones, times, cfg.min_pause_s)
        if act is None:
            act = _activity_from_energy(env)
            sources.add("energy")
        else:
            sources.add("phones")
        fr.feats.append(small)
        fr.openness.append(openness_proxy(u.lips))
        fr.envelope.append(env)
        fr.activity.append(act)
        fr.visemes.append(viseme_at(u.visemes, times).astype(str) if u.visemes else None)
        fr.speakers.add(u.speaker)
    fr.activity_source = "+".join(sorted(sources))
    return fr


def _motion(small: np.ndarray) -> np.ndarray:
    """Mean absolute change of the central pixels from the previous frame (0 for the first)."""
    side = FEAT_SIDE
    c = small.reshape(len(small), side, side)[:, side // 4 : 3 * side // 4, side // 4 : 3 * side // 4]
    d = np.abs(np.diff(c, axis=0)).mean(axis=(1, 2))
    return np.r_[0.0, d]


def _features(pca, fr: "_Frames") -> np.ndarray:
    """PCA of the pixels plus motion energy and openness, each with neighbouring frames stacked."""
    z = [np.c_[pca.transform(f), _motion(f), o] for f, o in zip(fr.feats, fr.openness)]
    return _stack_context(z)


def _stack_context(z: list[np.ndarray]) -> np.ndarray:
    """Concatenate each frame's features with those of its neighbours (edge frames repeated)."""
    out = []
    for m in z:
        n = len(m)
        idx = np.clip(np.arange(n)[:, None] + np.array(CONTEXT)[None, :], 0, n - 1)
        out.append(m[idx].reshape(n, -1))
    return np.concatenate(out)


def _zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-12)


def _lag_correlation(openness: list[np.ndarray], envelope: list[np.ndarray], max_lag: int) -> dict[int, float]:
    """Pooled Pearson r of openness[t] with envelope[t + lag] (per-utterance z-scores)."""
    out = {}
    for lag in range(-max_lag, max_lag + 1):
        xs, ys = [], []
        for o, e in zip(openness, envelope):
            n = len(o)
            if n - abs(lag) < 3:
                continue
            if lag >= 0:
                xs.append(_zscore(o[: n - lag])), ys.append(_zscore(e[lag:]))
            else:
                xs.append(_zscore(o[-lag:])), ys.append(_zscore(e[: n + lag]))
        if xs:
            x, y = np.concatenate(xs), np.concatenate(ys)
            out[lag] = float(np.corrcoef(x, y)[0, 1])
    return out


def run_infocheck(root: str | os.PathLike, cfg: InfoCheckConfig = InfoCheckConfig(), *, write: bool = True) -> InfoCheckReport:
    """Run the check on the corpus at ``root``; writes ``infocheck.json`` next to the manifest."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import balanced_accuracy_score, r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    root = Path(root)
    df = read_manifest(root)
    tr_df, te_df = df[df["split"] == cfg.train_split], df[df["split"] == cfg.test_split]
    if tr_df.empty or te_df.empty:
        raise ValueError(f"{root}: the info check needs utterances in splits {cfg.train_split!r} and {cfg.test_split!r}")
    tr, te = _load_split(root, tr_df, cfg), _load_split(root, te_df, cfg)
    if tr.speakers & te.speakers:
        raise ValueError(f"{root}: train and test splits share speakers {sorted(tr.speakers & te.speakers)}")
    n_comp = int(min(cfg.n_components, sum(len(f) for f in tr.feats) - 1, FEAT_SIDE * FEAT_SIDE))
    pca = PCA(n_components=n_comp, random_state=cfg.seed).fit(np.concatenate(tr.feats))
    Xtr, Xte = _features(pca, tr), _features(pca, te)
    rep = InfoCheckReport(n_train_speakers=len(tr.speakers), n_test_speakers=len(te.speakers),
                          n_train_frames=len(Xtr), n_test_frames=len(Xte), activity_source=tr.activity_source)

    def clf():
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, C=0.5))

    ytr, yte = np.concatenate(tr.activity), np.concatenate(te.activity)
    if len(np.unique(ytr)) > 1:
        pred = clf().fit(Xtr, ytr).predict(Xte)
        rep.activity_accuracy = float(np.mean(pred == yte))
        rep.activity_balanced_accuracy = float(balanced_accuracy_score(yte, pred))
    majority = bool(np.mean(ytr) >= 0.5)
    rep.activity_chance = float(np.mean(yte == majority))

    if all(v is not None for v in tr.visemes + te.visemes):
        vtr, vte = np.concatenate(tr.visemes), np.concatenate(te.visemes)
        classes, counts = np.unique(vtr, return_counts=True)
        if len(classes) > 1:
            model = clf().fit(Xtr, vtr)
            proba = model.predict_proba(Xte)
            order = np.argsort(-proba, axis=1)
            cls = model.classes_
            rep.viseme_accuracy = float(np.mean(cls[order[:, 0]] == vte))
            rep.viseme_top3_accuracy = float(np.mean([t in cls[o[:3]] for t, o in zip(vte, order)]))
            rep.viseme_chance = float(np.mean(vte == classes[np.argmax(counts)]))
            rep.viseme_n_classes = int(len(classes))

    etr = np.concatenate([_zscore(np.log(e + 1e-4)) for e in tr.envelope])
    ete = np.concatenate([_zscore(np.log(e + 1e-4)) for e in te.envelope])
    reg = make_pipeline(StandardScaler(), Ridge(alpha=100.0)).fit(Xtr, etr)
    rep.envelope_r2 = float(r2_score(ete, reg.predict(Xte)))

    fps = float(te_df["fps"].iloc[0])
    max_lag = max(1, int(round(cfg.max_lag_s * fps)))
    curve = _lag_correlation(te.openness, te.envelope, max_lag)
    best = max(curve, key=lambda k: curve[k])
    rep.openness_envelope_r = curve[best]
    rep.openness_envelope_r_lag0 = curve.get(0, float("nan"))
    rep.openness_best_lag_ms = 1000.0 * best / fps
    rep.lag_curve = {f"{1000.0 * k / fps:.0f}": round(v, 4) for k, v in sorted(curve.items())}
    if write:
        (root / REPORT_FILE).write_text(json.dumps(rep.to_dict(), indent=2))
    return rep


def format_report(rep: InfoCheckReport) -> str:
    """Human-readable summary of the check."""
    lines = [
        f"lip-video information check (held-out speakers: train {rep.n_train_speakers} spk / {rep.n_train_frames} frames, "
        f"test {rep.n_test_speakers} spk / {rep.n_test_frames} frames)",
        f"  speech activity from lips ({rep.activity_source} labels): accuracy {rep.activity_accuracy:.3f} "
        f"(chance {rep.activity_chance:.3f}, balanced accuracy {rep.activity_balanced_accuracy:.3f})",
    ]
    if rep.viseme_accuracy is not None:
        lines.append(f"  viseme class from lips ({rep.viseme_n_classes} classes): accuracy {rep.viseme_accuracy:.3f} "
                     f"(chance {rep.viseme_chance:.3f}), top-3 {rep.viseme_top3_accuracy:.3f}")
    else:
        lines.append("  viseme class: no viseme timings in this corpus")
    lines.append(f"  audio log-envelope regressed from lips: R^2 {rep.envelope_r2:.3f}")
    lines.append(f"  mouth-openness proxy vs audio envelope: r {rep.openness_envelope_r:.3f} at lag "
                 f"{rep.openness_best_lag_ms:+.0f} ms (positive = lips lead; r at lag 0: {rep.openness_envelope_r_lag0:.3f})")
    return "\n".join(lines)
