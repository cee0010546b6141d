#!/usr/bin/env python
"""Time ``edgerep monitor`` over a large classified archive (target: 1,000,000 rows in <= 30 s on
2 cores).

Writes an archive in ``edgerep batch``'s output format with its own shard writer: ``--rows``
rows over ``--entities`` entities and one year of timestamps, posteriors drawn from a Dirichlet
and labels their argmax (the aggregation's cost does not depend on where the probabilities come
from). Then runs ``edgerep monitor`` on it as a separate process, ``--repeats`` times, and prints
the wall times, the peak RSS of the process and the machine::

    python benchmarks/monitor_speed.py --rows 1000000 --out /tmp/monitor-speed --json results.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edgerep import LABELS
from edgerep.app.batch import write_shard
from edgerep.measure.records import machine_info

YEAR_START = 1325376000  # 2012-01-01 UTC


def make_archive(out: Path, rows: int, entities: int, shard: int = 50_000, seed: int = 0) -> Path:
    """A batch output of ``rows`` synthetic classified rows under ``out`` (kept when present)."""
    if (out / "_edgerep_batch.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k, start in enumerate(range(0, rows, shard)):
        n = min(shard, rows - start)
        p = rng.dirichlet([1.0, 2.0, 3.0], size=n).astype(np.float32)
        ent = rng.integers(0, entities, size=n)
        p_related = rng.beta(4.0, 1.0, size=n).astype(np.float32)  # a stream of a relatedness bundle, ~20% unrelated
        cols = {
            "id": [str(start + i) for i in range(n)],
            "entity": [f"entity-{e:03d}" for e in ent],
            "time": (YEAR_START + rng.integers(0, 365 * 86400, size=n)).tolist(),
            "label": [LABELS[i] for i in p.argmax(1)],
            "p_negative": p[:, 0].tolist(),
            "p_neutral": p[:, 1].tolist(),
            "p_positive": p[:, 2].tolist(),
            "related": (p_related >= 0.5).tolist(),
            "p_related": p_related.tolist(),
            "error": [None] * n,
            "text": [None] * n,
        }
        write_shard(out / f"part-{k:05d}.parquet", cols, {"edgerep.bundle": "synthetic", "edgerep.bundle_sha256": "0" * 64})
    (out / "_edgerep_batch.json").write_text(json.dumps({"schema": "edgerep.batch/3", "bundle_sha256": "0" * 64}))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--entities", type=int, default=61)
    ap.add_argument("--window", default="week")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True, help="working folder (the archive is kept for re-runs)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--table", type=Path, help="write the docs-table record here")
    ap.add_argument("--note", default="", help="a sentence for the table's caption (e.g. what else ran)")
    args = ap.parse_args(argv)
    archive = make_archive(args.out / f"archive-{args.rows}", args.rows, args.entities)
    times = []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "edgerep", "monitor", str(archive), "-o", str(args.out / "monitor"), "--window", args.window],
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - t0)
        print(f"run {r + 1}: {times[-1]:.2f} s", flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rec = json.loads((args.out / "monitor" / "monitor.json").read_text())
    result = {
        "rows": args.rows,
        "entities": args.entities,
        "window": args.window,
        "windows": sum(len(e["windows"]) for e in rec["entities"]),
        "seconds": times,
        "median_s": sorted(times)[len(times) // 2],
        "peak_rss_mb": round(peak_mb, 1),
        "machine": machine_info(),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.table:
        args.table.write_text(json.dumps(docs_table(result, args.note), indent=2, ensure_ascii=False) + "\n")
    return 0


def docs_table(result: dict, note: str = "") -> dict:
    """The ``edgerep.docs-table`` record of a result (``docs/records/monitor-speed.json``)."""
    import datetime as dt

    m = result["machine"]
    flags = " ".join(m.get("cpu_flags", [])) or "none recorded"
    return {
        "schema": "edgerep.docs-table",
        "schema_version": 1,
        "title": "edgerep monitor over a large archive",
        "caption": (
            f"Whole process (start-up, DuckDB aggregation, EM per window, alerts, dashboard), {len(result['seconds'])} runs; "
            f"{result['entities']} entities over one year, {result['window']} windows. {note}"
        ).strip(),
        "machine": f"{m.get('cpu', '?')}, {m.get('logical_cores', '?')} cores; CPU flags for int8: {flags}",
        "date": dt.date.today().isoformat(),
        "source": "benchmarks/monitor_speed.py",
        "columns": ["rows", "windows", "median s", "min s", "max s", "peak RSS MB"],
        "rows": [
            [
                f"{result['rows']:,}",
                f"{result['windows']:,}",
                f"{result['median_s']:.1f}",
                f"{min(result['seconds']):.1f}",
                f"{max(result['seconds']):.1f}",
                f"{result['peak_rss_mb']:.0f}",
            ]
        ],
    }


if __name__ == "__main__":
    sys.exit(main())
