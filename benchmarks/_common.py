"""Shared pieces of the benchmark scripts: machine description, timing summaries, JSON results.

Every benchmark writes one JSON file under ``benchmarks/results/`` with the machine it ran on and the
UTC date, so that a row in ``BENCHMARKS.md`` can always be traced back to a run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _filesystem(path: Path) -> dict[str, Any]:
    """Device, filesystem type and (when the kernel says) whether the disk is rotational."""
    best: tuple[str, str, str] | None = None
    try:
        real = str(path.resolve())
        with open("/proc/mounts", encoding="utf-8") as fh:
            for line in fh:
                device, mount, fstype = line.split()[:3]
                inside = real == mount or real.startswith(mount.rstrip("/") + "/")
                if inside and (best is None or len(mount) > len(best[1])):
                    best = (device, mount, fstype)
    except OSError:
        return {}
    if best is None:
        return {}
    device, mount, fstype = best
    info: dict[str, Any] = {"device": device, "mount": mount, "fstype": fstype}
    name = os.path.basename(device)
    rota = Path(f"/sys/block/{name}/queue/rotational")
    if rota.exists():
        info["rotational"] = rota.read_text().strip() == "1"
        info["note"] = "virtio disks often report rotational=1 regardless of the backing medium"
    return info


def machine_info(path: Path | None = None) -> dict[str, Any]:
    """What the numbers were measured on."""
    ram = _ram_bytes()
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(ram / 1024**3, 1) if ram else None,
        "python": sys.version.split()[0],
    }
    info["code"] = code_version()
    if path is not None:
        info["filesystem"] = _filesystem(path)
    return info


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: other work on the machine skews every number here."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def code_version() -> dict[str, Any]:
    """The commit measured, and whether ``src/`` had uncommitted changes at the time."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "src_dirty": bool(git("status", "--porcelain", "--", "src"))}


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def summarize(seconds: Sequence[float], amount: float) -> dict[str, Any]:
    """Median rate (``amount`` per second) over repetitions, with every repetition kept.

    ``best_rate`` (the fastest repetition) is kept too: on a shared machine it is the better estimate
    of the uncontended cost, while the median is what a user would typically see.
    """
    rates = [amount / s for s in seconds]
    return {
        "seconds": [round(s, 4) for s in seconds],
        "rates": [round(r, 1) for r in rates],
        "median_seconds": round(statistics.median(seconds), 4),
        "median_rate": round(amount / statistics.median(seconds), 1),
        "best_rate": round(max(rates), 1),
    }


def write_result(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"{name}.json"
    out.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return out


def drop_caches() -> bool:
    """Flush dirty pages and drop the page cache; False when not permitted (not root, container)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


def read_through(path: Path) -> None:
    """Pull a file, or every file under a directory, into the page cache."""
    paths = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    buf = bytearray(8 * 1024 * 1024)
    for p in paths:
        try:
            fh = open(p, "rb", buffering=0)  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:  # e.g. the model cache's .syncing note, removed once the entry is durable
            continue
        with fh:
            while fh.readinto(buf):
                pass


def cache_modes(requested: str) -> tuple[list[str], bool]:
    """The cache regimes to measure for ``--cache both|cold|warm``, and whether the page cache can be
    dropped (cold runs need it; without it only warm runs are measured)."""
    can_drop = drop_caches()
    modes = {"both": ["cold", "warm"], "cold": ["cold"], "warm": ["warm"]}[requested]
    return (modes if can_drop else ["warm"]), can_drop
