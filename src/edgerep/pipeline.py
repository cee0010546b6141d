"""``edgerep run``: the whole study in one resumable command.

Stages and their outputs under ``out_dir``::

    config.json                          resolved RunConfig (a re-run with other settings is refused)
    train/model/                         fine-tuned checkpoint (resumes per epoch)
    bundles/<quantization>/              validated LiteRT bundles
    results/evaluation-<model>.json      accuracy, macro-F1, per class, confusion matrix
    results/latency-<quantization>.json  single-tweet latency on validation tweets
    summary.json                         the figures above in one record
    report/                              report.md, report.html, figures/ (``edgerep report``)

A stage whose output exists is skipped, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgerep.data import spread
from edgerep.errors import ConfigError
from edgerep.export import parse_quantizations
from edgerep.io import check_or_write_config
from edgerep.progress import log
from edgerep.results import make_record, read_record, write_record
from edgerep.train import TrainConfig


@dataclass(frozen=True)
class RunConfig:
    """Settings of ``edgerep run``.

    Attributes:
        train: fine-tuning settings.
        quantizations: bundle variants to export (names of :class:`edgerep.export.Quantization`).
        export_validation_tweets: validation tweets compared between PyTorch and each bundle.
        latency_tweets: validation tweets timed one by one per bundle.
        latency_threads: LiteRT threads for the latency figure (1 = a single edge core).
    """

    train: TrainConfig = field(default_factory=TrainConfig)
    quantizations: tuple[str, ...] = ("fp32", "dynamic-int8")
    export_validation_tweets: int = 500
    latency_tweets: int = 300
    latency_threads: int = 1

    def __post_init__(self) -> None:
        parse_quantizations(list(self.quantizations))
        if self.export_validation_tweets < 1 or self.latency_tweets < 2:
            raise ConfigError("export_validation_tweets must be >= 1 and latency_tweets >= 2")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["quantizations"] = list(self.quantizations)
        return d


def run(data_root: str | os.PathLike, out_dir: str | os.PathLike, config: RunConfig = RunConfig()) -> dict:
    """Run (or resume) the full pipeline; return the ``edgerep.summary`` record.

    Raises:
        DataError, ModelLoadError, ConfigError, ExportValidationError (see the stages).
    """
    from edgerep.evaluate import evaluate
    from edgerep.export import export_bundles
    from edgerep.latency import measure_latency
    from edgerep.train import load_training_data, train

    from edgerep.data.replab import find_split_dir

    find_split_dir(data_root, "training")  # a missing corpus fails before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config.to_dict()
    check_or_write_config(out / "config.json", cfg, ConfigError)

    log("[bold]1/5 fine-tune[/]")
    model_dir = train(data_root, out / "train", config.train)
    _, val, _ = load_training_data(data_root, config.train)
    val_texts = [t.text for t in val]

    log("[bold]2/5 export[/]")
    modes = parse_quantizations(list(config.quantizations))
    exports = export_bundles(model_dir, out / "bundles", modes, spread(val_texts, config.export_validation_tweets))

    log("[bold]3/5 evaluate[/] (validation split)")
    results = out / "results"
    evals = {}
    for name, path in [("pytorch", model_dir)] + [(e.mode, Path(e.path)) for e in exports]:
        rec_path = results / f"evaluation-{name}.json"
        if rec_path.is_file():
            log(f"evaluate {name}: {rec_path} exists, skipping")
            rec = read_record(rec_path, "evaluation")
        else:
            rec = evaluate(path, data_root, "training", "validation", limit=config.train.limit and len(val))
            write_record(rec_path, rec)
        evals[name] = rec
        m = rec["metrics"]
        log(f"evaluate {name}: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f} (n={m['n']})")

    log("[bold]4/5 latency[/] (single tweet)")
    lat = {}
    for e in exports:
        rec_path = results / f"latency-{e.mode}.json"
        if rec_path.is_file():
            rec = read_record(rec_path, "latency")
        else:
            rec = measure_latency(e.path, spread(val_texts, config.latency_tweets), threads=config.latency_threads)
            write_record(rec_path, rec)
        lat[e.mode] = rec
        log(f"latency {e.mode}: p50 {rec['latency']['p50_ms']:.2f} ms, p90 {rec['latency']['p90_ms']:.2f} ms ({config.latency_threads} thread)")

    info = json.loads((model_dir / "edgerep_model.json").read_text())
    rows = []
    for name, rec in evals.items():
        row = {
            "model": name,
            "path": rec["model"]["path"],
            "size_mb": rec["model"]["size_mb"],
            "accuracy": rec["metrics"]["accuracy"],
            "macro_f1": rec["metrics"]["macro_f1"],
        }
        if name in lat:
            row["latency_p50_ms"] = lat[name]["latency"]["p50_ms"]
            row["latency_p90_ms"] = lat[name]["latency"]["p90_ms"]
            row["throughput_tweets_per_s"] = lat[name]["throughput_tweets_per_s"]
        exp = next((e for e in exports if e.mode == name), None)
        if exp is not None:
            row["export_validation"] = {k: exp.validation.get(k) for k in ("max_abs_logit_diff", "label_agreement", "passed")}
        rows.append(row)
    summary = make_record(
        "summary",
        {
            "data": str(data_root),
            "out": str(out),
            "config": cfg,
            "train": {
                "model": info.get("source_model"),
                "best_epoch": info.get("best_epoch"),
                "train_seconds": info.get("train_seconds"),
                "train_size": info.get("train_size"),
                "validation_size": info.get("validation_size"),
                "max_seq_len": info.get("max_seq_len"),
            },
            "rows": rows,
            "artifacts": {
                "model": str(model_dir),
                "bundles": {e.mode: e.path for e in exports},
                "results": str(results),
            },
        },
    )
    write_record(out / "summary.json", summary)

    log("[bold]5/5 report[/]")
    try:
        from edgerep.report import build_report

        rep = build_report([out], out / "report", title=f"edgerep run — {info.get('source_model')} on RepLab 2013")
        log(f"report: {rep['html']} and {rep['markdown']}")
    except ConfigError as e:  # matplotlib missing: the run's results stand; say how to get the report
        log(f"[yellow]report skipped[/]: {e}")
    return summary
