"""The report: Markdown and a self-contained HTML page, built only from versioned JSON records.

``edgerep report RESULTS_DIR... -o report/`` reads every ``edgerep.*`` record under the given
directories — evaluations, bench, matrix, serving load tests and run summaries — and the bundle
manifests (the export's quantization and its validation against PyTorch), and writes::

    report/report.md        tables + figures/ links
    report/report.html      the same, images embedded as data URIs (one file to mail or open offline)
    report/figures/*.png    matplotlib figures (Agg backend: no display needed)

Nothing is re-measured and no model is loaded: a report can be built on any machine from the
records of another. Records of an unknown or newer schema are listed as skipped, not guessed at.
The output directory is built under a temporary name and renamed into place (never half-written).

Needs ``matplotlib`` and ``markdown-it-py`` (the ``[report]`` extra, included in ``[train]``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgerep.app.report import figures
from edgerep.app.report.render import Figure, Section, Table, to_html, to_markdown
from edgerep.app.report.tables import bench_cell_figures, bench_name, matrix_rows
from edgerep.device.manifest import BUNDLE_FORMAT
from edgerep.errors import ConfigError
from edgerep.io import atomic_directory
from edgerep.measure.records import SCHEMA_VERSION
from edgerep.registry import BERT_LARGE_PARAMETERS, MB

#: Footprint reference without a matrix record: BERT-large parameters x 4 bytes, in MB.
BERT_LARGE_FP32_MB_ESTIMATE = BERT_LARGE_PARAMETERS * 4 / MB

_SKIP_NAMES = {"tokenizer.json", "tokenizer_config.json", "config.json", "special_tokens_map.json"}
_MAX_JSON_BYTES = 50_000_000


@dataclass
class Records:
    """Records found under the results directories, by kind; each item is ``(path, record)``."""

    evaluations: list[tuple[Path, dict]] = field(default_factory=list)
    benches: list[tuple[Path, dict]] = field(default_factory=list)
    matrices: list[tuple[Path, dict]] = field(default_factory=list)
    summaries: list[tuple[Path, dict]] = field(default_factory=list)
    loads: list[tuple[Path, dict]] = field(default_factory=list)
    trials: list[tuple[Path, dict]] = field(default_factory=list)
    ensembles: list[tuple[Path, dict]] = field(default_factory=list)
    compressions: list[tuple[Path, dict]] = field(default_factory=list)
    profiles: list[tuple[Path, dict]] = field(default_factory=list)
    tables: list[tuple[Path, dict]] = field(default_factory=list)
    manifests: list[tuple[Path, dict]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def results(self) -> list[tuple[Path, dict]]:
        """Every ``edgerep.*`` result record (not the bundle manifests nor the published tables)."""
        return (
            self.evaluations
            + self.benches
            + self.matrices
            + self.summaries
            + self.loads
            + self.trials
            + self.ensembles
            + self.compressions
            + self.profiles
        )

    def count(self) -> int:
        return len(self.results()) + len(self.manifests) + len(self.tables)


def collect(dirs: Sequence[str | os.PathLike]) -> Records:
    """Read the records under ``dirs`` (recursively; checkpoints and tokenizer files skipped).

    Raises:
        ConfigError: a directory does not exist, or no record was found at all.
    """
    recs = Records()
    kinds = {
        "edgerep.evaluation": recs.evaluations,
        "edgerep.bench": recs.benches,
        "edgerep.matrix": recs.matrices,
        "edgerep.summary": recs.summaries,
        "edgerep.load": recs.loads,
        "edgerep.trial": recs.trials,
        "edgerep.ensemble": recs.ensembles,
        "edgerep.compression": recs.compressions,
        "edgerep.runtime_profile": recs.profiles,
        "edgerep.docs-table": recs.tables,
    }
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise ConfigError(f"{d}: results directory not found")
        for p in sorted(d.rglob("*.json")):
            if p.name in _SKIP_NAMES or "checkpoints" in p.parts or any(part.startswith(".") for part in p.relative_to(d).parts):
                continue
            if p.stat().st_size > _MAX_JSON_BYTES:
                recs.skipped.append(f"{p}: larger than {_MAX_JSON_BYTES // 1_000_000} MB")
                continue
            try:
                rec = json.loads(p.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                recs.skipped.append(f"{p}: not valid JSON ({e.__class__.__name__})")
                continue
            if not isinstance(rec, dict):
                continue
            if rec.get("format") == BUNDLE_FORMAT:
                recs.manifests.append((p, rec))
                continue
            schema = rec.get("schema", "")
            if not isinstance(schema, str) or not schema.startswith("edgerep."):
                continue  # history.json, edgerep_model.json, ...: not results
            if rec.get("complete") is False:
                recs.skipped.append(f"{p}: an interrupted bench (partial record)")
            elif rec.get("schema_version", 0) > SCHEMA_VERSION:
                recs.skipped.append(f"{p}: schema_version {rec['schema_version']} is newer than this edgerep reads")
            elif schema in ("edgerep.evaluation", "edgerep.bench") and "compress" in p.relative_to(d).parts[:-1]:
                continue  # a compression variant's: shown in the compression section, not beside the run's own models
            elif schema in kinds:
                kinds[schema].append((p, rec))
            else:
                recs.skipped.append(f"{p}: unknown record kind {schema}")
    if recs.count() == 0:
        raise ConfigError(
            f"no edgerep results under {', '.join(map(str, dirs))} (expected results/*.json, bench.json, matrix.json, bundles/*/manifest.json)"
        )
    return recs


def _name(rec_model: dict) -> str:
    """Short display name of an evaluated model: ``pytorch fp32`` or ``litert dynamic-int8``."""
    backend = rec_model.get("backend") or rec_model.get("kind")
    return f"{backend} {rec_model.get('quantization', '?')}"


def _fmt(x, spec: str = ".4f", none: str = "–") -> str:
    return none if x is None else format(x, spec)


def _reference_mb(recs: Records) -> tuple[float, str]:
    for _, m in recs.matrices:
        if m.get("bert_large_fp32_mb"):
            return float(m["bert_large_fp32_mb"]), m.get("bert_large_fp32_source", "edgerep.matrix record")
    return BERT_LARGE_FP32_MB_ESTIMATE, f"estimate: {BERT_LARGE_PARAMETERS:,} parameters x 4 bytes (no matrix record given)"


def _unique_names(names: dict[str, str]) -> dict[str, str]:
    """``{path: name}`` -> names made unique by adding the path's run directory where two paths share one."""
    count: dict[str, int] = {}
    for n in names.values():
        count[n] = count.get(n, 0) + 1
    out = {}
    for path, n in names.items():
        if count[n] > 1:
            parts = Path(path).parts
            where = "/".join(parts[-3:-1]) if len(parts) >= 3 else str(Path(path).parent)
            n = f"{n} ({where})"
        out[path] = n
    return out


def build_sections(recs: Records) -> list[Section]:
    """Turn records into report sections (tables, figures, text); pure, no I/O."""
    ref_mb, ref_source = _reference_mb(recs)
    parts = [
        _overview(recs),
        _accuracy(recs, ref_mb),
        *_tables(recs),
        _teacher(recs),
        _footprint(recs, ref_mb, ref_source),
        *_compressions(recs),
        _profiles(recs),
        *_matrices(recs),
        _speed(recs),
        _load(recs),
    ]
    if recs.skipped:
        parts.append(Section("Skipped files", [Table(["file and reason"], [[s] for s in recs.skipped])]))
    return [s for s in parts if s is not None]


def _overview(recs: Records) -> Section:
    ov = Section("Overview")
    results = [r for _, r in recs.results()]
    machines = {json.dumps({k: r["machine"].get(k) for k in ("cpu", "logical_cores", "os", "cpu_flags")}, sort_keys=True) for r in results}
    commits = sorted({(r.get("git_commit") or "unknown")[:10] for r in results})
    created = sorted(r.get("created", "") for r in results)
    ov.blocks.append(
        f"Built from {recs.count()} records: {len(recs.evaluations)} evaluations, {len(recs.manifests)} bundle manifests, "
        f"{len(recs.benches)} bench, {len(recs.matrices)} matrix, {len(recs.loads)} load, {len(recs.summaries)} run summaries"
        + (f"; created {created[0]} to {created[-1]}" if created else "")
        + f"; edgerep commits {', '.join(commits)}."
    )
    for mj in sorted(machines):
        m = json.loads(mj)
        flags = f"; CPU flags: {' '.join(m['cpu_flags']) or 'none of the int8/dot-product ones'}" if m.get("cpu_flags") is not None else ""
        ov.blocks.append(f"Measured on: {m.get('cpu')}, {m.get('logical_cores')} logical cores, {m.get('os')}{flags}.")
    for _, s in recs.summaries:
        rec = s.get("recommended")
        if rec:
            ov.blocks.append(
                f"**The bundle to deploy**: `{rec.get('installed')}` ({rec['variant']}): {rec['size_mb']:.2f} MB, accuracy "
                f"{rec['accuracy']:.4f}"
                + (f", macro-F1 {rec['macro_f1']:.4f}" if rec.get("macro_f1") is not None else "")
                + (f", p50 {rec['latency_p50_ms']:.2f} ms a tweet at 1 thread" if rec.get("latency_p50_ms") is not None else "")
                + " on the validation split."
            )
        t = s.get("train", {})
        ov.blocks.append(
            f"Run `{s.get('out')}`: {t.get('model')} fine-tuned on {t.get('train_size'):,} tweets, validated on "
            f"{t.get('validation_size'):,} (best epoch {t.get('best_epoch')}, {(t.get('train_seconds') or 0) / 60:.1f} min of training), "
            f"max_seq_len {t.get('max_seq_len')}."
            if t.get("train_size")
            else f"Run `{s.get('out')}`."
        )
    return ov


def _accuracy_points(recs: Records) -> list[dict]:
    """One point per evaluated artifact: evaluations, plus matrix rows with accuracy not already there."""
    pts, seen = [], set()
    for _, r in recs.evaluations:
        m = r["model"]
        seen.add(os.path.normpath(m.get("path", "")))
        pts.append(
            {
                "backend": m.get("backend") or m.get("kind"),
                "quantization": m.get("quantization"),
                "size_mb": m.get("size_mb"),
                "accuracy": r["metrics"]["accuracy"],
            }
        )
    for _, mat in recs.matrices:
        for row in mat.get("rows", []):
            if row.get("accuracy") is not None and os.path.normpath(row.get("path", "")) not in seen:
                pts.append(
                    {"backend": row["backend"], "quantization": row["quantization"], "size_mb": row["size_mb"], "accuracy": row["accuracy"]}
                )
    return [p for p in pts if p["size_mb"]]


def _accuracy_row(r: dict, filtering: bool) -> list[str]:
    """One evaluation record's row of the accuracy table (with ``filtering``: its two filtering cells)."""
    m, met = r["model"], r["metrics"]
    pcs = met.get("per_class", {})
    f = met.get("filtering")
    related = [_fmt(f["accuracy"]) if f else "–", _fmt(f["per_class"]["UNRELATED"]["f1"], ".3f") if f else "–"] if filtering else []
    return [
        m.get("source", ""),
        m.get("backend") or m.get("kind", ""),
        m.get("quantization", ""),
        _fmt(m.get("size_mb"), ".1f"),
        f"{r['data'].get('split')}/{r['data'].get('subset')}",
        f"{met['n']:,}",
        _fmt(met["accuracy"]),
        _fmt(met["macro_f1"]),
        " / ".join(_fmt(pcs.get(lab, {}).get("f1"), ".3f") for lab in met["labels"]),
        *related,
        f"`{m.get('path')}`",
    ]


def _accuracy(recs: Records, ref_mb: float) -> Section | None:
    if not recs.evaluations:
        return None
    sec = Section("Accuracy")
    ordered = sorted(recs.evaluations, key=lambda pr: (pr[1]["data"].get("split", ""), -pr[1]["model"].get("size_mb", 0)))
    filtering = any("filtering" in r["metrics"] for _, r in ordered)
    rows = [_accuracy_row(r, filtering) for _, r in ordered]
    labels = ordered[0][1]["metrics"]["labels"]
    sec.blocks.append(
        Table(
            [
                "model",
                "backend",
                "quantization",
                "MB",
                "split",
                "n",
                "accuracy",
                "macro-F1",
                "F1 " + " / ".join(lab[:3] for lab in labels),
                *(["filtering accuracy", "UNRELATED F1"] if filtering else []),
                "path",
            ],
            rows,
        )
    )
    points = _accuracy_points(recs)
    if points:
        sec.blocks.append(
            Figure(
                "accuracy_vs_size.png",
                figures.accuracy_vs_size(points, ref_mb),
                f"Accuracy against file size per quantization (colour) and backend (marker), each point labelled with its size "
                f"and how many times smaller it is than BERT-large float32 ({ref_mb:.1f} MB).",
            )
        )
    sec.blocks.append(
        Figure(
            "confusion_matrices.png",
            figures.confusion([(f"{r['model'].get('source', '')} {_name(r['model'])}", r["metrics"]) for _, r in ordered]),
            "Confusion matrices (rows: true polarity, columns: predicted; counts and share of the row).",
        )
    )
    domains = sorted({d for _, r in ordered for d in r["metrics"].get("per_domain", {})})
    if domains:
        sec.blocks.append(
            Table(
                ["model"] + [f"{d} acc / F1" for d in domains],
                [
                    [_name(r["model"])]
                    + [
                        f"{r['metrics']['per_domain'][d]['accuracy']:.3f} / {r['metrics']['per_domain'][d]['macro_f1']:.3f}"
                        if d in r["metrics"].get("per_domain", {})
                        else "–"
                        for d in domains
                    ]
                    for _, r in ordered
                ],
                "Accuracy and macro-F1 per RepLab domain.",
            )
        )
    return sec


def _footprint(recs: Records, ref_mb: float, ref_source: str) -> Section | None:
    """One item per artifact path: matrix rows, bundle manifests, PyTorch models; plus export validation."""
    by_path: dict[str, tuple[str, float]] = {}
    for _, mat in recs.matrices:
        for row in mat.get("rows", []):
            by_path[os.path.normpath(row["path"])] = (f"{row['model']} {row['backend']} {row['quantization']}", row["size_mb"])
    for p, man in recs.manifests:
        f = p.parent / man.get("model_file", "model.tflite")
        if f.is_file() and os.path.normpath(p.parent) not in by_path:
            model = Path(str(man.get("source", {}).get("model", "?"))).name.split(" ")[0]
            by_path[os.path.normpath(p.parent)] = (
                f"{model} {man.get('backend')} {man.get('quantization', {}).get('mode')}",
                f.stat().st_size / MB,
            )
    for _, r in recs.evaluations:
        if r["model"].get("kind") == "pytorch":
            by_path.setdefault(
                os.path.normpath(r["model"]["path"]), (f"{r['model'].get('source', '')} pytorch fp32", r["model"]["size_mb"])
            )
    items = dict(zip(_unique_names({k: v[0] for k, v in by_path.items()}).values(), (v[1] for v in by_path.values())))
    if not items:
        return None
    sec = Section("Footprint")
    items[f"BERT-large {'pytorch' if 'estimate' in ref_source else 'litert'} fp32 (reference)"] = ref_mb
    sec.blocks.append(
        f"Reference: BERT-large float32 = {ref_mb:.1f} MB ({ref_source}). The paper reports its quantized MobileBERT 160x smaller than BERT-large."
    )
    sec.blocks.append(
        Table(
            ["artifact", "MB", "x smaller than BERT-large fp32"],
            [[n, f"{s:.1f}", f"{ref_mb / s:.1f}"] for n, s in sorted(items.items(), key=lambda x: x[1])],
        )
    )
    sec.blocks.append(
        Figure("footprint.png", figures.footprint(list(items.items()), ref_mb), "Model file sizes with their ratio to BERT-large float32.")
    )
    exports = [(p, man) for p, man in recs.manifests if man.get("validation")]
    if exports:
        rows = []
        for p, man in exports:
            v = man["validation"]
            rows.append(
                [
                    f"`{p.parent}`",
                    man.get("backend", ""),
                    man.get("quantization", {}).get("recipe", "") or "–",
                    _fmt(v.get("max_abs_logit_diff"), ".4f"),
                    _fmt(v.get("label_agreement"), ".1%"),
                    str(v.get("n", "–")),
                    "yes" if v.get("passed") else "**no**",
                ]
            )
        sec.blocks.append(
            Table(
                ["bundle", "backend", "recipe", "max abs Δlogit", "label agreement", "tweets", "passed"],
                rows,
                "Export validation: each bundle run by the on-device runtime against PyTorch on the same validation tweets.",
            )
        )
    return sec


def _compressions(recs: Records) -> list[Section]:
    """One section per ``edgerep.compression`` record: the variants table and the Pareto figure."""
    from edgerep.app.report.tables import compression_rows

    out: list = []
    for p, rec in recs.compressions:
        ref = rec["reference"]
        header, rows = compression_rows(rec)
        sec = Section(f"Compression: distilled students, vocabulary pruning, mixed precision (`{p}`)")
        sec.blocks.append(
            f"Reference: the run's fine-tuned float32 model, accuracy {ref['accuracy']:.4f}, macro-F1 {ref['macro_f1']:.4f}, "
            f"NEGATIVE F1 {ref['negative_f1']:.3f} (`{ref['source']}`). BERT-large float32 {rec['bert_large_fp32_mb']:.1f} MB "
            f"({rec['bert_large_source']}); the paper's 160x is {rec['paper_target_mb']:.1f} MB. Latency: one `edgerep bench` run, "
            "single tweets, 1 thread, the same tweets for every variant and for the transformers float32 model"
            + (
                f" (p50 {rec['transformers']['latency_p50_ms']:.2f} ms, {rec['transformers']['throughput_tweets_per_s']:.0f} tweets/s, "
                f"peak RSS {rec['transformers']['peak_rss_mb']:.0f} MB)"
                if rec.get("transformers")
                else ""
            )
            + "."
            + (
                ' LiteRT bundles compute the last layer for [CLS] only (the same logits, fewer MACs); "x ORT int8" compares with '
                'ONNX Runtime dynamic int8 of the same model exported with its own graph, "same graph" with ONNX Runtime given '
                "that trimmed graph too (the kernels alone)."
                if any("speedup_vs_onnxruntime_int8_same_graph" in r for r in rec["rows"])
                else ""
            )
            + (
                " \"Δ macro-F1\": the variant's macro-F1 minus the float32 model's, in points, with a 95% interval from a paired "
                "bootstrap over the same validation tweets (both models' predictions resampled together, 2,000 resamples): "
                "a difference whose interval holds 0 is one these tweets cannot tell from none."
                if any("vs_reference" in r for r in rec["rows"])
                else ""
            )
        )
        sec.blocks.append(Table(header, rows, f"Recommended (bold): {rec['rule']}."))
        timed = [r for r in rec["rows"] if r.get("latency_p50_ms") is not None]
        if timed:
            budget = rec["config"].get("accuracy_budget", 0.01)
            sec.blocks.append(
                Figure(
                    f"compression-{len(out)}.png",
                    figures.compression_pareto(timed, ref, budget, rec["paper_target_mb"]),
                    "Every timed variant: accuracy against file size and against p50 latency (1 thread).",
                )
            )
        out.append(sec)
    return out


def _profiles(recs: Records) -> Section | None:
    """``benchmarks/runtime_profile.py`` records: RSS after each loading step, and achieved GMAC/s
    against the kernels' own peak on this CPU."""
    if not recs.profiles:
        return None
    sec = Section("Where memory and time go (runtime profile)")
    for p, rec in recs.profiles:
        peak = rec["kernel_peak"]
        sec.blocks.append(
            f"`{p}`: one fully-connected layer {' x '.join(map(str, peak['shape']))} in LiteRT at 1 thread: "
            + ", ".join(f"{k} {v:.1f} GMAC/s" for k, v in peak["gmac_per_s"].items())
            + "."
        )
        rows = []
        for b in rec["bundles"]:
            c = b["compute"]
            rows.append(
                [
                    f"`{b['bundle']}`",
                    str(c["layers"]),
                    f"{c['mean_width']:.1f}",
                    f"{c['gmac_per_tweet']:.3f}",
                    f"{c['ms_per_tweet']:.2f}",
                    f"{c['achieved_gmac_per_s']:.1f}",
                    f"{100 * c['share_of_int8_peak']:.0f}%",
                    f"{b['memory'][-1]['peak_mb']:.0f}",
                    "; ".join(f"{m['step']} {m['delta_mb']:+.0f}" for m in b["memory"]),
                ]
            )
        sec.blocks.append(
            Table(
                [
                    "bundle",
                    "layers",
                    "mean bucket width",
                    "GMAC / tweet",
                    "ms / tweet",
                    "GMAC/s",
                    "of int8 peak",
                    "peak RSS MB",
                    "RSS by step (MB)",
                ],
                rows,
            )
        )
    return sec


def _matrices(recs: Records) -> list[Section]:
    out = []
    for p, mat in recs.matrices:
        header, rows = matrix_rows(mat, failed="**no**")
        out.append(Section(f"Quantization matrix (`{p}`)", [Table(header, rows)]))
    return out


def _speed(recs: Records) -> Section | None:
    cells = [dict(c) for _, b in recs.benches for c in b.get("cells", [])]
    if not cells:
        return None
    names = _unique_names({os.path.normpath(c["path"]): bench_name(c) for c in cells})
    for c in cells:
        c["_name"] = names[os.path.normpath(c["path"])]
    sec = Section("Latency, throughput and memory")
    from edgerep.measure.bench import UNSTABLE_SPREAD

    sec.blocks.append(
        "`edgerep bench`: each cell in its own process on real tweets, warm-up excluded, the same tweets timed in "
        f"repeated runs (p50 ± MAD; a cell whose runs' medians differ by more than {UNSTABLE_SPREAD:.0%} is flagged unstable); "
        "profiles emulate a board's cores and RAM (not its clock or instruction set)."
    )
    rows = []
    for c in sorted(
        cells, key=lambda c: (c["profile"]["profile"] != "host", c["profile"]["profile"], c["threads"], c.get("batch", 1), c["_name"])
    ):
        if "error" in c:
            rows.append([c["_name"], c["profile"]["profile"], str(c["threads"]), str(c.get("batch", 1))] + ["–"] * 8 + [c["error"][:80]])
            continue
        rows.append(
            [
                c["_name"],
                *bench_cell_figures(c),
                f"{c['peak_rss_mb']:.0f}",
                _fmt(c.get("speedup_vs_pytorch"), ".1f"),
                "; ".join(c.get("warnings", []))[:80],
            ]
        )
    sec.blocks.append(
        Table(
            [
                "model",
                "profile",
                "threads",
                "batch",
                "MB",
                "init ms",
                "p50 ± MAD ms",
                "p90 ms",
                "p99 ms",
                "tweets/s",
                "peak RSS MB",
                "x PyTorch",
                "note",
            ],
            rows,
        )
    )
    ok = [c for c in cells if "error" not in c]
    if ok:
        sec.blocks.append(
            Figure(
                "latency.png", figures.bench_bars(ok, "latency"), "Latency p50 per device profile, thread count and batch (whisker: p90)."
            )
        )
        sec.blocks.append(
            Figure("throughput.png", figures.bench_bars(ok, "throughput"), "Throughput per device profile, thread count and batch.")
        )
    return sec


def _teacher(recs: Records) -> Section | None:
    """Teacher recipes (``benchmarks/teacher_search.py`` trials) per temporal fold, and ensembles."""
    if not recs.trials and not recs.ensembles:
        return None
    sec = Section("Teacher recipes and ensembles (validation split)")
    if recs.trials:
        trials = sorted((r for _, r in recs.trials), key=lambda r: (r["fold"], r["recipe"]))
        domains = sorted({d for r in trials for d in r["metrics"].get("per_domain", {})})
        rows = [
            [
                r["recipe"],
                str(r["fold"]),
                str(r["best_epoch"]),
                f"{r['metrics']['accuracy']:.4f}",
                f"{r['metrics']['macro_f1']:.4f}",
                *(f"{r['metrics']['per_class'][c]['f1']:.3f}" for c in ("NEGATIVE", "NEUTRAL", "POSITIVE")),
                *(_fmt(r["metrics"].get("per_domain", {}).get(d, {}).get("macro_f1"), ".3f") for d in domains),
                _fmt((r.get("out_of_domain") or {}).get("macro_f1")),
                f"{r['minutes']:.0f}",
            ]
            for r in trials
        ]
        sec.blocks.append(
            Table(
                [
                    "recipe",
                    "fold",
                    "best epoch",
                    "accuracy",
                    "macro-F1",
                    "F1 NEG",
                    "F1 NEU",
                    "F1 POS",
                    *(f"{d} F1" for d in domains),
                    "out-of-domain macro-F1",
                    "minutes",
                ],
                rows,
                "Fold 0 validates on each entity's latest 15% of training tweets, fold 1 on the 15% before "
                "(training on earlier tweets only); per-domain columns are macro-F1.",
            )
        )
    for path, e in recs.ensembles:
        ood = e.get("out_of_domain", {}).get("scores", {})
        rows = [
            [
                f"`{m['model']['path']}`",
                f"{m['metrics']['accuracy']:.4f}",
                f"{m['metrics']['macro_f1']:.4f}",
                f"{m['metrics']['per_class']['NEGATIVE']['f1']:.3f}",
                _fmt(ood.get(m["model"]["path"], {}).get("accuracy")),
                _fmt(ood.get(m["model"]["path"], {}).get("macro_f1")),
            ]
            for m in e["members"]
        ]
        rows.append(
            [
                "**ensemble (mean probability)**",
                f"{e['ensemble']['accuracy']:.4f}",
                f"{e['ensemble']['macro_f1']:.4f}",
                f"{e['ensemble']['per_class']['NEGATIVE']['f1']:.3f}",
                _fmt(ood.get("ensemble", {}).get("accuracy")),
                _fmt(ood.get("ensemble", {}).get("macro_f1")),
            ]
        )
        sec.blocks.append(
            Table(
                ["member", "accuracy", "macro-F1", "F1 NEG", "out-of-domain acc", "out-of-domain macro-F1"],
                rows,
                f"`{path.name}`: out-of-domain = TweetEval sentiment val portion scored as polarity (never trained on).",
            )
        )
    return sec


def _tables(recs: Records) -> list[Section]:
    """A section per ``edgerep.docs-table`` record (the reference comparison of ``edgerep run
    --reference``): its title, caption and machine, and its table as written."""
    return [
        Section(r["title"], [f"{r['caption']} Machine: {r['machine']}.", Table(list(r["columns"]), [list(row) for row in r["rows"]])])
        for _, r in recs.tables
    ]


def _load(recs: Records) -> Section | None:
    if not recs.loads:
        return None
    rows = []
    for _, r in recs.loads:
        st, cl, sm = r["settings"], r.get("client_latency") or {}, r.get("server_metrics") or {}
        rows.append(
            [
                f"`{r['bundle']}`",
                str(st["clients"]),
                f"{r['wall_s']:.0f}",
                f"{r['requests_ok']:,}",
                str(r["errors"]),
                f"{r['throughput_requests_per_s']:.0f}",
                _fmt(cl.get("p50_ms"), ".1f"),
                _fmt(cl.get("p99_ms"), ".1f"),
                _fmt(sm.get("mean_batch_texts"), ".1f"),
            ]
        )
    return Section(
        "Serving under load (`edgerep serve`)",
        [
            "`benchmarks/serve_load.py`: concurrent keep-alive clients on loopback, one tweet a request; client-side latency includes queueing.",
            Table(["bundle", "clients", "seconds", "requests ok", "errors", "requests/s", "p50 ms", "p99 ms", "mean micro-batch"], rows),
        ],
    )


def build_report(dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, title: str = "edgerep report") -> dict:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` to ``out_dir`` (replaced atomically).

    Args:
        dirs: results directories (a run directory, a bench or matrix directory...).
        out_dir: the report directory; an existing report is replaced only once the new one is
            complete; any other non-empty directory is refused.

    Returns:
        ``{"markdown": path, "html": path, "figures": [paths], "records": n, "skipped": [...]}``.

    Raises:
        ConfigError: missing directory or no records (see :func:`collect`); ``out_dir`` is a
            non-empty directory that is not a report; matplotlib or markdown-it-py missing.
    """
    try:
        import markdown_it  # noqa: F401
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        raise ConfigError("edgerep report needs matplotlib and markdown-it-py: pip install 'edgerep[report]'") from None
    out = Path(out_dir)
    if out.exists():
        if not out.is_dir():
            raise ConfigError(f"{out}: exists and is not a directory")
        if any(out.iterdir()) and not ((out / "report.html").exists() or (out / "report.md").exists()):
            raise ConfigError(f"{out}: not empty and not a previous report; refusing to replace it (choose another --output)")
    recs = collect(dirs)
    sections = build_sections(recs)
    figs = [b for s in sections for b in s.blocks if isinstance(b, Figure)]
    with atomic_directory(out, overwrite=True) as tmp:
        (tmp / "figures").mkdir()
        for f in figs:
            (tmp / "figures" / f.name).write_bytes(f.png)
        (tmp / "report.md").write_text(to_markdown(title, sections) + "\n", encoding="utf-8")
        (tmp / "report.html").write_text(to_html(title, sections) + "\n", encoding="utf-8")
    return {
        "markdown": str(out / "report.md"),
        "html": str(out / "report.html"),
        "figures": [str(out / "figures" / f.name) for f in figs],
        "records": recs.count(),
        "skipped": recs.skipped,
    }
