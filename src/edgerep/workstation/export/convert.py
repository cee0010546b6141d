"""Conversion of a torch sequence classifier to a float32 LiteRT FlatBuffer (``litert_torch``)
or to ONNX (``torch.onnx``); heavy: torch, litert-torch.

litert-torch's own PT2E dynamic int8 writes an EMBEDDING_LOOKUP with a zero point that LiteRT 2.3
refuses to load, so quantized variants are made from the float32 file by
:mod:`edgerep.workstation.export.quantize` instead.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from edgerep.log import native_output_captured


def convert_float32(
    model,
    max_seq_len: int,
    out_path: str | os.PathLike,
    buckets: Sequence[int] = (),
    batch_size: int = 1,
    sep_id: int | None = None,
    cls_only: bool = True,
) -> Path:
    """Convert a torch sequence classifier to a float32 LiteRT FlatBuffer.

    Args:
        model: HF ``*ForSequenceClassification`` in eval mode.
        max_seq_len: static sequence length of the inputs.
        out_path: destination ``.tflite`` (written atomically).
        buckets: one signature ``seq_<L>`` per length (weights shared); empty for a single
            ``serving_default`` signature at ``max_seq_len``.
        batch_size: when > 1, one more signature ``batch_<B>`` with inputs [B, max_seq_len].
        sep_id: separator id of an entity-conditioned model (segment ids computed in the graph,
            :func:`edgerep.workstation.models.logits_module`); ``None`` for single tweets.
        cls_only: compute the last encoder layer for ``[CLS]`` only where the architecture
            allows it (BERT-style; same logits, fewer MACs: :func:`~edgerep.workstation.models.logits_module`).

    Returns:
        ``out_path``; each signature has inputs ``input_ids``, ``attention_mask`` int32 [1, L]
        and output ``logits`` float32 [1, num_labels].
    """
    import litert_torch
    import torch

    from edgerep.workstation.models import logits_module

    wrapped = logits_module(model, named_output=True, sep_id=sep_id, cls_only=cls_only)

    def sample(length: int, batch: int = 1) -> dict:
        return {
            "input_ids": torch.zeros((batch, length), dtype=torch.int32),
            "attention_mask": torch.ones((batch, length), dtype=torch.int32),
        }

    if buckets or batch_size > 1:
        converter = litert_torch.Converter()
        for length in buckets:
            converter.signature(f"seq_{length}", wrapped, sample_kwargs=sample(length))
        if not buckets:
            converter.signature("serving_default", wrapped, sample_kwargs=sample(max_seq_len))
        if batch_size > 1:
            converter.signature(f"batch_{batch_size}", wrapped, sample_kwargs=sample(max_seq_len, batch_size))
        with native_output_captured():
            edge_model = converter.convert()
    else:
        with native_output_captured():
            edge_model = litert_torch.convert(wrapped, (), sample_kwargs=sample(max_seq_len))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".tflite", dir=out_path.parent)
    os.close(fd)
    try:
        with native_output_captured():
            edge_model.export(tmp)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path


def convert_onnx(model, max_seq_len: int, out_path: str | os.PathLike, sep_id: int | None = None, cls_only: bool = False) -> Path:
    """Export a torch sequence classifier to ONNX (opset 17, TorchScript exporter); ``sep_id`` and
    ``cls_only`` as in :func:`convert_float32` (default ``False``: the model's own graph, what
    ``torch.onnx`` / optimum export for ONNX Runtime users).

    Inputs ``input_ids``/``attention_mask`` int32 [batch, seq_len] (dynamic axes), output
    ``logits`` float32 [batch, num_labels]; written atomically.
    """
    import torch

    from edgerep.workstation.models import logits_module

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=out_path.parent)
    os.close(fd)
    sample = (torch.zeros((1, max_seq_len), dtype=torch.int32), torch.ones((1, max_seq_len), dtype=torch.int32))
    try:
        with native_output_captured():
            torch.onnx.export(
                logits_module(model, sep_id=sep_id, cls_only=cls_only),
                sample,
                tmp,
                input_names=["input_ids", "attention_mask"],
                output_names=["logits"],
                dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, "logits": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path
