"""Structured pruning of the feed-forward blocks (heavy: torch + transformers): fewer MACs, not
only cheaper ones.

A BERT layer's feed-forward block (``intermediate.dense`` hidden -> F, GELU, ``output.dense``
F -> hidden) holds two thirds of the layer's multiply-accumulates per token at F = 4 x hidden
(2·h·F of 4·h² + 2·h·F). Removing feed-forward units removes a column of ``output.dense`` and
a row of ``intermediate.dense`` each, and the model stays a standard one: every layer keeps the
same width, so ``config.intermediate_size`` describes it and the saved directory loads, converts
and quantizes like any other. One exception, ``keep_last=True``: the last layer keeps its units,
since LiteRT bundles compute it for ``[CLS]`` alone (:func:`edgerep.workstation.models.logits_module`),
where its feed-forward block is one token's worth of MACs; the per-layer widths are then saved as
``config.ffn_layer_widths`` and the directory loads with :func:`model_from_config` /
:func:`edgerep.workstation.models.load_sequence_classifier` (plain ``from_pretrained`` expects one
width). The pruned student is then trained by distillation
(:mod:`.distill`), which recovers what the cut units carried.

Importance of unit j of a layer (a magnitude criterion in the spirit of the first-order
"Taylor" criterion of Molchanov et al., 2017, "Pruning Convolutional Neural Networks for
Resource Efficient Inference", without gradients): the mean over real tokens of the unit's
contribution to the layer output, ``E[|gelu(x W_in + b)_j|] * ||W_out[:, j]||_2``, measured on
transfer tweets. The units with the largest importance are kept, in their original order.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from edgerep.errors import ConfigError

_FFN_IN = re.compile(r"^(?P<layer>.*encoder\.layer\.\d+)\.intermediate\.dense$")


def feed_forward_blocks(model) -> list[tuple[str, Any, Any]]:
    """``(layer name, intermediate.dense, output.dense)`` of every Transformer layer of a
    BERT-style encoder (``config.model_type == "bert"``, e.g. MiniLM), in layer order.

    Raises:
        ConfigError: another architecture (MobileBERT's stacked bottleneck feed-forwards are not
            pruned here).
    """
    import torch

    if getattr(model.config, "model_type", None) != "bert":
        raise ConfigError(f"feed-forward pruning supports BERT-style encoders (model_type bert), got {model.config.model_type!r}")
    modules = dict(model.named_modules())
    blocks: list = []
    for name, module in modules.items():
        m = _FFN_IN.match(name)
        out = modules.get(f"{m['layer']}.output.dense") if m else None
        if m and isinstance(module, torch.nn.Linear) and isinstance(out, torch.nn.Linear) and out.in_features == module.out_features:
            blocks.append((m["layer"], module, out))
    return blocks


def ffn_importance(model, tokenizer, ids: list[np.ndarray], batch_size: int = 32) -> list[np.ndarray]:
    """Importance of every feed-forward unit (module docstring): one float64 [F] array per layer.

    Args:
        model: a BERT-style sequence classifier (float32, eval mode is set here).
        tokenizer: the model's :class:`edgerep.device.tokenizer.TweetTokenizer` (padding).
        ids: token ids int32 [n_tokens] per tweet (a few hundred transfer tweets suffice).
    """
    import torch

    from edgerep.workstation.inference import model_inputs

    blocks = feed_forward_blocks(model)
    modules = dict(model.named_modules())
    sums = [torch.zeros(inter.out_features, dtype=torch.float64) for _, inter, _ in blocks]
    mask_box: dict = {}
    hooks = []
    for i, (layer, _, _) in enumerate(blocks):

        def hook(_module, _inp, out, i=i):  # out: float32 [batch, seq, F], after the model's own activation
            sums[i] += (out.abs() * mask_box["mask"]).sum((0, 1)).double()

        hooks.append(modules[f"{layer}.intermediate"].register_forward_hook(hook))
    tokens = 0.0
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(ids), batch_size):
                enc = tokenizer.pad(ids[start : start + batch_size])
                inputs = model_inputs(model, enc)
                mask_box["mask"] = inputs["attention_mask"][..., None].to(torch.float32)
                tokens += float(inputs["attention_mask"].sum())
                model(**inputs)
    finally:
        for h in hooks:
            h.remove()
    return [(s / max(tokens, 1.0)).numpy() * out.weight.detach().double().norm(dim=0).numpy() for s, (_, _, out) in zip(sums, blocks)]


FFN_LAYER_WIDTHS = "ffn_layer_widths"
"""``config`` attribute: feed-forward units per layer, where they differ (:func:`prune_ffn` with
``keep_last=True``); ``config.intermediate_size`` then holds the pruned layers' width."""


def ffn_layer_widths(config) -> list[int]:
    """Feed-forward units of each encoder layer, ``[num_hidden_layers]`` ints: the saved per-layer
    widths, or ``intermediate_size`` for every layer. ``config``: a transformers config or the
    dict of its ``config.json``.

    Raises:
        KeyError, TypeError: a config without ``intermediate_size`` / ``num_hidden_layers``.
    """
    if not isinstance(config, dict):
        config = {k: getattr(config, k, None) for k in (FFN_LAYER_WIDTHS, "intermediate_size", "num_hidden_layers")}
    widths = config.get(FFN_LAYER_WIDTHS)
    return [int(w) for w in widths] if widths else [int(config["intermediate_size"])] * int(config["num_hidden_layers"])


def _cut(model, widths: list[int], keep: list) -> None:
    """Replace each layer's feed-forward block by its ``keep[i]`` units (int64 indices) where the
    width changes, and record the widths in ``model.config``."""
    from transformers.pytorch_utils import prune_linear_layer

    modules = dict(model.named_modules())
    for (layer, inter_dense, _), idx in zip(feed_forward_blocks(model), keep):
        if idx is None or len(idx) == inter_dense.out_features:
            continue
        inter, out = modules[f"{layer}.intermediate"], modules[f"{layer}.output"]
        inter.dense = prune_linear_layer(inter.dense, idx, dim=0)
        out.dense = prune_linear_layer(out.dense, idx, dim=1)
    model.config.intermediate_size = min(widths)
    if len(set(widths)) > 1:
        setattr(model.config, FFN_LAYER_WIDTHS, list(widths))
    elif hasattr(model.config, FFN_LAYER_WIDTHS):
        delattr(model.config, FFN_LAYER_WIDTHS)


def prune_ffn(model, width: int, importance: list[np.ndarray], keep_last: bool = False):
    """Keep the ``width`` most important units of every feed-forward block (in their original
    order) in place, set ``config.intermediate_size = width``; returns ``model``.

    Args:
        width: units kept per layer, 1 <= width <= the current intermediate size.
        importance: :func:`ffn_importance` of this model, float [F] per layer.
        keep_last: leave the last layer's block whole (it runs for ``[CLS]`` alone in LiteRT
            bundles: a token's worth of MACs); the widths go to ``config.ffn_layer_widths``.

    Raises:
        ConfigError: ``width`` out of range, or importance for another model.
    """
    import torch

    blocks = feed_forward_blocks(model)
    current = ffn_layer_widths(model.config)
    if not 1 <= width <= min(current):
        raise ConfigError(f"feed-forward width {width}: must be in 1..{min(current)} (the model's intermediate size)")
    if len(importance) != len(blocks) or any(len(s) != inter.out_features for s, (_, inter, _) in zip(importance, blocks)):
        raise ConfigError("feed-forward importance does not match the model's layers")
    widths = [width] * len(blocks)
    if keep_last:
        widths[-1] = current[-1]
    keep = [
        torch.as_tensor(np.sort(np.argsort(-np.asarray(score), kind="stable")[:w]), dtype=torch.long)
        for score, w in zip(importance, widths)
    ]
    _cut(model, widths, keep)
    return model


def model_from_config(config):
    """``AutoModelForSequenceClassification.from_config(config)`` with the feed-forward widths of
    :func:`ffn_layer_widths` and the head its config names (:mod:`edgerep.workstation.heads`;
    randomly initialised: load the weights after)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from edgerep.workstation.heads import with_relatedness_head

    widths = ffn_layer_widths(config)
    if len(set(widths)) == 1:
        return with_relatedness_head(AutoModelForSequenceClassification.from_config(config))
    full = config.__class__.from_dict(config.to_dict())
    delattr(full, FFN_LAYER_WIDTHS)
    full.intermediate_size = max(widths)
    model = AutoModelForSequenceClassification.from_config(full)
    _cut(model, widths, [torch.arange(w) for w in widths])
    return with_relatedness_head(model)


__all__ = ["FFN_LAYER_WIDTHS", "feed_forward_blocks", "ffn_importance", "ffn_layer_widths", "model_from_config", "prune_ffn"]
