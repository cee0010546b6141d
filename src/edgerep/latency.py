"""Single-tweet latency of a bundle on real tweets (light: runtime only).

Warm-up runs are kept out of the samples; statistics are percentiles (nearest-rank via
``numpy.percentile``, linear interpolation) and mean ± standard deviation, in milliseconds.
The full benchmark (threads, device profiles, memory, baselines) builds on this.
"""

from __future__ import annotations

import os
import time
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
    """Time :meth:`PolarityClassifier.classify` tweet by tweet (tokenization included).

    Args:
        bundle_dir: bundle to load.
        texts: real tweets; each is one sample (at least 2).
        threads: LiteRT CPU threads.
        warmup: untimed runs before sampling.

    Returns:
        An ``edgerep.latency`` record: ``init_ms`` (bundle load), ``first_inference_ms``,
        ``latency`` (:func:`latency_stats`), ``throughput_tweets_per_s`` (1000 / mean latency),
        ``model_size_mb``.
    """
    from edgerep.runtime import PolarityClassifier

    if len(texts) < 2:
        raise ValueError("need at least 2 texts to measure latency")
    t0 = time.perf_counter()
    clf = PolarityClassifier(bundle_dir, num_threads=threads)
    init_ms = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    clf.logits([texts[0]])
    first_ms = (time.perf_counter() - t0) * 1e3
    for i in range(warmup):
        clf.logits([texts[i % len(texts)]])
    samples = []
    for t in texts:
        s = time.perf_counter()
        clf.logits([t])
        samples.append((time.perf_counter() - s) * 1e3)
    stats = latency_stats(samples)
    return make_record(
        "latency",
        {
            "bundle": str(bundle_dir),
            "quantization": clf.manifest.quantization.get("mode"),
            "threads": threads,
            "warmup": warmup,
            "init_ms": round(init_ms, 2),
            "first_inference_ms": round(first_ms, 2),
            "latency": stats,
            "throughput_tweets_per_s": round(1e3 / stats["mean_ms"], 2),
            "model_size_mb": round(clf.model_size_bytes / 1e6, 3),
        },
    )
