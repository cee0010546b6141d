"""Entity-conditioned polarity: (entity name, tweet) pairs in the tokenizer, training, export,
runtime, CLI and service, on real RepLab tweets and the real entities file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from edgerep.data import sample_texts
from edgerep.device.text import normalize_entity, normalize_tweet
from edgerep.device.tokenizer import TweetTokenizer, segment_ids
from edgerep.errors import InputTextError


@pytest.fixture(scope="module")
def tokenizer_json():
    from edgerep.data.stats import default_tokenizer_json

    return default_tokenizer_json()


@pytest.fixture(scope="module")
def tweets(data_root):
    return sample_texts(data_root, "validation", 200)


def test_segment_ids_equal_the_tokenizers_own_type_ids(tokenizer_json, tweets):
    """The one segment rule (also computed inside exported graphs) equals what `tokenizers` says
    for every real (entity, tweet) pair, wherever the token is not padding."""
    from tokenizers import Tokenizer

    tok = TweetTokenizer(tokenizer_json, 48, entity_conditioned=True)
    enc = tok.encode(tweets.texts, entities=tweets.entities)
    ref = Tokenizer.from_file(str(tokenizer_json))
    ref.no_padding()
    ref.enable_truncation(max_length=48)
    for i, (t, e) in enumerate(zip(tweets.texts, tweets.entities)):
        r = ref.encode(normalize_entity(e), normalize_tweet(t))
        n = len(r.ids)
        assert enc.input_ids[i, :n].tolist() == r.ids
        assert enc.token_type_ids[i, :n].tolist() == r.type_ids
    assert np.array_equal(segment_ids(enc.input_ids, tok.sep_id), enc.token_type_ids)


def test_entity_tokens_count_in_max_seq_len(tokenizer_json, tweets):
    tok = TweetTokenizer(tokenizer_json, 24, entity_conditioned=True)
    ids = tok.ids(tweets.texts, tweets.entities)
    assert max(len(x) for x in ids) == 24
    bmw = tok.ids(["a " * 100], "BMW")[0]
    # the tweet is truncated, never the short entity: [CLS] bmw [SEP] a a ... [SEP]
    assert len(bmw) == 24 and bmw[2] == tok.sep_id and bmw[-1] == tok.sep_id
    single = TweetTokenizer(tokenizer_json, 24)
    pieces = len(single.ids(["Bank of America"])[0]) - 2  # without [CLS] and [SEP]
    # untruncated lengths: the tweet's own tokens, the entity's pieces, one more [SEP]
    np.testing.assert_array_equal(tok.token_lengths(tweets.texts, "Bank of America"), single.token_lengths(tweets.texts) + pieces + 1)


@pytest.mark.parametrize(
    "conditioned, entities, message",
    [
        (True, None, "entity-conditioned"),
        (True, "   ", "entity is empty"),
        (True, ["BMW"], "1 entities for 2 texts"),
        (True, ["BMW", "\u200b"], "entity of text 1"),
        (False, "BMW", "without entity conditioning"),
    ],
)
def test_entity_mistakes_are_clear_errors(tokenizer_json, conditioned, entities, message):
    tok = TweetTokenizer(tokenizer_json, 32, entity_conditioned=conditioned)
    with pytest.raises(InputTextError, match=message):
        tok.ids(["great car", "bad bank"], entities)


def test_corpus_tweets_carry_their_entitys_name(data_root):
    from edgerep.data import load_split
    from edgerep.data.replab import entity_names

    names = entity_names(data_root)
    assert names["RL2013D01E001"] == "BMW" and len(names) == 61
    tweets, _ = load_split(data_root, "training", entities=("RL2013D01E001",))
    assert {t.entity_name for t in tweets} == {"BMW"}


def test_entity_bundles_match_pytorch(tiny_entity_bundles, tiny_entity_model, data_root):
    from edgerep.device.runtime import PolarityClassifier
    from edgerep.workstation.inference import torch_logits
    from edgerep.workstation.models import load_finetuned

    model, info = load_finetuned(tiny_entity_model)
    assert info["entity_conditioned"] is True
    tweets = sample_texts(data_root, "validation", 60)
    ref = torch_logits(model, TweetTokenizer(tiny_entity_model / "tokenizer.json", info["max_seq_len"], True), tweets.texts,
                       pad_to=info["max_seq_len"], entities=tweets.entities)
    for mode, tol in (("fp32", 1e-4), ("onnx-fp32", 1e-4), ("dynamic-int8", None)):
        clf = PolarityClassifier(tiny_entity_bundles[mode])
        assert clf.entity_conditioned and clf.manifest.validation["passed"]
        got = clf.logits(tweets.texts, entities=tweets.entities)
        if tol is not None:
            np.testing.assert_allclose(got, ref, atol=tol)
        else:
            assert (got.argmax(-1) == ref.argmax(-1)).mean() >= 0.9


def test_the_entity_is_read_and_any_name_works(tiny_entity_bundles, data_root):
    """Two entities give different logits for one tweet (the model reads the entity); a name
    never seen in training (a new company) works; the bucket counts the entity's tokens."""
    from edgerep.device.runtime import PolarityClassifier

    clf = PolarityClassifier(tiny_entity_bundles["fp32"])
    texts = sample_texts(data_root, "validation", 20).texts
    a = clf.logits(texts, entities="BMW")
    b = clf.logits(texts, entities="Bank of America")
    new = clf.logits(texts, entities="Zyxtra Quantum Motors Holding plc")
    assert np.abs(a - b).max() > 1e-6 and np.isfinite(new).all()  # same text, other entity: other logits
    one = clf.classify(texts[0], entity="BMW")
    np.testing.assert_allclose(one.logits, a[0], atol=1e-5)


def test_runtime_refuses_missing_or_unexpected_entity(tiny_entity_bundles, tiny_bundles):
    from edgerep.device.runtime import PolarityClassifier

    with pytest.raises(InputTextError, match="entity-conditioned"):
        PolarityClassifier(tiny_entity_bundles["dynamic-int8"]).classify("BMW beats Audi in sales")
    with pytest.raises(InputTextError, match="without entity conditioning"):
        PolarityClassifier(tiny_bundles["dynamic-int8"]).classify("BMW beats Audi in sales", entity="BMW")


def test_cli_classify_with_entity(tiny_entity_bundles, tiny_bundles):
    bundle = str(tiny_entity_bundles["dynamic-int8"])
    ok = run_cli("classify", bundle, "--entity", "Audi", "BMW beats Audi in sales", "--json")
    assert ok.returncode == 0, ok.stderr.decode()
    assert json.loads(ok.stdout)["label"] in ("NEGATIVE", "NEUTRAL", "POSITIVE")
    lines = run_cli("classify", bundle, "--json", input=b'{"text": "HSBC fined again", "entity": "HSBC"}\n{"text": "no entity here"}\n')
    rows = [json.loads(x) for x in lines.stdout.splitlines()]
    assert lines.returncode == 1 and "label" in rows[0] and "entity-conditioned" in rows[1]["error"]
    for args, needle in (
        ((bundle, "great car"), "give --entity NAME"),
        ((bundle, "--entity", "  ", "great car"), "entity is empty"),
        ((str(tiny_bundles["dynamic-int8"]), "--entity", "BMW", "great car"), "takes no entity"),
    ):
        p = run_cli("classify", *args)
        err = p.stderr.decode()
        assert p.returncode == 1 and "Traceback" not in err and needle in err, err


def test_serve_takes_and_checks_the_entity(tiny_entity_bundles, tiny_bundles):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from edgerep.device.runtime import PolarityClassifier
    from edgerep.device.serve import create_app

    bundle = tiny_entity_bundles["dynamic-int8"]
    expected = PolarityClassifier(bundle).classify("BMW beats Audi in sales", entity="Audi").to_dict()
    with TestClient(create_app(bundle)) as c:
        assert c.get("/health").json()["model"]["entity_conditioned"] is True
        r = c.post("/classify", json={"text": "BMW beats Audi in sales", "entity": "Audi"})
        assert r.status_code == 200 and r.json() == expected
        r = c.post("/classify", json={"texts": ["BMW beats Audi in sales", "meh"], "entity": "Audi"})
        assert r.status_code == 200 and r.json()["predictions"][0] == expected
        for body, needle in (({"text": "x"}, '"entity": required'), ({"text": "x", "entity": " "}, '"entity": entity is empty'),
                             ({"text": "x", "entity": 3}, '"entity": expected a string')):
            r = c.post("/classify", json=body)
            assert r.status_code == 422 and needle in r.json()["error"], r.json()
    with TestClient(create_app(tiny_bundles["dynamic-int8"])) as c:
        r = c.post("/classify", json={"text": "x", "entity": "BMW"})
        assert r.status_code == 422 and "takes no entity" in r.json()["error"]


def test_evaluate_uses_each_tweets_entity(tiny_entity_bundles, tiny_entity_model, data_root):
    from edgerep.measure.evaluate import evaluate

    bundle = evaluate(tiny_entity_bundles["fp32"], data_root, "training", "validation", limit=80)
    torch_rec = evaluate(tiny_entity_model, data_root, "training", "validation", limit=80)
    assert bundle["model"]["entity_conditioned"] and torch_rec["model"]["entity_conditioned"]
    assert bundle["metrics"]["confusion_matrix"] == torch_rec["metrics"]["confusion_matrix"]


def test_ensemble_averages_members_and_reports_out_of_domain(tiny_entity_model, tiny_model, data_root, tmp_path):
    """A real ensemble of an entity-conditioned and a single-tweet model: its probabilities are
    the members' mean, the TweetEval check is scored, and the report shows the record."""
    from edgerep.app.report import build_report
    from edgerep.device.runtime import softmax
    from edgerep.measure.evaluate import _describe, evaluate_ensemble, model_logits, polarity_metrics, select_tweets
    from edgerep.measure.records import write_record

    tweeteval = data_root.parent / "tweeteval-sentiment"
    rec = evaluate_ensemble([tiny_entity_model, tiny_model], data_root, limit=150, out_of_domain=tweeteval)
    tweets = select_tweets(data_root, "training", "validation", _describe(tiny_model)[2])[0][:150]
    probs = [softmax(model_logits(m, _describe(m)[1], [t.text for t in tweets], [t.entity_name for t in tweets]))
             for m in (tiny_entity_model, tiny_model)]
    assert rec["ensemble"]["accuracy"] == polarity_metrics(tweets, np.mean(probs, axis=0))["accuracy"]
    assert [m["model"]["entity_conditioned"] for m in rec["members"]] == [True, False]
    scores = rec["out_of_domain"]["scores"]
    assert scores["ensemble"]["n"] == 2000 and set(scores) == {str(tiny_entity_model), str(tiny_model), "ensemble"}
    write_record(tmp_path / "results" / "ensemble.json", rec)
    build_report([tmp_path / "results"], tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Teacher recipes and ensembles" in md and f"| {rec['ensemble']['macro_f1']:.4f} |" in md


def test_ensemble_refuses_members_of_different_folds(tiny_pretrained, tiny_model, data_root, tmp_path):
    from conftest import TINY_TRAIN
    from edgerep.data import SplitConfig
    from edgerep.errors import ConfigError
    from edgerep.measure.evaluate import evaluate_ensemble
    from edgerep.workstation.train import TrainConfig, train

    fold1 = train(data_root, tmp_path / "f1", TrainConfig(model=str(tiny_pretrained), split=SplitConfig(fold=1), **TINY_TRAIN))
    with pytest.raises(ConfigError, match="different splits.*fold=1"):
        evaluate_ensemble([tiny_model, fold1], data_root, limit=10)
