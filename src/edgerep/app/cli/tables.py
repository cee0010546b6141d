"""Terminal tables (rich) of edgerep's results: one renderer per record kind, used by the commands."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from edgerep import LABELS
from edgerep.measure.metrics import validation_summary


def data_stats_tables(stats: dict, root: Path) -> list:
    """Tables (and summary lines) of :func:`edgerep.data.stats.corpus_stats`."""
    t = Table(title=f"RepLab 2013 polarity task (English, related) — {root}")
    for col in ("split", "tweets", "entities", *LABELS, "tokens p50", "p90", "p99", "max"):
        t.add_column(col, justify="left" if col == "split" else "right")
    for name, s in stats["splits"].items():
        tl = s.get("token_length", {})
        t.add_row(
            name,
            str(s["n"]),
            str(s["entities"]),
            *(f"{s['labels'][lab]} ({s['labels'][lab] / max(s['n'], 1):.0%})" for lab in LABELS),
            *(f"{tl[k]:.0f}" if k in tl else "-" for k in ("p50", "p90", "p99", "p100")),
        )
    d = Table(title="per domain (whole split)")
    d.add_column("split")
    d.add_column("domain")
    for lab in LABELS:
        d.add_column(lab, justify="right")
    for name, s in stats["splits"].items():
        if "/" in name:
            continue
        for dom, counts in s["domains"].items():
            d.add_row(name, dom, *(str(counts[lab]) for lab in LABELS))
    lines = [
        f"[bold]{split}[/]: {rep['labeled_rows']} labelled rows in {rep['entities']} entities, kept {rep['kept']}; "
        f"dropped {json.dumps(rep['dropped'])}; repaired defects {json.dumps(rep['defects'])}"
        for split, rep in stats["load_reports"].items()
    ]
    return [t, d, *lines]


def export_table(results) -> Table:
    """Bundles written by ``edgerep export`` with their validation against PyTorch."""
    t = Table(title="bundles (validated against PyTorch float32)")
    for col in ("bundle", "path", "MB", "max |Δlogit|", "label agreement", "valid"):
        t.add_column(col)
    for r in results:
        v = r.validation
        t.add_row(
            r.mode,
            r.path,
            f"{r.size_mb:.1f}",
            f"{v.get('max_abs_logit_diff', float('nan')):.4f}",
            f"{v.get('label_agreement', 0):.2%}",
            "yes" if v.get("passed") else "[red]NO[/]",
        )
    return t


def matrix_table(rec: dict) -> Table:
    """Rich table of an ``edgerep.matrix`` record."""
    from edgerep.app.report.tables import matrix_rows

    header, rows = matrix_rows(rec, "[red]NO[/]")
    t = Table(
        title=f"quantization matrix (size ratio: BERT-large float32 = {rec['bert_large_fp32_mb']:.0f} MB, {rec['bert_large_fp32_source'].split(':')[0]})"
    )
    for col in header:
        t.add_column(col, justify="left" if col in ("model", "backend", "quantization", "valid") else "right")
    for r in rows:
        t.add_row(*r)
    return t


def metrics_table(records: dict[str, dict]) -> Table:
    t = Table(
        title="polarity (validation = latest 15% of each entity's training tweets)"
        if any(r["data"]["subset"] == "validation" for r in records.values())
        else "polarity"
    )
    filtering = any("filtering" in r["metrics"] for r in records.values())
    for col in ("model", "MB", "n", "accuracy", "macro-F1", *(f"F1 {lab[:3]}" for lab in LABELS), *FILTERING_COLUMNS[: 2 * filtering]):
        t.add_column(col, justify="left" if col == "model" else "right")
    for name, r in records.items():
        m = r["metrics"]
        t.add_row(
            name,
            f"{r['model']['size_mb']:.1f}",
            str(m["n"]),
            f"{m['accuracy']:.4f}",
            f"{m['macro_f1']:.4f}",
            *(f"{m['per_class'][lab]['f1']:.3f}" for lab in LABELS),
            *(_filtering_cells(m.get("filtering") and validation_summary(m)["filtering"]) if filtering else ()),
        )
    if filtering:
        t.caption = "polarity on the gold-related tweets; filtering (related vs UNRELATED) on all, n = " + ", ".join(
            str(r["metrics"]["filtering"]["n"]) for r in records.values() if "filtering" in r["metrics"]
        )
    return t


#: The columns of a model that decides relatedness (RepLab's filtering task).
FILTERING_COLUMNS = ("filtering acc", "F1 UNREL")


def _filtering_cells(filtering: dict | None) -> tuple[str, str]:
    """The :data:`FILTERING_COLUMNS` cells of a ``validation_summary`` ``filtering`` entry, or dashes."""
    return (f"{filtering['accuracy']:.4f}", f"{filtering['unrelated_f1']:.3f}") if filtering else ("-", "-")


def ensemble_table(rec: dict) -> Table:
    """Members and ensemble of an ``edgerep.ensemble`` record: validation scores, and the
    out-of-domain check when present."""
    ood = rec.get("out_of_domain", {}).get("scores", {})
    t = Table(title=f"ensemble = mean of the members' probabilities (validation, n={rec['ensemble']['n']})")
    cols = ("model", "accuracy", "macro-F1", *(f"F1 {lab[:3]}" for lab in LABELS), *(("OOD acc", "OOD macro-F1") if ood else ()))
    for col in cols:
        t.add_column(col, justify="left" if col == "model" else "right")

    def row(name: str, m: dict, key: str) -> None:
        o = ood.get(key)
        t.add_row(
            name,
            f"{m['accuracy']:.4f}",
            f"{m['macro_f1']:.4f}",
            *(f"{m['per_class'][lab]['f1']:.3f}" for lab in LABELS),
            *((f"{o['accuracy']:.4f}", f"{o['macro_f1']:.4f}") if o else ()),
        )

    for r in rec["members"]:
        row(r["model"]["path"], r["metrics"], r["model"]["path"])
    row("ensemble", rec["ensemble"], "ensemble")
    return t


def confusion_table(rec: dict) -> Table:
    """Confusion matrix of an ``edgerep.evaluation`` record."""
    cm = Table(title="confusion matrix (rows: true, columns: predicted)")
    cm.add_column("")
    for lab in LABELS:
        cm.add_column(lab, justify="right")
    for lab, row in zip(LABELS, rec["metrics"]["confusion_matrix"]):
        cm.add_row(lab, *map(str, row))
    return cm


def bench_table(rec: dict) -> Table:
    """Cells of an ``edgerep.bench`` record, with the machine and its CPU flags in the title."""
    from edgerep.app.report.tables import bench_cell_figures

    m = rec["machine"]
    where = f" on {m['ssh_host']}" if m.get("ssh_host") else ""
    flags = " ".join(m.get("cpu_flags") or []) or "no SIMD flags read"
    st = rec["settings"]
    t = Table(
        title=f"edgerep bench{where} — {st['tweets']} real tweets x {st.get('repeats', 1)} runs a cell"
        f"{' (a process each, cells interleaved)' if st.get('interleaved') else ''}, warm-up {st['warmup']}; "
        f"{m.get('cpu')} [{flags}]"
    )
    for col in (
        "model",
        "profile",
        "thr",
        "batch",
        "MB",
        "init ms",
        "p50±MAD ms",
        "p90 ms",
        "p99 ms",
        "tweets/s",
        "CPU %",
        "peak RSS MB",
        "x PyTorch",
    ):
        t.add_column(col, justify="left" if col in ("model", "profile") else "right")
    for c in rec["cells"]:
        name = Path(c["path"]).name if c["kind"] == "bundle" else "pytorch fp32"
        if c["kind"] == "bundle" and len({c2["path"] for c2 in rec["cells"] if Path(c2["path"]).name == name}) > 1:
            name = f"{Path(c['path']).parent.name}/{name}"  # same bundle name in two directories
        if "error" in c:
            t.add_row(
                name, c["profile"]["profile"], str(c["threads"]), str(c.get("batch", 1)), *["-"] * 8, f"[red]{c['error'].split(':')[0]}[/]"
            )
            continue
        t.add_row(
            name,
            *bench_cell_figures(c, mad_separator="±"),
            f"{c['cpu_percent_of_one_core']:.0f}",
            f"{c['peak_rss_mb']:.0f}",
            f"{c['speedup_vs_pytorch']:.2f}" if "speedup_vs_pytorch" in c else "-",
        )
    return t


def run_table(summary: dict) -> Table:
    """The rows of an ``edgerep.summary`` record, led by the recommended bundle (the one to deploy)
    when the compression stage ran."""
    t = Table(title=f"edgerep run — {summary['train']['model']} on RepLab 2013 (validation split, n={summary['train']['validation_size']})")
    filtering = any("filtering" in r for r in summary["rows"])
    for col in (
        "model",
        "MB",
        "accuracy",
        "macro-F1",
        *FILTERING_COLUMNS[: 2 * filtering],
        "p50 ms",
        "p90 ms",
        "tweets/s",
        "max |Δlogit|",
        "agreement",
    ):
        t.add_column(col, justify="left" if col == "model" else "right")
    rec = summary.get("recommended")
    if rec:
        t.add_row(
            f"[bold]recommended: {rec['variant']}[/] (bundles/recommended)",
            f"{rec['size_mb']:.2f}",
            f"{rec['accuracy']:.4f}",
            f"{rec['macro_f1']:.4f}" if rec.get("macro_f1") is not None else "-",
            *(_filtering_cells(rec.get("filtering")) if filtering else ()),
            f"{rec['latency_p50_ms']:.2f}" if rec.get("latency_p50_ms") is not None else "-",
            "-",
            "-",
            "-",
            "-",
            end_section=True,
        )
    for r in summary["rows"]:
        ev = r.get("export_validation") or {}
        t.add_row(
            r["model"],
            f"{r['size_mb']:.1f}",
            f"{r['accuracy']:.4f}",
            f"{r['macro_f1']:.4f}",
            *(_filtering_cells(r.get("filtering")) if filtering else ()),
            f"{r['latency_p50_ms']:.2f}" if "latency_p50_ms" in r else "-",
            f"{r['latency_p90_ms']:.2f}" if "latency_p90_ms" in r else "-",
            f"{r['throughput_tweets_per_s']:.0f}" if "throughput_tweets_per_s" in r else "-",
            f"{ev['max_abs_logit_diff']:.4f}" if ev else "-",
            f"{ev['label_agreement']:.2%}" if ev else "-",
        )
    return t


def compression_table(rec: dict) -> Table:
    """Rich table of an ``edgerep.compression`` record (the recommended variant in bold)."""
    from edgerep.app.report.tables import DELTA_COLUMN, compression_rows

    header, rows = compression_rows(rec, ("[bold green]", "[/]"))
    ref = rec["reference"]
    t = Table(
        title=f"compression variants (float32 model: accuracy {ref['accuracy']:.4f}, macro-F1 {ref['macro_f1']:.4f}; "
        f"BERT-large float32 {rec['bert_large_fp32_mb']:.0f} MB)"
    )
    for col in header:
        t.add_column(col, justify="left" if col in ("variant", "backend") else "right", no_wrap=col == DELTA_COLUMN)
    for row in rows:
        t.add_row(*row)
    t.caption = f"recommended: {(rec.get('recommended') or {}).get('variant', 'none')} — {rec['rule']}"
    return t
