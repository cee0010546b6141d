"""Post-training quantization of a float32 model: ``ai_edge_quantizer`` recipes for LiteRT (see
:data:`edgerep.registry.RECIPES`) and ``onnxruntime.quantization.quantize_dynamic`` for ONNX
Runtime; the representative dataset for full-integer quantization. Heavy: ai-edge-quantizer,
onnxruntime.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgerep.device.tokenizer import TweetTokenizer
from edgerep.errors import ConfigError
from edgerep.io import atomic_write_bytes
from edgerep.log import native_output_captured
from edgerep.registry import RECIPES, Backend, Quantization, Recipe, check_combinations


def _build_recipe(spec: Recipe):
    """The ``ai_edge_quantizer`` recipe object of ``spec``."""
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe, recipe_manager

    if spec.recipe == "weight_only_float16":
        rm = recipe_manager.RecipeManager()
        rm.add_weight_only_config(
            regex=".*",
            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            num_bits=16,
            algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING,
        )
        return rm.get_quantization_recipe()
    if spec.recipe == "mixed_emb4_dynamic_wi8":
        # Per-op recipe (ai_edge_quantizer RecipeManager). The embedding table takes the *dynamic*
        # int4 rule: the EMBEDDING_LOOKUP kernel reads int4 rows directly. A weight-only int4 rule
        # inserts a DEQUANTIZE op that materializes the whole float32 table at the first inference
        # (measured +51 MB RSS for MiniLM's 30,522 x 384 table).
        rm = recipe_manager.RecipeManager()
        rm.add_dynamic_config(regex=".*", operation_name=qtyping.TFLOperationName.EMBEDDING_LOOKUP, num_bits=4)
        rm.add_dynamic_config(regex=".*", operation_name=qtyping.TFLOperationName.FULLY_CONNECTED, num_bits=8)
        return _float_token_types(rm).get_quantization_recipe()
    if spec.recipe == "dynamic_wi4_afp32":
        rm = recipe_manager.RecipeManager()
        rm.add_dynamic_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=4)
        return _float_token_types(rm).get_quantization_recipe()
    assert spec.recipe is not None  # float32 is not quantized
    return getattr(recipe, spec.recipe)()


#: Scope (litert-torch tensor name) of the segment (token-type) embedding lookup of BERT-family
#: encoders (``BertEmbeddings.token_type_embeddings``, ``MobileBertEmbeddings`` alike).
TOKEN_TYPE_SCOPE = r"token_type_embeddings"


def _float_token_types(rm):
    """Keep the segment-embedding table (2 x hidden: 3 KB in float32) out of an int4 rule. Per-row
    int4 leaves 15 levels for each of its two rows, an error added to every token of every tweet:
    it was most of the int4 variants' logit error (the 3-layer student, mean |Δlogit| vs PyTorch
    0.17 with it in int4; the word table's int4 lookup alone reproduced PyTorch's rows exactly).
    The ai_edge_quantizer rule added last wins for the scopes it matches."""
    from ai_edge_quantizer import algorithm_manager, qtyping

    rm.add_quantization_config(
        regex=TOKEN_TYPE_SCOPE,
        operation_name=qtyping.TFLOperationName.EMBEDDING_LOOKUP,
        algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE,
    )
    return rm


def quantize_tflite(
    float_path: str | os.PathLike,
    mode: Quantization,
    out_path: str | os.PathLike,
    representative: dict[str, list[dict[str, np.ndarray]]] | None = None,
) -> Path:
    """Apply the ``ai_edge_quantizer`` recipe of ``mode`` to a float32 ``.tflite``.

    Args:
        float_path: float32 model from :func:`convert_float32`.
        mode: quantization mode (not fp32).
        out_path: destination (written atomically).
        representative: for full-integer int8, the representative dataset per signature
            (:func:`representative_dataset`).

    Raises:
        ConfigError: ``mode`` is fp32, or calibration data is missing for a calibrated recipe.
    """
    from ai_edge_quantizer import quantizer

    spec = RECIPES[mode]
    if spec.recipe is None:
        raise ConfigError(f"{mode.value} is not a quantization recipe")
    with native_output_captured():
        q = quantizer.Quantizer(str(float_path))
        q.load_quantization_recipe(_build_recipe(spec))
    calibration = None
    if spec.calibrated:
        if not representative or not all(representative.values()):
            raise ConfigError(f"{mode.value} needs a representative dataset (calibration tweets)")
        with native_output_captured():
            calibration = q.calibrate(representative, num_threads=os.cpu_count() or 1)
    with native_output_captured():
        result = q.quantize(calibration, enable_progress_report=False)
    return atomic_write_bytes(out_path, bytes(result.quantized_model))


def quantize_onnx(float_path: str | os.PathLike, mode: Quantization, out_path: str | os.PathLike) -> Path:
    """ONNX Runtime dynamic int8 quantization: ``quantize_dynamic`` with signed int8 per-channel
    weights (per-channel as in Optimum's ``AutoQuantizationConfig`` presets; per-tensor weights
    lose ~10% label agreement on MiniLM).

    Raises:
        ConfigError: a mode ONNX Runtime is not offered for here.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    check_combinations(Backend.ONNXRUNTIME, [mode])
    if mode is not Quantization.DYNAMIC_INT8:
        raise ConfigError(f"{mode.value} is not an ONNX Runtime quantization")
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    try:
        with native_output_captured():
            quantize_dynamic(str(float_path), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_path


def representative_dataset(
    tokenizer_json: str | os.PathLike,
    max_seq_len: int,
    texts: Sequence[str],
    buckets: Sequence[int] = (),
    batch_size: int = 1,
    entities=None,
) -> dict[str, list[dict[str, np.ndarray]]]:
    """Calibration inputs per signature: ``{signature: [{"input_ids", "attention_mask"}, ...]}``,
    int32 [1, L] each, normalized and tokenized as on the device. With buckets every signature
    ``seq_<L>`` sees every tweet (truncated or padded to L), so all of its tensors get ranges.
    ``entities``: the texts' entity names for an entity-conditioned model (``None`` otherwise)."""
    enc = TweetTokenizer(tokenizer_json, max_seq_len, entity_conditioned=entities is not None)
    out = {}
    for width in buckets or (max_seq_len,):
        e = enc.encode(list(texts), pad_to=width, entities=entities)
        key = f"seq_{width}" if buckets else "serving_default"
        out[key] = [{"input_ids": e.input_ids[i : i + 1], "attention_mask": e.attention_mask[i : i + 1]} for i in range(len(texts))]
    if batch_size > 1:
        e = enc.encode(list(texts), pad_to=max_seq_len, entities=entities)
        starts = range(0, max(1, len(texts) - batch_size + 1), batch_size)
        out[f"batch_{batch_size}"] = [
            {
                "input_ids": np.resize(e.input_ids[s : s + batch_size], (batch_size, max_seq_len)),
                "attention_mask": np.resize(e.attention_mask[s : s + batch_size], (batch_size, max_seq_len)),
            }
            for s in starts
        ]
    return out


def strip_tensor_names(path: str | os.PathLike) -> tuple[int, int]:
    """Rewrite a ``.tflite`` file with short tensor names (``t<i>``), like the TFLite converter's
    ``strip_debug_info``: litert-torch names every tensor after its full module path (hundreds of
    characters, repeated in every signature's subgraph), which is ~12% of a 6-layer MiniLM file.
    Signature inputs and outputs keep their names; buffers stored after the FlatBuffer (offset
    and size, as ai_edge_quantizer writes them) are moved inline. Written atomically.

    Returns:
        ``(bytes before, bytes after)``.

    Source: the TFLite schema (``schema_py_generated`` shipped with ai-edge-litert; ``Buffer``
    ``offset``/``size`` for data outside the FlatBuffer).
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    path = Path(path)
    raw = path.read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(raw, 0))
    for b in model.buffers or []:
        if getattr(b, "offset", 0) and b.offset > 1:
            b.data = np.frombuffer(raw[b.offset : b.offset + b.size], dtype=np.uint8)
            b.offset, b.size = 0, 0
    for sg in model.subgraphs or []:
        keep = set(np.atleast_1d(sg.inputs).tolist()) | set(np.atleast_1d(sg.outputs).tolist())
        for i, t in enumerate(sg.tensors or []):
            if i not in keep:
                t.name = f"t{i}".encode()
    builder = flatbuffers.Builder(len(raw))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    atomic_write_bytes(path, bytes(builder.Output()))
    return len(raw), path.stat().st_size
