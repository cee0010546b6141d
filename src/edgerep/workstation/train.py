"""Fine-tuning an encoder for 3-class reputation polarity (heavy: torch + transformers).

Output layout under ``out_dir`` (the run directory of :mod:`edgerep.workstation.loop`)::

    config.json                   resolved TrainConfig (max_seq_len filled in)
    checkpoints/epoch-K/          weights after epoch K (+ optimizer state for the latest)
    checkpoints/mid-epoch/        inside an epoch: weights, optimizer, schedule, RNG state, batches done
    history.json                  per-epoch train loss and validation metrics
    model/                        best epoch on validation: HF weights, tokenizer, edgerep_model.json

Interrupted runs resume from the latest checkpoint, at an epoch's end or inside an epoch (a
mid-epoch checkpoint is written every ``checkpoint_minutes``); a finished run (``model/``
present) is returned as is; a resumed run reproduces the uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np

from edgerep import LABELS, RELATEDNESS_LABELS, __version__
from edgerep.data import SplitConfig, Tweet, training_tweets
from edgerep.device.text import NORMALIZATION_VERSION
from edgerep.device.tokenizer import TweetTokenizer
from edgerep.errors import ConfigError
from edgerep.io import atomic_directory, atomic_write_json, check_or_write_config, settings_dict
from edgerep.log import log
from edgerep.registry import DEFAULT_MODEL, TOKENIZER_FILE
from edgerep.workstation.inference import ids_logits, model_inputs
from edgerep.workstation.loop import (
    DEFAULT_CHECKPOINT_MINUTES,
    Fit,
    LossTally,
    MidEpoch,
    TrainingRun,
    batch_pass,
    epoch_batches,
    grouped_batches,
    install_model,
    latest_checkpoint,
    make_optimizer,
    resume_state,
    save_tokenizer,
    set_threads,
    validated_epoch,
)
from edgerep.workstation.models import load_for_classification, load_tokenizer, resolve_source

SELECT_METRICS = ("macro_f1", "accuracy")
#: How TweetEval sentiment data is used (:attr:`TrainConfig.sentiment_mode`).
SENTIMENT_MODES = ("intermediate", "joint")
#: File of the auxiliary sentiment head in a checkpoint (never in the final model).
SENTIMENT_HEAD_FILE = "sentiment_head.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning settings; the resolved copy is saved as ``config.json`` in the run.

    Attributes:
        model: alias, hub id or local path of the pretrained encoder.
        epochs: passes over the training set; the learning-rate schedule (warm-up, linear decay
            to zero) spans them all.
        stop_after: stop after this epoch (``None``: train every epoch of the schedule). The
            default recipe of ``edgerep run`` / ``train`` trains 2 epochs of the 3-epoch schedule
            (:func:`recipe_stop_after`), the best epoch of the recorded search on both temporal
            folds (docs/experiments/teacher-search.md); the model is the same.
        batch_size: tweets per optimizer step.
        learning_rate: AdamW peak learning rate, linear warm-up then linear decay
            (Devlin et al., 2019, BERT fine-tuning recipe).
        weight_decay: AdamW decoupled weight decay (not applied to biases and LayerNorm).
        warmup_ratio: share of steps with linear warm-up.
        max_seq_len: truncation length in tokens; ``None`` = the ``max_seq_len_percentile``
            of training token lengths, rounded up to a multiple of 8.
        max_seq_len_percentile: percentile used when ``max_seq_len`` is ``None``.
        seed: seed of batch order, dropout and the classifier head initialization.
        select_metric: validation metric that picks the best epoch (``macro_f1``/``accuracy``).
        limit: use at most this many training tweets (smoke tests); ``None`` = all.
        threads: torch intra-op threads; ``None`` = all cores.
        split: how validation is carved out of the training split.
        entity: entity-conditioned input: the pair (entity name, tweet) as the encoder's two
            segments (:class:`~edgerep.device.tokenizer.TweetTokenizer`). On by default
            (docs/experiments/teacher-search.md).
        label_smoothing: cross-entropy label smoothing in [0, 1) (Szegedy et al., 2016).
        class_weighted: weight the loss per class by ``n / (k * n_class)`` over the training
            tweets (scikit-learn's "balanced" weights), raising the share of NEGATIVE.
        sentiment_data: folder of TweetEval sentiment files (:mod:`edgerep.data.tweeteval`) for
            an intermediate task: one epoch of general sentiment (its training portion, single
            tweets, the same 3-way head) before fine-tuning on polarity (Pruksachatkun et al.,
            ACL 2020, intermediate-task transfer). ``None``: no auxiliary data.
        sentiment_mode: ``intermediate`` (above) or ``joint``: a second, sentiment head (a
            linear layer on the features the polarity classifier reads, the pooled ``[CLS]``
            after dropout) trained with polarity in the same epochs, hard parameter sharing
            (Caruana, 1997; Liu et al., ACL 2019, MT-DNN). Each epoch interleaves the polarity
            batches with ``1/epochs`` of the sentiment tweets (each seen once over the run);
            loss = CE(polarity) on polarity batches, ``joint_weight`` x CE(sentiment) on
            sentiment batches. The deployed model keeps only the polarity head.
        joint_weight: weight of the sentiment loss in ``joint`` mode, > 0.
        relatedness: also decide relatedness (RepLab's filtering task): the corpus's UNRELATED
            tweets join the training and validation tweets, and the head gives three polarity
            scores and a relatedness score composed into four log-probabilities over
            :data:`edgerep.RELATEDNESS_LABELS` (:mod:`edgerep.workstation.heads`), so one pass
            yields polarity and P(related). Validation reports polarity on the gold-related
            tweets (which pick the best epoch) and filtering on all
            (:func:`edgerep.measure.metrics.logits_report`).
        relatedness_weight: weight of the relatedness term against the polarity term of the
            loss (:func:`edgerep.workstation.heads.relatedness_loss`); 1 is the cross-entropy
            over the head's four log-probabilities. Class weights and label smoothing apply to
            that cross-entropy only (weight 1).
    """

    model: str = DEFAULT_MODEL
    epochs: int = 3
    stop_after: int | None = None
    batch_size: int = 32
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_seq_len: int | None = None
    max_seq_len_percentile: float = 99.0
    seed: int = 13
    select_metric: str = "macro_f1"
    limit: int | None = None
    threads: int | None = None
    split: SplitConfig = field(default_factory=SplitConfig)
    entity: bool = True
    label_smoothing: float = 0.0
    class_weighted: bool = False
    sentiment_data: str | None = None
    sentiment_mode: str = "intermediate"
    joint_weight: float = 0.5
    relatedness: bool = False
    relatedness_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.stop_after is not None and not 1 <= self.stop_after <= self.epochs:
            raise ConfigError(f"stop_after must be in [1, epochs={self.epochs}], got {self.stop_after}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.select_metric not in SELECT_METRICS:
            raise ConfigError(f"select_metric {self.select_metric!r} unknown; valid: {', '.join(SELECT_METRICS)}")
        if self.max_seq_len is not None and not 8 <= self.max_seq_len <= 512:
            raise ConfigError(f"max_seq_len must be in [8, 512], got {self.max_seq_len}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.sentiment_mode not in SENTIMENT_MODES:
            raise ConfigError(f"sentiment_mode {self.sentiment_mode!r} unknown; valid: {', '.join(SENTIMENT_MODES)}")
        if not self.joint_weight > 0:
            raise ConfigError(f"joint_weight must be > 0, got {self.joint_weight}")
        if not self.relatedness_weight > 0:
            raise ConfigError(f"relatedness_weight must be > 0, got {self.relatedness_weight}")
        if self.relatedness_weight != 1.0 and not self.relatedness:
            raise ConfigError("relatedness_weight weighs the relatedness term: give relatedness (--relatedness) too")

    #: Settings saved only when set (:func:`edgerep.io.settings_dict`).
    OPTIONAL = {"stop_after": None, "relatedness": False, "relatedness_weight": 1.0}

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["stop_after"] == self.epochs:  # a stop after the last epoch is the whole schedule
            d["stop_after"] = None
        return settings_dict(d, self.OPTIONAL)

    @property
    def resolved_max_seq_len(self) -> int:
        """``max_seq_len`` once resolved from the training tweets.

        Raises:
            ConfigError: not resolved yet (``None``).
        """
        if self.max_seq_len is None:
            raise ConfigError("max_seq_len is not resolved yet")
        return self.max_seq_len

    @property
    def labels(self) -> tuple[str, ...]:
        """The model's classes in logit order: :data:`edgerep.LABELS`, with ``relatedness``
        :data:`edgerep.RELATEDNESS_LABELS`."""
        return RELATEDNESS_LABELS if self.relatedness else LABELS

    @property
    def trained_epochs(self) -> int:
        """Epochs actually trained: ``stop_after`` or ``epochs``."""
        return self.stop_after or self.epochs

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        d["split"] = SplitConfig(**d.get("split", {}))
        return cls(**d)


#: The default recipe's schedule and where it stops (:attr:`TrainConfig.stop_after`).
RECIPE_EPOCHS, RECIPE_STOP_AFTER = 3, 2


def recipe_stop_after(epochs: int, stop_after: int | None = None) -> int | None:
    """``stop_after`` if given, else the default recipe's (:data:`RECIPE_STOP_AFTER`) when
    ``epochs`` is its schedule (:data:`RECIPE_EPOCHS`), else ``None`` (every epoch): a user who
    asks for another number of epochs trains them all."""
    if stop_after is not None:
        return stop_after
    return RECIPE_STOP_AFTER if epochs == RECIPE_EPOCHS else None


def choose_max_seq_len(lengths: np.ndarray, percentile: float, model_limit: int) -> int:
    """Sequence length covering ``percentile`` % of tweets, rounded up to a multiple of 8.

    Clamped to [16, model_limit]. Multiples of 8 suit SIMD kernels (XNNPACK, oneDNN).
    """
    p = float(np.percentile(lengths, percentile)) if len(lengths) else 16.0
    return int(min(model_limit, max(16, math.ceil(p / 8) * 8)))


@dataclass
class _Data:
    """Tokenized training and validation tweets: ids int32 [n_tokens] per tweet, labels int64 [n]."""

    train_ids: list[np.ndarray]
    train_y: np.ndarray
    val_ids: list[np.ndarray]
    val_y: np.ndarray

    @classmethod
    def of(cls, tokenizer: TweetTokenizer, train_set: list[Tweet], val_set: list[Tweet]) -> _Data:
        return cls(*_tokenized(tokenizer, train_set), *_tokenized(tokenizer, val_set))


def _tokenized(tokenizer: TweetTokenizer, tweets: list[Tweet]) -> tuple[list[np.ndarray], np.ndarray]:
    """Token ids (pairs with the entity name for an entity-conditioned tokenizer) and label ids."""
    entities = [t.entity_name for t in tweets] if tokenizer.entity_conditioned else None
    return tokenizer.ids([t.text for t in tweets], entities), np.asarray([t.label_id for t in tweets], dtype=np.int64)


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Balanced class weights ``n / (k * n_c)`` (scikit-learn ``compute_class_weight("balanced")``):
    float32 [n_classes]; a class absent from ``labels`` gets weight 1."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, len(labels) / (n_classes * np.maximum(counts, 1)), 1.0)
    return w.astype(np.float32)


def train(
    data_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TrainConfig = TrainConfig(),
    checkpoint_minutes: float | None = DEFAULT_CHECKPOINT_MINUTES,
) -> Path:
    """Fine-tune ``config.model`` on RepLab 2013 training tweets; return the best model dir.

    Resumes from ``out_dir/checkpoints`` when an earlier run with the same config was
    interrupted (inside an epoch too); returns immediately when ``out_dir/model`` is complete.
    ``checkpoint_minutes``: minutes of training between mid-epoch checkpoints (``None``: only
    at epoch ends); not a training setting, so a run may resume with another value.

    Raises:
        DataError: unreadable data. ModelLoadError: model not found or offline hub id.
        ConfigError: ``out_dir`` holds a run made with other settings, or too few tweets.
    """
    import torch

    run = TrainingRun("train", Path(out_dir))
    if run.finished():
        return run.final
    set_threads(config.threads)

    # Everything a user can get wrong (data, model name) is checked before anything is written.
    train_set, val_set, data_report, sentiment = _training_inputs(data_root, config)
    source = resolve_source(config.model)
    tok_dir = save_tokenizer(load_tokenizer(source), run.out)

    latest = latest_checkpoint(run.checkpoints)
    mid = MidEpoch.find(run.checkpoints, latest)
    torch.manual_seed(config.seed)  # the classifier head's initialisation
    model = load_for_classification(source if latest is None and mid is None else str(mid.path if mid else latest), config.labels)
    config = _resolve_max_seq_len(config, model, tok_dir / TOKENIZER_FILE, train_set)
    check_or_write_config(run.out / "config.json", config.to_dict(), ConfigError)
    if sentiment is not None and latest is None and config.sentiment_mode == "intermediate":
        model = _intermediate_task(model, run.out, tok_dir / TOKENIZER_FILE, config, sentiment)

    tokenizer = TweetTokenizer(tok_dir / TOKENIZER_FILE, config.resolved_max_seq_len, entity_conditioned=config.entity)
    data = _Data.of(tokenizer, train_set, val_set)
    joint = None
    if sentiment is not None and config.sentiment_mode == "joint":
        joint = _JointTask.build(model, tok_dir / TOKENIZER_FILE, config, sentiment, latest)
    steps_per_epoch = math.ceil(len(data.train_ids) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs + (joint.total_batches if joint else 0)
    optimizer, scheduler = make_optimizer(model if joint is None else joint.trainable(model), config, total_steps)
    if mid is None:
        history, start_epoch = resume_state(latest, optimizer, scheduler)
    else:
        history, start_epoch = mid.restore(optimizer, scheduler), mid.epoch
    fit = Fit(model, optimizer, scheduler, history, MidEpoch(run.checkpoints, checkpoint_minutes, mid) if joint is None else None)

    log(
        f"fine-tuning {config.model} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params) on "
        f"{len(data.train_ids)} tweets{' (entity, tweet) pairs' if config.entity else ''}, validating on {len(data.val_ids)}; "
        f"{config.epochs} epoch{'s' if config.epochs != 1 else ''} x {steps_per_epoch} steps"
        f"{f' (stopping after epoch {config.stop_after})' if config.trained_epochs < config.epochs else ''}, {torch.get_num_threads()} threads"
    )
    run.epochs(
        fit,
        start_epoch,
        config.trained_epochs,
        partial(_epoch, fit, tokenizer, data, config, joint),
        modules=None if joint is None else {SENTIMENT_HEAD_FILE: joint.head},
    )
    best = max(fit.history, key=lambda h: (h["validation"][config.select_metric], -h["epoch"]))
    _write_final(run.out, run.final, best, fit.history, config, data, data_report, joint)
    return run.close(f"best epoch {best['epoch']} (validation {config.select_metric} {best['validation'][config.select_metric]:.4f})")


def _training_inputs(data_root: str | os.PathLike, config: TrainConfig):
    """``(train tweets, validation tweets, load report, TweetEval sentiment data or None)``.

    Raises:
        DataError: unreadable corpus or sentiment folder. ConfigError: no tweets to train on.
    """
    train_set, val_set, data_report = training_tweets(data_root, config.split, config.limit, config.seed, config.relatedness)
    if not train_set or not val_set:
        raise ConfigError(f"not enough tweets to train: {len(train_set)} train, {len(val_set)} validation")
    sentiment = None
    if config.sentiment_data:
        from edgerep.data.tweeteval import TRAIN_PORTION, load_sentiment

        sentiment = load_sentiment(config.sentiment_data, TRAIN_PORTION)
        if config.limit is not None:  # smoke runs: as many sentiment tweets as polarity ones
            sentiment.texts, sentiment.label_ids = sentiment.texts[: config.limit], sentiment.label_ids[: config.limit]
    return train_set, val_set, data_report, sentiment


def _intermediate_task(model, out: Path, tokenizer_json: Path, config: TrainConfig, data):
    """One epoch of general sentiment (TweetEval) through the polarity head; kept in
    ``out/intermediate`` so a resumed run does not repeat it. Returns the model to fine-tune."""
    import torch

    from edgerep.workstation.models import load_for_classification

    done = out / "intermediate"
    if (done / "state.json").is_file():
        log(f"train: intermediate task done in {done}, fine-tuning from it")
        return load_for_classification(str(done), config.labels)
    tokenizer = TweetTokenizer(tokenizer_json, config.resolved_max_seq_len)  # single tweets: no entity
    ids, y = tokenizer.ids(data.texts), np.asarray(data.label_ids, dtype=np.int64)
    rng = np.random.default_rng(config.seed * 1000)
    batches = grouped_batches(np.asarray([len(x) for x in ids]), config.batch_size, rng)
    optimizer, scheduler = make_optimizer(model, config, len(batches))
    model.train()
    torch.manual_seed(config.seed * 1000)
    t0 = time.perf_counter()
    log(f"train: intermediate task, general sentiment on {len(ids)} TweetEval tweets ({data.to_dict()['label_counts']})")
    batch_loss = classification_loss(model, tokenizer, ids, y, torch.nn.CrossEntropyLoss())
    loss = batch_pass(Fit(model, optimizer, scheduler), "intermediate (sentiment)", batches, batch_loss).mean
    state = {"tweets": len(ids), "loss": round(loss, 4), "seconds": round(time.perf_counter() - t0, 1)}
    with atomic_directory(done, overwrite=True) as tmp:
        model.save_pretrained(tmp)
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
    log(f"train: intermediate task loss {state['loss']:.4f} ({state['seconds'] / 60:.1f} min)")
    return model


def classification_loss(model, tokenizer: TweetTokenizer, ids: list[np.ndarray], y: np.ndarray, loss_fn: Callable):
    """The ``batch_loss(k, batch)`` of :func:`~edgerep.workstation.loop.batch_pass` for
    classification: ``loss_fn(logits, labels)`` of the tweets ``ids[batch]`` (token ids) with
    labels ``y[batch]`` (int64)."""
    import torch

    def batch_loss(_k: int, batch: np.ndarray):
        enc = tokenizer.pad([ids[i] for i in batch])
        return loss_fn(model(**model_inputs(model, enc)).logits, torch.from_numpy(y[batch]))

    return batch_loss


class _JointTally(LossTally):
    """The polarity and the sentiment loss of a joint pass, each a mean per tweet."""

    def __init__(self, is_sentiment: list[bool]):
        super().__init__()
        self.is_sentiment = is_sentiment
        self.polarity, self.sentiment = LossTally(), LossTally()

    def add(self, k: int, batch: np.ndarray, loss: float) -> None:
        super().add(k, batch, loss)
        (self.sentiment if self.is_sentiment[k] else self.polarity).add(k, batch, loss)

    def info(self) -> str:
        return f"loss {self.polarity.mean:.4f}, sentiment {self.sentiment.mean:.4f}"


class _JointTask:
    """The auxiliary sentiment head of ``sentiment_mode="joint"`` and its share of each epoch.

    ``head``: ``torch.nn.Linear(in_features of the polarity classifier, 3)``, reading the same
    features as the polarity classifier (captured by a forward pre-hook on ``model.classifier``).
    ``ids``/``y``: the TweetEval tweets tokenized as single tweets (no entity segment), int labels
    [n]. ``parts[e - 1]``: the tweet indices of epoch ``e`` (a fixed seeded permutation cut into
    ``epochs`` parts, so a resumed run sees the same tweets).
    """

    def __init__(
        self,
        head,
        tokenizer: TweetTokenizer,
        ids: list[np.ndarray],
        y: np.ndarray,
        parts: list[np.ndarray],
        batch_size: int,
        weight: float,
        seed: int,
    ):
        self.head, self.tokenizer, self.ids, self.y, self.parts = head, tokenizer, ids, y, parts
        self.batch_size, self.weight, self.seed = batch_size, weight, seed

    @classmethod
    def build(cls, model, tokenizer_json: Path, config: TrainConfig, data, latest: Path | None) -> _JointTask:
        """A fresh head (seeded), or the one saved in the ``latest`` checkpoint.

        Raises:
            ConfigError: the model has no linear ``classifier`` to share features with.
        """
        import torch

        classifier = getattr(model, "classifier", None)
        if not isinstance(classifier, torch.nn.Linear):
            raise ConfigError(
                f"sentiment_mode 'joint' needs a model whose classifier is one linear layer; "
                f"{type(model).__name__} has {type(classifier).__name__}"
            )
        torch.manual_seed(config.seed * 1000 - 1)
        head = torch.nn.Linear(classifier.in_features, len(LABELS))
        if latest is not None:
            head.load_state_dict(torch.load(latest / SENTIMENT_HEAD_FILE, weights_only=True))
        tokenizer = TweetTokenizer(tokenizer_json, config.resolved_max_seq_len)  # single tweets, as in the intermediate task
        order = np.random.default_rng(config.seed * 1000 - 1).permutation(len(data.texts))
        parts = np.array_split(order, config.epochs)
        return cls(
            head,
            tokenizer,
            tokenizer.ids(data.texts),
            np.asarray(data.label_ids, dtype=np.int64),
            parts,
            config.batch_size,
            config.joint_weight,
            config.seed,
        )

    @property
    def total_batches(self) -> int:
        """Sentiment batches over the whole run (for the learning-rate schedule)."""
        return sum(math.ceil(len(p) / self.batch_size) for p in self.parts)

    def trainable(self, model):
        """One module holding the encoder with its polarity head and the sentiment head: what the
        optimizer and gradient clipping see."""
        import torch

        return torch.nn.ModuleDict({"encoder": model, "sentiment_head": self.head})

    def train_pass(
        self, fit: Fit, ids: list[np.ndarray], y: np.ndarray, tokenizer: TweetTokenizer, batches, loss_fn, epoch: int, description: str
    ) -> tuple[float, float]:
        """One epoch of polarity ``batches`` interleaved (seeded) with this epoch's sentiment
        batches; returns the mean polarity loss and the mean weighted sentiment loss
        (``joint_weight`` x CE) per tweet."""
        import torch

        rng = np.random.default_rng(self.seed * 1000 + 500 + epoch)
        part = self.parts[epoch - 1]
        sent_batches = [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        tasks = [(False, b) for b in batches] + [(True, b) for b in sent_batches]
        tasks = [tasks[k] for k in rng.permutation(len(tasks))]
        is_sentiment = [t for t, _ in tasks]
        features: dict = {}
        hook = fit.model.classifier.register_forward_pre_hook(lambda _m, args: features.__setitem__("x", args[0]))
        sent_loss_fn = torch.nn.CrossEntropyLoss()
        polarity_loss = classification_loss(fit.model, tokenizer, ids, y, loss_fn)

        def batch_loss(k: int, b: np.ndarray):
            if not is_sentiment[k]:
                return polarity_loss(k, b)
            fit.model(**model_inputs(fit.model, self.tokenizer.pad([self.ids[i] for i in b])))
            return self.weight * sent_loss_fn(self.head(features["x"]), torch.from_numpy(self.y[b]))

        self.head.train()
        try:
            tally = _JointTally(is_sentiment)
            batch_pass(fit, description, [b for _, b in tasks], batch_loss, tally=tally, trainable=self.trainable(fit.model))
        finally:
            hook.remove()
        return tally.polarity.mean, tally.sentiment.mean

    def to_dict(self) -> dict:
        return {"mode": "joint", "tweets": len(self.ids), "weight": self.weight}


def _resolve_max_seq_len(config: TrainConfig, model, tokenizer_json: Path, train_set: list[Tweet]) -> TrainConfig:
    """Fill ``max_seq_len`` from the training tweets' token lengths when it is ``None``."""
    if config.max_seq_len is not None:
        return config
    model_limit = int(getattr(model.config, "max_position_embeddings", 512))
    tokenizer = TweetTokenizer(tokenizer_json, model_limit, entity_conditioned=config.entity)
    lengths = tokenizer.token_lengths([t.text for t in train_set], [t.entity_name for t in train_set] if config.entity else None)
    config = replace(config, max_seq_len=choose_max_seq_len(lengths, config.max_seq_len_percentile, model_limit))
    log(
        f"max_seq_len = {config.max_seq_len} tokens (p{config.max_seq_len_percentile:g} of {len(lengths)} "
        f"training tweets; p50 {np.percentile(lengths, 50):.0f}, max {lengths.max()})"
    )
    return config


def _epoch(fit: Fit, tokenizer: TweetTokenizer, data: _Data, config: TrainConfig, joint: _JointTask | None, epoch: int) -> dict:
    """One pass over the training tweets (with ``joint``: interleaved with this epoch's share of
    the sentiment tweets), then validation; returns the epoch's history entry."""
    import torch

    fit.model.train()
    batches = epoch_batches(data.train_ids, config.batch_size, config.seed, epoch)
    weight = torch.from_numpy(class_weights(data.train_y, len(config.labels))) if config.class_weighted else None
    loss_fn: Callable = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)
    if config.relatedness and config.relatedness_weight != 1.0:
        from edgerep.workstation.heads import relatedness_loss

        loss_fn = partial(relatedness_loss, weight=config.relatedness_weight)
    t_epoch = time.perf_counter()
    extra = {}
    if joint is None:
        batch_loss = classification_loss(fit.model, tokenizer, data.train_ids, data.train_y, loss_fn)
        train_loss = batch_pass(fit, f"epoch {epoch}/{config.epochs}", batches, batch_loss, epoch).mean
    else:
        description = f"epoch {epoch}/{config.epochs} (+ sentiment head)"
        train_loss, extra["sentiment_loss"] = joint.train_pass(
            fit, data.train_ids, data.train_y, tokenizer, batches, loss_fn, epoch, description
        )
    seconds = time.perf_counter() - t_epoch
    val_logits = ids_logits(fit.model, tokenizer, data.val_ids, description=f"validate {epoch}")
    return validated_epoch("epoch", epoch, train_loss, seconds, data.val_y, val_logits, config.labels, extra)


def _write_final(
    out: Path,
    final: Path,
    best: dict,
    history: list[dict],
    config: TrainConfig,
    data: _Data,
    data_report: dict,
    joint: _JointTask | None = None,
) -> None:
    """Copy the best epoch's weights and the tokenizer to ``final`` with ``edgerep_model.json``."""
    info = {
        "edgerep_version": __version__,
        "labels": list(config.labels),
        "max_seq_len": config.max_seq_len,
        "entity_conditioned": config.entity,
        "normalization_version": NORMALIZATION_VERSION,
        "source_model": config.model,
        "best_epoch": best["epoch"],
        "validation": best["validation"],
        "select_metric": config.select_metric,
        "split": config.split.to_dict(),
        "train_config": config.to_dict(),
        "train_size": len(data.train_ids),
        "validation_size": len(data.val_ids),
        "data_report": data_report,
        "train_seconds": round(sum(h["train_seconds"] for h in history), 1),
    }
    if (out / "intermediate" / "state.json").is_file():
        info["intermediate_task"] = json.loads((out / "intermediate" / "state.json").read_text())
    if joint is not None:
        info["joint_task"] = joint.to_dict()
    atomic_write_json(out / "history.json", history)
    install_model(
        final, out / "checkpoints" / f"epoch-{best['epoch']}", list((out / "tokenizer").iterdir()), info, skip=(SENTIMENT_HEAD_FILE,)
    )
