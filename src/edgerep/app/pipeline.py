"""``edgerep run``: the whole study in one resumable command.

Stages and their outputs under ``out_dir``::

    config.json                          resolved RunConfig (a re-run with other settings is refused)
    pretrain/model/                      domain-adapted encoder (``--budget large``; resumes per epoch)
    train/model/                         fine-tuned checkpoint (resumes inside an epoch)
    reference/model/                     the reference encoder fine-tuned alike (``--reference``; resumes mid-epoch)
    reference/bundles/<quantization>/    its validated LiteRT bundles
    members/seed-<S>/model/              more fine-tuned members of the ensemble teacher (``--budget large``)
    results/ensemble.json                each member's and the ensemble's validation scores (with members)
    bundles/<quantization>/              validated LiteRT bundles
    results/evaluation-<model>.json      accuracy, macro-F1, per class, confusion matrix
    results/evaluation-reference-<model>.json   the same for the reference model and its bundles
    results/bench.json                   single-tweet latency of each bundle (``edgerep bench``'s cells)
    compress/                            distilled student, pruned vocabulary, mixed recipes (``edgerep compress``)
    bundles/recommended/                 the smallest, fastest variant within 1.0 point of the float32 model
    summary.json                         the figures above in one record
    report/                              report.md, report.html, figures/ (``edgerep report``)
    edgerep.log                          every log and progress line of the run, with times

A stage whose output exists is skipped, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from edgerep.app.compress import CompressConfig
from edgerep.data import Samples, part_texts, smoke_validation_size
from edgerep.errors import ConfigError
from edgerep.io import atomic_write_json, check_or_write_config, record_is_current, settings_dict
from edgerep.log import configure, log
from edgerep.measure.metrics import validation_summary, validation_text
from edgerep.measure.records import make_record, read_record, write_record
from edgerep.registry import MODEL_INFO_FILE, PROFILES, Quantization, parse_quantizations
from edgerep.workstation.pretrain import PretrainConfig
from edgerep.workstation.train import TrainConfig

#: ``edgerep run --budget``: the default recipe, and the larger one for users with more time
#: (domain-adaptive pretraining first, then two more fine-tuned seeds: a 3-member ensemble teacher
#: for the compression stage's distillation); docs/experiments/teacher-search.md gives their cost.
BUDGETS = ("default", "large")
LARGE_ENSEMBLE_SEEDS = (14, 15)


def reference_recipe(train: TrainConfig, model: str) -> TrainConfig:
    """Fine-tuning of the reference encoder ``model`` (``edgerep run --reference``): the run's
    settings (split, entity conditioning, batch, seed) with two epochs at a peak learning rate of
    3e-5, within the ranges for 110M-parameter encoders (Devlin et al., 2019, appendix A.3: 2 to 4
    epochs, 2e-5 to 5e-5), and no auxiliary sentiment task."""
    return replace(train, model=model, epochs=2, stop_after=None, learning_rate=3e-5, sentiment_data=None)


@dataclass(frozen=True)
class RunConfig:
    """Settings of ``edgerep run``.

    Attributes:
        train: fine-tuning settings.
        quantizations: bundle variants to export (:class:`edgerep.registry.Quantization`; names are parsed).
        export_validation_tweets: validation tweets compared between PyTorch and each bundle.
        latency_tweets: validation tweets timed one by one per bundle.
        latency_threads: LiteRT threads for the latency figure (1 = a single edge core).
        compress: the compression stage (:func:`edgerep.app.compress.compress`); ``None`` skips it.
        pretrain: domain-adaptive pretraining of ``train.model`` before fine-tuning
            (:func:`edgerep.workstation.pretrain.pretrain`; its ``model``, ``split`` and ``limit``
            are the training's); ``None`` skips it.
        ensemble_seeds: seeds of more fine-tuned members (same settings otherwise); with any, the
            run's model and these are scored as an ensemble and distilled from together.
        reference: fine-tuning of the reference encoder (:func:`reference_recipe` around a model
            name); it is exported, evaluated and timed like the run's model, compared with it and
            its students (paired bootstrap), and joins the compression stage's teacher. ``None``:
            no reference.
    """

    train: TrainConfig = field(default_factory=TrainConfig)
    quantizations: tuple[Quantization, ...] = (Quantization.FP32, Quantization.DYNAMIC_INT8)
    export_validation_tweets: int = 500
    latency_tweets: int = 300
    latency_threads: int = 1
    compress: CompressConfig | None = field(default_factory=CompressConfig)
    pretrain: PretrainConfig | None = None
    ensemble_seeds: tuple[int, ...] = ()
    reference: TrainConfig | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantizations", tuple(parse_quantizations(list(self.quantizations))))
        object.__setattr__(self, "ensemble_seeds", tuple(int(x) for x in self.ensemble_seeds))
        if self.train.seed in self.ensemble_seeds or len(set(self.ensemble_seeds)) != len(self.ensemble_seeds):
            raise ConfigError(
                f"ensemble_seeds {list(self.ensemble_seeds)} must differ from each other and from the training seed {self.train.seed}"
            )
        if self.export_validation_tweets < 1 or self.latency_tweets < 2:
            raise ConfigError("export_validation_tweets must be >= 1 and latency_tweets >= 2")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["train"] = self.train.to_dict()  # its own rules (a stop after the last epoch is the whole schedule)
        d["quantizations"] = [q.value for q in self.quantizations]
        d["compress"] = None if self.compress is None else self.compress.to_dict()
        d["pretrain"] = None if self.pretrain is None else settings_dict(asdict(self.pretrain), {})  # tuples as JSON has them
        d["ensemble_seeds"] = list(self.ensemble_seeds)
        d["reference"] = None if self.reference is None else self.reference.to_dict()
        return settings_dict(d, self.OPTIONAL)

    #: Fields a config.json may lack (:func:`edgerep.io.settings_dict`): their defaults.
    OPTIONAL: ClassVar[dict] = {"reference": None}

    @classmethod
    def for_budget(cls, budget: str, train: TrainConfig, **kwargs) -> RunConfig:
        """The run of one of :data:`BUDGETS` around ``train``: ``default`` as given; ``large``
        adds domain-adaptive pretraining (one masked-LM epoch on the corpus's English tweets)
        and two more seeds as ensemble members.

        Raises:
            ConfigError: an unknown budget (names the valid ones).
        """
        if budget not in BUDGETS:
            raise ConfigError(f"budget {budget!r} unknown; valid: {', '.join(BUDGETS)}")
        if budget == "large":
            kwargs = {"pretrain": PretrainConfig(), "ensemble_seeds": LARGE_ENSEMBLE_SEEDS, **kwargs}
        return cls(train=train, **kwargs)


def run(data_root: str | os.PathLike, out_dir: str | os.PathLike, config: RunConfig = RunConfig()) -> dict:
    """Run (or resume) the full pipeline; return the ``edgerep.summary`` record.

    Raises:
        DataError, ModelLoadError, ConfigError, ExportValidationError (see the stages).
    """
    from edgerep.workstation.train import train

    out = Path(out_dir)
    _check_inputs(data_root, out, config)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config.to_dict()
    check_or_write_config(out / "config.json", cfg, ConfigError)
    configure(log_file=out / "edgerep.log")

    stages = iter(_stage_names(config))
    train_cfg = config.train
    if config.pretrain is not None:
        from edgerep.workstation.pretrain import pretrain

        log(next(stages))
        pcfg = replace(config.pretrain, model=train_cfg.model, split=train_cfg.split, limit=train_cfg.limit, threads=train_cfg.threads)
        train_cfg = replace(train_cfg, model=str(pretrain(data_root, out / "pretrain", pcfg)))
    log(next(stages))
    model_dir = train(data_root, out / "train", train_cfg)
    members = []
    if config.ensemble_seeds:
        log(next(stages))
        members = _members(data_root, out, train_cfg, config.ensemble_seeds, model_dir)
    reference_dir = None
    if config.reference is not None:
        log(next(stages))
        reference_dir = train(data_root, out / "reference", replace(config.reference, limit=train_cfg.limit, threads=train_cfg.threads))
    val_texts = part_texts(data_root, config.train.split)["validation"]
    log(next(stages))
    check_texts = val_texts.spread(config.export_validation_tweets)
    exports = _export(model_dir, out / "bundles", config, check_texts)
    ref_exports = [] if reference_dir is None else _export(reference_dir, out / "reference" / "bundles", config, check_texts)
    log(next(stages))
    results = out / "results"
    models = [("pytorch", model_dir)] + [(e.mode, Path(e.path)) for e in exports]
    if reference_dir is not None:
        models += [("reference-pytorch", reference_dir)] + [(f"reference-{e.mode}", Path(e.path)) for e in ref_exports]
    evals = _evaluate(data_root, results, models, config)
    log(next(stages))
    cells = _latency(
        results / "bench.json",
        [Path(e.path) for e in [*exports, *ref_exports]],
        val_texts.spread(config.latency_tweets),
        config.latency_threads,
    )
    summary = _summary(data_root, out, cfg, model_dir, [*exports, *ref_exports], evals, cells)
    write_record(out / "summary.json", summary)
    if config.compress is not None:
        log(next(stages))
        extra = [*members, *([reference_dir] if reference_dir is not None else [])]
        summary = _compress(data_root, out, config, extra)
    if reference_dir is not None:
        log(next(stages))
        rec_bundle = out / "bundles" / "recommended" if summary.get("recommended") else None
        comparison = _comparison(
            data_root, results, evals, ref_exports, exports, rec_bundle, val_texts.spread(config.latency_tweets), config
        )
        summary["comparison"] = str(results / "comparison.json")
        write_record(out / "summary.json", summary)
        for row in comparison["rows"]:
            log(f"comparison {row[0]}: {row[2]} MB, macro-F1 {row[6]}, vs reference {row[8]}")
    log(next(stages))
    _report(out, summary)
    return summary


def _check_inputs(data_root, out: Path, config: RunConfig) -> None:
    """What a user can get wrong fails before anything is written: the corpus, the reference's
    name (not after fine-tuning), the compression stage's transfer text.

    Raises:
        DataError: no corpus or unreadable transfer text. ModelLoadError: a reference that does not load.
    """
    from edgerep.data.replab import find_split_dir

    find_split_dir(data_root, "training")
    if config.reference is not None and not (out / "reference" / "model" / MODEL_INFO_FILE).is_file():
        from edgerep.workstation.models import load_tokenizer, resolve_source

        load_tokenizer(resolve_source(config.reference.model))
    if config.compress is not None:
        from edgerep.app.compress import check_transfer_text

        check_transfer_text(config.compress.transfer_text)


def _report(out: Path, summary: dict) -> None:
    """The report stage; without matplotlib the run's results stand and the log says how to get it."""
    try:
        from edgerep.app.report import build_report

        rep = build_report([out], out / "report", title=f"edgerep run — {summary['train']['model']} on RepLab 2013")
        log(f"report: {rep['html']} and {rep['markdown']}")
    except ConfigError as e:
        log(f"[yellow]report skipped[/]: {e}")


def _compress(data_root, out: Path, config: RunConfig, extra_teachers: list[Path]) -> dict:
    """The compression stage (:func:`edgerep.app.compress.compress`) with the ensemble members and
    the reference as extra teachers; its rule and recommendation go into ``summary.json``, which
    is returned."""
    from edgerep.app.compress import compress

    assert config.compress is not None
    ccfg = config.compress
    if extra_teachers:
        ccfg = replace(ccfg, teachers=(*ccfg.teachers, *(str(m) for m in extra_teachers)))
    if config.train.limit is not None and ccfg.limit is None:  # smoke runs stay small
        ccfg = replace(ccfg, limit=config.train.limit, latency_tweets=min(ccfg.latency_tweets, config.latency_tweets))
    record = compress(data_root, out, ccfg)
    summary = read_record(out / "summary.json", "summary")
    summary["compression"] = {"record": str(out / "compress" / "compression.json"), "rule": record["rule"]}
    if record.get("recommended"):
        summary["recommended"] = {**record["recommended"], "installed": str(out / "bundles" / "recommended")}
    write_record(out / "summary.json", summary)
    return summary


def _stage_names(config: RunConfig) -> list[str]:
    """The run's stages in order, as the log shows them: ``[bold]K/N name[/] (what)``."""
    stages = [("pretrain", "masked-LM on the corpus's English tweets")] if config.pretrain is not None else []
    stages.append(("fine-tune", ""))
    if config.ensemble_seeds:
        stages.append(("ensemble members", f"seeds {', '.join(map(str, config.ensemble_seeds))}"))
    if config.reference is not None:
        stages.append(("reference", f"fine-tune {config.reference.model}"))
    stages += [("export", ""), ("evaluate", "validation split"), ("latency", f"single tweet, {config.latency_threads} thread")]
    if config.compress is not None:
        stages.append(("compress", "distillation, vocabulary pruning, mixed precision"))
    if config.reference is not None:
        stages.append(("comparison", f"against the reference, {config.latency_threads} thread"))
    stages.append(("report", ""))
    return [f"[bold]{k}/{len(stages)} {name}[/]" + (f" ({what})" if what else "") for k, (name, what) in enumerate(stages, 1)]


def _members(data_root, out: Path, train_cfg: TrainConfig, seeds: tuple[int, ...], model_dir: Path) -> list[Path]:
    """Fine-tune one more member per seed (resumable), score the run's model and the members as
    a probability-averaging ensemble into ``results/ensemble.json`` (kept when present); return
    the members' model directories."""
    from edgerep.measure.evaluate import evaluate_ensemble
    from edgerep.workstation.train import train

    members = [train(data_root, out / "members" / f"seed-{s}", replace(train_cfg, seed=s)) for s in seeds]
    path = out / "results" / "ensemble.json"
    if not path.is_file():
        limit = train_cfg.limit and smoke_validation_size(train_cfg.limit)
        write_record(path, evaluate_ensemble([model_dir, *members], data_root, limit=limit, threads=train_cfg.threads))
    m = read_record(path, "ensemble")["ensemble"]
    log(f"ensemble of {len(members) + 1}: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}")
    return members


def _export(model_dir: Path, out: Path, config: RunConfig, texts: Samples):
    from edgerep.workstation.export import export_bundles

    return export_bundles(model_dir, out, list(config.quantizations), texts)


def _evaluate(data_root, results: Path, models: list[tuple[str, Path]], config: RunConfig) -> dict[str, dict]:
    """An ``edgerep.evaluation`` record per model on the validation split (kept when present and
    newer than the model or bundle, :func:`edgerep.io.record_is_current`)."""
    from edgerep.measure.evaluate import evaluate, kept_evaluation

    evals = {}
    for name, path in models:
        rec_path = results / f"evaluation-{name}.json"
        rec = kept_evaluation(rec_path, path)  # None: the bundle or model was rebuilt since
        if rec is not None:
            log(f"evaluate {name}: {rec_path} exists, skipping")
        else:
            rec = evaluate(
                path, data_root, "training", "validation", limit=config.train.limit and smoke_validation_size(config.train.limit)
            )
            write_record(rec_path, rec)
        evals[name] = rec
        log(f"evaluate {name}: {validation_text(rec['metrics'])} (n={rec['metrics']['n']})")
    return evals


def _latency(path: Path, bundles: list[Path], tweets: Samples, threads: int) -> dict[str, dict]:
    """Single-tweet latency of each bundle by :func:`edgerep.measure.bench.bench` (host profile, one
    worker process per bundle); the record is kept when present and newer than every bundle. Returns ``{resolved bundle path: cell}``."""
    from edgerep.measure.bench import bench

    if record_is_current(path, *bundles):
        rec = read_record(path, "bench")
    else:
        rec = bench(bundles, tweets.texts, threads=(threads,), profiles=(PROFILES["host"],), warmup=10, entities=tweets.entities)
        write_record(path, rec)
    cells = {str(Path(c["path"]).resolve()): c for c in rec["cells"] if "error" not in c}
    for c in cells.values():
        name = f"{Path(c['path']).parent.parent.name}/{Path(c['path']).name}"
        lat = c["latency"]
        log(
            f"latency {name}: p50 {lat['p50_ms']:.2f} ms (MAD {lat['mad_ms']:.2f}), p90 {lat['p90_ms']:.2f} ms, "
            f"{c['throughput_tweets_per_s']:.0f} tweets/s ({threads} thread)"
        )
    for c in rec["cells"]:
        if "error" in c:
            log(f"[red]latency {Path(c['path']).name}[/]: {c['error']}")
    return cells


def _comparison(
    data_root, results: Path, evals: dict[str, dict], ref_exports, exports, recommended: Path | None, tweets: Samples, config: RunConfig
) -> dict:
    """The study's table (:func:`edgerep.measure.comparison.reference_comparison`) into
    ``results/comparison.json``: the reference (float32, then its bundles), the run's model and
    bundles, and the recommended student, all timed in one bench run
    (``results/comparison-bench.json``, kept while newer than every bundle)."""
    from edgerep.measure.bench import bench
    from edgerep.measure.comparison import reference_comparison
    from edgerep.measure.evaluate import evaluate, kept_evaluation

    labelled = [("reference float32 (transformers)", evals["reference-pytorch"])]
    labelled += [(f"reference {e.mode}", evals[f"reference-{e.mode}"]) for e in ref_exports]
    labelled += [("float32 (transformers)", evals["pytorch"])] + [(e.mode, evals[e.mode]) for e in exports]
    bundles = [Path(e.path) for e in [*ref_exports, *exports]]
    if recommended is not None:
        path = results / "evaluation-recommended.json"
        rec = kept_evaluation(path, recommended)
        if rec is None:
            limit = config.train.limit and smoke_validation_size(config.train.limit)
            rec = evaluate(recommended, data_root, "training", "validation", limit=limit)
            write_record(path, rec)
        labelled.append(("recommended student", rec))
        bundles.append(recommended)
    bench_path = results / "comparison-bench.json"
    if record_is_current(bench_path, *bundles):
        bench_rec = read_record(bench_path, "bench")
    else:
        bench_rec = bench(
            bundles, tweets.texts, threads=(config.latency_threads,), profiles=(PROFILES["host"],), warmup=10, entities=tweets.entities
        )
        write_record(bench_path, bench_rec)
    table = reference_comparison(labelled, bench_rec)
    atomic_write_json(results / "comparison.json", table)
    return table


def _summary(data_root, out: Path, cfg: dict, model_dir: Path, exports, evals: dict[str, dict], cells: dict[str, dict]) -> dict:
    info = json.loads((model_dir / MODEL_INFO_FILE).read_text())
    rows = []
    for name, rec in evals.items():
        row = {
            "model": name,
            "path": rec["model"]["path"],
            "size_mb": rec["model"]["size_mb"],
            "accuracy": rec["metrics"]["accuracy"],
            "macro_f1": rec["metrics"]["macro_f1"],
        }
        if "filtering" in rec["metrics"]:
            row["filtering"] = validation_summary(rec["metrics"])["filtering"]
        cell = cells.get(str(Path(rec["model"]["path"]).resolve()))
        if cell is not None:
            lat = cell["latency"]
            row.update(
                latency_p50_ms=lat["p50_ms"],
                latency_p90_ms=lat["p90_ms"],
                latency_mad_ms=lat["mad_ms"],
                throughput_tweets_per_s=cell["throughput_tweets_per_s"],
            )
        exp = next((e for e in exports if str(Path(e.path).resolve()) == str(Path(rec["model"]["path"]).resolve())), None)
        if exp is not None:
            row["export_validation"] = {k: exp.validation.get(k) for k in ("max_abs_logit_diff", "label_agreement", "passed")}
        rows.append(row)
    return make_record(
        "summary",
        {
            "data": str(data_root),
            "out": str(out),
            "config": cfg,
            "train": {k: info.get(k) for k in ("best_epoch", "train_seconds", "train_size", "validation_size", "max_seq_len")}
            | {"model": info.get("source_model")},
            "rows": rows,
            "artifacts": {"model": str(model_dir), "bundles": {e.mode: e.path for e in exports}, "results": str(out / "results")},
        },
    )
