"""Put a measured bundle into the package as the shipped model, with its card.

Copies the bundle's files into ``src/edgerep/device/default_bundle/``, its evaluation record
beside them (``evaluation.json``: the card's figures and the validation confusion matrix that
``edgerep monitor`` reads), and writes ``card.json`` and ``MODEL_CARD.md`` from them. Every
figure on the card is read from the records; nothing is typed.

A bundle cannot be validated on a later temporal fold's block: that block lies inside its own
training part. ``--fold-evaluation`` takes the evaluation record of the same recipe run on another
fold (every model fine-tuned and distilled again with ``--fold K``); the card shows it as that
fold's row, and the record lies beside as ``evaluation-fold<K>.json``.

Usage:
    python scripts/ship_model.py RUN/bundles/recommended \
        --evaluation RUN/results/evaluation-k3--dynamic-int4.json \
        --fold-evaluation RUN1/compress/results/evaluation-k3-pruned--dynamic-int4.json \
        --command "edgerep compress RUN --data DATA --teacher REFERENCE/model" \
        --teacher "all-mpnet-base-v2 fine-tuned ..." --commit COMMIT
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
from pathlib import Path

from edgerep.device.shipped import BUNDLE_FILES, CARD_FILE, DEFAULT_BUNDLE_DIR, render_card, verify_bundle
from edgerep.errors import RecordError
from edgerep.io import atomic_write_json, sha256_file
from edgerep.measure.records import read_record
from edgerep.registry import MB

TRAINING_DATA = [
    "RepLab 2013 (Amigó et al., CLEF 2013), training split: English tweets about 61 entities "
    "(automotive, banking, universities, music), collected by keyword in 2012 (tweet timestamps from "
    "August 2009 to September 2012), labelled for reputation polarity by annotators trained by "
    "online-reputation experts; only tweets labelled RELATED are used.",
    "Validation: each entity's latest 15% of tweets by timestamp (temporal split, fold 0); the model trained on the rest.",
    "Terms: the corpus is distributed by the RepLab organisers for research; tweets are subject to "
    "Twitter's (X's) terms of service, which forbid redistributing their text: the bundle holds "
    "weights and a vocabulary, no tweet.",
]

LIMITS = [
    "Trained on English tweets of 2012 about 61 entities in four domains: other languages, other "
    "platforms, long texts and entities far from those domains are out of its domain.",
    "Temporal drift: tweets later than the training period score lower than validation says, most "
    "on NEGATIVE; re-measure on recent labelled tweets of your entities before trusting shares.",
    "Polarity is for the entity's reputation, not the author's mood: a sad tweet about a bank's charity work is POSITIVE for the bank.",
    "It does not decide whether a tweet is about the entity at all (relatedness): feed it tweets that are, or filter first.",
    "Per-tweet labels are noisy; for shares over many tweets use quantification, not raw counts.",
]


def fold_record_name(fold: int) -> str:
    """The file name of another fold's evaluation record beside the shipped bundle."""
    return f"evaluation-fold{fold}.json"


def validation_row(evaluation: dict, record: str) -> tuple[str, dict]:
    """The card's validation row (``"fold K"``, figures) of one evaluation record."""
    m, split = evaluation["metrics"], evaluation["data"]["split_config"]
    pct, fold = split["val_fraction"], int(split["fold"])
    period = f"each entity's latest {pct:.0%}" if fold == 0 else f"the {pct:.0%} before each entity's latest {fold * pct:.0%}"
    row = {
        "n": int(m["n"]),
        "period": period,
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "f1": {label: m["per_class"][label]["f1"] for label in m["labels"]},
        "record": record,
    }
    return f"fold {fold}", row


def build_card(bundle: Path, evaluation: dict, args: argparse.Namespace, fold_evaluations: dict[int, dict] | None = None) -> dict:
    """The card record of ``bundle`` from its manifest, its evaluation record and the same
    recipe's records on other folds (``fold_evaluations``: fold -> evaluation record)."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    tokenizer = json.loads((bundle / "tokenizer.json").read_text())
    source = manifest["source"]
    validation = dict([validation_row(evaluation, "evaluation.json")])
    for fold, rec in sorted((fold_evaluations or {}).items()):
        key, row = validation_row(rec, fold_record_name(fold))
        validation[key] = {**row, "models": f"the same commands with `--fold {fold}`: its own models, not this bundle"}
    return {
        "schema": "edgerep.model-card",
        "schema_version": 1,
        "name": args.name,
        "bundle": {
            "variant": args.variant,
            "quantization": manifest["quantization"]["mode"],
            "size_mb": round((bundle / manifest["model_file"]).stat().st_size / MB, 3),
            "files_mb": round(sum((bundle / f).stat().st_size for f in BUNDLE_FILES) / MB, 3),
            "parameters": int(source["parameters"]),
            "layers": int(source.get("layers", args.layers)),
            "vocab_size": len(tokenizer["model"]["vocab"]),
            "max_seq_len": int(manifest["max_seq_len"]),
            "labels": manifest["labels"],
            "entity_conditioned": bool(manifest["entity_conditioned"]),
        },
        "teacher": args.teacher,
        "made_by": {"command": args.command, "commit": args.commit, "date": dt.date.today().isoformat()},
        "training_data": TRAINING_DATA,
        "validation": validation,
        "validation_notes": args.note or [],
        "limits": LIMITS,
        "sha256": {name: sha256_file(bundle / name) for name in BUNDLE_FILES},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--evaluation", type=Path, required=True, help="The bundle's evaluation record (edgerep evaluate -o).")
    p.add_argument(
        "--fold-evaluation",
        type=Path,
        action="append",
        default=[],
        help="The evaluation record of the same recipe on another temporal fold (its own models; repeatable).",
    )
    p.add_argument("--command", required=True, help="The command that made the bundle.")
    p.add_argument("--commit", required=True, help="The commit of edgerep that made it.")
    p.add_argument("--teacher", required=True, help="What the student was distilled from.")
    p.add_argument("--variant", required=True, help="The compression variant (e.g. k3 dynamic-int4).")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--name", default="edgerep-default")
    p.add_argument("--note", action="append", help="A line under the validation table (repeatable).")
    p.add_argument("--out", type=Path, default=DEFAULT_BUNDLE_DIR)
    args = p.parse_args(argv)
    try:
        evaluation = read_record(args.evaluation, "evaluation")
        others = [(path, read_record(path, "evaluation")) for path in args.fold_evaluation]
    except RecordError as exc:  # a wrong path or file: one usage line
        p.error(str(exc))
    if evaluation["model"]["path"] and Path(evaluation["model"]["path"]).name not in (args.bundle.name, args.bundle.resolve().name):
        print(f"note: {args.evaluation} evaluated {evaluation['model']['path']}", file=sys.stderr)
    shipped_fold = int(evaluation["data"]["split_config"]["fold"])
    fold_evaluations: dict[int, dict] = {}
    fold_paths: dict[int, Path] = {}
    for path, rec in others:
        fold = int(rec["data"]["split_config"]["fold"])
        if fold == shipped_fold or fold in fold_evaluations:
            p.error(f"{path}: a second record of fold {fold}; give one record per fold")
        if rec["metrics"]["labels"] != evaluation["metrics"]["labels"]:
            p.error(f"{path}: labels {rec['metrics']['labels']} differ from the bundle's {evaluation['metrics']['labels']}")
        fold_evaluations[fold], fold_paths[fold] = rec, path
    card = build_card(args.bundle, evaluation, args, fold_evaluations)
    # assemble beside the target, swap in whole: a half-shipped model is never left behind
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".ship-", dir=args.out.parent))
    tmp.chmod(0o755)  # package data: readable by every user of an installation
    for name in BUNDLE_FILES:
        shutil.copy2(args.bundle / name, tmp / name)
    shutil.copy2(args.evaluation, tmp / "evaluation.json")
    for fold, path in fold_paths.items():
        shutil.copy2(path, tmp / fold_record_name(fold))
    atomic_write_json(tmp / CARD_FILE, card)
    (tmp / "MODEL_CARD.md").write_text(render_card(card), encoding="utf-8")
    verify_bundle(tmp)
    if args.out.exists():
        shutil.rmtree(args.out)
    tmp.rename(args.out)
    print(f"shipped {args.bundle} -> {args.out} ({card['bundle']['size_mb']:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
