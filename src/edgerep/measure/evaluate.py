"""Evaluation of a fine-tuned PyTorch checkpoint or a LiteRT bundle on RepLab 2013.

The same data selection and metrics serve both model kinds, so their numbers compare
directly. On the training split the default subset is the held-out validation part (the split
config is read from the model, so it is the exact set the model never trained on); on the
test split it is every polarity-task tweet.

Loading a bundle needs only the light runtime; a checkpoint needs the ``train`` extra.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from edgerep import LABELS
from edgerep.data import SplitConfig, select_tweets
from edgerep.errors import ConfigError, ModelLoadError
from edgerep.log import progress
from edgerep.measure.metrics import classification_report
from edgerep.measure.records import make_record
from edgerep.registry import MANIFEST_FILE, MB, MODEL_INFO_FILE, TOKENIZER_FILE

def model_kind(path: str | os.PathLike) -> str:
    """``"bundle"`` for a bundle directory (any backend), ``"pytorch"`` for a fine-tuned checkpoint.

    Raises:
        ModelLoadError: neither (the message says what each needs).
    """
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"{p}: not found")
    if (p / MANIFEST_FILE).is_file():
        return "bundle"
    if (p / MODEL_INFO_FILE).is_file():
        return "pytorch"
    raise ModelLoadError(f"{p}: neither a bundle (needs {MANIFEST_FILE}) nor a fine-tuned checkpoint (needs {MODEL_INFO_FILE})")


def evaluate(
    model_path: str | os.PathLike,
    data_root: str | os.PathLike,
    split: str = "training",
    subset: str = "auto",
    limit: int | None = None,
    threads: int | None = None,
) -> dict:
    """Evaluate a model on RepLab 2013; return an ``edgerep.evaluation`` record.

    Args:
        model_path: bundle directory or fine-tuned checkpoint directory.
        data_root: RepLab 2013 corpus root.
        split: ``training`` or ``test``.
        subset: ``auto`` (validation part of training, all of test), ``validation``, ``train``, ``all``.
        limit: evaluate on the first ``limit`` selected tweets only.
        threads: CPU threads for inference.

    Returns:
        Record with ``model`` (path, kind, quantization, size_mb), ``data`` (selection),
        ``metrics`` (:func:`edgerep.measure.metrics.classification_report`) and ``inference`` (seconds,
        tweets/s).

    Raises:
        ModelLoadError, BundleError, DataError, ConfigError.
    """
    kind = model_kind(model_path)
    path = Path(model_path)
    if kind == "bundle":
        from edgerep.device.manifest import Manifest

        manifest = Manifest.read(path)
        split_cfg, labels = SplitConfig(**manifest.split) if manifest.split else SplitConfig(), manifest.labels
        model_info = {
            "path": str(path),
            "kind": kind,
            "quantization": manifest.quantization.get("mode"),
            "size_mb": round((path / manifest.model_file).stat().st_size / MB, 3),
            "backend": manifest.backend,
            "max_seq_len": manifest.max_seq_len,
            "source": manifest.source.get("model"),
            "entity_conditioned": manifest.entity_conditioned,
        }
    else:
        from edgerep.workstation.models import checkpoint_size_mb, read_model_info

        info = read_model_info(path)
        split_cfg, labels = SplitConfig(**info.get("split", {})), tuple(info["labels"])
        model_info = {
            "path": str(path),
            "kind": kind,
            "backend": "pytorch",
            "quantization": "fp32",
            "size_mb": checkpoint_size_mb(path),
            "max_seq_len": int(info["max_seq_len"]),
            "source": info.get("source_model"),
            "entity_conditioned": bool(info.get("entity_conditioned", False)),
        }
    if tuple(labels) != LABELS:
        raise ModelLoadError(f"{path}: model labels {list(labels)} differ from the polarity labels {list(LABELS)}")
    tweets, data_info = select_tweets(data_root, split, subset, split_cfg)
    if limit is not None:
        tweets = tweets[:limit]
        data_info["n"] = len(tweets)
        data_info["limit"] = limit
    if not tweets:
        raise ConfigError(f"no tweets to evaluate in {data_root} ({split}/{data_info['subset']})")
    texts = [t.text for t in tweets]
    entities = [t.entity_name for t in tweets] if model_info["entity_conditioned"] else None
    t0 = time.perf_counter()
    if kind == "bundle":
        logits = _bundle_logits(path, texts, threads, entities)
    else:
        logits = _checkpoint_logits(path, texts, threads, entities)
    seconds = time.perf_counter() - t0
    y_true = np.asarray([t.label_id for t in tweets])
    metrics = classification_report(y_true, logits.argmax(-1), LABELS)
    per_domain = {}
    for dom in sorted({t.domain for t in tweets}):
        idx = np.asarray([i for i, t in enumerate(tweets) if t.domain == dom])
        r = classification_report(y_true[idx], logits[idx].argmax(-1), LABELS)
        per_domain[dom] = {"n": r["n"], "accuracy": r["accuracy"], "macro_f1": r["macro_f1"]}
    metrics["per_domain"] = per_domain
    return make_record(
        "evaluation",
        {
            "model": model_info,
            "data": data_info,
            "metrics": metrics,
            "inference": {"seconds": round(seconds, 3), "tweets_per_s": round(len(texts) / seconds, 2), "threads": threads},
        },
    )


def _bundle_logits(path: Path, texts: list[str], threads: int | None, entities: list[str] | None) -> np.ndarray:
    from edgerep.device.runtime import PolarityClassifier

    clf = PolarityClassifier(path, num_threads=threads)
    out = []
    with progress(f"evaluate {path.name}", len(texts)) as bar:
        for s in range(0, len(texts), 64):
            out.append(clf.logits(texts[s : s + 64], entities=None if entities is None else entities[s : s + 64]))
            bar.advance(len(out[-1]))
    return np.concatenate(out)


def _checkpoint_logits(path: Path, texts: list[str], threads: int | None, entities: list[str] | None) -> np.ndarray:
    import torch

    from edgerep.device.tokenizer import TweetTokenizer
    from edgerep.workstation.inference import torch_logits
    from edgerep.workstation.models import load_finetuned

    if threads:
        torch.set_num_threads(threads)
    model, info = load_finetuned(path)
    tokenizer = TweetTokenizer(path / TOKENIZER_FILE, int(info["max_seq_len"]), entity_conditioned=entities is not None)
    return torch_logits(model, tokenizer, texts, description=f"evaluate {path.name}", entities=entities)
