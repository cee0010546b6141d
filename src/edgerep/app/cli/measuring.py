"""Measurement commands: ``evaluate``, ``ensemble``, ``bench`` and ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgerep.app.cli import tables
from edgerep.app.cli.options import DataDir, JsonFlag, Threads, _print_json, app, err, out
from edgerep.registry import (
    PROFILES,
    SPLITS,
    SUBSETS,
)

# ----------------------------------------------------------------------------- evaluate


@app.command()
def evaluate(
    model: Annotated[Path, typer.Argument(help="Bundle directory or fine-tuned checkpoint directory.")],
    data: DataDir,
    split: Annotated[str, typer.Option(help=f"Corpus split: {', '.join(SPLITS)}.")] = "training",
    subset: Annotated[str, typer.Option(help=f"{', '.join(SUBSETS)} (auto: the validation part of training, all of test).")] = "auto",
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N tweets.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Result JSON path (default: evaluation-<model>-<split>.json).")
    ] = None,
    threads: Threads = None,
    as_json: JsonFlag = False,
) -> None:
    """Accuracy, macro-F1, per-class P/R/F1 and confusion matrix, as a versioned JSON result.

    \b
    Example: edgerep evaluate runs/default/bundles/dynamic-int8 --data ../shared/data/replab2013
    """
    from edgerep.measure.evaluate import evaluate as do_eval
    from edgerep.measure.records import write_record

    if split not in SPLITS:
        raise typer.BadParameter(f"{split!r}; valid: {', '.join(SPLITS)}", param_hint="--split")
    rec = do_eval(model, data, split, subset, limit=limit, threads=threads)
    path = write_record(output or Path(f"evaluation-{model.name}-{split}.json"), rec)
    if as_json:
        _print_json(rec)
        return
    out.print(tables.metrics_table({model.name: rec}))
    out.print(tables.confusion_table(rec))
    err.print(f"result written to {path}")


@app.command()
def ensemble(
    members: Annotated[list[Path], typer.Argument(help="Fine-tuned checkpoints or bundles (same validation split).")],
    data: DataDir,
    out_of_domain: Annotated[
        Path | None, typer.Option(help="TweetEval sentiment folder: its val portion scored as polarity (out-of-domain check).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N validation tweets.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Result JSON path.")] = Path("ensemble.json"),
    threads: Threads = None,
    as_json: JsonFlag = False,
) -> None:
    """Validation scores of each member and of their probability-averaging ensemble (the teacher).

    \b
    Example: edgerep ensemble runs/a/model runs/b/model --data ../shared/data/replab2013 --out-of-domain ../shared/data/tweeteval-sentiment
    """
    from edgerep.measure.evaluate import evaluate_ensemble
    from edgerep.measure.records import write_record

    rec = evaluate_ensemble(members, data, limit=limit, threads=threads, out_of_domain=out_of_domain)
    write_record(output, rec)
    if as_json:
        _print_json(rec)
        return
    out.print(tables.ensemble_table(rec))
    err.print(f"result written to {output}")


# ----------------------------------------------------------------------------- bench


BatchSizes = Annotated[
    str, typer.Option(help="Batch sizes, comma-separated: 1 (a tweet at a time) and the bundle's batch signature (8 by default).")
]
Baseline = Annotated[Path | None, typer.Option(help="Fine-tuned PyTorch model measured in the same run (e.g. runs/default/train/model).")]
Repeats = Annotated[
    int,
    typer.Option(
        min=1,
        help="Runs over the same tweets per cell, each in its own worker process, interleaved across the cells (A B C, C B A, ...: a machine that drifts moves every cell alike); a cell whose runs' medians differ by more than 10% is flagged unstable.",
    ),
]
BenchOutput = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="JSON record; cells of a run with the same settings are merged, other settings refused. An interrupted run resumes from OUTPUT.partial.",
    ),
]
Host = Annotated[
    str | None,
    typer.Option(help="Run on a real device over SSH: user@host[:port]. The device needs Python with numpy, tokenizers, ai-edge-litert."),
]
AcceptNewHostKey = Annotated[bool, typer.Option(help="Trust an unknown host key on first contact (StrictHostKeyChecking=accept-new).")]
BenchEntity = Annotated[
    str | None, typer.Option(help="Entity name for every tweet (entity-conditioned bundles; a RepLab root gives each tweet's own).")
]


@app.command()
def bench(
    bundles: Annotated[list[Path], typer.Argument(help="Bundle directories to measure.")],
    tweets: Annotated[Path, typer.Option("--tweets", help="RepLab root (validation tweets) or a text file, one tweet per line.")] = Path(
        "../shared/data/replab2013"
    ),
    threads: Annotated[str, typer.Option(help="Thread counts, comma-separated.")] = "1,2",
    batch: BatchSizes = "1",
    profile: Annotated[str, typer.Option(help=f"Device profiles, comma-separated: {', '.join(PROFILES)}.")] = "host",
    baseline: Baseline = None,
    samples: Annotated[int, typer.Option(min=2, help="Tweets timed per cell (one sample each per run).")] = 200,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed inferences first.")] = 20,
    repeats: Repeats = 3,
    output: BenchOutput = None,
    host: Host = None,
    key: Annotated[Path | None, typer.Option(help="SSH private key (default: agent and ~/.ssh keys).")] = None,
    known_hosts: Annotated[Path | None, typer.Option(help="Extra known_hosts file to trust.")] = None,
    accept_new_host_key: AcceptNewHostKey = False,
    remote_python: Annotated[str, typer.Option(help="Python interpreter on the device.")] = "python3",
    entity: BenchEntity = None,
    as_json: JsonFlag = False,
) -> None:
    """Latency p50/p90/p99, throughput, peak RSS and CPU of bundles, per thread count and device profile.

    Each cell runs in its own process, pinned to the profile's cores with its memory capped.
    \b
    Example: edgerep bench runs/default/bundles/fp32 runs/default/bundles/dynamic-int8 --baseline runs/default/train/model --profile host,rpi4
    """
    from edgerep.measure.bench import bench_bundles
    from edgerep.registry import parse_profiles

    try:
        thread_list = [int(t) for t in threads.split(",") if t.strip()]
        batch_list = [int(b) for b in batch.split(",") if b.strip()]
    except ValueError:
        raise typer.BadParameter(f"{threads!r} / {batch!r}: comma-separated integers", param_hint="--threads/--batch") from None
    if host and baseline is not None:
        raise typer.BadParameter("the PyTorch baseline runs on this machine only; drop --baseline with --host")
    ssh = dict(
        key_filename=str(key) if key else None,
        known_hosts=str(known_hosts) if known_hosts else None,
        accept_new_host_key=accept_new_host_key,
        remote_python=remote_python,
    )
    rec = bench_bundles(
        bundles, tweets, thread_list, batch_list, parse_profiles(profile), baseline, samples, warmup, repeats, output, entity, host, ssh
    )
    if as_json:
        _print_json(rec)
        return
    out.print(tables.bench_table(rec))
    for note in dict.fromkeys(c["profile"].get("not_emulated") for c in rec["cells"] if c.get("profile", {}).get("not_emulated")):
        err.print(f"note: {note}")
    for c in rec["cells"]:
        for w in c.get("warnings", []):
            err.print(f"warning: {Path(c['path']).name} t{c['threads']} {c['profile']['profile']}: {w}")
    if output:
        err.print(f"result written to {output}")


# ----------------------------------------------------------------------------- run


@app.command()
def report(
    results: Annotated[
        list[Path], typer.Argument(help="Results directories: a run (runs/default), a bench or matrix directory; searched recursively.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Report directory (replaced atomically).")] = Path("report"),
    title: Annotated[str, typer.Option(help="Page title.")] = "edgerep report",
    as_json: JsonFlag = False,
) -> None:
    """Markdown + self-contained HTML report with plots, from the versioned JSON results only.

    Accuracy vs size per quantization and backend, confusion matrices, footprint ratio to
    BERT-large, latency/throughput per device profile and thread count.
    \b
    Example: edgerep report runs/default runs/bench -o report/
    """
    from edgerep.app.report import build_report

    rep = build_report(results, output, title=title)
    if as_json:
        _print_json(rep)
        return
    out.print(f"report: {rep['html']}")
    out.print(f"        {rep['markdown']} ({len(rep['figures'])} figures, {rep['records']} records)")
    for s in rep["skipped"]:
        err.print(f"warning: skipped {s}")
