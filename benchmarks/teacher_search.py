#!/usr/bin/env python
"""The recorded search over teacher recipes on two temporal folds of the RepLab training split.

Each trial is one recipe (training settings, entity conditioning, auxiliary data, pretraining)
trained on one fold by the real ``edgerep`` code; its result is a versioned ``edgerep.trial``
record in ``OUT/trials/<recipe>-f<fold>.json`` with the settings, per-epoch validation history,
the best epoch's accuracy, macro-F1, per-class F1 and per-domain scores, and the minutes it cost.
Trials resume (a finished one is read back, an interrupted one continues from its last epoch),
so the search can run one trial at a time:

    python benchmarks/teacher_search.py --data ../shared/data/replab2013 --out runs/search --trials entity --folds 0,1
    python benchmarks/teacher_search.py --out runs/search --table          # Markdown table of every trial

Fold 0 validates on each entity's latest 15% of tweets (the default run's validation split),
fold 1 on the 15% before them, training only on earlier tweets: a recipe is kept when it wins on
both. Cost: one MiniLM-L6 epoch is 6-10 min on 2 cores; a 3-epoch trial ~20-30 min, fold 1 ~15%
less (less training data); pretraining adds one masked-LM epoch (~15-20 min).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgerep.measure.records import make_record, read_record, write_record

TWEETEVAL = "../shared/data/tweeteval-sentiment"

#: recipe name -> (TrainConfig keyword arguments, domain-adaptive pretraining first?)
RECIPES: dict[str, tuple[dict, bool]] = {
    "baseline": ({}, False),
    "entity": ({"entity": True}, False),
    "entity-sentiment": ({"entity": True, "sentiment_data": TWEETEVAL}, False),
    "entity-joint": ({"entity": True, "sentiment_data": TWEETEVAL, "sentiment_mode": "joint"}, False),
    "entity-dapt": ({"entity": True}, True),
    "entity-classweighted": ({"entity": True, "class_weighted": True}, False),
    "entity-smooth": ({"entity": True, "label_smoothing": 0.1}, False),
    "entity-lr8e-5": ({"entity": True, "learning_rate": 8e-5}, False),
    "entity-4ep": ({"entity": True, "epochs": 4}, False),
}


def run_trial(data: str, out: Path, recipe: str, fold: int, seed: int = 13) -> dict:
    """Train ``recipe`` on ``fold`` (resuming), evaluate its best epoch, write and return the trial record."""
    from edgerep.data import SplitConfig
    from edgerep.measure.evaluate import evaluate, out_of_domain_probabilities
    from edgerep.workstation.pretrain import PretrainConfig, pretrain
    from edgerep.workstation.train import TrainConfig, train

    kwargs, dapt = dict(RECIPES[recipe][0]), RECIPES[recipe][1]
    name = f"{recipe}-f{fold}" + (f"-s{seed}" if seed != 13 else "")
    record_path = out / "trials" / f"{name}.json"
    if record_path.is_file():
        return read_record(record_path, "trial")
    split = SplitConfig(fold=fold)
    t0 = time.perf_counter()
    model = kwargs.pop("model", "all-MiniLM-L6-v2")
    if dapt:
        model = str(pretrain(data, out / f"dapt-f{fold}", PretrainConfig(split=split, extra_text=(TWEETEVAL,))))
    model_dir = train(data, out / name, TrainConfig(model=model, split=split, seed=seed, **kwargs))
    info = json.loads((model_dir / "edgerep_model.json").read_text())
    evaluation = evaluate(model_dir, data, "training", "validation")
    _, ood = out_of_domain_probabilities(model_dir, TWEETEVAL)
    history = json.loads((out / name / "history.json").read_text())
    rec = make_record("trial", {
        "recipe": recipe, "fold": fold, "seed": seed, "pretraining": dapt,
        "train_config": info["train_config"],
        "history": history,
        "best_epoch": info["best_epoch"],
        "metrics": {k: evaluation["metrics"][k] for k in ("accuracy", "macro_f1", "per_class", "per_domain", "n")},
        "out_of_domain": ood,
        "minutes": round(sum(h["train_seconds"] for h in history) / 60 + info.get("intermediate_task", {}).get("seconds", 0) / 60, 1),
        "session_minutes": round((time.perf_counter() - t0) / 60, 1),
        "model_dir": str(model_dir),
    })
    write_record(record_path, rec)
    return rec


def table(out: Path) -> str:
    """Markdown table of every trial record under ``out/trials``: one row per recipe and fold."""
    rows = []
    for p in sorted((out / "trials").glob("*.json")):
        r = read_record(p, "trial")
        m = r["metrics"]
        f1 = {c: m["per_class"][c]["f1"] for c in m["per_class"]}
        ood = f"{r['out_of_domain']['macro_f1']:.4f}" if r.get("out_of_domain") else "–"
        rows.append(f"| {r['recipe']} | {r['fold']} | {r['best_epoch']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | "
                    f"{f1['NEGATIVE']:.3f} | {f1['NEUTRAL']:.3f} | {f1['POSITIVE']:.3f} | {ood} | {r['minutes']:.0f} |")
    head = ("| recipe | fold | best epoch | accuracy | macro-F1 | F1 NEG | F1 NEU | F1 POS | out-of-domain macro-F1 | minutes |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    return "\n".join([head, *rows])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/replab2013")
    ap.add_argument("--out", default="runs/search", type=Path)
    ap.add_argument("--trials", default="", help=f"comma-separated recipes: {', '.join(RECIPES)}")
    ap.add_argument("--folds", default="0", help="comma-separated temporal folds (0, 1)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--table", action="store_true", help="print the Markdown table of the finished trials")
    a = ap.parse_args()
    from edgerep.errors import EdgerepError
    from edgerep.log import configure

    configure(log_file=a.out / "search.log")
    try:
        for recipe in [t for t in a.trials.split(",") if t]:
            if recipe not in RECIPES:
                sys.exit(f"error: unknown recipe {recipe!r}; valid: {', '.join(RECIPES)}")
            for fold in (int(f) for f in a.folds.split(",")):
                r = run_trial(a.data, a.out, recipe, fold, a.seed)
                print(f"{recipe} fold {fold}: accuracy {r['metrics']['accuracy']:.4f}, macro-F1 {r['metrics']['macro_f1']:.4f}", file=sys.stderr)
    except EdgerepError as e:
        sys.exit(f"error: {e}")
    if a.table or not a.trials:
        print(table(a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
