#!/usr/bin/env python
"""Detection rate and false alarms of ``edgerep monitor``'s alert rule on real RepLab streams.

The streams are the corpus's polarity-labelled tweets of each entity at their real timestamps,
with their gold labels as the classifier's output (this measures the rule on real streams'
week-to-week variation, not the classifier). False alarms: the alerts on the streams as they are,
per entity-year (an entity's span from its first to its last usable window). Detection: per
repetition one usable window per entity (at least ``--min-tweets`` tweets and enough baseline
windows before it) gets a synthetic crisis: N real NEGATIVE tweets of the same entity from other
windows are moved into it, N = the window's own negative count times ``--factor`` (1.0 doubles
it); a crisis is detected when that window alerts. Week windows (Monday, UTC) or calendar
months (``--window month``)::

    python benchmarks/alert_quality.py --data ../shared/data/replab2013 --out /tmp/alerts --table docs/records/alerts.json
    python benchmarks/alert_quality.py --data ../shared/data/replab2013 --out /tmp/alerts-month --window month \
        --table docs/records/alerts-month.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np

from edgerep import LABELS
from edgerep.app.batch import write_shard
from edgerep.app.monitor import MIN_BASELINE, WINDOWS, MonitorConfig, aggregate, alerts, shares
from edgerep.data import load_split
from edgerep.data.replab import entity_names
from edgerep.measure.records import machine_info

WEEK = 7 * 86400
MONDAY_OFFSET = 4 * 86400  # 1970-01-05 is a Monday: week windows start on Mondays, UTC


def windows_of(times: np.ndarray, window: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(index, start, width)``, each int64 [n]: the window of each Unix time (weeks from Monday
    or calendar months, UTC), its start and its length in seconds."""
    if window == "week":
        index = (times - MONDAY_OFFSET) // WEEK
        return index, MONDAY_OFFSET + index * WEEK, np.full(len(times), WEEK)
    month = times.astype("datetime64[s]").astype("datetime64[M]")
    start = month.astype("datetime64[s]").astype(np.int64)
    return month.astype(np.int64), start, (month + 1).astype("datetime64[s]").astype(np.int64) - start


def _write(out: Path, ent: list[str], times: np.ndarray, labels: np.ndarray) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    onehot = np.eye(3)[labels]
    cols = {
        "id": [str(i) for i in range(len(ent))],
        "entity": ent,
        "time": times.tolist(),
        "label": [LABELS[i] for i in labels],
        "p_negative": onehot[:, 0].tolist(),
        "p_neutral": onehot[:, 1].tolist(),
        "p_positive": onehot[:, 2].tolist(),
        "related": [None] * len(ent),
        "p_related": [None] * len(ent),
        "error": [None] * len(ent),
        "text": [None] * len(ent),
    }
    path = out / "part-00000.parquet"
    write_shard(path, cols, {"edgerep.bundle": "gold", "edgerep.bundle_sha256": "0" * 64})
    return [path]


def _alerts(files: list[Path], cfg: MonitorConfig) -> list[dict]:
    agg = aggregate(files, cfg)
    return alerts(agg, shares(agg, None, cfg.min_tweets), cfg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--min-tweets", type=int, default=30)
    ap.add_argument("--factors", default="0.5,1,2", help="crisis sizes as multiples of the window's negative count")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--window", choices=("week", "month"), default="week")
    ap.add_argument("--table", type=Path, help="write the docs-table record here")
    args = ap.parse_args(argv)
    cfg = MonitorConfig(window=args.window, min_tweets=args.min_tweets, method="cc")
    tweets, _ = load_split(args.data)
    names = entity_names(args.data)
    ent = [names[t.entity_id] for t in tweets]
    times = np.array([t.timestamp for t in tweets], dtype=np.int64)
    labels = np.array([LABELS.index(t.label) for t in tweets])
    files = _write(args.out / "base", ent, times, labels)
    base_alerts = _alerts(files, cfg)

    week, starts, widths = windows_of(times, args.window)
    start_of = dict(zip(week.tolist(), starts.tolist()))
    width_of = dict(zip(week.tolist(), widths.tolist()))
    ent_arr = np.array(ent)
    eligible: dict[str, list[int]] = {}
    years = 0.0
    for e in np.unique(ent_arr):
        wk, n = np.unique(week[ent_arr == e], return_counts=True)
        usable = wk[n >= args.min_tweets]
        if len(usable):
            years += (usable.max() - usable.min() + 1) / WINDOWS[args.window]
        if len(usable) > MIN_BASELINE:
            eligible[str(e)] = [int(w) for w in usable[MIN_BASELINE:]]
    rng = np.random.default_rng(args.seed)
    rows = []
    for factor in (float(f) for f in args.factors.split(",")):
        hits = trials = 0
        for _ in range(args.repeats):
            t2 = times.copy()
            targets = {}
            for e, weeks in eligible.items():
                target = int(rng.choice(weeks))
                in_target = (ent_arr == e) & (week == target)
                k = int((labels[in_target] == 0).sum())
                donors = np.flatnonzero((ent_arr == e) & (week != target) & (labels == 0))
                n_move = max(1, int(round(factor * max(k, 1))))
                if len(donors) < n_move:
                    continue
                moved = rng.choice(donors, size=n_move, replace=False)
                t2[moved] = start_of[target] + rng.integers(0, width_of[target], size=n_move)
                targets[e] = start_of[target]
            found = _alerts(_write(args.out / "inject", ent, t2, labels), cfg)
            alerted = {(a["entity"], a["window"]) for a in found}
            hits += sum((e, w) in alerted for e, w in targets.items())
            trials += len(targets)
        rows.append({"factor": factor, "detected": hits, "crises": trials, "rate": hits / max(trials, 1)})
        print(f"crisis x{factor:g} of the window's negatives: detected {hits}/{trials} ({hits / max(trials, 1):.0%})", flush=True)
    result = {
        "entities": len(np.unique(ent_arr)),
        "eligible_entities": len(eligible),
        "entity_years": round(years, 2),
        "false_alarms": len(base_alerts),
        "false_alarms_per_entity_year": round(len(base_alerts) / years, 3) if years else None,
        "injections": rows,
        "settings": {"min_tweets": args.min_tweets, "alpha": cfg.alpha, "baseline_windows": cfg.baseline_windows},
    }
    print(json.dumps(result, indent=2))
    if args.table:
        m = machine_info()
        table = {
            "schema": "edgerep.docs-table",
            "schema_version": 1,
            "title": f"Alerts on real streams with injected crises, {args.window} windows",
            "caption": (
                f"RepLab 2013 training tweets with gold polarity at their real times, {args.window} windows of >= {args.min_tweets} tweets, "
                f"{len(eligible)} entities with usable windows after a baseline, {args.repeats} injections per entity and size. "
                f"False alarms on the streams as they are: {len(base_alerts)} in {years:.1f} entity-years "
                f"({result['false_alarms_per_entity_year']} per entity-year; rule: p < {cfg.alpha:.4f})."
            ),
            "machine": f"{m.get('cpu', '?')} (the figures do not depend on it)",
            "date": dt.date.today().isoformat(),
            "source": "benchmarks/alert_quality.py",
            "columns": ["crisis: tweets moved in", "crises", "detected", "detection rate"],
            "rows": [[f"{r['factor']:g} x the window's negatives", str(r["crises"]), str(r["detected"]), f"{r['rate']:.0%}"] for r in rows],
        }
        args.table.write_text(json.dumps(table, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
