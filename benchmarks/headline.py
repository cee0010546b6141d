#!/usr/bin/env python
"""The README's headline table (``docs/records/headline.json``) from records: the deployed
bundle and the float32 model it comes from, timed in one ``edgerep bench`` run (the bundle, and
the model as the run's ``--baseline``)::

    edgerep bench BUNDLE --baseline MODEL --tweets DATA --threads 1 --samples 300 --warmup 10 --repeats 3 -o bench.json
    python benchmarks/headline.py --bundle-eval EVAL_BUNDLE.json --model-eval EVAL_MODEL.json --bench bench.json \\
        --bundle-label "..." --model-label "..." --command "edgerep ..." --out docs/records/headline.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgerep.measure.records import machine_caption, read_record
from edgerep.registry import BERT_LARGE_PARAMETERS, MB


def _cell(bench: dict, path: str) -> dict | None:
    resolved = str(Path(path).resolve())
    return next((c for c in bench["cells"] if "error" not in c and str(Path(c["path"]).resolve()) == resolved and c["threads"] == 1), None)


def headline(bundle_eval: dict, model_eval: dict, bench: dict, labels: tuple[str, str], command: str) -> dict:
    """The ``edgerep.docs-table`` record of the headline table."""
    bert_mb = BERT_LARGE_PARAMETERS * 4 / MB
    rows = []
    for label, rec in zip(labels, (bundle_eval, model_eval)):
        m, size = rec["metrics"], rec["model"]["size_mb"]
        c = _cell(bench, rec["model"]["path"])
        rows.append(
            [
                label,
                f"{size:.2f}" if size < 10 else f"{size:.1f}",
                f"{bert_mb / size:.0f}",
                f"{m['accuracy']:.4f}",
                f"{m['macro_f1']:.4f}",
                f"{m['per_class']['NEGATIVE']['f1']:.3f}",
                "–" if c is None else f"{c['latency']['p50_ms']:.2f}" if c["latency"]["p50_ms"] < 10 else f"{c['latency']['p50_ms']:.1f}",
                "–" if c is None else f"{c['throughput_tweets_per_s']:.0f}" if c["throughput_tweets_per_s"] >= 100 else f"{c['throughput_tweets_per_s']:.1f}",
                "–" if c is None or c.get("kind") != "bundle" else f"{c['peak_rss_mb']:.0f}",
            ]
        )
    s = bench["settings"]
    return {
        "schema": "edgerep.docs-table",
        "schema_version": 1,
        "title": "The deployed bundle and the float32 model it comes from",
        "caption": (
            f"`{command}`; validation split (the latest 15% of each entity's training tweets, {bundle_eval['metrics']['n']:,} tweets); "
            f"latency of one tweet including normalization and tokenization, {s['tweets']} validation tweets x {s['repeats']} after "
            f"{s['warmup']} warm-up runs, one `edgerep bench` run."
        ),
        "machine": machine_caption(bench["machine"]),
        "date": bench["created"][:10],
        "source": ", ".join(rec["model"]["path"] for rec in (bundle_eval, model_eval)),
        "columns": ["model", "MB", "x smaller than BERT-large fp32", "accuracy", "macro-F1", "F1 NEG", "latency p50 ms", "tweets/s", "peak RSS MB"],
        "rows": rows,
        "bold_rows": [0],
        "notes": [
            f"BERT-large float32 is {bert_mb:,.1f} MB ({BERT_LARGE_PARAMETERS:,} parameters x 4 bytes). "
            "The study's headline: 160x smaller than BERT-large for 4.1 accuracy points."
        ],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle-eval", type=Path, required=True)
    ap.add_argument("--model-eval", type=Path, required=True)
    ap.add_argument("--bench", type=Path, required=True)
    ap.add_argument("--bundle-label", required=True)
    ap.add_argument("--model-label", required=True)
    ap.add_argument("--command", required=True, help="the command that made the bundle")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    table = headline(
        read_record(args.bundle_eval, "evaluation"),
        read_record(args.model_eval, "evaluation"),
        read_record(args.bench, "bench"),
        (args.bundle_label, args.model_label),
        args.command,
    )
    args.out.write_text(json.dumps(table, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
