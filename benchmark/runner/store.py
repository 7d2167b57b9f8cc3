"""On-disk state of a run: atomic file writes, job records and append-safe Parquet shards.

Layout under the run folder::

    jobs/<stage>/<key>.json        one record per job (status, attempts, error, traceback, timings,
                                   fingerprints of the files the job wrote)
    shards/<table>/<key>.parquet   the rows a job produced (one shard per job, so a rerun of the
                                   same job replaces its shard instead of appending duplicates)
    plan.json                      the job keys of the current grid, per stage (for ``status``)

Every file is written to a temporary name in the same folder and renamed into place
(``os.replace`` is atomic on POSIX), and a job's record is written only *after* its outputs and
shard, so a process killed at any moment (SIGKILL included) leaves either a finished job or no
trace of it (apart from stray ``.tmp`` files, removed by :meth:`RunStore.clean_temp`).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import pandas as pd

log = logging.getLogger(__name__)

TMP_SUFFIX = ".tmp"
STATUS_DONE, STATUS_FAILED = "done", "failed"


# ---------------------------------------------------------------------------------------------
# atomic writes


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and rename it onto ``path``.

    On error the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (non-JSON values via ``str``)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str))


def atomic_write_parquet(path: str | os.PathLike, df: pd.DataFrame) -> Path:
    """Write a DataFrame as Parquet atomically."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


def atomic_write_csv(path: str | os.PathLike, df: pd.DataFrame) -> Path:
    """Write a DataFrame as CSV atomically."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


def fingerprint(path: Path) -> list[int]:
    """``[size, mtime_ns]`` of a file: cheap evidence that it is the file a job wrote."""
    st = path.stat()
    return [int(st.st_size), int(st.st_mtime_ns)]


# ---------------------------------------------------------------------------------------------
# the run store


class RunLockedError(RuntimeError):
    """Another process is running in the same run folder."""


class RunStore:
    """Job records and result shards of one run folder (safe to use from many processes)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    # -- paths -------------------------------------------------------------------------------
    def record_path(self, stage: str, key: str) -> Path:
        return self.root / "jobs" / stage / f"{key}.json"

    def shard_path(self, table: str, key: str) -> Path:
        return self.root / "shards" / table / f"{key}.parquet"

    def path(self, rel: str | os.PathLike) -> Path:
        """Absolute path of a run-relative path."""
        p = Path(rel)
        return p if p.is_absolute() else self.root / p

    # -- records -----------------------------------------------------------------------------
    def read_record(self, stage: str, key: str) -> Optional[dict[str, Any]]:
        """The job record, or None if the job never finished (or its record is unreadable)."""
        p = self.record_path(stage, key)
        try:
            return json.loads(p.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # cannot happen with atomic writes; be safe anyway
            log.warning("%s: unreadable job record (%s); the job will be rerun", p, exc)
            return None

    def write_record(self, record: dict[str, Any]) -> None:
        atomic_write_json(self.record_path(record["stage"], record["key"]), record)

    def records(self, stage: str) -> dict[str, dict[str, Any]]:
        """All records of a stage, by key."""
        out: dict[str, dict[str, Any]] = {}
        folder = self.root / "jobs" / stage
        if not folder.is_dir():
            return out
        for p in sorted(folder.glob("*.json")):
            rec = self.read_record(stage, p.stem)
            if rec is not None:
                out[p.stem] = rec
        return out

    def outputs_intact(self, record: dict[str, Any]) -> bool:
        """Whether every file the job wrote still exists with the same size and mtime."""
        for rel, fp in (record.get("outputs") or {}).items():
            p = self.path(rel)
            try:
                if fingerprint(p) != list(fp):
                    return False
            except FileNotFoundError:
                return False
        for table in record.get("tables") or []:
            if not self.shard_path(table, record["key"]).exists():
                return False
        return True

    # -- shards ------------------------------------------------------------------------------
    def write_shard(self, table: str, key: str, rows: pd.DataFrame) -> Path:
        return atomic_write_parquet(self.shard_path(table, key), rows)

    def read_table(self, table: str, keys: Optional[Iterable[str]] = None) -> pd.DataFrame:
        """Concatenate the shards of ``table`` (only those of ``keys`` when given), in key order.

        Stale shards of jobs that are no longer part of the grid are ignored when ``keys`` is
        given. The row order is deterministic (sorted by job key, then the job's own order).
        """
        folder = self.root / "shards" / table
        if keys is None:
            paths = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
        else:
            paths = [self.shard_path(table, k) for k in sorted(set(keys))]
            paths = [p for p in paths if p.exists()]
        frames = [pd.read_parquet(p) for p in paths]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    # -- housekeeping ------------------------------------------------------------------------
    def clean_temp(self) -> int:
        """Remove stray temporary files left by a killed process; return how many."""
        n = 0
        if not self.root.exists():
            return 0
        for p in self.root.rglob(f".*{TMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                p.unlink()
                n += 1
        if n:
            log.info("removed %d temporary file(s) left by an interrupted run", n)
        return n

    def write_plan(self, stage: str, keys: list[str], labels: Optional[dict[str, str]] = None) -> None:
        """Record the job keys of ``stage`` in the current grid (read by ``status``)."""
        path = self.root / "plan.json"
        plan = self.read_plan()
        plan[stage] = {"keys": list(keys), "updated": time.time()}
        atomic_write_json(path, plan)

    def read_plan(self) -> dict[str, Any]:
        path = self.root / "plan.json"
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the run folder (released automatically if the process dies)."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / "run.lock"
        f = open(path, "a+")
        try:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                who = f.read().strip() or "another process"
                raise RunLockedError(f"{self.root}: a run is already in progress here ({who})") from None
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()} on {os.uname().nodename}")
            f.flush()
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            f.close()

    def is_locked(self) -> Optional[str]:
        """Who holds the run lock (``"pid N on host"``), or None if nobody does."""
        path = self.root / "run.lock"
        if not path.exists():
            return None
        with open(path, "a+") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                return f.read().strip() or "unknown process"
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            return None


__all__ = [
    "RunStore", "RunLockedError", "atomic_path", "atomic_write_bytes", "atomic_write_text",
    "atomic_write_json", "atomic_write_parquet", "atomic_write_csv", "fingerprint",
    "STATUS_DONE", "STATUS_FAILED",
]
