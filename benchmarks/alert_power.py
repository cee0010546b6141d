#!/usr/bin/env python
"""The most any alert rule can detect at ``edgerep monitor``'s false-alarm rate, per window size.

An upper bound for the rule measured by ``benchmarks/alert_quality.py``: an exact one-sided
binomial test of a window's negative count against a baseline rate known without error and
streams without overdispersion (a real rule estimates the baseline from eight windows and allows
for week-to-week variation, so it detects less). A crisis moves ``factor`` times the window's
expected negatives into it (1.0 doubles them), as in ``alert_quality.py``. Window sizes: fixed
ranges (the power averaged over each size in the range, as the binomial's steps make it jump
from one size to the next) and the corpus's own usable week windows (averaged over them)::

    python benchmarks/alert_power.py --data ../shared/data/replab2013 --table docs/records/alert-power.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import binom

from edgerep import LABELS
from edgerep.app.monitor import MonitorConfig
from edgerep.data import load_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alert_quality import windows_of  # noqa: E402  (the benchmarks' one window rule)


def critical_count(n: int, rate: float, alpha: float) -> int:
    """Smallest negative count c with P(X >= c) < ``alpha`` for X ~ Binomial(``n``, ``rate``)."""
    c = int(binom.isf(alpha, n, rate))
    while binom.sf(c - 1, n, rate) >= alpha:
        c += 1
    return c


def power(n: int, rate: float, alpha: float, factor: float) -> float:
    """Probability that a window of ``n`` tweets at the baseline ``rate``, with ``factor * n *
    rate`` (rounded) negative tweets moved in, reaches the critical count of its new size."""
    moved = max(1, round(factor * n * rate))
    c = critical_count(n + moved, rate, alpha)
    return float(binom.sf(c - moved - 1, n, rate))


def corpus_windows(data: Path, min_tweets: int) -> tuple[np.ndarray, float]:
    """Sizes int [windows] of the corpus's entity-weeks with >= ``min_tweets`` polarity-labelled
    tweets, and the corpus's NEGATIVE share."""
    tweets, _ = load_split(data)
    ent = np.array([t.entity_id for t in tweets])
    week = windows_of(np.array([t.timestamp for t in tweets], dtype=np.int64), "week")[0]
    _, counts = np.unique(np.stack([np.unique(ent, return_inverse=True)[1], week]), axis=1, return_counts=True)
    rate = float(np.mean([t.label == LABELS[0] for t in tweets]))
    return counts[counts >= min_tweets], rate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--min-tweets", type=int, default=30)
    ap.add_argument("--sizes", default="30,50,80,120,200,400", help="bounds of the window-size ranges (tweets) to tabulate")
    ap.add_argument("--factors", default="0.5,1,2", help="crisis sizes as multiples of the window's expected negatives")
    ap.add_argument("--table", type=Path, help="write the docs-table record here")
    args = ap.parse_args(argv)
    alpha = MonitorConfig(window="week").alpha
    sizes, rate = corpus_windows(args.data, args.min_tweets)
    factors = [float(f) for f in args.factors.split(",")]
    bounds = [int(b) for b in args.sizes.split(",")]
    ranges = [(f"the corpus's {len(sizes)} usable entity-weeks", sizes.tolist())]
    ranges += [(f"{lo}-{hi - 1} tweets", list(range(lo, hi))) for lo, hi in zip(bounds, bounds[1:])]
    rows = []
    for label, ns in ranges:
        rows.append([label, *[f"{np.mean([power(n, rate, alpha, f) for n in ns]):.0%}" for f in factors]])
        print(" | ".join(rows[-1]), flush=True)
    q = np.percentile(sizes, [25, 50, 75, 90]).round().astype(int).tolist()
    if args.table:
        table = {
            "schema": "edgerep.docs-table",
            "schema_version": 1,
            "title": "The most an alert rule can detect at the monitor's false-alarm rate",
            "caption": (
                f"Exact one-sided binomial test, baseline NEGATIVE share known ({rate:.3f}, the corpus's), no overdispersion, "
                f"p < {alpha:.4f} (0.5 false alarms per entity-year on week windows); an upper bound for any rule. "
                f"The corpus's {len(sizes)} entity-weeks with >= {args.min_tweets} tweets hold {q[0]} / {q[1]} / {q[2]} / {q[3]} tweets "
                "(quartiles and 90th percentile)."
            ),
            "machine": "any (computed, not timed)",
            "date": dt.date.today().isoformat(),
            "source": "benchmarks/alert_power.py",
            "columns": ["window", *[f"crisis {f:g} x the expected negatives" for f in factors]],
            "rows": rows,
        }
        args.table.write_text(json.dumps(table, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
