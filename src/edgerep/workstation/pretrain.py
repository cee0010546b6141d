"""Domain-adaptive pretraining (DAPT): continued masked-language-model training of the encoder on
the corpus's own unlabelled tweets before fine-tuning (Gururangan et al., ACL 2020, "Don't Stop
Pretraining"); heavy: torch + transformers.

Text: every English tweet of the RepLab training split with a text, labelled or not (unrelated
tweets and tweets without a polarity label included), **minus the tweets of the validation part**
so that the validation gain is not bought by having seen the validation texts; never the test
split. Optionally the TweetEval ``test`` portion's texts (``--extra-text``); its ``val`` portion
stays out (the out-of-domain check).

Masking: BERT's 15% of tokens, of which 80% ``[MASK]``, 10% a random token, 10% unchanged
(Devlin et al., 2019, section 3.1), by transformers' ``DataCollatorForLanguageModeling``; special
tokens are never masked. The vocabulary projection is computed at the masked positions only
(the decoder is as large as the 6-layer encoder's matrices, so this halves a step's cost).

Output layout under ``out_dir`` (resumable per epoch; the epoch loop of :mod:`edgerep.workstation.loop`)::

    config.json            resolved PretrainConfig
    checkpoints/epoch-K/   weights after epoch K (+ optimizer state for the latest)
    model/                 the adapted encoder in the source's own architecture (its pooler kept,
                           the MLM head dropped) + tokenizer + edgerep_pretrain.json;
                           ``edgerep train --model OUT/model`` fine-tunes it
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgerep import __version__
from edgerep.data import SplitConfig
from edgerep.errors import ConfigError, DataError
from edgerep.io import atomic_directory, atomic_write_json, check_or_write_config
from edgerep.log import log
from edgerep.registry import DEFAULT_MODEL, TOKENIZER_FILE

#: Written into ``model/``: what the encoder was adapted on, and the masked-LM loss before and after.
PRETRAIN_INFO_FILE = "edgerep_pretrain.json"


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of domain-adaptive pretraining; saved as ``config.json`` in the output directory.

    Attributes:
        model: alias, hub id or local path of the encoder to adapt.
        epochs: passes over the unlabelled tweets.
        batch_size: tweets per optimizer step.
        learning_rate: AdamW peak learning rate (linear warm-up, linear decay).
        weight_decay: AdamW decoupled weight decay (not on biases and norms).
        warmup_ratio: share of steps with linear warm-up.
        mlm_probability: share of tokens selected for masking (BERT: 0.15).
        head_warmup_ratio: share of the first epoch's steps in which only the MLM head trains,
            the encoder frozen: a sentence encoder (all-MiniLM-L6-v2) ships without MLM head
            weights, and the gradients of a random head would first disturb the encoder.
        max_seq_len: truncation length in tokens.
        seed: seed of masking, batch order and dropout.
        split: the validation part whose tweets are left out of the text.
        extra_text: folders of TweetEval sentiment files whose training portion joins the text.
        limit: at most this many tweets (smoke runs); ``None`` = all.
        threads: torch intra-op threads; ``None`` = all cores.
    """

    model: str = DEFAULT_MODEL
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    mlm_probability: float = 0.15
    head_warmup_ratio: float = 0.1
    max_seq_len: int = 64
    seed: int = 13
    split: SplitConfig = SplitConfig()
    extra_text: tuple[str, ...] = ()
    limit: int | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not 0.0 <= self.head_warmup_ratio < 1.0:
            raise ConfigError(f"head_warmup_ratio must be in [0, 1), got {self.head_warmup_ratio}")
        if not 0.0 < self.mlm_probability < 1.0:
            raise ConfigError(f"mlm_probability must be in (0, 1), got {self.mlm_probability}")
        if not 8 <= self.max_seq_len <= 512:
            raise ConfigError(f"max_seq_len must be in [8, 512], got {self.max_seq_len}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["extra_text"] = list(self.extra_text)
        return d


def pretraining_texts(data_root: str | os.PathLike, config: PretrainConfig) -> tuple[list[str], list[str], dict]:
    """``(texts, held_out, counts)``: the unlabelled English tweets of the training split minus
    the validation part (plus the extra text), and the validation part's texts (for the masked-LM
    loss before and after, never trained on).

    Raises:
        DataError: unreadable corpus or extra folder, or no tweets at all.
    """
    from edgerep.data.replab import load_texts
    from edgerep.data.select import training_tweets
    from edgerep.data.tweeteval import TRAIN_PORTION, load_sentiment

    raw, report = load_texts(data_root, "training")
    _, val, _ = training_tweets(data_root, config.split)
    val_ids = {t.tweet_id for t in val}
    texts = [t.text for t in raw if t.tweet_id not in val_ids]
    counts = {"replab_english": len(raw), "replab_validation_left_out": len(raw) - len(texts)}
    for folder in config.extra_text:
        extra = load_sentiment(folder, TRAIN_PORTION)
        texts += extra.texts
        counts[f"extra:{folder}"] = len(extra.texts)
    if config.limit is not None:
        rng = np.random.default_rng(config.seed)
        texts = [texts[i] for i in np.sort(rng.permutation(len(texts))[: config.limit])]
        val = val[: max(8, config.limit // 8)]
    counts["texts"] = len(texts)
    counts["held_out"] = len(val)
    counts["load_report_dropped"] = report.to_dict()["dropped"]
    if not texts:
        raise DataError(f"{data_root}: no tweets to pretrain on")
    return texts, [t.text for t in val], counts


def pretrain(data_root: str | os.PathLike, out_dir: str | os.PathLike, config: PretrainConfig = PretrainConfig()) -> Path:
    """Adapt ``config.model`` to the corpus's tweets by masked-LM training; return ``out_dir/model``.

    Resumes from the latest finished epoch; returns at once when ``model/`` is complete.

    Raises:
        DataError: unreadable corpus or no tweets. ModelLoadError: model not found or offline.
        ConfigError: ``out_dir`` holds a run with other settings; a tokenizer without a mask token.
    """
    import torch

    from edgerep.device.tokenizer import TweetTokenizer
    from edgerep.workstation.loop import Fit, TrainingRun, latest_checkpoint, make_optimizer, resume_state, save_tokenizer, set_threads
    from edgerep.workstation.models import load_masked_lm, load_tokenizer, resolve_source

    run = TrainingRun("pretrain", Path(out_dir), PRETRAIN_INFO_FILE)
    if run.finished():
        return run.final
    set_threads(config.threads)
    texts, held_out, counts = pretraining_texts(data_root, config)
    source = resolve_source(config.model)
    hf_tok = load_tokenizer(source)
    if hf_tok.mask_token is None:
        raise ConfigError(f"{config.model}: the tokenizer has no mask token; masked-LM pretraining needs one")
    tok_dir = save_tokenizer(hf_tok, run.out)
    check_or_write_config(run.out / "config.json", config.to_dict(), ConfigError)
    latest = latest_checkpoint(run.checkpoints)
    torch.manual_seed(config.seed)
    model = load_masked_lm(source if latest is None else str(latest))
    tokenizer = TweetTokenizer(tok_dir / TOKENIZER_FILE, config.max_seq_len)
    ids, held_ids = tokenizer.ids(texts), tokenizer.ids(held_out)
    steps = math.ceil(len(ids) / config.batch_size)
    optimizer, scheduler = make_optimizer(model, config, steps * config.epochs)
    history, start = resume_state(latest, optimizer, scheduler)
    if not history:
        history = [{"epoch": 0, "held_out_mlm_loss": _mlm_loss(model, hf_tok, held_ids, config)}]
        log(f"pretrain: masked-LM loss on {len(held_ids)} held-out tweets before adaptation {history[0]['held_out_mlm_loss']:.4f}")
    log(
        f"pretrain: masked-LM on {len(ids)} tweets ({counts}), {config.epochs} epoch{'s' if config.epochs != 1 else ''} x {steps} steps, {torch.get_num_threads()} threads"
    )
    fit = Fit(model, optimizer, scheduler, history)
    run.epochs(fit, start, config.epochs, lambda epoch: _epoch(fit, hf_tok, ids, held_ids, config, epoch))
    info = {
        "edgerep_version": __version__,
        "source_model": config.model,
        "config": config.to_dict(),
        "texts": counts,
        "history": history,
        "held_out_mlm_loss_before": history[0]["held_out_mlm_loss"],
        "held_out_mlm_loss_after": history[-1]["held_out_mlm_loss"],
        "train_seconds": round(sum(h.get("train_seconds", 0) for h in history), 1),
    }
    with atomic_directory(run.final, overwrite=True) as tmp:
        _save_encoder(source, model, tmp)
        for f in tok_dir.iterdir():
            shutil.copy2(f, tmp / f.name)
        (tmp / PRETRAIN_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    atomic_write_json(run.out / "history.json", history)
    return run.close(f"held-out masked-LM loss {info['held_out_mlm_loss_before']:.4f} -> {info['held_out_mlm_loss_after']:.4f}")


def _save_encoder(source: str, mlm_model, directory: Path) -> None:
    """Save the adapted encoder as ``AutoModel`` of ``source`` (BertModel with its pooler, which a
    masked-LM model lacks and sequence classification uses), weights from ``mlm_model``."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        base = AutoModel.from_pretrained(source)
    finally:
        hf_logging.set_verbosity(verbosity)
    result = base.load_state_dict(mlm_model.base_model.state_dict(), strict=False)
    if result.unexpected_keys or any("pooler" not in k for k in result.missing_keys):
        raise ConfigError(
            f"adapted encoder does not match {source}: missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    base.save_pretrained(directory)


def _masked_batch(collator, ids: list[np.ndarray]) -> dict:
    return collator([{"input_ids": x.tolist()} for x in ids])


def _mlm_step_loss(model, batch: dict):
    """Cross-entropy of the masked positions, the vocabulary projection applied there only."""
    import torch

    labels = batch["labels"]
    base = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    picked = labels != -100
    if not bool(picked.any()):
        return None
    logits = (
        model.cls(base.last_hidden_state[picked])
        if hasattr(model, "cls")
        else model.get_output_embeddings()(base.last_hidden_state[picked])
    )
    return torch.nn.functional.cross_entropy(logits, labels[picked])


def _mlm_loss(model, hf_tok, ids: list[np.ndarray], config: PretrainConfig) -> float:
    """Mean masked-LM loss over ``ids`` with a fixed masking seed (comparable before and after)."""
    import torch
    from transformers import DataCollatorForLanguageModeling

    collator = DataCollatorForLanguageModeling(hf_tok, mlm_probability=config.mlm_probability, return_tensors="pt")
    model.eval()
    torch.manual_seed(config.seed + 99)
    total, n = 0.0, 0
    with torch.inference_mode():
        for s in range(0, len(ids), 64):
            loss = _mlm_step_loss(model, _masked_batch(collator, ids[s : s + 64]))
            if loss is not None:
                total += float(loss) * len(ids[s : s + 64])
                n += len(ids[s : s + 64])
    return round(total / max(n, 1), 4)


def _epoch(fit, hf_tok, ids: list[np.ndarray], held_ids: list[np.ndarray], config: PretrainConfig, epoch: int) -> dict:
    """One masked-LM epoch over ``ids`` (the first epoch trains the head alone for
    ``head_warmup_ratio`` of its batches), then the held-out loss; returns the history entry."""
    from transformers import DataCollatorForLanguageModeling

    from edgerep.workstation.loop import batch_pass, epoch_batches

    collator = DataCollatorForLanguageModeling(hf_tok, mlm_probability=config.mlm_probability, return_tensors="pt")
    fit.model.train()
    batches = epoch_batches(ids, config.batch_size, config.seed, epoch)
    t0 = time.perf_counter()
    frozen = int(config.head_warmup_ratio * len(batches)) if epoch == 1 else 0
    encoder = list(fit.model.base_model.parameters())

    def batch_loss(k: int, b: np.ndarray):
        if k in (0, frozen):  # the head alone first, then everything
            for p in encoder:
                p.requires_grad_(k >= frozen)
        return _mlm_step_loss(fit.model, _masked_batch(collator, [ids[i] for i in b]))

    train_loss = batch_pass(fit, f"pretrain epoch {epoch}/{config.epochs}", batches, batch_loss).mean
    seconds = time.perf_counter() - t0
    held = _mlm_loss(fit.model, hf_tok, held_ids, config)
    log(f"pretrain epoch {epoch}: train masked-LM loss {train_loss:.4f}, held-out {held:.4f} ({seconds / 60:.1f} min)")
    return {"epoch": epoch, "train_mlm_loss": round(train_loss, 4), "held_out_mlm_loss": held, "train_seconds": round(seconds, 1)}
