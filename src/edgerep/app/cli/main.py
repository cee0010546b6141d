"""The ``edgerep`` command line: a thin typed layer over the library.

Results go to stdout (a table, or JSON with ``--json``); logs and progress to stderr. Every
user mistake ends as one ``error:`` line on stderr and exit code 1 (set ``EDGEREP_DEBUG=1``
for the traceback). Other libraries' warnings, log lines and progress bars are silenced unless
``--verbose`` (or ``EDGEREP_DEBUG=1``). Heavy libraries are imported inside the commands that
need them, so ``--help`` and ``classify`` start fast and never load torch. Every list of valid
names in a help text comes from :mod:`edgerep.registry`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgerep import LABELS
from edgerep.app.cli import tables
from edgerep.errors import ConfigError, EdgerepError, InputTextError
from edgerep.io import read_bytes
from edgerep.log import configure
from edgerep.registry import (
    ARCHITECTURES,
    BATCH_ENGINES,
    BATCH_FORMATS,
    DEFAULT_MODEL,
    MODEL_ALIASES,
    PROFILES,
    SPLITS,
    SUBSETS,
    Backend,
    Quantization,
    names,
)

app = typer.Typer(
    name="edgerep",
    help="Reputation polarity of tweets (RepLab 2013) with quantized LiteRT transformers on edge devices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain text: [CLS], edgerep[ray] print as written
    context_settings={"max_content_width": 200},
    add_completion=False,
)
data_app = typer.Typer(help="Inspect the RepLab 2013 corpus.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(data_app, name="data")


@app.callback()
def _options(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show other libraries' warnings, logs and progress bars (also EDGEREP_DEBUG=1).")
    ] = False,
) -> None:
    configure(verbose=verbose)


out = Console() if sys.stdout.isatty() else Console(width=160)  # stdout: results; wide tables when piped
err = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[Path, typer.Option("--data", help="RepLab 2013 corpus root (holds entities/ and training/).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout instead of a table.")]
Threads = Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads for inference (default: runtime's choice).")]


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


# ----------------------------------------------------------------------------- data


@data_app.command("stats")
def data_stats(
    root: Annotated[Path, typer.Argument(help="RepLab 2013 corpus root.")],
    tokenizer: Annotated[Path | None, typer.Option(help="tokenizer.json for token lengths (default: packaged all-MiniLM-L6-v2).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Counts per split, class and domain, token-length percentiles, and the data defects handled.

    Example: edgerep data stats ../shared/data/replab2013
    """
    from edgerep.data.stats import corpus_stats

    stats = corpus_stats(root, tokenizer)
    if as_json:
        _print_json(stats)
        return
    for item in tables.data_stats_tables(stats, root):
        out.print(item)


# ----------------------------------------------------------------------------- train


@app.command()
def train(
    data: DataDir,
    out_dir: Annotated[Path, typer.Option("--out", help="Run directory (checkpoints, best model).")],
    model: Annotated[str, typer.Option(help=f"Encoder: alias ({', '.join(MODEL_ALIASES)}), hub id or local path.")] = DEFAULT_MODEL,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs of the learning-rate schedule (warm-up, linear decay to zero).")] = 3,
    stop_after: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Stop after this epoch. Default: 2 with the default 3-epoch schedule (the best epoch of the recorded search on both temporal folds), else every epoch.",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Tweets per step.")] = 32,
    lr: Annotated[float, typer.Option(help="AdamW peak learning rate.")] = 5e-5,
    max_seq_len: Annotated[int | None, typer.Option(help="Tokens per tweet (default: p99 of the training tweets).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
    limit: Annotated[int | None, typer.Option(min=1, help="Train on at most this many tweets (smoke runs).")] = None,
    threads: Threads = None,
    entity: Annotated[
        bool, typer.Option("--entity/--no-entity", help="Entity-conditioned input: (entity name, tweet) as two segments.")
    ] = True,
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
    sentiment_data: Annotated[
        Path | None, typer.Option(help="TweetEval sentiment folder: auxiliary general-sentiment data (see --sentiment-mode).")
    ] = None,
    sentiment_mode: Annotated[
        str,
        typer.Option(
            help="How --sentiment-data is used: intermediate (one epoch of sentiment first) or joint (a second head trained with polarity)."
        ),
    ] = "intermediate",
    joint_weight: Annotated[float, typer.Option(help="Weight of the sentiment loss with --sentiment-mode joint.")] = 0.5,
    checkpoint_minutes: Annotated[
        float,
        typer.Option(
            min=0, help="Minutes of training between checkpoints inside an epoch (0: only at epoch ends); a run resumes from the latest."
        ),
    ] = 10.0,
) -> None:
    """Fine-tune an encoder for 3-class reputation polarity; resumes an interrupted run.

    Examples:
      edgerep train --data ../shared/data/replab2013 --out runs/minilm
      edgerep train --data ../shared/data/replab2013 --out runs/entity --entity --fold 1
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
    )
    path = do_train(data, out_dir, cfg, checkpoint_minutes or None)
    out.print(str(path))


@app.command()
def pretrain(
    data: DataDir,
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory (checkpoints, adapted encoder in OUT/model).")],
    model: Annotated[str, typer.Option(help=f"Encoder: alias ({', '.join(MODEL_ALIASES)}), hub id or local path.")] = DEFAULT_MODEL,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the unlabelled tweets.")] = 1,
    batch_size: Annotated[int, typer.Option(min=1, help="Tweets per step.")] = 32,
    lr: Annotated[float, typer.Option(help="AdamW peak learning rate.")] = 5e-5,
    extra_text: Annotated[
        list[Path] | None, typer.Option(help="TweetEval sentiment folder whose training portion joins the text (repeatable).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many tweets (smoke runs).")] = None,
    threads: Threads = None,
) -> None:
    """Domain-adaptive pretraining: masked-LM training on the corpus's unlabelled English tweets; resumable.

    The validation part's tweets are left out; fine-tune the result with `edgerep train --model OUT/model`.
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


# ----------------------------------------------------------------------------- compression


def _layers_list(spec: str) -> tuple[int, ...] | None:
    """``auto`` -> ``None`` (half the teacher's depth), ``none`` -> ``()``, ``2,3`` -> ``(2, 3)``."""
    if spec.strip() == "auto":
        return None
    try:
        out = tuple(int(x) for x in spec.split(",") if x.strip() and x.strip() != "none")
    except ValueError:
        raise ConfigError(f"--layers {spec!r}: expected auto, comma-separated layer counts (e.g. 2,3) or none") from None
    return out


def _widths_list(spec: str) -> tuple[int, ...]:
    """``--ffn-widths``: ``auto`` (the teacher's width) or comma-separated unit counts."""
    if spec.strip() == "auto":
        return ()
    try:
        return tuple(int(x) for x in spec.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"--ffn-widths {spec!r}: expected auto or comma-separated feed-forward unit counts (e.g. 1536,384)") from None


@app.command()
def distill(
    data: DataDir,
    teacher: Annotated[
        list[Path], typer.Option(help="Fine-tuned teacher model directory (repeat for an ensemble: probabilities averaged).")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory (teacher logits, checkpoints, student in OUT/model).")],
    layers: Annotated[int, typer.Option(min=1, help="Student Transformer layers, copied from evenly spaced teacher layers.")] = 2,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the transfer set.")] = 3,
    temperature: Annotated[float, typer.Option(help="Distillation temperature T.")] = 2.0,
    alpha: Annotated[float, typer.Option(help="Weight of the distillation term; 1 - alpha weighs the gold labels.")] = 0.5,
    hidden_weight: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Weight of the hidden-state term (MSE of each student layer's output to its teacher layer's; TinyBERT-style); 0 = logits only. The teacher's hidden states are computed once and kept in memory (float16; ~2 GB for RepLab with 3 layers).",
        ),
    ] = 0.0,
    ffn_width: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Feed-forward units kept per student layer (structured pruning by activation x weight importance before distillation; fewer MACs). Default: the teacher's width.",
        ),
    ] = None,
    prune_after_epoch: Annotated[
        int,
        typer.Option(
            min=0,
            help="With --ffn-width: distill at full width for N epochs, then prune (importance of the partly distilled student); 0: prune first.",
        ),
    ] = 0,
    ffn_keep_last: Annotated[
        bool,
        typer.Option(
            "--ffn-keep-last/--ffn-prune-last",
            help="With --ffn-width: the last layer keeps the teacher's width (LiteRT bundles run it for [CLS] alone: one token's MACs).",
        ),
    ] = False,
    lr: Annotated[float, typer.Option(help="AdamW peak learning rate.")] = 1e-4,
    unlabelled: Annotated[
        bool, typer.Option("--unlabelled/--labelled-only", help="Add the training split's unlabelled English tweets to the transfer set.")
    ] = True,
    transfer_text: Annotated[
        list[Path] | None,
        typer.Option(
            help="TweetEval sentiment folder whose training portion joins the transfer set as unlabelled tweets (teacher soft targets only; repeatable)."
        ),
    ] = None,
    quant_aware: Annotated[
        str,
        typer.Option(
            help="Train with the weight grid of this LiteRT recipe (quantization-aware: the student's weights end on it): none, dynamic-int4, dynamic-int8-emb4, dynamic-int8."
        ),
    ] = "none",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
    limit: Annotated[int | None, typer.Option(min=1, help="At most N transfer tweets (smoke runs).")] = None,
    threads: Threads = None,
) -> None:
    """Knowledge distillation into a shallower student (DistilBERT-style initialisation); resumable per epoch.

    Example: edgerep distill --data ../shared/data/replab2013 --teacher runs/default/train/model --layers 2 --out runs/k2
    """
    from edgerep.workstation.compress.distill import DistillConfig
    from edgerep.workstation.compress.distill import distill as do_distill

    cfg = DistillConfig(
        teachers=tuple(str(t) for t in teacher),
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
    out.print(str(do_distill(data, out_dir, cfg)))


@app.command()
def compress(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of `edgerep run` (or `edgerep train`) holding the fine-tuned model.")],
    data: DataDir,
    layers: Annotated[
        str,
        typer.Option(help="Student depths to distill, comma-separated; auto: half the teacher's (6 -> 3); none: only pruning and recipes."),
    ] = "auto",
    teacher: Annotated[
        list[Path] | None, typer.Option(help="Extra fine-tuned model averaged with the run's as an ensemble teacher (repeatable).")
    ] = None,
    quantize: Annotated[
        str, typer.Option(help=f"Recipes per compressed model, comma-separated: {names(Quantization)}.")
    ] = "dynamic-int8,dynamic-int8-emb4,dynamic-int4",
    teacher_quantize: Annotated[
        str,
        typer.Option(
            help="Recipes of the vocabulary-pruned teacher beside students (the recommendation's fallback), comma-separated; with --layers none the teacher gets --quantize."
        ),
    ] = "dynamic-int4",
    prune_vocabulary: Annotated[
        bool,
        typer.Option(
            "--prune-vocabulary/--no-prune-vocabulary", help="Keep only the WordPiece tokens of the training split's English tweets."
        ),
    ] = True,
    epochs: Annotated[int, typer.Option(min=1, help="Distillation epochs.")] = 3,
    hidden_weight: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Weight of the hidden-state distillation term (TinyBERT-style; the teacher's states are kept in memory, ~2 GB float16); 0 = logits only.",
        ),
    ] = 1.0,
    ffn_widths: Annotated[
        str,
        typer.Option(
            help="Feed-forward widths of the students, comma-separated (structured pruning before distillation; one student per depth and width, k<K>-f<F>); auto: the teacher's width."
        ),
    ] = "auto",
    prune_after_epoch: Annotated[
        int,
        typer.Option(min=0, help="With --ffn-widths: distill the narrow students at full width for N epochs, then prune; 0: prune first."),
    ] = 0,
    ffn_keep_last: Annotated[
        bool,
        typer.Option(
            "--ffn-keep-last/--ffn-prune-last",
            help="With --ffn-widths: the last layer keeps the teacher's width (LiteRT bundles run it for [CLS] alone: one token's MACs); students k<K>-f<F>-last<full>.",
        ),
    ] = False,
    transfer_text: Annotated[
        list[Path] | None,
        typer.Option(
            help="TweetEval sentiment folder whose training portion joins the students' transfer set as unlabelled tweets (teacher soft targets only; 38% more transfer tweets, ~45% longer epochs; repeatable)."
        ),
    ] = None,
    quant_aware: Annotated[
        str,
        typer.Option(
            help="Distill the students with the weight grid of this recipe (quantization-aware): none, dynamic-int4, dynamic-int8-emb4, dynamic-int8."
        ),
    ] = "dynamic-int4",
    vocab_min_count: Annotated[
        int,
        typer.Option(
            min=1,
            help="Vocabulary pruning keeps corpus tokens used at least N times (rarer words decompose into kept pieces; 1: every token used).",
        ),
    ] = 3,
    accuracy_budget: Annotated[
        float, typer.Option(help="Recommend within this many accuracy points of the float32 model (0.01 = 1.0 point).")
    ] = 0.01,
    limit: Annotated[int | None, typer.Option(min=1, help="Smoke runs: at most N distillation tweets and N/4 evaluation tweets.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Distill, prune the vocabulary, quantize with mixed recipes; evaluate and time every variant; recommend one.

    Writes RUN/compress/compression.json (one row per variant, Pareto flags) and RUN/bundles/recommended/.
    Example: edgerep compress runs/default --data ../shared/data/replab2013 --layers 2,3
    """
    from edgerep.app.compress import CompressConfig
    from edgerep.app.compress import compress as do_compress
    from edgerep.registry import parse_quantizations

    cfg = CompressConfig(
        layers=_layers_list(layers),
        teachers=tuple(str(t) for t in teacher or ()),
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


# ----------------------------------------------------------------------------- export


@app.command()
def export(
    model_dir: Annotated[Path, typer.Argument(help="Fine-tuned model directory (…/train/model).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Bundles are written to OUT/<quantization>/ (ONNX: OUT/onnx-<quantization>/).")],
    data: DataDir,
    quantize: Annotated[str, typer.Option(help=f"Comma-separated: {names(Quantization)}, or all.")] = "fp32,dynamic-int8",
    backend: Annotated[str, typer.Option(help=f"One of {names(Backend)}.")] = "litert",
    validation_tweets: Annotated[int, typer.Option(min=1, help="Validation tweets compared with PyTorch.")] = 500,
    calibration_tweets: Annotated[
        int, typer.Option(min=1, help="Training tweets in the representative dataset (full-integer int8).")
    ] = 200,
    strict: Annotated[
        bool, typer.Option("--strict/--no-strict", help="Fail on a validation failure (default), or write and report it.")
    ] = True,
    buckets: Annotated[
        str, typer.Option(help="Sequence-length buckets: auto (16,32,...,max_seq_len), none (pad to max_seq_len), or e.g. 16,32,48.")
    ] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace existing bundles.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Convert, quantize, validate against PyTorch on real tweets, and write bundles.

    LiteRT bundles of BERT-style models compute the last layer for [CLS] only (the same logits,
    fewer MACs; the manifest's source.graph says so); ONNX bundles keep the model's own graph.

    Examples:
      edgerep export runs/default/train/model --out runs/default/bundles --data ../shared/data/replab2013
      edgerep export RUN/model --out BUNDLES --data DIR --quantize all --no-strict
      edgerep export RUN/model --out BUNDLES --data DIR --backend onnxruntime --quantize dynamic-int8
    """
    from edgerep.data import SplitConfig, part_texts
    from edgerep.registry import check_combinations, parse_backend, parse_quantizations
    from edgerep.workstation.export import export_bundles, parse_buckets
    from edgerep.workstation.models import read_model_info

    modes = parse_quantizations(quantize)
    chosen_backend = parse_backend(backend)
    check_combinations(chosen_backend, modes)
    info = read_model_info(model_dir)
    bucket_list = parse_buckets(buckets, int(info["max_seq_len"]))
    parts = part_texts(data, SplitConfig(**info.get("split", {})))
    results = export_bundles(
        model_dir,
        out_dir,
        modes,
        parts["validation"].spread(validation_tweets),
        overwrite=overwrite,
        calibration_texts=parts["train"].spread(calibration_tweets),
        strict=strict,
        backend=chosen_backend,
        buckets=bucket_list,
    )
    if as_json:
        _print_json([r.to_dict() for r in results])
        return
    out.print(tables.export_table(results))


@app.command()
def matrix(
    data: DataDir,
    out_dir: Annotated[Path, typer.Option("--out", help="Matrix directory; re-running skips finished artifacts.")],
    model_dir: Annotated[
        Path | None, typer.Option("--model-dir", help="Fine-tuned model (…/train/model): its bundles are also evaluated.")
    ] = None,
    quantize: Annotated[str, typer.Option(help=f"Comma-separated: {names(Quantization)}, or all.")] = "all",
    backends: Annotated[str, typer.Option(help=f"Comma-separated: {names(Backend)}.")] = "litert,onnxruntime",
    architectures: Annotated[
        str, typer.Option(help=f"Paper architectures built from config: {', '.join(ARCHITECTURES)} (comma-separated), or none.")
    ] = "none",
    validation_tweets: Annotated[int, typer.Option(min=1, help="Validation tweets compared with the float source per artifact.")] = 200,
    calibration_tweets: Annotated[int, typer.Option(min=1, help="Representative dataset size (training tweets).")] = 200,
    eval_limit: Annotated[int | None, typer.Option(min=1, help="Evaluate fine-tuned bundles on at most N validation tweets.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Model x quantization x backend: size, agreement with float, accuracy; the footprint table.

    Example: edgerep matrix --data ../shared/data/replab2013 --model-dir runs/default/train/model --architectures mobilebert,bert-base,bert-large --out runs/matrix
    """
    from edgerep.registry import parse_architectures, parse_backends, parse_quantizations
    from edgerep.workstation.matrix import MatrixConfig, quantization_matrix

    cfg = MatrixConfig(
        quantizations=tuple(parse_quantizations(quantize)),
        backends=tuple(parse_backends(backends)),
        architectures=parse_architectures(architectures),
        validation_tweets=validation_tweets,
        calibration_tweets=calibration_tweets,
        eval_limit=eval_limit,
    )
    rec = quantization_matrix(data, out_dir, model_dir, cfg)
    if as_json:
        _print_json(rec)
        return
    out.print(tables.matrix_table(rec))
    err.print(f"matrix written to {Path(out_dir) / 'matrix.json'}")


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


# ----------------------------------------------------------------------------- classify


def _iter_inputs(text: str | None, file: Path | None):
    """Yield ``(where, text or None, error or None, entity or None)`` for each input; a JSON line's
    ``"entity"`` is the only per-input entity."""
    if text is not None:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            yield "argument", None, "text is not valid UTF-8", None
            return
        yield "argument", text, None, None
        return
    if file is not None:
        raw = read_bytes(file, InputTextError)
        if raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        for i, line in enumerate(raw.splitlines(), 1):
            try:
                s = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield f"{file}:{i}", None, f"invalid UTF-8 at byte {exc.start}", None
                continue
            if s.strip():
                yield f"{file}:{i}", s, None, None
        return
    for i, line in enumerate(sys.stdin.buffer, 1):
        where = f"stdin:{i}"
        if not line.strip():
            continue
        try:
            obj = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            yield where, None, f"invalid UTF-8 at byte {exc.start}", None
            continue
        except json.JSONDecodeError as exc:
            yield where, None, f'not a JSON line ({exc.msg}); expected {{"text": ...}} or a JSON string', None
            continue
        if isinstance(obj, dict) and isinstance(obj.get("text"), str):
            entity = obj.get("entity")
            if entity is not None and not isinstance(entity, str):
                yield where, None, f'"entity": expected a string, got {type(entity).__name__}', None
            else:
                yield where, obj["text"], None, entity
        elif isinstance(obj, str):
            yield where, obj, None, None
        else:
            yield where, None, 'expected {"text": "...", "entity": "..."} or a JSON string', None


@app.command()
def classify(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory (model.tflite, tokenizer.json, manifest.json).")],
    text: Annotated[str | None, typer.Argument(help="Tweet to classify. Omit to read --file, or JSON lines from stdin.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Text file, one tweet per line (UTF-8).")] = None,
    entity: Annotated[
        str | None, typer.Option(help='The entity the tweets are about (entity-conditioned bundles; a JSON line\'s "entity" overrides it).')
    ] = None,
    threads: Threads = None,
    as_json: JsonFlag = False,
    logits: Annotated[
        bool, typer.Option("--logits", help="With --json: add each tweet's raw logits (float32, in label order) to its line.")
    ] = False,
) -> None:
    """Classify tweets on this device with the light LiteRT runtime (no torch).

    Examples:
      edgerep classify runs/default/bundles/dynamic-int8 "Great service from @BMW today!"
      edgerep classify BUNDLE --entity BMW "BMW beats Audi in sales"
      edgerep classify BUNDLE --file tweets.txt --entity "Bank of America" --json
      echo '{"text": "HSBC fined again", "entity": "HSBC"}' | edgerep classify BUNDLE --json
    """
    from edgerep.device.runtime import PolarityClassifier
    from edgerep.device.text import normalize_entity

    if text is not None and file is not None:
        raise typer.BadParameter("give TEXT or --file, not both")
    if logits and not as_json:
        raise typer.BadParameter("--logits adds a field to the JSON lines: give --json too")
    if text is None and file is None and sys.stdin.isatty():
        raise typer.BadParameter("give TEXT, --file, or JSON lines on stdin")
    clf = PolarityClassifier(bundle, num_threads=threads)
    if entity is not None:
        normalize_entity(entity)  # an empty name is one error, not one per tweet
        if not clf.entity_conditioned:
            raise InputTextError(f"--entity: {bundle} was trained without entity conditioning and takes no entity; leave --entity out")
    elif clf.entity_conditioned and (text is not None or file is not None):
        raise InputTextError(f"{bundle} is entity-conditioned: give --entity NAME, the entity the tweets are about")
    failures = total = 0
    table = None if as_json else Table("input", "label", *LABELS, "text")
    for where, s, error, line_entity in _iter_inputs(text, file):
        total += 1
        pred = None
        if error is None:
            try:
                pred = clf.classify(s, line_entity if line_entity is not None else entity)
            except InputTextError as exc:
                error = str(exc)
        if error is not None:
            failures += 1
            err.print(f"error: {escape(where)}: {escape(error)}", highlight=False)
            if as_json:
                sys.stdout.write(json.dumps({"input": where, "error": error}) + "\n")
            continue
        assert pred is not None  # an error above continues the loop
        if as_json:
            line = {"input": where, **pred.to_dict()}
            if logits:
                line["logits"] = [float(v) for v in pred.logits]
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
        else:
            preview = s if len(s) <= 60 else s[:57] + "..."
            assert table is not None  # made when not as_json
            table.add_row(where, pred.label, *(f"{pred.probabilities[lab]:.3f}" for lab in LABELS), preview)
    if table is not None and table.row_count:
        out.print(table)
    if total == 0:
        raise EdgerepError("no input text given")
    if failures:
        raise typer.Exit(1)


# ----------------------------------------------------------------------------- batch


@app.command()
def batch(
    inputs: Annotated[
        list[Path],
        typer.Argument(help=f"Input files ({', '.join(BATCH_FORMATS)}): .jsonl/.ndjson/.json hold JSON lines, .txt one tweet a line."),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output directory: one Parquet file per shard, _edgerep_batch.json, summary.json.")
    ],
    bundle: Annotated[Path, typer.Option(help="Bundle directory (LiteRT or ONNX Runtime).")],
    text_field: Annotated[str, typer.Option(help="Column/key holding the tweet text.")] = "text",
    id_field: Annotated[str, typer.Option(help="Column/key holding the tweet id (absent: FILE:LINE).")] = "id",
    entity_field: Annotated[str, typer.Option(help="Column/key holding the entity name (entity-conditioned bundles).")] = "entity",
    entity: Annotated[str | None, typer.Option(help="Entity for rows that name none (entity-conditioned bundles).")] = None,
    shard_size: Annotated[int, typer.Option(min=1, help="Rows per output shard (the unit of resumption).")] = 50_000,
    engine: Annotated[
        str, typer.Option(help=f"{' or '.join(BATCH_ENGINES)}: worker processes here, or Ray Data actors (pip install 'edgerep[ray]').")
    ] = BATCH_ENGINES[0],
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes or Ray actors, 1 LiteRT thread each (default: cores).")
    ] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster to join: auto or ray://HOST:PORT (default: start a local one).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Classify a tweet archive into Parquet shards, resumably, on this machine or a Ray cluster.

    Re-running the same command skips finished shards; rows with unusable text are written with an error, never dropped.

    Example: edgerep batch archive.jsonl -o runs/archive --bundle runs/default/bundles/recommended --entity BMW
    """
    from edgerep.app.batch import BatchConfig, run_batch

    cfg = BatchConfig(
        text_field=text_field,
        id_field=id_field,
        entity_field=entity_field,
        entity=entity,
        shard_size=shard_size,
        engine=engine,
        workers=workers,
        address=address,
    )
    summary = run_batch(inputs, output, bundle, cfg)
    if as_json:
        _print_json(summary)
        return
    labels = ", ".join(f"{k} {v:,}" for k, v in summary["labels"].items())
    rate = f", {summary['tweets_per_s_this_run']:,.0f} tweets/s" if summary["tweets_per_s_this_run"] else ""
    out.print(f"{summary['rows']:,} rows in {output} ({labels}; {summary['errors']:,} with an error){rate}", highlight=False)


# ----------------------------------------------------------------------------- bench


@app.command()
def bench(
    bundles: Annotated[list[Path], typer.Argument(help="Bundle directories to measure.")],
    tweets: Annotated[Path, typer.Option("--tweets", help="RepLab root (validation tweets) or a text file, one tweet per line.")] = Path(
        "../shared/data/replab2013"
    ),
    threads: Annotated[str, typer.Option(help="Thread counts, comma-separated.")] = "1,2",
    batch: Annotated[
        str, typer.Option(help="Batch sizes, comma-separated: 1 (a tweet at a time) and the bundle's batch signature (8 by default).")
    ] = "1",
    profile: Annotated[str, typer.Option(help=f"Device profiles, comma-separated: {', '.join(PROFILES)}.")] = "host",
    baseline: Annotated[
        Path | None, typer.Option(help="Fine-tuned PyTorch model measured in the same run (e.g. runs/default/train/model).")
    ] = None,
    samples: Annotated[int, typer.Option(min=2, help="Tweets timed per cell (one sample each per run).")] = 200,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed inferences first.")] = 20,
    repeats: Annotated[
        int,
        typer.Option(
            min=1,
            help="Runs over the same tweets per cell, each in its own worker process, interleaved across the cells (A B C, C B A, ...: a machine that drifts moves every cell alike); a cell whose runs' medians differ by more than 10% is flagged unstable.",
        ),
    ] = 3,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="JSON record; cells of a run with the same settings are merged, other settings refused. An interrupted run resumes from OUTPUT.partial.",
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            help="Run on a real device over SSH: user@host[:port]. The device needs Python with numpy, tokenizers, ai-edge-litert."
        ),
    ] = None,
    key: Annotated[Path | None, typer.Option(help="SSH private key (default: agent and ~/.ssh keys).")] = None,
    known_hosts: Annotated[Path | None, typer.Option(help="Extra known_hosts file to trust.")] = None,
    accept_new_host_key: Annotated[
        bool, typer.Option(help="Trust an unknown host key on first contact (StrictHostKeyChecking=accept-new).")
    ] = False,
    remote_python: Annotated[str, typer.Option(help="Python interpreter on the device.")] = "python3",
    entity: Annotated[
        str | None, typer.Option(help="Entity name for every tweet (entity-conditioned bundles; a RepLab root gives each tweet's own).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Latency p50/p90/p99, throughput, peak RSS and CPU of bundles, per thread count and device profile.

    Each cell runs in its own process, pinned to the profile's cores with its memory capped.
    Example: edgerep bench runs/default/bundles/fp32 runs/default/bundles/dynamic-int8 --baseline runs/default/train/model --profile host,rpi4
    """
    from edgerep.measure.bench import bench as do_bench
    from edgerep.measure.bench import merge_into
    from edgerep.registry import parse_profiles

    profiles = parse_profiles(profile)
    if output is not None and output.is_dir():  # found now, not after minutes of measuring
        raise ConfigError(f"--output {output}: is a directory; give a JSON file path, e.g. {output / 'bench.json'}")
    if output is not None and output.is_file():  # merged into at the end: must be a bench record
        from edgerep.measure.records import read_record

        read_record(output, "bench")
    try:
        thread_list = [int(t) for t in threads.split(",") if t.strip()]
        batch_list = [int(b) for b in batch.split(",") if b.strip()]
    except ValueError:
        raise typer.BadParameter(f"{threads!r} / {batch!r}: comma-separated integers", param_hint="--threads/--batch") from None
    from edgerep.device.manifest import Manifest

    manifests = [Manifest.read(b) for b in bundles]  # fail fast, before any worker starts
    from edgerep.data import benchmark_tweets

    sample = benchmark_tweets(tweets, samples)
    texts = sample.texts
    entities = [entity] * len(texts) if entity is not None else sample.entities
    if entities is None and any(m.entity_conditioned for m in manifests):
        raise InputTextError(f"{tweets} names no entities and a bundle is entity-conditioned: give --entity NAME")
    if host:
        from edgerep.measure.remote import bench_remote

        if baseline is not None:
            raise typer.BadParameter("the PyTorch baseline runs on this machine only; drop --baseline with --host")
        rec = bench_remote(
            host,
            [str(b) for b in bundles],
            texts,
            thread_list,
            [p.name for p in profiles],
            warmup,
            repeats,
            key_filename=str(key) if key else None,
            known_hosts=str(known_hosts) if known_hosts else None,
            accept_new_host_key=accept_new_host_key,
            remote_python=remote_python,
            entities=entities,
        )
    else:
        checkpoint = output.with_name(output.name + ".partial") if output else None
        rec = do_bench(
            [str(b) for b in bundles],
            texts,
            thread_list,
            profiles,
            baseline,
            warmup,
            batches=batch_list,
            checkpoint=checkpoint,
            repeats=repeats,
            entities=entities,
        )
    if output:
        rec = merge_into(output, rec)
        if not host and checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
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


@app.command()
def serve(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory to serve.")],
    host: Annotated[
        str, typer.Option(help="Address to listen on (loopback by default; 0.0.0.0 or a LAN address needs --token-file or --insecure).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free port, printed at start).")] = 8000,
    token_file: Annotated[
        Path | None,
        typer.Option(
            envvar="EDGEREP_TOKEN_FILE",
            show_envvar=True,
            help="File whose first line is the bearer token every request but GET /health and /openapi.json needs (Authorization: Bearer <token>; at least 16 characters).",
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="Allow a network-reachable --host without --token-file (anyone on that network can use the API)."),
    ] = False,
    threads: Threads = None,
    max_batch: Annotated[int, typer.Option(min=1, help="Most texts in one inference call (micro-batching).")] = 32,
    max_wait_ms: Annotated[float, typer.Option(min=0, help="Wait this long for more requests to batch (ms).")] = 2.0,
    max_body_kb: Annotated[int, typer.Option(min=1, help="Largest request body (KiB): 413 beyond.")] = 1024,
    max_texts: Annotated[int, typer.Option(min=1, help="Most texts per request: 413 beyond.")] = 256,
    request_timeout_s: Annotated[
        float,
        typer.Option(min=0.1, help="A connection must deliver a whole request within this many seconds, else it is closed (slow clients)."),
    ] = 10.0,
    keep_alive_s: Annotated[float, typer.Option(min=0.1, help="Close an idle keep-alive connection after this many seconds.")] = 5.0,
    max_connections: Annotated[int, typer.Option(min=1, help="Open connections beyond which requests get a 503.")] = 512,
    access_log: Annotated[bool, typer.Option(help="Log every request: method, path, status (never the tweet).")] = False,
) -> None:
    """Local HTTP API: POST /classify, GET /health, GET /metrics (schema: GET /openapi.json) — no network beyond the socket.

    Example: edgerep serve runs/default/bundles/dynamic-int8 --port 8000
             curl -s localhost:8000/classify -H 'Content-Type: application/json' -d '{"text": "Great service from @BMW today!", "entity": "BMW"}'
    On a LAN: edgerep serve BUNDLE --host 0.0.0.0 --token-file ~/.config/edgerep/token (docs/usage/serving-network.md)
    """
    from edgerep.device.serve import ServeConfig, is_loopback, read_token
    from edgerep.device.serve import serve as do_serve

    cfg = ServeConfig(
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_body_bytes=max_body_kb * 1024,
        max_texts=max_texts,
        threads=threads,
        request_timeout_s=request_timeout_s,
        keep_alive_s=keep_alive_s,
        max_connections=max_connections,
    )
    token = read_token(token_file) if token_file is not None else None
    if token is None and insecure and not is_loopback(host):
        err.print(f"[yellow]warning:[/] listening on {host} without a token (--insecure): anyone on that network can use the API")

    def announce(url: str) -> None:
        auth = "bearer token required" if token else "no authentication"
        err.print(f"serving {bundle} on {url}  (POST /classify, GET /health, GET /metrics; {auth}; Ctrl-C stops)", highlight=False)

    do_serve(bundle, host, port, cfg, access_log=access_log, announce=announce, token=token, insecure=insecure)


@app.command()
def run(
    data: DataDir,
    out_dir: Annotated[Path, typer.Option("--out", help="Run directory; re-running it skips finished stages.")] = Path("runs/default"),
    model: Annotated[str, typer.Option(help=f"Encoder: alias ({', '.join(MODEL_ALIASES)}), hub id or local path.")] = DEFAULT_MODEL,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs of the learning-rate schedule (warm-up, linear decay to zero).")] = 3,
    stop_after: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Stop after this epoch. Default: 2 with the default 3-epoch schedule (the best epoch of the recorded search on both temporal folds), else every epoch.",
        ),
    ] = None,
    quantize: Annotated[
        str, typer.Option(help=f"Bundles to export, comma-separated: {names(Quantization)}, or all.")
    ] = "fp32,dynamic-int8",
    limit: Annotated[int | None, typer.Option(min=1, help="Train on at most N tweets (smoke run).")] = None,
    entity: Annotated[
        bool,
        typer.Option("--entity/--no-entity", help="Entity-conditioned model: requests name the entity (the default, validated recipe)."),
    ] = True,
    sentiment_data: Annotated[
        Path | None, typer.Option(help="TweetEval sentiment folder: auxiliary general-sentiment data (see --sentiment-mode).")
    ] = None,
    sentiment_mode: Annotated[
        str,
        typer.Option(
            help="How --sentiment-data is used: intermediate (one epoch of sentiment first) or joint (a second head trained with polarity)."
        ),
    ] = "intermediate",
    compress: Annotated[
        bool,
        typer.Option(
            "--compress/--no-compress",
            help="Compression stage: distilled student, vocabulary pruning, mixed int4/int8, recommended bundle.",
        ),
    ] = True,
    student_layers: Annotated[
        str,
        typer.Option(
            help="Student depths distilled by the compression stage, comma-separated; auto: half the teacher's (6 -> 3); none: no distillation."
        ),
    ] = "auto",
    student_widths: Annotated[
        str,
        typer.Option(
            help="Feed-forward widths of the compression stage's students, comma-separated (as compress --ffn-widths); auto: the teacher's width."
        ),
    ] = "auto",
    distill_epochs: Annotated[int, typer.Option(min=1, help="Distillation epochs of the compression stage.")] = 3,
    prune_after_epoch: Annotated[
        int,
        typer.Option(
            min=0, help="With --student-widths: distill at full width for N epochs, then prune (as compress --prune-after-epoch)."
        ),
    ] = 0,
    transfer_text: Annotated[
        list[Path] | None,
        typer.Option(
            help="TweetEval sentiment folder whose training portion joins the compression stage's transfer set as unlabelled tweets (as compress --transfer-text; repeatable)."
        ),
    ] = None,
    budget: Annotated[
        str,
        typer.Option(
            help="default, or large: domain-adaptive pretraining first and two more seeds as an ensemble teacher for the compression stage."
        ),
    ] = "default",
    pretrain_text: Annotated[
        list[Path] | None,
        typer.Option(
            help="With --budget large: TweetEval sentiment folder whose training portion joins the pretraining text (repeatable)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Fine-tune, export, quantize, validate, evaluate, time, compress and report — the whole study, resumable.

    Examples:
      edgerep run --data ../shared/data/replab2013 --out runs/default
      edgerep run --data ../shared/data/replab2013 --out runs/large --budget large --pretrain-text ../shared/data/tweeteval-sentiment
    """
    from dataclasses import replace

    from edgerep.app.compress import CompressConfig
    from edgerep.app.pipeline import RunConfig
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
    )
    if pretrain_text:
        if run_config.pretrain is None:
            raise ConfigError("--pretrain-text needs --budget large (the default budget does no pretraining)")
        run_config = replace(run_config, pretrain=replace(run_config.pretrain, extra_text=tuple(str(p) for p in pretrain_text)))
    summary = do_run(data, out_dir, run_config)
    if as_json:
        _print_json(summary)
        return
    out.print(tables.run_table(summary))
    a = summary["artifacts"]
    out.print(f"model:    {a['model']}")
    for mode, p in a["bundles"].items():
        out.print(f"bundle:   {p}  ({mode})")
    if summary.get("recommended"):
        r = summary["recommended"]
        out.print(
            f"recommended: {r['installed']}  ({r['variant']}, {r['size_mb']:.1f} MB, accuracy {r['accuracy']:.4f}, p50 {r['latency_p50_ms']:.2f} ms)"
        )
    out.print(f"results:  {a['results']}")
    out.print(f"summary:  {Path(out_dir) / 'summary.json'}")
    if (Path(out_dir) / "report" / "report.html").is_file():
        out.print(f"report:   {Path(out_dir) / 'report' / 'report.html'}")


# ----------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """Console entry point: the error funnel around the typer app.

    Returns the process exit code: 0 success, 1 a user-facing error, 2 bad usage (click),
    130 interrupted.
    """
    debug = os.environ.get("EDGEREP_DEBUG") == "1"
    try:
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int):
            return rc
    except EdgerepError as exc:
        if debug:
            raise
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err.print("interrupted; finished stages and checkpoints are kept — re-run the same command to resume")
        return 130
    except Exception as exc:  # click usage errors and OS errors
        # typer vendors click; recognise its usage errors by their interface
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):  # click.ClickException
            show()
            return code
        if isinstance(exc, OSError) and not debug:
            where = f"{exc.filename}: " if exc.filename else ""
            err.print(f"[red]error:[/] {escape(where + str(exc.strerror or exc))}", highlight=False)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
