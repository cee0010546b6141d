"""The better teacher's building blocks on real data: the second temporal fold, unlabelled
English tweets, the TweetEval loader, class-weighted loss, domain-adaptive pretraining and the
intermediate sentiment task."""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from edgerep.data import SplitConfig, load_split, split_train_validation
from edgerep.errors import ConfigError, DataError

TWEETEVAL = Path(os.environ.get("EDGEREP_TWEETEVAL", Path(__file__).resolve().parents[2] / "shared" / "data" / "tweeteval-sentiment"))


@pytest.fixture(scope="module")
def training(data_root):
    return load_split(data_root, "training")[0]


def _by_entity(tweets):
    out = defaultdict(list)
    for t in tweets:
        out[t.entity_id].append(t)
    return out


def test_second_temporal_fold_validates_on_the_block_before_the_latest(training):
    train0, val0 = split_train_validation(training, SplitConfig())
    train1, val1 = split_train_validation(training, SplitConfig(fold=1))
    ids0, ids1 = {t.tweet_id + t.entity_id for t in val0}, {t.tweet_id + t.entity_id for t in val1}
    assert not ids0 & ids1 and abs(len(val1) - len(val0)) < 61
    # fold 1 trains only on tweets before its validation block, which comes before fold 0's
    t1, v1, v0 = _by_entity(train1), _by_entity(val1), _by_entity(val0)
    for entity, vs in v1.items():
        assert max(t.timestamp for t in t1[entity]) <= min(t.timestamp for t in vs) <= max(t.timestamp for t in vs) <= min(t.timestamp for t in v0[entity])
    assert len(train1) + len(val1) + len(val0) == len(training)
    with pytest.raises(ConfigError, match="fold"):
        SplitConfig(fold=1, strategy="random")


def test_unlabelled_english_tweets_include_unrelated_ones(data_root, training):
    from edgerep.data.replab import load_texts

    texts, report = load_texts(data_root, "training")
    assert len(texts) > len(training) + 5000  # unrelated and unlabelled tweets too
    assert report.dropped["not_EN"] > 0 and all(t.text.strip() for t in texts)


def test_tweeteval_loader_counts_match_its_readme():
    from edgerep.data.tweeteval import load_sentiment

    train = load_sentiment(TWEETEVAL, "test")
    assert (len(train.texts), train.counts["NEGATIVE"], train.counts["NEUTRAL"], train.counts["POSITIVE"]) == (12284, 3972, 5937, 2375)
    assert len(load_sentiment(TWEETEVAL, "val").texts) == 2000


def test_tweeteval_defects_name_file_and_line(tmp_path):
    from edgerep.data.tweeteval import load_sentiment

    d = tmp_path / "te"
    shutil.copytree(TWEETEVAL, d)
    lines = (d / "val_labels.txt").read_text().splitlines()
    (d / "val_labels.txt").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match="val_text.txt has 2000 lines.*val_labels.txt has 1999"):
        load_sentiment(d, "val")
    lines[6] = "4"
    (d / "val_labels.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"val_labels.txt:7: label '4' is not 0, 1 or 2"):
        load_sentiment(d, "val")
    with pytest.raises(DataError, match="not found"):
        load_sentiment(tmp_path / "missing", "val")


def test_balanced_class_weights_equalize_the_classes():
    from edgerep.workstation.train import class_weights

    y = np.asarray([0] * 10 + [1] * 30 + [2] * 60)
    w = class_weights(y, 3)
    np.testing.assert_allclose(w * np.bincount(y), np.full(3, len(y) / 3))
    assert class_weights(np.asarray([1, 1]), 3)[0] == 1.0


def test_pretrain_adapts_resumes_and_feeds_fine_tuning(tiny_pretrained, data_root, tmp_path):
    from edgerep.workstation.pretrain import PRETRAIN_INFO_FILE, PretrainConfig, pretrain
    from edgerep.workstation.train import TrainConfig, train

    cfg = PretrainConfig(model=str(tiny_pretrained), epochs=2, limit=128, batch_size=16, learning_rate=1e-3, max_seq_len=32,
                         extra_text=(str(TWEETEVAL),))
    out = pretrain(data_root, tmp_path / "dapt", cfg)
    info = json.loads((out / PRETRAIN_INFO_FILE).read_text())
    assert info["held_out_mlm_loss_after"] < info["held_out_mlm_loss_before"]
    assert info["texts"]["replab_validation_left_out"] > 3000 and info["texts"][f"extra:{TWEETEVAL}"] == 12284
    # interrupted after epoch 1: the resumed run reproduces the same held-out loss
    shutil.rmtree(tmp_path / "dapt" / "model")
    shutil.rmtree(tmp_path / "dapt" / "checkpoints" / "epoch-2")
    again = json.loads((pretrain(data_root, tmp_path / "dapt", cfg) / PRETRAIN_INFO_FILE).read_text())
    assert again["held_out_mlm_loss_after"] == pytest.approx(info["held_out_mlm_loss_after"], abs=1e-3)
    model = train(data_root, tmp_path / "ft", TrainConfig(model=str(out), epochs=1, limit=64, batch_size=16, max_seq_len=32))
    assert (model / "edgerep_model.json").is_file()


def test_pretrain_on_a_folder_without_tweets_writes_nothing(tmp_path):
    from edgerep.workstation.pretrain import PretrainConfig, pretrain

    (tmp_path / "corpus" / "training").mkdir(parents=True)
    with pytest.raises(DataError):
        pretrain(tmp_path / "corpus", tmp_path / "out", PretrainConfig())
    assert not (tmp_path / "out").exists()


def test_intermediate_sentiment_task_runs_once_before_polarity(tiny_pretrained, data_root, tmp_path):
    from edgerep.workstation.train import TrainConfig, train

    cfg = TrainConfig(model=str(tiny_pretrained), epochs=1, limit=64, batch_size=16, max_seq_len=32, learning_rate=1e-3,
                      sentiment_data=str(TWEETEVAL), entity=True)
    info = json.loads((train(data_root, tmp_path / "run", cfg) / "edgerep_model.json").read_text())
    assert info["intermediate_task"]["tweets"] == 64 and info["entity_conditioned"]
    with pytest.raises(DataError, match="not found"):
        train(data_root, tmp_path / "bad", TrainConfig(model=str(tiny_pretrained), sentiment_data=str(tmp_path / "nope")))
    assert not (tmp_path / "bad").exists()


def test_joint_sentiment_head_trains_with_polarity_resumes_and_is_left_out(tiny_pretrained, data_root, tmp_path):
    import torch

    from edgerep.workstation.train import SENTIMENT_HEAD_FILE, TrainConfig, train

    cfg = TrainConfig(model=str(tiny_pretrained), epochs=2, limit=64, batch_size=16, max_seq_len=32, learning_rate=1e-3,
                      sentiment_data=str(TWEETEVAL), sentiment_mode="joint", entity=True)
    model = train(data_root, tmp_path / "run", cfg)
    info = json.loads((model / "edgerep_model.json").read_text())
    assert info["joint_task"] == {"mode": "joint", "tweets": 64, "weight": 0.5} and "intermediate_task" not in info
    assert not (tmp_path / "run" / "intermediate").exists() and not (model / SENTIMENT_HEAD_FILE).exists()
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and all(h["sentiment_loss"] > 0 for h in history)
    # the head trained: it differs from the seeded initial one
    trained = torch.load(tmp_path / "run" / "checkpoints" / "epoch-2" / SENTIMENT_HEAD_FILE, weights_only=True)
    torch.manual_seed(cfg.seed * 1000 - 1)
    init = torch.nn.Linear(trained["weight"].shape[1], 3)
    assert not torch.allclose(trained["weight"], init.weight)
    # the deployed model keeps the 3-way polarity head only
    cfg_json = json.loads((model / "config.json").read_text())
    assert len(cfg_json["id2label"]) == 3
    # interrupted after epoch 1: the resumed run reproduces the uninterrupted one
    shutil.rmtree(tmp_path / "run" / "model")
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "epoch-2")
    train(data_root, tmp_path / "run", cfg)
    again = json.loads((tmp_path / "run" / "history.json").read_text())
    assert again[1]["train_loss"] == pytest.approx(history[1]["train_loss"], rel=1e-4)
    assert again[1]["sentiment_loss"] == pytest.approx(history[1]["sentiment_loss"], rel=1e-4)


def test_sentiment_mode_and_joint_weight_are_checked():
    from edgerep.workstation.train import TrainConfig

    with pytest.raises(ConfigError, match="sentiment_mode 'second-head' unknown; valid: intermediate, joint"):
        TrainConfig(sentiment_mode="second-head")
    with pytest.raises(ConfigError, match="joint_weight must be > 0"):
        TrainConfig(joint_weight=0)


def test_cli_pretrain_and_train_bad_input_is_one_error_line(tmp_path):
    from conftest import run_cli

    for args in (("pretrain", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "p")),
                 ("train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "t"), "--fold", "9")):
        p = run_cli(*args)
        err = p.stderr.decode()
        assert p.returncode == 1 and "error:" in err and "Traceback" not in err, err
    assert not (tmp_path / "p").exists() and not (tmp_path / "t").exists()
