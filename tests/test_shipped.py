"""The model shipped in the package: its files match the card's SHA-256, it loads with the light
runtime and classifies real tweets as its evaluation record says, the card's figures and text
are the records', and the commands use it when no bundle is given."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from edgerep.device.shipped import (
    BUNDLE_FILES,
    DEFAULT_BUNDLE_DIR,
    ShippedModelError,
    default_bundle,
    read_card,
    render_card,
    verify_bundle,
)
from edgerep.measure.metrics import classification_report
from edgerep.registry import MB

REPO = Path(__file__).resolve().parents[1]


def test_the_bundle_matches_its_card_and_fits_an_edge_device():
    card = verify_bundle()
    assert set(card["sha256"]) == set(BUNDLE_FILES)
    size = (DEFAULT_BUNDLE_DIR / "model.tflite").stat().st_size / MB
    assert size <= 8.4 and card["bundle"]["size_mb"] == pytest.approx(size, abs=1e-3)
    assert card["bundle"]["files_mb"] == pytest.approx(sum((DEFAULT_BUNDLE_DIR / f).stat().st_size for f in BUNDLE_FILES) / MB, abs=1e-3)
    manifest = json.loads((DEFAULT_BUNDLE_DIR / "manifest.json").read_text())
    assert manifest["entity_conditioned"] and manifest["labels"] == card["bundle"]["labels"]


def test_the_cards_figures_are_its_evaluation_records():
    card = read_card()
    assert "fold 0" in card["validation"] and card["validation"]["fold 0"]["record"] == "evaluation.json"
    for name, fold in card["validation"].items():
        rec = json.loads((DEFAULT_BUNDLE_DIR / fold["record"]).read_text())
        assert name == f"fold {rec['data']['split_config']['fold']}"
        labels = rec["metrics"]["labels"]
        report = classification_report(rec["predictions"]["gold_ids"], rec["predictions"]["label_ids"], labels)
        assert fold["n"] == len(rec["predictions"]["gold_ids"]) == rec["metrics"]["n"]
        assert fold["accuracy"] == pytest.approx(report["accuracy"]) and fold["macro_f1"] == pytest.approx(report["macro_f1"])
        assert {k: pytest.approx(v) for k, v in fold["f1"].items()} == {lab: report["per_class"][lab]["f1"] for lab in labels}
        # a later fold's block lies in the bundle's own training part: its row is the recipe's own models'
        assert bool(fold.get("models")) == (name != "fold 0")
    rec = json.loads((DEFAULT_BUNDLE_DIR / "evaluation.json").read_text())
    assert rec["model"]["size_mb"] == pytest.approx(card["bundle"]["size_mb"], abs=0.01)
    assert (DEFAULT_BUNDLE_DIR / "MODEL_CARD.md").read_text() == render_card(card)  # generated, not edited
    assert card["made_by"]["commit"] and card["made_by"]["command"].startswith("edgerep ")


def test_it_classifies_real_tweets_as_its_record_says(data_root):
    from edgerep.data import SplitConfig, select_tweets
    from edgerep.device.runtime import PolarityClassifier
    from edgerep.measure.evaluate import tweets_digest

    rec = json.loads((DEFAULT_BUNDLE_DIR / "evaluation.json").read_text())
    tweets, _ = select_tweets(data_root, "training", "auto", SplitConfig(**rec["data"]["split_config"]))
    assert tweets_digest(tweets) == rec["predictions"]["tweets_sha256"]  # the record's own tweets
    idx = list(range(0, len(tweets), 20))
    clf = PolarityClassifier(default_bundle(), num_threads=1)
    logits = clf.logits([tweets[i].text for i in idx], entities=[tweets[i].entity_name for i in idx])
    assert logits.shape == (len(idx), 3) and logits.dtype == np.float32
    recorded = np.asarray(rec["predictions"]["label_ids"])[idx]
    assert (logits.argmax(1) == recorded).mean() >= 0.99


def test_commands_use_it_when_no_bundle_is_given():
    proc = run_cli("classify", "Great service from @BMW today!", "--entity", "BMW", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    line = json.loads(proc.stdout)
    assert line["label"] in ("NEGATIVE", "NEUTRAL", "POSITIVE") and abs(sum(line["probabilities"].values()) - 1) < 1e-4
    proc = run_cli("classify", "Great service from @BMW today!")
    assert proc.returncode == 1 and b"give --entity NAME" in proc.stderr


def test_an_altered_or_missing_file_is_refused(tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE_DIR, copy)
    verify_bundle(copy)
    with open(copy / "model.tflite", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    with pytest.raises(ShippedModelError, match="differs from its card"):
        verify_bundle(copy)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(ShippedModelError, match="missing"):
        verify_bundle(copy)
    with pytest.raises(ShippedModelError, match="no shipped model"):
        verify_bundle(Path(tmp_path / "nowhere"))


def _ship(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "ship_model.py"), *argv], capture_output=True, text=True)


def test_the_card_is_rebuilt_from_its_records_alone(tmp_path):
    card = read_card()
    others = [DEFAULT_BUNDLE_DIR / f["record"] for name, f in card["validation"].items() if name != "fold 0"]
    argv = [str(DEFAULT_BUNDLE_DIR), "--evaluation", str(DEFAULT_BUNDLE_DIR / "evaluation.json")]
    argv += [a for path in others for a in ("--fold-evaluation", str(path))]
    argv += ["--command", card["made_by"]["command"], "--commit", card["made_by"]["commit"], "--teacher", card["teacher"]]
    argv += ["--variant", card["bundle"]["variant"], "--layers", str(card["bundle"]["layers"]), "--name", card["name"]]
    argv += [a for note in card.get("validation_notes", []) for a in ("--note", note)]
    proc = _ship(*argv, "--out", str(tmp_path / "shipped"))
    assert proc.returncode == 0, proc.stderr
    rebuilt = json.loads((tmp_path / "shipped" / "card.json").read_text())
    rebuilt["made_by"]["date"] = card["made_by"]["date"]
    assert rebuilt == card
    assert sorted(p.name for p in (tmp_path / "shipped").iterdir()) == sorted(p.name for p in DEFAULT_BUNDLE_DIR.iterdir())


def test_a_bad_fold_record_is_one_usage_line_and_nothing_is_shipped(tmp_path):
    evaluation = str(DEFAULT_BUNDLE_DIR / "evaluation.json")
    missing = str(tmp_path / "evaluation-fold1.json")
    for fold_record, message in ((evaluation, "a second record of fold 0"), (missing, f"{missing}: record not found")):
        argv = [str(DEFAULT_BUNDLE_DIR), "--evaluation", evaluation, "--fold-evaluation", fold_record]
        argv += ["--command", "edgerep compress RUN", "--commit", "0", "--teacher", "t", "--variant", "v"]
        proc = _ship(*argv, "--out", str(tmp_path / "shipped"))
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
        assert not (tmp_path / "shipped").exists()
