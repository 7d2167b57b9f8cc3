"""What ``run.json`` records: resolved config, seeds, git commit, package versions, device and
machine, each configured metric's exact definition, package and version (``metrics``), the code
hash of every stage (``code``: version, digest, and the source files it covers,
see :mod:`benchmark.codehash`), and one entry per invocation (so a resumed run keeps its
history, including each invocation's stage code versions)."""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

from benchmark.codehash import code_hashes
from benchmark.runner.store import atomic_write_json

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("avfusion-bench", "torch", "numpy", "scipy", "pandas", "pyarrow", "pesq", "pystoi", "mir_eval",
            "speechmos", "onnxruntime", "soundfile", "soxr", "opencv-python-headless", "scikit-learn", "joblib", "dask", "distributed",
            "matplotlib", "seaborn", "espeakng-loader", "pyyaml")


def git_info(root: Path = REPO_ROOT) -> dict[str, Any]:
    """Commit hash and whether the work tree has uncommitted changes (``None`` outside git)."""

    def _git(*args: str) -> Optional[str]:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, Optional[str]]:
    """Installed versions of the packages the results depend on (``None`` if missing)."""
    out: dict[str, Optional[str]] = {"python": sys.version.split()[0]}
    for n in names:
        try:
            out[n] = importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            out[n] = None
    return out


def device_info() -> dict[str, Any]:
    """Torch device facts: CUDA availability, device names, thread count."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return {"torch": None}
    info: dict[str, Any] = {"cuda_available": bool(torch.cuda.is_available()), "torch_threads": torch.get_num_threads()}
    if info["cuda_available"]:
        info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cuda_version"] = torch.version.cuda
    return info


def machine_info() -> dict[str, Any]:
    """Host name, OS, CPU and memory."""
    mem = None
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    return {
        "host": platform.node(), "platform": platform.platform(), "machine": platform.machine(),
        "processor": platform.processor(), "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_bytes": mem,
    }


def seeds_of(spec_dict: dict[str, Any]) -> dict[str, Any]:
    """Every ``seed`` in the resolved config, by dotted key."""
    out: dict[str, Any] = {}

    def _walk(d: Any, prefix: str) -> None:
        if isinstance(d, dict):
            for k, v in d.items():
                key = f"{prefix}.{k}" if prefix else k
                if k == "seed":
                    out[key] = v
                else:
                    _walk(v, key)
        elif isinstance(d, list):
            for i, v in enumerate(d):
                _walk(v, f"{prefix}[{i}]")

    _walk(spec_dict, "")
    return out


def train_seeds_of(spec_dict: dict[str, Any]) -> list[int]:
    """The run's training seeds (``training.seeds``, else ``[training.seed]``): every trained
    model is trained once per seed (:mod:`benchmark.runner.stages.train`)."""
    tr = spec_dict.get("training") or {}
    seeds = tr.get("seeds") or [tr.get("seed", 0)]
    return list(dict.fromkeys(int(s) for s in seeds))


def metrics_of(spec_dict: dict[str, Any]) -> list[dict[str, Any]]:
    """Each configured metric's column, exact definition, package and installed version, as the
    metric modules declare them (:func:`benchmark.metrics.metric_provenance`; the report's methods
    section reads this)."""
    from benchmark.metrics import metric_provenance

    ms = spec_dict.get("metrics") or {}
    return metric_provenance(list(ms.get("names") or []), str(ms.get("pesq_mode", "wb")))


def reproducibility_info() -> dict[str, Any]:
    """What a bit-identical rerun of this run needs, and the torch threads per job it used.
    Measured (not assumed) by ``python -m benchmark.reproducibility``: on one machine, reruns
    are bit-identical, and so were 1 vs 2 torch threads per job on the 2-core CPU machine."""
    from benchmark.threads import threads_from_env

    return {
        "bit_identical_rerun_needs": "the same machine type (CPU model / GPU), the same package versions "
                                     "('versions'), the same device and the same code ('code'); the job seeds "
                                     "are in 'seeds'",
        "differs_across": "other CPU models and GPU vs CPU (floating-point kernels differ; 0.1-0.7 dB of "
                          "mean SI-SDR improvement reported on the smoke preset)",
        "measure_with": "python -m benchmark.reproducibility [--devices cpu cuda]",
        "threads_per_job": {"AVBENCH_TRAIN_THREADS": threads_from_env("AVBENCH_TRAIN_THREADS"),
                            "AVBENCH_ENHANCE_THREADS": threads_from_env("AVBENCH_ENHANCE_THREADS")},
    }


def write_run_json(run_dir: Path, spec_dict: dict[str, Any], *, preset: str = "", options: Optional[dict] = None,
                   argv: Optional[list[str]] = None) -> dict[str, Any]:
    """Write (or update) ``run.json``; previous invocations are kept under ``invocations``.
    ``code`` is the stage code hashes of this invocation's checkout (the job records keep the
    version each job ran with, in ``inputs.version``)."""
    path = Path(run_dir) / "run.json"
    previous: list[dict[str, Any]] = []
    if path.exists():
        try:
            old = json.loads(path.read_text())
            previous = list(old.get("invocations", []))
        except ValueError:
            previous = []
    git = git_info()
    code = {unit: c.as_dict() for unit, c in code_hashes().items()}
    info = {
        "name": spec_dict.get("name"), "preset": preset, "spec": spec_dict, "seeds": seeds_of(spec_dict),
        "train_seeds": train_seeds_of(spec_dict),
        "git_commit": git["commit"], "git_dirty": git["dirty"], "versions": package_versions(),
        "metrics": metrics_of(spec_dict),
        "device": device_info(), "machine": machine_info(), "code": code,
        "reproducibility": reproducibility_info(),
        "invocations": previous + [{
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": list(argv if argv is not None else sys.argv),
            "options": options or {}, "pid": os.getpid(), "host": platform.node(), "git_commit": git["commit"],
            "code_versions": {unit: c["version"] for unit, c in code.items()},
        }],
    }
    atomic_write_json(path, info)
    return info


def finish_run_json(run_dir: Path, summary: dict[str, Any]) -> None:
    """Add the outcome of the current invocation to ``run.json``."""
    path = Path(run_dir) / "run.json"
    info = json.loads(path.read_text())
    if info.get("invocations"):
        info["invocations"][-1].update(finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), summary=summary)
    atomic_write_json(path, info)


__all__ = ["write_run_json", "finish_run_json", "git_info", "package_versions", "device_info", "machine_info",
           "seeds_of", "train_seeds_of"]
