"""Inputs/outputs of the enhancement, per-utterance preparation, and batching by frame budget.

A batch holds utterances of different lengths padded to the longest one, with a frame mask
``[B, T]`` (True on real frames). Everything random is drawn per utterance (from its
``pair_id``), with the utterance's own number of frames, so the batch composition and the
padding never change an utterance's result (see :mod:`models.enhancement.em`).

Common random numbers: ``pair_id`` names the *mixture* without its visual condition
(:func:`benchmark.schema.pair_id`; the runner sets it), so the clean- and corrupted-video
items of one mixture draw the same random numbers and start from the same NMF; an audio-only
model then gives them bit-identical estimates. ``pair_id`` defaults to ``item_id``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch

from benchmark.audio_io import SAMPLE_RATE, DataError, validate_audio, validate_lips
from models.spectral import STFTConfig, lips_to_stft_rate, per_frame_to_stft_rate, stft


@dataclass
class EnhanceInput:
    """One noisy utterance to enhance.

    ``mixture`` float32 mono at ``sample_rate`` (must be 16 kHz); ``lips`` uint8 ``N x H x W``
    at ``fps`` (None for audio-only); ``clean``/``noise`` the true sources (only the
    oracle baseline uses them); ``corruption`` the per-video-frame corruption level (0 = clean;
    stored in the traces at the STFT rate, and given to models that use it, i.e. the
    ``oracle-reliability`` control fusion); ``pair_id`` the identity of the random streams (the
    mixture without its visual condition; None: ``item_id``).
    """

    item_id: str
    mixture: np.ndarray
    lips: Optional[np.ndarray]
    fps: float
    clean: Optional[np.ndarray] = None
    noise: Optional[np.ndarray] = None
    corruption: Optional[np.ndarray] = None
    sample_rate: int = SAMPLE_RATE
    pair_id: Optional[str] = None


@dataclass
class EnhanceOutput:
    """Result for one utterance: the estimate (None on error), traces, timing and error text."""

    item_id: str
    estimate: Optional[np.ndarray]
    traces: dict[str, np.ndarray] = field(default_factory=dict)
    wall_time_s: float = 0.0
    rtf: float = float("nan")
    error: Optional[str] = None


@dataclass
class PreparedItem:
    """A validated utterance in the STFT domain (CPU tensors)."""

    index: int  # position in the caller's input list
    item_id: str
    X: torch.Tensor  # complex [T, F] of the normalised mixture
    n_samples: int
    scale: float  # mixture = scale * normalised mixture
    lips: Optional[np.ndarray]  # float32 [T, H, W] in [0, 1] at the STFT rate
    clean_power: Optional[torch.Tensor] = None  # [T, F] (normalised by the same scale)
    noise_power: Optional[torch.Tensor] = None
    corruption_stft: Optional[np.ndarray] = None  # [T]
    pair_id: str = ""  # seeds the utterance's random streams (its item_id when empty)

    @property
    def n_frames(self) -> int:
        return int(self.X.shape[0])

    @property
    def seed_id(self) -> str:
        """The id the utterance's random streams are seeded from (``pair_id``, else ``item_id``)."""
        return self.pair_id or self.item_id


def _check_signal(x: Optional[np.ndarray], what: str, item_id: str, sr: int, cfg: STFTConfig, silent_ok: bool = False) -> np.ndarray:
    if x is None:
        raise DataError(item_id, f"{what} is missing")
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(item_id, f"{what} must be float audio, got dtype {arr.dtype}")
    return validate_audio(
        arr, sr, path=f"{item_id} ({what})", expected_sr=cfg.sample_rate,
        min_duration_s=cfg.n_fft / cfg.sample_rate, silence_rms=0.0 if silent_ok else 1e-5, clip_fraction=1.1,
    )


def prepare_item(
    inp: EnhanceInput, index: int, *, cfg: STFTConfig = STFTConfig(), need_lips: bool = False, need_sources: bool = False,
    need_level: bool = False,
) -> PreparedItem:
    """Validate one input and move it to the STFT domain; raises :class:`DataError` naming the item.

    The mixture is normalised by its peak ``max|x|`` as in the published code (T13); the
    estimate is scaled back by the caller. ``need_level``: the model uses the true corruption
    level (an oracle), so an input without ``corruption`` is an error.
    """
    x = _check_signal(inp.mixture, "mixture", inp.item_id, inp.sample_rate, cfg)
    scale = float(np.max(np.abs(x)))
    xn = (x.astype(np.float64) / scale).astype(np.float32)
    X = stft(torch.from_numpy(xn), cfg)
    T = X.shape[0]
    lips = None
    corr = None
    if need_lips:
        if inp.lips is None:
            raise DataError(inp.item_id, "the model is audio-visual but the input has no lip frames")
        if not (np.isfinite(inp.fps) and inp.fps > 0):
            raise DataError(inp.item_id, f"invalid video frame rate {inp.fps!r}")
        frames = validate_lips(inp.lips, path=f"{inp.item_id} (lips)")
        lips = lips_to_stft_rate(frames, T, inp.fps, cfg).astype(np.float32) / 255.0
    if inp.corruption is not None and inp.fps and inp.fps > 0:
        corr = per_frame_to_stft_rate(np.asarray(inp.corruption, dtype=np.float32), T, inp.fps, cfg)
    if need_level and corr is None:
        raise DataError(inp.item_id, "the model uses the true per-frame corruption level (an oracle control) "
                                     "but the input has no corruption levels")
    cp = npow = None
    if need_sources:
        s = _check_signal(inp.clean, "clean reference", inp.item_id, inp.sample_rate, cfg, silent_ok=True)
        n = _check_signal(inp.noise, "noise reference", inp.item_id, inp.sample_rate, cfg, silent_ok=True)
        if s.size != x.size or n.size != x.size:
            raise DataError(inp.item_id, f"clean/noise lengths {s.size}/{n.size} differ from the mixture length {x.size}")
        cp = stft(torch.from_numpy((s / scale).astype(np.float32)), cfg).abs().pow(2)
        npow = stft(torch.from_numpy((n / scale).astype(np.float32)), cfg).abs().pow(2)
    return PreparedItem(index, inp.item_id, X, int(x.size), scale, lips, cp, npow, corr, pair_id=inp.pair_id or inp.item_id)


def pack_by_budget(n_frames: Sequence[int], frame_budget: int, keys: Optional[Sequence[object]] = None,
                   pair_ids: Optional[Sequence[str]] = None) -> list[list[int]]:
    """Group item indices into batches whose *padded* size ``B * T_max`` stays within ``frame_budget``.

    Items are sorted by (key, length) first so that similar lengths share a batch (less
    padding); an item longer than the budget gets a batch of its own. Deterministic: ties are
    broken by the input index.

    ``pair_ids`` (the items' random-stream ids, :attr:`PreparedItem.seed_id`): items that share
    one (the clean- and corrupted-video items of a mixture, packed together across conditions)
    are put in *different* batches of the same structure: the k-th item of each pair id (in input
    order) goes with the k-th items of the pair ids seen as often, sorted by (key, length, pair
    id). The items of a pair having equal lengths (one mixture), the batches of its k-th and its
    j-th items are then alike row by row, so they meet the same arithmetic in the same row and an
    audio-only model gives them bit-identical estimates (in one batch, two rows of a GEMM may
    round differently in the last bit).
    """
    if frame_budget < 1:
        raise ValueError(f"frame_budget must be >= 1, got {frame_budget}")
    keys = list(keys) if keys is not None else [0] * len(n_frames)
    if pair_ids is None:
        order = sorted(range(len(n_frames)), key=lambda i: (repr(keys[i]), -int(n_frames[i]), i))
    else:
        copy: list[int] = []
        seen: dict[str, int] = {}
        for p in pair_ids:
            copy.append(seen.get(p, 0))
            seen[p] = copy[-1] + 1
        # (items of its pair id, which of them): items of pair ids seen as often go together
        cls = [(seen[p], c) for p, c in zip(pair_ids, copy)]
        order = sorted(range(len(n_frames)), key=lambda i: (cls[i], repr(keys[i]), -int(n_frames[i]), str(pair_ids[i]), i))
        keys = [(cls[i], keys[i]) for i in range(len(keys))]
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_key: object = None
    t_max = 0
    for i in order:
        t = int(n_frames[i])
        new_max = max(t_max, t)
        if cur and (keys[i] != cur_key or (len(cur) + 1) * new_max > frame_budget):
            batches.append(cur)
            cur, t_max, new_max = [], 0, t
        cur.append(i)
        cur_key = keys[i]
        t_max = new_max
    if cur:
        batches.append(cur)
    return batches


#: the frame budget of ``frame_budget="auto"`` off a GPU (and the spec's former default)
DEFAULT_FRAME_BUDGET = 20000
#: the share of the free device memory an ``auto`` frame budget plans to fill (the rest is the
#: margin for the allocator's fragmentation and for batches whose per-frame use is above the probe's)
AUTO_BUDGET_MARGIN = 0.6
#: padded frames of the probe batch that measures the bytes per frame of ``frame_budget="auto"``
PROBE_FRAMES = 2000


def fit_frame_budget(free_bytes: int, bytes_per_frame: float, margin: float = AUTO_BUDGET_MARGIN,
                     floor: int = PROBE_FRAMES) -> int:
    """The frame budget that fits ``margin`` of ``free_bytes`` at ``bytes_per_frame`` (measured on a
    probe batch), never below ``floor`` (the probe's own size, which did fit)."""
    if bytes_per_frame <= 0:
        return max(int(floor), DEFAULT_FRAME_BUDGET)
    return max(int(floor), int(margin * float(free_bytes) / float(bytes_per_frame)))


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a device out-of-memory error (``torch.OutOfMemoryError``, alias
    ``torch.cuda.OutOfMemoryError``, or a CUDA/cuBLAS allocation failure raised as another error)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "cublas_status_alloc_failed" in text


@dataclass
class Batch:
    """Padded tensors of a group of prepared utterances (on the compute device)."""

    items: list[PreparedItem]
    X: torch.Tensor  # complex [B, T, F]
    power: torch.Tensor  # [B, T, F]
    mask: torch.Tensor  # bool [B, T]
    lips: Optional[torch.Tensor]  # [B, T, H, W] or None
    clean_power: Optional[torch.Tensor] = None
    noise_power: Optional[torch.Tensor] = None
    #: [B, T] true corruption level of the video frame shown at each STFT frame (0 = clean, 0 on
    #: padding), when every item has one; only oracle models use it
    level: Optional[torch.Tensor] = None

    @property
    def item_ids(self) -> list[str]:
        return [it.item_id for it in self.items]

    @property
    def pair_ids(self) -> list[str]:
        """The ids the utterances' random streams are seeded from (:attr:`PreparedItem.seed_id`)."""
        return [it.seed_id for it in self.items]

    def select(self, rows: torch.Tensor) -> "Batch":
        """The batch of the utterances ``rows`` (bool ``[B]``), same padded length."""
        idx = rows.nonzero().flatten().tolist()
        pick = lambda t: None if t is None else t[rows]  # noqa: E731
        return Batch([self.items[i] for i in idx], self.X[rows], self.power[rows], self.mask[rows], pick(self.lips),
                     pick(self.clean_power), pick(self.noise_power), pick(self.level))

    @property
    def n_frames(self) -> list[int]:
        return [it.n_frames for it in self.items]

    @property
    def size(self) -> int:
        return len(self.items)


def _pad_stack(ts: list[torch.Tensor], T: int) -> torch.Tensor:
    out = ts[0].new_zeros((len(ts), T) + tuple(ts[0].shape[1:]))
    for b, t in enumerate(ts):
        out[b, : t.shape[0]] = t
    return out


def make_batch(items: list[PreparedItem], device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> Batch:
    """Pad and stack prepared items; padded frames have zero power and mask False."""
    T = max(it.n_frames for it in items)
    X = _pad_stack([it.X for it in items], T).to(device)
    power = X.abs().pow(2).to(dtype)
    mask = torch.zeros(len(items), T, dtype=torch.bool, device=device)
    for b, it in enumerate(items):
        mask[b, : it.n_frames] = True
    lips = None
    if all(it.lips is not None for it in items):
        shapes = {it.lips.shape[1:] for it in items}
        if len(shapes) > 1:
            raise ValueError(f"lip frames of different sizes in one batch: {sorted(shapes)}")
        lips = _pad_stack([torch.from_numpy(it.lips) for it in items], T).to(device=device, dtype=dtype)
    cp = npow = None
    if all(it.clean_power is not None for it in items):
        cp = _pad_stack([it.clean_power for it in items], T).to(device=device, dtype=dtype)
        npow = _pad_stack([it.noise_power for it in items], T).to(device=device, dtype=dtype)
    level = None
    if all(it.corruption_stft is not None for it in items):
        level = _pad_stack([torch.from_numpy(np.asarray(it.corruption_stft, dtype=np.float32)) for it in items], T)
        level = level.to(device=device, dtype=dtype)
    return Batch(items, X, power, mask, lips, cp, npow, level)


def per_item_randn(
    gens: Sequence[torch.Generator], n_frames: Sequence[int], T: int, *, leading: tuple[int, ...] = (), tail: tuple[int, ...] = (),
    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, uniform: bool = False,
) -> torch.Tensor:
    """Standard normal (or U(0,1)) draws ``[*leading, B, T, *tail]``, each utterance from its own
    generator with its own length (padding gets zeros), so draws do not depend on the batch."""
    B = len(gens)
    out = torch.zeros(leading + (B, T) + tail, device=device, dtype=dtype)
    nl = len(leading)
    for b, (g, tb) in enumerate(zip(gens, n_frames)):
        shape = leading + (tb,) + tail
        r = torch.rand(shape, generator=g, device=g.device, dtype=dtype) if uniform else torch.randn(shape, generator=g, device=g.device, dtype=dtype)
        idx = (slice(None),) * nl + (b, slice(0, tb))
        out[idx] = r.to(device)
    return out
