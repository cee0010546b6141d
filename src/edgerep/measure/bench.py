"""Edge benchmark: latency, throughput, memory and CPU of bundles, in isolated processes,
under emulated device profiles, with the PyTorch model as baseline in the same run.

Each (model, threads, profile) cell runs in a fresh worker process (``python -m edgerep.measure.bench``)
so its peak RSS and CPU time are its own. The worker pins itself to the profile's cores
(``os.sched_setaffinity``) and caps its memory: with cgroup v2 (a unified hierarchy whose
delegated cgroup offers the ``memory`` controller to its children) the parent makes a child
cgroup with ``memory.max`` = the board's RAM and ``memory.swap.max`` = 0 and the worker joins it
(``cgroup.procs``), so the cap is on resident memory as on the board, and the kernel's
``memory.peak`` is recorded; elsewhere (cgroup v1, no delegation, macOS) it falls back to
``RLIMIT_AS``, a cap on address space (stricter than RSS). The worker then loads the model (init time), times the first inference, runs the warm-up (not sampled),
then classifies the same real tweets, one at a time. A cell's ``repeats`` runs are taken in as
many worker processes, interleaved across the cells of one (profile, threads, batch) group in
alternating order: run 1 times the cells A, B, C, run 2 C, B, A, run 3 A, B, C (pyperf also
spreads a benchmark over several worker processes). A machine that slows down or speeds up
during the bench (a shared host) then moves every cell alike, and the ratios between cells
(x transformers, x ONNX Runtime) hold; with one process per cell, timed one after the other, a
drift of minutes lands on whichever cells ran during it. Statistics (the pyperf habit): median
(p50), p90, p99 and the median absolute deviation (MAD) of the per-tweet latency (ms) over all
runs; stability is judged on the repeated runs of the same work: a cell whose runs' medians
spread more than :data:`UNSTABLE_SPREAD` of the overall median is flagged unstable (a busy
machine), not a cell whose tweets differ in length. Throughput = tweets / sampled wall time (summed over the runs),
CPU = (user + sys) / wall (% of one core), peak RSS (the largest of the runs) = ``VmHWM`` of ``/proc/self/status`` (the
kernel's high-water mark of this process's own memory, MB = 10^6 bytes; ``ru_maxrss`` where there
is no /proc: on Linux ``ru_maxrss`` survives ``fork`` + ``execve``, so a worker started by a large
parent would report the parent's peak).

Profiles emulate the board's core count and RAM only: the instruction set, clock and caches are
this machine's, so absolute times are not a Raspberry Pi's.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np

from edgerep.errors import ConfigError
from edgerep.measure.records import cpu_flags
from edgerep.registry import MB, PROFILES, DeviceProfile

#: A cell is unstable when its repeated runs' medians spread (max - min) more than this share of
#: the overall median (pyperf warns at a standard deviation above 10% of the mean).
UNSTABLE_SPREAD = 0.10
#: Fewer samples than this: percentiles are rough.
MIN_SAMPLES = 30
#: A p99 above this multiple of the p50 is reported as a long tail.
LONG_TAIL = 3.0


def latency_stats(samples_ms: Sequence[float], runs: int = 1) -> dict:
    """Statistics of latency samples (ms) taken in ``runs`` equal runs of the same work, in order.

    Returns:
        ``{"n", "p50_ms", "p90_ms", "p99_ms", "mad_ms", "min_ms", "max_ms", "mean_ms",
        "run_medians_ms", "run_spread"}``: percentiles by ``numpy.percentile`` (linear
        interpolation), MAD = median(|x - median|), ``run_spread`` = (max - min) of the runs'
        medians / the overall median.
    """
    a = np.asarray(samples_ms, dtype=np.float64)
    med = float(np.median(a))
    per_run = [float(np.median(r)) for r in np.array_split(a, max(1, runs)) if r.size]
    return {
        "n": int(a.size),
        "p50_ms": med,
        "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)),
        "mad_ms": float(np.median(np.abs(a - med))),
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
        "mean_ms": float(a.mean()),
        "run_medians_ms": [round(m, 4) for m in per_run],
        "run_spread": round((max(per_run) - min(per_run)) / med, 4) if med > 0 else 0.0,
    }


CGROUP_ROOT = "/sys/fs/cgroup"


def cgroup_v2_parent(
    root: str | os.PathLike = CGROUP_ROOT, proc_cgroup: str | os.PathLike = "/proc/self/cgroup"
) -> tuple[Path | None, str]:
    """The cgroup v2 directory under which this process may create memory-capped children.

    Conditions (kernel doc ``admin-guide/cgroup-v2.rst``): ``root`` is a unified hierarchy
    (``cgroup.controllers`` exists), this process's cgroup is the ``0::/path`` line of
    ``/proc/self/cgroup``, its ``cgroup.subtree_control`` lists ``memory`` (children get the
    controller) and it is writable (delegated to us).

    Returns:
        ``(directory, "cgroup v2")`` or ``(None, reason)`` — the reason says why the caller
        falls back to ``RLIMIT_AS``.
    """
    root = Path(root)
    if not (root / "cgroup.controllers").is_file():
        return None, f"no cgroup v2 unified hierarchy at {root}"
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError as e:
        return None, f"cannot read {proc_cgroup}: {e.strerror}"
    rel = next((ln[3:] for ln in lines if ln.startswith("0::")), None)
    if rel is None:
        return None, f"{proc_cgroup} has no cgroup v2 entry"
    here = root / rel.lstrip("/")
    try:
        enabled = (here / "cgroup.subtree_control").read_text().split()
    except OSError:
        return None, f"cannot read {here / 'cgroup.subtree_control'}"
    if "memory" not in enabled:
        return None, f"memory controller not enabled for children of {here}"
    if not os.access(here, os.W_OK):
        return None, f"{here} is not delegated to this user"
    return here, "cgroup v2"


def make_memory_cgroup(parent: Path, name: str, memory_mib: int) -> Path:
    """Create the child cgroup ``parent/name`` with ``memory.max`` = ``memory_mib`` MiB and no swap.

    Raises:
        OSError: the kernel refused (the caller falls back to ``RLIMIT_AS``).
    """
    cg = parent / name
    cg.mkdir()
    try:
        (cg / "memory.max").write_text(str(memory_mib * 2**20))
        if (cg / "memory.swap.max").exists():
            (cg / "memory.swap.max").write_text("0")
    except OSError:
        remove_cgroup(cg)
        raise
    return cg


def cgroup_stats(cg: Path) -> dict:
    """``memory.peak`` (MB = 10^6 bytes, kernel >= 5.19) and the ``oom_kill`` count of ``memory.events``."""
    out: dict = {}
    try:
        out["cgroup_memory_peak_mb"] = round(int((cg / "memory.peak").read_text()) / MB, 1)
    except (OSError, ValueError):
        pass
    try:
        events = dict(ln.split() for ln in (cg / "memory.events").read_text().splitlines() if ln.strip())
        out["oom_kill"] = int(events.get("oom_kill", 0))
    except (OSError, ValueError):
        pass
    return out


def remove_cgroup(cg: Path) -> None:
    """``rmdir`` an empty cgroup (its interface files go with it); a failure is ignored."""
    try:
        cg.rmdir()
    except OSError:
        pass


def _apply_profile(profile: DeviceProfile, cgroup: str | None = None, note: str | None = None) -> dict:
    applied: dict = {"profile": profile.name}
    isa = profile.isa_note(cpu_flags())
    if isa:
        applied["not_emulated"] = isa
    if profile.cores:
        available = sorted(os.sched_getaffinity(0))
        cpus = set(available[: profile.cores])
        os.sched_setaffinity(0, cpus)
        applied["cpus"] = sorted(cpus)
        if len(cpus) < profile.cores:
            applied["note"] = f"{profile.cores} cores wanted, host has {len(available)}"
    if profile.memory_mib and cgroup:  # the parent made the cgroup (make_memory_cgroup); join it
        Path(cgroup, "cgroup.procs").write_text(str(os.getpid()))
        applied["memory_cap_mib"] = profile.memory_mib
        applied["memory_cap"] = f"cgroup v2 memory.max, no swap ({cgroup})"
    elif profile.memory_mib:
        limit = profile.memory_mib * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        applied["memory_cap_mib"] = profile.memory_mib
        applied["memory_cap"] = "RLIMIT_AS (address space; stricter than RSS)"
        if note:
            applied["memory_cap_note"] = note
    return applied


def run_worker(spec: dict) -> dict:
    """Measure one cell in this process (called in the worker; see the module docstring).

    ``spec``: ``{"kind": "bundle"|"pytorch", "path", "threads", "profile", "texts", "warmup",
    "batch", "repeats"}`` and optionally ``"entities"`` (one name per text, used by
    entity-conditioned models only) and ``"keep_samples"`` (return the per-call latencies ms,
    ``samples_ms``, with ``wall_s`` and ``cpu_s``, for :func:`merge_runs`). With ``batch`` B > 1 a sample is one call on B tweets (latency of a
    batch) and throughput counts tweets. Every run times the same calls in the same order.
    """
    applied = _apply_profile(PROFILES[spec["profile"]], spec.get("cgroup"), spec.get("cgroup_note"))
    texts: list[str] = spec["texts"]
    entities: list[str] | None = spec.get("entities")
    threads = int(spec["threads"])
    batch = int(spec.get("batch", 1))
    repeats = max(1, int(spec.get("repeats", 1)))
    t0 = time.perf_counter()
    infer, size_mb, backend, quantization, conditioned = _inference(spec["kind"], spec["path"], threads, batch)
    init_ms = (time.perf_counter() - t0) * 1e3
    starts = list(range(0, len(texts) - batch + 1, batch)) or [0]
    names = entities if conditioned else None
    chunks = [(texts[i : i + batch], None if names is None else names[i : i + batch]) for i in starts]
    t0 = time.perf_counter()
    infer(*chunks[0])
    first_ms = (time.perf_counter() - t0) * 1e3
    for i in range(spec["warmup"]):
        infer(*chunks[i % len(chunks)])
    samples = []
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    w0 = time.perf_counter()
    for _ in range(repeats):
        for chunk in chunks:
            s = time.perf_counter()
            infer(*chunk)
            samples.append((time.perf_counter() - s) * 1e3)
    wall = time.perf_counter() - w0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    raw = {"samples_ms": [round(x, 4) for x in samples], "wall_s": wall, "cpu_s": cpu_s} if spec.get("keep_samples") else {}
    return {
        **raw,
        "kind": spec["kind"],
        "path": spec["path"],
        "backend": backend,
        "quantization": quantization,
        "threads": threads,
        "batch": batch,
        "repeats": repeats,
        "profile": applied,
        "model_size_mb": round(size_mb, 3),
        "init_ms": round(init_ms, 2),
        "first_inference_ms": round(first_ms, 2),
        "latency": latency_stats(samples, repeats),
        "throughput_tweets_per_s": round(len(samples) * batch / wall, 2),
        "cpu_percent_of_one_core": round(100 * cpu_s / wall, 1),
        "peak_rss_mb": round(peak_rss_bytes() / MB, 1),
    }


def _inference(kind: str, path: str, threads: int, batch: int):
    """``(infer, size MB, backend, quantization, entity-conditioned)`` of a bundle (the light
    runtime) or a fine-tuned PyTorch model (transformers, dynamic padding: what a transformers
    user runs); ``infer(texts, entity names or None)`` classifies one call's tweets."""
    if kind == "bundle":
        from edgerep.device.runtime import PolarityClassifier

        clf = PolarityClassifier(path, num_threads=threads)

        def infer(chunk: list[str], names: list[str] | None) -> None:
            clf.logits(chunk, batch_size=batch, entities=names)

        return infer, clf.model_size_bytes / MB, clf.manifest.backend, clf.manifest.quantization.get("mode"), clf.entity_conditioned
    import torch

    from edgerep.device.tokenizer import TweetTokenizer
    from edgerep.workstation.inference import torch_logits
    from edgerep.workstation.models import checkpoint_size_mb, load_finetuned

    torch.set_num_threads(threads)
    model, info = load_finetuned(path)
    conditioned = bool(info.get("entity_conditioned", False))
    tokenizer = TweetTokenizer(Path(path) / "tokenizer.json", int(info["max_seq_len"]), conditioned)

    def infer_torch(chunk: list[str], names: list[str] | None) -> None:
        torch_logits(model, tokenizer, chunk, batch_size=len(chunk), entities=names)

    return infer_torch, checkpoint_size_mb(path), "pytorch", "fp32", conditioned


def peak_rss_bytes(status: str | os.PathLike = "/proc/self/status") -> int:
    """This process's peak resident set size in bytes: ``VmHWM`` of ``/proc/self/status`` (kB),
    else ``ru_maxrss`` (kB on Linux, bytes on macOS)."""
    try:
        for line in Path(status).read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def warnings_of(cell: dict) -> list[str]:
    """Warnings of a measured cell: too few samples, unstable repeated runs, a long tail."""
    lat = cell["latency"]
    out = []
    if lat["n"] < MIN_SAMPLES:
        out.append(f"only {lat['n']} samples: percentiles are rough")
    if lat.get("run_spread", 0.0) > UNSTABLE_SPREAD:
        medians = ", ".join(f"{m:.2f}" for m in lat["run_medians_ms"])
        out.append(
            f"unstable: the medians of {len(lat['run_medians_ms'])} runs of the same tweets spread "
            f"{100 * lat['run_spread']:.0f}% ({medians} ms; busy machine?)"
        )
    if lat["p99_ms"] > LONG_TAIL * lat["p50_ms"]:
        out.append(f"long tail: p99 {lat['p99_ms']:.2f} ms > {LONG_TAIL:g}x p50")
    return out


class CellRunner(Protocol):
    """Runs one worker spec (a JSON-able dict, read by :func:`run_worker`) and returns its cell:
    :class:`LocalCells` here, :class:`edgerep.measure.remote.SSHCells` on a device over SSH."""

    def spec_extras(self, profile: DeviceProfile) -> dict: ...

    def __call__(self, spec: dict) -> dict: ...


class LocalCells:
    """Worker processes on this machine, each pinned to its profile's cores, its memory capped
    by a cgroup v2 (or ``RLIMIT_AS`` where no cgroup can be made), killed after ``timeout_s``."""

    def __init__(self, profiles: Sequence[DeviceProfile], timeout_s: float = 900):
        self.timeout_s = timeout_s
        self.cgroup_parent, self.cgroup_reason = cgroup_v2_parent() if any(p.memory_mib for p in profiles) else (None, "")

    def spec_extras(self, profile: DeviceProfile) -> dict:
        if self.cgroup_parent is None and profile.memory_mib:
            return {"cgroup_note": f"{self.cgroup_reason}: RLIMIT_AS instead"}
        return {}

    def __call__(self, spec: dict) -> dict:
        return _run_cell(spec, self.timeout_s, self.cgroup_parent)


def bench(
    models: Sequence[str | os.PathLike],
    texts: Sequence[str],
    threads: Sequence[int] = (1,),
    profiles: Sequence[DeviceProfile] = (PROFILES["host"],),
    baseline: str | os.PathLike | None = None,
    warmup: int = 20,
    timeout_s: float = 900,
    batches: Sequence[int] = (1,),
    checkpoint: str | os.PathLike | None = None,
    repeats: int = 3,
    entities: Sequence[str] | None = None,
    runner: CellRunner | None = None,
) -> dict:
    """Benchmark bundles (and a PyTorch baseline) on real tweets; return an ``edgerep.bench`` record.

    Each run of a cell is its own worker process, and the cells of a (profile, threads, batch)
    group take turns run after run (A B C, C B A, ...: module docstring).

    Args:
        models: bundle directories.
        texts: the tweets timed (each one sample; the first ``warmup`` runs are not sampled).
        threads: inference thread counts.
        profiles: device profiles to emulate.
        baseline: fine-tuned PyTorch model directory measured in the same run (needs torch).
        warmup: untimed inferences before sampling.
        timeout_s: per-cell limit of the local runner.
        batches: batch sizes (a bundle supports 1 and its manifest's ``batch_size``; a cell
            asking for another fails with that message).
        checkpoint: a partial record rewritten atomically after every worker process; when it
            exists and was made with the same settings and tweets, its finished cells and runs
            are kept and only the missing ones run (an interrupted bench resumes). The caller
            deletes it once the final record is written.
        repeats: runs over the same tweets per cell (stability is judged across them).
        entities: the entity name of each text, read by entity-conditioned models only.
        runner: where the workers run (default: :class:`LocalCells`, this machine).

    Returns:
        Record with ``settings`` and ``cells`` (one per model x threads x profile x batch; a cell
        that failed, e.g. out of memory under the profile's cap, carries ``error``); each bundle
        cell has ``speedup_vs_pytorch`` (baseline p50 / p50) when a baseline ran.

    Raises:
        ConfigError: fewer than 2 tweets, or no model.
    """
    from edgerep.log import progress
    from edgerep.measure.records import make_record, write_record

    _check_request(models, texts, baseline, repeats, entities)
    runner = runner or LocalCells(profiles, timeout_s)
    jobs = [("bundle", str(m)) for m in models] + ([("pytorch", str(baseline))] if baseline else [])
    settings = {
        "tweets": len(texts),
        "tweets_sha256": _texts_digest(list(texts) + list(entities or ())),
        "warmup": warmup,
        "repeats": repeats,
        "threads": list(threads),
        "profiles": [asdict(p) for p in profiles],
        "interleaved": True,
    }
    done, runs_done = _resume(checkpoint, settings)
    head = make_record("bench", {"settings": settings, "complete": False})  # machine read once, not per cell

    def save(cells: list[dict]) -> None:
        if checkpoint is not None:
            write_record(checkpoint, {**head, "cells": cells, "runs": runs_done})

    common = {"texts": list(texts), "warmup": warmup, "repeats": 1, "entities": None if entities is None else list(entities)}
    cells: list[dict] = []
    with progress("bench", len(jobs) * len(threads) * len(profiles) * len(batches) * repeats) as bar:
        for profile in profiles:
            for n in threads:
                for batch in batches:
                    group = [
                        ((path, n, batch, profile.name), _cell_spec(kind, path, n, profile, batch, common, runner)) for kind, path in jobs
                    ]
                    failed = _run_group(group, repeats, done, runs_done, runner, bar, partial(save, cells))
                    cells.extend(_group_cells([key for key, _ in group], done, failed, runs_done))
                    save(cells)
    _compare_with_baseline(cells)
    return make_record("bench", {"settings": settings, "cells": cells})


def _check_request(models: Sequence, texts: Sequence[str], baseline, repeats: int, entities: Sequence[str] | None) -> None:
    """Raises ConfigError: fewer than 2 tweets, ``repeats`` < 1, nothing to time, or entity names miscounted."""
    if len(texts) < 2:
        raise ConfigError("need at least 2 tweets to benchmark")
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    if not models and baseline is None:
        raise ConfigError("nothing to benchmark: give bundle directories and/or --baseline")
    if entities is not None and len(entities) != len(texts):
        raise ConfigError(f"{len(entities)} entity names for {len(texts)} tweets")


def _cell_spec(kind: str, path: str, threads: int, profile: DeviceProfile, batch: int, common: dict, runner) -> dict:
    """The worker's spec of one run of one cell (:func:`run_worker`)."""
    spec = {"kind": kind, "path": path, "threads": threads, "profile": profile.name, "batch": batch, "keep_samples": True}
    return spec | common | runner.spec_extras(profile)


def _run_group(group: list[tuple[tuple, dict]], repeats: int, done: dict, runs_done: list[dict], runner, bar, save) -> dict[tuple, dict]:
    """Run the cells of one (profile, threads, batch) group ``repeats`` times, taking turns (A B C,
    C B A, ...); runs kept from a checkpoint are skipped. Appends each run to ``runs_done`` and
    calls ``save`` after it; returns the failed cells by key."""
    failed: dict[tuple, dict] = {}
    for r in range(repeats):
        for key, spec in group if r % 2 == 0 else group[::-1]:
            if key in done or key in failed or any(_cell_key(x) == key and x["run_index"] == r for x in runs_done):
                bar.advance(1)
                continue
            result = runner(spec)
            if "error" in result:
                failed[key] = result
            else:
                runs_done.append({**result, "run_index": r})
            bar.advance(1, info=f"{Path(spec['path']).name} t{spec['threads']} b{spec['batch']} {spec['profile']} run {r + 1}/{repeats}")
            save()
    return failed


def _group_cells(keys: list[tuple], done: dict[tuple, dict], failed: dict[tuple, dict], runs_done: list[dict]) -> list[dict]:
    """A group's cells in job order: kept from a checkpoint, failed, or merged from their runs
    (which leave ``runs_done``)."""
    cells = []
    for key in keys:
        if key in done:
            cells.append(done[key])
        elif key in failed:
            cells.append(failed[key])
        else:
            cells.append(merge_runs(sorted((x for x in runs_done if _cell_key(x) == key), key=lambda x: x["run_index"])))
            runs_done[:] = [x for x in runs_done if _cell_key(x) != key]
    return cells


def _compare_with_baseline(cells: list[dict]) -> None:
    """Add each cell's warnings, and to each bundle cell its speed-up and size ratio against the
    PyTorch baseline measured with the same threads, batch and profile (when there is one)."""
    for c in cells:
        if "error" in c:
            continue
        c["warnings"] = warnings_of(c)
        base = next(
            (
                b
                for b in cells
                if b.get("kind") == "pytorch"
                and "error" not in b
                and b["threads"] == c["threads"]
                and b.get("batch", 1) == c.get("batch", 1)
                and b["profile"]["profile"] == c["profile"]["profile"]
            ),
            None,
        )
        if base is not None and c["kind"] == "bundle":
            c["speedup_vs_pytorch"] = (
                round(c["throughput_tweets_per_s"] / base["throughput_tweets_per_s"], 2)
                if c.get("batch", 1) > 1
                else round(base["latency"]["p50_ms"] / c["latency"]["p50_ms"], 2)
            )
            c["size_ratio_vs_pytorch"] = round(base["model_size_mb"] / c["model_size_mb"], 2)


def bench_bundles(
    bundles: Sequence[Path],
    tweets: Path,
    threads: Sequence[int],
    batches: Sequence[int],
    profiles: Sequence[DeviceProfile],
    baseline: Path | None,
    samples: int,
    warmup: int,
    repeats: int,
    output: Path | None = None,
    entity: str | None = None,
    host: str | None = None,
    ssh: dict | None = None,
) -> dict:
    """What ``edgerep bench`` does: check the bundles and the output before measuring, choose
    ``samples`` tweets from ``tweets`` (:func:`edgerep.data.benchmark_tweets`), run
    :func:`bench` here (resuming from ``OUTPUT.partial``) or on ``host`` over SSH
    (:func:`edgerep.measure.remote.bench_remote` with the ``ssh`` options), and merge the record
    into ``output`` when given. Returns the (merged) record.

    Raises:
        ConfigError: ``output`` is a directory or not a bench record.
        BundleError: a bundle is invalid. InputTextError: no entity for an entity-conditioned bundle.
        RemoteError: see :func:`edgerep.measure.remote.bench_remote`.
    """
    from edgerep.data import benchmark_tweets
    from edgerep.device.manifest import Manifest
    from edgerep.errors import InputTextError
    from edgerep.measure.records import read_record

    if output is not None and output.is_dir():  # found now, not after minutes of measuring
        raise ConfigError(f"--output {output}: is a directory; give a JSON file path, e.g. {output / 'bench.json'}")
    if output is not None and output.is_file():  # merged into at the end: must be a bench record
        read_record(output, "bench")
    manifests = [Manifest.read(b) for b in bundles]  # fail fast, before any worker starts
    sample = benchmark_tweets(tweets, samples)
    texts = sample.texts
    entities = [entity] * len(texts) if entity is not None else sample.entities
    if entities is None and any(m.entity_conditioned for m in manifests):
        raise InputTextError(f"{tweets} names no entities and a bundle is entity-conditioned: give --entity NAME")
    checkpoint = None
    if host:
        from edgerep.measure.remote import bench_remote

        rec = bench_remote(
            host, [str(b) for b in bundles], texts, threads, [p.name for p in profiles], warmup, repeats, entities, **(ssh or {})
        )
    else:
        checkpoint = output.with_name(output.name + ".partial") if output else None
        rec = bench(
            [str(b) for b in bundles],
            texts,
            threads,
            profiles,
            baseline,
            warmup,
            batches=batches,
            checkpoint=checkpoint,
            repeats=repeats,
            entities=entities,
        )
    if output:
        rec = merge_into(output, rec)
        if checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
    return rec


def merge_runs(runs: Sequence[dict]) -> dict:
    """One cell from its runs, each measured in its own worker process (:func:`run_worker` with
    ``keep_samples``), in run order: latency statistics over all samples with one median per run
    (:func:`latency_stats`), throughput = all tweets / summed wall time, CPU = summed CPU time /
    summed wall time, peak RSS and the cgroup's memory peak = the largest run's, init and
    first-inference times = the median run's (ms).

    Raises:
        ValueError: no runs.
    """
    if not runs:
        raise ValueError("merge_runs needs at least one run")
    samples = [x for r in runs for x in r["samples_ms"]]
    wall = sum(r["wall_s"] for r in runs)
    cpu = sum(r["cpu_s"] for r in runs)
    cell = {k: v for k, v in runs[0].items() if k not in ("samples_ms", "wall_s", "cpu_s", "run_index")}
    profile = dict(runs[0]["profile"])
    for k in ("cgroup_memory_peak_mb", "oom_kill"):
        if any(k in r["profile"] for r in runs):
            profile[k] = max(r["profile"].get(k, 0) for r in runs)
    batch = int(cell.get("batch", 1))
    cell.update(
        repeats=len(runs),
        processes=len(runs),
        profile=profile,
        init_ms=round(float(np.median([r["init_ms"] for r in runs])), 2),
        first_inference_ms=round(float(np.median([r["first_inference_ms"] for r in runs])), 2),
        latency=latency_stats(samples, len(runs)),
        throughput_tweets_per_s=round(len(samples) * batch / wall, 2) if wall > 0 else 0.0,
        cpu_percent_of_one_core=round(100 * cpu / wall, 1) if wall > 0 else 0.0,
        peak_rss_mb=max(r["peak_rss_mb"] for r in runs),
    )
    return cell


def _texts_digest(texts: Sequence[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(texts).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _cell_key(c: dict) -> tuple:
    return (c["path"], c["threads"], c.get("batch", 1), c["profile"]["profile"])


def _resume(checkpoint: str | os.PathLike | None, settings: dict) -> tuple[dict[tuple, dict], list[dict]]:
    """Finished cells of a partial record made with the same settings (failed cells run again),
    and the finished runs of its unfinished cells (interleaved benches)."""
    if checkpoint is None or not Path(checkpoint).is_file():
        return {}, []
    from edgerep.errors import RecordError
    from edgerep.measure.records import differences, make_record, read_record

    try:
        old = read_record(checkpoint, "bench")
    except RecordError:  # not a bench record: start afresh (it is overwritten after the first cell)
        return {}, []
    diff = differences(old, make_record("bench", {}))
    if old.get("settings") != settings or diff:
        why = "; ".join(diff) if diff else "other settings"
        raise ConfigError(f"{checkpoint}: an interrupted bench made with {why}; delete it or use another --output")
    return {_cell_key(c): c for c in old.get("cells", []) if "error" not in c}, list(old.get("runs", []))


def _run_cell(spec: dict, timeout_s: float, cgroup_parent: Path | None = None) -> dict:
    ident = {
        "kind": spec["kind"],
        "path": spec["path"],
        "threads": spec["threads"],
        "batch": spec.get("batch", 1),
        "profile": {"profile": spec["profile"]},
    }
    profile = PROFILES.get(spec["profile"])
    cg = None
    if cgroup_parent is not None and profile is not None and profile.memory_mib:
        try:
            cg = make_memory_cgroup(cgroup_parent, f"edgerep-bench-{os.getpid()}-{time.monotonic_ns()}", profile.memory_mib)
            spec = {**spec, "cgroup": str(cg)}
        except OSError as e:
            spec = {**spec, "cgroup_note": f"cgroup v2 refused ({e.strerror}); RLIMIT_AS instead"}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "edgerep.measure.bench"], input=json.dumps(spec), capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return {**ident, "error": f"timed out after {timeout_s:.0f} s"}
    finally:
        stats = cgroup_stats(cg) if cg is not None else {}
        if cg is not None:
            remove_cgroup(cg)
    if proc.returncode != 0:
        tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:] or [f"exit code {proc.returncode}"]
        oom = ("MemoryError", "std::bad_alloc", "Cannot allocate memory")
        if stats.get("oom_kill") and profile is not None:
            return {
                **ident,
                "error": f"out of memory under the profile's cap: killed by the cgroup v2 OOM killer at {profile.memory_mib} MiB",
            }
        kind = "out of memory under the profile's cap" if any(k in proc.stderr for k in oom) else "failed"
        return {**ident, "error": f"{kind}: {tail[0][:300]}"}
    cell = json.loads(proc.stdout.strip().splitlines()[-1])
    cell["profile"].update(stats)
    return cell


def merge_into(path: str | os.PathLike, record: dict) -> dict:
    """Add ``record``'s cells to the record at ``path`` when both were made with the same
    settings on the same machine; refuse otherwise (runs with different settings never merge).

    Raises:
        ConfigError: settings, machine, library versions or commit differ
            (:func:`edgerep.measure.records.differences`).
        RecordError: ``path`` is not a bench record.
    """
    from edgerep.measure.records import differences, read_record, write_record

    path = Path(path)
    if path.is_file():
        old = read_record(path, "bench")

        def fixed(settings: dict) -> dict:  # threads and profiles may grow between runs; the rest may not
            return {k: v for k, v in settings.items() if k not in ("threads", "profiles")}

        if fixed(old["settings"]) != fixed(record["settings"]):
            raise ConfigError(f"{path}: made with other settings {old['settings']}; refusing to merge (use another --out)")
        diff = differences(old, record)
        if diff:
            raise ConfigError(f"{path}: measured on another machine or with other software ({'; '.join(diff)}); refusing to merge")
        keys = {_cell_key(c) for c in record["cells"]}
        record = {**record, "cells": [c for c in old["cells"] if _cell_key(c) not in keys] + record["cells"]}
    write_record(path, record)
    return record


if __name__ == "__main__":  # worker: spec JSON on stdin, result JSON on stdout
    result = run_worker(json.loads(sys.stdin.read()))
    sys.stdout.write(json.dumps(result) + "\n")
