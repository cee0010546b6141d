"""PyTorch inference of a fine-tuned classifier: the one path used by training (validation after
each epoch), export validation, evaluation of a checkpoint and the benchmark's PyTorch baseline
(heavy: torch).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgerep.device.tokenizer import Encoded, TweetTokenizer
from edgerep.log import progress


def takes_token_types(model) -> bool:
    """Whether a HF model's ``forward`` has a ``token_type_ids`` parameter (BERT, MobileBERT: yes;
    DistilBERT: no). Reads the signature through transformers' decorators."""
    import inspect

    return "token_type_ids" in inspect.signature(model.forward).parameters


def model_inputs(model, enc: Encoded) -> dict:
    """Keyword inputs of a HF encoder for a padded batch: int64 ``input_ids``, ``attention_mask``
    [batch, seq_len], and ``token_type_ids`` when the model takes them (zeros for single tweets,
    :func:`~edgerep.device.tokenizer.segment_ids` for (entity, tweet) pairs)."""
    import torch

    kwargs = {
        "input_ids": torch.from_numpy(enc.input_ids.astype(np.int64)),
        "attention_mask": torch.from_numpy(enc.attention_mask.astype(np.int64)),
    }
    if takes_token_types(model):
        kwargs["token_type_ids"] = torch.from_numpy(enc.token_type_ids.astype(np.int64))
    return kwargs


def ids_logits(
    model,
    tokenizer: TweetTokenizer,
    ids: Sequence[np.ndarray],
    batch_size: int = 64,
    pad_to: int | None = None,
    description: str | None = None,
) -> np.ndarray:
    """Logits of a torch sequence classifier for token id sequences: float32 [len(ids), num_labels].

    Args:
        model: HF ``*ForSequenceClassification``.
        tokenizer: pads the batches (:meth:`TweetTokenizer.pad`, the one padding rule).
        ids: int [n_tokens] per text (:meth:`TweetTokenizer.ids`).
        batch_size: texts per forward pass; batches are formed from length-sorted texts
            (dynamic padding) and the output keeps the input order.
        pad_to: pad every row to this width instead (the static shape a bundle sees).
        description: show a progress bar with this label.
    """
    import torch

    model.eval()
    n = len(ids)
    out = np.zeros((n, model.config.num_labels), dtype=np.float32)
    order = np.argsort([len(x) for x in ids], kind="stable")
    with torch.inference_mode(), progress(description or "predict", n, show=description is not None) as bar:
        for s in range(0, n, batch_size):
            idx = order[s : s + batch_size]
            enc = tokenizer.pad([ids[i] for i in idx], pad_to)
            logits = model(**model_inputs(model, enc)).logits
            out[idx] = logits.float().numpy()
            bar.advance(len(idx))
    return out


def torch_logits(
    model,
    tokenizer: TweetTokenizer,
    texts: Sequence[str],
    batch_size: int = 64,
    pad_to: int | None = None,
    description: str | None = None,
    entities=None,
) -> np.ndarray:
    """:func:`ids_logits` of raw tweets (normalized and tokenized as on the device): float32 [len(texts), num_labels].

    ``entities``: the entity name(s) for an entity-conditioned tokenizer (:meth:`TweetTokenizer.ids`).
    """
    return ids_logits(model, tokenizer, tokenizer.ids(texts, entities), batch_size, pad_to, description)
