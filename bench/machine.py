"""The table header: machine, date, Python, package versions and which code was measured."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1 << 20)
    except OSError:
        pass
    return 0.0


def _git(path: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(path), *args], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() if proc.returncode == 0 else ""


def code_identity(package_dir: Path) -> str:
    """Git commit (+ "dirty") of the checkout holding ``package_dir``, and a content digest."""
    digest = hashlib.sha256()
    for file in sorted(package_dir.rglob("*.py")):
        digest.update(file.relative_to(package_dir).as_posix().encode())
        digest.update(file.read_bytes())
    commit = _git(package_dir, "rev-parse", "--short", "HEAD")
    if commit:
        dirty = _git(package_dir, "status", "--porcelain", "--", ".")
        commit = f"git {commit}" + (" + uncommitted changes" if dirty else "")
    else:
        commit = "not a git checkout"
    return f"{commit}; sources sha256 {digest.hexdigest()[:12]}"


def header(info: dict[str, Any], size: str, reps: int, started: dt.datetime) -> list[str]:
    """Markdown lines describing where, when and what was measured."""
    package_dir = Path(info["linea_file"]).parent
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    return [
        f"- machine: {_cpu_model()}, {os.cpu_count()} cores, {_ram_gib():.1f} GiB RAM "
        f"({platform.system()} {platform.release()}); load average at start {info['load']}",
        f"- date: {started.strftime('%Y-%m-%d %H:%M %Z')} (start of the run)",
        f"- python {platform.python_version()}; {versions}",
        f"- linea_luigi measured: `{package_dir}` ({code_identity(package_dir)})",
        f"- size `{size}`, median of {reps} repetition(s), peers alternating within each "
        "repetition, every measurement in a fresh process",
    ]
