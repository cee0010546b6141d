"""WordPiece tokenization of tweets with the HF ``tokenizers`` library, shared by training, export
validation and the on-device runtime: each calls :class:`TweetTokenizer` on the bundle's
``tokenizer.json``, so a tweet becomes the same ``input_ids`` everywhere, and :meth:`TweetTokenizer.pad`
is the one place where id sequences are padded into model inputs.

Entity-conditioned models read the pair ``[CLS] entity [SEP] tweet [SEP]`` (BERT's two-segment
input, Devlin et al., 2019, section 3): the entity name is segment A, the tweet segment B.
Truncation to ``max_seq_len`` is ``longest_first`` (the ``tokenizers`` default), so the tweet
loses tokens before a short entity name does. Segment (token type) ids follow one rule,
:func:`segment_ids`, which the exported graph computes the same way from ``input_ids``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgerep.device.text import normalize_entity, normalize_tweet
from edgerep.errors import InputTextError, ModelLoadError


def segment_ids(input_ids: np.ndarray, sep_id: int) -> np.ndarray:
    """Token type ids of padded pair inputs: 1 after the first ``[SEP]``, else 0.

    Args:
        input_ids: int [batch, seq_len] ``[CLS] A [SEP] B [SEP]`` then padding.
        sep_id: id of the separator token.

    Returns:
        int32 [batch, seq_len]. Segment B and its closing ``[SEP]`` are 1 as in BERT; padding
        after it is 1 too, which changes nothing because padding is masked out of attention.
        The exported graph computes the same from ``input_ids`` (``edgerep.workstation.models.logits_module``).
    """
    ids = np.asarray(input_ids)
    first_sep = np.argmax(ids == sep_id, axis=1)
    return (np.arange(ids.shape[1])[None, :] > first_sep[:, None]).astype(np.int32)


@dataclass(frozen=True)
class Encoded:
    """A tokenized batch.

    Attributes:
        input_ids: int32 [batch, seq_len] WordPiece ids, ``[CLS] ... [SEP]`` then padding.
        attention_mask: int32 [batch, seq_len], 1 for real tokens, 0 for padding.
        lengths: int32 [batch] number of real tokens (special tokens included, after truncation
            to ``max_seq_len``, before truncation to the padded width).
        token_type_ids: int32 [batch, seq_len] segment ids (:func:`segment_ids` for pair
            inputs, zeros for single tweets).
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    lengths: np.ndarray
    token_type_ids: np.ndarray


class TweetTokenizer:
    """Normalize (:func:`edgerep.device.text.normalize_tweet`) and tokenize tweets.

    Args:
        tokenizer_json: path to a HF ``tokenizer.json`` (fast tokenizer serialization).
        max_seq_len: truncation length in tokens, special tokens and entity tokens included.
        entity_conditioned: encode ``(entity, tweet)`` pairs; every call then needs entities,
            and a call with entities on a single-segment tokenizer is refused.

    The padding id is the one the tokenizer's own padding configuration names, else the id of
    ``[PAD]``, else 0 (BERT WordPiece vocabularies put ``[PAD]`` at 0).

    Raises:
        ModelLoadError: the file is missing or is not a tokenizer, ``max_seq_len`` < 4, or an
            entity-conditioned tokenizer has no ``[SEP]`` token.
    """

    def __init__(self, tokenizer_json: str | os.PathLike, max_seq_len: int, entity_conditioned: bool = False):
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
        self.entity_conditioned = bool(entity_conditioned)
        self.sep_id = tok.token_to_id("[SEP]")
        if self.entity_conditioned and self.sep_id is None:
            raise ModelLoadError(f"{path}: no [SEP] token, cannot encode (entity, tweet) pairs")

    def _inputs(self, texts: Sequence[str], entities) -> list:
        """Normalized single texts, or ``(entity, text)`` pairs for an entity-conditioned tokenizer.

        Raises:
            InputTextError: entities missing for an entity-conditioned tokenizer, given to a
                single-segment one, of another count than the texts, or empty.
        """
        texts = [normalize_tweet(t) for t in texts]
        if not self.entity_conditioned:
            if entities is not None:
                raise InputTextError("this model was trained without entity conditioning and takes no entity; leave the entity out")
            return texts
        if entities is None:
            raise InputTextError('this model is entity-conditioned: give the entity each tweet is about (e.g. entity="BMW")')
        if isinstance(entities, str):
            name = normalize_entity(entities)
            return [(name, t) for t in texts]
        entities = list(entities)
        if len(entities) != len(texts):
            raise InputTextError(f"{len(entities)} entities for {len(texts)} texts; give one entity, or one per text")
        names: dict[str, str] = {}
        pairs = []
        for i, (e, t) in enumerate(zip(entities, texts)):
            if e not in names:
                try:
                    names[e] = normalize_entity(e)
                except InputTextError as exc:
                    raise InputTextError(f"entity of text {i}: {exc}") from None
            pairs.append((names[e], t))
        return pairs

    def token_lengths(self, texts: Sequence[str], entities=None) -> np.ndarray:
        """Token counts (special and entity tokens included, before truncation): int32 [len(texts)].

        Raises:
            InputTextError: see :meth:`ids`.
        """
        inputs = self._inputs(texts, entities)
        self._tok.no_truncation()
        try:
            encs = self._tok.encode_batch(inputs)
        finally:
            self._tok.enable_truncation(max_length=self.max_seq_len)
        return np.asarray([len(e.ids) for e in encs], dtype=np.int32)

    def ids(self, texts: Sequence[str], entities: str | Sequence[str] | None = None) -> list[np.ndarray]:
        """Normalized, tokenized, truncated to ``max_seq_len``, unpadded: int32 [n_tokens] per text.

        Args:
            texts: raw tweets.
            entities: for an entity-conditioned tokenizer, one entity name for all texts or one
                per text; ``None`` otherwise.

        Raises:
            InputTextError: entities missing, unexpected, miscounted or empty (:meth:`_inputs`).
        """
        return [np.asarray(e.ids, dtype=np.int32) for e in self._tok.encode_batch(self._inputs(texts, entities))]

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
        types = segment_ids(input_ids, self.sep_id) if self.entity_conditioned and self.sep_id is not None else np.zeros_like(input_ids)
        return Encoded(input_ids, mask, lengths, types)

    def encode(self, texts: Sequence[str], pad_to: int | None = None, entities=None) -> Encoded:
        """:meth:`ids` then :meth:`pad`: int32 [len(texts), pad_to or longest]."""
        return self.pad(self.ids(texts, entities), pad_to)
