"""Put a measured bundle into the package as the shipped model, with its card.

Copies the bundle's files into ``src/edgerep/device/default_bundle/``, its evaluation record
beside them (``evaluation.json``: the card's figures and the validation confusion matrix that
``edgerep monitor`` reads), and writes ``card.json`` and ``MODEL_CARD.md`` from them. Every
figure on the card is read from the records; nothing is typed.

Usage:
    python scripts/ship_model.py RUN/bundles/recommended \
        --evaluation RUN/results/evaluation-k3--dynamic-int4.json \
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
from edgerep.io import atomic_write_json, sha256_file
from edgerep.measure.records import read_record
from edgerep.registry import MB

TRAINING_DATA = [
    "RepLab 2013 (Amigó et al., CLEF 2013), training split: English tweets about 61 entities "
    "(automotive, banking, universities, music), collected by keyword in 2012 (tweet timestamps from "
    "August 2009 to September 2012), labelled for reputation polarity by annotators trained by "
    "online-reputation experts; only tweets labelled RELATED are used.",
    "Validation: each entity's latest 15% of tweets by timestamp (temporal split, fold 0); "
    "the model trained on the rest.",
    "Terms: the corpus is distributed by the RepLab organisers for research; tweets are subject to "
    "Twitter's (X's) terms of service, which forbid redistributing their text: the bundle holds "
    "weights and a vocabulary, no tweet.",
]

LIMITS = [
    "Trained on English tweets of 2012 about 61 entities in four domains: other languages, other "
    "platforms, long texts and entities far from those domains are out of its domain.",
    "Temporal drift: tweets later than the training period score lower than validation says, most "
    "on NEGATIVE; re-measure on recent labelled tweets of your entities before trusting shares.",
    "Polarity is for the entity's reputation, not the author's mood: a sad tweet about a bank's "
    "charity work is POSITIVE for the bank.",
    "It does not decide whether a tweet is about the entity at all (relatedness): feed it tweets "
    "that are, or filter first.",
    "Per-tweet labels are noisy; for shares over many tweets use quantification, not raw counts.",
]


def build_card(bundle: Path, evaluation: dict, args: argparse.Namespace) -> dict:
    """The card record of ``bundle`` from its manifest and evaluation record."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    tokenizer = json.loads((bundle / "tokenizer.json").read_text())
    m, split = evaluation["metrics"], evaluation["data"]["split_config"]
    source = manifest["source"]
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
        "validation": {
            f"fold {split['fold']}": {
                "n": int(m["n"]),
                "period": f"each entity's latest {split['val_fraction']:.0%}",
                "accuracy": m["accuracy"],
                "macro_f1": m["macro_f1"],
                "f1": {label: m["per_class"][label]["f1"] for label in m["labels"]},
                "record": "evaluation.json",
            }
        },
        "validation_notes": args.note or [],
        "limits": LIMITS,
        "sha256": {name: sha256_file(bundle / name) for name in BUNDLE_FILES},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--evaluation", type=Path, required=True, help="The bundle's evaluation record (edgerep evaluate -o).")
    p.add_argument("--command", required=True, help="The command that made the bundle.")
    p.add_argument("--commit", required=True, help="The commit of edgerep that made it.")
    p.add_argument("--teacher", required=True, help="What the student was distilled from.")
    p.add_argument("--variant", required=True, help="The compression variant (e.g. k3 dynamic-int4).")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--name", default="edgerep-default")
    p.add_argument("--note", action="append", help="A line under the validation table (repeatable).")
    p.add_argument("--out", type=Path, default=DEFAULT_BUNDLE_DIR)
    args = p.parse_args(argv)
    evaluation = read_record(args.evaluation, "evaluation")
    if evaluation["model"]["path"] and Path(evaluation["model"]["path"]).name not in (args.bundle.name, args.bundle.resolve().name):
        print(f"note: {args.evaluation} evaluated {evaluation['model']['path']}", file=sys.stderr)
    card = build_card(args.bundle, evaluation, args)
    # assemble beside the target, swap in whole: a half-shipped model is never left behind
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".ship-", dir=args.out.parent))
    tmp.chmod(0o755)  # package data: readable by every user of an installation
    for name in BUNDLE_FILES:
        shutil.copy2(args.bundle / name, tmp / name)
    shutil.copy2(args.evaluation, tmp / "evaluation.json")
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
