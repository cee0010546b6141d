"""The light on-device runtime: load a bundle, classify tweets.

Imports numpy, ``tokenizers`` and ``ai_edge_litert`` only — never torch or transformers — so a
Raspberry Pi needs ``pip install edgerep`` and nothing else (a test enforces it).

Example::

    from edgerep.runtime import PolarityClassifier
    clf = PolarityClassifier("runs/default/bundles/dynamic-int8")
    clf.classify("Loving the new BMW i3!").label   # 'POSITIVE'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from edgerep.errors import BundleError, InputTextError
from edgerep.io import sha256_file
from edgerep.manifest import MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE, Manifest
from edgerep.metrics import softmax
from edgerep.text import NORMALIZATION_VERSION, normalize_tweet
from edgerep.tokenization import Encoder


@dataclass(frozen=True)
class Prediction:
    """Polarity of one text.

    Attributes:
        label: the arg-max class name.
        probabilities: class name -> softmax probability (sums to 1).
        logits: float32 [n_classes] raw model output.
    """

    label: str
    probabilities: dict[str, float]
    logits: np.ndarray

    def to_dict(self) -> dict:
        return {"label": self.label, "probabilities": self.probabilities}


class PolarityClassifier:
    """A LiteRT polarity classifier loaded from a bundle directory.

    Args:
        bundle_dir: directory with ``model.tflite``, ``tokenizer.json``, ``manifest.json``.
        num_threads: LiteRT CPU threads (``None``: LiteRT's default).
        verify: check the SHA-256 of the model and tokenizer against the manifest (a few ms
            per MB; disable only for trusted, read-only storage).

    Raises:
        BundleError: missing or corrupted files, a manifest that does not match the model's
            tensors, a tokenizer that is not the one exported, or an incompatible normalization.
    """

    def __init__(self, bundle_dir: str | os.PathLike, num_threads: int | None = None, verify: bool = True):
        from ai_edge_litert.interpreter import Interpreter

        self.bundle_dir = Path(bundle_dir)
        if not self.bundle_dir.is_dir():
            raise BundleError(f"{self.bundle_dir}: bundle directory not found")
        self.manifest = Manifest.read(self.bundle_dir)
        m = self.manifest
        model_path = self.bundle_dir / MODEL_FILE
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
                f"{self.bundle_dir / MANIFEST_FILE}: bundle uses tweet normalization v{m.normalization_version}, "
                f"this edgerep implements v{NORMALIZATION_VERSION}; re-export the bundle or use a matching edgerep"
            )
        try:
            self._interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
            self._runner = self._interpreter.get_signature_runner(m.signature)
        except (ValueError, RuntimeError) as exc:
            raise BundleError(f"{model_path}: LiteRT cannot load the model ({exc})") from None
        self._check_signature()
        self.encoder = Encoder(tok_path, m.max_seq_len)
        self.labels = m.labels
        self.num_threads = num_threads
        self.model_size_bytes = model_path.stat().st_size

    def _check_signature(self) -> None:
        m = self.manifest
        details = self._runner.get_input_details()
        for spec in m.inputs:
            d = details.get(spec.name)
            if d is None:
                raise BundleError(
                    f"{self.bundle_dir / MANIFEST_FILE}: input {spec.name!r} not in the model's signature {sorted(details)}"
                )
            if tuple(int(s) for s in d["shape"]) != spec.shape or np.dtype(d["dtype"]).name != spec.dtype:
                raise BundleError(
                    f"{self.bundle_dir / MANIFEST_FILE}: input {spec.name!r} is {np.dtype(d['dtype']).name}"
                    f"{[int(s) for s in d['shape']]} in the model, {spec.dtype}{list(spec.shape)} in the manifest"
                )
        outs = self._runner.get_output_details()
        if m.output.name not in outs:
            raise BundleError(f"{self.bundle_dir / MANIFEST_FILE}: output {m.output.name!r} not in the model's signature {sorted(outs)}")
        shape = tuple(int(s) for s in outs[m.output.name]["shape"])
        if shape[-1] != len(m.labels):
            raise BundleError(
                f"{self.bundle_dir / MANIFEST_FILE}: model outputs {shape[-1]} classes, manifest lists {len(m.labels)} labels"
            )

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw logits for a batch of raw tweets: float32 [len(texts), n_classes].

        Texts are normalized and tokenized exactly as in training, padded to
        ``max_seq_len``, and run one at a time (the model's batch dimension is 1). An empty
        text yields the logits of ``[CLS] [SEP]``; use :meth:`classify` to reject it instead.
        """
        out = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        name = self.manifest.output.name
        for i, text in enumerate(texts):
            enc = self.encoder.encode([text], pad_to=self.manifest.max_seq_len)
            res = self._runner(input_ids=enc.input_ids, attention_mask=enc.attention_mask)
            out[i] = np.asarray(res[name], dtype=np.float32).reshape(-1)
        return out

    def classify(self, text: str) -> Prediction:
        """Polarity of one raw tweet.

        Raises:
            InputTextError: ``text`` is not a str, or is empty after normalization.
        """
        if not isinstance(text, str):
            raise InputTextError(f"text must be a string, got {type(text).__name__}")
        if not normalize_tweet(text):
            raise InputTextError("text is empty after normalization (only whitespace or control characters)")
        return self._prediction(self.logits([text])[0])

    def classify_many(self, texts: Iterable[str]) -> list[Prediction]:
        """:meth:`classify` for each text (raises on the first unusable one)."""
        return [self.classify(t) for t in texts]

    def _prediction(self, logits: np.ndarray) -> Prediction:
        probs = softmax(logits[None, :])[0]
        return Prediction(
            label=self.labels[int(np.argmax(logits))],
            probabilities={lab: round(float(p), 6) for lab, p in zip(self.labels, probs)},
            logits=logits,
        )
