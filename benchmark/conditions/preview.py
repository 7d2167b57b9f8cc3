"""Preview of the test conditions for one utterance, so a person can see them:

* ``corruptions.png``: every registered corruption (rows) at three severities (columns); each
  cell is a strip of consecutive lip frames around the most corrupted part, with the per-frame
  corruption level written under each frame;
* ``spectrograms.png``: the clean spectrogram and the mixture spectrograms at three SNRs for
  each noise (rows).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmark.conditions.build import Condition, make_item
from benchmark.conditions.corruptions import CORRUPTIONS, apply_corruption

log = logging.getLogger(__name__)

DEFAULT_SEVERITIES = (0.3, 0.6, 1.0)
DEFAULT_SNRS = (-5.0, 5.0, 15.0)
STRIP_FRAMES = 6


def _strip_window(level: np.ndarray, n: int, width: int) -> slice:
    """A window of ``width`` frames centred on the first corrupted frame (or the middle)."""
    hit = np.flatnonzero(level > 0)
    centre = int(hit[0]) + width // 2 - 1 if hit.size else n // 2
    start = int(np.clip(centre - width // 2, 0, max(n - width, 0)))
    return slice(start, start + min(width, n))


def _pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write(fig: Any, out_png: Path, title: str) -> Path:
    """Title and lay out ``fig``, write it to ``out_png`` (110 dpi) and close it."""
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    _pyplot().close(fig)
    return out_png


def corruption_grid(lips: np.ndarray, out_png: Path, *, seed: int = 0, kinds: Sequence[str] | None = None,
                    severities: Sequence[float] = DEFAULT_SEVERITIES, title: str = "") -> Path:
    """Write the corruption grid of ``lips`` (uint8 N x H x W) to ``out_png``."""
    plt = _pyplot()
    kinds = list(kinds or CORRUPTIONS.names())
    n = len(lips)
    fig, axes = plt.subplots(len(kinds) + 1, len(severities), figsize=(4.2 * len(severities), 1.25 * (len(kinds) + 1)),
                             squeeze=False)
    for j, sev in enumerate(severities):
        win = slice(0, min(STRIP_FRAMES, n))
        rows = [("none (clean)", lips, np.zeros(n, np.float32))]
        for k in kinds:
            out, lv = apply_corruption(lips, f"{k}@{sev:g}", seed)
            rows.append((k, out, lv))
        for i, (name, frames, lv) in enumerate(rows):
            w = _strip_window(lv, n, STRIP_FRAMES) if i else win
            strip = np.concatenate(list(frames[w]), axis=1)
            ax = axes[i, j]
            ax.imshow(strip, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            levels = " ".join(f"{v:.1f}" for v in lv[w])
            ax.set_xlabel(f"frames {w.start}-{w.stop - 1} level {levels} ({100 * np.mean(lv > 0):.0f}% of video)", fontsize=6)
            if j == 0:
                ax.set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
            if i == 0:
                ax.set_title(f"severity {sev:g}", fontsize=9)
    return _write(fig, out_png, title or "visual corruptions")


def spectrogram_grid(utt: Any, noise_sources: dict[str, Any], out_png: Path, *, snrs: Sequence[float] = DEFAULT_SNRS,
                     definition: str = "energy", seed: int = 0, allow_loop: bool = True, title: str = "") -> Path:
    """Write clean + mixture spectrograms at ``snrs`` for each noise source to ``out_png``."""
    from models.spectral import STFTConfig, power_spectrogram

    cfg = STFTConfig()
    names = list(noise_sources)
    fig, axes = _pyplot().subplots(len(names), len(snrs) + 1, figsize=(3.2 * (len(snrs) + 1), 2.3 * len(names)), squeeze=False)
    dur = utt.audio.size / utt.sample_rate

    def show(ax, x, label):
        p = power_spectrogram(np.asarray(x, np.float32), cfg).numpy().T
        db = 10 * np.log10(p + 1e-10)
        ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=db.max() - 80, vmax=db.max(),
                  extent=(0, dur, 0, cfg.sample_rate / 2000))
        ax.set_title(label, fontsize=8)
        ax.tick_params(labelsize=6)

    for i, name in enumerate(names):
        show(axes[i, 0], utt.audio, f"clean ({utt.utt_id})")
        axes[i, 0].set_ylabel(f"{name}\nkHz", fontsize=8)
        for j, snr in enumerate(snrs):
            cond = Condition(noise=name, snr_db=float(snr), snr_definition=definition, seed=seed, allow_noise_loop=allow_loop)
            item = make_item(utt, cond, noise_sources[name])
            show(axes[i, j + 1], item.mixture, f"{name} @ {snr:g} dB (measured {item.info['snr_measured_db']:.2f})")
        axes[i, -1].set_xlabel("s", fontsize=7)
    return _write(fig, out_png, title or "mixtures")


def preview_utterance(corpus_root: Path | str, utt_id: str | None, out_dir: Path | str, *, noises: Sequence[str],
                      noise_options: dict[str, Any] | None = None, split: str = "test", seed: int = 0,
                      definition: str = "energy", snrs: Sequence[float] = DEFAULT_SNRS,
                      severities: Sequence[float] = DEFAULT_SEVERITIES) -> list[Path]:
    """Write ``corruptions.png`` and ``spectrograms.png`` for one utterance (default: the first of
    ``split``) under ``out_dir``; returns their paths. ``noise_options``: keyed by noise name
    (``ConditionsSpec.noise_options``)."""
    from benchmark.corpus.manifest import load_utterance, read_manifest
    from noise_sets import NOISES

    df = read_manifest(corpus_root)
    if utt_id is None:
        cand = df[df["split"] == split].sort_values("utt_id")
        if cand.empty:
            raise ValueError(f"corpus {corpus_root}: no utterances in split {split!r}")
        row = cand.iloc[0]
    else:
        sel = df[df["utt_id"] == utt_id]
        if sel.empty:
            raise ValueError(f"corpus {corpus_root}: no utterance {utt_id!r} (e.g. {', '.join(df['utt_id'].head(3))})")
        row = sel.iloc[0]
    utt = load_utterance(corpus_root, row)
    out_dir = Path(out_dir)
    sources = {n: NOISES.get(n)(corpus_root=Path(corpus_root), **dict((noise_options or {}).get(n) or {})) for n in noises}
    a = corruption_grid(utt.lips, out_dir / "corruptions.png", seed=seed, severities=severities,
                        title=f"visual corruptions of {utt.utt_id} ({utt.lips.shape[1]}x{utt.lips.shape[2]} px, {utt.fps:g} fps)")
    b = spectrogram_grid(utt, sources, out_dir / "spectrograms.png", snrs=snrs, definition=definition, seed=seed,
                         title=f"mixtures of {utt.utt_id} ({definition} SNR)")
    return [a, b]
