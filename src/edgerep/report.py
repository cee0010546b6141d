"""The report: Markdown and a self-contained HTML page, built only from versioned JSON records.

``edgerep report RESULTS_DIR... -o report/`` reads every ``edgerep.*`` record under the given
directories — evaluations, latency, bench, matrix, serving load tests and run summaries — and the bundle manifests
(``edgerep-bundle``: the export's quantization and its validation against PyTorch), and writes::

    report/report.md        tables + figures/ links
    report/report.html      the same, images embedded as data URIs (one file to mail or open offline)
    report/figures/*.png    matplotlib figures (Agg backend: no display needed)

Nothing is re-measured and no model is loaded: a report can be built on any machine from the
records of another. Records of an unknown or newer schema are listed as skipped, not guessed at.
The output directory is built under a temporary name and renamed into place (never half-written).

Needs ``matplotlib`` (the ``[report]`` extra, included in ``[train]``).
"""

from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgerep.errors import ConfigError
from edgerep.io import atomic_directory
from edgerep.results import SCHEMA_VERSION

#: BERT-large (bert-large-uncased + 3-class head) has 335,144,963 parameters (counted on the model
#: built from its config, ``edgerep matrix``); float32 = 4 bytes each. Used as the footprint
#: reference only when no ``edgerep.matrix`` record (which measures the real file) is given.
BERT_LARGE_PARAMETERS = 335_144_963
BERT_LARGE_FP32_MB_ESTIMATE = BERT_LARGE_PARAMETERS * 4 / 1e6

_SKIP_NAMES = {"tokenizer.json", "tokenizer_config.json", "config.json", "special_tokens_map.json"}
_MAX_JSON_BYTES = 50_000_000


@dataclass
class Records:
    """Records found under the results directories, by kind; each item is ``(path, record)``."""

    evaluations: list[tuple[Path, dict]] = field(default_factory=list)
    latencies: list[tuple[Path, dict]] = field(default_factory=list)
    benches: list[tuple[Path, dict]] = field(default_factory=list)
    matrices: list[tuple[Path, dict]] = field(default_factory=list)
    summaries: list[tuple[Path, dict]] = field(default_factory=list)
    loads: list[tuple[Path, dict]] = field(default_factory=list)
    manifests: list[tuple[Path, dict]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def results(self) -> list[tuple[Path, dict]]:
        """Every ``edgerep.*`` record (all but the bundle manifests)."""
        return self.evaluations + self.latencies + self.benches + self.matrices + self.summaries + self.loads

    def count(self) -> int:
        return len(self.results()) + len(self.manifests)


def collect(dirs: list[str | os.PathLike]) -> Records:
    """Read the records under ``dirs`` (recursively; checkpoints and tokenizer files skipped).

    Raises:
        ConfigError: a directory does not exist, or no record was found at all.
    """
    recs = Records()
    kinds = {
        "edgerep.evaluation": recs.evaluations, "edgerep.latency": recs.latencies, "edgerep.bench": recs.benches,
        "edgerep.matrix": recs.matrices, "edgerep.summary": recs.summaries, "edgerep.load": recs.loads,
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
            if rec.get("format") == "edgerep-bundle":
                recs.manifests.append((p, rec))
                continue
            schema = rec.get("schema", "")
            if not isinstance(schema, str) or not schema.startswith("edgerep."):
                continue  # history.json, edgerep_model.json, ...: not results
            if rec.get("complete") is False:
                recs.skipped.append(f"{p}: an interrupted bench (partial record)")
            elif rec.get("schema_version", 0) > SCHEMA_VERSION:
                recs.skipped.append(f"{p}: schema_version {rec['schema_version']} is newer than this edgerep reads")
            elif schema in kinds:
                kinds[schema].append((p, rec))
            else:
                recs.skipped.append(f"{p}: unknown record kind {schema}")
    if recs.count() == 0:
        raise ConfigError(f"no edgerep results under {', '.join(map(str, dirs))} (expected results/*.json, bench.json, matrix.json, bundles/*/manifest.json)")
    return recs


# --------------------------------------------------------------------------- document model


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Figure:
    name: str  # file name under figures/
    png: bytes
    caption: str


@dataclass
class Section:
    title: str
    blocks: list[str | Table | Figure] = field(default_factory=list)


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


def _png(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _accuracy_points(recs: Records) -> list[dict]:
    """One point per evaluated artifact: evaluations, plus matrix rows with accuracy not already there."""
    pts, seen = [], set()
    for _, r in recs.evaluations:
        m = r["model"]
        key = os.path.normpath(m.get("path", ""))
        seen.add(key)
        pts.append({"label": f"{m.get('source', '')} {_name(m)}".strip(), "backend": m.get("backend") or m.get("kind"),
                    "quantization": m.get("quantization"), "size_mb": m.get("size_mb"), "accuracy": r["metrics"]["accuracy"],
                    "macro_f1": r["metrics"]["macro_f1"]})
    for _, mat in recs.matrices:
        for row in mat.get("rows", []):
            if row.get("accuracy") is None or os.path.normpath(row.get("path", "")) in seen:
                continue
            pts.append({"label": f"{row['model']} {row['backend']} {row['quantization']}", "backend": row["backend"],
                        "quantization": row["quantization"], "size_mb": row["size_mb"], "accuracy": row["accuracy"], "macro_f1": row.get("macro_f1")})
    return [p for p in pts if p["size_mb"]]


def _fig_accuracy_vs_size(points: list[dict], ref_mb: float) -> bytes:
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    quants = sorted({p["quantization"] for p in points})
    colors = {q: plt.cm.tab10(i % 10) for i, q in enumerate(quants)}
    markers = {"pytorch": "s", "litert": "o", "onnxruntime": "^"}
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for p in points:
        ax.scatter(p["size_mb"], p["accuracy"], s=70, color=colors[p["quantization"]], marker=markers.get(p["backend"], "D"),
                   edgecolor="black", linewidth=0.5, zorder=3)
    for q in quants:
        ax.scatter([], [], color=colors[q], marker="o", label=q)
    for b, mk in markers.items():
        if any(p["backend"] == b for p in points):
            ax.scatter([], [], color="white", edgecolor="black", marker=mk, label=b)
    ax.set_xscale("log")
    accs = [p["accuracy"] for p in points]
    mid, half = (max(accs) + min(accs)) / 2, max(0.02, (max(accs) - min(accs)) / 2 + 0.01)  # at least +-2 points: no magnified noise
    ax.set_ylim(mid - half, mid + half)
    sizes = [p["size_mb"] for p in points]
    ax.set_xlim(min(sizes) / 1.5, max(sizes) * 1.5)
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("model file (MB, log scale)")
    ax.set_ylabel("accuracy (validation split)")
    ax.grid(True, which="both", alpha=0.3)
    def ratio(x):  # matplotlib probes 0 and negatives while laying out the axis
        return ref_mb / np.maximum(x, 1e-9)

    top = ax.secondary_xaxis("top", functions=(ratio, ratio))
    top.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    top.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    top.set_xlabel("x smaller than BERT-large float32")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    ax.set_title("Accuracy vs model size", fontsize=11, pad=8)
    return _png(fig)


def _fig_footprint(items: list[tuple[str, float]], ref_mb: float) -> bytes:
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    items = sorted(items, key=lambda x: -x[1])
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(items) + 1.2))
    names = [n for n, _ in items]
    sizes = [s for _, s in items]
    bars = ax.barh(range(len(items)), sizes, color=["#888888" if n.startswith("BERT-large") else "#1f77b4" for n in names])
    ax.set_yticks(range(len(items)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("MB (log scale)")
    for b, s in zip(bars, sizes):
        ax.text(b.get_width() * 1.05, b.get_y() + b.get_height() / 2, f"{s:.1f} MB  ({ref_mb / s:.0f}x)", va="center", fontsize=7)
    ax.set_xlim(right=max(sizes) * 8)
    ax.set_title("Footprint and ratio to BERT-large float32", fontsize=11)
    return _png(fig)


def _fig_bench(cells: list[dict], metric: str) -> bytes:
    """Grouped bars: x = (profile, threads, batch) groups, one bar per model."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    groups = sorted({(c["profile"]["profile"], c["threads"], c.get("batch", 1)) for c in cells}, key=lambda g: (g[0] != "host", g))
    models = sorted({c["_name"] for c in cells})
    fig, ax = plt.subplots(figsize=(max(7.5, 1.1 * len(groups) + 2), 4.2))
    width = min(0.25, 0.8 / max(1, len(models)))
    for i, m in enumerate(models):
        ys, errs = [], []
        for g in groups:
            c = next((c for c in cells if c["_name"] == m and (c["profile"]["profile"], c["threads"], c.get("batch", 1)) == g), None)
            if c is None:
                ys.append(np.nan)
                errs.append(0)
            elif metric == "latency":
                ys.append(c["latency"]["p50_ms"])
                errs.append(c["latency"]["p90_ms"] - c["latency"]["p50_ms"])
            else:
                ys.append(c["throughput_tweets_per_s"])
                errs.append(0)
        x = np.arange(len(groups)) + (i - (len(models) - 1) / 2) * width
        yerr = [np.zeros(len(errs)), errs] if metric == "latency" else None  # whisker up to p90 only
        ax.bar(x, ys, width, label=m, yerr=yerr, capsize=2, color=plt.cm.tab10(i % 10))
    ax.set_xticks(range(len(groups)), [f"{p}\n{t} thr, b{b}" for p, t, b in groups], fontsize=8)
    if metric == "latency":
        ax.set_ylabel("latency p50 (ms; whisker to p90)")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title("Latency per device profile and thread count", fontsize=11)
    else:
        ax.set_ylabel("throughput (tweets/s)")
        ax.set_title("Throughput per device profile and thread count", fontsize=11)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _png(fig)


def _fig_confusion(evals: list[tuple[str, dict]]) -> bytes:
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(evals)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.1 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (title, m) in zip(axes.flat, evals):
        cm = np.asarray(m["confusion_matrix"], dtype=float)
        labels = m["labels"]
        share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, f"{int(cm[i, j])}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.6 else "black")
        short = [lab[:3] for lab in labels]
        ax.set_xticks(range(len(labels)), short, fontsize=8)
        ax.set_yticks(range(len(labels)), short, fontsize=8)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.set_title(f"{title}\nacc {m['accuracy']:.4f}, n={m['n']}", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _bench_name(c: dict) -> str:
    if c["kind"] == "pytorch":
        return "pytorch fp32"
    return f"{c.get('backend', '?')} {c.get('quantization', '?')}"


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
    sections: list[Section] = []

    # ---- overview
    ov = Section("Overview")
    results = [r for _, r in recs.results()]
    machines = {json.dumps({k: r["machine"].get(k) for k in ("cpu", "logical_cores", "os")}, sort_keys=True) for r in results}
    commits = sorted({(r.get("git_commit") or "unknown")[:10] for r in results})
    created = sorted(r.get("created", "") for r in results)
    ov.blocks.append(
        f"Built from {recs.count()} records: {len(recs.evaluations)} evaluations, {len(recs.manifests)} bundle manifests, "
        f"{len(recs.latencies)} latency, {len(recs.benches)} bench, {len(recs.matrices)} matrix, {len(recs.loads)} load, {len(recs.summaries)} run summaries"
        + (f"; created {created[0]} to {created[-1]}" if created else "") + f"; edgerep commits {', '.join(commits)}."
    )
    for mj in sorted(machines):
        m = json.loads(mj)
        ov.blocks.append(f"Measured on: {m.get('cpu')}, {m.get('logical_cores')} logical cores, {m.get('os')}.")
    for _, s in recs.summaries:
        t = s.get("train", {})
        ov.blocks.append(
            f"Run `{s.get('out')}`: {t.get('model')} fine-tuned on {t.get('train_size'):,} tweets, validated on "
            f"{t.get('validation_size'):,} (best epoch {t.get('best_epoch')}, {(t.get('train_seconds') or 0) / 60:.1f} min of training), "
            f"max_seq_len {t.get('max_seq_len')}."
            if t.get("train_size") else f"Run `{s.get('out')}`."
        )
    sections.append(ov)

    # ---- accuracy
    if recs.evaluations:
        sec = Section("Accuracy")
        rows = []
        ordered = sorted(recs.evaluations, key=lambda pr: (pr[1]["data"].get("split", ""), -pr[1]["model"].get("size_mb", 0)))
        for _, r in ordered:
            m, met = r["model"], r["metrics"]
            pcs = met.get("per_class", {})
            rows.append([
                m.get("source", ""), m.get("backend") or m.get("kind", ""), m.get("quantization", ""), _fmt(m.get("size_mb"), ".1f"),
                f"{r['data'].get('split')}/{r['data'].get('subset')}", f"{met['n']:,}", _fmt(met["accuracy"]), _fmt(met["macro_f1"]),
                " / ".join(_fmt(pcs.get(lab, {}).get("f1"), ".3f") for lab in met["labels"]), f"`{m.get('path')}`",
            ])
        sec.blocks.append(Table(["model", "backend", "quantization", "MB", "split", "n", "accuracy", "macro-F1", "F1 " + " / ".join(lab[:3] for lab in ordered[0][1]["metrics"]["labels"]), "path"], rows))
        points = _accuracy_points(recs)
        if points:
            sec.blocks.append(Figure("accuracy_vs_size.png", _fig_accuracy_vs_size(points, ref_mb),
                                     f"Accuracy against file size per quantization (colour) and backend (marker); top axis: times smaller than BERT-large float32 ({ref_mb:.1f} MB)."))
        sec.blocks.append(Figure("confusion_matrices.png", _fig_confusion([(f"{r['model'].get('source', '')} {_name(r['model'])}", r["metrics"]) for _, r in ordered]),
                                 "Confusion matrices (rows: true polarity, columns: predicted; counts and share of the row)."))
        domains = sorted({d for _, r in ordered for d in r["metrics"].get("per_domain", {})})
        if domains:
            sec.blocks.append(Table(["model"] + [f"{d} acc / F1" for d in domains],
                                    [[_name(r["model"])] + [f"{r['metrics']['per_domain'][d]['accuracy']:.3f} / {r['metrics']['per_domain'][d]['macro_f1']:.3f}"
                                      if d in r["metrics"].get("per_domain", {}) else "–" for d in domains] for _, r in ordered],
                                    "Accuracy and macro-F1 per RepLab domain."))
        sections.append(sec)

    # ---- footprint: one item per artifact path (matrix rows, bundle manifests, PyTorch models)
    by_path: dict[str, tuple[str, float]] = {}
    for _, mat in recs.matrices:
        for row in mat.get("rows", []):
            by_path[os.path.normpath(row["path"])] = (f"{row['model']} {row['backend']} {row['quantization']}", row["size_mb"])
    for p, man in recs.manifests:
        f = p.parent / man.get("model_file", "model.tflite")
        if f.is_file() and os.path.normpath(p.parent) not in by_path:
            model = Path(str(man.get("source", {}).get("model", "?"))).name.split(" ")[0]
            by_path[os.path.normpath(p.parent)] = (f"{model} {man.get('backend')} {man.get('quantization', {}).get('mode')}", f.stat().st_size / 1e6)
    for _, r in recs.evaluations:
        if r["model"].get("kind") == "pytorch":
            by_path.setdefault(os.path.normpath(r["model"]["path"]), (f"{r['model'].get('source', '')} pytorch fp32", r["model"]["size_mb"]))
    items = dict(zip(_unique_names({k: v[0] for k, v in by_path.items()}).values(), (v[1] for v in by_path.values())))
    if items:
        sec = Section("Footprint")
        items[f"BERT-large {'pytorch' if 'estimate' in ref_source else 'litert'} fp32 (reference)"] = ref_mb
        sec.blocks.append(f"Reference: BERT-large float32 = {ref_mb:.1f} MB ({ref_source}). The paper reports its quantized MobileBERT 160x smaller than BERT-large.")
        sec.blocks.append(Table(["artifact", "MB", "x smaller than BERT-large fp32"],
                                [[n, f"{s:.1f}", f"{ref_mb / s:.1f}"] for n, s in sorted(items.items(), key=lambda x: x[1])]))
        sec.blocks.append(Figure("footprint.png", _fig_footprint(list(items.items()), ref_mb), "Model file sizes (log scale) with their ratio to BERT-large float32."))
        exports = [(p, man) for p, man in recs.manifests if man.get("validation")]
        if exports:
            rows = []
            for p, man in exports:
                v = man["validation"]
                rows.append([f"`{p.parent}`", man.get("backend", ""), man.get("quantization", {}).get("recipe", "") or "–",
                             _fmt(v.get("max_abs_logit_diff"), ".4f"), _fmt(v.get("label_agreement"), ".1%"), str(v.get("n", "–")),
                             "yes" if v.get("passed") else "**no**"])
            sec.blocks.append(Table(["bundle", "backend", "recipe", "max abs Δlogit", "label agreement", "tweets", "passed"], rows,
                                    "Export validation: each bundle run by the on-device runtime against PyTorch on the same validation tweets."))
        sections.append(sec)

    # ---- matrix
    for p, mat in recs.matrices:
        sec = Section(f"Quantization matrix (`{p}`)")
        rows = [[r["model"], f"{r.get('parameters', 0) / 1e6:.1f}", r["backend"], r["quantization"], f"{r['size_mb']:.1f}", f"{r.get('ratio_to_bert_large_fp32', 0):.1f}",
                 _fmt(r.get("max_abs_logit_diff"), ".3f"), _fmt(r.get("label_agreement"), ".1%"),
                 "–" if r.get("passed") is None else ("yes" if r["passed"] else "**no**"), _fmt(r.get("accuracy")), _fmt(r.get("macro_f1"))]
                for r in mat.get("rows", [])]
        sec.blocks.append(Table(["model", "params (M)", "backend", "quantization", "MB", "x smaller than BERT-large", "max abs Δlogit", "agreement", "valid", "accuracy", "macro-F1"], rows))
        sections.append(sec)

    # ---- speed
    cells = [{**c, "_record": p} for p, b in recs.benches for c in b.get("cells", [])]
    names = _unique_names({os.path.normpath(c["path"]): _bench_name(c) for c in cells})
    for c in cells:
        c["_name"] = names[os.path.normpath(c["path"])]
    if cells or recs.latencies:
        sec = Section("Latency, throughput and memory")
        ok = [c for c in cells if "error" not in c]
        if ok:
            sec.blocks.append("`edgerep bench`: each cell in its own process on real tweets, warm-up excluded; profiles emulate a board's cores and RAM (not its clock or instruction set).")
            rows = []
            for c in sorted(cells, key=lambda c: (c["profile"]["profile"] != "host", c["profile"]["profile"], c["threads"], c.get("batch", 1), c["_name"])):
                if "error" in c:
                    rows.append([c["_name"], c["profile"]["profile"], str(c["threads"]), str(c.get("batch", 1))] + ["–"] * 8 + [c["error"][:80]])
                    continue
                lat = c["latency"]
                rows.append([c["_name"], c["profile"]["profile"], str(c["threads"]), str(c.get("batch", 1)), f"{c['model_size_mb']:.1f}", f"{c['init_ms']:.0f}",
                             f"{lat['p50_ms']:.2f}", f"{lat['p90_ms']:.2f}", f"{lat['p99_ms']:.2f}", f"{c['throughput_tweets_per_s']:.0f}",
                             f"{c['peak_rss_mb']:.0f}", _fmt(c.get("speedup_vs_pytorch"), ".1f"), "; ".join(c.get("warnings", []))[:80]])
            sec.blocks.append(Table(["model", "profile", "threads", "batch", "MB", "init ms", "p50 ms", "p90 ms", "p99 ms", "tweets/s", "peak RSS MB", "x PyTorch", "note"], rows))
            sec.blocks.append(Figure("latency.png", _fig_bench(ok, "latency"), "Latency p50 per device profile, thread count and batch (whisker: p90)."))
            sec.blocks.append(Figure("throughput.png", _fig_bench(ok, "throughput"), "Throughput per device profile, thread count and batch."))
        if recs.latencies and not ok:  # no bench record: plot the run's single-tweet latency records
            lat_cells = [{"_name": f"{r.get('quantization')} ({Path(str(r.get('bundle'))).parent.parent.name})", "profile": {"profile": "host"},
                          "threads": r.get("threads") or 0, "batch": 1, "latency": r["latency"], "throughput_tweets_per_s": r["throughput_tweets_per_s"]}
                         for _, r in recs.latencies]
            sec.blocks.append(Figure("latency.png", _fig_bench(lat_cells, "latency"), "Single-tweet latency p50 (whisker: p90) of the run's bundles on this machine."))
        if recs.latencies:
            rows = [[r.get("quantization", ""), f"`{r.get('bundle')}`", str(r.get("threads")), f"{r['model_size_mb']:.1f}", f"{r['init_ms']:.0f}", f"{r['first_inference_ms']:.0f}",
                     f"{r['latency']['p50_ms']:.2f}", f"{r['latency']['p90_ms']:.2f}", f"{r['latency']['p99_ms']:.2f}", f"{r['throughput_tweets_per_s']:.0f}", str(r["latency"]["n"])]
                    for _, r in recs.latencies]
            sec.blocks.append(Table(["quantization", "bundle", "threads", "MB", "init ms", "first ms", "p50 ms", "p90 ms", "p99 ms", "tweets/s", "samples"], rows,
                                    "Single-tweet latency of `edgerep run` (classify including normalization and tokenization)."))
        sections.append(sec)

    if recs.loads:
        rows = []
        for _, r in recs.loads:
            st, cl, sm = r["settings"], r.get("client_latency") or {}, r.get("server_metrics") or {}
            rows.append([f"`{r['bundle']}`", str(st["clients"]), f"{r['wall_s']:.0f}", f"{r['requests_ok']:,}", str(r["errors"]),
                         f"{r['throughput_requests_per_s']:.0f}", _fmt(cl.get("p50_ms"), ".1f"), _fmt(cl.get("p99_ms"), ".1f"),
                         _fmt(sm.get("mean_batch_texts"), ".1f")])
        sections.append(Section("Serving under load (`edgerep serve`)", [
            "`benchmarks/serve_load.py`: concurrent keep-alive clients on loopback, one tweet a request; client-side latency includes queueing.",
            Table(["bundle", "clients", "seconds", "requests ok", "errors", "requests/s", "p50 ms", "p99 ms", "mean micro-batch"], rows),
        ]))

    if recs.skipped:
        sections.append(Section("Skipped files", [Table(["file and reason"], [[s] for s in recs.skipped])]))
    return sections


# --------------------------------------------------------------------------- rendering


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def to_markdown(title: str, sections: list[Section]) -> str:
    out = [f"# {title}", ""]
    for sec in sections:
        out += [f"## {sec.title}", ""]
        for b in sec.blocks:
            if isinstance(b, Table):
                if b.caption:
                    out += [b.caption, ""]
                out.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
                out.append("|" + "---|" * len(b.header))
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
                out.append("")
            elif isinstance(b, Figure):
                out += [f"![{b.caption}](figures/{b.name})", "", f"*{b.caption}*", ""]
            else:
                out += [b, ""]
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.82em}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:left}th{background:#f2f2f2}td.num{text-align:right}caption{caption-side:top;text-align:left;font-style:italic;padding:.3em 0}
figure{margin:1em 0}figcaption{font-size:.85em;color:#555}img{max-width:100%}code{font-size:.95em}
"""


def _inline(s: str) -> str:
    """Escape, then render the two Markdown marks the report uses: `code` and **bold**."""
    import re

    s = html.escape(s)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)


_NUM = ' class="num"'


def _is_number(s: str) -> bool:
    return bool(s) and s.replace(",", "").replace(".", "", 1).replace("%", "").replace("-", "", 1).replace("+", "", 1).isdigit()


def to_html(title: str, sections: list[Section]) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{html.escape(title)}</title>",
           f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    for sec in sections:
        out.append(f"<section><h2>{_inline(sec.title)}</h2>")
        for b in sec.blocks:
            if isinstance(b, Table):
                out.append("<table>" + (f"<caption>{_inline(b.caption)}</caption>" if b.caption else ""))
                out.append("<thead><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in b.header) + "</tr></thead><tbody>")
                out += ["<tr>" + "".join(f"<td{_NUM if _is_number(c) else ''}>{_inline(c)}</td>" for c in row) + "</tr>" for row in b.rows]
                out.append("</tbody></table>")
            elif isinstance(b, Figure):
                data = base64.b64encode(b.png).decode("ascii")
                out.append(f'<figure><img alt="{html.escape(b.caption)}" src="data:image/png;base64,{data}"><figcaption>{_inline(b.caption)}</figcaption></figure>')
            else:
                out.append(f"<p>{_inline(b)}</p>")
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)


def build_report(dirs: list[str | os.PathLike], out_dir: str | os.PathLike, title: str = "edgerep report") -> dict:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` to ``out_dir`` (replaced atomically).

    Args:
        dirs: results directories (a run directory, a bench or matrix directory...).
        out_dir: the report directory; an existing report is replaced only once the new one is
            complete; any other non-empty directory is refused.

    Returns:
        ``{"markdown": path, "html": path, "figures": [paths], "records": n, "skipped": [...]}``.

    Raises:
        ConfigError: missing directory or no records (see :func:`collect`); ``out_dir`` is a
            non-empty directory that is not a report; matplotlib missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        raise ConfigError("edgerep report needs matplotlib: pip install 'edgerep[report]'") from None
    out = Path(out_dir)
    if out.exists():
        if not out.is_dir():
            raise ConfigError(f"{out}: exists and is not a directory")
        if any(out.iterdir()) and not ((out / "report.html").exists() or (out / "report.md").exists()):
            raise ConfigError(f"{out}: not empty and not a previous report; refusing to replace it (choose another --output)")
    recs = collect(dirs)
    sections = build_sections(recs)
    figures = [b for s in sections for b in s.blocks if isinstance(b, Figure)]
    with atomic_directory(out, overwrite=True) as tmp:
        (tmp / "figures").mkdir()
        for f in figures:
            (tmp / "figures" / f.name).write_bytes(f.png)
        (tmp / "report.md").write_text(to_markdown(title, sections) + "\n", encoding="utf-8")
        (tmp / "report.html").write_text(to_html(title, sections) + "\n", encoding="utf-8")
    return {
        "markdown": str(out / "report.md"), "html": str(out / "report.html"),
        "figures": [str(out / "figures" / f.name) for f in figures], "records": recs.count(), "skipped": recs.skipped,
    }
