"""The report's matplotlib figures (Agg backend), each returned as PNG bytes.

Readable at a glance: linear axes unless the values span more than :data:`LOG_RANGE` (then a
log axis with 1-2-5 ticks), several labelled ticks on every axis, no bars on a log axis, and
the numbers written next to the marks.
"""

from __future__ import annotations

import io

#: Use a log axis only when max / min exceeds this.
LOG_RANGE = 20.0


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _size_axis(ax, values: list[float], axis: str = "x") -> None:
    """Linear axis from 0 with ~6 ticks, or a log axis with 1-2-5 ticks when the range is wide."""
    import matplotlib.ticker as mt

    a = ax.xaxis if axis == "x" else ax.yaxis
    lo, hi = min(values), max(values)
    if lo > 0 and hi / lo > LOG_RANGE:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        a.set_major_locator(mt.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        a.set_major_formatter(mt.FuncFormatter(lambda v, _: f"{v:g}"))
        a.set_minor_formatter(mt.NullFormatter())
        (ax.set_xlim if axis == "x" else ax.set_ylim)(lo / 1.6, hi * 1.6)
    else:
        a.set_major_locator(mt.MaxNLocator(nbins=6))
        (ax.set_xlim if axis == "x" else ax.set_ylim)(0, hi * 1.25)


def accuracy_vs_size(points: list[dict], ref_mb: float) -> bytes:
    """Scatter of accuracy against file size per quantization (colour) and backend (marker); each
    point labelled with its size and its ratio to BERT-large float32 (``ref_mb``).

    ``points``: ``{"size_mb", "accuracy", "quantization", "backend"}`` each.
    """
    import matplotlib.pyplot as plt
    import matplotlib.ticker as mt

    quants = sorted({p["quantization"] for p in points})
    colors = {q: plt.cm.tab10(i % 10) for i, q in enumerate(quants)}
    markers = {"pytorch": "s", "litert": "o", "onnxruntime": "^"}
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    labelled: list[tuple[float, float]] = []
    sizes, accs = [p["size_mb"] for p in points], [p["accuracy"] for p in points]
    dx, dy = (max(sizes) - min(sizes)) * 0.03 or 1.0, (max(accs) - min(accs)) * 0.05 or 0.002
    for p in points:
        ax.scatter(
            p["size_mb"],
            p["accuracy"],
            s=70,
            color=colors[p["quantization"]],
            marker=markers.get(p["backend"], "D"),
            edgecolor="black",
            linewidth=0.5,
            zorder=3,
        )
        if any(abs(p["size_mb"] - x) < dx and abs(p["accuracy"] - y) < dy for x, y in labelled):
            continue  # one label for points that coincide (a float32 bundle and its PyTorch source)
        labelled.append((p["size_mb"], p["accuracy"]))
        ax.annotate(
            f"{p['size_mb']:.1f} MB\n{ref_mb / p['size_mb']:.0f}x smaller",
            (p["size_mb"], p["accuracy"]),
            textcoords="offset points",
            xytext=(8, -4),
            fontsize=7,
            va="top",
        )
    for q in quants:
        ax.scatter([], [], color=colors[q], marker="o", label=q)
    for b, mk in markers.items():
        if any(p["backend"] == b for p in points):
            ax.scatter([], [], color="white", edgecolor="black", marker=mk, label=b)
    _size_axis(ax, sizes, "x")
    mid, half = (max(accs) + min(accs)) / 2, max(0.02, (max(accs) - min(accs)) / 2 + 0.01)  # at least +-2 points: no magnified noise
    ax.set_ylim(mid - half, mid + half)
    ax.yaxis.set_major_locator(mt.MaxNLocator(nbins=6))
    ax.set_xlabel("model file (MB)")
    ax.set_ylabel("accuracy (validation split)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    ax.set_title(f"Accuracy vs model size (ratios to BERT-large float32, {ref_mb:.0f} MB)", fontsize=10, pad=8)
    return _png(fig)


def footprint(items: list[tuple[str, float]], ref_mb: float) -> bytes:
    """Horizontal bars of file sizes on a linear axis, each labelled with its MB and ratio to ``ref_mb``."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker as mt

    items = sorted(items, key=lambda x: -x[1])
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(items) + 1.2))
    names = [n for n, _ in items]
    sizes = [s for _, s in items]
    bars = ax.barh(range(len(items)), sizes, color=["#888888" if n.startswith("BERT-large") else "#1f77b4" for n in names])
    ax.set_yticks(range(len(items)), names, fontsize=8)
    ax.invert_yaxis()
    ax.xaxis.set_major_locator(mt.MaxNLocator(nbins=6))
    ax.set_xlabel("MB")
    for b, s in zip(bars, sizes):
        ax.text(
            b.get_width() + max(sizes) * 0.01, b.get_y() + b.get_height() / 2, f"{s:.1f} MB ({ref_mb / s:.0f}x)", va="center", fontsize=7
        )
    ax.set_xlim(0, max(sizes) * 1.3)
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title("Footprint and ratio to BERT-large float32", fontsize=11)
    return _png(fig)


def bench_bars(cells: list[dict], metric: str) -> bytes:
    """Grouped bars on a linear axis: x = (profile, threads, batch) groups, one bar per model.

    ``metric``: ``latency`` (p50, whisker up to p90) or ``throughput`` (tweets/s). ``cells``:
    bench cells with a ``_name``.
    """
    import matplotlib.pyplot as plt
    import matplotlib.ticker as mt
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
        bars = ax.bar(x, ys, width, label=m, yerr=yerr, capsize=2, color=plt.cm.tab10(i % 10))
        for b, y in zip(bars, ys):
            if not np.isnan(y):  # the value inside the bar, clear of the p90 whisker
                ax.text(
                    b.get_x() + b.get_width() / 2,
                    y / 2,
                    f"{y:.1f}" if metric == "latency" else f"{y:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white",
                    rotation=90 if len(groups) * len(models) > 8 else 0,
                )
    ax.set_xticks(range(len(groups)), [f"{p}\n{t} thr, b{b}" for p, t, b in groups], fontsize=8)
    ax.yaxis.set_major_locator(mt.MaxNLocator(nbins=6))
    ax.set_ylim(bottom=0)
    if metric == "latency":
        ax.set_ylabel("latency p50 (ms; whisker to p90)")
        ax.set_title("Latency per device profile and thread count", fontsize=11)
    else:
        ax.set_ylabel("throughput (tweets/s)")
        ax.set_title("Throughput per device profile and thread count", fontsize=11)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _png(fig)


def confusion(evals: list[tuple[str, dict]]) -> bytes:
    """One confusion matrix per evaluation (counts and share of the true class)."""
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
                ax.text(
                    j,
                    i,
                    f"{int(cm[i, j])}\n{share[i, j]:.0%}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if share[i, j] > 0.6 else "black",
                )
        short = [lab[:3] for lab in labels]
        ax.set_xticks(range(len(labels)), short, fontsize=8)
        ax.set_yticks(range(len(labels)), short, fontsize=8)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.set_title(f"{title}\nacc {m['accuracy']:.4f}, n={m['n']}", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def compression_pareto(rows: list[dict], reference: dict, budget: float, target_mb: float) -> bytes:
    """Two panels of an ``edgerep.compression`` record's timed rows: accuracy against file size,
    and accuracy against p50 latency at 1 thread. Colour = model (teacher or K-layer student),
    marker = recipe; Pareto-optimal variants are ringed, the recommended one starred; the dashed
    line is the float32 model's accuracy minus ``budget``, the dotted one the paper's 160x size.
    """
    import matplotlib.pyplot as plt
    import matplotlib.ticker as mt

    models = sorted({r["model"] for r in rows})
    colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(models)}
    quants = sorted({r["quantization"] for r in rows})
    shapes = dict(zip(quants, "osD^vP<>X*"))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, key, label in ((axes[0], "size_mb", "model file (MB)"), (axes[1], "latency_p50_ms", "p50 latency, 1 thread (ms)")):
        for r in rows:
            ax.scatter(
                r[key],
                r["accuracy"],
                s=60,
                color=colors[r["model"]],
                marker=shapes[r["quantization"]],
                edgecolor="black",
                linewidth=0.5,
                zorder=3,
            )
            if r.get("pareto"):
                ax.scatter(r[key], r["accuracy"], s=220, facecolor="none", edgecolor="black", linewidth=0.8, zorder=2)
            if r.get("recommended"):
                ax.scatter(r[key], r["accuracy"], s=260, marker="*", color="gold", edgecolor="black", zorder=4)
        ax.axhline(reference["accuracy"] - budget, ls="--", color="grey", lw=1)
        ax.text(
            max(r[key] for r in rows),
            reference["accuracy"] - budget,
            f" float32 - {100 * budget:.1f} pt",
            fontsize=7,
            va="bottom",
            ha="right",
            color="grey",
        )
        if key == "size_mb":
            ax.axvline(target_mb, ls=":", color="crimson", lw=1)
            ax.text(
                target_mb,
                0.02,
                f" 160x = {target_mb:.1f} MB ",
                fontsize=7,
                color="crimson",
                rotation=90,
                va="bottom",
                ha="right",
                transform=ax.get_xaxis_transform(),
            )
        ax.set_xlim(0, max(r[key] for r in rows) * 1.15)
        ax.xaxis.set_major_locator(mt.MaxNLocator(nbins=6))
        ax.set_xlabel(label)
        ax.grid(True, alpha=0.3)
    accs = [r["accuracy"] for r in rows] + [reference["accuracy"]]
    mid, half = (max(accs) + min(accs)) / 2, max(0.02, (max(accs) - min(accs)) / 2 + 0.01)
    axes[0].set_ylim(mid - half, mid + half)
    axes[0].yaxis.set_major_locator(mt.MaxNLocator(nbins=6))
    axes[0].set_ylabel("accuracy (validation split)")
    for m in models:
        axes[1].scatter([], [], color=colors[m], marker="o", label=m)
    for q in quants:
        axes[1].scatter([], [], color="white", edgecolor="black", marker=shapes[q], label=q)
    axes[1].scatter([], [], s=120, facecolor="none", edgecolor="black", label="Pareto-optimal")
    axes[1].scatter([], [], s=160, marker="*", color="gold", edgecolor="black", label="recommended")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.suptitle("Compression variants: accuracy vs size and vs latency", fontsize=11)
    return _png(fig)
