"""Loader for the TweetEval sentiment files: auxiliary training data and an out-of-domain check.

Layout (``tweeteval-sentiment/README.md``; TweetEval, Barbieri et al., Findings of EMNLP 2020,
``datasets/sentiment/``): ``<portion>_text.txt`` and ``<portion>_labels.txt`` with one tweet or
one label per line, lines aligned, labels ``0`` negative / ``1`` neutral / ``2`` positive
(``mapping.txt``). The labels are general **sentiment**, not reputation polarity; edgerep maps
them onto :data:`edgerep.LABELS` by name (negative -> NEGATIVE ...) for an intermediate task, a
second head, or as unlabelled text, and scores the ``val`` portion as polarity only as an
out-of-domain check, never as a TweetEval score (both portions here are used for training by
someone).

Two portions: ``test`` (12,284 tweets, used for training by edgerep) and ``val`` (2,000 tweets,
kept out of every training use as the out-of-domain check).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edgerep import LABELS
from edgerep.errors import DataError
from edgerep.io import read_bytes

#: TweetEval's label ids in ``mapping.txt`` order, as edgerep label names.
TWEETEVAL_LABELS = ("NEGATIVE", "NEUTRAL", "POSITIVE")
#: The portion used for training, and the one kept out as the out-of-domain check.
TRAIN_PORTION, CHECK_PORTION = "test", "val"


@dataclass
class SentimentSet:
    """One TweetEval portion.

    Attributes:
        portion: ``test`` or ``val`` (file name prefix).
        texts: raw tweets (``@user`` already substituted by TweetEval).
        label_ids: int index into :data:`edgerep.LABELS` per text.
        counts: tweets per label name.
        dropped: lines not returned, by reason (``empty_text``).
    """

    portion: str
    texts: list[str]
    label_ids: list[int]
    counts: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        """Counts only (JSON-ready)."""
        return {
            "portion": self.portion,
            "n": len(self.texts),
            "label_counts": {k: self.counts.get(k, 0) for k in LABELS},
            "dropped": dict(self.dropped),
        }


def _lines(path: Path) -> list[str]:
    raw = read_bytes(path, DataError)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def load_sentiment(root: str | os.PathLike, portion: str) -> SentimentSet:
    """Read one TweetEval sentiment portion.

    Args:
        root: the folder holding ``mapping.txt`` and the portion files.
        portion: ``test`` (the training portion here) or ``val`` (the out-of-domain check).

    Returns:
        A :class:`SentimentSet`; lines whose text is empty are dropped and counted.

    Raises:
        DataError: a missing folder or file, files of different line counts, a label other than
            0/1/2, a ``mapping.txt`` other than negative/neutral/positive (file and line named).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: TweetEval sentiment folder not found")
    if portion not in (TRAIN_PORTION, CHECK_PORTION):
        raise DataError(f"unknown TweetEval portion {portion!r}; valid: {TRAIN_PORTION}, {CHECK_PORTION}")
    mapping = [ln.split("\t") for ln in _lines(root / "mapping.txt") if ln.strip()]
    expected = [[str(i), name.lower()] for i, name in enumerate(TWEETEVAL_LABELS)]
    if [[f.strip() for f in m] for m in mapping] != expected:
        raise DataError(f"{root / 'mapping.txt'}: expected the lines 0 negative / 1 neutral / 2 positive, got {mapping!r}")
    text_path, label_path = root / f"{portion}_text.txt", root / f"{portion}_labels.txt"
    texts, labels = _lines(text_path), _lines(label_path)
    if len(texts) != len(labels):
        raise DataError(f"{text_path} has {len(texts)} lines, {label_path} has {len(labels)}: the files must be aligned")
    out = SentimentSet(portion, [], [])
    for i, (text, label) in enumerate(zip(texts, labels), 1):
        if label.strip() not in ("0", "1", "2"):
            raise DataError(f"{label_path}:{i}: label {label.strip()!r} is not 0, 1 or 2")
        if not text.strip():
            out.dropped["empty_text"] += 1
            continue
        name = TWEETEVAL_LABELS[int(label)]
        out.texts.append(text)
        out.label_ids.append(LABELS.index(name))
        out.counts[name] += 1
    if not out.texts:
        raise DataError(f"{text_path}: no tweets")
    return out
