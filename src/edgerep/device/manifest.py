"""The bundle manifest: everything the runtime needs besides the weights and the tokenizer.

A bundle is a directory (the faster-whisper / optimum convention)::

    model.tflite     LiteRT FlatBuffer, signature ``serving_default``
    tokenizer.json   HF tokenizers serialization
    manifest.json    this schema

The runtime checks the manifest against the files at load time (format version, labels, the
model's SHA-256 and its input/output tensors), so a truncated model, a swapped tokenizer or a
hand-edited manifest is rejected before the first tweet.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgerep.errors import BundleError
from edgerep.registry import MANIFEST_FILE, MODEL_FILES, Backend, names

BUNDLE_FORMAT = "edgerep-bundle"
BUNDLE_FORMAT_VERSION = 1
MODEL_FILE = MODEL_FILES[Backend.LITERT]


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: ``name`` (signature key), ``dtype`` (numpy name), ``shape``."""

    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Manifest:
    """Contents of ``manifest.json``.

    Attributes:
        labels: class names in logit order.
        max_seq_len: static sequence length of the model inputs, in tokens.
        inputs: ``input_ids`` and ``attention_mask``, int32 [1, max_seq_len].
        output: ``logits`` float32 [1, len(labels)].
        quantization: ``{"mode": ..., "recipe": ...}`` (see :mod:`edgerep.workstation.export`).
        normalization_version: :data:`edgerep.device.text.NORMALIZATION_VERSION` used in training.
        model_sha256: hex SHA-256 of ``model.tflite``.
        tokenizer_sha256: hex SHA-256 of ``tokenizer.json``.
        source: source checkpoint (``name``, ``sha256``, ``architecture``, ``parameters``).
        tools: versions of the tools that built the bundle.
        validation: export validation record (max logit difference, agreement, tolerance).
        split: the training/validation split config used for the source model.
        signature: LiteRT signature key.
        created: ISO-8601 UTC time of export.
        backend: ``litert`` (``model.tflite``) or ``onnxruntime`` (``model.onnx``).
        model_file: model file name inside the bundle.
        buckets: sequence-length buckets, ascending, the last one ``max_seq_len``; a LiteRT model
            has one signature ``seq_<L>`` per bucket, and a tweet runs in the smallest bucket
            that holds it. Empty: one signature, every tweet padded to ``max_seq_len``.
        batch_size: when > 1, a LiteRT signature ``batch_<B>`` takes B tweets at once
            (int32 [B, max_seq_len]) for throughput-oriented, offline classification.
        entity_conditioned: the model reads ``[CLS] entity [SEP] tweet [SEP]`` and every request
            must name the entity (absent from a manifest: false).
    """

    labels: tuple[str, ...]
    max_seq_len: int
    inputs: tuple[TensorSpec, ...]
    output: TensorSpec
    quantization: dict[str, Any]
    normalization_version: str
    model_sha256: str
    tokenizer_sha256: str
    source: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)
    signature: str = "serving_default"
    created: str = ""
    backend: str = "litert"
    model_file: str = MODEL_FILE
    buckets: tuple[int, ...] = ()
    batch_size: int = 1
    entity_conditioned: bool = False
    format: str = BUNDLE_FORMAT
    format_version: int = BUNDLE_FORMAT_VERSION

    def to_dict(self) -> dict:
        d = asdict(self)
        d["labels"] = list(self.labels)
        d["buckets"] = list(self.buckets)
        return d

    def width_for(self, n_tokens: int) -> int:
        """Padded input length for a tweet of ``n_tokens`` tokens: the smallest bucket that holds
        it, else ``max_seq_len`` (longer tweets are truncated to it)."""
        return next((b for b in self.buckets if b >= n_tokens), self.max_seq_len)

    @property
    def batch_signature(self) -> str | None:
        """Signature key of the batched input, or ``None`` when the bundle has none."""
        return f"batch_{self.batch_size}" if self.batch_size > 1 else None

    def signature_for(self, width: int) -> str:
        """LiteRT signature key of inputs padded to ``width``."""
        return f"seq_{width}" if self.buckets else self.signature

    @classmethod
    def from_dict(cls, d: dict, where: str = MANIFEST_FILE) -> Manifest:
        """Build from parsed JSON.

        Raises:
            BundleError: a field is missing, of the wrong type, or the format is unknown.
        """
        if not isinstance(d, dict):
            raise BundleError(f"{where}: expected a JSON object")
        if d.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{where}: field 'format' is {d.get('format')!r}, expected {BUNDLE_FORMAT!r}")
        if d.get("format_version") != BUNDLE_FORMAT_VERSION:
            raise BundleError(
                f"{where}: field 'format_version' is {d.get('format_version')!r}; this edgerep reads version {BUNDLE_FORMAT_VERSION}"
            )
        try:
            inputs = tuple(TensorSpec(i["name"], i["dtype"], tuple(int(s) for s in i["shape"])) for i in d["inputs"])
            o = d["output"]
            output = TensorSpec(o["name"], o["dtype"], tuple(int(s) for s in o["shape"]))
            m = cls(
                labels=tuple(str(x) for x in d["labels"]),
                max_seq_len=int(d["max_seq_len"]),
                inputs=inputs,
                output=output,
                quantization=dict(d["quantization"]),
                normalization_version=str(d["normalization_version"]),
                model_sha256=str(d["model_sha256"]),
                tokenizer_sha256=str(d["tokenizer_sha256"]),
                source=dict(d.get("source", {})),
                tools=dict(d.get("tools", {})),
                validation=dict(d.get("validation", {})),
                split=dict(d.get("split", {})),
                signature=str(d.get("signature", "serving_default")),
                created=str(d.get("created", "")),
                backend=str(d.get("backend", "litert")),
                model_file=str(d.get("model_file", MODEL_FILE)),
                buckets=tuple(int(b) for b in d.get("buckets", ())),
                batch_size=int(d.get("batch_size", 1)),
                entity_conditioned=_flag(d.get("entity_conditioned", False), "entity_conditioned"),
            )
        except KeyError as exc:
            raise BundleError(f"{where}: required field {exc.args[0]!r} missing") from None
        except (TypeError, ValueError) as exc:
            raise BundleError(f"{where}: malformed field ({exc})") from None
        if m.backend not in {b.value for b in Backend}:
            raise BundleError(f"{where}: field 'backend' is {m.backend!r}; valid: {names(Backend)}")
        if "/" in m.model_file or m.model_file.startswith("."):
            raise BundleError(f"{where}: field 'model_file' must be a file name inside the bundle, got {m.model_file!r}")
        for spec in m.inputs:
            if spec.shape[-1] != m.max_seq_len:
                raise BundleError(f"{where}: input {spec.name!r} shape {list(spec.shape)} does not end at max_seq_len {m.max_seq_len}")
        if m.buckets and (list(m.buckets) != sorted(set(m.buckets)) or m.buckets[-1] != m.max_seq_len or m.buckets[0] < 2):
            raise BundleError(f"{where}: field 'buckets' {list(m.buckets)} must ascend and end at max_seq_len {m.max_seq_len}")
        if len(m.labels) < 2:
            raise BundleError(f"{where}: field 'labels' needs at least 2 classes, got {list(m.labels)}")
        if m.output.shape[-1] != len(m.labels):
            raise BundleError(f"{where}: output shape {m.output.shape} does not match {len(m.labels)} labels")
        return m

    @classmethod
    def read(cls, bundle_dir: str | os.PathLike) -> Manifest:
        """Read and check ``<bundle_dir>/manifest.json``.

        Raises:
            BundleError: missing, not JSON, or invalid (see :meth:`from_dict`).
        """
        path = Path(bundle_dir) / MANIFEST_FILE
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BundleError(f"{path}: manifest not found ({Path(bundle_dir)} is not an edgerep bundle)") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(d, str(path))


def _flag(value: Any, name: str) -> bool:
    """A JSON boolean field (``"false"`` as a string would be true in Python)."""
    if not isinstance(value, bool):
        raise TypeError(f"field {name!r} must be true or false, got {value!r}")
    return value
