"""Relatedness (RepLab's filtering task) as a fourth class of the polarity head: the corpus's
UNRELATED tweets, the split that leaves the polarity split as it is, the metrics, and one tiny
model from training through export to the runtime, the API, batch output and evaluation."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from edgerep import LABELS, RELATEDNESS_LABELS, UNRELATED
from edgerep.data import SplitConfig
from edgerep.data.replab import load_split
from edgerep.data.split import split_train_validation
from edgerep.device.runtime import relatedness_split, softmax
from edgerep.measure.metrics import logits_report, related_decision


@pytest.fixture(scope="module")
def corpus(data_root):
    return load_split(data_root, "training"), load_split(data_root, "training", relatedness=True)


def test_unrelated_tweets_are_the_english_unrelated_rows_with_text(corpus, data_root):
    (polarity, polarity_report), (both, report) = corpus
    unrelated = [t for t in both if not t.related]
    assert [t for t in both if t.related] == polarity
    assert {t.label for t in unrelated} == {UNRELATED} and all(t.label_id == 3 for t in unrelated)
    rows = 0  # count the files' English UNRELATED rows directly
    for lab in (data_root / "training" / "labeled").glob("*.dat"):
        info = {}
        for line in (data_root / "training" / "tweet_info" / lab.name).read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
            f = [x.strip('"') for x in line.split("\t")]
            info[f[0]] = f[4]
        for line in lab.read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
            f = [x.strip('"') for x in line.split("\t")]
            rows += f[3] == "UNRELATED" and info.get(f[0]) == "EN"
    # every English UNRELATED row is kept but those whose text is empty or missing (deleted tweets)
    no_text = sum(report.dropped[k] - polarity_report.dropped[k] for k in ("empty_text", "missing_text"))
    assert 0 < no_text < 0.05 * rows and len(unrelated) == rows - no_text
    assert report.to_dict()["label_counts"][UNRELATED] == len(unrelated)


@pytest.mark.parametrize("fold", [0, 1])
def test_unrelated_tweets_leave_the_polarity_split_as_it_is_and_follow_its_time_boundaries(corpus, fold):
    (polarity, _), (both, _) = corpus
    cfg = SplitConfig(fold=fold)
    train_p, val_p = split_train_validation(polarity, cfg)
    train_b, val_b = split_train_validation(both, cfg)
    assert [t for t in train_b if t.related] == train_p and [t for t in val_b if t.related] == val_p
    val_u = [t for t in val_b if not t.related]
    assert 0.1 < len(val_u) / len(val_b) < 0.4
    for entity in {t.entity_id for t in val_u}:
        start = min(t.timestamp for t in val_p if t.entity_id == entity)
        end = max(t.timestamp for t in val_p if t.entity_id == entity)
        assert all(t.timestamp >= start for t in val_u if t.entity_id == entity)
        assert all(t.timestamp < start for t in train_b if t.entity_id == entity and not t.related)
        if fold:
            assert all(t.timestamp <= end for t in val_u if t.entity_id == entity)


def test_metrics_score_polarity_on_related_tweets_and_filtering_on_all():
    gold = np.array([0, 1, 2, 3, 3, 0])
    logits = np.array(
        [
            [5.0, 0, 0, 0],  # NEGATIVE, related
            [0, 0, 5.0, 0],  # gold NEUTRAL, says POSITIVE
            [0, 0, 5.0, 6.0],  # gold POSITIVE, says unrelated: polarity read from the first three
            [0, 0, 0, 5.0],  # UNRELATED, right
            [5.0, 0, 0, 0],  # UNRELATED, says related
            [1.0, 0, 0, 1.2],  # P(UNRELATED) < 0.5 though its logit is the largest: related
        ]
    )
    assert related_decision(logits).tolist() == [True, True, False, False, True, True]
    r = logits_report(gold, logits, RELATEDNESS_LABELS)
    assert r["n"] == 4 and r["labels"] == list(LABELS) and r["accuracy"] == pytest.approx(3 / 4)
    f = r["filtering"]
    assert f["n"] == 6 and f["accuracy"] == pytest.approx(4 / 6)
    assert f["per_class"]["UNRELATED"]["precision"] == 0.5 and f["per_class"]["UNRELATED"]["recall"] == 0.5
    plain = logits_report(gold[:3], logits[:3, :3], LABELS)
    assert "filtering" not in plain and plain["accuracy"] == pytest.approx(2 / 3)


def test_relatedness_split_is_the_conditional_polarity_and_one_minus_unrelated():
    p = softmax(np.array([[1.0, 2.0, 0.5, -1.0], [0.0, 0.0, 0.0, 4.0]]))
    polarity, related = relatedness_split(p)
    assert polarity.shape == (2, 3) and np.allclose(polarity.sum(axis=1), 1)
    assert np.allclose(polarity, softmax(np.array([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]])), atol=1e-6)
    assert np.allclose(related, 1 - p[:, 3])


def test_factorized_head_gives_log_probabilities_and_keeps_unrelated_loss_off_the_polarity_scores():
    torch = pytest.importorskip("torch")
    from edgerep.workstation.heads import RelatednessHead, relatedness_loss

    torch.manual_seed(0)
    head = RelatednessHead(8, 4)
    x = torch.randn(5, 8)
    logits = head(x)
    z = torch.nn.functional.linear(x, head.weight, head.bias)
    assert torch.allclose(logits.exp().sum(-1), torch.ones(5), atol=1e-6)
    p_related = torch.sigmoid(z[:, 3])
    assert torch.allclose(logits.exp()[:, :3], torch.softmax(z[:, :3], -1) * p_related[:, None], atol=1e-6)
    assert torch.allclose(1 - logits.exp()[:, 3], p_related, atol=1e-6)
    # an UNRELATED tweet's cross-entropy moves the relatedness score only
    z = z.detach().requires_grad_(True)
    composed = torch.cat([torch.log_softmax(z[:, :3], -1) + torch.nn.functional.logsigmoid(z[:, 3:]), torch.nn.functional.logsigmoid(-z[:, 3:])], -1)
    torch.nn.functional.cross_entropy(composed, torch.full((5,), 3)).backward()
    assert torch.allclose(z.grad[:, :3], torch.zeros(5, 3), atol=1e-7) and (z.grad[:, 3] != 0).all()
    assert torch.allclose(composed, logits, atol=1e-6)
    # the weighted loss: the cross-entropy at weight 1; the relatedness term alone scales with the weight
    labels = torch.tensor([0, 1, 2, 3, 3])
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert torch.allclose(relatedness_loss(logits, labels, 1.0), ce, atol=1e-6)
    unrelated = torch.tensor([3, 3, 3, 3, 3])
    assert torch.allclose(relatedness_loss(logits, unrelated, 0.3), 0.3 * torch.nn.functional.cross_entropy(logits, unrelated), atol=1e-6)


@pytest.fixture(scope="module")
def related_bundle(tmp_path_factory, tiny_pretrained, data_root):
    """A tiny entity-conditioned model trained with relatedness, and its dynamic-int8 bundle."""
    from conftest import TINY_TRAIN
    from edgerep.data import sample_texts
    from edgerep.registry import Quantization
    from edgerep.workstation.export import export_bundles
    from edgerep.workstation.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny-related")
    model = train(data_root, out / "train", TrainConfig(model=str(tiny_pretrained), **{**TINY_TRAIN, "entity": True, "relatedness": True}))
    (result,) = export_bundles(model, out / "bundles", [Quantization.DYNAMIC_INT8], sample_texts(data_root, "validation", 50))
    return model, result.path


def test_a_relatedness_model_trains_exports_and_classifies(related_bundle, data_root, tmp_path):
    from edgerep.app.batch import BatchConfig, run_batch
    from edgerep.device.runtime import PolarityClassifier
    from edgerep.measure.evaluate import evaluate

    model, bundle = related_bundle
    info = json.loads((model / "edgerep_model.json").read_text())
    assert info["labels"] == list(RELATEDNESS_LABELS) and info["train_config"]["relatedness"] is True
    assert json.loads((model / "config.json").read_text())["edgerep_relatedness_head"] == "factorized"
    filtering = info["validation"]["filtering"]
    assert filtering["n"] > info["validation"]["n"] and 0 <= filtering["unrelated_f1"] <= 1

    clf = PolarityClassifier(bundle)
    assert clf.relatedness and clf.labels == RELATEDNESS_LABELS
    pred = clf.classify("Loving my new BMW, best car ever", "BMW")
    assert np.exp(pred.logits).sum() == pytest.approx(1, abs=1e-3)  # the head's logits are log-probabilities
    p = softmax(pred.logits[None, :])[0]
    assert pred.p_related == pytest.approx(1 - p[3], abs=1e-5) and pred.related == (pred.p_related >= 0.5)
    assert list(pred.probabilities) == list(LABELS) and sum(pred.probabilities.values()) == pytest.approx(1, abs=1e-5)
    assert pred.label == LABELS[int(np.argmax(pred.logits[:3]))]
    assert set(pred.to_dict()) == {"label", "probabilities", "related", "p_related"}

    rec = evaluate(bundle, data_root)
    polarity_val = split_train_validation(load_split(data_root, "training")[0], SplitConfig())[1]
    assert rec["model"]["relatedness"] and rec["metrics"]["n"] == len(polarity_val)
    assert rec["metrics"]["filtering"]["n"] > len(polarity_val)
    assert len(rec["predictions"]["gold_ids"]) == len(polarity_val) and max(rec["predictions"]["gold_ids"]) <= 2

    src = tmp_path / "tweets.jsonl"
    src.write_text(
        "".join(
            json.dumps({"id": str(i), "text": t, "entity": "BMW"}) + "\n" for i, t in enumerate(["BMW recalls cars", "nice weather", ""])
        )
    )
    run_batch([src], tmp_path / "out", bundle, BatchConfig(keep_text=True), show_progress=False)
    import pyarrow.parquet as pq

    rows = pq.read_table(tmp_path / "out" / "part-00000.parquet").to_pylist()
    assert [r["related"] is None for r in rows] == [False, False, True]  # the empty text is an error row
    assert [r["text"] for r in rows] == ["BMW recalls cars", "nice weather", ""]
    first = clf.classify("BMW recalls cars", "BMW")
    assert rows[0]["related"] == first.related and rows[0]["p_related"] == pytest.approx(first.p_related, abs=1e-6)
    assert Counter(r["label"] for r in rows[:2]) == Counter([first.label, clf.classify("nice weather", "BMW").label])


def test_the_api_answers_related_and_its_probability(related_bundle):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from edgerep.device.runtime import PolarityClassifier
    from edgerep.device.serve import ServeConfig, create_app

    _, bundle = related_bundle
    with TestClient(create_app(bundle, ServeConfig())) as client:
        r = client.post("/classify", json={"texts": ["BMW recalls cars", "a"], "entity": "BMW"})
        assert r.status_code == 200
        want = PolarityClassifier(bundle).classify("BMW recalls cars", "BMW").to_dict()
        got = r.json()["predictions"][0]
        assert got["related"] == want["related"] and got["p_related"] == pytest.approx(want["p_related"], abs=1e-6)
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)
        schema = client.get("/openapi.json").json()["components"]["schemas"]["Prediction"]
        assert {"related", "p_related"} <= set(schema["required"])
