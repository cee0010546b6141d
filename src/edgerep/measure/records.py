"""Versioned JSON result records with machine metadata (the pyperf habit).

Every measurement edgerep writes (evaluation, export, latency) is a record::

    {"schema": "edgerep.<kind>", "schema_version": 1, "created": ISO-8601 UTC,
     "edgerep_version": ..., "machine": {...}, ...payload}

Reports are built from these files only; the published tables from their excerpts in docs/records/.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from edgerep import __version__
from edgerep.errors import RecordError
from edgerep.io import atomic_write_json
from edgerep.registry import MB

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
        root = Path(__file__).resolve().parent  # git finds the work tree from any folder inside it
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


#: Packages whose versions change timings; two records are compared only when these agree.
COMPARED_PACKAGES = ("ai-edge-litert", "numpy", "tokenizers", "onnxruntime", "torch", "transformers")

#: CPU features that decide how fast int8, fp16 and float kernels run, in the Linux names of
#: /proc/cpuinfo (x86: ``flags``; ARM: ``Features``). x86: AVX2/FMA (float and int8 without
#: dot products), F16C (fp16 conversion), AVX-512 and its VNNI/BF16/FP16 extensions, AVX-VNNI,
#: AMX. ARM: ``asimd`` (NEON), ``asimddp`` (SDOT/UDOT int8 dot products, Armv8.2), ``i8mm``
#: (int8 matrix multiply, Armv8.6), ``fphp``/``asimdhp`` (fp16 arithmetic, Armv8.2), ``bf16``,
#: SVE/SVE2/SME (Linux ``Documentation/arch/arm64/elf_hwcaps.rst``).
KEY_CPU_FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_int8",
    "amx_tile",
    "asimd",
    "asimddp",
    "i8mm",
    "fphp",
    "asimdhp",
    "bf16",
    "sve",
    "sve2",
    "sme",
)


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """The :data:`KEY_CPU_FLAGS` this CPU has, from ``/proc/cpuinfo`` (empty where unreadable)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    have: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            have.update(value.split())
    return [f for f in KEY_CPU_FLAGS if f in have]


def machine_caption(machine: dict, threads: int | None = 1) -> str:
    """The ``machine`` line of a published table: CPU model, logical cores and the int8-relevant
    flags of a record's :func:`machine_info` (``threads``: the inference threads timed, if any),
    e.g. ``AMD EPYC, 2 cores; int8-relevant flags: avx2 fma f16c; 1 thread``."""
    flags = " ".join(f for f in machine.get("cpu_flags", []) if f in KEY_CPU_FLAGS) or "none recorded"
    line = f"{machine.get('cpu', '?')}, {machine.get('logical_cores', '?')} cores; int8-relevant flags: {flags}"
    return line if threads is None else f"{line}; {threads} thread{'s' if threads > 1 else ''}"


def differences(a: dict, b: dict) -> list[str]:
    """Why two records' timings do not compare: ``"cpu: X != Y"`` per differing CPU model, core
    count, CPU flags, Python, library version (:data:`COMPARED_PACKAGES`), edgerep version or
    commit. Empty when they compare."""
    out = []
    ma, mb = a.get("machine", {}), b.get("machine", {})
    for key in ("cpu", "logical_cores", "cpu_flags", "python", *COMPARED_PACKAGES):
        if ma.get(key) != mb.get(key):
            out.append(f"{key}: {ma.get(key)} != {mb.get(key)}")
    for key in ("edgerep_version", "git_commit"):
        if a.get(key) != b.get(key):
            out.append(f"{key}: {a.get(key)} != {b.get(key)}")
    return out


def machine_info() -> dict:
    """CPU model, instruction-set flags that decide int8 speed, logical cores, CPU affinity, total
    memory (MB = 10^6 bytes), OS, Python, and the versions of the inference libraries installed
    (read from package metadata; nothing is imported, so this runs on a device too)."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    try:
        import psutil

        info["memory_mb"] = round(psutil.virtual_memory().total / MB)
    except ImportError:
        pass
    info["cpu_flags"] = cpu_flags()
    for pkg in COMPARED_PACKAGES:
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
        RecordError: missing or unreadable, not JSON, not an edgerep record, another kind, or a
            newer schema version; the message names the file.
    """
    try:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"{path}: record not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path}: not a readable JSON record ({exc.__class__.__name__}: {exc})") from None
    schema = rec.get("schema", "") if isinstance(rec, dict) else ""
    if not isinstance(schema, str) or not schema.startswith("edgerep."):
        raise RecordError(f"{path}: not an edgerep result record")
    if kind and schema != f"edgerep.{kind}":
        raise RecordError(f"{path}: record of kind {schema}, expected edgerep.{kind}")
    if rec.get("schema_version", 0) > SCHEMA_VERSION:
        raise RecordError(f"{path}: schema_version {rec['schema_version']} is newer than this edgerep reads")
    return rec
