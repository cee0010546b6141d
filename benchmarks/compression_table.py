#!/usr/bin/env python
"""The compression table of the docs (``docs/records/compression-default.json``) from the
``edgerep.compression`` record that ``edgerep compress`` (the last stage of ``edgerep run``)
writes: one row per variant with its size, accuracy and its figures from the stage's one
``edgerep bench`` run, led by the transformers float32 model it comes from::

    python benchmarks/compression_table.py runs/default/compress/compression.json \\
        --command "edgerep run --data ../shared/data/replab2013 --out runs/default" --out docs/records/compression-default.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgerep.errors import RecordError
from edgerep.measure.records import machine_caption, read_record

#: How each variant's quantization reads in the table.
NAMES = {
    "pytorch": "PyTorch",
    "onnx-dynamic-int8": "ONNX Runtime dynamic int8",
    "onnx-dynamic-int8-same-graph": "ONNX Runtime dynamic int8, the LiteRT graph",
}


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _filtering(r: dict) -> list[str]:
    f = r.get("filtering")
    return [f"{f['accuracy']:.4f}", f"{f['unrelated_f1']:.3f}"] if f else ["–", "–"]


def compression_table(rec: dict, command: str, title: str = "Compression variants of the default run's model") -> dict:
    """The ``edgerep.docs-table`` record of a compression record ``rec``; a run that decides
    relatedness adds its filtering accuracy and UNRELATED F1 (every tweet of the validation
    split) after the polarity columns."""
    bert_mb = rec["bert_large_fp32_mb"]
    ref, tf = rec["reference"], rec["transformers"]
    relatedness = any("filtering" in r for r in rec["rows"])
    rows = [
        [
            "transformers float32 (`train/model`)",
            str(max(r["layers"] for r in rec["rows"])),
            f"{tf['size_mb']:.1f}",
            f"{bert_mb / tf['size_mb']:.0f}",
            f"{ref['accuracy']:.4f}",
            f"{ref['macro_f1']:.4f}",
            f"{ref['negative_f1']:.3f}",
            *(_filtering(ref) if relatedness else []),
            _ms(tf["latency_p50_ms"]),
            f"{tf['throughput_tweets_per_s']:.0f}",
            "1.0",
            "–",
            f"{tf['peak_rss_mb']:.0f}",
        ]
    ]
    bold = []
    for r in rec["rows"]:
        timed = "latency_p50_ms" in r
        name = f"{r['model']} {NAMES.get(r['quantization'], r['quantization'])}" + (" (recommended)" if r.get("recommended") else "")
        if r.get("recommended"):
            bold.append(len(rows))
        rows.append(
            [
                name,
                str(r["layers"]),
                f"{r['size_mb']:.2f}" if r["size_mb"] < 10 else f"{r['size_mb']:.1f}",
                f"{bert_mb / r['size_mb']:.0f}",
                f"{r['accuracy']:.4f}",
                f"{r['macro_f1']:.4f}",
                f"{r['negative_f1']:.3f}",
                *(_filtering(r) if relatedness else []),
                _ms(r["latency_p50_ms"]) if timed else "–",
                f"{r['throughput_tweets_per_s']:.0f}" if timed else "–",
                f"{r['speedup_vs_transformers']:.1f}" if timed else "–",
                f"{r['speedup_vs_onnxruntime_int8']:.2f}" if "speedup_vs_onnxruntime_int8" in r else "–",
                f"{r['peak_rss_mb']:.0f}" if timed else "–",
            ]
        )
    cfg = rec["config"]
    return {
        "schema": "edgerep.docs-table",
        "schema_version": 1,
        "title": title,
        "caption": (
            f"`{command}`: the compression stage with every default ({rec['models'][next(iter(rec['models']))]['layers']}-layer "
            f"student, {cfg['quant_aware']} quantization-aware distillation, {cfg['epochs']} epochs, pruned vocabulary); validation "
            f"split ({rec['rows'][0]['vs_reference']['n']:,} tweets); every variant and the transformers float32 model in one "
            f"`edgerep bench` run of {cfg['latency_tweets']} validation tweets. Recommendation rule: {rec['rule']}."
            + (
                f" Polarity on the gold-related tweets; filtering accuracy and UNRELATED F1 over every validation tweet, related "
                f"or not ({next(r['filtering']['n'] for r in rec['rows'] if 'filtering' in r):,})."
                if relatedness
                else ""
            )
        ),
        "machine": machine_caption(rec["machine"]),
        "date": rec["created"][:10],
        "source": f"{rec['run']}/compress/compression.json (commit {rec['git_commit'][:7]})",
        "columns": [
            "variant",
            "layers",
            "MB",
            "x smaller than BERT-large fp32",
            "accuracy",
            "macro-F1",
            "F1 NEG",
            *(["filtering accuracy", "UNRELATED F1"] if relatedness else []),
            "p50 ms",
            "tweets/s",
            "x transformers",
            "x ORT int8",
            "peak RSS MB",
        ],
        "rows": rows,
        "bold_rows": bold,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("compression", type=Path, help="an edgerep.compression record (RUN/compress/compression.json)")
    ap.add_argument("--command", required=True, help="the command that made it")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--title", default="Compression variants of the default run's model")
    args = ap.parse_args(argv)
    try:
        rec = read_record(args.compression, "compression")
    except RecordError as e:
        sys.exit(f"error: {e}")
    table = compression_table(rec, args.command, args.title)
    args.out.write_text(json.dumps(table, indent=2, ensure_ascii=False) + "\n")
    print("\n".join(" | ".join(r) for r in table["rows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
