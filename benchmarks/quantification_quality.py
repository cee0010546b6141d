#!/usr/bin/env python
"""How well each quantifier of ``edgerep monitor`` estimates the NEGATIVE share, and whether
per-entity prior adaptation (EM, Saerens et al. 2002) improves per-tweet labels.

Input: an ``edgerep batch`` output of the validation tweets of a temporal fold (``id`` = tweet
id; make it with ``--write-validation FILE`` first) and the corpus for the gold labels. Groups:
each entity's whole validation block, and each entity-week with at least ``--min-tweets``
tweets. Per group and method (cc, pcc, acc, em), the absolute error of the estimated NEGATIVE
share against the gold share; the mean over groups is printed, with the number of groups.

The training priors of EM are the class shares of the fold's training part (what the model was
trained under); ACC's error rates come from ``--rates`` (an ``edgerep.evaluation`` record; on
the same validation tweets they are in-sample, which favours ACC)::

    python benchmarks/quantification_quality.py --data ../shared/data/replab2013 --write-validation /tmp/val.jsonl
    edgerep batch /tmp/val.jsonl -o /tmp/val-batch --bundle BUNDLE --time-field time
    python benchmarks/quantification_quality.py --data ../shared/data/replab2013 --batch /tmp/val-batch --rates EVAL.json

``--deploy K:LATER:VALIDATION`` (repeatable) measures the methods as a deployed bundle meets
them: a bundle trained on fold ``K + 1`` (``edgerep train --fold K+1``) classifies its own
validation block (fold ``K + 1``'s, ``VALIDATION``) and the block after it (fold ``K``'s,
``LATER``); ACC's error rates, EM's starting priors and a bias-corrected temperature scaling
are fitted on the first and judged on the second, pooled over every pair given::

    python benchmarks/quantification_quality.py --data ../shared/data/replab2013 \
        --deploy 0:/tmp/val0-by1:/tmp/val1-by1 --deploy 1:/tmp/val1-by2:/tmp/val2-by2 --table T.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from edgerep import LABELS
from edgerep.data import SplitConfig, load_split, split_train_validation
from edgerep.data.replab import entity_names
from edgerep.measure.metrics import classification_report, confusion_matrix
from edgerep.measure.quantify import adjusted_count, em_priors, one_vs_rest_rates, renormalise
from edgerep.measure.records import read_record

NEG = LABELS.index("NEGATIVE")
WEEK = 7 * 86400
MONDAY_OFFSET = 4 * 86400  # 1970-01-01 was a Thursday: weeks counted from Monday 1970-01-05


def _fold(data: Path, fold: int):
    tweets, _ = load_split(data)
    return split_train_validation(tweets, SplitConfig(fold=fold))


def write_validation(data: Path, fold: int, path: Path) -> None:
    _, val = _fold(data, fold)
    names = entity_names(data)
    with open(path, "w") as f:
        for t in val:
            f.write(json.dumps({"id": t.tweet_id, "text": t.text, "entity": names[t.entity_id], "time": t.timestamp}) + "\n")
    print(f"wrote {len(val)} validation tweets of fold {fold} to {path}")


def _read_block(tweets, fold: int, batch: Path) -> dict:
    """A fold's validation block as classified in ``batch``: gold class ids ``y`` int [n],
    posteriors ``post`` float64 [n, 3], ``entity`` [n], ``week`` int [n] (weeks from Monday,
    UTC), and the class shares of the fold's training part ``train_priors`` float64 [3]."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    train, val = split_train_validation(tweets, SplitConfig(fold=fold))
    gold = {t.tweet_id: LABELS.index(t.label) for t in val}
    counts = Counter(t.label for t in train)
    shards = sorted(batch.glob("part-*.parquet"))
    if not shards:
        raise SystemExit(f"error: {batch}: not an edgerep batch output (no part-*.parquet)")
    t = pa.concat_tables([pq.read_table(p) for p in shards]).to_pydict()
    keep = [i for i, e in enumerate(t["error"]) if e is None and t["id"][i] in gold]
    if not keep:
        raise SystemExit(f"error: {batch}: no tweet of fold {fold}'s validation block")
    return {
        "y": np.array([gold[t["id"][i]] for i in keep]),
        "post": np.stack([np.array([t[f"p_{lab.lower()}"][i] for i in keep], dtype=np.float64) for lab in LABELS], axis=1),
        "entity": np.array([t["entity"][i] for i in keep]),
        "week": np.array([(int(t["time"][i].timestamp()) - MONDAY_OFFSET) // WEEK for i in keep]),
        "train_priors": np.array([counts[lab] for lab in LABELS], dtype=np.float64) / len(train),
    }


def _week_groups(block: dict, min_tweets: int) -> list[np.ndarray]:
    ent, week = block["entity"], block["week"]
    keys = sorted(set(zip(ent.tolist(), week.tolist())))
    return [g for g in (np.flatnonzero((ent == e) & (week == w)) for e, w in keys) if len(g) >= min_tweets]


def evaluate(data: Path, fold: int, batch: Path, rates_path: Path | None, min_tweets: int) -> dict:
    tweets, _ = load_split(data)
    b = _read_block(tweets, fold, batch)
    y, post, ent, train_priors = b["y"], b["post"], b["entity"], b["train_priors"]
    rates = None
    if rates_path:
        cm = np.asarray(read_record(rates_path, "evaluation")["metrics"]["confusion_matrix"])
        rates = one_vs_rest_rates(cm)

    def errors(groups: list[np.ndarray]) -> dict:
        err: dict[str, list[float]] = {m: [] for m in ("cc", "pcc", "acc", "em")}
        for g in groups:
            truth = float((y[g] == NEG).mean())
            cc = np.bincount(post[g].argmax(1), minlength=3) / len(g)
            err["cc"].append(abs(cc[NEG] - truth))
            err["pcc"].append(abs(post[g].mean(0)[NEG] - truth))
            if rates is not None:
                err["acc"].append(abs(renormalise(adjusted_count(cc, *rates))[NEG] - truth))
            err["em"].append(abs(em_priors(post[g], train_priors)[0][NEG] - truth))
        return {m: {"mae": round(float(np.mean(v)), 4), "groups": len(v)} for m, v in err.items() if v}

    by_entity = [np.flatnonzero(ent == e) for e in np.unique(ent)]
    by_week = _week_groups(b, min_tweets)

    # per-entity prior adaptation of the labels: p'(c|x) ~ p(c|x) * prior_entity(c) / prior_train(c)
    adapted = post.argmax(1).copy()
    for g in by_entity:
        priors, _ = em_priors(post[g], train_priors)
        w = post[g] * (priors / train_priors)
        adapted[g] = w.argmax(1)
    before = classification_report(y, post.argmax(1), LABELS)
    after = classification_report(y, adapted, LABELS)
    return {
        "fold": fold,
        "tweets": len(y),
        "train_priors": [round(float(p), 4) for p in train_priors],
        "entity_blocks": errors(by_entity),
        f"entity_weeks_min_{min_tweets}": errors(by_week),
        "labels": {
            "unadapted": {
                "accuracy": round(before["accuracy"], 4),
                "macro_f1": round(before["macro_f1"], 4),
                "negative_f1": round(before["per_class"]["NEGATIVE"]["f1"], 4),
            },
            "em_adapted_per_entity": {
                "accuracy": round(after["accuracy"], 4),
                "macro_f1": round(after["macro_f1"], 4),
                "negative_f1": round(after["per_class"]["NEGATIVE"]["f1"], 4),
            },
        },
    }


def fit_bcts(post: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bias-corrected temperature scaling (Alexandari, Kundaje & Shrikumar, ICML 2020):
    ``softmax(log p / T + b)`` with ``b[0] = 0``, fitted by the negative log-likelihood of
    labelled tweets. Returns ``[log T, b1, b2]`` float64 [3]."""
    from scipy.optimize import minimize

    logp = np.log(np.clip(post, 1e-12, 1.0))
    rows = np.arange(len(y))

    def nll(theta: np.ndarray) -> float:
        z = logp / np.exp(theta[0]) + np.r_[0.0, theta[1:]]
        z -= z.max(axis=1, keepdims=True)
        return float(-(z[rows, y] - np.log(np.exp(z).sum(axis=1))).mean())

    return minimize(nll, np.zeros(3), method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-8}).x


def apply_bcts(theta: np.ndarray, post: np.ndarray) -> np.ndarray:
    """The posteriors float64 [n, 3] recalibrated by :func:`fit_bcts`'s parameters."""
    z = np.log(np.clip(post, 1e-12, 1.0)) / np.exp(theta[0]) + np.r_[0.0, theta[1:]]
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


DEPLOY_METHODS = ("cc", "pcc", "acc", "em", "pcc-bcts", "em-bcts")


def deployment(data: Path, pairs: list[tuple[int, Path, Path]], min_tweets: int) -> dict:
    """Each quantifier as a deployed bundle meets it: a bundle fitted before fold ``k + 1``'s
    block, everything a method needs (ACC's error rates, EM's starting priors, the BCTS
    recalibration) taken from the bundle's own validation block ``k + 1``, and the shares
    estimated on the block after it (fold ``k``), which neither the model nor the methods saw.

    ``pairs``: ``(k, batch of block k, batch of block k + 1)``, both classified by the bundle
    trained on fold ``k + 1``'s training part. Per pair and pooled: the mean absolute error of
    the NEGATIVE share over entity-weeks of at least ``min_tweets`` tweets."""
    tweets, _ = load_split(data)
    per_pair, pooled, sizes, floors = [], {m: [] for m in DEPLOY_METHODS}, [], []
    for k, later_batch, val_batch in pairs:
        later, val = _read_block(tweets, k, later_batch), _read_block(tweets, k + 1, val_batch)
        rates = one_vs_rest_rates(confusion_matrix(val["y"], val["post"].argmax(1), len(LABELS)))
        val_priors = np.bincount(val["y"], minlength=len(LABELS)) / len(val["y"])
        theta = fit_bcts(val["post"], val["y"])
        post, cal = later["post"], apply_bcts(theta, later["post"])
        err: dict[str, list[float]] = {m: [] for m in DEPLOY_METHODS}
        floor = []
        for g in _week_groups(later, min_tweets):
            truth = float((later["y"][g] == NEG).mean())
            sizes.append(len(g))
            # E|mean(p) - mean(y)| when each y ~ Bernoulli(p) with calibrated p: the error left to any share estimate
            floor.append(float(np.sqrt(2 / np.pi * (cal[g, NEG] * (1 - cal[g, NEG])).sum()) / len(g)))
            cc = np.bincount(post[g].argmax(1), minlength=len(LABELS)) / len(g)
            est = {
                "cc": cc[NEG],
                "pcc": post[g].mean(0)[NEG],
                "acc": renormalise(adjusted_count(cc, *rates))[NEG],
                "em": em_priors(post[g], val_priors)[0][NEG],
                "pcc-bcts": cal[g].mean(0)[NEG],
                "em-bcts": em_priors(cal[g], val_priors)[0][NEG],
            }
            for m in DEPLOY_METHODS:
                err[m].append(abs(float(est[m]) - truth))
                pooled[m].append(err[m][-1])
        report = classification_report(later["y"], post.argmax(1), LABELS)
        per_pair.append(
            {
                "block": k,
                "bundle_fold": k + 1,
                "tweets": len(later["y"]),
                "windows": len(err["cc"]),
                "accuracy": round(report["accuracy"], 4),
                "macro_f1": round(report["macro_f1"], 4),
                "bcts": {"temperature": round(float(np.exp(theta[0])), 3), "bias": [0.0] + [round(float(b), 3) for b in theta[1:]]},
                "validation_negative_share": round(float(val_priors[NEG]), 4),
                "mae": {m: round(float(np.mean(v)), 4) for m, v in err.items()},
                "calibrated_floor": round(float(np.mean(floor)), 4),
            }
        )
        floors += floor
    return {
        "min_tweets": min_tweets,
        "pairs": per_pair,
        "windows": len(pooled["cc"]),
        "window_tweets_median": float(np.median(sizes)),
        "calibrated_floor": round(float(np.mean(floors)), 4),
        "mae": {m: round(float(np.mean(v)), 4) for m, v in pooled.items()},
    }


def docs_table(result: dict, bundle: str, machine: dict, date: str, title: str | None = None) -> dict:
    """The ``edgerep.docs-table`` record of a result (``docs/records/quantification.json``)."""
    weeks = next(k for k in result if k.startswith("entity_weeks"))
    rows = []
    for method in ("cc", "pcc", "acc", "em"):
        a, b = result["entity_blocks"].get(method), result[weeks].get(method)
        if a and b:
            base_a, base_b = result["entity_blocks"]["cc"]["mae"], result[weeks]["cc"]["mae"]
            rows.append(
                [
                    method,
                    f"{a['mae']:.4f}",
                    f"{100 * (a['mae'] / base_a - 1):+.0f}%",
                    f"{b['mae']:.4f}",
                    f"{100 * (b['mae'] / base_b - 1):+.0f}%",
                ]
            )
    lab = result["labels"]
    return {
        "schema": "edgerep.docs-table",
        "schema_version": 1,
        "title": title or f"Quantifiers of the NEGATIVE share, temporal fold {result['fold']}",
        "caption": (
            f"Validation block of temporal fold {result['fold']} ({result['tweets']:,} tweets) classified by {bundle}: mean absolute error of "
            f"the estimated NEGATIVE share against the gold share over {result['entity_blocks']['cc']['groups']} entity blocks and "
            f"{result[weeks]['cc']['groups']} entity-weeks of >= 30 tweets; the change is against classify-and-count. "
            + ("ACC's error rates are the bundle's on these same tweets (in-sample). " if "acc" in result["entity_blocks"] else "")
            + "Per-entity EM prior adaptation of the labels: accuracy "
            f"{lab['unadapted']['accuracy']:.4f} -> {lab['em_adapted_per_entity']['accuracy']:.4f}, macro-F1 "
            f"{lab['unadapted']['macro_f1']:.4f} -> {lab['em_adapted_per_entity']['macro_f1']:.4f}, NEGATIVE F1 "
            f"{lab['unadapted']['negative_f1']:.4f} -> {lab['em_adapted_per_entity']['negative_f1']:.4f}."
        ),
        "machine": f"{machine.get('cpu', '?')} (accuracy figures do not depend on it)",
        "date": date,
        "source": "benchmarks/quantification_quality.py",
        "columns": ["method", "MAE, entity blocks", "vs cc", "MAE, entity-weeks", "vs cc"],
        "rows": rows,
    }


def deployment_table(result: dict, bundle: str, machine: dict, date: str, title: str | None = None) -> dict:
    """The ``edgerep.docs-table`` record of :func:`deployment` (``docs/records/quantification-deployed.json``)."""
    pairs = result["pairs"]
    base = result["mae"]["cc"]
    rows = []
    for m in DEPLOY_METHODS:
        row = [m, f"{result['mae'][m]:.4f}", f"{100 * (result['mae'][m] / base - 1):+.0f}%"]
        row += [f"{100 * (p['mae'][m] / p['mae']['cc'] - 1):+.0f}%" for p in pairs]
        rows.append(row)
    blocks = ", ".join(
        f"block {p['block']} by the bundle of fold {p['bundle_fold']} ({p['windows']} entity-weeks, accuracy {p['accuracy']:.4f}, "
        f"BCTS temperature {p['bcts']['temperature']:.2f})"
        for p in pairs
    )
    floors = ", ".join(f"{p['calibrated_floor']:.4f}" for p in pairs)
    return {
        "schema": "edgerep.docs-table",
        "schema_version": 1,
        "title": title or "Quantifiers of the NEGATIVE share as a deployed bundle meets them",
        "caption": (
            f"Each temporal block classified by {bundle} trained on the tweets before the block that follows it in time, "
            "and every method's parameters (ACC's error rates, EM's starting priors, the bias-corrected temperature scaling "
            "of pcc-bcts and em-bcts) taken from that bundle's own validation block: the shares are estimated on tweets "
            f"later than anything the model or the method saw. Mean absolute error of the NEGATIVE share over "
            f"{result['windows']} entity-weeks of >= {result['min_tweets']} tweets; {blocks}; the changes are against "
            f"classify-and-count. The windows hold {result['window_tweets_median']:.0f} tweets at the median; with calibrated "
            "probabilities (the BCTS ones) the binomial spread of the tweets' outcomes alone leaves an expected error of "
            f"{result['calibrated_floor']:.4f} ({floors} per block)."
        ),
        "machine": f"{machine.get('cpu', '?')} (accuracy figures do not depend on it)",
        "date": date,
        "source": "benchmarks/quantification_quality.py",
        "columns": ["method", f"MAE, {result['windows']} entity-weeks", "vs cc"] + [f"vs cc, block {p['block']}" for p in pairs],
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--write-validation", type=Path, help="write the fold's validation tweets as JSON lines and stop")
    ap.add_argument("--batch", type=Path, help="edgerep batch output of those tweets")
    ap.add_argument("--rates", type=Path, help="edgerep.evaluation record whose confusion matrix gives ACC's rates")
    ap.add_argument("--min-tweets", type=int, default=30)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--table", type=Path, help="write the docs-table record here")
    ap.add_argument("--bundle-name", default="the bundle", help="how the table's caption names the bundle")
    ap.add_argument("--title", help="the table's title (default: the fold's)")
    ap.add_argument(
        "--deploy",
        action="append",
        default=[],
        metavar="K:LATER_BATCH:VALIDATION_BATCH",
        help="block K and block K+1 classified by the bundle trained on fold K+1 (repeatable): the deployment table",
    )
    args = ap.parse_args(argv)
    if args.deploy:
        pairs = []
        for spec in args.deploy:
            parts = spec.split(":")
            if len(parts) != 3 or not parts[0].isdigit():
                ap.error(f"--deploy {spec!r}: expected K:LATER_BATCH:VALIDATION_BATCH, K a fold number")
            pairs.append((int(parts[0]), Path(parts[1]), Path(parts[2])))
        result = deployment(args.data, pairs, args.min_tweets)
        make_table = deployment_table
    elif args.write_validation:
        write_validation(args.data, args.fold, args.write_validation)
        return 0
    elif args.batch:
        result = evaluate(args.data, args.fold, args.batch, args.rates, args.min_tweets)
        make_table = docs_table
    else:
        ap.error("give --batch, --deploy or --write-validation")
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.table:
        import datetime as dt

        from edgerep.measure.records import machine_info

        table = make_table(result, args.bundle_name, machine_info(), dt.date.today().isoformat(), args.title)
        args.table.write_text(json.dumps(table, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
