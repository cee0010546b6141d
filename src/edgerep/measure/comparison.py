"""The study's comparison: edge models against a fine-tuned reference model, as a table record
(``edgerep.docs-table``) that ``edgerep run --reference`` writes, the report shows and
``benchmarks/reference_comparison.py`` publishes under ``docs/records/``."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from edgerep.measure.evaluate import paired_comparison
from edgerep.measure.records import machine_caption
from edgerep.registry import BERT_LARGE_PARAMETERS, MANIFEST_FILE, MB


def parameters(model_path: str) -> int | None:
    """Parameters of a bundle (its manifest's ``source.parameters``) or of a checkpoint directory
    (the tensor shapes in its ``model.safetensors`` header, without loading the weights)."""
    path = Path(model_path)
    if (path / MANIFEST_FILE).is_file():
        return json.loads((path / MANIFEST_FILE).read_text()).get("source", {}).get("parameters")
    weights = path / "model.safetensors"
    if not weights.is_file():
        return None
    with open(weights, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))  # safetensors format: u64 header length, then JSON
        header = json.loads(fh.read(size))
    total = 0
    for name, entry in header.items():
        if name != "__metadata__":
            n = 1
            for d in entry["shape"]:
                n *= d
            total += n
    return total


def _bench_cell(bench: dict | None, model_path: str) -> dict | None:
    if bench is None:
        return None
    resolved = str(Path(model_path).resolve())
    return next(
        (
            c
            for c in bench["cells"]
            if "error" not in c and str(Path(c["path"]).resolve()) == resolved and c["threads"] == 1 and c.get("batch", 1) == 1
        ),
        None,
    )


def _row(label: str, rec: dict, ref: dict, bert_large_mb: float, bench: dict | None) -> list[str]:
    """One model's cells of :func:`reference_comparison` (text, formatted)."""
    m, size = rec["metrics"], rec["model"]["size_mb"]
    n_params = parameters(rec["model"]["path"])
    diff = None if rec is ref else paired_comparison(ref, rec)
    cell = _bench_cell(bench, rec["model"]["path"])
    if rec is ref:
        delta = "reference"
    elif diff is None:
        delta = "–"
    else:
        d = diff["macro_f1"]
        delta = f"{100 * d['diff']:+.2f} ({100 * d['low']:+.2f} to {100 * d['high']:+.2f})"
    return [
        label,
        "–" if n_params is None else f"{n_params / 1e6:.1f}",
        f"{size:.1f}" if size >= 10 else f"{size:.2f}",
        f"{ref['model']['size_mb'] / size:.1f}",
        f"{bert_large_mb / size:.0f}",
        f"{m['accuracy']:.4f}",
        f"{m['macro_f1']:.4f}",
        f"{m['per_class']['NEGATIVE']['f1']:.3f}",
        delta,
        "–" if cell is None else f"{cell['latency']['p50_ms']:.2f}",
        "–" if cell is None else f"{cell['throughput_tweets_per_s']:.0f}",
        "–" if cell is None else f"{cell['peak_rss_mb']:.0f}",
    ]


def reference_comparison(evals: list[tuple[str, dict]], bench: dict | None, title: str = "The edge models against the reference") -> dict:
    """The study's comparison table: each model against the reference.

    Args:
        evals: ``(label, edgerep.evaluation record)`` pairs on the same validation tweets; the
            first is the reference.
        bench: an ``edgerep.bench`` record timing the same models at 1 thread, or ``None`` (no
            latency columns filled).
        title: the table's title.

    Returns:
        An ``edgerep.docs-table`` record (``title``, ``caption``, ``machine``, ``date``,
        ``source``, ``columns``, ``rows`` of text cells): parameters, file MB, how many times
        smaller than the reference and than BERT-large float32
        (:data:`edgerep.registry.BERT_LARGE_PARAMETERS` x 4 bytes), accuracy, macro-F1,
        NEGATIVE F1, the macro-F1 difference to the reference with its 95% paired bootstrap
        interval (:func:`edgerep.measure.evaluate.paired_comparison`), latency p50, tweets/s and
        peak RSS.

    Raises:
        RecordError: the evaluation records were made on different tweets (via
            :func:`~edgerep.measure.evaluate.paired_comparison`).
    """
    bert_large_mb = BERT_LARGE_PARAMETERS * 4 / MB
    ref_label, ref = evals[0]
    rows = [_row(label, rec, ref, bert_large_mb, bench) for label, rec in evals]
    source = bench or ref
    fold = ref["data"].get("split_config", {}).get("fold", 0)
    return {
        "schema": "edgerep.docs-table",
        "schema_version": 1,
        "title": title,
        "caption": (
            f"Validation split of fold {fold} ({ref['data']['n']:,} tweets); the difference to {ref_label} is in macro-F1 points with "
            "a 95% paired bootstrap interval (2,000 resamples); BERT-large float32 = "
            f"{bert_large_mb:,.1f} MB; latency of one tweet including tokenization at 1 thread"
            + (" in one `edgerep bench` run." if bench else " (not timed).")
        ),
        "machine": machine_caption(source["machine"], None),
        "date": source["created"][:10],
        "source": ", ".join(rec["model"]["path"] for _, rec in evals),
        "columns": [
            "model",
            "parameters (M)",
            "MB",
            "x smaller than the reference",
            "x smaller than BERT-large fp32",
            "accuracy",
            "macro-F1",
            "F1 NEG",
            "Δ macro-F1 vs reference (95% CI)",
            "p50 ms",
            "tweets/s",
            "peak RSS MB",
        ],
        "rows": rows,
    }
