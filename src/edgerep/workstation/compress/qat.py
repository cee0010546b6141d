"""Quantization-aware training of weights (heavy: torch): the student learns with the weights the
LiteRT recipe will give it.

Post-training int4 moves a small encoder away from the model that was validated: per-row
symmetric int4 leaves 15 levels for a row of 384 values. Quantization-aware training (Jacob et
al., 2018, "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
Inference") runs every forward pass with the weights rounded to the grid the converter will use,
and passes gradients to the float weights unchanged (the straight-through estimator, Bengio et
al., 2013). After training the weights are snapped to that grid, so the exported bundle holds
the weights the model was validated with, as far as the converter leaves them (below); the
on-the-fly int8 quantization of activations remains. Measured on the 3-layer MiniLM student
(validation tweets, ``dynamic-int4``): mean |Δlogit| between bundle and PyTorch model 0.166
without, 0.068 with quantization-aware training.

The grid is ``ai_edge_quantizer``'s for its dynamic-range recipes (``uniform_quantize_tensor``:
symmetric, one scale per output channel = per row of a ``[out, in]`` fully-connected weight and
per row of the ``[vocab, hidden]`` embedding table, ``scale = max|w| / qmax``, values rounded and
clipped to ``[-2^(b-1), 2^(b-1) - 1]``, narrow ``[-127, 127]`` at 8 bits).

What the converted file holds (checked by dequantizing a 3-layer MiniLM student's int4 bundle):
the word-embedding rows, the attention output and feed-forward output projections, the pooler
and the classifier are exactly the snapped weights; the query/key/value and feed-forward input
projections are not, because the converter folds factors into them before quantizing: the
feed-forward input projection is exactly the grid of ``W diag(gamma)`` (the preceding
LayerNorm's scale), and query/key/value carry that scale and more (the attention's
``1/sqrt(d_head)`` among them). Those four of each layer's six matrices are therefore quantized
post-training as before; a fold-aware grid (``q(W diag(gamma)) diag(1/gamma)``) would close that
gap and is not done yet.
"""

from __future__ import annotations

from edgerep.errors import ConfigError
from edgerep.registry import Quantization

#: Weight bits of (the word-embedding table, every fully-connected layer) under each LiteRT recipe
#: that quantization-aware training can anticipate.
QAT_BITS: dict[Quantization, tuple[int, int]] = {
    Quantization.DYNAMIC_INT4: (4, 4),
    Quantization.DYNAMIC_INT8_EMB4: (4, 8),
    Quantization.DYNAMIC_INT8: (8, 8),
}


def qat_mode(name: str | Quantization | None) -> Quantization | None:
    """The recipe named ``name`` if quantization-aware training supports it; ``None`` for none.

    Raises:
        ConfigError: any other name (the message lists the valid ones).
    """
    if name is None or name == "" or name == "none":
        return None
    try:
        mode = Quantization(name)
    except ValueError:
        mode = None
    if mode not in QAT_BITS:
        raise ConfigError(f"quantization-aware training for {name!r}: valid: none, " + ", ".join(q.value for q in QAT_BITS))
    return mode


def fake_quantize(weight, bits: int):
    """``weight`` float32 [rows, cols] rounded per row to the symmetric ``bits``-bit grid of the
    converter (module docstring) in the forward pass; the gradient passes to ``weight`` unchanged
    (straight-through estimator). Returns float32 [rows, cols]."""
    import torch

    qmax = 2 ** (bits - 1) - 1
    qmin = -qmax if bits >= 8 else -(2 ** (bits - 1))
    scale = weight.detach().abs().amax(dim=1, keepdim=True).clamp_min(1e-9) / qmax
    q = torch.clamp(torch.round(weight.detach() / scale), qmin, qmax) * scale
    return weight + (q - weight).detach()


def quantized_weights(model, mode: Quantization) -> dict[str, int]:
    """Parameter name -> weight bits for every weight ``mode`` quantizes: the word-embedding
    table and the weight of every ``torch.nn.Linear`` (attention projections, feed-forward,
    pooler, classifier).

    Raises:
        ConfigError: the model has no word-embedding table.
    """
    import torch

    emb_bits, fc_bits = QAT_BITS[mode]
    names = {}
    for module_name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            names[f"{module_name}.weight"] = fc_bits
    emb = [n for n, _ in model.named_parameters() if n.endswith("embeddings.word_embeddings.weight")]
    if len(emb) != 1:
        raise ConfigError(f"quantization-aware training needs one word-embedding table, found {emb}")
    names[emb[0]] = emb_bits
    return names


def fake_quantized_parameters(model, bits: dict[str, int]) -> dict:
    """``{name: fake_quantize(parameter)}`` for :func:`torch.func.functional_call`: the model
    runs with grid weights while its own parameters stay float and receive the gradients."""
    params = dict(model.named_parameters())
    return {name: fake_quantize(params[name], b) for name, b in bits.items()}


def snap_to_grid(model, bits: dict[str, int]):
    """Round the weights named in ``bits`` to their grid in place (no gradient); returns
    ``model``. A snapped model exported with the same recipe keeps these weights exactly."""
    import torch

    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, b in bits.items():
            params[name].copy_(fake_quantize(params[name], b))
    return model


__all__ = ["QAT_BITS", "qat_mode", "fake_quantize", "quantized_weights", "fake_quantized_parameters", "snap_to_grid"]
