"""Sentence generators: a GRID-like command grammar and a freer declarative grammar.

GRID (Cooke et al. 2006) sentences are ``command colour preposition letter digit adverb``
("bin blue at f two now"). The free generator composes short English sentences from a small
vocabulary chosen to cover labial, rounded, spread and open mouth shapes.
"""
from __future__ import annotations

import numpy as np

from benchmark.registry import Registry

GRID_WORDS = {
    "command": ["bin", "lay", "place", "set"],
    "colour": ["blue", "green", "red", "white"],
    "preposition": ["at", "by", "in", "with"],
    # GRID letters (no "w"); "a" is written "eh" so espeak says the letter name, not the article
    "letter": ["eh"] + list("bcdefghijklmnopqrstuvxyz"),
    "digit": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    "adverb": ["again", "now", "please", "soon"],
}

_FREE = {
    "det": ["the", "a", "my", "your", "our", "that", "this", "every"],
    "adj": ["big", "small", "old", "young", "blue", "yellow", "happy", "quiet", "warm", "cool", "brown",
            "open", "round", "smooth", "purple", "busy", "famous", "gentle", "wooden", "bright"],
    "noun": ["boat", "mother", "farmer", "window", "puppy", "bottle", "teacher", "garden", "shoe", "moon",
             "pilot", "table", "ocean", "movie", "apple", "horse", "village", "judge", "cheese", "voice",
             "baby", "food", "box", "wolf", "fish", "church", "bridge", "music", "rope", "zoo"],
    "verb": ["moves", "opens", "watches", "pulls", "follows", "reaches", "pushes", "finds", "shows",
             "loves", "fixes", "paints", "chooses", "shapes", "washes", "buys", "throws", "covers"],
    "adv": ["slowly", "quickly", "today", "often", "every morning", "before noon", "at home", "very well",
            "by the road", "in the water", "on the beach", "with a smile"],
}


def grid_sentence(rng: np.random.Generator) -> str:
    """One GRID-grammar sentence (six words)."""
    words = [GRID_WORDS[k][rng.integers(len(GRID_WORDS[k]))] for k in GRID_WORDS]
    return " ".join(words)


def _np(*words: str) -> str:
    """A noun phrase; "a" becomes "an" before a vowel."""
    w = list(words)
    if w[0] == "a" and w[1][0] in "aeiou":
        w[0] = "an"
    return " ".join(w)


def free_sentence(rng: np.random.Generator) -> str:
    """One short declarative sentence from a template grammar (4 to 10 words)."""
    pick = lambda k: _FREE[k][rng.integers(len(_FREE[k]))]  # noqa: E731
    subj = _np(pick("det"), pick("adj"), pick("noun")) if rng.random() < 0.6 else _np(pick("det"), pick("noun"))
    obj = _np(pick("det"), pick("noun"))
    s = f"{subj} {pick('verb')} {obj}"
    if rng.random() < 0.6:
        s += f" {pick('adv')}"
    return s[0].upper() + s[1:] + "."


SENTENCES: Registry = Registry("sentence generator")
SENTENCES.register("grid", grid_sentence)
SENTENCES.register("free", free_sentence)
