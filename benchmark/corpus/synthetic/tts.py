"""Offline text-to-speech with phoneme timings through libespeak-ng (ctypes).

The shared library and its data come from the PyPI package ``espeakng-loader``. espeak-ng keeps
one global C state per process, so :class:`EspeakEngine` must be created once per process and
used from one thread only; the corpus builder runs it inside joblib/loky worker processes.

espeak-ng also keeps synthesis state *between* calls (glottal phase, flutter and noise
generators), so the same text synthesised twice in one process gives slightly different
samples. For byte-exact determinism :func:`synthesize_isolated` forks a short-lived child per
utterance from a process that has never synthesised: every utterance starts from the same
pristine library state, with ``espeak_ng_SetRandSeed`` set from the utterance's seed.

The layout of ``espeak_EVENT`` follows espeak-ng's ``speak_lib.h``::

    typedef struct {
        espeak_EVENT_TYPE type; unsigned int unique_identifier; int text_position; int length;
        int audio_position;   /* ms */
        int sample;           /* sample index of the event */
        void *user_data;
        union { int number; const char *name; char string[8]; } id;   /* phoneme mnemonic */
    } espeak_EVENT;
"""
from __future__ import annotations

import ctypes
import logging
import os
import threading
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

# speak_lib.h constants
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_DONT_EXIT = 0x8000
POS_CHARACTER = 1
CHARS_UTF8 = 1
EVENT_LIST_TERMINATED = 0
EVENT_PHONEME = 7
PARAM_RATE, PARAM_VOLUME, PARAM_PITCH, PARAM_RANGE, PARAM_WORDGAP = 1, 2, 3, 4, 7


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
        ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p), ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class TTSError(RuntimeError):
    """espeak-ng could not be loaded or failed to synthesise a text."""


@dataclass(frozen=True)
class VoiceSettings:
    """One fixed espeak-ng voice: ``voice`` like ``en-us+f3`` plus prosody parameters."""

    voice: str = "en-us"
    rate: int = 165  # words per minute (80..450)
    pitch: int = 50  # 0..100
    range: int = 50  # pitch range 0..100
    wordgap: int = 0  # extra pause between words, units of 10 ms


@dataclass
class Synthesis:
    """Raw synthesiser output: int16-range float audio at ``sample_rate`` and phone onsets."""

    audio: np.ndarray  # float32 in [-1, 1]
    sample_rate: int
    phone_onsets: list[tuple[float, str]]  # (onset_s, espeak phoneme mnemonic)


class EspeakEngine:
    """A per-process espeak-ng handle in synchronous mode with phoneme events.

    Not thread-safe (espeak-ng has global state): use one engine per process, from one thread.
    """

    _owner_pid: int | None = None

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - dependency is declared
            raise TTSError("the PyPI package 'espeakng-loader' is required for the synthetic corpus") from exc
        if EspeakEngine._owner_pid == os.getpid():
            raise TTSError("espeak-ng is already initialised in this process; reuse the engine (get_engine())")
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]
        sr = self._lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(),
            INITIALIZE_PHONEME_EVENTS | INITIALIZE_DONT_EXIT,
        )
        if sr <= 0:
            raise TTSError(f"espeak_Initialize failed (returned {sr}); data path {espeakng_loader.get_data_path()}")
        self.sample_rate = int(sr)
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._cb = _CALLBACK(self._on_audio)  # keep a reference: the C side holds the pointer
        self._lib.espeak_SetSynthCallback(self._cb)
        self._thread = threading.get_ident()
        EspeakEngine._owner_pid = os.getpid()

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == EVENT_PHONEME:
                self._events.append((int(ev.sample), ev.id.string.decode("ascii", "replace")))
            i += 1
        return 0

    def synthesize(self, text: str, settings: VoiceSettings, seed: int | None = None) -> Synthesis:
        """Synthesise ``text`` with ``settings``; phone onsets come from espeak's phoneme events."""
        if threading.get_ident() != self._thread:
            raise TTSError("an EspeakEngine must be used from the thread that created it")
        if seed is not None:
            self._lib.espeak_ng_SetRandSeed(int(seed) & 0x7FFFFFFF)
        if self._lib.espeak_SetVoiceByName(settings.voice.encode()) != 0:
            raise TTSError(f"unknown espeak-ng voice {settings.voice!r}")
        for param, value in ((PARAM_RATE, settings.rate), (PARAM_PITCH, settings.pitch),
                             (PARAM_RANGE, settings.range), (PARAM_WORDGAP, settings.wordgap),
                             (PARAM_VOLUME, 100)):
            self._lib.espeak_SetParameter(param, int(value), 0)
        self._chunks, self._events = [], []
        data = text.encode("utf-8")
        err = self._lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        if err != 0:
            raise TTSError(f"espeak_Synth failed with code {err} for text {text!r}")
        if not self._chunks:
            raise TTSError(f"espeak-ng produced no audio for text {text!r} with voice {settings.voice!r}")
        audio = np.concatenate(self._chunks).astype(np.float32) / 32768.0
        onsets = [(s / self.sample_rate, p) for s, p in self._events]
        return Synthesis(audio=audio, sample_rate=self.sample_rate, phone_onsets=onsets)


_ENGINES: dict[int, EspeakEngine] = {}


def get_engine() -> EspeakEngine:
    """The engine of this process (created on first use; one initialisation per process)."""
    pid = os.getpid()
    eng = _ENGINES.get(pid)
    if eng is None:
        eng = _ENGINES[pid] = EspeakEngine()
    return eng


def synthesize_isolated(text: str, settings: VoiceSettings, seed: int = 0) -> Synthesis:
    """Synthesise in a forked child that starts from a pristine espeak-ng state (byte-exact
    determinism regardless of what was synthesised before). The calling process must never
    synthesise itself (it never does when only this function is used). Without ``os.fork``
    (Windows) this falls back to the process's engine, deterministic only per call order."""
    import pickle

    if not hasattr(os, "fork"):  # pragma: no cover - Linux/macOS have fork
        log.warning("os.fork unavailable: espeak-ng output depends on the synthesis order")
        return get_engine().synthesize(text, settings, seed)
    if os.getpid() in _ENGINES:
        raise TTSError("this process has used espeak-ng directly; isolated synthesis must fork from a pristine process")
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: synthesise, send the pickled result, exit without cleanup handlers
        code = 0
        try:
            os.close(rfd)
            try:
                result: object = get_engine().synthesize(text, settings, seed)
            except Exception as exc:  # noqa: BLE001 - sent to the parent
                result = TTSError(str(exc))
            data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(wfd, "wb") as f:
                f.write(data)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise TTSError(f"espeak-ng child process failed (status {status}) for text {text!r}")
    result = pickle.loads(data)
    if isinstance(result, Exception):
        raise result
    return result


def onsets_to_segments(onsets: list[tuple[float, str]], end_s: float) -> list[tuple[float, float, str]]:
    """Phone onsets -> ``(start_s, end_s, phone)`` segments (each ends where the next begins)."""
    segs = []
    for i, (t, p) in enumerate(onsets):
        t_end = onsets[i + 1][0] if i + 1 < len(onsets) else end_s
        if t_end > t:
            segs.append((float(t), float(t_end), p))
    return segs
