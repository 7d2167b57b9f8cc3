"""Noise sources read from noise datasets on disk (nothing is downloaded).

Registered in :data:`noise_sets.NOISES` as ``factory(corpus_root=None, *, root, ...) -> NoiseSource``
(``corpus_root`` is accepted and ignored; ``root`` and the other keys come from
``ConditionsSpec.noise_options[<noise name>]``):

=====================  ==========================================================================
name                   folder layout under ``root``
=====================  ==========================================================================
``demand``             DEMAND: ``<ENV>/ch01.wav`` (``environment=DKITCHEN``; ``channel=ch01``)
``demand-<ENV>``       the same with the environment fixed (18 names, e.g. ``demand-DKITCHEN``)
``ntcd-noise``         NTCD-TIMIT noise types (``noise_type=LR|White|Cafe|Car|Babble|Street``):
                       ``<Type>.wav`` or ``<Type>/*.wav`` (folder names matched case-insensitively)
``ntcd-<Type>``        the same with the type fixed (``ntcd-LR``, ``ntcd-White``, ...)
``musan``              MUSAN noise: ``noise/{free-sound,sound-bible}/*.wav`` (``root`` may be the
                       ``musan`` folder or its ``noise`` folder; ``subset=all|free-sound|sound-bible``)
``noise-folder``       any folder of ``*.wav`` (``recursive=true``)
=====================  ==========================================================================

Each loader declares its options as a config dataclass (:class:`DemandOptions`,
:class:`NtcdNoiseOptions`, :class:`MusanOptions`, :class:`FolderOptions`, all with the
:class:`LoaderOptions` ``root``, ``train_fraction`` and ``allow_downmix``), checked by the factory
(:class:`LoaderFactory`) and, at load time, by :func:`benchmark.spec.check_spec`, which also lists
the files (:meth:`LoaderFactory.files`: the root folder exists and has the expected layout; no
audio is read) so that a wrong folder fails before any training.

(The names ``LR``, ``White``, ... without prefix are the *synthetic look-alikes* of
:mod:`noise_sets.builtin`; ``ntcd-<Type>`` are the real recordings.)

All files are read lazily: only the file headers at construction, only the samples needed per
segment afterwards (MUSAN is hours of audio). Audio at another rate is resampled to 16 kHz with
soxr; multichannel files are an error unless ``allow_downmix=true``.

**Train/test separation** follows :class:`noise_sets.builtin.RecordingNoise`: each file is cut at
``train_fraction`` (default 0.5) of its length; "train"/"val" segments come from the first part,
"test" segments from the rest, so a test segment never overlaps audio used elsewhere. The file and
the offset are chosen by a generator seeded from ``(noise name, split, seed)``, independent of
process order. When no file region of the split is long enough, the longest region is returned
whole (shorter than asked): the mixer then loops it or refuses, as for ``RecordingNoise``.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Optional

import numpy as np

from benchmark.audio_io import DataError
from benchmark.configtools import FieldError, did_you_mean
from noise_sets import NOISES
from noise_sets.base import NoiseFactory
from noise_sets.builtin import SAMPLE_RATE, NoiseError, NoiseSource

log = logging.getLogger(__name__)

DEMAND_ENVIRONMENTS = (
    "DKITCHEN", "DLIVING", "DWASHING", "NFIELD", "NPARK", "NRIVER", "OHALLWAY", "OMEETING", "OOFFICE",
    "PCAFETER", "PRESTO", "PSTATION", "SCAFE", "SPSQUARE", "STRAFFIC", "TBUS", "TCAR", "TMETRO",
)
NTCD_NOISE_TYPES = ("LR", "White", "Cafe", "Car", "Babble", "Street")
MUSAN_SUBSETS = ("free-sound", "sound-bible")


@dataclass(frozen=True)
class AudioFileInfo:
    path: Path
    sample_rate: int
    frames: int
    channels: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def probe(path: Path) -> AudioFileInfo:
    """Header of an audio file (a corrupt file is a :class:`DataError` naming it)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise DataError(path, f"cannot read audio header ({type(exc).__name__}: {exc})") from exc
    if info.frames <= 0:
        raise DataError(path, "audio file has no samples")
    return AudioFileInfo(Path(path), int(info.samplerate), int(info.frames), int(info.channels))


def read_region(info: AudioFileInfo, start_s: float, n_out: int, *, allow_downmix: bool = False) -> np.ndarray:
    """``n_out`` samples at 16 kHz starting at ``start_s`` seconds of the file (resampled with soxr
    when the file rate differs). Multichannel audio is averaged only with ``allow_downmix``."""
    import soundfile as sf

    sr = info.sample_rate
    start = int(round(start_s * sr))
    frames = int(np.ceil(n_out * sr / SAMPLE_RATE)) + (16 if sr != SAMPLE_RATE else 0)
    frames = max(1, min(frames, info.frames - start))
    try:
        x, _ = sf.read(str(info.path), start=start, frames=frames, dtype="float32", always_2d=True)
    except Exception as exc:
        raise DataError(info.path, f"cannot read audio ({type(exc).__name__}: {exc})") from exc
    if x.shape[1] > 1:
        if not allow_downmix:
            raise DataError(info.path, f"noise file has {x.shape[1]} channels; set noise_options.allow_downmix=true to average them")
        x = x.mean(axis=1, keepdims=True)
    x = x[:, 0]
    if sr != SAMPLE_RATE:
        import soxr

        x = soxr.resample(x, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
    x = x[:n_out]
    if not np.all(np.isfinite(x)):
        raise DataError(info.path, "noise audio contains NaN/inf samples")
    return np.ascontiguousarray(x, dtype=np.float32)


@dataclass
class FileNoise(NoiseSource):
    """Segments of a list of noise files on disk with disjoint train/test regions (lazy reads)."""

    files: list[Path] = field(default_factory=list)
    name: str = "files"
    train_fraction: float = 0.5
    allow_downmix: bool = False
    _infos: list[AudioFileInfo] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.files:
            raise NoiseError(f"noise {self.name!r}: no noise files")
        if not 0.0 < float(self.train_fraction) < 1.0:
            raise NoiseError(f"noise {self.name!r}: train_fraction must be in (0, 1), got {self.train_fraction}")
        self.files = sorted(Path(f) for f in self.files)
        self._infos = [probe(f) for f in self.files]
        multi = [i.path for i in self._infos if i.channels > 1]
        if multi and not self.allow_downmix:
            raise DataError(multi[0], f"noise file has {self._infos[self.files.index(multi[0])].channels} channels; set noise_options.allow_downmix=true to average them")
        resampled = sorted({i.sample_rate for i in self._infos} - {SAMPLE_RATE})
        if resampled:
            log.info("noise %s: files at %s Hz are resampled to %d Hz (soxr)", self.name, resampled, SAMPLE_RATE)

    def region_s(self, index: int, split: str) -> tuple[float, float]:
        """(start, end) in seconds of file ``index``'s region for ``split``."""
        d = self._infos[index].duration_s
        cut = d * float(self.train_fraction)
        return (cut, d) if split == "test" else (0.0, cut)

    def segment(self, n_samples: int, seed: int, split: str = "test") -> np.ndarray:
        n = self._check_n(n_samples, self.name)
        r = self._rng(seed, split)
        need_s = n / SAMPLE_RATE
        spans = [self.region_s(i, split) for i in range(len(self._infos))]
        lengths = np.array([b - a for a, b in spans])
        long_enough = np.flatnonzero(lengths >= need_s)
        if long_enough.size:
            i = int(long_enough[int(r.integers(long_enough.size))])
            a, b = spans[i]
            sr = self._infos[i].sample_rate
            # offsets on the file's own sample grid, so the segment stays inside the region
            n_src = int(np.ceil(need_s * sr))
            lo, hi = int(np.ceil(a * sr)), int(np.floor(b * sr)) - n_src
            off = int(r.integers(lo, max(lo, hi) + 1))
            x = read_region(self._infos[i], off / sr, n, allow_downmix=self.allow_downmix)
            if x.size < n:  # rounding at the very end of a resampled file
                x = np.pad(x, (0, n - x.size), mode="reflect") if x.size > 1 else np.zeros(n, np.float32)
            return x
        if lengths.max() <= 0:
            raise NoiseError(f"noise {self.name!r}: no audio in the {split!r} region of its files")
        i = int(np.argmax(lengths))
        a, b = spans[i]
        return read_region(self._infos[i], a, int((b - a) * SAMPLE_RATE), allow_downmix=self.allow_downmix)


# ---------------------------------------------------------------------------------------------
# finding the files


def _root(root: Any, noise: str, layout: str) -> Path:
    if root is None or root == "":
        raise NoiseError(f"noise {noise!r} reads a dataset on disk: set conditions.noise_options.{noise}.root "
                         f"(expected layout: {layout})")
    p = Path(os.path.expanduser(str(root)))
    if not p.is_dir():
        raise DataError(p, f"noise folder for {noise!r} not found (expected layout: {layout})")
    return p


def _child_ci(folder: Path, name: str) -> Optional[Path]:
    """``folder/name`` matched case-insensitively (exact match first)."""
    if (folder / name).exists():
        return folder / name
    for p in sorted(folder.iterdir()):
        if p.name.lower() == name.lower():
            return p
    return None


def demand_files(root: Any, environment: str = "", channel: str = "ch01", *, noise: str = "demand") -> list[Path]:
    """``<root>/<ENV>/<channel>.wav`` of DEMAND."""
    layout = DemandOptions.LAYOUT
    r = _root(root, noise, layout)
    if not environment:
        raise NoiseError(f"noise {noise!r}: set conditions.noise_options.{noise}.environment (one of {', '.join(DEMAND_ENVIRONMENTS)})")
    env = _child_ci(r, str(environment))
    if env is None or not env.is_dir():
        found = sorted(p.name for p in r.iterdir() if p.is_dir())
        raise DataError(r / str(environment), f"DEMAND environment folder not found (found: {', '.join(found) or 'none'}; expected layout: {layout})")
    f = _child_ci(env, f"{channel}.wav")
    if f is None:
        raise DataError(env / f"{channel}.wav", f"DEMAND channel file not found (expected layout: {layout})")
    return [f]


def ntcd_noise_files(root: Any, noise_type: str = "", *, noise: str = "ntcd-noise") -> list[Path]:
    """NTCD-TIMIT noise recordings of one type: ``<root>/<Type>.wav`` or ``<root>/<Type>/*.wav``."""
    layout = NtcdNoiseOptions.LAYOUT
    r = _root(root, noise, layout)
    if not noise_type:
        raise NoiseError(f"noise {noise!r}: set conditions.noise_options.{noise}.noise_type (one of {', '.join(NTCD_NOISE_TYPES)})")
    f = _child_ci(r, f"{noise_type}.wav")
    if f is not None and f.is_file():
        return [f]
    d = _child_ci(r, str(noise_type))
    if d is not None and d.is_dir():
        files = sorted(d.rglob("*.wav"))
        if files:
            return files
    raise DataError(r / str(noise_type), f"NTCD-TIMIT noise type not found (expected layout: {layout})")


def musan_files(root: Any, subset: str = "all", *, noise: str = "musan") -> list[Path]:
    """MUSAN noise wavs: ``<root>[/noise]/{free-sound,sound-bible}/*.wav``."""
    layout = MusanOptions.LAYOUT
    r = _root(root, noise, layout)
    base = r / "noise" if (r / "noise").is_dir() else r
    subsets = MUSAN_SUBSETS if subset == "all" else (subset,)
    if subset != "all" and subset not in MUSAN_SUBSETS:
        raise NoiseError(f"noise 'musan': subset must be 'all' or one of {MUSAN_SUBSETS}, got {subset!r}")
    files = [f for s in subsets if (base / s).is_dir() for f in sorted((base / s).glob("*.wav"))]
    if not files:
        raise DataError(base, f"no MUSAN noise wav files found (expected layout: {layout})")
    return files


def folder_files(root: Any, recursive: bool = True, pattern: str = "*.wav", *, noise: str = "noise-folder") -> list[Path]:
    """Every ``pattern`` file in a folder (recursively by default)."""
    r = _root(root, noise, FolderOptions.LAYOUT)
    files = sorted(r.rglob(pattern) if recursive else r.glob(pattern))
    if not files:
        raise DataError(r, f"no {pattern} files in the noise folder")
    return files


# ---------------------------------------------------------------------------------------------
# declared options


def _one_of(obj: Any, key: str, known: tuple[str, ...]) -> None:
    """Field ``key`` of ``obj`` is required and one of ``known`` (case-insensitively, as the folder
    lookup); else a :class:`FieldError`."""
    value = getattr(obj, key)
    if not value:
        raise FieldError(type(obj).__name__, key, f"required (one of {', '.join(known)})")
    if value.lower() not in {k.lower() for k in known}:
        raise FieldError(type(obj).__name__, key, f"{value!r} is not one of {', '.join(known)}"
                         f"{did_you_mean(value, known)}")


@dataclass
class LoaderOptions:
    """Options of every dataset loader (``conditions.noise_options.<noise>``)."""

    LAYOUT: ClassVar[str] = "<root>/**/*.wav"

    root: Optional[str] = None  # the dataset folder on disk (required)
    # each file is cut here: train/val segments before, test segments after (exclusive bounds)
    train_fraction: float = field(default=0.5, metadata={"range": (0.0, 1.0)})
    allow_downmix: bool = False  # average the channels of multichannel files instead of failing

    def __post_init__(self) -> None:
        if self.root is None or str(self.root) == "":
            raise FieldError(type(self).__name__, "root",
                             f"required: the folder of the noise dataset on disk (expected layout: {self.LAYOUT})")
        if not 0.0 < self.train_fraction < 1.0:
            raise FieldError(type(self).__name__, "train_fraction", f"must be in (0, 1), got {self.train_fraction}")


@dataclass
class DemandOptions(LoaderOptions):
    """DEMAND: one environment's recording of one channel."""

    LAYOUT: ClassVar[str] = "<root>/<ENV>/ch01.wav (e.g. DKITCHEN/ch01.wav)"

    environment: str = ""  # one of DEMAND_ENVIRONMENTS (any case); required
    channel: str = "ch01"

    def __post_init__(self) -> None:
        super().__post_init__()
        _one_of(self, "environment", DEMAND_ENVIRONMENTS)


@dataclass
class NtcdNoiseOptions(LoaderOptions):
    """NTCD-TIMIT noise recordings of one type."""

    LAYOUT: ClassVar[str] = "<root>/<Type>.wav or <root>/<Type>/*.wav with Type in " + ", ".join(NTCD_NOISE_TYPES)

    noise_type: str = ""  # one of NTCD_NOISE_TYPES (any case); required

    def __post_init__(self) -> None:
        super().__post_init__()
        _one_of(self, "noise_type", NTCD_NOISE_TYPES)


@dataclass
class MusanOptions(LoaderOptions):
    """MUSAN noise recordings (one subset or both)."""

    LAYOUT: ClassVar[str] = "<root>/noise/free-sound/*.wav and <root>/noise/sound-bible/*.wav (root = the musan folder)"

    subset: str = field(default="all", metadata={"choices": ("all",) + MUSAN_SUBSETS})


@dataclass
class FolderOptions(LoaderOptions):
    """Any folder of noise files."""

    recursive: bool = True
    pattern: str = "*.wav"


# ---------------------------------------------------------------------------------------------
# registration


class LoaderFactory(NoiseFactory):
    """The factory of a dataset loader: ``finder(root, <its own options>, noise=name)`` lists the
    files (:meth:`files`, also the load-time :meth:`check_data`), :class:`FileNoise` reads them."""

    def __init__(self, name: str, finder: Callable[..., list[Path]], options_cls: type,
                 fixed: Optional[Mapping[str, Any]] = None, doc: str = "") -> None:
        super().__init__(name, options_cls, fixed, doc)
        self.finder = finder
        common = {f.name for f in dataclasses.fields(LoaderOptions)}
        self.finder_keys = tuple(f.name for f in dataclasses.fields(options_cls) if f.name not in common)

    def files(self, opts: LoaderOptions) -> list[Path]:
        """The noise files ``opts`` names (a :class:`DataError` naming the path and the expected
        layout when the root folder is missing or does not have the layout)."""
        return self.finder(opts.root, **{k: getattr(opts, k) for k in self.finder_keys}, noise=self.name)

    def check_data(self, opts: LoaderOptions) -> None:
        self.files(opts)

    def build(self, corpus_root: Optional[Path], opts: LoaderOptions) -> NoiseSource:
        label = self.name
        for k in ("environment", "noise_type"):
            if k in self.finder_keys and k not in self.fixed:
                label = f"{self.name}-{getattr(opts, k)}"
        return FileNoise(files=self.files(opts), name=label, train_fraction=opts.train_fraction,
                         allow_downmix=opts.allow_downmix)


def _register_all() -> None:
    NOISES.register("demand", LoaderFactory("demand", demand_files, DemandOptions, None,
                    "DEMAND recording on disk (noise_options: root, environment, channel=ch01)."))
    for env in DEMAND_ENVIRONMENTS:
        NOISES.register(f"demand-{env}", LoaderFactory(f"demand-{env}", demand_files, DemandOptions,
                        {"environment": env}, f"DEMAND {env} recording on disk (noise_options: root)."))
    NOISES.register("ntcd-noise", LoaderFactory("ntcd-noise", ntcd_noise_files, NtcdNoiseOptions, None,
                    "NTCD-TIMIT noise recording on disk (noise_options: root, noise_type)."))
    for t in NTCD_NOISE_TYPES:
        NOISES.register(f"ntcd-{t}", LoaderFactory(f"ntcd-{t}", ntcd_noise_files, NtcdNoiseOptions,
                        {"noise_type": t}, f"NTCD-TIMIT {t} noise recording on disk (noise_options: root)."))
    NOISES.register("musan", LoaderFactory("musan", musan_files, MusanOptions, None,
                    "MUSAN noise recordings on disk (noise_options: root, subset=all|free-sound|sound-bible)."))
    NOISES.register("noise-folder", LoaderFactory("noise-folder", folder_files, FolderOptions, None,
                    "Any folder of noise wav files on disk (noise_options: root, recursive, pattern)."))


_register_all()
