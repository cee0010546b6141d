"""Export of a fine-tuned model to validated bundles, one per quantization mode (heavy: torch,
litert-torch, ai-edge-quantizer; ONNX Runtime for that backend).

Steps per bundle: the float32 model is converted once (:mod:`.convert`), each mode is made from
it (:mod:`.quantize`), LiteRT tensor names are shortened (:func:`.quantize.strip_tensor_names`), the bundle is assembled under a temporary name (model file, tokenizer,
manifest), the on-device runtime (:class:`edgerep.device.runtime.PolarityClassifier`)
classifies real validation tweets with it, and its logits are compared with PyTorch's on the same
inputs (:mod:`.validate`). A failure raises :class:`~edgerep.errors.ExportValidationError` and
leaves no bundle behind.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from edgerep.data.select import Samples
from edgerep.device.manifest import Manifest, TensorSpec
from edgerep.device.text import NORMALIZATION_VERSION
from edgerep.device.tokenizer import TweetTokenizer
from edgerep.errors import BundleError, ConfigError, ExportValidationError
from edgerep.io import atomic_directory, atomic_write_json, sha256_file, sha256_tree
from edgerep.log import log
from edgerep.registry import (
    LOGITS_OUTPUT,
    MANIFEST_FILE,
    MB,
    MODEL_FILES,
    RECIPES,
    TOKENIZER_FILE,
    Backend,
    Quantization,
    bundle_name,
    check_combinations,
)
from edgerep.workstation.export.convert import convert_float32, convert_onnx
from edgerep.workstation.export.quantize import quantize_onnx, quantize_tflite, representative_dataset, strip_tensor_names
from edgerep.workstation.export.validate import judge
from edgerep.workstation.models import GRAPH_CLS_ONLY, GRAPH_FULL, cls_only_supported


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


@dataclass(frozen=True)
class ExportResult:
    """One exported bundle: ``mode``, ``path``, ``size_mb`` (the model file, MB = 10^6 bytes), ``validation``."""

    mode: str
    path: str
    size_mb: float
    validation: dict

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Source:
    """The fine-tuned model being exported: torch model, labels, sequence length, tokenizer,
    reference logits on the validation tweets, and the manifest's ``source`` entry."""

    model_dir: Path
    model: object
    labels: tuple[str, ...]
    max_seq_len: int
    tokenizer_json: Path
    samples: Samples
    reference: np.ndarray
    info: dict
    entry: dict

    @property
    def entity_conditioned(self) -> bool:
        return bool(self.info.get("entity_conditioned", False))

    @property
    def entities(self):
        """The validation tweets' entities as the tokenizer and runtime take them."""
        return self.samples.entities_for(self.entity_conditioned)

    @property
    def sep_id(self) -> int | None:
        """Separator id for the in-graph segment ids of an entity-conditioned model, else ``None``."""
        return TweetTokenizer(self.tokenizer_json, self.max_seq_len, True).sep_id if self.entity_conditioned else None


def _as_samples(tweets: Samples | Sequence[str]) -> Samples:
    return tweets if isinstance(tweets, Samples) else Samples(list(tweets))


def _load_source(model_dir: Path, validation: Samples) -> _Source:
    from edgerep.workstation.inference import torch_logits
    from edgerep.workstation.models import count_parameters, load_finetuned

    model, info = load_finetuned(model_dir)
    max_seq_len = int(info["max_seq_len"])
    tok_json = model_dir / TOKENIZER_FILE
    conditioned = bool(info.get("entity_conditioned", False))
    reference = torch_logits(
        model,
        TweetTokenizer(tok_json, max_seq_len, conditioned),
        validation.texts,
        pad_to=max_seq_len,
        entities=validation.entities_for(conditioned),
    )
    entry = {
        "path": str(model_dir),
        "model": info.get("source_model"),
        "architecture": type(model).__name__,
        "model_type": model.config.model_type,
        "parameters": count_parameters(model),
        "checkpoint_sha256": sha256_tree(model_dir),
        "validation": info.get("validation"),
    }
    return _Source(model_dir, model, tuple(info["labels"]), max_seq_len, tok_json, validation, reference, info, entry)


def export_bundles(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    modes: Sequence[Quantization] = (Quantization.FP32, Quantization.DYNAMIC_INT8),
    validation_texts: Samples | Sequence[str] = (),
    overwrite: bool = False,
    calibration_texts: Samples | Sequence[str] = (),
    strict: bool = True,
    backend: Backend = Backend.LITERT,
    buckets: Sequence[int] | None = None,
    batch_size: int = 8,
    cls_only: bool | None = None,
) -> list[ExportResult]:
    """Export a fine-tuned model directory to one bundle per quantization mode.

    Args:
        model_dir: output of :func:`edgerep.workstation.train.train` (HF weights + tokenizer +
            edgerep_model.json).
        out_dir: bundles are written to ``out_dir/<bundle name>/`` (:func:`edgerep.registry.bundle_name`).
        modes: quantization modes.
        validation_texts: tweets to validate on (>= 1; the run uses the validation split):
            :class:`~edgerep.data.Samples` (texts with entity names, needed for an
            entity-conditioned model) or plain texts.
        overwrite: replace existing bundles; otherwise existing valid ones are kept.
        calibration_texts: representative dataset for full-integer int8 (training tweets,
            never the validation ones), like ``validation_texts``.
        strict: raise on a validation failure (no bundle written); with ``False`` the bundle is
            written with ``validation.passed = false`` and reported (the quantization matrix).
        backend: ``litert`` (default) or ``onnxruntime``.
        buckets: sequence-length buckets (``None``: :func:`default_buckets`; ``()``: pad every
            tweet to ``max_seq_len``).
        batch_size: size of the extra batched LiteRT signature (1: none).
        cls_only: compute the last encoder layer for ``[CLS]`` only (same logits, fewer MACs;
            BERT-style models, :func:`edgerep.workstation.models.logits_module`); ``None``: yes
            for LiteRT, no for ONNX Runtime (the graph ``torch.onnx``/optimum users get). The
            manifest's ``source.graph`` records it (``cls-only-last-layer`` or ``full``).

    Returns:
        One :class:`ExportResult` per mode.

    Raises:
        ModelLoadError: ``model_dir`` is not a fine-tuned model. ConfigError: no validation
            texts, bad buckets or batch size, an unsupported backend/mode combination.
        ExportValidationError: a bundle disagrees with PyTorch beyond its recipe's tolerance
            (that bundle is not written).
    """
    if not validation_texts:
        raise ConfigError("export needs at least one validation tweet to check the converted model")
    check_combinations(backend, modes)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    calibration_texts = _as_samples(calibration_texts)
    src = _load_source(Path(model_dir), _as_samples(validation_texts))
    if cls_only is None:
        cls_only = backend is Backend.LITERT
    src.entry["graph"] = GRAPH_CLS_ONLY if cls_only and cls_only_supported(src.model) else GRAPH_FULL
    buckets = default_buckets(src.max_seq_len) if buckets is None else tuple(buckets)
    if buckets and buckets[-1] != src.max_seq_len:
        raise ConfigError(f"buckets {list(buckets)} must end at the model's max_seq_len {src.max_seq_len}")
    out_dir = Path(out_dir)
    model_file = MODEL_FILES[backend]
    results: list[ExportResult] = []
    with tempfile.TemporaryDirectory(prefix="edgerep-export-") as work:
        float_path = Path(work) / f"fp32-{model_file}"
        for mode in modes:
            target = out_dir / bundle_name(backend, mode)
            kept = (
                None
                if overwrite or not target.exists()
                else _existing_bundle(target, src.entry["checkpoint_sha256"], strict, buckets, batch_size, src.entry["graph"])
            )
            if kept is not None:
                log(f"[green]export[/]: {target} exists and matches {src.model_dir}, keeping it")
                results.append(ExportResult(target.name, str(target), _mb(target / kept.model_file), kept.validation))
                continue
            if not float_path.exists():
                _float_model(src, backend, out_dir, float_path, buckets, batch_size, overwrite)
            results.append(_write_bundle(src, backend, mode, float_path, target, buckets, batch_size, calibration_texts, strict))
    return results


def _float_model(
    src: _Source, backend: Backend, out_dir: Path, float_path: Path, buckets: tuple[int, ...], batch_size: int, overwrite: bool
) -> None:
    """The float32 model of ``src`` at ``float_path``: copied from a validated fp32 bundle of the
    same checkpoint and shape when one exists, else converted."""
    existing = out_dir / bundle_name(backend, Quantization.FP32)
    if (
        not overwrite
        and _existing_bundle(existing, src.entry["checkpoint_sha256"], True, buckets, batch_size, src.entry["graph"]) is not None
    ):
        shutil.copy2(existing / MODEL_FILES[backend], float_path)
    elif backend is Backend.LITERT:
        log(f"export: converting {src.model_dir} to float32 LiteRT (length buckets {list(buckets) or [src.max_seq_len]})")
        convert_float32(
            src.model, src.max_seq_len, float_path, buckets, batch_size, sep_id=src.sep_id, cls_only=src.entry["graph"] == GRAPH_CLS_ONLY
        )
    else:
        log(f"export: converting {src.model_dir} to float32 ONNX")
        convert_onnx(src.model, src.max_seq_len, float_path, sep_id=src.sep_id, cls_only=src.entry["graph"] == GRAPH_CLS_ONLY)


def _write_bundle(
    src: _Source,
    backend: Backend,
    mode: Quantization,
    float_path: Path,
    target: Path,
    buckets: tuple[int, ...],
    batch_size: int,
    calibration_texts: Samples,
    strict: bool,
) -> ExportResult:
    """Quantize, assemble, validate and (atomically) write one bundle."""
    from edgerep.device.runtime import PolarityClassifier

    spec = RECIPES[mode]
    model_file = MODEL_FILES[backend]
    with atomic_directory(target, overwrite=True) as tmp:
        recipe_name = _quantize(src, backend, mode, float_path, tmp / model_file, buckets, batch_size, calibration_texts)
        if backend is Backend.LITERT:
            strip_tensor_names(tmp / model_file)
        shutil.copy2(src.tokenizer_json, tmp / TOKENIZER_FILE)
        manifest = _manifest(src, backend, mode, tmp, recipe_name, buckets, batch_size, len(calibration_texts) if spec.calibrated else 0)
        atomic_write_json(tmp / MANIFEST_FILE, manifest.to_dict())
        validation = judge(src.reference, PolarityClassifier(tmp).logits(src.samples.texts, entities=src.entities), spec.tolerance)
        if not validation["passed"] and strict:
            raise ExportValidationError(
                f"{target.name} bundle disagrees with the PyTorch model on {len(src.samples)} validation tweets: "
                f"max |logit diff| {validation['max_abs_logit_diff']:.4g} (allowed {spec.tolerance.max_abs_logit:g}), "
                f"label agreement {validation['label_agreement']:.2%} (required {spec.tolerance.min_agreement:.1%}); "
                "no bundle written"
            )
        atomic_write_json(tmp / MANIFEST_FILE, {**manifest.to_dict(), "validation": validation})
    size = _mb(target / model_file)
    log(
        f"[{'green' if validation['passed'] else 'red'}]export[/]: {target} ({size:.1f} MB), "
        f"{'' if validation['passed'] else 'FAILED validation, '}max |logit diff| {validation['max_abs_logit_diff']:.4f}, "
        f"label agreement {validation['label_agreement']:.2%} on {len(src.samples)} tweets"
    )
    return ExportResult(target.name, str(target), size, validation)


def _quantize(
    src: _Source,
    backend: Backend,
    mode: Quantization,
    float_path: Path,
    out_file: Path,
    buckets: tuple[int, ...],
    batch_size: int,
    calibration_texts: Samples,
) -> str | None:
    """Write the model file of one quantization to ``out_file``; return the recipe's name (``None``
    for a float model, copied as it is)."""
    spec = RECIPES[mode]
    if spec.recipe is None:
        shutil.copy2(float_path, out_file)
        return None
    if backend is Backend.ONNXRUNTIME:
        log("export: quantizing with onnxruntime.quantization.quantize_dynamic (QInt8, per channel)")
        quantize_onnx(float_path, mode, out_file)
        return "onnxruntime.quantization:quantize_dynamic(weight_type=QInt8, per_channel=True)"
    log(f"export: quantizing with ai_edge_quantizer recipe {spec.recipe}")
    rep = None
    if spec.calibrated:
        entities = calibration_texts.entities_for(src.entity_conditioned)
        rep = representative_dataset(src.tokenizer_json, src.max_seq_len, calibration_texts.texts, buckets, batch_size, entities=entities)
    quantize_tflite(float_path, mode, out_file, rep)
    return f"ai_edge_quantizer:{spec.recipe}"


def _manifest(
    src: _Source,
    backend: Backend,
    mode: Quantization,
    bundle: Path,
    recipe_name: str | None,
    buckets: tuple[int, ...],
    batch_size: int,
    representative_tweets: int,
) -> Manifest:
    """The manifest of the bundle being written in ``bundle`` (its files already there)."""
    model_file = MODEL_FILES[backend]
    return Manifest(
        labels=src.labels,
        max_seq_len=src.max_seq_len,
        inputs=(TensorSpec("input_ids", "int32", (1, src.max_seq_len)), TensorSpec("attention_mask", "int32", (1, src.max_seq_len))),
        output=TensorSpec(LOGITS_OUTPUT, "float32", (1, len(src.labels))),
        quantization={
            "mode": mode.value,
            "recipe": recipe_name,
            "description": RECIPES[mode].description,
            "representative_tweets": representative_tweets,
        },
        normalization_version=NORMALIZATION_VERSION,
        model_sha256=sha256_file(bundle / model_file),
        tokenizer_sha256=sha256_file(bundle / TOKENIZER_FILE),
        source=src.entry,
        tools=tool_versions(),
        split=dict(src.info.get("split", {})),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        backend=backend.value,
        model_file=model_file,
        buckets=buckets,
        batch_size=batch_size,
        entity_conditioned=src.entity_conditioned,
    )


def _existing_bundle(
    path: Path, checkpoint_sha256: str, strict: bool, buckets: Sequence[int] = (), batch_size: int = 1, graph: str = GRAPH_FULL
) -> Manifest | None:
    """The manifest of a complete, validated bundle at ``path`` exported from this checkpoint
    (with ``strict``, one that passed validation) with the same buckets, batch signature and
    ``graph`` (a manifest without ``source.graph`` means ``full``).

    Returns ``None`` when there is none or it is unusable (it is then rebuilt).

    Raises:
        ConfigError: ``path`` holds a valid bundle of another checkpoint (use ``overwrite``).
    """
    try:
        m = Manifest.read(path)
    except BundleError:
        return None
    if not (path / m.model_file).is_file() or sha256_file(path / m.model_file) != m.model_sha256:
        return None
    if (
        "passed" not in m.validation
        or (strict and not m.validation["passed"])
        or tuple(m.buckets) != tuple(buckets)
        or m.batch_size != batch_size
    ):
        return None
    if m.source.get("graph", GRAPH_FULL) != graph:
        return None
    if m.source.get("checkpoint_sha256") != checkpoint_sha256:
        raise ConfigError(f"{path}: bundle was exported from another checkpoint; pass --overwrite to replace it")
    return m


def _mb(path: Path) -> float:
    return round(path.stat().st_size / MB, 3)
