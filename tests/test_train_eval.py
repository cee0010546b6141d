"""Fine-tuning (resume, config checks), evaluation records, and the one-command pipeline."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from conftest import TINY_TRAIN, Interrupted, interrupt_after_epoch_1, interrupt_at_step, run_cli
from edgerep.errors import ConfigError
from edgerep.workstation.train import TrainConfig, choose_max_seq_len, train


def test_choose_max_seq_len():
    lengths = np.array([10] * 98 + [41, 60])
    assert choose_max_seq_len(lengths, 99, 512) == 48  # p99 = 41.19 -> 48
    assert choose_max_seq_len(lengths, 50, 512) == 16
    assert choose_max_seq_len(lengths, 100, 32) == 32


def test_tiny_model_dir(tiny_model):
    info = json.loads((tiny_model / "edgerep_model.json").read_text())
    assert info["labels"] == ["NEGATIVE", "NEUTRAL", "POSITIVE"]
    assert info["max_seq_len"] == 32 and info["train_size"] == 256
    assert info["split"] == {"val_fraction": 0.15, "strategy": "temporal", "seed": 13, "fold": 0}
    assert info["entity_conditioned"] is False  # TINY_TRAIN: single tweets (tiny_entity_model covers pairs)
    assert info["data_report"]["kept"] == 26822
    assert (tiny_model / "tokenizer.json").is_file() and (tiny_model / "model.safetensors").is_file()


def test_resume_reproduces_uninterrupted_run(tiny_pretrained, data_root, tmp_path, monkeypatch):
    """Interrupt a 2-epoch run right after the epoch-1 checkpoint; the resumed run must end
    with the same weights as an uninterrupted one."""
    from safetensors.numpy import load_file

    cfg = TrainConfig(model=str(tiny_pretrained), **{**TINY_TRAIN, "epochs": 2, "limit": 96})
    full = train(data_root, tmp_path / "a", cfg)

    with interrupt_after_epoch_1(monkeypatch), pytest.raises(Interrupted):
        train(data_root, tmp_path / "b", cfg)
    assert not (tmp_path / "b" / "model").exists()
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == ["epoch-1"]
    resumed = train(data_root, tmp_path / "b", cfg)
    a = load_file(str(full / "model.safetensors"))
    b = load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6, err_msg=k)
    hist = json.loads((tmp_path / "b" / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2]

    # stop_after=1 of the same 2-epoch schedule: epoch 1 of the full run, weights and scores alike
    stopped = train(data_root, tmp_path / "c", replace(cfg, stop_after=1))
    ref = load_file(str(tmp_path / "a" / "checkpoints" / "epoch-1" / "model.safetensors"))
    got = load_file(str(stopped / "model.safetensors"))
    for k in got:
        np.testing.assert_allclose(got[k], ref[k], rtol=0, atol=1e-6, err_msg=k)
    hist_c = json.loads((tmp_path / "c" / "history.json").read_text())
    assert [h["epoch"] for h in hist_c] == [1] and hist_c[0]["validation"] == hist[0]["validation"]
    assert json.loads((tmp_path / "c" / "config.json").read_text())["stop_after"] == 1
    assert "stop_after" not in json.loads((tmp_path / "a" / "config.json").read_text())  # older run dirs still resume


def test_resume_inside_an_epoch_reproduces_uninterrupted_run(tiny_pretrained, data_root, tmp_path, monkeypatch):
    """A mid-epoch checkpoint after every batch; interrupt epoch 2 after its fifth batch (and
    epoch 1 after its third, in a second try): the resumed runs end with the weights, loss and
    validation figures of the uninterrupted run, and no mid-epoch checkpoint is left."""
    from safetensors.numpy import load_file

    cfg = TrainConfig(model=str(tiny_pretrained), **{**TINY_TRAIN, "epochs": 2, "limit": 256})
    full = train(data_root, tmp_path / "a", cfg, checkpoint_minutes=None)
    for run, (stop_epoch, stop_batch) in {"b": (2, 5), "c": (1, 3)}.items():
        # 256 tweets / 32 = 8 batches an epoch
        with interrupt_at_step(monkeypatch, (stop_epoch - 1) * 8 + stop_batch + 1), pytest.raises(Interrupted):
            train(data_root, tmp_path / run, cfg, checkpoint_minutes=0)
        state = json.loads((tmp_path / run / "checkpoints" / "mid-epoch" / "state.json").read_text())
        assert (state["epoch"], state["batches_done"]) == (stop_epoch, stop_batch)
        resumed = train(data_root, tmp_path / run, cfg, checkpoint_minutes=0)
        a, b = load_file(str(full / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6, err_msg=f"{run}: {k}")
        ha = json.loads((tmp_path / "a" / "history.json").read_text())
        hb = json.loads((tmp_path / run / "history.json").read_text())
        assert [h["validation"] for h in hb] == [h["validation"] for h in ha]
        assert [h["train_loss"] for h in hb] == pytest.approx([h["train_loss"] for h in ha], abs=1e-6)
        assert not (tmp_path / run / "checkpoints" / "mid-epoch").exists()


def test_stop_after_is_checked_and_the_recipe_default_applies_to_its_schedule_only():
    from edgerep.workstation.train import RECIPE_EPOCHS, RECIPE_STOP_AFTER, recipe_stop_after

    with pytest.raises(ConfigError, match=r"stop_after must be in \[1, epochs=3\], got 4"):
        TrainConfig(epochs=3, stop_after=4)
    assert TrainConfig(epochs=3, stop_after=2).trained_epochs == 2 and TrainConfig(epochs=3).trained_epochs == 3
    assert recipe_stop_after(RECIPE_EPOCHS) == RECIPE_STOP_AFTER == 2
    # stopping after the last epoch is the whole schedule: same settings as a run without the field
    assert TrainConfig(epochs=3, stop_after=3).to_dict() == TrainConfig(epochs=3).to_dict()
    assert recipe_stop_after(5) is None and recipe_stop_after(1) is None  # another schedule: every epoch
    assert recipe_stop_after(3, 3) == 3 and recipe_stop_after(5, 4) == 4


def test_other_settings_in_same_dir_refused(tiny_pretrained, data_root, tmp_path):
    from edgerep.io import check_or_write_config

    cfg = TrainConfig(model=str(tiny_pretrained), **{**TINY_TRAIN, "limit": 32})
    check_or_write_config(tmp_path / "config.json", cfg.to_dict(), ConfigError)
    other = TrainConfig(model=str(tiny_pretrained), **{**TINY_TRAIN, "limit": 32, "learning_rate": 1.0})
    with pytest.raises(ConfigError, match=r"other settings \(learning_rate\)"):
        train(data_root, tmp_path, other)


def test_a_record_older_than_its_bundle_is_stale(tmp_path):
    """Results are kept on resume only when written after the bundle or model they measured
    (a re-exported bundle rewrites its manifest last)."""
    import os

    from edgerep.io import record_is_current

    bundle, model, record = tmp_path / "b", tmp_path / "m", tmp_path / "evaluation.json"
    bundle.mkdir(), model.mkdir()
    (bundle / "manifest.json").write_text("{}")
    (model / "edgerep_model.json").write_text("{}")
    assert not record_is_current(record, bundle)  # no record yet
    record.write_text("{}")
    os.utime(record, (1e9, 1e9)), os.utime(bundle / "manifest.json", (1e9 - 5, 1e9 - 5)), os.utime(model / "edgerep_model.json", (1e9 - 5, 1e9 - 5))
    assert record_is_current(record, bundle, model)
    os.utime(bundle / "manifest.json", (1e9 + 5, 1e9 + 5))  # re-exported after the record
    assert not record_is_current(record, bundle) and record_is_current(record, model)


def test_evaluate_bundle_and_checkpoint(tiny_bundles, tiny_model, data_root):
    from edgerep.measure.evaluate import evaluate

    recs = {
        name: evaluate(path, data_root, "training", limit=200)
        for name, path in (("pytorch", tiny_model), ("fp32", tiny_bundles["fp32"]), ("int8", tiny_bundles["dynamic-int8"]))
    }
    for name, r in recs.items():
        m = r["metrics"]
        assert r["schema"] == "edgerep.evaluation" and r["schema_version"] == 1
        assert r["data"]["subset"] == "validation" and m["n"] == 200
        cm = np.array(m["confusion_matrix"])
        assert cm.sum() == 200 and m["accuracy"] == pytest.approx(np.trace(cm) / 200)
        assert sum(d["n"] for d in m["per_domain"].values()) == 200
    assert recs["fp32"]["metrics"]["confusion_matrix"] == recs["pytorch"]["metrics"]["confusion_matrix"]
    # per-tweet predictions: they reproduce the metrics, and pair two models scored on the same tweets
    from edgerep.measure.evaluate import paired_comparison
    from edgerep.measure.metrics import confusion_matrix

    for r in recs.values():
        p = r["predictions"]
        assert len(p["label_ids"]) == len(p["gold_ids"]) == 200
        assert confusion_matrix(p["gold_ids"], p["label_ids"], 3).tolist() == r["metrics"]["confusion_matrix"]
    assert len({r["predictions"]["tweets_sha256"] for r in recs.values()}) == 1
    vs = paired_comparison(recs["pytorch"], recs["int8"], resamples=300)
    assert vs["accuracy"]["diff"] == pytest.approx(recs["int8"]["metrics"]["accuracy"] - recs["pytorch"]["metrics"]["accuracy"])
    assert vs["macro_f1"]["low"] <= vs["macro_f1"]["diff"] <= vs["macro_f1"]["high"]
    other_tweets = evaluate(tiny_bundles["dynamic-int8"], data_root, "training", limit=100)
    assert paired_comparison(recs["pytorch"], other_tweets) is None
    assert paired_comparison({k: v for k, v in recs["pytorch"].items() if k != "predictions"}, recs["int8"]) is None
    assert abs(recs["int8"]["metrics"]["accuracy"] - recs["fp32"]["metrics"]["accuracy"]) <= 0.03
    assert recs["int8"]["model"]["size_mb"] < recs["fp32"]["model"]["size_mb"] * 0.6


def test_evaluate_test_split_missing(tiny_bundles, data_root):
    from edgerep.errors import DataError
    from edgerep.measure.evaluate import evaluate

    with pytest.raises(DataError, match="split 'test' not found"):
        evaluate(tiny_bundles["fp32"], data_root, "test")


def test_evaluate_cli_writes_record(tiny_bundles, data_root, tmp_path):
    out = tmp_path / "eval.json"
    proc = run_cli("evaluate", str(tiny_bundles["dynamic-int8"]), "--data", str(data_root), "--limit", "50", "-o", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    rec = json.loads(out.read_text())
    assert rec["metrics"]["n"] == 50 and rec["model"]["quantization"] == "dynamic-int8"
    assert b"accuracy" in proc.stdout


def test_run_pipeline_and_rerun_skips(tiny_pretrained, data_root, tmp_path):
    from edgerep.app.pipeline import RunConfig, run

    cfg = RunConfig(train=TrainConfig(model=str(tiny_pretrained), **{**TINY_TRAIN, "limit": 64, "entity": True}), export_validation_tweets=32, latency_tweets=10)
    summary = run(data_root, tmp_path / "run", cfg)
    assert summary["schema"] == "edgerep.summary"
    assert [r["model"] for r in summary["rows"]] == ["pytorch", "fp32", "dynamic-int8"]
    for r in summary["rows"][1:]:
        assert r["export_validation"]["passed"] and r["latency_p50_ms"] > 0
    results = sorted(p.name for p in (tmp_path / "run" / "results").iterdir())
    assert results == ["bench.json", "evaluation-dynamic-int8.json", "evaluation-fp32.json", "evaluation-pytorch.json"]
    bench = json.loads((tmp_path / "run" / "results" / "bench.json").read_text())  # the one latency path: edgerep bench's worker
    assert bench["schema"] == "edgerep.bench" and {c["quantization"] for c in bench["cells"]} == {"fp32", "dynamic-int8"}
    log = (tmp_path / "run" / "edgerep.log").read_text()
    assert "1/6 fine-tune" in log and "5/6 compress" in log and "6/6 report" in log and "[bold]" not in log  # plain lines, markup stripped
    comp = json.loads((tmp_path / "run" / "compress" / "compression.json").read_text())
    assert {r["model"] for r in comp["rows"]} == {"teacher-pruned", "k1-pruned"}  # half the tiny teacher's 2 layers
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["compression"]["rule"] == comp["rule"]
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "## Accuracy" in report and f"{summary['rows'][0]['accuracy']:.4f}" in report
    rebuilt = ("summary.json", "report", "edgerep.log")  # rewritten (the log: appended to) by every run
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*") if p.is_file() and p.relative_to(tmp_path / "run").parts[0] not in rebuilt}
    again = run(data_root, tmp_path / "run", cfg)
    assert [r["accuracy"] for r in again["rows"]] == [r["accuracy"] for r in summary["rows"]]
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # nothing redone
    with pytest.raises(ConfigError, match="other settings"):
        run(data_root, tmp_path / "run", RunConfig(train=cfg.train, export_validation_tweets=33, latency_tweets=10))


def test_run_budget_and_seeds_are_checked():
    from edgerep.app.pipeline import RunConfig

    with pytest.raises(ConfigError, match="budget 'huge' unknown; valid: default, large"):
        RunConfig.for_budget("huge", TrainConfig())
    with pytest.raises(ConfigError, match="must differ"):
        RunConfig(ensemble_seeds=(13,))


def test_quantization_matrix_tiny(tiny_model, data_root, tmp_path):
    """The whole matrix on tiny configs: fine-tuned model (evaluated) and the three paper
    architectures from config (size and agreement only)."""
    from edgerep.workstation.matrix import MatrixConfig, quantization_matrix

    cfg = MatrixConfig(
        quantizations=("fp32", "dynamic-int8", "int4-weights"), backends=("litert", "onnxruntime"),
        architectures=("mobilebert", "bert-base", "bert-large"), validation_tweets=20, calibration_tweets=10,
        eval_limit=40, tiny=True, max_seq_len=32,
    )
    rec = quantization_matrix(data_root, tmp_path / "m", tiny_model, cfg)
    rows = {(r["model"], r["backend"], r["quantization"]): r for r in rec["rows"]}
    models = {r["model"] for r in rec["rows"]}
    assert len(models) == 4 and {"mobilebert", "bert-base", "bert-large"} < models
    trained = next(m for m in models if m not in ("mobilebert", "bert-base", "bert-large"))
    # litert: 3 modes, onnxruntime: the 2 it supports, per model; + the PyTorch reference row
    assert len(rec["rows"]) == 4 * 5 + 1
    assert rows[(trained, "pytorch", "fp32")]["accuracy"] > 0
    r = rows[(trained, "litert", "dynamic-int8")]
    assert r["n"] == 40 and abs(r["accuracy_change"]) <= 0.05 and r["passed"]
    assert "accuracy" not in rows[("bert-base", "litert", "fp32")]  # random weights: no accuracy
    large = rows[("bert-large", "litert", "fp32")]
    assert rec["bert_large_fp32_mb"] == large["size_mb"] and large["ratio_to_bert_large_fp32"] == 1.0
    assert rows[("bert-large", "litert", "int4-weights")]["ratio_to_bert_large_fp32"] > 3
    for key, row in rows.items():
        if key[1] != "pytorch":
            assert row["passed"], (key, row)
    assert json.loads((tmp_path / "m" / "matrix.json").read_text())["schema"] == "edgerep.matrix"
    # the CLI renders the same record
    from edgerep.app.cli.tables import matrix_table
    from edgerep.app.report.tables import matrix_markdown

    assert matrix_table(rec).row_count == len(rec["rows"])
    md = matrix_markdown(rec).splitlines()
    assert len([x for x in md if x.startswith("| ")]) == len(rec["rows"]) + 1  # header + one line a row
    # re-running skips every finished artifact and gives the same record
    again = quantization_matrix(data_root, tmp_path / "m", tiny_model, cfg)
    assert [(r["path"], r["size_mb"], r.get("accuracy")) for r in again["rows"]] == [(r["path"], r["size_mb"], r.get("accuracy")) for r in rec["rows"]]
