"""Conversion of a fine-tuned model to LiteRT bundles, with post-training quantization and
validation against the PyTorch source (heavy: torch, litert-torch, ai-edge-quantizer).

Path: ``litert_torch.convert`` writes a float32 FlatBuffer with static inputs
``input_ids``/``attention_mask`` int32 [1, max_seq_len]; quantized variants are produced from
that file by ``ai_edge_quantizer`` recipes. (litert-torch's own PT2E dynamic int8 writes an
EMBEDDING_LOOKUP with a zero point that LiteRT 2.3 refuses to load, so it is not used.)

Every bundle is validated before it is written: the runtime (:class:`edgerep.runtime.PolarityClassifier`)
classifies real validation tweets and its logits are compared with PyTorch's on the same
padded inputs. A recipe's :class:`Tolerance` decides; a failure raises
:class:`~edgerep.errors.ExportValidationError` and leaves no bundle behind.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from enum import Enum, unique
from importlib import metadata
from pathlib import Path
from typing import Sequence

import numpy as np

from edgerep.errors import ConfigError, ExportValidationError
from edgerep.io import atomic_directory, atomic_write_json, sha256_file, sha256_tree
from edgerep.manifest import MANIFEST_FILE, TOKENIZER_FILE, Manifest, TensorSpec
from edgerep.progress import log
from edgerep.text import NORMALIZATION_VERSION
from edgerep.tokenization import Encoder


@unique
class Quantization(str, Enum):
    """Post-training quantization modes of a bundle (the paper's four, plus int4 weights)."""

    FP32 = "fp32"
    FP16 = "fp16"
    DYNAMIC_INT8 = "dynamic-int8"
    INT8 = "int8"
    INT4_WEIGHTS = "int4-weights"


@dataclass(frozen=True)
class Tolerance:
    """Pass/fail thresholds of export validation against the PyTorch float model.

    Attributes:
        max_abs_logit: largest allowed |logit_litert - logit_torch| over all tweets and classes.
        min_agreement: smallest allowed share of tweets with the same arg-max label, in [0, 1].
    """

    max_abs_logit: float
    min_agreement: float


@dataclass(frozen=True)
class Recipe:
    """A named quantization recipe.

    Attributes:
        mode: the :class:`Quantization` it implements.
        recipe: name of the ``ai_edge_quantizer`` recipe (``None``: no quantization).
        description: what is quantized, for tables and manifests.
        tolerance: validation thresholds. float32 conversion must be near-exact; the others are
            allowed the error of their number format (fp16: 11-bit mantissa; int8/int4:
            per-channel weights; full-integer int8 also quantizes every activation with
            min/max ranges from the representative dataset).
        calibrated: needs a representative dataset (full-integer quantization).
    """

    mode: Quantization
    recipe: str | None
    description: str
    tolerance: Tolerance
    calibrated: bool = False


RECIPES: dict[Quantization, Recipe] = {
    Quantization.FP32: Recipe(Quantization.FP32, None, "float32 weights and activations", Tolerance(1e-3, 0.995)),
    Quantization.FP16: Recipe(
        Quantization.FP16, "weight_only_float16", "float16 weights (float casting), float32 compute", Tolerance(0.05, 0.99)
    ),
    Quantization.DYNAMIC_INT8: Recipe(
        Quantization.DYNAMIC_INT8,
        "dynamic_wi8_afp32",
        "dynamic-range quantization: int8 per-channel weights, activations quantized on the fly",
        Tolerance(1.0, 0.95),
    ),
    Quantization.INT8: Recipe(
        Quantization.INT8,
        "static_wi8_ai8",
        "full-integer quantization: int8 weights and int8 activations calibrated on a representative dataset",
        Tolerance(2.0, 0.85),
        calibrated=True,
    ),
    Quantization.INT4_WEIGHTS: Recipe(
        Quantization.INT4_WEIGHTS,
        "weight_only_wi4_afp32",
        "int4 per-channel weights (weight-only, dequantized to float32 for compute)",
        Tolerance(2.0, 0.85),
    ),
}


@unique
class Backend(str, Enum):
    """Inference engines a bundle can target."""

    LITERT = "litert"
    ONNXRUNTIME = "onnxruntime"


#: Quantization modes each backend supports. ONNX Runtime is the comparison path that users of
#: Hugging Face Optimum take: ``torch.onnx.export`` then ``onnxruntime.quantization.quantize_dynamic``.
BACKEND_MODES: dict[Backend, tuple[Quantization, ...]] = {
    Backend.LITERT: tuple(Quantization),
    Backend.ONNXRUNTIME: (Quantization.FP32, Quantization.DYNAMIC_INT8),
}

#: Model file name of a bundle per backend.
MODEL_FILES: dict[Backend, str] = {Backend.LITERT: "model.tflite", Backend.ONNXRUNTIME: "model.onnx"}


def bundle_name(backend: Backend, mode: Quantization) -> str:
    """Directory name of a bundle: ``dynamic-int8`` for LiteRT, ``onnx-dynamic-int8`` for ONNX Runtime."""
    return mode.value if backend is Backend.LITERT else f"onnx-{mode.value}"


def parse_backend(name: str) -> Backend:
    """Parse a backend name.

    Raises:
        ConfigError: unknown name; the message lists the valid ones.
    """
    try:
        return Backend(name)
    except ValueError:
        raise ConfigError(f"unknown backend {name!r}; valid: {', '.join(b.value for b in Backend)}") from None


def check_combinations(backend: Backend, modes: Sequence[Quantization]) -> None:
    """Refuse quantization modes the backend does not support.

    Raises:
        ConfigError: listing the valid modes of that backend.
    """
    bad = [m.value for m in modes if m not in BACKEND_MODES[backend]]
    if bad:
        valid = ", ".join(m.value for m in BACKEND_MODES[backend])
        raise ConfigError(f"{backend.value} does not support {', '.join(bad)}; valid for {backend.value}: {valid}")


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
    return getattr(recipe, spec.recipe)()


def parse_quantizations(spec: str | Sequence[str]) -> list[Quantization]:
    """Parse ``"fp32,dynamic-int8"`` (or ``"all"``) into modes, in registry order.

    Raises:
        ConfigError: an unknown name; the message lists the valid ones.
    """
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    valid = [q.value for q in Quantization]
    if not names:
        raise ConfigError(f"no quantization given; valid: {', '.join(valid)}, all")
    if "all" in names:
        return list(Quantization)
    bad = [n for n in names if n not in valid]
    if bad:
        raise ConfigError(f"unknown quantization {', '.join(map(repr, bad))}; valid: {', '.join(valid)}, all")
    return [q for q in Quantization if q.value in names]


def tool_versions() -> dict[str, str]:
    """Versions of the packages that shape a bundle (``"missing"`` when not installed)."""
    out = {}
    for pkg in ("edgerep", "torch", "transformers", "litert-torch", "ai-edge-quantizer", "ai-edge-litert", "tokenizers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "missing"
    return out


def default_buckets(max_seq_len: int) -> tuple[int, ...]:
    """Sequence-length buckets for ``max_seq_len``: powers of two from 16 below it, then itself
    (48 -> 16, 32, 48). Tweets are short (RepLab p50 is 24 WordPiece tokens), so most run in a
    bucket well below ``max_seq_len``; attention cost grows with length."""
    out, b = [], 16
    while b < max_seq_len:
        out.append(b)
        b *= 2
    return tuple(out) + (max_seq_len,)


def parse_buckets(spec: str, max_seq_len: int) -> tuple[int, ...]:
    """``auto`` (:func:`default_buckets`), ``none`` (pad to max_seq_len) or ``16,32,48``.

    Raises:
        ConfigError: not ascending integers ending at ``max_seq_len``.
    """
    if spec == "auto":
        return default_buckets(max_seq_len)
    if spec == "none":
        return ()
    try:
        b = tuple(int(x) for x in spec.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"buckets {spec!r}: expected auto, none, or comma-separated token counts") from None
    if not b or list(b) != sorted(set(b)) or b[-1] != max_seq_len or b[0] < 2:
        raise ConfigError(f"buckets {spec!r} must ascend and end at the model's max_seq_len {max_seq_len}")
    return b


def convert_float32(model, max_seq_len: int, out_path: str | os.PathLike, buckets: Sequence[int] = (), batch_size: int = 1) -> Path:
    """Convert a torch sequence classifier to a float32 LiteRT FlatBuffer.

    Args:
        model: HF ``*ForSequenceClassification`` in eval mode.
        max_seq_len: static sequence length of the inputs.
        out_path: destination ``.tflite`` (written atomically).
        buckets: one signature ``seq_<L>`` per length (weights shared); empty for a single
            ``serving_default`` signature at ``max_seq_len``.
        batch_size: when > 1, one more signature ``batch_<B>`` with inputs [B, max_seq_len].

    Returns:
        ``out_path``; each signature has inputs ``input_ids``, ``attention_mask`` int32 [1, L]
        and output ``output_0`` float32 [1, num_labels].
    """
    import litert_torch
    import torch

    from edgerep.models import logits_module

    wrapped = logits_module(model)

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
        edge_model = converter.convert()
    else:
        edge_model = litert_torch.convert(wrapped, (), sample_kwargs=sample(max_seq_len))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".tflite", dir=out_path.parent)
    os.close(fd)
    try:
        edge_model.export(tmp)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path


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

    from edgerep.io import atomic_write_bytes

    spec = RECIPES[mode]
    if spec.recipe is None:
        raise ConfigError(f"{mode.value} is not a quantization recipe")
    q = quantizer.Quantizer(str(float_path))
    q.load_quantization_recipe(_build_recipe(spec))
    calibration = None
    if spec.calibrated:
        if not representative or not all(representative.values()):
            raise ConfigError(f"{mode.value} needs a representative dataset (calibration tweets)")
        calibration = q.calibrate(representative, num_threads=os.cpu_count() or 1)
    result = q.quantize(calibration, enable_progress_report=False)
    return atomic_write_bytes(out_path, bytes(result.quantized_model))


def convert_onnx(model, max_seq_len: int, out_path: str | os.PathLike) -> Path:
    """Export a torch sequence classifier to ONNX (opset 17, TorchScript exporter).

    Inputs ``input_ids``/``attention_mask`` int32 [batch, seq_len] (dynamic axes), output
    ``logits`` float32 [batch, num_labels]; written atomically.
    """
    import torch

    from edgerep.models import logits_module

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=out_path.parent)
    os.close(fd)
    sample = (torch.zeros((1, max_seq_len), dtype=torch.int32), torch.ones((1, max_seq_len), dtype=torch.int32))
    try:
        torch.onnx.export(
            logits_module(model), sample, tmp,
            input_names=["input_ids", "attention_mask"], output_names=["logits"],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, "logits": {0: "batch"}},
            opset_version=17, dynamo=False,
        )
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path


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
        quantize_dynamic(str(float_path), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_path


def representative_dataset(
    tokenizer_json: str | os.PathLike, max_seq_len: int, texts: Sequence[str], buckets: Sequence[int] = (), batch_size: int = 1
) -> dict[str, list[dict[str, np.ndarray]]]:
    """Calibration inputs per signature: ``{signature: [{"input_ids", "attention_mask"}, ...]}``,
    int32 [1, L] each, normalized and tokenized as on the device. With buckets every signature
    ``seq_<L>`` sees every tweet (truncated or padded to L), so all of its tensors get ranges."""
    enc = Encoder(tokenizer_json, max_seq_len)
    out = {}
    for width in buckets or (max_seq_len,):
        e = enc.encode(list(texts), pad_to=width)
        key = f"seq_{width}" if buckets else "serving_default"
        out[key] = [{"input_ids": e.input_ids[i : i + 1], "attention_mask": e.attention_mask[i : i + 1]} for i in range(len(texts))]
    if batch_size > 1:
        e = enc.encode(list(texts), pad_to=max_seq_len)
        starts = range(0, max(1, len(texts) - batch_size + 1), batch_size)
        out[f"batch_{batch_size}"] = [
            {"input_ids": np.resize(e.input_ids[s : s + batch_size], (batch_size, max_seq_len)),
             "attention_mask": np.resize(e.attention_mask[s : s + batch_size], (batch_size, max_seq_len))}
            for s in starts
        ]
    return out


def torch_logits(model, encoder: Encoder, texts: Sequence[str]) -> np.ndarray:
    """PyTorch logits float32 [len(texts), num_labels] on inputs padded to ``encoder.max_seq_len``
    (the exact tensors the LiteRT model sees)."""
    import torch

    from edgerep.models import logits_module

    wrapped = logits_module(model)
    out = []
    with torch.inference_mode():
        for s in range(0, len(texts), 64):
            enc = encoder.encode(texts[s : s + 64], pad_to=encoder.max_seq_len)
            out.append(wrapped(torch.from_numpy(enc.input_ids), torch.from_numpy(enc.attention_mask)).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, model.config.num_labels), np.float32)


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Agreement of two logit arrays float32 [n, classes].

    Returns:
        ``{"n", "max_abs_logit_diff", "mean_abs_logit_diff", "label_agreement"}``.
    """
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    return {
        "n": int(len(reference)),
        "max_abs_logit_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_logit_diff": float(diff.mean()) if diff.size else 0.0,
        "label_agreement": float((reference.argmax(-1) == candidate.argmax(-1)).mean()) if len(reference) else 1.0,
    }


@dataclass(frozen=True)
class ExportResult:
    """One exported bundle: ``mode``, ``path``, ``size_mb`` (model.tflite, 10^6 bytes), ``validation``."""

    mode: str
    path: str
    size_mb: float
    validation: dict

    def to_dict(self) -> dict:
        return asdict(self)


def export_bundles(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    modes: Sequence[Quantization] = (Quantization.FP32, Quantization.DYNAMIC_INT8),
    validation_texts: Sequence[str] = (),
    overwrite: bool = False,
    calibration_texts: Sequence[str] = (),
    strict: bool = True,
    backend: Backend = Backend.LITERT,
    buckets: Sequence[int] | None = None,
    batch_size: int = 8,
) -> list[ExportResult]:
    """Export a fine-tuned model directory to one bundle per quantization mode.

    Args:
        model_dir: output of :func:`edgerep.train.train` (HF weights + tokenizer + edgerep_model.json).
        out_dir: bundles are written to ``out_dir/<mode>/``.
        modes: quantization modes.
        validation_texts: raw tweets to validate on (>= 1; the run uses the validation split).
        overwrite: replace existing bundles; otherwise existing valid ones are kept.
        calibration_texts: representative dataset for full-integer int8 (training tweets,
            never the validation ones).
        strict: raise on a validation failure (no bundle written); with ``False`` the bundle is
            written with ``validation.passed = false`` and reported (the quantization matrix).
        backend: ``litert`` (default) or ``onnxruntime`` (bundles ``onnx-<mode>/``).
        buckets: sequence-length buckets (``None``: :func:`default_buckets`; ``()``: pad every
            tweet to ``max_seq_len``).
        batch_size: size of the extra batched LiteRT signature (1: none).

    Returns:
        One :class:`ExportResult` per mode.

    Raises:
        ModelLoadError: ``model_dir`` is not a fine-tuned model. ConfigError: no validation texts.
        ExportValidationError: a bundle disagrees with PyTorch beyond its recipe's tolerance
            (that bundle is not written).
    """
    from edgerep.models import count_parameters, load_finetuned
    from edgerep.runtime import PolarityClassifier

    if not validation_texts:
        raise ConfigError("export needs at least one validation tweet to check the converted model")
    check_combinations(backend, modes)
    model_file = MODEL_FILES[backend]
    model_dir = Path(model_dir)
    out_dir = Path(out_dir)
    model, info = load_finetuned(model_dir)
    labels = tuple(info["labels"])
    max_seq_len = int(info["max_seq_len"])
    buckets = default_buckets(max_seq_len) if buckets is None else tuple(buckets)
    if buckets and buckets[-1] != max_seq_len:
        raise ConfigError(f"buckets {list(buckets)} must end at the model's max_seq_len {max_seq_len}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    tok_json = model_dir / TOKENIZER_FILE
    encoder = Encoder(tok_json, max_seq_len)
    texts = list(validation_texts)
    reference = torch_logits(model, encoder, texts)
    source = {
        "path": str(model_dir),
        "model": info.get("source_model"),
        "architecture": type(model).__name__,
        "model_type": model.config.model_type,
        "parameters": count_parameters(model),
        "checkpoint_sha256": sha256_tree(model_dir),
        "validation": info.get("validation"),
    }
    results: list[ExportResult] = []
    with tempfile.TemporaryDirectory(prefix="edgerep-export-") as work:
        float_path = Path(work) / f"fp32-{model_file}"
        existing_fp32 = out_dir / bundle_name(backend, Quantization.FP32) / model_file
        for mode in modes:
            target = out_dir / bundle_name(backend, mode)
            if target.exists() and not overwrite:
                existing = _existing_bundle(target, source["checkpoint_sha256"], strict, buckets, batch_size)
                if existing is not None:
                    log(f"[green]export[/]: {target} exists and matches {model_dir}, keeping it")
                    results.append(ExportResult(target.name, str(target), _mb(target / existing.model_file), existing.validation))
                    continue
            if not float_path.exists():
                if not overwrite and _existing_bundle(existing_fp32.parent, source["checkpoint_sha256"], True, buckets, batch_size) is not None:
                    shutil.copy2(existing_fp32, float_path)  # the validated float32 conversion of this checkpoint
                elif backend is Backend.LITERT:
                    log(f"export: converting {model_dir} to float32 LiteRT (length buckets {list(buckets) or [max_seq_len]})")
                    convert_float32(model, max_seq_len, float_path, buckets, batch_size)
                else:
                    log(f"export: converting {model_dir} to float32 ONNX")
                    convert_onnx(model, max_seq_len, float_path)
            spec = RECIPES[mode]
            with atomic_directory(target, overwrite=True) as tmp:
                if spec.recipe is None:
                    shutil.copy2(float_path, tmp / model_file)
                    recipe_name = None
                elif backend is Backend.ONNXRUNTIME:
                    log("export: quantizing with onnxruntime.quantization.quantize_dynamic (QInt8, per channel)")
                    quantize_onnx(float_path, mode, tmp / model_file)
                    recipe_name = "onnxruntime.quantization:quantize_dynamic(weight_type=QInt8, per_channel=True)"
                else:
                    log(f"export: quantizing with ai_edge_quantizer recipe {spec.recipe}")
                    rep = representative_dataset(tok_json, max_seq_len, calibration_texts, buckets, batch_size) if spec.calibrated else None
                    quantize_tflite(float_path, mode, tmp / model_file, rep)
                    recipe_name = f"ai_edge_quantizer:{spec.recipe}"
                shutil.copy2(tok_json, tmp / TOKENIZER_FILE)
                manifest = Manifest(
                    labels=labels,
                    max_seq_len=max_seq_len,
                    inputs=(
                        TensorSpec("input_ids", "int32", (1, max_seq_len)),
                        TensorSpec("attention_mask", "int32", (1, max_seq_len)),
                    ),
                    output=TensorSpec("output_0" if backend is Backend.LITERT else "logits", "float32", (1, len(labels))),
                    quantization={
                        "mode": mode.value,
                        "recipe": recipe_name,
                        "description": spec.description,
                        "representative_tweets": len(calibration_texts) if spec.calibrated else 0,
                    },
                    normalization_version=NORMALIZATION_VERSION,
                    model_sha256=sha256_file(tmp / model_file),
                    tokenizer_sha256=sha256_file(tmp / TOKENIZER_FILE),
                    source=source,
                    tools=tool_versions(),
                    split=dict(info.get("split", {})),
                    created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    backend=backend.value,
                    model_file=model_file,
                    buckets=buckets,
                    batch_size=batch_size,
                )
                atomic_write_json(tmp / MANIFEST_FILE, manifest.to_dict())
                candidate = PolarityClassifier(tmp).logits(texts)
                validation = compare_logits(reference, candidate)
                validation["tolerance"] = asdict(spec.tolerance)
                validation["passed"] = bool(
                    validation["max_abs_logit_diff"] <= spec.tolerance.max_abs_logit
                    and validation["label_agreement"] >= spec.tolerance.min_agreement
                )
                if not validation["passed"] and strict:
                    raise ExportValidationError(
                        f"{target.name} bundle disagrees with the PyTorch model on {len(texts)} validation tweets: "
                        f"max |logit diff| {validation['max_abs_logit_diff']:.4g} (allowed {spec.tolerance.max_abs_logit:g}), "
                        f"label agreement {validation['label_agreement']:.2%} (required {spec.tolerance.min_agreement:.1%}); "
                        "no bundle written"
                    )
                manifest_d = manifest.to_dict()
                manifest_d["validation"] = validation
                atomic_write_json(tmp / MANIFEST_FILE, manifest_d)
            size = _mb(target / model_file)
            log(
                f"[{'green' if validation['passed'] else 'red'}]export[/]: {target} ({size:.1f} MB), "
                f"{'' if validation['passed'] else 'FAILED validation, '}max |logit diff| {validation['max_abs_logit_diff']:.4f}, "
                f"label agreement {validation['label_agreement']:.2%} on {len(texts)} tweets"
            )
            results.append(ExportResult(target.name, str(target), size, validation))
    return results


def _existing_bundle(path: Path, checkpoint_sha256: str, strict: bool, buckets: Sequence[int] = (), batch_size: int = 1) -> Manifest | None:
    """The manifest of a complete, validated bundle at ``path`` exported from this checkpoint
    (with ``strict``, one that passed validation).

    Returns ``None`` when there is none or it is unusable (it is then rebuilt).

    Raises:
        ConfigError: ``path`` holds a valid bundle of another checkpoint (use ``overwrite``).
    """
    from edgerep.errors import BundleError

    try:
        m = Manifest.read(path)
    except BundleError:
        return None
    if not (path / m.model_file).is_file() or sha256_file(path / m.model_file) != m.model_sha256:
        return None
    if "passed" not in m.validation or (strict and not m.validation["passed"]) or tuple(m.buckets) != tuple(buckets) or m.batch_size != batch_size:
        return None
    if m.source.get("checkpoint_sha256") != checkpoint_sha256:
        raise ConfigError(f"{path}: bundle was exported from another checkpoint; pass --overwrite to replace it")
    return m


def _mb(path: Path) -> float:
    return round(path.stat().st_size / 1e6, 3)
