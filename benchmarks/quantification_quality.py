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
from edgerep.measure.metrics import classification_report
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


def evaluate(data: Path, fold: int, batch: Path, rates_path: Path | None, min_tweets: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    train, val = _fold(data, fold)
    gold = {t.tweet_id: LABELS.index(t.label) for t in val}
    counts = Counter(t.label for t in train)
    train_priors = np.array([counts[lab] for lab in LABELS], dtype=np.float64) / len(train)
    t = pa.concat_tables([pq.read_table(p) for p in sorted(batch.glob("part-*.parquet"))]).to_pydict()
    keep = [i for i, e in enumerate(t["error"]) if e is None and t["id"][i] in gold]
    ids = [t["id"][i] for i in keep]
    y = np.array([gold[i] for i in ids])
    post = np.stack([np.array([t[f"p_{lab.lower()}"][i] for i in keep], dtype=np.float64) for lab in LABELS], axis=1)
    ent = np.array([t["entity"][i] for i in keep])
    week = np.array([(int(t["time"][i].timestamp()) - MONDAY_OFFSET) // WEEK for i in keep])
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
    keys = sorted(set(zip(ent.tolist(), week.tolist())))
    by_week = [g for g in (np.flatnonzero((ent == e) & (week == w)) for e, w in keys) if len(g) >= min_tweets]

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
            "unadapted": {"accuracy": round(before["accuracy"], 4), "macro_f1": round(before["macro_f1"], 4),
                          "negative_f1": round(before["per_class"]["NEGATIVE"]["f1"], 4)},
            "em_adapted_per_entity": {"accuracy": round(after["accuracy"], 4), "macro_f1": round(after["macro_f1"], 4),
                                      "negative_f1": round(after["per_class"]["NEGATIVE"]["f1"], 4)},
        },
    }


def docs_table(result: dict, bundle: str, machine: dict, date: str) -> dict:
    """The ``edgerep.docs-table`` record of a result (``docs/records/quantification.json``)."""
    weeks = next(k for k in result if k.startswith("entity_weeks"))
    rows = []
    for method in ("cc", "pcc", "acc", "em"):
        a, b = result["entity_blocks"].get(method), result[weeks].get(method)
        if a and b:
            base_a, base_b = result["entity_blocks"]["cc"]["mae"], result[weeks]["cc"]["mae"]
            rows.append([method, f"{a['mae']:.4f}", f"{100 * (a['mae'] / base_a - 1):+.0f}%", f"{b['mae']:.4f}", f"{100 * (b['mae'] / base_b - 1):+.0f}%"])
    lab = result["labels"]
    return {
        "schema": "edgerep.docs-table",
        "schema_version": 1,
        "title": f"Quantifiers of the NEGATIVE share, temporal fold {result['fold']}",
        "caption": (
            f"Validation block of temporal fold {result['fold']} ({result['tweets']:,} tweets) classified by {bundle}: mean absolute error of "
            f"the estimated NEGATIVE share against the gold share over {result['entity_blocks']['cc']['groups']} entity blocks and "
            f"{result[weeks]['cc']['groups']} entity-weeks of >= 30 tweets; the change is against classify-and-count. ACC's error rates "
            "are the bundle's on these same tweets (in-sample). Per-entity EM prior adaptation of the labels: accuracy "
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
    args = ap.parse_args(argv)
    if args.write_validation:
        write_validation(args.data, args.fold, args.write_validation)
        return 0
    if not args.batch:
        ap.error("give --batch (or --write-validation)")
    result = evaluate(args.data, args.fold, args.batch, args.rates, args.min_tweets)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.table:
        import datetime as dt

        from edgerep.measure.records import machine_info

        table = docs_table(result, args.bundle_name, machine_info(), dt.date.today().isoformat())
        args.table.write_text(json.dumps(table, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
