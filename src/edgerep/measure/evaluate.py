"""Evaluation of a fine-tuned PyTorch checkpoint or a LiteRT bundle on RepLab 2013.

The same data selection and metrics serve both model kinds, so their numbers compare
directly. On the training split the default subset is the held-out validation part (the split
config is read from the model, so it is the exact set the model never trained on); on the
test split it is every polarity-task tweet.

Loading a bundle needs only the light runtime; a checkpoint needs the ``train`` extra.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgerep import LABELS, RELATEDNESS_LABELS
from edgerep.data import SplitConfig, select_tweets
from edgerep.errors import ConfigError, ModelLoadError
from edgerep.io import record_is_current
from edgerep.log import progress
from edgerep.measure.metrics import classification_report, logits_report
from edgerep.measure.records import make_record, read_record, write_record
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


def _describe(path: Path) -> tuple[str, dict, SplitConfig, tuple[str, ...]]:
    """``(kind, model info for the record, split config, labels)`` of a bundle or checkpoint.

    Raises:
        ModelLoadError, BundleError: neither a bundle nor a checkpoint, or unreadable.
    """
    kind = model_kind(path)
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
    if tuple(labels) not in (LABELS, RELATEDNESS_LABELS):
        raise ModelLoadError(f"{path}: model labels {list(labels)} are neither {list(LABELS)} nor {list(RELATEDNESS_LABELS)}")
    model_info["relatedness"] = tuple(labels) == RELATEDNESS_LABELS
    return kind, model_info, split_cfg, tuple(labels)


def model_logits(path: Path, model_info: dict, texts: list[str], entities: list[str] | None, threads: int | None = None) -> np.ndarray:
    """Logits float32 [len(texts), n_labels] of a bundle or checkpoint (``model_info`` from :func:`_describe`);
    ``entities`` (one per text) are passed to entity-conditioned models only."""
    names = entities if model_info["entity_conditioned"] else None
    if model_info["kind"] == "bundle":
        return bundle_logits(path, texts, threads, names)
    return _checkpoint_logits(path, texts, threads, names)


def polarity_logits(logits: np.ndarray) -> np.ndarray:
    """The polarity columns float32 [n, 3] of a model's logits [n, 3 or 4]: softmax over them is
    P(class | related) for a model that decides relatedness (:data:`edgerep.RELATEDNESS_LABELS`)."""
    return np.asarray(logits)[:, : len(LABELS)]


def polarity_metrics(tweets: list, logits: np.ndarray) -> dict:
    """:func:`classification_report` of ``logits`` float [n, 3] against the tweets' labels, with
    ``per_domain`` (n, accuracy, macro-F1 per RepLab domain)."""
    y_true = np.asarray([t.label_id for t in tweets])
    metrics = classification_report(y_true, logits.argmax(-1), LABELS)
    per_domain = {}
    for dom in sorted({t.domain for t in tweets}):
        idx = np.asarray([i for i, t in enumerate(tweets) if t.domain == dom])
        r = classification_report(y_true[idx], logits[idx].argmax(-1), LABELS)
        per_domain[dom] = {"n": r["n"], "accuracy": r["accuracy"], "macro_f1": r["macro_f1"]}
    metrics["per_domain"] = per_domain
    return metrics


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
        Record with ``model`` (path, kind, quantization, size_mb, entity_conditioned,
        relatedness), ``data`` (selection), ``metrics`` (:func:`polarity_metrics`), ``predictions``
        (:func:`predictions_entry`: gold and predicted class per tweet, for paired comparisons)
        and ``inference`` (seconds, tweets/s).
        An entity-conditioned model reads each tweet's own entity name. A model that decides
        relatedness is scored on the UNRELATED tweets too: ``metrics`` and ``predictions`` hold
        polarity on the gold-related tweets (comparable with a polarity model's record on the
        same split), ``metrics.filtering`` the related-vs-UNRELATED scores on all of them
        (:func:`edgerep.measure.metrics.logits_report`).

    Raises:
        ModelLoadError, BundleError, DataError, ConfigError.
    """
    path = Path(model_path)
    kind, model_info, split_cfg, labels = _describe(path)
    tweets, data_info = _tweets(data_root, split, subset, split_cfg, limit, model_info["relatedness"])
    texts = [t.text for t in tweets]
    t0 = time.perf_counter()
    logits = model_logits(path, model_info, texts, [t.entity_name for t in tweets], threads)
    seconds = time.perf_counter() - t0
    related = np.asarray([t.related for t in tweets])
    polarity_tweets = [t for t in tweets if t.related]
    metrics = polarity_metrics(polarity_tweets, polarity_logits(logits[related]))
    if model_info["relatedness"]:
        metrics["filtering"] = logits_report([t.label_id for t in tweets], logits, labels)["filtering"]
    return make_record(
        "evaluation",
        {
            "model": model_info,
            "data": data_info,
            "metrics": metrics,
            "predictions": predictions_entry(polarity_tweets, polarity_logits(logits[related])),
            "inference": {"seconds": round(seconds, 3), "tweets_per_s": round(len(texts) / seconds, 2), "threads": threads},
        },
    )


def tweets_digest(tweets: list) -> str:
    """SHA-256 (hex) of the tweets' ids in order: two evaluations whose digests match scored the
    same tweets in the same order, so their predictions can be paired."""
    return hashlib.sha256("\n".join(str(t.tweet_id) for t in tweets).encode()).hexdigest()


def predictions_entry(tweets: list, logits: np.ndarray) -> dict:
    """The ``predictions`` of an evaluation record, for paired comparisons between models
    (:func:`paired_comparison`): ``{"tweets_sha256": tweets_digest(tweets), "gold_ids": [...],
    "label_ids": [argmax per tweet]}``, class indices into ``LABELS`` in tweet order."""
    return {
        "tweets_sha256": tweets_digest(tweets),
        "gold_ids": [int(t.label_id) for t in tweets],
        "label_ids": [int(i) for i in np.asarray(logits).argmax(-1)],
    }


def paired_comparison(reference: dict, other: dict, resamples: int = 2000) -> dict | None:
    """:func:`edgerep.measure.metrics.paired_bootstrap` of two ``edgerep.evaluation`` records
    (``other`` - ``reference``, accuracy and macro-F1 with a 95% interval), or ``None`` when either
    has no ``predictions`` (a record without per-tweet predictions) or they scored other tweets
    (``tweets_sha256`` differs)."""
    from edgerep.measure.metrics import paired_bootstrap

    a, b = reference.get("predictions"), other.get("predictions")
    if not a or not b or a["tweets_sha256"] != b["tweets_sha256"]:
        return None
    return paired_bootstrap(a["gold_ids"], a["label_ids"], b["label_ids"], len(LABELS), resamples=resamples)


def _tweets(data_root, split: str, subset: str, split_cfg: SplitConfig, limit: int | None, relatedness: bool = False) -> tuple[list, dict]:
    tweets, data_info = select_tweets(data_root, split, subset, split_cfg, relatedness)
    if limit is not None:
        tweets = tweets[:limit]
        data_info["n"] = len(tweets)
        data_info["limit"] = limit
    if not tweets:
        raise ConfigError(f"no tweets to evaluate in {data_root} ({split}/{data_info['subset']})")
    return tweets, data_info


#: The entity name given to entity-conditioned models on TweetEval tweets, which name none.
OUT_OF_DOMAIN_ENTITY = "unknown"


def out_of_domain_probabilities(path: str | os.PathLike, folder, threads: int | None = None) -> tuple[np.ndarray, dict]:
    """Softmax probabilities float32 [2000, 3] of a bundle or checkpoint on the TweetEval ``val``
    portion (never trained on), scored as polarity, and the scores (``n``, accuracy, macro-F1,
    F1 per class). Entity-conditioned models read :data:`OUT_OF_DOMAIN_ENTITY`. ``folder``: the
    TweetEval folder, or its ``val`` portion already loaded (:class:`~edgerep.data.tweeteval.SentimentSet`).

    Raises:
        DataError: unreadable TweetEval folder. ModelLoadError, BundleError: as in :func:`evaluate`.
    """
    from edgerep.data.tweeteval import CHECK_PORTION, SentimentSet, load_sentiment
    from edgerep.device.runtime import softmax

    ood = folder if isinstance(folder, SentimentSet) else load_sentiment(folder, CHECK_PORTION)
    _, info, _, _ = _describe(Path(path))
    probs = softmax(polarity_logits(model_logits(Path(path), info, ood.texts, [OUT_OF_DOMAIN_ENTITY] * len(ood.texts), threads)))
    return probs, _short(classification_report(np.asarray(ood.label_ids), probs.argmax(-1), LABELS))


def evaluate_ensemble(
    members: Sequence[str | os.PathLike],
    data_root: str | os.PathLike,
    split: str = "training",
    subset: str = "auto",
    limit: int | None = None,
    threads: int | None = None,
    out_of_domain: str | os.PathLike | None = None,
) -> dict:
    """Score each member and the ensemble that averages their softmax probabilities; return an
    ``edgerep.ensemble`` record.

    Probability averaging is the standard deep-ensemble combination (Lakshminarayanan et al.,
    NeurIPS 2017); members may mix entity-conditioned and single-tweet models, checkpoints and
    bundles, but must share one validation split (else a member would be scored on tweets it
    trained on).

    Args:
        members: bundle or checkpoint directories (>= 1).
        out_of_domain: a TweetEval sentiment folder; its ``val`` portion (never trained on) is
            scored as polarity beside RepLab, entity-conditioned models reading the entity
            :data:`OUT_OF_DOMAIN_ENTITY`.

    Returns:
        Record with ``members`` (model info + metrics each), ``ensemble`` (metrics), ``data`` and,
        with ``out_of_domain``, ``out_of_domain`` (accuracy and macro-F1 per member and ensemble).

    Raises:
        ConfigError: no members, or members validated on different splits.
        ModelLoadError, BundleError, DataError: as in :func:`evaluate`.
    """
    from edgerep.device.runtime import softmax

    if not members:
        raise ConfigError("an ensemble needs at least one member")
    described = [(Path(m), *_describe(Path(m))) for m in members]
    splits = {_split_key(d[3]) for d in described}
    if len(splits) > 1:
        raise ConfigError("ensemble members were validated on different splits: " + "; ".join(f"{d[0]}: {d[3]}" for d in described))
    tweets, data_info = _tweets(data_root, split, subset, described[0][3], limit)
    texts, entities = [t.text for t in tweets], [t.entity_name for t in tweets]
    ood = None
    if out_of_domain is not None:
        from edgerep.data.tweeteval import CHECK_PORTION, load_sentiment

        ood = load_sentiment(out_of_domain, CHECK_PORTION)  # an unreadable folder fails before any model runs
    rows, probs, ood_probs, ood_rows = [], [], [], {}
    for path, _kind, info, _split, _labels in described:
        logits = polarity_logits(model_logits(path, info, texts, entities, threads))
        probs.append(softmax(logits))
        rows.append({"model": info, "metrics": polarity_metrics(tweets, logits)})
        if ood is not None:
            p, ood_rows[str(path)] = out_of_domain_probabilities(path, ood, threads)
            ood_probs.append(p)
    rec = {"members": rows, "ensemble": polarity_metrics(tweets, np.mean(probs, axis=0)), "data": data_info}
    if ood is not None:
        ood_rows["ensemble"] = _short(classification_report(np.asarray(ood.label_ids), np.mean(ood_probs, axis=0).argmax(-1), LABELS))
        rec["out_of_domain"] = {"data": {"folder": str(out_of_domain), **ood.to_dict()}, "entity": OUT_OF_DOMAIN_ENTITY, "scores": ood_rows}
    return make_record("ensemble", rec)


def _split_key(config: SplitConfig) -> str:
    """A split config as a comparable string."""
    return repr(sorted(config.to_dict().items()))


def _short(report: dict) -> dict:
    return {
        "n": report["n"],
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "f1": {k: v["f1"] for k, v in report["per_class"].items()},
    }


def bundle_logits(path: Path, texts: list[str], threads: int | None = None, entities: list[str] | None = None) -> np.ndarray:
    """Logits float32 [len(texts), n_labels] of the bundle at ``path`` with the light runtime,
    64 tweets a call; ``entities`` (one per text) for an entity-conditioned bundle.

    Raises:
        ModelLoadError: ``path`` is no loadable bundle.
    """
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


def kept_evaluation(record: str | os.PathLike, artifact: str | os.PathLike) -> dict | None:
    """The evaluation record at ``record`` if it was written after ``artifact`` (a bundle or
    model directory) was made, else ``None`` (evaluate again). Its ``model.path`` is set to
    ``artifact`` as given now (rewritten when it moved: a run directory moved or copied since, or
    another working directory), so later steps open the artifact where it is."""
    if not record_is_current(record, artifact):
        return None
    rec = read_record(record, "evaluation")
    if rec["model"].get("path") != str(artifact):
        rec["model"]["path"] = str(artifact)
        write_record(record, rec)
    return rec
