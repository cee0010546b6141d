"""The light on-device runtime: load a bundle, classify tweets.

Imports numpy, ``tokenizers`` and ``ai_edge_litert`` only — never torch or transformers — so a
Raspberry Pi needs ``pip install edgerep`` and nothing else (a test enforces it). ONNX bundles,
kept for comparison with the Optimum/ONNX Runtime path, also need ``onnxruntime``.

Example::

    from edgerep.device.runtime import PolarityClassifier
    clf = PolarityClassifier("runs/default/bundles/dynamic-int8")
    clf.classify("Loving the new BMW i3!").label   # 'POSITIVE'

    # an entity-conditioned bundle (manifest "entity_conditioned": true) names the entity:
    clf.classify("BMW beats Audi in sales", entity="Audi").label
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgerep import LABELS, RELATEDNESS_LABELS
from edgerep.device.manifest import Manifest
from edgerep.device.text import NORMALIZATION_VERSION, normalize_tweet
from edgerep.device.tokenizer import TweetTokenizer
from edgerep.errors import BundleError, InputTextError, ModelLoadError
from edgerep.io import native_output_captured, sha256_file
from edgerep.registry import MANIFEST_FILE, TOKENIZER_FILE


@dataclass(frozen=True)
class Prediction:
    """Polarity of one text (and, from a bundle that decides relatedness, whether it is about the entity).

    Attributes:
        label: the arg-max polarity class.
        probabilities: polarity class -> probability (sums to 1); from a relatedness bundle the
            probability given that the tweet is related (:func:`relatedness_split`).
        logits: float32 [n_classes] raw model output (n_classes = len(manifest labels)).
        related: whether the tweet is about the entity (P(related) >= 0.5); ``None`` from a
            polarity-only bundle.
        p_related: P(related) = 1 - P(UNRELATED); ``None`` from a polarity-only bundle.
    """

    label: str
    probabilities: dict[str, float]
    logits: np.ndarray
    related: bool | None = None
    p_related: float | None = None

    def to_dict(self) -> dict:
        d: dict = {"label": self.label, "probabilities": self.probabilities}
        if self.related is not None:
            d.update(related=self.related, p_related=self.p_related)
        return d


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of float logits [batch, classes], numerically stable; float32 [batch, classes]."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def relatedness_split(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split softmax probabilities float [n, 4] over :data:`edgerep.RELATEDNESS_LABELS` into the
    polarity probabilities given relatedness, float32 [n, 3] (the first three renormalised:
    P(c | related) = P(c) / (1 - P(UNRELATED))), and P(related) = 1 - P(UNRELATED), float32 [n]."""
    p = np.asarray(probabilities, dtype=np.float64)
    polarity = p[:, :3] / np.maximum(p[:, :3].sum(axis=-1, keepdims=True), 1e-12)
    return polarity.astype(np.float32), (1.0 - p[:, 3]).astype(np.float32)


class _LiteRTEngine:
    """``model.tflite`` through ``ai_edge_litert``: signature runner, checked against the manifest."""

    def __init__(self, model_path: Path, manifest: Manifest, num_threads: int | None, where: Path):
        from ai_edge_litert.interpreter import Interpreter

        widths = manifest.buckets or (manifest.max_seq_len,)
        try:
            with native_output_captured():  # LiteRT's C++ "INFO: Created TensorFlow Lite XNNPACK delegate" line
                self._interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
                self._interpreter.allocate_tensors()  # applies the default delegate now, inside the capture
                self._runners = {w: self._interpreter.get_signature_runner(manifest.signature_for(w)) for w in widths}
        except (ValueError, RuntimeError) as exc:
            raise BundleError(f"{model_path}: LiteRT cannot load the model ({exc})") from None
        for w, runner in self._runners.items():
            inputs = {k: (tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"]).name) for k, d in runner.get_input_details().items()}
            _check_inputs(manifest, inputs, where, width=w)
        self._batch_runner = None
        if manifest.batch_signature:
            try:
                self._batch_runner = self._interpreter.get_signature_runner(manifest.batch_signature)
            except ValueError as exc:
                raise BundleError(f"{model_path}: LiteRT cannot load the model ({exc})") from None
            inputs = {
                k: (tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"]).name) for k, d in self._batch_runner.get_input_details().items()
            }
            _check_inputs(manifest, inputs, where, width=manifest.max_seq_len, batch=manifest.batch_size)
        outs = self._runners[widths[-1]].get_output_details()
        if manifest.output.name not in outs:
            raise BundleError(f"{where}: output {manifest.output.name!r} not in the model's signature {sorted(outs)}")
        out = outs[manifest.output.name]
        # Full-integer models emit int8 logits: real = scale * (q - zero_point) (LiteRT quantization spec).
        scale, zero_point = out.get("quantization", (0.0, 0))
        self._dequant = (float(scale), int(zero_point)) if np.issubdtype(np.dtype(out["dtype"]), np.integer) and scale else None
        self.n_outputs = int(out["shape"][-1])
        self._name = manifest.output.name

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Logits float32 [batch, classes] for int32 [batch, width] inputs (batch 1, or the
        bundle's batch signature at max_seq_len)."""
        runner = self._runners[input_ids.shape[1]] if input_ids.shape[0] == 1 else self._batch_runner
        if runner is None:
            raise BundleError(f"this bundle has no batch signature for {input_ids.shape[0]} tweets at once")
        raw = np.asarray(runner(input_ids=input_ids, attention_mask=attention_mask)[self._name]).reshape(input_ids.shape[0], -1)
        if self._dequant is not None:
            scale, zero_point = self._dequant
            return scale * (raw.astype(np.float32) - zero_point)
        return raw.astype(np.float32, copy=False)


class _OnnxEngine:
    """``model.onnx`` through ONNX Runtime (optional on the device: ``pip install onnxruntime``)."""

    def __init__(self, model_path: Path, manifest: Manifest, num_threads: int | None, where: Path):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BundleError(f"{where}: bundle targets ONNX Runtime; install it with `pip install onnxruntime`") from None
        opts = ort.SessionOptions()
        if num_threads:
            opts.intra_op_num_threads = num_threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BundleError(f"{model_path}: ONNX Runtime cannot load the model ({str(exc)[:300]})") from None
        dtypes = {"tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(float)": "float32"}
        inputs = {}
        for i in self._session.get_inputs():
            # dynamic axes are strings; the manifest's static shape fills them
            spec = next((s for s in manifest.inputs if s.name == i.name), None)
            shape = tuple(d if isinstance(d, int) else (spec.shape[k] if spec else -1) for k, d in enumerate(i.shape))
            inputs[i.name] = (shape, dtypes.get(i.type, i.type))
        _check_inputs(manifest, inputs, where)
        outs = {o.name: o for o in self._session.get_outputs()}
        if manifest.output.name not in outs:
            raise BundleError(f"{where}: output {manifest.output.name!r} not in the model's outputs {sorted(outs)}")
        last = outs[manifest.output.name].shape[-1]
        self.n_outputs = int(last) if isinstance(last, int) else len(manifest.labels)
        self._name = manifest.output.name

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        res = self._session.run([self._name], {"input_ids": input_ids, "attention_mask": attention_mask})
        return np.asarray(res[0], dtype=np.float32).reshape(input_ids.shape[0], -1)


def _check_inputs(
    manifest: Manifest, inputs: dict[str, tuple[tuple[int, ...], str]], where: Path, width: int | None = None, batch: int = 1
) -> None:
    """Model inputs must match the manifest (shape [batch, width] for a bucket or batch signature)."""
    for spec in manifest.inputs:
        if spec.name not in inputs:
            raise BundleError(f"{where}: input {spec.name!r} not in the model's signature {sorted(inputs)}")
        shape, dtype = inputs[spec.name]
        expected = spec.shape if width is None else (batch,) + spec.shape[1:-1] + (width,)
        if shape != expected or dtype != spec.dtype:
            raise BundleError(
                f"{where}: input {spec.name!r} is {dtype}{list(shape)} in the model, {spec.dtype}{list(expected)} in the manifest"
            )


class PolarityClassifier:
    """A polarity classifier loaded from a bundle directory (LiteRT, or ONNX Runtime for comparison).

    Args:
        bundle_dir: directory with the model file (``model.tflite`` or ``model.onnx``),
            ``tokenizer.json`` and ``manifest.json``.
        num_threads: CPU threads of the inference engine (``None``: the engine's default).
        verify: check the SHA-256 of the model and tokenizer against the manifest (a few ms
            per MB; disable only for trusted, read-only storage).

    Raises:
        BundleError: missing or corrupted files, a manifest that does not match the model's
            tensors, a tokenizer that is not the one exported, or an incompatible normalization.
    """

    def __init__(self, bundle_dir: str | os.PathLike, num_threads: int | None = None, verify: bool = True):
        self.bundle_dir = Path(bundle_dir)
        if not self.bundle_dir.is_dir():
            raise BundleError(f"{self.bundle_dir}: bundle directory not found")
        self.manifest = Manifest.read(self.bundle_dir)
        m = self.manifest
        where = self.bundle_dir / MANIFEST_FILE
        model_path = self.bundle_dir / m.model_file
        tok_path = self.bundle_dir / TOKENIZER_FILE
        for p in (model_path, tok_path):
            if not p.is_file():
                raise BundleError(f"{p}: missing from the bundle")
        if verify:
            if sha256_file(model_path) != m.model_sha256:
                raise BundleError(f"{model_path}: SHA-256 differs from {MANIFEST_FILE} (corrupted, truncated or replaced model)")
            if sha256_file(tok_path) != m.tokenizer_sha256:
                raise BundleError(f"{tok_path}: SHA-256 differs from {MANIFEST_FILE} (tokenizer from another model?)")
        if m.normalization_version != NORMALIZATION_VERSION:
            raise BundleError(
                f"{where}: bundle uses tweet normalization v{m.normalization_version}, "
                f"this edgerep implements v{NORMALIZATION_VERSION}; re-export the bundle or use a matching edgerep"
            )
        engine = _LiteRTEngine if m.backend == "litert" else _OnnxEngine
        self._engine = engine(model_path, m, num_threads, where)
        if self._engine.n_outputs != len(m.labels):
            raise BundleError(f"{where}: model outputs {self._engine.n_outputs} classes, manifest lists {len(m.labels)} labels")
        try:
            self.tokenizer = TweetTokenizer(tok_path, m.max_seq_len, entity_conditioned=m.entity_conditioned)
        except ModelLoadError as exc:
            raise BundleError(str(exc)) from None
        self.labels = m.labels
        if m.labels not in (LABELS, RELATEDNESS_LABELS):
            raise BundleError(f"{where}: labels {list(m.labels)} are neither {list(LABELS)} nor {list(RELATEDNESS_LABELS)}")
        self.relatedness = m.labels == RELATEDNESS_LABELS
        self.num_threads = num_threads
        self.model_size_bytes = model_path.stat().st_size

    @property
    def entity_conditioned(self) -> bool:
        """Whether every request must name the entity (the bundle's manifest says so)."""
        return self.manifest.entity_conditioned

    def logits(self, texts: Sequence[str], batch_size: int = 1, entities: str | Sequence[str] | None = None) -> np.ndarray:
        """Raw logits for a batch of raw tweets: float32 [len(texts), n_classes].

        ``entities``: for an entity-conditioned bundle, the entity name for every text or one
        per text (any name works, also one never seen in training); ``None`` for other bundles.

        Texts are normalized and tokenized exactly as in training. With ``batch_size`` 1 each
        tweet runs alone, padded to the smallest length bucket that holds it (or
        ``max_seq_len``). With the bundle's ``batch_size`` (manifest), full groups of that many
        tweets run together through the batch signature, padded to ``max_seq_len``; the rest
        run alone. Integer (full-integer quantized) outputs are dequantized. An empty text
        yields the logits of ``[CLS] [SEP]``; use :meth:`classify` to reject it instead.

        Raises:
            ValueError: ``batch_size`` is neither 1 nor the bundle's batch size.
            InputTextError: entities missing for an entity-conditioned bundle, given to another
                bundle, miscounted or empty (the message says which).
        """
        m = self.manifest
        if batch_size != 1 and batch_size != m.batch_size and m.backend == "litert":
            raise ValueError(f"this bundle runs batches of 1 or {m.batch_size}, not {batch_size}")
        out = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        all_ids = self.tokenizer.ids(list(texts), entities)
        start = 0
        if batch_size > 1:
            full = len(texts) - len(texts) % batch_size
            for s in range(0, full, batch_size):
                enc = self.tokenizer.pad(all_ids[s : s + batch_size], m.max_seq_len)
                out[s : s + batch_size] = self._engine(enc.input_ids, enc.attention_mask)
            start = full
        for i, ids in enumerate(all_ids[start:], start):
            enc = self.tokenizer.pad([ids], m.width_for(len(ids)))  # ids are truncated to max_seq_len
            out[i] = self._engine(enc.input_ids, enc.attention_mask)[0]
        return out

    def classify(self, text: str, entity: str | None = None) -> Prediction:
        """Polarity of one raw tweet (for ``entity``, when the bundle is entity-conditioned).

        Raises:
            InputTextError: ``text`` is not a str, or is empty after normalization; ``entity``
                missing, unexpected or empty (see :meth:`logits`).
        """
        if not isinstance(text, str):
            raise InputTextError(f"text must be a string, got {type(text).__name__}")
        if not normalize_tweet(text):
            raise InputTextError("text is empty after normalization (only whitespace or control characters)")
        return self.prediction_of(self.logits([text], entities=entity)[0])

    def classify_many(self, texts: Iterable[str], entity: str | None = None) -> list[Prediction]:
        """:meth:`classify` for each text (raises on the first unusable one)."""
        return [self.classify(t, entity) for t in texts]

    def predictions(self, texts: Sequence[str], batch_size: int = 1, entities: str | Sequence[str] | None = None) -> list[Prediction]:
        """:class:`Prediction` for each raw tweet, without the empty-text check of :meth:`classify`."""
        return [self.prediction_of(row) for row in self.logits(texts, batch_size, entities)]

    def prediction_of(self, logits: np.ndarray) -> Prediction:
        """The :class:`Prediction` of one row of :meth:`logits`, float32 [n_classes]."""
        probs = softmax(logits[None, :])
        related = p_related = None
        if self.relatedness:
            probs, p_rel = relatedness_split(probs)
            p_related = round(float(p_rel[0]), 6)
            related = p_related >= 0.5
        return Prediction(
            label=LABELS[int(np.argmax(probs[0]))],
            probabilities={lab: round(float(p), 6) for lab, p in zip(LABELS, probs[0])},
            logits=logits,
            related=related,
            p_related=p_related,
        )
