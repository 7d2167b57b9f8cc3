"""Built-in noise sources (generated locally, no download) and the :class:`NoiseSource` interface.

(Over 400 lines on purpose: the :class:`NoiseSource` interface and the built-in generated
noises, each class short, registered together by one function.)

Every noise source, built in or loaded from disk (:mod:`noise_sets.loaders`), implements
``segment(n_samples, seed, split="test") -> float32 [n_samples]`` at 16 kHz.

Train/test separation (the seeds and segments used in test mixtures are never used elsewhere):

* generated noises draw from a seed space keyed by ``(noise name, split, seed)`` through
  :func:`benchmark.seeding.derive_seed`, so a "test" segment and a "train" segment can never come
  from the same random stream;
* corpus-based noises (babble, cafe, living-room) use only utterances of the corpus's ``babble``
  split (speakers that appear in no train/val/test split), and that pool is itself divided in two
  disjoint halves (alternate utterances in ``utt_id`` order): "test" draws from one half, every
  other split from the other half;
* recording-based sources (:class:`RecordingNoise`, used by the loaders) split each recording
  into disjoint regions: the first ``train_fraction`` of the samples for train/val, the rest for
  test.

A source may return *fewer* than ``n_samples`` samples only when it has less audio than that
in the split's region (a short recording); :func:`benchmark.conditions.mixing.mix` then loops it
with a crossfade if the condition allows it, or raises a clear error.

Factories are registered in :data:`noise_sets.NOISES` as
``factory(corpus_root: Path | None = None, **options) -> NoiseSource``
(:class:`noise_sets.base.SourceFactory`): the options of a generated noise are the fields of its
source dataclass here (with the ``range`` of their metadata), less ``name`` and ``corpus_root``;
they are checked at load time (``conditions.noise_options.<noise>``) and again when the source is
made. The NTCD-TIMIT-style
names ``LR``, ``White``, ``Cafe``, ``Car``, ``Babble`` and ``Street`` are aliases of the
look-alike generated noises (they are *synthetic* stand-ins, not the NTCD-TIMIT recordings).

The generated scenes (car, cafe, street, living-room) are simple synthetic approximations whose
first-order character (spectral tilt, harmonic rumble, transients, babble) follows their names;
they are not recordings and are documented as such.
"""
from __future__ import annotations

import dataclasses
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from benchmark.seeding import derive_seed
from noise_sets import NOISES
from noise_sets.base import NoiseError, NoiseOptionError, SourceFactory  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
NOISE_SPLITS = ("train", "val", "test")
TARGET_RMS = 0.1  # every generated segment is scaled to this RMS (mixing rescales anyway)


def check_split(split: str, source: str) -> str:
    """Validate a noise split name."""
    if split not in NOISE_SPLITS:
        raise NoiseError(f"noise {source!r}: unknown split {split!r} (known: {', '.join(NOISE_SPLITS)})")
    return split


def _normalise(x: np.ndarray, rms: float = TARGET_RMS) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    r = float(np.sqrt(np.mean(x**2))) if x.size else 0.0
    if r <= 0 or not np.isfinite(r):
        return x.astype(np.float32)
    return (x * (rms / r)).astype(np.float32)


class NoiseSource(ABC):
    """A named source of 16 kHz noise segments with disjoint train/test segment spaces."""

    name: str = "noise"
    sample_rate: int = SAMPLE_RATE

    @abstractmethod
    def segment(self, n_samples: int, seed: int, split: str = "test") -> np.ndarray:
        """A float32 segment of ``n_samples`` (fewer only for a short recording), chosen by ``seed``
        from the ``split``'s own seed space / region."""

    def describe(self) -> dict[str, Any]:
        """Settings of this source (for run records)."""
        out: dict[str, Any] = {"name": self.name, "class": type(self).__name__}
        if dataclasses.is_dataclass(self):
            for f in dataclasses.fields(self):
                v = getattr(self, f.name)
                if isinstance(v, (int, float, str, bool, type(None))) or f.name == "corpus_root":
                    out[f.name] = str(v) if isinstance(v, Path) else v
        return out

    def _rng(self, seed: int, split: str) -> np.random.Generator:
        check_split(split, self.name)
        return np.random.default_rng(derive_seed("noise", self.name, split, int(seed)))

    @staticmethod
    def _check_n(n_samples: int, name: str) -> int:
        n = int(n_samples)
        if n <= 0:
            raise NoiseError(f"noise {name!r}: n_samples must be positive, got {n_samples}")
        return n


# ---------------------------------------------------------------------------------------------
# spectral shaping helpers (pure)


def shaped_noise(n: int, rng: np.random.Generator, gain: Callable[[np.ndarray], np.ndarray], sr: int = SAMPLE_RATE) -> np.ndarray:
    """White Gaussian noise shaped in the frequency domain by the amplitude ``gain(freqs_hz)``."""
    white = rng.standard_normal(n)
    spec = np.fft.rfft(white)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    spec *= gain(f)
    return np.fft.irfft(spec, n)


def _power_law(exponent: float, f_low: float = 20.0) -> Callable[[np.ndarray], np.ndarray]:
    """Amplitude gain for a 1/f**exponent *power* spectrum, flat below ``f_low`` (no DC drift)."""

    def g(f: np.ndarray) -> np.ndarray:
        out = np.maximum(f, f_low) ** (-exponent / 2.0)
        out[0] = 0.0
        return out

    return g


def _bandpass(lo: float, hi: float, order: int = 4) -> Callable[[np.ndarray], np.ndarray]:
    """Butterworth-like magnitude response (zero phase) between ``lo`` and ``hi`` Hz."""

    def g(f: np.ndarray) -> np.ndarray:
        f = np.maximum(f, 1e-3)
        h = 1.0 / np.sqrt(1.0 + (f / hi) ** (2 * order))
        if lo > 0:
            h = h / np.sqrt(1.0 + (lo / f) ** (2 * order))
        return h

    return g


def _lowpass(x: np.ndarray, cutoff: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    spec = np.fft.rfft(x)
    spec *= _bandpass(0.0, cutoff)(np.fft.rfftfreq(x.size, 1.0 / sr))
    return np.fft.irfft(spec, x.size)


def _smooth_envelope(n: int, rng: np.random.Generator, rate_hz: float, depth: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A slowly varying positive envelope (1 +/- depth) with fluctuations below ``rate_hz``."""
    e = _lowpass(rng.standard_normal(n), rate_hz, sr)
    e /= max(float(np.max(np.abs(e))), 1e-12)
    return 1.0 + depth * e


# ---------------------------------------------------------------------------------------------
# generated, corpus-free noises


@dataclass
class ColouredNoise(NoiseSource):
    """Gaussian noise with a 1/f**exponent power spectrum (0 white, 1 pink, 2 brown)."""

    exponent: float = 0.0
    name: str = "white"

    def segment(self, n_samples: int, seed: int, split: str = "test") -> np.ndarray:
        n = self._check_n(n_samples, self.name)
        r = self._rng(seed, split)
        if self.exponent == 0.0:
            return _normalise(r.standard_normal(n))
        return _normalise(shaped_noise(n, r, _power_law(self.exponent)))


@dataclass
class CarNoise(NoiseSource):
    """Car-like cabin noise: low-frequency rumble (brown noise below ~250 Hz), engine firing harmonics
    with slow RPM drift, and a little broadband road/wind noise (synthetic)."""

    name: str = "car"
    # 4-cylinder: firing frequency = 2 * rpm / 60
    rpm_range: tuple[float, float] = field(default=(1200.0, 3000.0), metadata={"range": (300.0, 12000.0)})
    n_harmonics: int = field(default=8, metadata={"range": (1, 100)})
    harmonic_level_db: float = field(default=-6.0, metadata={"range": (-80.0, 40.0)})  # relative to the rumble

    def segment(self, n_samples: int, seed: int, split: str = "test") -> np.ndarray:
        n = self._check_n(n_samples, self.name)
        r = self._rng(seed, split)
        sr = self.sample_rate
        rumble = _normalise(shaped_noise(n, r, lambda f: _power_law(2.0)(f) * _bandpass(15.0, 250.0)(f)), 1.0)
        road = _normalise(shaped_noise(n, r, lambda f: _power_law(1.0)(f) * _bandpass(100.0, 3000.0)(f)), 1.0)
        rpm0 = r.uniform(*self.rpm_range)
        drift = _smooth_envelope(n, r, 0.3, 0.15, sr)  # +/- 15 % RPM wander
        f0 = 2.0 * rpm0 / 60.0 * drift
        phase = 2 * np.pi * np.cumsum(f0) / sr
        eng = np.zeros(n)
        for k in range(1, self.n_harmonics + 1):
            eng += (1.0 / k) * np.sin(k * phase + r.uniform(0, 2 * np.pi))
        eng = _normalise(eng, 1.0).astype(np.float64) * 10 ** (self.harmonic_level_db / 20)
        return _normalise(rumble + eng + 0.3 * road)


@dataclass
class StreetNoise(NoiseSource):
    """Street-like scene: traffic rumble plus passing vehicles (band-limited noise bursts with a rise
    and fall over 2-5 s) and occasional horn toots (synthetic)."""

    name: str = "street"
    passes_per_minute: float = field(default=12.0, metadata={"range": (0.0, 600.0)})
    horns_per_minute: float = field(default=2.0, metadata={"range": (0.0, 600.0)})

    def segment(self, n_samples: int, seed: int, split: str = "test") -> np.ndarray:
        n = self._check_n(n_samples, self.name)
        r = self._rng(seed, split)
        sr = self.sample_rate
        bed = _normalise(shaped_noise(n, r, lambda f: _power_law(1.5)(f) * _bandpass(20.0, 4000.0)(f)), 1.0)
        bed = bed * _smooth_envelope(n, r, 0.5, 0.3, sr)
        out = bed.astype(np.float64)
        dur = n / sr
        t = np.arange(n) / sr
        for _ in range(r.poisson(self.passes_per_minute * dur / 60.0 + 0.5)):
            centre, width = r.uniform(-1.0, dur + 1.0), r.uniform(1.0, 2.5)
            env = np.exp(-0.5 * ((t - centre) / (width / 2.5)) ** 2)
            if env.max() < 1e-3:
                continue
            hi = r.uniform(1500.0, 5000.0)
            car = _normalise(shaped_noise(n, r, lambda f, hi=hi: _power_law(1.0)(f) * _bandpass(60.0, hi)(f)), 1.0)
            out += r.uniform(1.0, 3.0) * env * car
        for _ in range(r.poisson(self.horns_per_minute * dur / 60.0)):
            start = int(r.uniform(0, max(dur - 0.5, 0.01)) * sr)
            length = int(r.uniform(0.2, 0.6) * sr)
            seg = np.arange(min(length, n - start)) / sr
            f0 = r.uniform(350.0, 500.0)
            tone = sum(np.sin(2 * np.pi * k * f0 * seg) / k for k in range(1, 6))
            ramp = np.minimum(1.0, np.minimum(seg, seg[::-1]) / 0.02) if seg.size else seg
            out[start:start + seg.size] += 1.5 * tone * ramp
        return _normalise(out)


# ---------------------------------------------------------------------------------------------
# corpus-based noises


@dataclass
class _BabblePool:
    """Audio of the corpus's ``babble`` split, divided into two disjoint halves (loaded lazily)."""

    corpus_root: Path
    max_utterances: int = 400
    _cache: dict[str, list[tuple[str, np.ndarray]]] = field(default_factory=dict, repr=False)

    def pool(self, split: str) -> list[tuple[str, np.ndarray]]:
        key = "test" if split == "test" else "train"
        if key not in self._cache:
            self._cache.update(self._load())
        return self._cache[key]

    def _load(self) -> dict[str, list[tuple[str, np.ndarray]]]:
        from benchmark.audio_io import read_audio
        from benchmark.corpus.manifest import read_manifest

        df = read_manifest(self.corpus_root)
        df = df[df["split"] == "babble"].sort_values("utt_id")
        if len(df) < 2:
            raise NoiseError(
                f"corpus {self.corpus_root}: babble noise needs at least 2 utterances in the 'babble' split "
                f"(speakers reserved for babble, in no test split); found {len(df)}"
            )
        df = df.head(self.max_utterances)
        items = [(str(r.speaker), read_audio(self.corpus_root / r.audio_path)) for r in df.itertuples()]
        # alternate utterances: even positions -> test pool, odd -> train/val pool (disjoint)
        return {"test": items[0::2], "train": items[1::2]}


def babble_mix(pool: list[tuple[str, np.ndarray]], n: int, n_talkers: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of ``n_talkers`` talkers, each a stream of random utterances from ``pool`` at equal RMS,
    starting at a random offset; talkers come from different speakers where the pool allows it."""
    speakers = sorted({s for s, _ in pool})
    by_spk = {s: [a for sp, a in pool if sp == s] for s in speakers}
    order = list(rng.permutation(len(speakers)))
    out = np.zeros(n)
    for k in range(n_talkers):
        utts = by_spk[speakers[order[k % len(speakers)]]]
        stream: list[np.ndarray] = []
        total, need = 0, n + SAMPLE_RATE
        while total < need:
            a = utts[int(rng.integers(len(utts)))].astype(np.float64)
            a = a / max(float(np.sqrt(np.mean(a**2))), 1e-9)
            stream.append(a)
            total += a.size
        s = np.concatenate(stream)
        off = int(rng.integers(0, s.size - n + 1))
        out += s[off:off + n]
    return out


@dataclass
class BabbleNoise(NoiseSource):
    """Babble: a sum of ``n_talkers`` utterances from the corpus's babble-only speakers (never in a
    test split); needs ``corpus_root``."""

    corpus_root: Optional[Path] = None
    n_talkers: int = field(default=6, metadata={"range": (1, 1000)})
    max_utterances: int = field(default=400, metadata={"range": (2, None)})  # the pool needs 2
    name: str = "babble"
    _pool: Optional[_BabblePool] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.corpus_root is None:
            raise NoiseError(f"noise {self.name!r} is made from the corpus's babble speakers: pass corpus_root")
        self.corpus_root = Path(self.corpus_root)
        if not int(self.n_talkers) >= 1:
            raise NoiseError(f"noise {self.name!r}: n_talkers must be >= 1, got {self.n_talkers}")
        self._pool = _BabblePool(self.corpus_root, self.max_utterances)

    def talkers(self, n: int, rng: np.random.Generator, split: str, n_talkers: Optional[int] = None) -> np.ndarray:
        assert self._pool is not None
        return babble_mix(self._pool.pool(split), n, int(n_talkers or self.n_talkers), rng)

    def segment(self, n_samples: int, seed: int, split: str = "test") -> np.ndarray:
        n = self._check_n(n_samples, self.name)
        r = self._rng(seed, split)
        return _normalise(self.talkers(n, r, split))


@dataclass
class CafeNoise(BabbleNoise):
    """Cafe-like scene: babble of many talkers plus transient clatter (dishes and cutlery as damped
    2-7 kHz resonances, ~1.5 per second) and a pink background (synthetic; needs ``corpus_root``)."""

    n_talkers: int = field(default=10, metadata={"range": (1, 1000)})
    clatter_per_s: float = field(default=1.5, metadata={"range": (0.0, 100.0)})
    clatter_level_db: float = field(default=0.0, metadata={"range": (-80.0, 40.0)})  # peak of a clatter event relative to the babble RMS, + up to 12 dB
    name: str = "cafe"

    def segment(self, n_samples: int, seed: int, split: str = "test") -> np.ndarray:
        n = self._check_n(n_samples, self.name)
        r = self._rng(seed, split)
        sr = self.sample_rate
        out = _normalise(self.talkers(n, r, split), 1.0).astype(np.float64)
        out += 0.3 * _normalise(shaped_noise(n, r, _power_law(1.0)), 1.0)
        for _ in range(r.poisson(self.clatter_per_s * n / sr)):
            start = int(r.integers(0, n))
            length = min(int(r.uniform(0.03, 0.2) * sr), n - start)
            t = np.arange(length) / sr
            ev = np.zeros(length)
            for _m in range(int(r.integers(2, 5))):  # a few inharmonic resonances
                ev += np.sin(2 * np.pi * r.uniform(2000.0, 7000.0) * t + r.uniform(0, 2 * np.pi))
            ev *= np.exp(-t / r.uniform(0.01, 0.05))
            amp = 10 ** ((self.clatter_level_db + r.uniform(0.0, 12.0)) / 20)
            out[start:start + length] += amp * ev / max(float(np.max(np.abs(ev))), 1e-9)
        return _normalise(out)


_NOTE_HZ = 440.0 * 2.0 ** ((np.arange(-21, 16)) / 12.0)  # A2 .. C6 (equal temperament)


@dataclass
class LivingRoomNoise(BabbleNoise):
    """Living-room-like scene: TV babble (2 talkers band-limited 200-5000 Hz like a TV speaker) plus
    music-like tones (harmonic notes with attack/decay on a scale) and a low room hum (synthetic;
    needs ``corpus_root``)."""

    n_talkers: int = field(default=2, metadata={"range": (1, 1000)})
    music_level_db: float = field(default=-3.0, metadata={"range": (-80.0, 40.0)})
    name: str = "living-room"

    def segment(self, n_samples: int, seed: int, split: str = "test") -> np.ndarray:
        n = self._check_n(n_samples, self.name)
        r = self._rng(seed, split)
        sr = self.sample_rate
        tv = self.talkers(n, r, split)
        spec = np.fft.rfft(tv) * _bandpass(200.0, 5000.0)(np.fft.rfftfreq(n, 1.0 / sr))
        tv = _normalise(np.fft.irfft(spec, n), 1.0).astype(np.float64)
        music = np.zeros(n)
        pos = 0
        while pos < n:
            dur = int(r.uniform(0.15, 0.6) * sr)
            length = min(dur + int(0.3 * sr), n - pos)
            t = np.arange(length) / sr
            f0 = _NOTE_HZ[int(r.integers(_NOTE_HZ.size))]
            note = sum(np.sin(2 * np.pi * k * f0 * t) * 0.6 ** (k - 1) for k in range(1, 5))
            env = np.minimum(t / 0.01, 1.0) * np.exp(-t / r.uniform(0.15, 0.5))
            music[pos:pos + length] += note * env
            pos += dur
        music = _normalise(music, 1.0).astype(np.float64) * 10 ** (self.music_level_db / 20)
        hum = 0.1 * _normalise(shaped_noise(n, r, lambda f: _power_law(2.0)(f) * _bandpass(20.0, 300.0)(f)), 1.0)
        return _normalise(tv + music + hum)


@dataclass
class SpeechShapedNoise(NoiseSource):
    """Speech-shaped noise: Gaussian noise with the long-term average spectrum (mean |STFT|^2) of the
    corpus's train utterances; needs ``corpus_root``."""

    corpus_root: Optional[Path] = None
    max_utterances: int = field(default=200, metadata={"range": (1, None)})
    name: str = "speech-shaped"
    _ltas: Optional[np.ndarray] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.corpus_root is None:
            raise NoiseError(f"noise {self.name!r} follows the corpus's long-term spectrum: pass corpus_root")
        self.corpus_root = Path(self.corpus_root)

    def ltas(self) -> np.ndarray:
        """Long-term average power spectrum [n_freq] of the train split (mean |STFT|^2, models.spectral)."""
        if self._ltas is None:
            from benchmark.audio_io import read_audio
            from benchmark.corpus.manifest import read_manifest
            from models.spectral import power_spectrogram

            df = read_manifest(self.corpus_root)
            df = df[df["split"] == "train"].sort_values("utt_id").head(self.max_utterances)
            if df.empty:
                raise NoiseError(f"corpus {self.corpus_root}: speech-shaped noise needs a 'train' split; none found")
            acc, frames = None, 0
            for row in df.itertuples():
                p = power_spectrogram(read_audio(self.corpus_root / row.audio_path)).double().numpy()
                acc = p.sum(0) if acc is None else acc + p.sum(0)
                frames += p.shape[0]
            self._ltas = acc / frames
        return self._ltas

    def segment(self, n_samples: int, seed: int, split: str = "test") -> np.ndarray:
        n = self._check_n(n_samples, self.name)
        r = self._rng(seed, split)
        ltas = self.ltas()
        grid = np.linspace(0.0, self.sample_rate / 2, ltas.size)
        amp = np.sqrt(ltas)

        def g(f: np.ndarray) -> np.ndarray:
            out = np.interp(f, grid, amp)
            out[0] = 0.0
            return out

        return _normalise(shaped_noise(n, r, g))


# ---------------------------------------------------------------------------------------------
# recordings (used by noise_sets.loaders)


@dataclass
class RecordingNoise(NoiseSource):
    """Segments of one or more recordings: train/val draw from the first ``train_fraction`` of each
    recording, test from the rest (disjoint regions). Used by the on-disk loaders."""

    recordings: list[np.ndarray] = field(default_factory=list)
    name: str = "recording"
    train_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not self.recordings:
            raise NoiseError(f"noise {self.name!r}: no recordings")
        if not 0.0 < self.train_fraction < 1.0:
            raise NoiseError(f"noise {self.name!r}: train_fraction must be in (0, 1), got {self.train_fraction}")
        self.recordings = [np.asarray(x, dtype=np.float32).reshape(-1) for x in self.recordings]

    def region(self, index: int, split: str) -> np.ndarray:
        """The part of recording ``index`` reserved for ``split``."""
        x = self.recordings[index]
        cut = int(round(x.size * self.train_fraction))
        return x[cut:] if split == "test" else x[:cut]

    def segment(self, n_samples: int, seed: int, split: str = "test") -> np.ndarray:
        n = self._check_n(n_samples, self.name)
        r = self._rng(seed, split)
        lengths = np.array([self.region(i, split).size for i in range(len(self.recordings))])
        if lengths.max() == 0:
            raise NoiseError(f"noise {self.name!r}: no audio in the {split!r} region of its recordings")
        long_enough = np.flatnonzero(lengths >= n)
        if long_enough.size:
            i = int(long_enough[int(r.integers(long_enough.size))])
            x = self.region(i, split)
            off = int(r.integers(0, x.size - n + 1))
            return x[off:off + n].copy()
        # every region is shorter than asked: return the longest whole (the mixer loops or refuses)
        return self.region(int(np.argmax(lengths)), split).copy()


# ---------------------------------------------------------------------------------------------
# registration


_BUILTINS: dict[str, tuple[type, dict[str, Any]]] = {
    "white": (ColouredNoise, {"exponent": 0.0, "name": "white"}),
    "pink": (ColouredNoise, {"exponent": 1.0, "name": "pink"}),
    "brown": (ColouredNoise, {"exponent": 2.0, "name": "brown"}),
    "speech-shaped": (SpeechShapedNoise, {"name": "speech-shaped"}),
    "babble": (BabbleNoise, {"name": "babble"}),
    "car": (CarNoise, {"name": "car"}),
    "cafe": (CafeNoise, {"name": "cafe"}),
    "street": (StreetNoise, {"name": "street"}),
    "living-room": (LivingRoomNoise, {"name": "living-room"}),
}
_DOCS = {
    "white": "White Gaussian noise (flat spectrum; generated).",
    "pink": "Pink noise (1/f power spectrum, flat below 20 Hz; generated).",
    "brown": "Brown noise (1/f^2 power spectrum, flat below 20 Hz; generated).",
}
# NTCD-TIMIT-style names used by the paper-table preset: synthetic look-alikes, not the recordings
ALIASES = {"LR": "living-room", "White": "white", "Cafe": "cafe", "Car": "car", "Babble": "babble", "Street": "street"}


def _register_all() -> None:
    for name, (cls, fixed) in _BUILTINS.items():
        NOISES.register(name, SourceFactory(name, cls, fixed, _DOCS.get(name, "")))
    for alias, target in ALIASES.items():
        cls, fixed = _BUILTINS[target]
        doc = f"NTCD-TIMIT-style name: synthetic look-alike, alias of '{target}'."
        NOISES.register(alias, SourceFactory(alias, cls, fixed, doc))


_register_all()


def make_noise(name: str, corpus_root: Path | str | None = None, **options: Any) -> NoiseSource:
    """Build the noise source registered as ``name``."""
    return NOISES.get(name)(corpus_root=corpus_root, **options)
