"""espeak-ng phoneme mnemonics -> viseme classes, per-viseme articulation targets, and smooth
coarticulated articulation trajectories.

The viseme inventory (14 classes incl. silence) follows the usual consonant groups of MPEG-4
style viseme sets (bilabials, labiodentals, dentals, alveolars, sibilants, postalveolars,
velars, /r/) plus five vowel shapes (open, mid-spread, close-spread, mid-rounded, close-rounded).
Diphthongs are split into two halves (``aI`` -> AA then IY).

Coarticulation uses a dominance-function blend in the spirit of Cohen & Massaro (1993): each
viseme segment pulls every articulation parameter towards its target with a weight that decays
exponentially away from the segment centre; bilabial closure and labiodental contact are strongly
dominant, lip rounding spreads far (anticipatory rounding). The trajectory is evaluated
``lead_s`` seconds ahead of the audio, so the mouth moves slightly before the sound.
This is a synthetic stand-in for real articulation, not a measured model.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

SIL = "sil"
VISEMES = ("sil", "PBM", "FV", "TH", "TDNL", "SZ", "SH", "KG", "R", "AA", "EH", "IY", "OH", "UW")
PARAMS = ("open", "width", "round", "teeth", "tongue")

# target per viseme: open (0 closed..1 wide), width (0 narrow..1 spread), round (protrusion),
# teeth visibility, tongue visibility
TARGETS: dict[str, tuple[float, float, float, float, float]] = {
    "sil": (0.04, 0.50, 0.15, 0.00, 0.00),
    "PBM": (0.00, 0.50, 0.10, 0.00, 0.00),
    "FV": (0.10, 0.52, 0.00, 0.95, 0.00),
    "TH": (0.28, 0.55, 0.00, 0.60, 1.00),
    "TDNL": (0.28, 0.56, 0.05, 0.55, 0.55),
    "SZ": (0.14, 0.64, 0.00, 0.95, 0.05),
    "SH": (0.22, 0.38, 0.80, 0.75, 0.05),
    "KG": (0.38, 0.52, 0.05, 0.30, 0.15),
    "R": (0.24, 0.38, 0.65, 0.30, 0.15),
    "AA": (1.00, 0.58, 0.05, 0.35, 0.40),
    "EH": (0.62, 0.66, 0.00, 0.50, 0.35),
    "IY": (0.30, 0.80, 0.00, 0.80, 0.15),
    "OH": (0.72, 0.36, 0.80, 0.20, 0.25),
    "UW": (0.20, 0.22, 1.00, 0.05, 0.00),
}

# dominance strength per viseme (how strongly it reaches its target) and its spread factor
DOMINANCE: dict[str, float] = {
    "sil": 0.6, "PBM": 6.0, "FV": 4.0, "TH": 2.0, "TDNL": 0.8, "SZ": 1.5, "SH": 2.5, "KG": 0.6,
    "R": 1.5, "AA": 1.5, "EH": 1.2, "IY": 1.2, "OH": 1.8, "UW": 2.5,
}
# rounding is anticipated over longer spans than opening
PARAM_SPREAD = {"open": 1.0, "width": 1.6, "round": 2.2, "teeth": 1.0, "tongue": 0.8}

_BASE_MAP: dict[str, str] = {}
for _vis, _phones in {
    "sil": ["_", "_:", "_!", "_|", "?", ";", ""],
    "PBM": ["p", "b", "m"],
    "FV": ["f", "v"],
    "TH": ["T", "D"],
    "TDNL": ["t", "d", "n", "l", "@L", "L"],
    "SZ": ["s", "z"],
    "SH": ["S", "Z", "tS", "dZ"],
    "KG": ["k", "g", "N", "h", "x", "j"],
    "R": ["r", "3:", "@r", "3", "IR", "VR", "A@", "O@", "o@", "e@", "U@", "i@", "3:r"],
    "AA": ["a", "A:", "aa", "A", "V", "a:"],
    "EH": ["e", "E", "@", "E:", "eI"],
    "IY": ["i", "i:", "I", "y"],
    "OH": ["0", "O:", "O", "oU", "OI", "o", "o:"],
    "UW": ["u:", "U", "u", "w", "W"],
}.items():
    for _p in _phones:
        _BASE_MAP[_p] = _vis

# diphthongs: (first viseme, second viseme)
DIPHTHONGS: dict[str, tuple[str, str]] = {
    "aI": ("AA", "IY"), "aU": ("AA", "UW"), "eI": ("EH", "IY"), "oU": ("OH", "UW"), "OI": ("OH", "IY"),
    "i@": ("IY", "EH"), "e@": ("EH", "EH"), "U@": ("UW", "EH"), "aI@": ("AA", "EH"), "aU@": ("AA", "EH"),
    "O@": ("OH", "R"), "o@": ("OH", "R"), "A@": ("AA", "R"),
}


def normalise_phone(mnemonic: str) -> str:
    """Strip espeak stress marks (``'`` ``,``), variant digits and suffixes (``#`` ``-`` ``[``)."""
    p = mnemonic.strip().lstrip("',%=")
    p = re.sub(r"[#\-\[\]]+$", "", p)
    p = re.sub(r"\d+$", "", p)
    return p


def phone_to_viseme(mnemonic: str) -> str:
    """The viseme class of an espeak phoneme mnemonic (unknowns: a guess by its first letter)."""
    p = normalise_phone(mnemonic)
    if p.startswith("_") or p == "":
        return SIL
    if p in DIPHTHONGS:
        return DIPHTHONGS[p][0]
    if p in _BASE_MAP:
        return _BASE_MAP[p]
    if p[:2] in _BASE_MAP:
        return _BASE_MAP[p[:2]]
    if p[:1] in _BASE_MAP:
        return _BASE_MAP[p[:1]]
    log.debug("unknown espeak phoneme %r: mapped to EH", mnemonic)
    return "EH"


def phones_to_visemes(phones: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Phone segments -> viseme segments (diphthongs split in two halves, equal neighbours merged)."""
    out: list[list] = []
    for start, end, ph in phones:
        base = normalise_phone(ph)
        parts = [(start, end, phone_to_viseme(ph))]
        if base in DIPHTHONGS:
            mid = 0.5 * (start + end)
            a, b = DIPHTHONGS[base]
            parts = [(start, mid, a), (mid, end, b)]
        for s, e, v in parts:
            if out and out[-1][2] == v and abs(out[-1][1] - s) < 1e-9:
                out[-1][1] = e
            else:
                out.append([s, e, v])
    out = _absorb_short_pauses(out)
    return [(float(s), float(e), str(v)) for s, e, v in out]


def _absorb_short_pauses(segs: list[list], min_pause_s: float = 0.06) -> list[list]:
    """Word-boundary pauses shorter than ``min_pause_s`` between speech do not close the mouth:
    their time is split between the neighbouring visemes."""
    out: list[list] = []
    i = 0
    while i < len(segs):
        s, e, v = segs[i]
        if v == SIL and 0 < i < len(segs) - 1 and e - s < min_pause_s and out and segs[i + 1][2] != SIL:
            mid = 0.5 * (s + e)
            out[-1][1] = mid
            nxt = segs[i + 1]
            if nxt[2] == out[-1][2]:
                out[-1][1] = nxt[1]
            else:
                out.append([mid, nxt[1], nxt[2]])
            i += 2
            continue
        out.append([s, e, v])
        i += 1
    return out


def viseme_at(visemes: list[tuple[float, float, str]], times: np.ndarray) -> np.ndarray:
    """The viseme label in force at each of ``times`` (``sil`` outside all segments)."""
    labels = np.full(len(times), SIL, dtype=object)
    for s, e, v in visemes:
        labels[(times >= s) & (times < e)] = v
    return labels


@dataclass(frozen=True)
class ArticulationStyle:
    """Per-speaker articulation: how far the mouth opens, spreads and rounds, and the visual lead."""

    lead_s: float = 0.06
    open_gain: float = 1.0
    width_gain: float = 1.0
    round_gain: float = 1.0
    spread: float = 1.0  # scales the coarticulation time constants


def _split_long(visemes: list[tuple[float, float, str]], max_len: float = 0.12) -> list[tuple[float, float, str]]:
    """Cut long segments into pieces of at most ``max_len`` so a long pause relaxes the mouth."""
    out = []
    for s, e, v in visemes:
        n = max(1, int(np.ceil((e - s) / max_len - 1e-9)))
        edges = np.linspace(s, e, n + 1)
        out.extend((float(a), float(b), v) for a, b in zip(edges[:-1], edges[1:]))
    return out


def articulation_trajectory(
    visemes: list[tuple[float, float, str]], times: np.ndarray, style: ArticulationStyle = ArticulationStyle()
) -> dict[str, np.ndarray]:
    """Articulation parameters (``PARAMS``, each in [0, 1]) at ``times`` (seconds of the audio clock).

    The mouth is evaluated at ``times + style.lead_s`` (it anticipates the sound).
    """
    t = np.asarray(times, dtype=np.float64) + style.lead_s
    segs = _split_long(visemes) if visemes else [(-1.0, 1e9, SIL)]
    centres = np.array([0.5 * (s + e) for s, e, _ in segs])
    half = np.array([0.5 * (e - s) for s, e, _ in segs])
    alpha = np.array([DOMINANCE[v] for _, _, v in segs])
    targets = np.array([TARGETS[v] for _, _, v in segs])  # [S, P]
    dist = np.maximum(np.abs(t[:, None] - centres[None, :]) - 0.5 * half[None, :], 0.0)  # flat top
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(PARAMS):
        tau = (0.035 + 0.25 * half) * PARAM_SPREAD[name] * style.spread
        dom = alpha[None, :] * np.exp(-dist / tau[None, :])
        val = (dom @ targets[:, j]) / np.maximum(dom.sum(axis=1), 1e-12)
        out[name] = val
    neutral = np.array(TARGETS[SIL])
    out["open"] = np.clip(out["open"] * style.open_gain, 0.0, 1.2)
    out["width"] = np.clip(neutral[1] + (out["width"] - neutral[1]) * style.width_gain, 0.0, 1.0)
    out["round"] = np.clip(out["round"] * style.round_gain, 0.0, 1.0)
    return out
