"""Row formatting shared by every view of a record kind (terminal tables, Markdown, the report),
so each column is written once."""

from __future__ import annotations

#: Columns of the quantization matrix, in order.
MATRIX_COLUMNS = (
    "model",
    "params (M)",
    "backend",
    "quantization",
    "MB",
    "x smaller than BERT-large fp32",
    "max abs Δlogit",
    "label agreement",
    "valid",
    "accuracy",
    "Δ accuracy (pts)",
    "macro-F1",
)


def matrix_rows(record: dict, failed: str = "no") -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of an ``edgerep.matrix`` record; ``failed`` is the text of a failed
    validation (bold or red markup)."""
    rows = []
    for r in record["rows"]:
        rows.append(
            [
                r["model"],
                f"{r['parameters'] / 1e6:.1f}",
                r["backend"],
                r["quantization"],
                f"{r['size_mb']:.1f}",
                f"{r['ratio_to_bert_large_fp32']:.1f}",
                f"{r['max_abs_logit_diff']:.3f}" if r.get("max_abs_logit_diff") is not None else "–",
                f"{100 * r['label_agreement']:.1f}%" if r.get("label_agreement") is not None else "–",
                {True: "yes", False: failed, None: "–"}[r.get("passed")],
                f"{r['accuracy']:.4f}" if "accuracy" in r else "–",
                f"{100 * r['accuracy_change']:+.2f}" if "accuracy_change" in r else "–",
                f"{r['macro_f1']:.4f}" if "macro_f1" in r else "–",
            ]
        )
    return list(MATRIX_COLUMNS), rows


def matrix_markdown(record: dict) -> str:
    """The matrix as a Markdown table, with its BERT-large reference (for the docs and scripts)."""
    from edgerep.app.report.render import markdown_table

    header, rows = matrix_rows(record, "**no**")
    return (
        markdown_table(header, rows) + f"\n\nBERT-large float32 reference: {record['bert_large_fp32_mb']:.1f} MB "
        f"({record['bert_large_fp32_source']}).\n"
    )


def bench_name(cell: dict) -> str:
    """Display name of a bench cell: ``pytorch fp32`` or ``<backend> <quantization>``."""
    if cell["kind"] == "pytorch":
        return "pytorch fp32"
    return f"{cell.get('backend', '?')} {cell.get('quantization', '?')}"


#: Macro-F1 minus the run's float32 model's, points, with a paired bootstrap 95% interval.
DELTA_COLUMN = "Δ macro-F1 (95% CI)"

#: Columns of a compression record, in order.
COMPRESSION_COLUMNS = (
    "variant",
    "layers",
    "backend",
    "MB",
    "x smaller than BERT-large fp32",
    "accuracy",
    "macro-F1",
    DELTA_COLUMN,
    "F1 NEG",
    "p50 ms (1 thread)",
    "tweets/s",
    "x transformers",
    "x ORT int8",
    "x ORT int8 same graph",
    "peak RSS MB",
    "Pareto",
)


def _delta(vs: dict | None) -> str:
    """``-0.29 (-1.03, +0.46)``: macro-F1 minus the run's float32 model's, in points, with its
    paired bootstrap 95% interval (:func:`edgerep.measure.metrics.paired_bootstrap`); "–"
    without one (evaluation records without per-tweet predictions)."""
    if not vs:
        return "–"
    m = vs["macro_f1"]
    return f"{100 * m['diff']:+.2f} ({100 * m['low']:+.2f}, {100 * m['high']:+.2f})"


def bench_cell_figures(c: dict, mad_separator: str = " ± ") -> list[str]:
    """The common columns of a successful ``edgerep.bench`` cell, as text: profile, threads,
    batch, MB, init ms, p50 (± MAD) ms, p90 ms, p99 ms, tweets/s (the terminal table and the
    report both show them)."""
    lat = c["latency"]
    mad = f"{mad_separator}{lat['mad_ms']:.2f}" if "mad_ms" in lat else ""
    return [
        c["profile"]["profile"],
        str(c["threads"]),
        str(c.get("batch", 1)),
        f"{c['model_size_mb']:.1f}",
        f"{c['init_ms']:.0f}",
        f"{lat['p50_ms']:.2f}{mad}",
        f"{lat['p90_ms']:.2f}",
        f"{lat['p99_ms']:.2f}",
        f"{c['throughput_tweets_per_s']:.0f}",
    ]


def compression_rows(record: dict, mark: str | tuple[str, str] = "**") -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of an ``edgerep.compression`` record; the recommended variant's name is
    wrapped in ``mark`` (Markdown bold; ``[bold]`` markup for rich gives ``("[bold]", "[/]")``), and
    a variant that failed export validation is marked "(beyond tolerance)"."""
    left, right = (mark, mark) if isinstance(mark, str) else mark
    rec = (record.get("recommended") or {}).get("variant")

    def f(x, spec):
        return "–" if x is None else format(x, spec)

    rows = []
    for r in sorted(record["rows"], key=lambda r: (r["backend"] != "pytorch", -(r.get("layers") or 0), r["model"], r["quantization"])):
        name = f"{left}{r['variant']}{right}" if r["variant"] == rec else r["variant"]
        if r.get("validation_passed") is False:
            name += " (beyond tolerance)"
        rows.append(
            [
                name,
                f(r.get("layers"), "d"),
                r["backend"],
                f"{r['size_mb']:.1f}",
                f"{r['x_smaller_than_bert_large']:.0f}",
                f"{r['accuracy']:.4f}",
                f"{r['macro_f1']:.4f}",
                _delta(r.get("vs_reference")),
                f"{r['negative_f1']:.3f}",
                f(r.get("latency_p50_ms"), ".2f"),
                f(r.get("throughput_tweets_per_s"), ".0f"),
                f(r.get("speedup_vs_transformers"), ".1f"),
                f(r.get("speedup_vs_onnxruntime_int8"), ".2f"),
                f(r.get("speedup_vs_onnxruntime_int8_same_graph"), ".2f"),
                f(r.get("peak_rss_mb"), ".0f"),
                {True: "yes", False: "", None: "–"}[r.get("pareto")],
            ]
        )
    return list(COMPRESSION_COLUMNS), rows
