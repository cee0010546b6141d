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
from typing import Callable, Sequence

import numpy as np

from edgerep.errors import ConfigError, ExportValidationError
from edgerep.io import atomic_directory, atomic_write_json, sha256_file, sha256_tree
from edgerep.manifest import MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE, Manifest, TensorSpec
from edgerep.progress import log
from edgerep.text import NORMALIZATION_VERSION
from edgerep.tokenization import Encoder


@unique
class Quantization(str, Enum):
    """Post-training quantization modes of a bundle."""

    FP32 = "fp32"
    DYNAMIC_INT8 = "dynamic-int8"


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
        recipe: dotted name of the ``ai_edge_quantizer.recipe`` function (``None``: no quantization).
        description: what is quantized, for tables and manifests.
        tolerance: validation thresholds (float32 conversion must be near-exact; dynamic-range
            int8 is allowed the error of per-channel int8 weights and per-tensor int8 activations).
    """

    mode: Quantization
    recipe: str | None
    description: str
    tolerance: Tolerance


RECIPES: dict[Quantization, Recipe] = {
    Quantization.FP32: Recipe(Quantization.FP32, None, "float32 weights and activations", Tolerance(1e-3, 0.995)),
    Quantization.DYNAMIC_INT8: Recipe(
        Quantization.DYNAMIC_INT8,
        "dynamic_wi8_afp32",
        "dynamic-range quantization: int8 per-channel weights, activations quantized on the fly",
        Tolerance(1.0, 0.95),
    ),
}


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


def convert_float32(model, max_seq_len: int, out_path: str | os.PathLike) -> Path:
    """Convert a torch sequence classifier to a float32 LiteRT FlatBuffer.

    Args:
        model: HF ``*ForSequenceClassification`` in eval mode.
        max_seq_len: static sequence length of the inputs.
        out_path: destination ``.tflite`` (written atomically).

    Returns:
        ``out_path``; signature ``serving_default`` with inputs ``input_ids``, ``attention_mask``
        int32 [1, max_seq_len] and output ``output_0`` float32 [1, num_labels].
    """
    import litert_torch
    import torch

    from edgerep.models import logits_module

    wrapped = logits_module(model)
    sample = {
        "input_ids": torch.zeros((1, max_seq_len), dtype=torch.int32),
        "attention_mask": torch.ones((1, max_seq_len), dtype=torch.int32),
    }
    edge_model = litert_torch.convert(wrapped, (), sample_kwargs=sample)
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


def quantize_tflite(float_path: str | os.PathLike, mode: Quantization, out_path: str | os.PathLike) -> Path:
    """Apply the ``ai_edge_quantizer`` recipe of ``mode`` to a float32 ``.tflite``.

    Raises:
        ConfigError: ``mode`` has no quantizer recipe (float32).
    """
    from ai_edge_quantizer import quantizer, recipe

    spec = RECIPES[mode]
    if spec.recipe is None:
        raise ConfigError(f"{mode.value} is not a quantization recipe")
    recipe_fn: Callable = getattr(recipe, spec.recipe)
    q = quantizer.Quantizer(str(float_path))
    q.load_quantization_recipe(recipe_fn())
    result = q.quantize(enable_progress_report=False)
    from edgerep.io import atomic_write_bytes

    return atomic_write_bytes(out_path, bytes(result.quantized_model))


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
) -> list[ExportResult]:
    """Export a fine-tuned model directory to one bundle per quantization mode.

    Args:
        model_dir: output of :func:`edgerep.train.train` (HF weights + tokenizer + edgerep_model.json).
        out_dir: bundles are written to ``out_dir/<mode>/``.
        modes: quantization modes.
        validation_texts: raw tweets to validate on (>= 1; the run uses the validation split).
        overwrite: replace existing bundles; otherwise existing valid ones are kept.

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
    model_dir = Path(model_dir)
    out_dir = Path(out_dir)
    model, info = load_finetuned(model_dir)
    labels = tuple(info["labels"])
    max_seq_len = int(info["max_seq_len"])
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
        float_path = Path(work) / "fp32.tflite"
        existing_fp32 = out_dir / Quantization.FP32.value / MODEL_FILE
        for mode in modes:
            target = out_dir / mode.value
            if target.exists() and not overwrite:
                try:
                    m = Manifest.read(target)
                    log(f"[green]export[/]: {target} exists ({m.quantization['mode']}), keeping it")
                    results.append(ExportResult(mode.value, str(target), _mb(target / MODEL_FILE), m.validation))
                    continue
                except Exception:
                    pass  # an unusable leftover: rebuild it
            if not float_path.exists():
                if existing_fp32.exists() and not overwrite and (out_dir / "fp32" / MANIFEST_FILE).exists():
                    shutil.copy2(existing_fp32, float_path)
                else:
                    log(f"export: converting {model_dir} to float32 LiteRT (max_seq_len {max_seq_len})")
                    convert_float32(model, max_seq_len, float_path)
            spec = RECIPES[mode]
            with atomic_directory(target, overwrite=True) as tmp:
                if spec.recipe is None:
                    shutil.copy2(float_path, tmp / MODEL_FILE)
                else:
                    log(f"export: quantizing with ai_edge_quantizer.recipe.{spec.recipe}")
                    quantize_tflite(float_path, mode, tmp / MODEL_FILE)
                shutil.copy2(tok_json, tmp / TOKENIZER_FILE)
                manifest = Manifest(
                    labels=labels,
                    max_seq_len=max_seq_len,
                    inputs=(
                        TensorSpec("input_ids", "int32", (1, max_seq_len)),
                        TensorSpec("attention_mask", "int32", (1, max_seq_len)),
                    ),
                    output=TensorSpec("output_0", "float32", (1, len(labels))),
                    quantization={"mode": mode.value, "recipe": spec.recipe and f"ai_edge_quantizer.recipe.{spec.recipe}", "description": spec.description},
                    normalization_version=NORMALIZATION_VERSION,
                    model_sha256=sha256_file(tmp / MODEL_FILE),
                    tokenizer_sha256=sha256_file(tmp / TOKENIZER_FILE),
                    source=source,
                    tools=tool_versions(),
                    split=dict(info.get("split", {})),
                    created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                )
                atomic_write_json(tmp / MANIFEST_FILE, manifest.to_dict())
                candidate = PolarityClassifier(tmp).logits(texts)
                validation = compare_logits(reference, candidate)
                validation["tolerance"] = asdict(spec.tolerance)
                validation["passed"] = bool(
                    validation["max_abs_logit_diff"] <= spec.tolerance.max_abs_logit
                    and validation["label_agreement"] >= spec.tolerance.min_agreement
                )
                if not validation["passed"]:
                    raise ExportValidationError(
                        f"{mode.value} bundle disagrees with the PyTorch model on {len(texts)} validation tweets: "
                        f"max |logit diff| {validation['max_abs_logit_diff']:.4g} (allowed {spec.tolerance.max_abs_logit:g}), "
                        f"label agreement {validation['label_agreement']:.2%} (required {spec.tolerance.min_agreement:.1%}); "
                        "no bundle written"
                    )
                manifest_d = manifest.to_dict()
                manifest_d["validation"] = validation
                atomic_write_json(tmp / MANIFEST_FILE, manifest_d)
            size = _mb(target / MODEL_FILE)
            log(
                f"[green]export[/]: {target} ({size:.1f} MB), max |logit diff| {validation['max_abs_logit_diff']:.4f}, "
                f"label agreement {validation['label_agreement']:.2%} on {len(texts)} tweets"
            )
            results.append(ExportResult(mode.value, str(target), size, validation))
    return results


def _mb(path: Path) -> float:
    return round(path.stat().st_size / 1e6, 3)
