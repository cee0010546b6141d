#!/usr/bin/env python
"""Single-tweet latency of edgerep bundles on real RepLab validation tweets.

Prints a table (p50/p90/p99 ms, mean ± std, tweets/s, init ms, RSS MB) and writes one
``edgerep.latency`` JSON record per bundle and thread count. Warm-up runs are excluded.

    python benchmarks/bundle_latency.py runs/default/bundles/fp32 runs/default/bundles/dynamic-int8 \
        --data ../shared/data/replab2013 --threads 1,2 --tweets 500 --out runs/default/results/bench

The full edge benchmark (device profiles, memory caps, SSH devices, baselines) is ``edgerep bench``
(issue 4); this script is the figure behind the README's latency column.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import psutil

from edgerep.data import SplitConfig, spread
from edgerep.evaluate import select_tweets
from edgerep.latency import measure_latency
from edgerep.manifest import Manifest
from edgerep.results import write_record


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/replab2013"))
    ap.add_argument("--threads", default="1,2", help="comma-separated LiteRT thread counts")
    ap.add_argument("--tweets", type=int, default=500, help="validation tweets timed (one sample each)")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None, help="directory for the JSON records")
    args = ap.parse_args()

    split = SplitConfig(**Manifest.read(args.bundles[0]).split)
    tweets, _ = select_tweets(args.data, "training", "validation", split)
    texts = spread([t.text for t in tweets], args.tweets)
    proc = psutil.Process(os.getpid())
    print(f"{len(texts)} validation tweets, warm-up {args.warmup}, cpu: {os.cpu_count()} logical cores")
    print(f"{'bundle':<16}{'threads':>8}{'MB':>8}{'init ms':>9}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}{'mean±std ms':>14}{'tweets/s':>10}{'RSS MB':>8}")
    for bundle in args.bundles:
        for threads in (int(t) for t in args.threads.split(",")):
            rec = measure_latency(bundle, texts, threads=threads, warmup=args.warmup)
            rec["rss_mb_after"] = round(proc.memory_info().rss / 1e6, 1)
            lat = rec["latency"]
            print(
                f"{bundle.name:<16}{threads:>8}{rec['model_size_mb']:>8.1f}{rec['init_ms']:>9.1f}{lat['p50_ms']:>8.2f}"
                f"{lat['p90_ms']:>8.2f}{lat['p99_ms']:>8.2f}{lat['mean_ms']:>8.2f}±{lat['std_ms']:<5.2f}"
                f"{rec['throughput_tweets_per_s']:>10.1f}{rec['rss_mb_after']:>8.1f}"
            )
            if lat["std_ms"] > 0.5 * lat["mean_ms"]:
                print(f"  warning: unstable measurement (std {lat['std_ms']:.2f} ms > 50% of mean); machine busy?", file=sys.stderr)
            if args.out:
                write_record(args.out / f"latency-{bundle.name}-t{threads}.json", rec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
