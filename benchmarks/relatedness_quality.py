#!/usr/bin/env python
"""Relatedness (RepLab's filtering task) as a fourth class of the polarity head, on the
validation block of each temporal fold: filtering scores, the polarity it keeps against the
polarity-only model of the same fold, and what filtering does to the NEGATIVE share a monitor
reports.

Per fold, two bundles classify every English validation tweet of the corpus, related or not:
the bundle that decides relatedness (``edgerep train --relatedness``, exported) and the
polarity-only bundle (``edgerep train``, exported) of the same fold. Scores:

* filtering: accuracy and UNRELATED F1 of the relatedness bundle (related when P(UNRELATED) < 0.5);
* polarity on the gold-related tweets: accuracy, macro-F1, NEGATIVE F1 of both, and the
  relatedness bundle's macro-F1 minus the polarity bundle's with a 95% paired bootstrap interval
  (:func:`edgerep.measure.metrics.paired_bootstrap`);
* end to end: per entity block (and per entity-week) with at least ``--min-tweets`` gold-related
  tweets, the absolute error of the estimated NEGATIVE share against the gold share among the
  gold-related tweets; estimated by the relatedness bundle among the tweets it calls related
  (classify and count, and the mean probability), and by the polarity bundle over every tweet
  (what a monitor without filtering counts) and over the gold-related ones only (a perfect filter).

Each result is saved with ``--json``; ``--from-json`` makes the tables of several saved results
(e.g. two heads, named by ``--head``)::

    python benchmarks/relatedness_quality.py --data ../shared/data/replab2013 --head factorized \\
        --fold 0 runs/related/bundles/dynamic-int8 runs/minilm/bundles/dynamic-int8 \\
        --fold 1 runs/related-fold1/bundles/dynamic-int8 runs/minilm-fold1/bundles/dynamic-int8 --json factorized.json
    python benchmarks/relatedness_quality.py --from-json softmax.json factorized.json \\
        --table docs/records/relatedness.json --shares-table docs/records/relatedness-shares.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from edgerep import LABELS, RELATEDNESS_LABELS
from edgerep.data import SplitConfig, load_split, split_train_validation
from edgerep.device.runtime import relatedness_split, softmax
from edgerep.measure.evaluate import bundle_logits
from edgerep.measure.metrics import classification_report, logits_report, paired_bootstrap

NEG = LABELS.index("NEGATIVE")
WEEK = 7 * 86400
MONDAY_OFFSET = 4 * 86400  # 1970-01-01 was a Thursday: weeks counted from Monday 1970-01-05


def tweet_logits(bundle: Path, tweets: list, threads: int) -> np.ndarray:
    """Logits float32 [n, n_labels] of every tweet (with its entity) by the bundle."""
    return bundle_logits(bundle, [t.text for t in tweets], threads, [t.entity_name for t in tweets])


def share_errors(
    groups: list[np.ndarray], related: np.ndarray, gold: np.ndarray, estimates: dict[str, np.ndarray], min_tweets: int
) -> dict:
    """Mean absolute error of each estimate of the NEGATIVE share over the groups with at least
    ``min_tweets`` gold-related tweets; ``estimates``: name -> float [n_groups] share."""
    keep = [k for k, g in enumerate(groups) if related[g].sum() >= min_tweets]
    truth = np.array([(gold[groups[k]][related[groups[k]]] == NEG).mean() for k in keep])
    return {"groups": len(keep), **{name: float(np.mean(np.abs(est[keep] - truth))) for name, est in estimates.items()}}


def evaluate_fold(
    data: Path, fold: int, related_bundle: Path, polarity_bundle: Path, threads: int, min_tweets: int, head: str = "factorized"
) -> dict:
    tweets, _ = load_split(data, relatedness=True)
    _, val = split_train_validation(tweets, SplitConfig(fold=fold))
    gold = np.array([t.label_id for t in val])
    related = gold < len(LABELS)
    z_rel = tweet_logits(related_bundle, val, threads)
    z_pol = tweet_logits(polarity_bundle, val, threads)
    if z_rel.shape[1] != len(RELATEDNESS_LABELS) or z_pol.shape[1] != len(LABELS):
        raise SystemExit(f"{related_bundle} must decide relatedness and {polarity_bundle} polarity only")
    rel_report = logits_report(gold, z_rel, RELATEDNESS_LABELS)
    pol_report = classification_report(gold[related], z_pol[related].argmax(1), LABELS)
    paired = paired_bootstrap(gold[related], z_pol[related].argmax(1), z_rel[related, :3].argmax(1), len(LABELS))

    polarity_given_related, p_related = relatedness_split(softmax(z_rel))
    said_related = p_related >= 0.5
    rel_label = polarity_given_related.argmax(1)
    pol_label = z_pol.argmax(1)
    entities = np.array([t.entity_id for t in val])
    weeks = np.array([(t.timestamp - MONDAY_OFFSET) // WEEK for t in val])

    def estimates(groups: list[np.ndarray]) -> dict[str, np.ndarray]:
        def mean(x: np.ndarray, g: np.ndarray, mask: np.ndarray) -> float:
            return float(x[g][mask[g]].mean()) if mask[g].any() else 0.0

        ones = np.ones(len(val), dtype=bool)
        return {
            "relatedness_cc": np.array([mean(rel_label == NEG, g, said_related) for g in groups]),
            "relatedness_pcc": np.array([mean(polarity_given_related[:, NEG], g, said_related) for g in groups]),
            "polarity_every_tweet": np.array([mean(pol_label == NEG, g, ones) for g in groups]),
            "polarity_gold_related": np.array([mean(pol_label == NEG, g, related) for g in groups]),
        }

    blocks = [np.flatnonzero(entities == e) for e in np.unique(entities)]
    keys = sorted(set(zip(entities, weeks)))
    entity_weeks = [np.flatnonzero((entities == e) & (weeks == w)) for e, w in keys]
    f = rel_report["filtering"]
    return {
        "head": head,
        "fold": fold,
        "tweets": len(val),
        "gold_related": int(related.sum()),
        "related_bundle": str(related_bundle),
        "polarity_bundle": str(polarity_bundle),
        "filtering": {"accuracy": f["accuracy"], "unrelated_f1": f["per_class"]["UNRELATED"]["f1"], "per_class": f["per_class"]},
        "polarity": {
            "relatedness_bundle": _scores(rel_report),
            "polarity_bundle": _scores(pol_report),
            "paired_macro_f1": paired["macro_f1"],
            "paired_accuracy": paired["accuracy"],
        },
        "negative_share_mae": {
            "entity_blocks": share_errors(blocks, related, gold, estimates(blocks), min_tweets),
            "entity_weeks": share_errors(entity_weeks, related, gold, estimates(entity_weeks), min_tweets),
        },
        "min_tweets": min_tweets,
    }


def _run_path(path: str) -> str:
    """A bundle path from its run folder on (``runs/...``), as the docs name it."""
    parts = Path(path).parts
    return str(Path(*parts[parts.index("runs") :])) if "runs" in parts else path


def _scores(report: dict) -> dict:
    return {
        "n": report["n"],
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "negative_f1": report["per_class"]["NEGATIVE"]["f1"],
    }


def _record(title: str, caption: str, columns: list[str], rows: list[list[str]], machine: dict, date: str) -> dict:
    return {
        "schema": "edgerep.docs-table",
        "schema_version": 1,
        "title": title,
        "caption": caption,
        "machine": f"{machine.get('cpu', '?')} (accuracy figures do not depend on it)",
        "date": date,
        "source": "benchmarks/relatedness_quality.py",
        "columns": columns,
        "rows": rows,
    }


def docs_tables(results: list[dict], machine: dict, date: str) -> tuple[dict, dict]:
    """The ``edgerep.docs-table`` records: classification (``relatedness``) and shares (``relatedness-shares``)."""
    rows = []
    for r in results:
        p, rel, pol = r["polarity"]["paired_macro_f1"], r["polarity"]["relatedness_bundle"], r["polarity"]["polarity_bundle"]
        rows.append(
            [
                r["head"],
                str(r["fold"]),
                f"{r['tweets']:,}",
                f"{r['filtering']['accuracy']:.4f}",
                f"{r['filtering']['unrelated_f1']:.3f}",
                f"{rel['accuracy']:.4f} / {rel['macro_f1']:.4f} / {rel['negative_f1']:.3f}",
                f"{pol['accuracy']:.4f} / {pol['macro_f1']:.4f} / {pol['negative_f1']:.3f}",
                f"{100 * p['diff']:+.2f} ({100 * p['low']:+.2f} to {100 * p['high']:+.2f})",
            ]
        )
    names = "; ".join(
        f"{r['head']}, fold {r['fold']}: {_run_path(r['related_bundle'])} against {_run_path(r['polarity_bundle'])}" for r in results
    )
    classification = _record(
        "Relatedness and polarity in one head, dynamic-range int8 bundles",
        "Validation block of each temporal fold, every English tweet with text, related or not; filtering: related when "
        "P(UNRELATED) < 0.5; polarity on the gold-related tweets, the relatedness bundle reading its first three logits; the "
        "difference in macro-F1 points with a 95% paired bootstrap interval (2,000 resamples). Bundles: " + names + ".",
        [
            "head",
            "fold",
            "validation tweets",
            "filtering accuracy",
            "UNRELATED F1",
            "polarity acc / macro-F1 / NEG F1, relatedness bundle",
            "the same, polarity-only bundle",
            "Δ macro-F1 (95% CI)",
        ],
        rows,
        machine,
        date,
    )
    rows = []
    for r in results:
        for unit in ("entity_blocks", "entity_weeks"):
            e = r["negative_share_mae"][unit]
            rows.append(
                [
                    r["head"],
                    str(r["fold"]),
                    f"{unit.replace('_', ' ')} ({e['groups']})",
                    f"{e['relatedness_cc']:.4f}",
                    f"{e['relatedness_pcc']:.4f}",
                    f"{e['polarity_every_tweet']:.4f}",
                    f"{e['polarity_gold_related']:.4f}",
                ]
            )
    shares = _record(
        "The NEGATIVE share of the related tweets, with and without filtering",
        f"Mean absolute error of the estimated NEGATIVE share against the gold share among the gold-related tweets, over the "
        f"entity blocks and entity-weeks (Monday to Sunday, UTC) of each fold's validation block with at least "
        f"{results[0]['min_tweets']} gold-related tweets (their number in brackets). Same bundles as the table above.",
        [
            "head",
            "fold",
            "groups",
            "relatedness bundle: count among predicted related",
            "its mean P(NEG | related)",
            "polarity-only bundle, every tweet counted",
            "polarity-only bundle, gold-related tweets only",
        ],
        rows,
        machine,
        date,
    )
    return classification, shares


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--fold", nargs=3, action="append", metavar=("FOLD", "RELATEDNESS_BUNDLE", "POLARITY_BUNDLE"))
    ap.add_argument("--head", default="factorized", help="how the tables name the relatedness bundles' head")
    ap.add_argument("--from-json", type=Path, nargs="+", help="make the tables from these saved results instead")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-tweets", type=int, default=30)
    ap.add_argument("--json", type=Path, help="write the full result here")
    ap.add_argument("--table", type=Path, help="write the classification docs-table record here")
    ap.add_argument("--shares-table", type=Path, help="write the shares docs-table record here")
    args = ap.parse_args(argv)
    if args.from_json:
        results = [r for path in args.from_json for r in json.loads(path.read_text())]
    elif args.data and args.fold:
        results = [
            evaluate_fold(args.data, int(f), Path(rb), Path(pb), args.threads, args.min_tweets, args.head) for f, rb, pb in args.fold
        ]
        print(json.dumps(results, indent=2))
    else:
        ap.error("give --data and --fold, or --from-json")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.table or args.shares_table:
        import datetime as dt

        from edgerep.measure.records import machine_info

        classification, shares = docs_tables(results, machine_info(), dt.date.today().isoformat())
        for path, rec in ((args.table, classification), (args.shares_table, shares)):
            if path:
                path.write_text(json.dumps(rec, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
