"""The reference encoder's architecture (MPNet) through the real path: entity-conditioned
fine-tuning, LiteRT export validated against PyTorch, the light runtime, evaluation, and the
study's comparison table (edgerep.measure.comparison).

The model is a tiny MPNet built from ``MPNetConfig`` with the MiniLM WordPiece vocabulary and
MPNet's pair layout (``<s> A </s></s> B </s>``, here with the vocabulary's ``[CLS]``/``[SEP]``):
no 438 MB download.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgerep import RELATEDNESS_LABELS
from edgerep.device.runtime import PolarityClassifier

pytestmark = pytest.mark.model


def make_tiny_mpnet(path: Path, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, processors
    from transformers import MPNetConfig, MPNetModel

    from edgerep.data.stats import default_tokenizer_json

    tok = Tokenizer.from_file(str(default_tokenizer_json()))
    tok.post_processor = processors.RobertaProcessing(("[SEP]", tok.token_to_id("[SEP]")), ("[CLS]", tok.token_to_id("[CLS]")))
    path.mkdir(parents=True)
    torch.manual_seed(seed)
    cfg = MPNetConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                      max_position_embeddings=130, pad_token_id=tok.token_to_id("[PAD]"))
    MPNetModel(cfg).save_pretrained(path)
    tok.save(str(path / "tokenizer.json"))
    specials = {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]", "mask_token": "[MASK]"}
    (path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512, **specials}))
    return path


@pytest.fixture(scope="module")
def tiny_mpnet_model(tmp_path_factory, data_root) -> Path:
    """A tiny entity-conditioned MPNet fine-tuned by the real code."""
    from edgerep.workstation.train import TrainConfig, train

    root = tmp_path_factory.mktemp("tiny-mpnet")
    cfg = TrainConfig(model=str(make_tiny_mpnet(root / "mpnet")), epochs=1, limit=128, batch_size=32, learning_rate=1e-3, max_seq_len=32,
                      seed=3, entity=True)
    return train(data_root, root / "run", cfg)


def test_mpnet_fine_tunes_exports_runs_and_enters_the_comparison(tmp_path, data_root, tiny_mpnet_model):
    from edgerep.data import sample_texts
    from edgerep.device.runtime import PolarityClassifier
    from edgerep.measure.evaluate import evaluate
    from edgerep.registry import Quantization
    from edgerep.workstation.export import export_bundles
    from edgerep.workstation.models import load_finetuned

    model = tiny_mpnet_model
    from edgerep.device.tokenizer import TweetTokenizer

    tok = TweetTokenizer(model / "tokenizer.json", 32, entity_conditioned=True)
    (ids,) = tok.ids(["great car"], "BMW")
    sep = tok._tok.token_to_id("[SEP]")
    assert [int(i) for i in ids].count(sep) == 3 and any(a == b == sep for a, b in zip(ids, ids[1:]))  # <s> A </s></s> B </s>
    info = json.loads((model / "edgerep_model.json").read_text())
    assert info["entity_conditioned"] and json.loads((model / "config.json").read_text())["model_type"] == "mpnet"

    tweets = sample_texts(data_root, "validation", 60)
    (result,) = export_bundles(model, tmp_path / "bundles", [Quantization.DYNAMIC_INT8], tweets)
    assert result.validation["passed"] and result.validation["label_agreement"] >= 0.95
    manifest = json.loads((Path(result.path) / "manifest.json").read_text())
    assert manifest["entity_conditioned"] and manifest["source"]["architecture"] == "MPNetForSequenceClassification"

    clf = PolarityClassifier(result.path, num_threads=1)
    pred = clf.classify("Great service from @BMW today!", entity="BMW")
    assert pred.label in pred.probabilities and abs(sum(pred.probabilities.values()) - 1) < 1e-5

    reference, edge = (evaluate(p, data_root, limit=64) for p in (model, result.path))
    from edgerep.measure.comparison import reference_comparison

    table = reference_comparison([("reference", reference), ("int8", edge)], None)
    ref_row, int8_row = table["rows"]
    assert ref_row[8] == "reference" and ref_row[3] == "1.0"
    assert float(int8_row[3]) > 1.0  # int8 is smaller than the float32 reference
    torch_model, _ = load_finetuned(model)
    assert float(ref_row[1]) == pytest.approx(sum(p.numel() for p in torch_model.parameters()) / 1e6, abs=0.05)
    assert " to " in int8_row[8] and int8_row[9] == "–"  # an interval; no bench given
    assert table["columns"][4] == "x smaller than BERT-large fp32"
    assert table["caption"].startswith("Validation split of fold 0 ")
    later = {**reference, "data": {**reference["data"], "split_config": {**reference["data"]["split_config"], "fold": 1}}}
    assert reference_comparison([("reference", later)], None)["caption"].startswith("Validation split of fold 1 ")  # the records' fold


@pytest.mark.parametrize("source_in_targets", [False, True])
def test_a_reference_teacher_reads_tweets_with_its_own_tokenizer(tmp_path, data_root, tiny_entity_model, tiny_mpnet_model,
                                                                source_in_targets):
    """The student takes the BERT source's layers and tokenizer; the MPNet teacher's soft targets
    are its own logits on its own tokenization (alone, or averaged with the source's)."""
    import numpy as np
    import torch

    from edgerep.device.tokenizer import TweetTokenizer
    from edgerep.workstation.compress.distill import DistillConfig, distill
    from edgerep.workstation.inference import ids_logits
    from edgerep.workstation.models import load_finetuned

    cfg = DistillConfig(teachers=(str(tiny_entity_model), str(tiny_mpnet_model)), source_in_targets=source_in_targets, layers=1,
                        epochs=1, limit=96, seed=5)
    student = distill(data_root, tmp_path / "k1", cfg)
    with np.load(tmp_path / "k1" / "teacher-logits.npz") as z:
        logits = z["logits"]
    assert logits.shape[0] == (2 if source_in_targets else 1) and logits.shape[1:] == (96, 3)

    # the MPNet teacher's row: its own tokenizer on the transfer tweets (entity pairs)
    mpnet, info = load_finetuned(tiny_mpnet_model)
    own = TweetTokenizer(tiny_mpnet_model / "tokenizer.json", int(info["max_seq_len"]), entity_conditioned=True)
    from edgerep.workstation.compress import distill as D

    bert_info = json.loads((tiny_entity_model / "edgerep_model.json").read_text())
    bert_tok = TweetTokenizer(tiny_entity_model / "tokenizer.json", int(bert_info["max_seq_len"]), entity_conditioned=True)
    from edgerep.data import SplitConfig

    data = D._transfer_set(data_root, SplitConfig(), bert_tok, cfg)
    with torch.inference_mode():
        expected = ids_logits(mpnet, own, own.ids(data.texts[:16], data.entities[:16]))
    np.testing.assert_allclose(logits[-1][:16], expected, atol=1e-4)

    assert json.loads((student / "config.json").read_text())["model_type"] == "bert"
    assert (student / "tokenizer.json").read_bytes() == (tiny_entity_model / "tokenizer.json").read_bytes()
    assert json.loads((student / "edgerep_model.json").read_text())["distillation"]["source_in_targets"] is source_in_targets


def test_the_source_alone_cannot_be_left_out_of_the_targets():
    from edgerep.app.compress import CompressConfig
    from edgerep.errors import ConfigError
    from edgerep.workstation.compress.distill import DistillConfig

    with pytest.raises(ConfigError, match="needs a second teacher"):
        DistillConfig(teachers=("runs/default/train/model",), source_in_targets=False)
    with pytest.raises(ConfigError, match="--teacher-only: give the teacher"):
        CompressConfig(run_model_in_targets=False)


def test_large_run_with_a_reference_pretrains_trains_members_and_the_reference_and_distills_from_all(tmp_path, data_root, tiny_pretrained):
    """``edgerep run --budget large --reference --relatedness``: domain-adaptive pretraining, two
    more seeds, the reference fine-tuned, exported, evaluated and timed beside the run's model, the
    students distilled from all of them, and the comparison table in results/ and the report;
    every model decides relatedness too, down to the recommended bundle."""
    from edgerep.app.compress import CompressConfig
    from edgerep.app.pipeline import RunConfig, reference_recipe, run
    from edgerep.workstation.pretrain import PretrainConfig
    from edgerep.workstation.train import TrainConfig

    from conftest import TINY_TRAIN

    train_cfg = TrainConfig(model=str(tiny_pretrained), **{**TINY_TRAIN, "limit": 64, "entity": True, "relatedness": True})
    reference = reference_recipe(train_cfg, str(make_tiny_mpnet(tmp_path / "mpnet")))
    cfg = RunConfig.for_budget(
        "large", train_cfg, quantizations=("dynamic-int8",), export_validation_tweets=16, latency_tweets=4, reference=reference,
        compress=CompressConfig(quantizations=("dynamic-int4",), epochs=1, prune_vocabulary=False, accuracy_budget=0.99),
        pretrain=PretrainConfig(batch_size=16, learning_rate=1e-3, max_seq_len=32),
    )
    assert cfg.ensemble_seeds == (14, 15)
    summary = run(data_root, tmp_path / "run", cfg)
    run_dir = tmp_path / "run"
    log = (run_dir / "edgerep.log").read_text()
    assert "1/10 pretrain" in log and "3/10 ensemble members" in log and "4/10 reference (fine-tune" in log
    assert "9/10 comparison" in log and "10/10 report" in log
    trained_from = json.loads((run_dir / "train" / "model" / "edgerep_model.json").read_text())["source_model"]
    assert trained_from == str(run_dir / "pretrain" / "model")  # fine-tuned from the adapted encoder
    for seed in (14, 15):
        info = json.loads((run_dir / "members" / f"seed-{seed}" / "model" / "edgerep_model.json").read_text())
        assert info["train_config"]["seed"] == seed and info["source_model"] == trained_from
    ens = json.loads((run_dir / "results" / "ensemble.json").read_text())
    assert ens["schema"] == "edgerep.ensemble" and len(ens["members"]) == 3 and 0 < ens["ensemble"]["accuracy"] <= 1

    assert [r["model"] for r in summary["rows"]] == ["pytorch", "dynamic-int8", "reference-pytorch", "reference-dynamic-int8"]
    assert all(r.get("latency_p50_ms", 0) > 0 for r in summary["rows"] if r["model"].endswith("int8"))  # one bench run, both bundles
    ref_info = json.loads((run_dir / "reference" / "model" / "edgerep_model.json").read_text())
    assert ref_info["train_config"]["learning_rate"] == 3e-5 and ref_info["train_config"]["epochs"] == 2  # the reference recipe
    assert ref_info["source_model"] == reference.model  # not the adapted encoder
    assert json.loads((run_dir / "reference" / "model" / "config.json").read_text())["model_type"] == "mpnet"
    student = json.loads((run_dir / "compress" / "distill" / "k1" / "model" / "edgerep_model.json").read_text())
    teachers = student["distillation"]["teachers"]
    assert len(teachers) == 4 and teachers[-1] == str(run_dir / "reference" / "model")  # the run's model, two members, the reference
    assert student["labels"] == list(RELATEDNESS_LABELS) and "filtering" in student["validation"]
    assert PolarityClassifier(run_dir / "bundles" / "recommended").relatedness
    evaluation = json.loads((run_dir / "results" / "evaluation-reference-dynamic-int8.json").read_text())
    assert evaluation["model"]["relatedness"] and evaluation["metrics"]["filtering"]["n"] > evaluation["metrics"]["n"]

    table = json.loads((run_dir / "results" / "comparison.json").read_text())
    labels = [row[0] for row in table["rows"]]
    assert labels[:4] == ["reference float32 (transformers)", "reference dynamic-int8", "float32 (transformers)", "dynamic-int8"]
    assert labels[-1] == "recommended student" and table["rows"][0][8] == "reference"
    assert all(row[9] != "–" for row in table["rows"] if "transformers" not in row[0])  # every bundle timed in comparison-bench.json
    assert summary["comparison"] == str(run_dir / "results" / "comparison.json")
    report = (run_dir / "report" / "report.md").read_text()
    assert "## The edge models against the reference" in report and "recommended student" in report
    assert "Teacher recipes and ensembles" in report  # the ensemble record is reported

    again = run(data_root, run_dir, cfg)  # resumes: every stage kept
    assert again["rows"] == summary["rows"]


def test_a_wrong_reference_fails_before_anything_is_written(tmp_path, data_root):
    from edgerep.app.pipeline import RunConfig, reference_recipe, run
    from edgerep.errors import ModelLoadError
    from edgerep.workstation.train import TrainConfig

    cfg = RunConfig(reference=reference_recipe(TrainConfig(limit=64), str(tmp_path / "no-such-model")))
    with pytest.raises(ModelLoadError, match="no-such-model"):
        run(data_root, tmp_path / "run", cfg)
    assert not (tmp_path / "run").exists()
