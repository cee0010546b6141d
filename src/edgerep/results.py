"""Versioned JSON result records with machine metadata (the pyperf habit).

Every measurement edgerep writes (evaluation, export, latency) is a record::

    {"schema": "edgerep.<kind>", "schema_version": 1, "created": ISO-8601 UTC,
     "edgerep_version": ..., "machine": {...}, ...payload}

Reports and README tables are built from these files only.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from edgerep import __version__
from edgerep.io import atomic_write_json

SCHEMA_VERSION = 1


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Hardware", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict:
    """CPU model, logical cores, CPU affinity, total memory (MB), OS, Python and LiteRT versions."""
    info = {
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    try:
        import psutil

        info["memory_mb"] = round(psutil.virtual_memory().total / 1e6)
    except ImportError:
        pass
    for pkg in ("ai-edge-litert", "numpy", "tokenizers"):
        try:
            info[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return info


def make_record(kind: str, payload: dict) -> dict:
    """Wrap ``payload`` in a versioned record of schema ``edgerep.<kind>``."""
    return {
        "schema": f"edgerep.{kind}",
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "edgerep_version": __version__,
        "git_commit": _git_commit(),
        "machine": machine_info(),
        **payload,
    }


def write_record(path: str | os.PathLike, record: dict) -> Path:
    """Write a record atomically as JSON; return the path."""
    return atomic_write_json(path, record)


def read_record(path: str | os.PathLike, kind: str | None = None) -> dict:
    """Read a record, checking its schema (and kind when given).

    Raises:
        ValueError: not an edgerep record, other kind, or a newer schema version.
    """
    rec = json.loads(Path(path).read_text(encoding="utf-8"))
    schema = rec.get("schema", "")
    if not schema.startswith("edgerep."):
        raise ValueError(f"{path}: not an edgerep result record")
    if kind and schema != f"edgerep.{kind}":
        raise ValueError(f"{path}: record of kind {schema}, expected edgerep.{kind}")
    if rec.get("schema_version", 0) > SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {rec['schema_version']} is newer than this edgerep reads")
    return rec
