"""Headless Chromium for the report's browser test (Debian package ``chromium``).

:func:`chromium_or_skip` finds the browser, installs it with apt-get when missing and allowed
(root, apt-get present, ``AVBENCH_NO_APT`` unset), or skips the test with the reason.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--mute-audio", "--hide-scrollbars"]


def find_chromium() -> str | None:
    for n in NAMES:
        p = shutil.which(n)
        if p:
            return p
    return None


def chromium_or_skip() -> str:
    """Path of a Chromium binary, installing the Debian package if possible; else ``pytest.skip``."""
    p = find_chromium()
    if p:
        return p
    if os.environ.get("AVBENCH_NO_APT"):
        pytest.skip("chromium not installed and AVBENCH_NO_APT is set")
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("chromium not installed and cannot apt-get install it (needs root and apt-get)")
    try:
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"], check=True,
                       capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"chromium not installed and apt-get install chromium failed: {exc}")
    p = find_chromium()
    if not p:
        pytest.skip("apt-get install chromium ran but no chromium binary was found")
    return p


def run_chromium(binary: str, url: str, profile: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run headless Chromium on ``url`` with a throw-away profile; returns the completed process."""
    cmd = [binary, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=8000", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
