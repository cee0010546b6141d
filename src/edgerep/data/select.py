"""Which tweets each job uses: the one place where tweets are chosen for training, validation,
evaluation, export validation, the representative dataset and benchmarks.

Every sample is deterministic: :func:`spread` takes evenly spaced items of an entity-ordered
list, so a sample of any size covers every entity.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgerep.data.replab import Tweet, load_split
from edgerep.data.split import SplitConfig, split_train_validation
from edgerep.errors import ConfigError, InputTextError
from edgerep.io import read_bytes
from edgerep.registry import SPLITS, SUBSETS

#: The part of the training split a sample comes from.
PARTS = ("train", "validation")


def spread(items: Sequence, n: int) -> list:
    """``n`` items evenly spaced over ``items`` (all of them when there are fewer): index
    ``floor(i * len(items) / n)`` for ``i < n``."""
    if len(items) <= n:
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


@dataclass(frozen=True)
class Samples:
    """Raw tweets and the name of the entity each one is about.

    Attributes:
        texts: raw tweet texts.
        entities: entity name per text (parallel to ``texts``), or ``None`` when unknown (a
            plain text file); an entity-conditioned model then needs one name from the user.
    """

    texts: list[str]
    entities: list[str] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def of(cls, tweets: Sequence[Tweet]) -> Samples:
        """The texts and entity names of corpus tweets."""
        return cls([t.text for t in tweets], [t.entity_name for t in tweets])

    def spread(self, n: int) -> Samples:
        """:func:`spread` applied to texts and entities alike."""
        return Samples(spread(self.texts, n), None if self.entities is None else spread(self.entities, n))

    def entities_for(self, entity_conditioned: bool, entity: str | None = None):
        """The ``entities`` argument of the tokenizer and runtime for a model: ``None`` for a
        single-segment model; else ``entity`` when given (one name for all), else the per-text names.

        Raises:
            InputTextError: an entity-conditioned model, no ``entity`` and no per-text names.
        """
        if not entity_conditioned:
            return None
        if entity is not None:
            return entity
        if self.entities is None:
            raise InputTextError("the model is entity-conditioned and these tweets name no entity; give one (--entity NAME)")
        return self.entities


def smoke_validation_size(limit: int) -> int:
    """Validation tweets of a smoke run over ``limit`` training tweets: a quarter of them, at
    least 8 (every smoke-run evaluation, fine-tuning, distillation and compression alike)."""
    return max(8, limit // 4)


def training_tweets(
    data_root: str | os.PathLike,
    split_config: SplitConfig = SplitConfig(),
    limit: int | None = None,
    seed: int = 13,
    relatedness: bool = False,
) -> tuple[list[Tweet], list[Tweet], dict]:
    """The training split divided into ``(train, validation, load report)``.

    Args:
        relatedness: include the UNRELATED tweets (:func:`edgerep.data.replab.load_split`).
        limit: keep a seeded random ``limit`` train tweets and :func:`smoke_validation_size`
            validation tweets (smoke runs); ``None`` keeps all.

    Raises:
        DataError: unreadable corpus.
    """
    tweets, report = load_split(data_root, "training", relatedness=relatedness)
    train, val = split_train_validation(tweets, split_config)
    if limit is not None:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.permutation(len(train))[:limit])
        train = [train[i] for i in keep]
        keep_v = np.sort(rng.permutation(len(val))[: smoke_validation_size(limit)])
        val = [val[i] for i in keep_v]
    return train, val, report.to_dict()


def part_texts(data_root: str | os.PathLike, split_config: SplitConfig = SplitConfig()) -> dict[str, Samples]:
    """The tweets (texts and entity names) of each part of the training split,
    ``{"train": Samples, "validation": Samples}``, read once; :meth:`Samples.spread` them for a sample: ``validation`` for export validation, latency and
    benchmarks, ``train`` for a representative dataset (never tweets the model is validated on).

    Raises:
        DataError: unreadable corpus.
    """
    train, val, _ = training_tweets(data_root, split_config)
    return {"train": Samples.of(train), "validation": Samples.of(val)}


def sample_texts(data_root: str | os.PathLike, part: str, n: int, split_config: SplitConfig = SplitConfig()) -> Samples:
    """``n`` tweets spread over ``part`` of the training split (:func:`part_texts`).

    Raises:
        ConfigError: unknown part. DataError: unreadable corpus.
    """
    if part not in PARTS:
        raise ConfigError(f"unknown part {part!r}; valid: {', '.join(PARTS)}")
    return part_texts(data_root, split_config)[part].spread(n)


def select_tweets(
    data_root: str | os.PathLike, split: str, subset: str, split_config: SplitConfig, relatedness: bool = False
) -> tuple[list[Tweet], dict]:
    """Tweets to evaluate on, and a description of the selection.

    ``subset``: ``auto`` (the validation part of the training split, all of the test split),
    ``validation``, ``train`` or ``all``. ``relatedness``: the UNRELATED tweets too
    (:func:`~edgerep.data.replab.load_split`).

    Raises:
        ConfigError: unknown split or subset, or ``train``/``validation`` asked of the test split.
        DataError: unreadable data.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if subset not in SUBSETS:
        raise ConfigError(f"unknown subset {subset!r}; valid: {', '.join(SUBSETS)}")
    if subset == "auto":
        subset = "validation" if split == "training" else "all"
    if split != "training" and subset in ("train", "validation"):
        raise ConfigError(f"subset {subset!r} exists only for the training split; use --subset all for {split!r}")
    tweets, report = load_split(data_root, split, relatedness=relatedness)
    if subset != "all":
        train, val = split_train_validation(tweets, split_config)
        tweets = val if subset == "validation" else train
    return tweets, {
        "root": str(data_root),
        "split": split,
        "subset": subset,
        "split_config": split_config.to_dict(),
        "n": len(tweets),
        "load_report": report.to_dict(),
    }


def benchmark_tweets(source: str | os.PathLike, n: int) -> Samples:
    """``n`` real tweets to time: :func:`sample_texts` of the validation part when ``source`` is
    a RepLab root (with entity names), else the non-empty lines of a UTF-8 text file (repeated
    to reach ``n``; undecodable bytes replaced; no entity names).

    Raises:
        DataError: unreadable corpus; InputTextError: unreadable file or fewer than 2 lines.
    """
    source = Path(source)
    if source.is_dir():
        return sample_texts(source, "validation", n)
    lines = [ln for ln in read_bytes(source, InputTextError).decode("utf-8", errors="replace").splitlines() if ln.strip()]
    if len(lines) < 2:
        raise InputTextError(f"{source}: need at least 2 non-empty lines of tweets")
    return Samples((lines * (n // len(lines) + 1))[:n])
