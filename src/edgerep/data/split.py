"""Validation split taken from the RepLab training split only.

RepLab 2013 trains on each entity's first 700 tweets and tests on the later ones (the corpus's
README, section 1). The default ``temporal`` strategy mirrors that: for each entity, the latest
``val_fraction`` of its tweets by timestamp form the validation set. ``random`` is a seeded,
per-entity random hold-out for comparison.

A second temporal fold guards a choice of settings against noise: ``fold=1`` validates on the
``val_fraction`` of each entity's tweets *before* the latest ones and trains only on the tweets
before those (the latest block is left out, so the model still never sees the future).

Tweets labelled UNRELATED (loaded for the filtering task) do not move the polarity split: the
polarity-labelled tweets are split as above, and each UNRELATED tweet follows its entity's time
boundaries (``temporal``: before the validation block's first timestamp = train, up to its last =
validation, later = left out; fold 0's block runs to the end) or is drawn like the others
(``random``, its own per-entity draw).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from edgerep.data.replab import Tweet
from edgerep.errors import ConfigError

STRATEGIES = ("temporal", "random")


@dataclass(frozen=True)
class SplitConfig:
    """How the validation set is carved out of the training split.

    Attributes:
        val_fraction: share of each entity's tweets held out, in (0, 1).
        strategy: ``temporal`` (latest tweets per entity) or ``random`` (seeded, per entity).
        seed: seed of the ``random`` strategy (``temporal`` is deterministic without one).
        fold: temporal fold: 0 = the latest block validates; k = the k-th block before it
            validates, training uses only earlier tweets (``temporal`` only).
    """

    val_fraction: float = 0.15
    strategy: str = "temporal"
    seed: int = 13
    fold: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown split strategy {self.strategy!r}; valid: {', '.join(STRATEGIES)}")
        if self.fold < 0 or (self.fold and self.strategy != "temporal"):
            raise ConfigError(f"fold must be 0, or >= 1 with the temporal strategy; got fold {self.fold} ({self.strategy})")
        if (self.fold + 1) * self.val_fraction >= 1.0:
            raise ConfigError(f"fold {self.fold} x val_fraction {self.val_fraction} leaves no training tweets")

    def to_dict(self) -> dict:
        return asdict(self)


def split_train_validation(tweets: Sequence[Tweet], config: SplitConfig = SplitConfig()) -> tuple[list[Tweet], list[Tweet]]:
    """Split tweets into ``(train, validation)``, per entity, deterministically.

    Each entity with n polarity-labelled tweets gives ``ceil(n * val_fraction)`` validation
    tweets (none when n < 2). Ties in timestamp are broken by tweet id. UNRELATED tweets follow
    the time boundaries (module docstring). Output order follows the input order.

    Returns:
        ``(train, validation)`` lists of :class:`~edgerep.data.replab.Tweet`; disjoint, and
        together equal to ``tweets`` for fold 0 (fold k >= 1 leaves out the k latest blocks).
    """
    by_entity: dict[str, list[int]] = defaultdict(list)
    unrelated: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(tweets):
        (by_entity if t.related else unrelated)[t.entity_id].append(i)
    rng = random.Random(config.seed)
    val_idx: set[int] = set()
    left_out: set[int] = set()
    for entity in sorted(by_entity):
        block, later = _entity_blocks(tweets, by_entity[entity], config, rng)
        val_idx.update(block)
        left_out.update(later)
        if entity in unrelated and config.strategy == "temporal" and block:
            start = min(tweets[i].timestamp for i in block)
            end = max(tweets[i].timestamp for i in block) if config.fold else math.inf
            for i in unrelated[entity]:
                ts = tweets[i].timestamp
                (val_idx if start <= ts <= end else left_out if ts > end else set()).add(i)
    if config.strategy == "random":
        for entity in sorted(unrelated):
            block, _ = _entity_blocks(tweets, unrelated[entity], config, rng)
            val_idx.update(block)
    train = [t for i, t in enumerate(tweets) if i not in val_idx and i not in left_out]
    val = [t for i, t in enumerate(tweets) if i in val_idx]
    return train, val


def _entity_blocks(tweets: Sequence[Tweet], idx: list[int], config: SplitConfig, rng: random.Random) -> tuple[list[int], list[int]]:
    """``(validation, left out)`` indices among one entity's tweets ``idx``."""
    n_val = math.ceil(len(idx) * config.val_fraction) if len(idx) >= 2 else 0
    if config.strategy == "temporal":
        order = sorted(
            idx, key=lambda i: (tweets[i].timestamp, int(tweets[i].tweet_id) if tweets[i].tweet_id.isdigit() else 0, tweets[i].tweet_id)
        )
    else:
        order = list(idx)
        rng.shuffle(order)
    if not n_val:
        return [], []
    end = len(order) - config.fold * n_val
    return order[max(0, end - n_val) : end], order[end:]
