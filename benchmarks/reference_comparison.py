#!/usr/bin/env python
"""The study's comparison against a reference model, as a published table (``docs/records/``).

Reads ``edgerep.evaluation`` records (the first one is the reference) and, optionally, one
``edgerep.bench`` record in which the same models were timed, and writes an
``edgerep.docs-table`` record: per model its parameters, file size, how many times smaller it is
than the reference and than BERT-large float32, accuracy, macro-F1, NEGATIVE F1, the macro-F1
difference to the reference with its 95% paired bootstrap interval
(:func:`edgerep.measure.comparison.reference_comparison`), latency p50, tweets/s and peak RSS at 1 thread::

    python benchmarks/reference_comparison.py \\
        --eval "all-mpnet-base-v2 float32 (transformers)=runs/reference/results/evaluation-pytorch.json" \\
        --eval "all-mpnet-base-v2 dynamic-int8=runs/reference/results/evaluation-dynamic-int8.json" \\
        --bench runs/reference/results/bench.json --out docs/records/reference.json

Then ``python scripts/render_tables.py`` renders it where ``<!-- table: reference -->`` stands.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgerep.measure.comparison import reference_comparison
from edgerep.measure.records import read_record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--eval", action="append", required=True, metavar="LABEL=RECORD", help="an evaluation record; the first is the reference"
    )
    parser.add_argument("--bench", type=Path, help="an edgerep.bench record timing the same models")
    parser.add_argument("--out", type=Path, required=True, help="the docs-table record to write")
    parser.add_argument("--title", default="The edge models against the reference", help="the table's title")
    args = parser.parse_args(argv)
    try:
        evals = []
        for item in args.eval:
            label, sep, path = item.partition("=")
            if not sep:
                raise ValueError(f"--eval {item!r}: expected LABEL=RECORD")
            evals.append((label, read_record(path, "evaluation")))
        bench = read_record(args.bench, "bench") if args.bench else None
    except Exception as exc:  # a user's mistake: one line
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.out.write_text(json.dumps(reference_comparison(evals, bench, args.title), indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
