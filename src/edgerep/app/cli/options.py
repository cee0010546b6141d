"""What every command shares: the typer apps, the consoles, common options and parsers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from edgerep.errors import ConfigError
from edgerep.log import configure
from edgerep.registry import MODEL_ALIASES

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
ModelName = Annotated[str, typer.Option("--model", help=f"Encoder: alias ({', '.join(MODEL_ALIASES)}), hub id or local path.")]
ScheduleEpochs = Annotated[
    int, typer.Option("--epochs", min=1, help="Epochs of the learning-rate schedule (warm-up, linear decay to zero).")
]
StopAfter = Annotated[
    int | None,
    typer.Option(
        "--stop-after",
        min=1,
        help="Stop after this epoch. Default: 2 with the default 3-epoch schedule (the best epoch of the recorded search on both temporal folds), else every epoch.",
    ),
]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Tweets per step.")]
LearningRate = Annotated[float, typer.Option("--lr", help="AdamW peak learning rate.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed.")]
SentimentData = Annotated[
    Path | None,
    typer.Option("--sentiment-data", help="TweetEval sentiment folder: auxiliary general-sentiment data (see --sentiment-mode)."),
]
# Distillation (distill, compress, run)
StudentLayers = Annotated[
    str,
    typer.Option(
        help="Student depths to distill, comma-separated; auto: half the teacher's (6 -> 3); none: no distillation, only pruning and recipes."
    ),
]
StudentWidths = Annotated[
    str,
    typer.Option(
        help="Feed-forward widths of the students, comma-separated (structured pruning before distillation; one student per "
        "depth and width, k<K>-f<F>); auto: the teacher's width."
    ),
]
TransferText = Annotated[
    list[Path] | None,
    typer.Option(
        help="TweetEval sentiment folder whose training portion joins the distillation transfer set as unlabelled tweets "
        "(teacher soft targets only; an epoch grows with them; repeatable)."
    ),
]
QuantAware = Annotated[
    str,
    typer.Option(
        help="Distill with the weight grid of this LiteRT recipe (quantization-aware: the student's weights end on it): "
        "none, dynamic-int4, dynamic-int8-emb4, dynamic-int8."
    ),
]
HiddenWeight = Annotated[
    float,
    typer.Option(
        min=0.0,
        help="Weight of the hidden-state term (MSE of each student layer's output to its teacher layer's; TinyBERT-style); "
        "0 = logits only. The teacher's hidden states are kept in memory (float16, about 2 GB for RepLab with 3 layers).",
    ),
]
PruneAfterEpoch = Annotated[
    int,
    typer.Option(
        min=0,
        help="With a narrower feed-forward width: distill at full width for N epochs, then prune (importance measured on the "
        "partly distilled student); 0: prune first.",
    ),
]
FfnKeepLast = Annotated[
    bool,
    typer.Option(
        "--ffn-keep-last/--ffn-prune-last",
        help="With a narrower feed-forward width: the last layer keeps the teacher's width (LiteRT bundles run it for [CLS] "
        "alone: one token's MACs).",
    ),
]
EntityConditioned = Annotated[
    bool,
    typer.Option(
        "--entity/--no-entity",
        help="Entity-conditioned model: (entity name, tweet) as the encoder's two segments, so requests name the entity (the validated recipe).",
    ),
]
TrainLimit = Annotated[int | None, typer.Option(min=1, help="Train on at most N tweets (smoke runs).")]
Relatedness = Annotated[
    bool,
    typer.Option(
        "--relatedness/--no-relatedness",
        help="Also decide relatedness (RepLab filtering): the UNRELATED tweets train a relatedness score beside the "
        "polarity scores of the same head, so the bundle gives polarity and P(related) in one pass.",
    ),
]
SentimentMode = Annotated[
    str,
    typer.Option(
        "--sentiment-mode",
        help="How --sentiment-data is used: intermediate (one epoch of sentiment first) or joint (a second head trained with polarity).",
    ),
]
Threads = Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads for inference (default: runtime's choice).")]
CheckpointMinutes = Annotated[
    float,
    typer.Option(
        min=0, help="Minutes of training between checkpoints inside an epoch (0: only at epoch ends); a run resumes from the latest."
    ),
]
TrainThreads = Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads for training (default: torch's, every core).")]


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


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
