"""WordPiece encoding with the HF ``tokenizers`` library, shared by training and the runtime.

Training, export validation and the on-device runtime all call :class:`Encoder` on the
bundle's ``tokenizer.json``, so a tweet becomes the same ``input_ids`` everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edgerep.errors import ModelLoadError
from edgerep.text import normalize_tweet


@dataclass(frozen=True)
class Encoded:
    """A tokenized batch.

    Attributes:
        input_ids: int32 [batch, seq_len] WordPiece ids, ``[CLS] ... [SEP]`` then padding.
        attention_mask: int32 [batch, seq_len], 1 for real tokens, 0 for padding.
        lengths: int32 [batch] number of real tokens (special tokens included).
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    lengths: np.ndarray


class Encoder:
    """Normalize and tokenize tweets to fixed or dynamic length.

    Args:
        tokenizer_json: path to a HF ``tokenizer.json`` (fast tokenizer serialization).
        max_seq_len: truncation length in tokens, special tokens included.

    Raises:
        ModelLoadError: the file is missing or is not a tokenizer.
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
        pad_token = "[PAD]"
        pad_id = tok.token_to_id(pad_token)
        if pad_id is None:
            pad_id = 0
        tok.no_padding()
        tok.enable_truncation(max_length=max_seq_len)
        self._tok = tok
        self.path = path
        self.max_seq_len = int(max_seq_len)
        self.pad_id = int(pad_id)
        self.vocab_size = tok.get_vocab_size(with_added_tokens=True)

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Token counts (special tokens included, before truncation): int32 [len(texts)]."""
        self._tok.no_truncation()
        try:
            encs = self._tok.encode_batch([normalize_tweet(t) for t in texts])
        finally:
            self._tok.enable_truncation(max_length=self.max_seq_len)
        return np.asarray([len(e.ids) for e in encs], dtype=np.int32)

    def encode(self, texts: Sequence[str], pad_to: int | None = None) -> Encoded:
        """Normalize (:func:`edgerep.text.normalize_tweet`) and tokenize a batch.

        Args:
            texts: raw tweets.
            pad_to: pad every row to this length (the static input length of a bundle);
                ``None`` pads to the longest row of the batch (dynamic padding, training).

        Returns:
            :class:`Encoded` with int32 arrays [len(texts), pad_to or longest].
        """
        encs = self._tok.encode_batch([normalize_tweet(t) for t in texts])
        lengths = np.asarray([len(e.ids) for e in encs], dtype=np.int32)
        width = pad_to if pad_to is not None else int(lengths.max(initial=2))
        ids = np.full((len(encs), width), self.pad_id, dtype=np.int32)
        mask = np.zeros((len(encs), width), dtype=np.int32)
        for i, e in enumerate(encs):
            n = min(len(e.ids), width)
            ids[i, :n] = e.ids[:n]
            mask[i, :n] = 1
        return Encoded(ids, mask, lengths)
