"""Single-tweet latency of a bundle on real tweets (light: runtime only).

Warm-up runs are kept out of the samples; statistics are percentiles (``numpy.percentile``,
linear interpolation between order statistics) and mean ± sample standard deviation, in
milliseconds. The full benchmark (threads, device profiles, memory, baselines) is
:mod:`edgerep.bench`, which shares this module's statistics and timing loop.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from edgerep.results import make_record


def latency_stats(samples_ms: Sequence[float]) -> dict:
    """``{"n", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms"}`` of samples (ms)."""
    a = np.asarray(samples_ms, dtype=np.float64)
    return {
        "n": int(a.size),
        "p50_ms": float(np.percentile(a, 50)),
        "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": float(a.mean()),
        "std_ms": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
    }


def measure_latency(bundle_dir: str | os.PathLike, texts: Sequence[str], threads: int | None = 1, warmup: int = 10) -> dict:
    """Time one tweet at a time through a bundle, in this process (tokenization included).

    The timing loop is :func:`edgerep.bench.run_worker`'s (host profile, batch 1), so these
    figures and ``edgerep bench``'s are measured the same way.

    Args:
        bundle_dir: bundle to load.
        texts: real tweets; each is one sample (at least 2).
        threads: LiteRT CPU threads.
        warmup: untimed runs before sampling.

    Returns:
        An ``edgerep.latency`` record: ``init_ms`` (bundle load), ``first_inference_ms``,
        ``latency`` (:func:`latency_stats`), ``throughput_tweets_per_s``, ``model_size_mb``.

    Raises:
        ValueError: fewer than 2 texts.
    """
    from edgerep.bench import run_worker

    if len(texts) < 2:
        raise ValueError("need at least 2 texts to measure latency")
    cell = run_worker(
        {"kind": "bundle", "path": str(bundle_dir), "threads": threads or 1, "profile": "host", "texts": list(texts), "warmup": warmup}
    )
    keys = ("quantization", "threads", "init_ms", "first_inference_ms", "latency", "throughput_tweets_per_s", "model_size_mb")
    return make_record("latency", {"bundle": str(bundle_dir), "warmup": warmup, **{k: cell[k] for k in keys}})
