"""Knowledge distillation of a fine-tuned teacher (or an ensemble of them) into a shallower
student (heavy: torch + transformers).

The student is the teacher's architecture with ``layers`` of its Transformer layers, copied from
evenly spaced teacher layers (DistilBERT-style initialisation, Sanh et al., 2019: the student
starts from the teacher's own weights, not from scratch). It is trained on the teacher's
temperature-softened probabilities (Hinton et al., 2015):

    loss = alpha * T^2 * KL(p_teacher(T) || p_student(T)) + (1 - alpha) * CE(gold)
           [+ hidden_weight * MSE(student layer outputs, their teacher layers' outputs)]

where the cross-entropy term applies to labelled tweets only; the optional hidden-state term
(TinyBERT-style, Jiao et al., 2020) uses the first teacher, whose hidden states of the mapped
layers are computed once, in the same pass as its logits, and kept in memory in float16
(:class:`TeacherStates`; ~2 GB for RepLab's transfer set with a 3-layer student) instead of
running the teacher on every batch of every epoch. Optionally the student trains with
its weights on the grid of the LiteRT recipe it will be exported with (quantization-aware
training, :mod:`.qat`). The transfer set is the training
part's labelled tweets plus every other English tweet of the training split (unrelated tweets,
tweets without a polarity label), minus the validation tweets: never the test split; optionally
TweetEval's general tweets as more unlabelled transfer data (``transfer_text``). With
several teachers (an ensemble, e.g. seeds) the target is the mean of their softened
probabilities.

Output layout under ``out_dir``::

    config.json                   resolved DistillConfig
    teacher-logits.npz            the teachers' logits on the transfer set (computed once)
    checkpoints/epoch-K/          as ``edgerep train``: epoch checkpoints, and
    checkpoints/mid-epoch/        inside an epoch (resumes where it stopped)
    history.json                  per-epoch loss and validation metrics
    model/                        best epoch on validation, a fine-tuned model directory
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from edgerep import LABELS, RELATEDNESS_LABELS, __version__
from edgerep.data import SplitConfig, smoke_validation_size
from edgerep.device.tokenizer import TweetTokenizer
from edgerep.errors import ConfigError
from edgerep.io import atomic_directory, atomic_write_json, check_or_write_config, settings_dict, sha256_tree
from edgerep.log import log, progress
from edgerep.registry import TOKENIZER_FILE, Quantization
from edgerep.workstation.compress.prune import ffn_layer_widths
from edgerep.workstation.compress.qat import fake_quantized_call, qat_mode, quantized_weights, snap_to_grid
from edgerep.workstation.loop import (
    DEFAULT_CHECKPOINT_MINUTES,
    Fit,
    MidEpoch,
    TrainingRun,
    batch_pass,
    epoch_batches,
    install_model,
    latest_checkpoint,
    make_optimizer,
    resume_state,
    set_threads,
    validated_epoch,
)


@dataclass(frozen=True)
class DistillConfig:
    """Distillation settings; the resolved copy is saved as ``config.json``.

    Attributes:
        teachers: fine-tuned model directories (``edgerep train`` output); several form an
            ensemble whose softened probabilities are averaged. The first is the student's
            source: its layers initialise the student, its tokenizer is the student's, its hidden
            states are the hidden-state targets. The others may be of another architecture and
            tokenizer (the reference encoder): each reads the transfer tweets with its own
            tokenizer and contributes soft targets only.
        source_in_targets: the first teacher gives soft targets too; ``False``: only the others
            do (a larger teacher alone, the student still initialised from the first).
        layers: student depth K (1 <= K <= the teacher's layers).
        epochs: passes over the transfer set.
        batch_size: tweets per optimizer step.
        learning_rate: AdamW peak learning rate (linear warm-up, linear decay).
        weight_decay: AdamW decoupled weight decay.
        warmup_ratio: share of steps with linear warm-up.
        temperature: distillation temperature T (Hinton et al., 2015).
        alpha: weight of the distillation term; ``1 - alpha`` weighs the gold labels.
        hidden_weight: weight of the hidden-state term (:func:`hidden_state_loss`, TinyBERT-style
            intermediate-layer distillation, Jiao et al., 2020) added to the loss; 0 = logits
            only. The first teacher's hidden states are computed once and kept in memory
            (:class:`TeacherStates`), or, where they do not fit, recomputed on every batch.
        unlabelled: add the training split's other English tweets (no polarity label) to the
            transfer set.
        transfer_text: TweetEval sentiment folders (:mod:`edgerep.data.tweeteval`) whose
            training portion joins the transfer set as unlabelled tweets: the student learns the
            teacher's soft targets on them, never their sentiment labels (general sentiment is
            not reputation polarity). Each is paired with the entity of a RepLab transfer tweet
            drawn at random (seeded), as the model reads a tweet with its entity. More transfer
            data, the lever of TinyBERT's data augmentation (Jiao et al., 2020), at the cost of
            epochs longer in proportion to the added tweets.
        ffn_width: feed-forward units kept per student layer (structured pruning, :mod:`.prune`:
            fewer MACs per layer); ``None``: the teacher's width.
        prune_after_epoch: with ``ffn_width``, distill at the teacher's width for this many
            epochs first and prune then, with the importance of the partly distilled student
            (0: prune the copied teacher layers before the first epoch). The optimizer restarts
            for the pruned shapes (fresh AdamW moments) with the learning-rate schedule where it
            was; the epochs before the cut cost the full width's time.
        ffn_keep_last: with ``ffn_width``, the last student layer keeps the teacher's width: LiteRT
            bundles compute that layer for ``[CLS]`` alone, so its feed-forward block costs one
            token's MACs (:func:`.prune.prune_ffn`); the student then saves per-layer widths.
        quant_aware: a LiteRT recipe (``dynamic-int4``, ``dynamic-int8-emb4``, ``dynamic-int8``)
            whose weight grid the student trains with (:mod:`.qat`); the saved student's weights
            lie on that grid. ``None``: plain float32 training.
        seed: batch order and dropout.
        limit: at most this many transfer tweets (smoke tests); ``None`` = all.
        threads: torch intra-op threads; ``None`` = all cores.
    """

    teachers: tuple[str, ...] = ()
    layers: int = 2
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    temperature: float = 2.0
    alpha: float = 0.5
    hidden_weight: float = 0.0
    unlabelled: bool = True
    transfer_text: tuple[str, ...] = ()
    ffn_width: int | None = None
    prune_after_epoch: int = 0
    ffn_keep_last: bool = False
    quant_aware: str | None = None
    source_in_targets: bool = True
    seed: int = 13
    limit: int | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "teachers", tuple(str(t) for t in self.teachers))
        object.__setattr__(self, "transfer_text", tuple(str(t) for t in self.transfer_text))
        mode = qat_mode(self.quant_aware)
        object.__setattr__(self, "quant_aware", mode.value if mode else None)
        if not self.teachers:
            raise ConfigError("distillation needs at least one teacher model directory")
        if not self.source_in_targets and len(self.teachers) < 2:
            raise ConfigError("--no-source-targets: needs a second teacher (--teacher MODEL) to give the soft targets")
        if self.layers < 1:
            raise ConfigError(f"layers must be >= 1, got {self.layers}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.ffn_width is not None and self.ffn_width < 1:
            raise ConfigError(f"ffn_width must be >= 1, got {self.ffn_width}")
        if self.prune_after_epoch and (self.ffn_width is None or not 0 < self.prune_after_epoch < self.epochs):
            raise ConfigError(
                f"prune_after_epoch {self.prune_after_epoch}: needs a feed-forward width to prune to and must be in "
                f"[0, epochs - 1 = {self.epochs - 1}]"
            )
        if self.ffn_keep_last and self.ffn_width is None:
            raise ConfigError("ffn_keep_last: needs a feed-forward width to prune the other layers to")
        if self.prune_after_epoch < 0:
            raise ConfigError(f"prune_after_epoch must be >= 0, got {self.prune_after_epoch}")
        if not self.hidden_weight >= 0.0:
            raise ConfigError(f"hidden_weight must be >= 0, got {self.hidden_weight}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")

    #: Settings saved only when set (:func:`edgerep.io.settings_dict`).
    OPTIONAL = {"prune_after_epoch": 0, "ffn_keep_last": False, "transfer_text": (), "source_in_targets": True}

    def to_dict(self) -> dict:
        return settings_dict(asdict(self), self.OPTIONAL)


def student_layer_map(teacher_layers: int, student_layers: int) -> list[int]:
    """Teacher layer index copied into each student layer: evenly spaced from the first to the
    last (6 -> 2: [0, 5]; 6 -> 3: [0, 2, 5]; 12 -> 6: [0, 2, 4, 7, 9, 11]).

    Raises:
        ConfigError: ``student_layers`` not in [1, teacher_layers].
    """
    if not 1 <= student_layers <= teacher_layers:
        raise ConfigError(f"student layers {student_layers}: must be in 1..{teacher_layers} (the teacher's layers)")
    if student_layers == 1:
        return [teacher_layers - 1]
    return [int(round(i * (teacher_layers - 1) / (student_layers - 1))) for i in range(student_layers)]


_LAYER = re.compile(r"^(.*\.layer\.)(\d+)(\..*)$")


def init_student(teacher, layers: int):
    """A ``layers``-deep copy of a sequence classifier: embeddings, pooler and head copied, and
    Transformer layer i copied from teacher layer :func:`student_layer_map` [i]. Works for any
    encoder whose layers are named ``*.layer.<i>.*`` (BERT, MobileBERT).

    Returns:
        ``(student, layer_map)``.

    Raises:
        ConfigError: ``layers`` larger than the teacher's, or weights that do not fit.
    """
    from transformers import AutoModelForSequenceClassification

    n = int(teacher.config.num_hidden_layers)
    mapping = student_layer_map(n, layers)
    config = teacher.config.__class__.from_dict(teacher.config.to_dict())
    config.num_hidden_layers = layers
    inverse = {t: s for s, t in enumerate(mapping)}
    state = {}
    for k, v in teacher.state_dict().items():
        m = _LAYER.match(k)
        if m is None:
            state[k] = v.clone()
        elif int(m.group(2)) in inverse:
            state[f"{m.group(1)}{inverse[int(m.group(2))]}{m.group(3)}"] = v.clone()
    from edgerep.workstation.heads import with_relatedness_head

    student = with_relatedness_head(AutoModelForSequenceClassification.from_config(config))
    missing, unexpected = student.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ConfigError(f"student weights do not fit: missing {missing[:3]}, unexpected {list(unexpected)[:3]}")
    return student, mapping


@dataclass
class _Transfer:
    """The transfer set: ids int32 [n_tokens] per tweet (the student's tokenizer), gold label id
    or -1 (unlabelled) int64 [n]; the tweets and their entities, for teachers with another
    tokenizer; the teachers' classes (``classes``, logit order)."""

    ids: list[np.ndarray]
    y: np.ndarray
    val_ids: list[np.ndarray]
    val_y: np.ndarray
    counts: dict = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    entities: list[str] = field(default_factory=list)
    classes: tuple[str, ...] = LABELS


def _transfer_set(
    data_root, split: SplitConfig, tokenizer: TweetTokenizer, config: DistillConfig, classes: tuple[str, ...] = LABELS
) -> _Transfer:
    from edgerep.data import training_tweets
    from edgerep.data.replab import entity_names, load_texts

    # teachers that decide relatedness learn from the UNRELATED tweets' gold labels too
    train, val, _ = training_tweets(data_root, split, relatedness=classes == RELATEDNESS_LABELS)
    texts = [t.text for t in train]
    entities = [t.entity_name for t in train]
    y = [t.label_id for t in train]
    counts = {"labelled": len(train)}
    if config.unlabelled:
        raw, _ = load_texts(data_root, "training")
        names = entity_names(data_root)
        taken = {t.tweet_id for t in train} | {t.tweet_id for t in val}
        extra = [r for r in raw if r.tweet_id not in taken]
        texts += [r.text for r in extra]
        entities += [names.get(r.entity_id, r.entity_id) for r in extra]
        y += [-1] * len(extra)
        counts["unlabelled"] = len(extra)
    if config.transfer_text:
        from edgerep.data.tweeteval import TRAIN_PORTION, load_sentiment

        rng = np.random.default_rng(config.seed)
        pool = list(entities)
        for folder in config.transfer_text:
            extra_texts = load_sentiment(folder, TRAIN_PORTION).texts  # labels unused: sentiment, not polarity
            texts += extra_texts
            entities += [pool[i] for i in rng.integers(0, len(pool), len(extra_texts))]
            y += [-1] * len(extra_texts)
            counts[f"text:{folder}"] = len(extra_texts)
    counts["validation_left_out"] = len(val)
    labels = np.asarray(y, dtype=np.int64)
    if config.limit is not None and config.limit < len(texts):
        keep = np.sort(np.random.default_rng(config.seed).permutation(len(texts))[: config.limit])
        texts, entities, labels = [texts[i] for i in keep], [entities[i] for i in keep], labels[keep]
        val = val[: smoke_validation_size(config.limit)]
    counts["transfer"] = len(texts)
    cond = tokenizer.entity_conditioned
    return _Transfer(
        tokenizer.ids(texts, entities if cond else None),
        labels,
        tokenizer.ids([t.text for t in val], [t.entity_name for t in val] if cond else None),
        np.asarray([t.label_id for t in val], dtype=np.int64),
        counts,
        texts,
        entities,
        classes,
    )


def check_teachers(config: DistillConfig) -> list[dict]:
    """Each teacher's info; all must share labels, entity conditioning and validation split, and
    the first (the student's source) be at least as deep as the student; the others may have
    their own tokenizer and sequence length (they read the tweets themselves).

    Raises:
        ModelLoadError: a directory that is not a fine-tuned model. ConfigError: teachers that
            disagree, or a student deeper than a teacher.
    """
    from edgerep.workstation.models import read_model_info

    infos = []
    for k, t in enumerate(config.teachers):
        info = read_model_info(t)
        cfg = json.loads((Path(t) / "config.json").read_text())
        info["_layers"] = int(cfg.get("num_hidden_layers", 0))
        if (
            k == 0
            and config.ffn_width is not None
            and (cfg.get("model_type") != "bert" or config.ffn_width > int(cfg.get("intermediate_size", 0)))
        ):
            raise ConfigError(
                f"feed-forward width {config.ffn_width}: needs a BERT-style teacher (model_type bert) with at least "
                f"that many units; {t} is {cfg.get('model_type')!r} with {cfg.get('intermediate_size')}"
            )
        infos.append(info)
    first = infos[0]
    for path, info in zip(config.teachers[1:], infos[1:]):
        for key in ("labels", "entity_conditioned", "split"):
            if info.get(key) != first.get(key):
                raise ConfigError(f"teacher {path} differs from {config.teachers[0]} in {key}; an ensemble needs the same")
    if config.layers > first["_layers"]:
        raise ConfigError(
            f"student layers {config.layers}: must be in 1..{first['_layers']} (teacher {config.teachers[0]} has {first['_layers']})"
        )
    return infos


#: dtype of the cached teacher hidden states (:class:`TeacherStates`): float16 halves the memory of
#: float32 (2.08 instead of 4.17 GB for RepLab's transfer set and a 3-layer student).
TEACHER_STATES_DTYPE = np.float16


@dataclass
class TeacherStates:
    """The first teacher's hidden states on the transfer set, for the hidden-state term
    (:func:`hidden_state_mse`), computed once instead of on every batch of every epoch.

    Attributes:
        values: :data:`TEACHER_STATES_DTYPE` [len(layers), n_tokens, hidden]: the output of teacher layer
            ``layers[j]`` (0-based) for every real token of the transfer set, tweet after tweet.
        offsets: int64 [n_tweets + 1]: tweet i's tokens are ``values[:, offsets[i]:offsets[i + 1]]``.
        layers: teacher layer per student layer (:func:`student_layer_map`).
    """

    values: np.ndarray
    offsets: np.ndarray
    layers: list[int]

    @staticmethod
    def nbytes(ids, layers: int, hidden: int) -> int:
        """Bytes of ``values`` for token id sequences ``ids``, ``layers`` mapped layers of ``hidden`` units."""
        return sum(len(x) for x in ids) * layers * hidden * np.dtype(TEACHER_STATES_DTYPE).itemsize

    def batch(self, index, width: int) -> list:
        """Targets of one batch: per student layer, float32 torch tensor [len(index), width,
        hidden]: tweet ``index[b]``'s states from position 0, where :meth:`TweetTokenizer.pad`
        puts its ids (right padding), zeros on padding (masked by the loss)."""
        import torch

        out = np.zeros((len(self.layers), len(index), width, self.values.shape[2]), dtype=np.float32)
        for b, i in enumerate(index):
            s, e = int(self.offsets[i]), int(self.offsets[i + 1])
            out[:, b, : min(e - s, width)] = self.values[:, s : s + min(e - s, width)]
        return list(torch.from_numpy(out))


def teacher_pass(
    model, tokenizer: TweetTokenizer, ids, layers: list[int], batch_size: int = 64, description: str | None = None
) -> tuple[np.ndarray, TeacherStates]:
    """One inference pass of a teacher over ``ids`` (int [n_tokens] per tweet, length-sorted
    batches as :func:`edgerep.workstation.inference.ids_logits`): its logits float32
    [len(ids), n_labels] and the hidden states of ``layers`` (:class:`TeacherStates`)."""
    import torch

    from edgerep.workstation.inference import model_inputs

    model.eval()
    lengths = np.asarray([len(x) for x in ids], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = np.zeros((len(layers), int(offsets[-1]), model.config.hidden_size), dtype=TEACHER_STATES_DTYPE)
    logits = np.zeros((len(ids), model.config.num_labels), dtype=np.float32)
    order = np.argsort(lengths, kind="stable")
    with torch.inference_mode(), progress(description or "teacher pass", len(ids), show=description is not None) as bar:
        for s in range(0, len(ids), batch_size):
            idx = order[s : s + batch_size]
            out = model(**model_inputs(model, tokenizer.pad([ids[i] for i in idx])), output_hidden_states=True)
            logits[idx] = out.logits.float().numpy()
            hidden = np.stack([out.hidden_states[m + 1].float().numpy() for m in layers])  # [k, batch, width, hidden]
            for b, i in enumerate(idx):
                values[:, offsets[i] : offsets[i + 1]] = hidden[:, b, : lengths[i]]
            bar.advance(len(idx))
    return logits, TeacherStates(values, offsets, list(layers))


def _teacher_logits(
    out: Path, config: DistillConfig, tokenizer: TweetTokenizer, data: _Transfer, first_teacher, state_layers: list[int] | None
) -> tuple[np.ndarray, TeacherStates | None]:
    """The teachers' logits float32 [n_teachers, n_transfer, n_labels], cached in
    ``teacher-logits.npz``, and with ``state_layers`` the first teacher's (``first_teacher``,
    loaded) hidden states of those layers, from the same pass (kept in memory only)."""
    import torch

    from edgerep.workstation.inference import ids_logits
    from edgerep.workstation.models import load_finetuned

    path = out / "teacher-logits.npz"
    key = {
        "teachers": [sha256_tree(t) for t in config.teachers],
        "n": len(data.ids),
        "limit": config.limit,
        "unlabelled": config.unlabelled,
    }
    if config.transfer_text:  # only when set: a cache key without the field stays valid
        key["transfer_text"] = list(config.transfer_text)
    if not config.source_in_targets:
        key["source_in_targets"] = False
    states = None
    if path.is_file():
        with np.load(path) as z:
            if json.loads(str(z["key"])) == key:
                log(f"distill: teacher logits from {path}")
                if state_layers:
                    _, states = teacher_pass(first_teacher, tokenizer, data.ids, state_layers, description="teacher hidden states")
                return z["logits"], states
    all_logits = []
    for i, t in enumerate(config.teachers):
        label = f"teacher {i + 1}/{len(config.teachers)} logits"
        if i == 0 and state_layers:
            logits, states = teacher_pass(first_teacher, tokenizer, data.ids, state_layers, description=label + " + hidden states")
            if config.source_in_targets:
                all_logits.append(logits)
            continue
        if i == 0 and not config.source_in_targets:
            continue
        model, info = (first_teacher, None) if i == 0 else load_finetuned(t)
        own, ids = tokenizer, data.ids
        if info is not None and Path(t, TOKENIZER_FILE).read_bytes() != tokenizer.path.read_bytes():
            own = TweetTokenizer(Path(t) / TOKENIZER_FILE, int(info["max_seq_len"]), tokenizer.entity_conditioned)
            ids = own.ids(data.texts, data.entities if own.entity_conditioned else None)
            label += " (its own tokenizer)"
        with torch.inference_mode():
            all_logits.append(ids_logits(model, own, ids, description=label))
    logits = np.stack(all_logits)
    tmp = out / ".teacher-logits.tmp.npz"
    np.savez(tmp, logits=logits, key=np.asarray(json.dumps(key)))
    os.replace(tmp, path)
    return logits, states


def soft_targets(teacher_logits: np.ndarray, temperature: float) -> np.ndarray:
    """Ensemble target: mean over teachers of softmax(logits / T): float32 [n, n_labels] from
    ``teacher_logits`` float32 [n_teachers, n, n_labels] (Hinton et al., 2015)."""
    z = teacher_logits / temperature
    z = z - z.max(-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(-1, keepdims=True)
    return p.mean(0).astype(np.float32)


def distillation_loss(student_logits, targets, labels, temperature: float, alpha: float):
    """``alpha * T^2 * KL(targets || softmax(student / T)) + (1 - alpha) * CE(student, labels)``,
    averaged over the batch; the CE term over labelled rows only (``labels`` = -1 elsewhere).

    Args:
        student_logits: float32 [batch, n_labels].
        targets: float32 [batch, n_labels] soft targets (:func:`soft_targets`).
        labels: int64 [batch], -1 for unlabelled tweets.
    """
    import torch
    import torch.nn.functional as F

    log_p = F.log_softmax(student_logits / temperature, dim=-1)
    kl = (targets * (torch.log(targets.clamp_min(1e-12)) - log_p)).sum(-1).mean()
    loss = alpha * temperature**2 * kl
    labelled = labels >= 0
    if alpha < 1.0 and bool(labelled.any()):
        loss = loss + (1.0 - alpha) * F.cross_entropy(student_logits[labelled], labels[labelled])
    return loss


def hidden_state_mse(student_hidden, targets, attention_mask):
    """Mean squared error between each student layer's output and its target, over real
    (non-padding) tokens and hidden units, averaged over the student's layers (TinyBERT, Jiao et
    al., 2020, without the projection: student and teacher share the hidden size).

    Args:
        student_hidden: the student's ``hidden_states`` (embeddings, then each layer's output),
            float32 [batch, seq_len, hidden] each.
        targets: float32 [batch, seq_len, hidden] per student layer: student layer i + 1's target.
        attention_mask: int [batch, seq_len], 1 on real tokens.
    """
    mask = attention_mask[..., None].to(student_hidden[0].dtype)
    denom = mask.sum() * student_hidden[0].shape[-1]
    terms = [(((student_hidden[i + 1] - t) ** 2) * mask).sum() / denom for i, t in enumerate(targets)]
    return sum(terms) / len(terms)


def hidden_state_loss(student_hidden, teacher_hidden, mapping: list[int], attention_mask):
    """:func:`hidden_state_mse` against the teacher layer each student layer was copied from
    (:func:`student_layer_map`).

    Args:
        student_hidden / teacher_hidden: the models' ``hidden_states`` (embeddings, then each
            layer's output), float32 [batch, seq_len, hidden] each.
        mapping: teacher layer index per student layer.
        attention_mask: int64 [batch, seq_len], 1 on real tokens.
    """
    return hidden_state_mse(student_hidden, [teacher_hidden[m + 1] for m in mapping], attention_mask)


def _cacheable_layers(config: DistillConfig, data: _Transfer, mapping: list[int], hidden: int) -> list[int] | None:
    """``mapping`` when the hidden-state term is on and its :class:`TeacherStates` take at most
    half of the available memory (psutil); ``None`` otherwise (the teacher then runs on every
    batch, with a log line saying so)."""
    if config.hidden_weight == 0:
        return None
    import psutil

    need, available = TeacherStates.nbytes(data.ids, len(mapping), hidden), psutil.virtual_memory().available
    if need > available / 2:
        log(
            f"[yellow]distill[/]: teacher hidden states need {need / 1e9:.1f} GB, {available / 1e9:.1f} GB available: "
            "running the teacher on every batch instead"
        )
        return None
    log(
        f"distill: teacher hidden states of layers {mapping} kept in memory ({need / 1e9:.2f} GB {np.dtype(TEACHER_STATES_DTYPE).name}), the teacher runs once"
    )
    return mapping


def _distill_epoch(fit: Fit, config: DistillConfig, run: _StudentPass, targets: np.ndarray, epoch: int) -> dict:
    """One distillation epoch over the transfer set (soft ``targets`` float32 [n, classes]),
    then validation; returns its history entry."""
    import torch

    from edgerep.workstation.inference import model_inputs

    data = run.data
    fit.model.train()
    batches = epoch_batches(data.ids, config.batch_size, config.seed, epoch)
    t0 = time.perf_counter()

    def batch_loss(_k: int, b: np.ndarray):
        enc = run.tokenizer.pad([data.ids[i] for i in b])
        inputs = model_inputs(fit.model, enc)
        out_s = run.forward(**inputs, output_hidden_states=config.hidden_weight > 0)
        loss = distillation_loss(out_s.logits, torch.from_numpy(targets[b]), torch.from_numpy(data.y[b]), config.temperature, config.alpha)
        if config.hidden_weight > 0:
            loss = loss + config.hidden_weight * hidden_state_mse(out_s.hidden_states, run.hidden_targets(b, enc), inputs["attention_mask"])
        return loss

    train_loss = batch_pass(fit, f"distill epoch {epoch}/{config.epochs}", batches, batch_loss, epoch).mean
    seconds = time.perf_counter() - t0
    return validated_epoch("distill epoch", epoch, train_loss, seconds, data.val_y, run.validation_logits(), data.classes)


def _student_info(
    config: DistillConfig,
    infos: list[dict],
    history: list[dict],
    best: dict,
    mapping: list[int],
    student,
    states,
    qat_grids: dict,
    data: _Transfer,
) -> dict:
    """``edgerep_model.json`` of the student: the source teacher's info with the best epoch and
    a ``distillation`` entry (teachers, layer map, loss settings, widths, transfer counts)."""
    teacher_info = infos[0]
    info = {k: v for k, v in teacher_info.items() if not k.startswith("_")}
    info.update(
        edgerep_version=__version__,
        best_epoch=best["epoch"],
        validation=best["validation"],
        train_seconds=round(sum(h["train_seconds"] for h in history), 1),
        distillation={
            "teachers": list(config.teachers),
            "teacher_validation": [i.get("validation") for i in infos],
            "layers": config.layers,
            "teacher_layers": infos[0]["_layers"],
            "layer_map": mapping,
            "source_in_targets": config.source_in_targets,
            "temperature": config.temperature,
            "alpha": config.alpha,
            "hidden_weight": config.hidden_weight,
            "teacher_states": None
            if config.hidden_weight == 0
            else (f"cached, {np.dtype(TEACHER_STATES_DTYPE).name}" if states is not None else "per batch"),
            "ffn_width": int(student.config.intermediate_size),
            "ffn_layer_widths": ffn_layer_widths(student.config),
            "quant_aware": config.quant_aware,
            "quant_aware_folded": sum(g.folded_scale is not None for g in qat_grids.values()),
            "transfer": data.counts,
            "config": config.to_dict(),
        },
    )
    info.pop("train_config", None)
    for i in infos:
        i.pop("_layers", None)
    return info


def _install_student(out: Path, final: Path, source_teacher: str, history: list[dict], best: dict, info: dict, qat_grids: dict) -> None:
    """Write ``history.json`` and the best epoch's student to ``final`` with the source teacher's
    tokenizer; with quantization-aware training its weights snapped to the grid first (the
    checkpoints keep float weights, to resume)."""

    atomic_write_json(out / "history.json", history)
    tokenizer_files = [Path(source_teacher) / n for n in (TOKENIZER_FILE, "tokenizer_config.json") if (Path(source_teacher) / n).is_file()]
    source = out / "checkpoints" / f"epoch-{best['epoch']}"
    if qat_grids:
        from edgerep.workstation.models import load_sequence_classifier

        snapped = snap_to_grid(load_sequence_classifier(source), qat_grids)
        with atomic_directory(out / "snapped", overwrite=True) as tmp:
            snapped.save_pretrained(tmp)
        source = out / "snapped"
    install_model(final, source, tokenizer_files, info)
    shutil.rmtree(out / "snapped", ignore_errors=True)


def _prune_due(config: DistillConfig, student, finished: int) -> bool:
    """Whether the student's feed-forward blocks are to be pruned after ``finished`` epochs."""
    return (
        config.ffn_width is not None and finished >= config.prune_after_epoch and int(student.config.intermediate_size) != config.ffn_width
    )


def _prune(config: DistillConfig, student, tokenizer: TweetTokenizer, data: _Transfer, done: int) -> None:
    """Prune the student's feed-forward units to ``config.ffn_width`` in place, by importance on
    512 transfer tweets (:mod:`edgerep.workstation.compress.prune`)."""
    from edgerep.workstation.compress.prune import ffn_importance, prune_ffn

    sample = np.random.default_rng(config.seed).permutation(len(data.ids))[:512]
    before = int(student.config.intermediate_size)
    assert config.ffn_width is not None  # pruning is scheduled only with a width
    prune_ffn(student, config.ffn_width, ffn_importance(student, tokenizer, [data.ids[i] for i in sample]), keep_last=config.ffn_keep_last)
    log(
        f"distill: feed-forward pruned {before} -> {config.ffn_width} units per layer"
        f"{' (the last layer keeps its ' + str(before) + ')' if config.ffn_keep_last else ''} after {done} epoch(s) "
        f"(importance on {len(sample)} transfer tweets)"
    )


def _restarted_optimizer(student, config: DistillConfig, steps_per_epoch: int, finished: int):
    """AdamW for the pruned shapes, its schedule advanced past ``finished`` epochs."""

    optimizer, scheduler = make_optimizer(student, config, steps_per_epoch * config.epochs)
    for _ in range(finished * steps_per_epoch):
        optimizer.step()  # no gradients yet: a no-op that keeps the schedule's call order
        scheduler.step()
    return optimizer, scheduler


def distill(
    data_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: DistillConfig,
    checkpoint_minutes: float | None = DEFAULT_CHECKPOINT_MINUTES,
) -> Path:
    """Distill ``config.teachers`` into a ``config.layers``-layer student; return ``out_dir/model``.

    Resumes from the latest checkpoint, at an epoch's end or inside an epoch (a mid-epoch
    checkpoint every ``checkpoint_minutes`` of training; ``None``: only at epoch ends); the
    resumed run reproduces the uninterrupted one. Returns at once when ``model/`` is complete.

    Raises:
        ModelLoadError: a teacher directory that is not a fine-tuned model. ConfigError: a student
            deeper than a teacher, teachers that disagree, or ``out_dir`` made with other settings.
        DataError: unreadable corpus or ``transfer_text`` folder (file and line named); nothing
            is written.
    """
    from edgerep.workstation.models import load_finetuned

    job = TrainingRun("distill", Path(out_dir))
    if job.finished():
        return job.final
    infos = check_teachers(config)  # every user mistake is found before anything is written
    teacher_info = infos[0]
    set_threads(config.threads)
    tokenizer = TweetTokenizer(
        Path(config.teachers[0]) / TOKENIZER_FILE, int(teacher_info["max_seq_len"]), bool(teacher_info.get("entity_conditioned", False))
    )
    data = _transfer_set(data_root, SplitConfig(**teacher_info.get("split", {})), tokenizer, config, tuple(teacher_info["labels"]))
    job.out.mkdir(parents=True, exist_ok=True)
    check_or_write_config(job.out / "config.json", config.to_dict(), ConfigError)
    teacher, _ = load_finetuned(config.teachers[0])
    student, mapping = init_student(teacher, config.layers)
    state_layers = _cacheable_layers(config, data, mapping, int(teacher.config.hidden_size))
    teacher_logits, states = _teacher_logits(job.out, config, tokenizer, data, teacher, state_layers)
    targets = soft_targets(teacher_logits, config.temperature)
    student, latest, done, mid = _resumed_student(job.out, student)
    # before the first epoch, or a run stopped right after its full-width epochs (a mid-epoch student is pruned already)
    restart = mid is None and _prune_due(config, student, done)
    if restart:
        _prune(config, student, tokenizer, data, done)
    grids = quantized_weights(student, Quantization(config.quant_aware)) if config.quant_aware else {}
    needs_teacher = config.hidden_weight > 0 and states is None  # hidden-state targets computed per batch
    run = _StudentPass(student, grids, teacher if needs_teacher else None, states, mapping, tokenizer, data)
    del teacher
    steps_per_epoch = math.ceil(len(data.ids) / config.batch_size)
    optimizer, scheduler, history, start = _optimizer_state(config, student, latest, mid, restart, done, steps_per_epoch)
    fit = Fit(student, optimizer, scheduler, history, MidEpoch(job.checkpoints, checkpoint_minutes, mid))
    log(_plan(config, run, steps_per_epoch))

    def after_epoch(epoch: int) -> None:
        if _prune_due(config, student, epoch) and epoch < config.epochs:
            _prune(config, student, tokenizer, data, epoch)
            fit.optimizer, fit.scheduler = _restarted_optimizer(student, config, steps_per_epoch, epoch)

    job.epochs(fit, start, config.epochs, partial(_distill_epoch, fit, config, run, targets), after_epoch)
    pruned = [h for h in fit.history if h["epoch"] > config.prune_after_epoch]  # the full-width epochs before a cut are no candidates
    best = max(pruned, key=lambda h: (h["validation"]["macro_f1"], -h["epoch"]))
    info = _student_info(config, infos, fit.history, best, mapping, student, states, run.qat_grids, data)
    _install_student(job.out, job.final, config.teachers[0], fit.history, best, info, run.qat_grids)
    return job.close(f"best epoch {best['epoch']} (validation macro-F1 {best['validation']['macro_f1']:.4f})")


@dataclass
class _StudentPass:
    """The student's forward pass (fake-quantized under quantization-aware training), the
    hidden-state targets of a batch (cached ``states``, or the frozen ``teacher`` run per batch)
    and the validation logits (weights snapped to the grid under quantization-aware training)."""

    student: Any
    qat_grids: dict
    teacher: Any
    states: TeacherStates | None
    mapping: list[int]
    tokenizer: TweetTokenizer
    data: _Transfer

    def __post_init__(self) -> None:
        if self.teacher is not None:
            self.teacher.eval()
            for p in self.teacher.parameters():
                p.requires_grad_(False)

    def forward(self, **kwargs):
        """The student's output on ``kwargs`` (model inputs)."""
        if not self.qat_grids:
            return self.student(**kwargs)
        return fake_quantized_call(self.student, self.qat_grids, kwargs)

    def hidden_targets(self, batch, enc) -> list:
        """The teacher's hidden states float [batch, width, hidden] of the mapped layers."""
        import torch

        from edgerep.workstation.inference import model_inputs

        if self.states is not None:
            return self.states.batch(batch, enc.input_ids.shape[1])
        with torch.no_grad():
            out_t = self.teacher(**model_inputs(self.teacher, enc), output_hidden_states=True)
        return [out_t.hidden_states[m + 1] for m in self.mapping]

    def validation_logits(self) -> np.ndarray:
        """The student's logits float32 [n_validation, n_labels]."""
        from edgerep.workstation.inference import ids_logits

        model = snap_to_grid(copy.deepcopy(self.student), self.qat_grids) if self.qat_grids else self.student
        return ids_logits(model, self.tokenizer, self.data.val_ids)


def _resumed_student(out: Path, student):
    """``(student, latest epoch checkpoint or None, finished epochs, mid-epoch checkpoint or
    None)``: the student of the mid-epoch checkpoint when there is one, else of the latest epoch
    checkpoint, else ``student`` as initialised."""
    from edgerep.workstation.models import load_sequence_classifier

    latest = latest_checkpoint(out / "checkpoints")
    done = 0 if latest is None else int(json.loads((latest / "state.json").read_text())["epoch"])
    mid = MidEpoch.find(out / "checkpoints", latest)
    if mid is not None:
        return load_sequence_classifier(mid.path), latest, done, mid
    if latest is None:
        return student, None, 0, None
    return load_sequence_classifier(latest), latest, done, None


def _optimizer_state(
    config: DistillConfig, student, latest: Path | None, mid: MidEpoch | None, restart: bool, done: int, steps_per_epoch: int
):
    """``(optimizer, scheduler, history, first epoch to run)``, resumed from the ``mid``-epoch
    checkpoint or ``latest``; after a pruning cut (``restart``) the optimizer starts anew, as the
    checkpoint's state is for the unpruned shapes."""
    if restart and latest is not None:
        optimizer, scheduler = _restarted_optimizer(student, config, steps_per_epoch, done)
        return optimizer, scheduler, json.loads((latest / "state.json").read_text())["history"], done + 1
    optimizer, scheduler = make_optimizer(student, config, steps_per_epoch * config.epochs)
    if mid is not None:
        return optimizer, scheduler, mid.restore(optimizer, scheduler), mid.epoch
    history, start = resume_state(latest, optimizer, scheduler)
    return optimizer, scheduler, history, start


def _plan(config: DistillConfig, run: _StudentPass, steps_per_epoch: int) -> str:
    """The log line that opens a distillation."""
    grids = run.qat_grids
    return (
        f"distilling {len(config.teachers)} teacher(s) into {config.layers} layers (teacher layers {run.mapping}, "
        f"{sum(p.numel() for p in run.student.parameters()) / 1e6:.1f}M params) on {len(run.data.ids)} tweets "
        f"({run.data.counts}), T={config.temperature:g}, alpha={config.alpha:g}, hidden-state weight {config.hidden_weight:g}, "
        f"quantization-aware: {config.quant_aware or 'no'} ({len(grids)} weight tensors, "
        f"{sum(g.folded_scale is not None for g in grids.values())} with a folded LayerNorm scale); "
        f"{config.epochs} epoch{'s' if config.epochs != 1 else ''} x {steps_per_epoch} steps"
    )
