"""Enhance your own recordings: any folder, wav/flac file or Kaldi-style ``wav.scp``.

Each input file is read (any sample rate: resampled to 16 kHz with soxr's HQ resampler, the one
the corpus adapters use, :func:`benchmark.corpus.adapters.common.load_audio`; multichannel audio
is an error unless ``--downmix``), enhanced with the trained model of ``--checkpoint`` and
``--algorithm`` through :func:`models.enhancement.api.enhance` (batched, ``--frame-budget``
padded STFT frames per batch), and written **at 16 kHz** (float32 wav, same length as the
resampled input) as ``<out>/<id>.wav``, with its reliability / EM traces as ``<out>/<id>.npz``
(fusion weights ``weights_encoder``/``weights_decoder`` ``[T, 2]`` when the model has them,
``cost``, ...; :mod:`benchmark.schema`). ``<out>/wav.scp`` lists the enhanced files and
``<out>/enhance_files.csv`` has one row per input (status, error, wall time, RTF).

The id of a file is its path relative to the input folder without the suffix (``a/utt1``), its
stem for a single file, or its utterance id in a ``wav.scp``. Audio-visual models need the
speaker's mouth region per file: ``--lips DIR`` holds ``<id>.npy``/``.npz`` (uint8 or [0, 1]
float ``N x H x W`` frames at ``--fps``) or a video ``<id>.mp4``/``.avi``/``.mov``/``.mkv``
(grayscale, the file's frame rate), matched by id, or else by the file's base name; frames of
another size are resized by the model. A file without lips for an audio-visual model fails
alone, as does any unreadable or invalid file (NaN/inf samples, silent, shorter than 0.1 s, more
than 1 % of the samples at full scale) or an id that would leave ``--out``; the failed files are listed with their reasons at
the end and the exit status is 1 if any failed.

``--checkpoint`` is a checkpoint folder (or ``checkpoint.pt``) written by ``train``
(``runs/<name>/models/<model>/``); the baselines (``noisy``, ``nmf-only`` with its
``--set`` parameters) need none. The composites (``mixture-vae``, ``switching-vae``: a per-frame
switch between an audio-only and an audio-visual VAE, no training of their own) are built from
their components' checkpoints: ``--model mixture-vae --component audio=DIR --component visual=DIR``,
with their options as ``--model-set key=value`` (``--model-set stay_prob=0.95``); they run the
algorithms they define a switching E-step for (``mcem``, ``ldem``). ``--set key=value`` overrides a field of the algorithm's config
(``--set n_iter=50``; values parsed as YAML). Random streams are seeded from ``--seed`` and each
file's id, so a file's result does not depend on the other files.

Examples::

    python run_benchmark.py enhance-files --checkpoint runs/smoke/models/a-vae --algorithm ldem \\
        --input noisy/ --out enhanced/
    python run_benchmark.py enhance-files --checkpoint runs/smoke/models/av-vae__gated --input noisy/wav.scp \\
        --lips mouths/ --out enhanced/ --set n_iter=50 --device auto
    python run_benchmark.py enhance-files --model switching-vae --component audio=runs/smoke/models/a-vae \\
        --component visual=runs/smoke/models/av-vae__concat --algorithm ldem --input noisy/ --lips mouths/ --out enhanced/
"""
from __future__ import annotations

import argparse
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

NAME = "enhance-files"
HELP = "enhance your own wav files (folder, file or wav.scp) with a trained checkpoint; writes 16 kHz wavs + traces"

log = logging.getLogger(__name__)

LIP_SUFFIXES = (".npy", ".npz", ".mp4", ".avi", ".mov", ".mkv")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None, help="trained model: checkpoint folder or checkpoint.pt (not for baselines)")
    p.add_argument("--model", default=None, metavar="COMPOSITE",
                   help="a composite model built from --component checkpoints instead of --checkpoint (mixture-vae, switching-vae)")
    p.add_argument("--component", dest="components", action="append", default=[], metavar="ROLE=CHECKPOINT",
                   help="a component of --model, e.g. --component audio=DIR --component visual=DIR (repeatable)")
    p.add_argument("--model-set", dest="model_overrides", action="append", default=[], metavar="OPTION=VALUE",
                   help="an option of --model, e.g. --model-set stay_prob=0.95 (repeatable)")
    p.add_argument("--algorithm", default="ldem", help="enhancement algorithm (`list algorithms`; default ldem)")
    p.add_argument("--input", required=True, help="noisy audio: folder (recursive), one wav/flac file, or a wav.scp list")
    p.add_argument("--lips", default=None, help="folder of mouth-region videos or .npy/.npz frames, matched by id")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate of .npy/.npz lip frames (default 25; videos use their own)")
    p.add_argument("--out", required=True, help="output folder (<id>.wav at 16 kHz, <id>.npz traces, wav.scp, enhance_files.csv)")
    p.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"), help="torch device (default auto)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PARAM=VALUE",
                   help="algorithm parameter, e.g. --set n_iter=50 (repeatable)")
    p.add_argument("--nmf-rank", type=int, default=10, help="NMF noise rank K (default 10)")
    p.add_argument("--frame-budget", type=int, default=20000, help="padded STFT frames per batch (default 20000)")
    p.add_argument("--chunk", type=int, default=32, metavar="N", help="files read and enhanced per call (default 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random streams (default 0)")
    p.add_argument("--downmix", action="store_true", help="average the channels of multichannel files (else an error)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@dataclass
class FileJob:
    """One input file: its id, audio path and (when found) lip file; ``error`` once it failed."""

    uid: str
    audio: Path
    lips: Optional[Path] = None
    error: str = ""
    row: dict[str, Any] = field(default_factory=dict)


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["n_iter=50", "lr=1e-3"]`` -> ``{"n_iter": 50, "lr": 0.001}`` (values parsed as YAML)."""
    import yaml

    out: dict[str, Any] = {}
    for s in pairs:
        key, sep, val = s.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects PARAM=VALUE, got {s!r}")
        out[key.strip()] = yaml.safe_load(val)
    return out


def build_composite(name: str, components: list[str], overrides: list[str]) -> Any:
    """The composite model ``name`` from ``ROLE=CHECKPOINT`` pairs (every role of its class's
    ``components``, no other) and ``OPTION=VALUE`` options; ``ValueError`` naming what is wrong."""
    import models
    from benchmark.runner.context import model_class

    try:
        cls = model_class(name)
    except KeyError as exc:
        raise ValueError(f"--model {name!r}: {exc}") from None
    roles = tuple(getattr(cls, "components", ()) or ())
    if not getattr(cls, "is_composite", False) or not roles:
        raise ValueError(f"--model {name!r} is not a composite; give a trained model's folder with --checkpoint")
    paths: dict[str, str] = {}
    for pair in components:
        role, sep, path = pair.partition("=")
        if not sep or not role.strip() or not path.strip():
            raise ValueError(f"--component expects ROLE=CHECKPOINT, got {pair!r}")
        if role.strip() not in roles:
            raise ValueError(f"--component {role.strip()!r}: {name} has the roles {list(roles)}")
        paths[role.strip()] = path.strip()
    missing = [r for r in roles if r not in paths]
    if missing:
        raise ValueError(f"--model {name} needs --component {' '.join(f'{r}=CHECKPOINT' for r in missing)}")
    options = parse_params(overrides)
    clash = sorted(set(options) & set(roles))
    if clash:
        raise ValueError(f"--model-set {clash}: give the components with --component")
    loaded = []
    for role in roles:
        try:
            loaded.append(models.load(paths[role]))
        except Exception as exc:  # noqa: BLE001 - reported with the file it came from
            raise ValueError(f"--component {role}={paths[role]}: {type(exc).__name__}: {exc}") from None
    return cls.from_models(*loaded, **{**options, **paths})


def find_lips(lips_dir: Path, uid: str) -> Optional[Path]:
    """The lip file of ``uid`` under ``lips_dir``: ``<uid>.<ext>``, else ``<basename of uid>.<ext>``."""
    for stem in dict.fromkeys((uid, Path(uid).name)):
        for ext in LIP_SUFFIXES:
            p = lips_dir / f"{stem}{ext}"
            if p.is_file():
                return p
    return None


def load_lips(path: Path, fps: float) -> tuple[np.ndarray, float]:
    """uint8 ``N x H x W`` frames and their frame rate (a video's own, ``fps`` for arrays)."""
    from benchmark.audio_io import DataError, read_lips, read_video, validate_lips

    if path.suffix.lower() in (".npy", ".npz"):
        return read_lips(path), fps
    frames, vfps = read_video(path, require_fps=False)
    if vfps <= 0:
        raise DataError(path, "video has no usable frame rate")
    return validate_lips(frames, path=path), vfps


def _load_input(job: FileJob, audio_visual: bool, fps: float, downmix: bool) -> Any:
    from benchmark.corpus.adapters.common import load_audio
    from models.enhancement.api import EnhanceInput

    x = load_audio(job.audio, allow_downmix=downmix)
    lips, lfps = None, fps
    if audio_visual:
        if job.lips is None:
            raise FileNotFoundError("the model is audio-visual but no lip file matches this id (--lips)")
        lips, lfps = load_lips(job.lips, fps)
    return EnhanceInput(job.uid, x, lips, lfps)


def _save_traces(path: Path, traces: dict[str, Any]) -> None:
    from benchmark.runner.store import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in traces.items()})


def enhance_files(jobs: list[FileJob], model: Any, algorithm: str, out: Path, *, params: dict[str, Any], fps: float,
                  nmf_rank: int, device: str, frame_budget: int, seed: int, chunk: int, downmix: bool,
                  progress: bool) -> list[FileJob]:
    """Enhance ``jobs`` in chunks of ``chunk`` files through :func:`enhance`; write ``<out>/<id>.wav``
    (16 kHz) and ``<out>/<id>.npz``; fill each job's ``row`` (and ``error`` on failure)."""
    from tqdm.auto import tqdm

    from benchmark.audio_io import SAMPLE_RATE, write_audio
    from models.enhancement.api import enhance

    audio_visual = bool(getattr(model, "is_audio_visual", False) or hasattr(model, "custom_enhance"))
    bar = tqdm(total=len(jobs), desc=f"enhance-files {algorithm}", unit="file", disable=not progress)
    for start in range(0, len(jobs), max(1, chunk)):
        group = jobs[start:start + max(1, chunk)]
        ready, inputs = [], []
        for job in group:
            try:
                if Path(job.uid).is_absolute() or ".." in Path(job.uid).parts:
                    raise ValueError(f"id {job.uid!r} would write outside the output folder")
                inputs.append(_load_input(job, audio_visual, fps, downmix))
                ready.append(job)
            except Exception as exc:  # noqa: BLE001 - one bad file never stops the others
                job.error = f"{type(exc).__name__}: {exc}"
        outs = enhance(model, algorithm, inputs, params=params or None, nmf_rank=nmf_rank, device=device,
                       frame_budget=frame_budget, seed=seed, progress=False) if inputs else []
        for job, inp, o in zip(ready, inputs, outs):
            job.row = {"wall_time_s": float(o.wall_time_s), "rtf": float(o.rtf), "duration_s": inp.mixture.size / SAMPLE_RATE}
            if o.error or o.estimate is None:
                job.error = f"enhance: {o.error or 'no estimate'}"
            elif not np.all(np.isfinite(o.estimate)):
                job.error = f"enhance: estimate has {int(np.sum(~np.isfinite(o.estimate)))} NaN/inf samples"
            else:
                wav = out / f"{job.uid}.wav"
                write_audio(wav, np.asarray(o.estimate, np.float32))
                job.row["enhanced"] = str(wav)
                if o.traces:
                    _save_traces(out / f"{job.uid}.npz", dict(o.traces))
                    job.row["traces"] = str(out / f"{job.uid}.npz")
        bar.update(len(group))
    bar.close()
    return jobs


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from benchmark.audio_io import DataError, audio_list, write_wav_scp
    from benchmark.runner.stages import load_model
    from models.enhancement.api import make_algorithm
    from models.enhancement.baselines import Baseline

    try:
        params = parse_params(args.overrides)
        algo = make_algorithm(args.algorithm, params)  # unknown algorithm / parameter: an error before any work
        files = audio_list(args.input, keep_suffix=False)
    except (ValueError, KeyError, DataError) as exc:
        log.error("enhance-files: %s", exc)
        return 2
    if not files:
        log.error("enhance-files: no wav/flac files under %s", args.input)
        return 2
    if args.model is not None:
        if args.checkpoint is not None:
            log.error("enhance-files: give either --checkpoint or --model with --component, not both")
            return 2
        try:
            model = build_composite(args.model, args.components, args.model_overrides)
        except ValueError as exc:
            log.error("enhance-files: %s", exc)
            return 2
        supported = tuple(getattr(model, "algorithms", ()) or ())
        if not isinstance(algo, Baseline) and supported and args.algorithm not in supported:
            log.error("enhance-files: %s defines its switching E-step for %s only, not %r", args.model, list(supported),
                      args.algorithm)
            return 2
    elif args.components or args.model_overrides:
        log.error("enhance-files: --component / --model-set need --model (a composite)")
        return 2
    elif args.checkpoint is None and not isinstance(algo, Baseline):
        log.error("enhance-files: algorithm %r needs a trained model (--checkpoint, or --model with --component)", args.algorithm)
        return 2
    else:
        model = load_model(args.checkpoint) if args.checkpoint else None
    lips_dir = Path(args.lips) if args.lips else None
    if lips_dir is not None and not lips_dir.is_dir():
        log.error("enhance-files: --lips %s is not a folder", lips_dir)
        return 2
    jobs = [FileJob(uid, path, find_lips(lips_dir, uid) if lips_dir else None) for uid, path in files.items()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    enhance_files(jobs, model, args.algorithm, out, params=params, fps=args.fps, nmf_rank=args.nmf_rank, device=args.device,
                  frame_budget=args.frame_budget, seed=args.seed, chunk=args.chunk, downmix=args.downmix,
                  progress=not args.no_progress)
    rows = [{"id": j.uid, "input": str(j.audio), "lips": str(j.lips or ""), "status": "failed" if j.error else "ok",
             "error": j.error, **j.row} for j in jobs]
    pd.DataFrame(rows).to_csv(out / "enhance_files.csv", index=False)
    done = {j.uid: j.row["enhanced"] for j in jobs if not j.error}
    try:
        write_wav_scp(out / "wav.scp", done)
    except ValueError as exc:
        log.warning("no wav.scp written: %s", exc)
    failed = [j for j in jobs if j.error]
    rtf = [r["rtf"] for r in rows if r["status"] == "ok" and math.isfinite(r.get("rtf", math.nan))]
    print(f"enhanced {len(done)}/{len(jobs)} files in {time.perf_counter() - t0:.1f} s "
          f"(mean RTF {np.mean(rtf) if rtf else math.nan:.3f}) -> {out} (16 kHz wavs, .npz traces, wav.scp, enhance_files.csv)")
    if failed:
        print(f"{len(failed)} file(s) failed:")
        for j in failed:
            print(f"  {j.uid} ({j.audio}): {j.error}")
        return 1
    return 0
