"""WordPiece tokenization of tweets with the HF ``tokenizers`` library, shared by training, export
validation and the on-device runtime: each calls :class:`TweetTokenizer` on the bundle's
``tokenizer.json``, so a tweet becomes the same ``input_ids`` everywhere, and :meth:`TweetTokenizer.pad`
is the one place where id sequences are padded into model inputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edgerep.errors import ModelLoadError
from edgerep.device.text import normalize_tweet


@dataclass(frozen=True)
class Encoded:
    """A tokenized batch.

    Attributes:
        input_ids: int32 [batch, seq_len] WordPiece ids, ``[CLS] ... [SEP]`` then padding.
        attention_mask: int32 [batch, seq_len], 1 for real tokens, 0 for padding.
        lengths: int32 [batch] number of real tokens (special tokens included, after truncation
            to ``max_seq_len``, before truncation to the padded width).
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    lengths: np.ndarray


class TweetTokenizer:
    """Normalize (:func:`edgerep.device.text.normalize_tweet`) and tokenize tweets.

    Args:
        tokenizer_json: path to a HF ``tokenizer.json`` (fast tokenizer serialization).
        max_seq_len: truncation length in tokens, special tokens included.

    The padding id is the one the tokenizer's own padding configuration names, else the id of
    ``[PAD]``, else 0 (BERT WordPiece vocabularies put ``[PAD]`` at 0).

    Raises:
        ModelLoadError: the file is missing or is not a tokenizer, or ``max_seq_len`` < 4.
    """

    def __init__(self, tokenizer_json: str | os.PathLike, max_seq_len: int):
        from tokenizers import Tokenizer

        path = Path(tokenizer_json)
        if not path.is_file():
            raise ModelLoadError(f"{path}: tokenizer file not found")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise ModelLoadError(f"{path}: not a valid tokenizer.json ({exc})") from None
        if max_seq_len < 4:
            raise ModelLoadError(f"max_seq_len must be >= 4, got {max_seq_len}")
        padding = tok.padding or {}
        pad_id = padding.get("pad_id") if padding.get("pad_token") else None
        if pad_id is None:
            pad_id = tok.token_to_id("[PAD]")
        tok.no_padding()
        tok.enable_truncation(max_length=max_seq_len)
        self._tok = tok
        self.path = path
        self.max_seq_len = int(max_seq_len)
        self.pad_id = int(pad_id or 0)
        self.vocab_size = tok.get_vocab_size(with_added_tokens=True)

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Token counts (special tokens included, before truncation): int32 [len(texts)]."""
        self._tok.no_truncation()
        try:
            encs = self._tok.encode_batch([normalize_tweet(t) for t in texts])
        finally:
            self._tok.enable_truncation(max_length=self.max_seq_len)
        return np.asarray([len(e.ids) for e in encs], dtype=np.int32)

    def ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Normalized, tokenized, truncated to ``max_seq_len``, unpadded: int32 [n_tokens] per text."""
        return [np.asarray(e.ids, dtype=np.int32) for e in self._tok.encode_batch([normalize_tweet(t) for t in texts])]

    def pad(self, ids: Sequence[np.ndarray], width: int | None = None) -> Encoded:
        """Pad id sequences into model inputs.

        Args:
            ids: int [n_tokens] per text (from :meth:`ids`).
            width: pad (or cut) every row to this length; ``None``: the longest row (dynamic
                padding, at least 2).

        Returns:
            :class:`Encoded` with int32 arrays [len(ids), width].
        """
        lengths = np.asarray([len(x) for x in ids], dtype=np.int32)
        width = int(width) if width is not None else int(lengths.max(initial=2))
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int32)
        mask = np.zeros((len(ids), width), dtype=np.int32)
        for i, x in enumerate(ids):
            n = min(len(x), width)
            input_ids[i, :n] = x[:n]
            mask[i, :n] = 1
        return Encoded(input_ids, mask, lengths)

    def encode(self, texts: Sequence[str], pad_to: int | None = None) -> Encoded:
        """:meth:`ids` then :meth:`pad`: int32 [len(texts), pad_to or longest]."""
        return self.pad(self.ids(texts), pad_to)
