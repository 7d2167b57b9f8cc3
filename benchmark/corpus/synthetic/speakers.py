"""Synthetic speakers: each a fixed combination of an espeak-ng voice (accent + male/female
variant, pitch, pitch range, rate), a lip appearance and an articulation style.

Speakers are numbered in split order (train, val, test, babble) and each one's settings are
drawn from ``rng(seed, "speaker", index)``, so the same spec always gives the same speakers.
"""
from __future__ import annotations

from dataclasses import dataclass


from benchmark.corpus.synthetic.lips import LipAppearance
from benchmark.corpus.synthetic.tts import VoiceSettings
from benchmark.corpus.synthetic.visemes import ArticulationStyle
from benchmark.seeding import rng

ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc")
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5")


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker (voice, look, articulation) and its split."""

    speaker_id: str
    split: str
    sex: str
    voice: VoiceSettings
    appearance: LipAppearance
    style: ArticulationStyle
    grid_fraction: float  # share of GRID-grammar sentences (the rest: free sentences)


def make_speaker(seed: int, index: int, split: str, female: bool) -> Speaker:
    """Draw speaker ``index`` (deterministic from ``seed`` and ``index``)."""
    r = rng(seed, "speaker", index)
    accent = ACCENTS[r.integers(len(ACCENTS))]
    if female:
        variant = FEMALE_VARIANTS[r.integers(len(FEMALE_VARIANTS))]
        pitch = int(r.integers(45, 81))
    else:
        variant = MALE_VARIANTS[r.integers(len(MALE_VARIANTS))]
        pitch = int(r.integers(20, 56))
    voice = VoiceSettings(
        voice=f"{accent}+{variant}", rate=int(r.integers(145, 186)), pitch=pitch,
        range=int(r.integers(30, 86)), wordgap=int(r.integers(0, 2)),
    )
    skin = float(r.uniform(95, 205))
    app = LipAppearance(
        mouth_half_width=float(r.uniform(0.25, 0.33)) * (0.94 if female else 1.0),
        upper_thickness=float(r.uniform(0.045, 0.09)),
        lower_thickness=float(r.uniform(0.07, 0.12)),
        max_open=float(r.uniform(0.24, 0.34)),
        centre_x=float(r.uniform(0.46, 0.54)),
        centre_y=float(r.uniform(0.47, 0.56)),
        skin=skin,
        lip=skin * float(r.uniform(0.55, 0.80)),
        teeth=float(r.uniform(190, 240)),
        cavity=float(r.uniform(15, 45)),
        tongue=float(r.uniform(85, 130)),
        head_motion=float(r.uniform(0.005, 0.03)),
        head_rotation_deg=float(r.uniform(0.5, 3.0)),
        light_drift=float(r.uniform(0.02, 0.10)),
        noise_std=float(r.uniform(1.0, 4.0)),
        bow=float(r.uniform(0.1, 0.4)),
    )
    style = ArticulationStyle(
        lead_s=float(r.uniform(0.04, 0.08)), open_gain=float(r.uniform(0.8, 1.15)),
        width_gain=float(r.uniform(0.8, 1.2)), round_gain=float(r.uniform(0.8, 1.15)),
        spread=float(r.uniform(0.8, 1.25)),
    )
    return Speaker(
        speaker_id=f"syn{index:03d}{'f' if female else 'm'}", split=split, sex="f" if female else "m",
        voice=voice, appearance=app, style=style, grid_fraction=float(r.uniform(0.4, 0.7)),
    )


def make_speakers(seed: int, counts: dict[str, int]) -> list[Speaker]:
    """Speakers for ``counts`` (split -> number), numbered in the order train, val, test, babble;
    sexes alternate within each split so every split is balanced."""
    out, index = [], 0
    for split in ("train", "val", "test", "babble"):
        for k in range(int(counts.get(split, 0))):
            out.append(make_speaker(seed, index, split, female=(k % 2 == 0)))
            index += 1
    return out
