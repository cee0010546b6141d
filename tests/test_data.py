"""RepLab 2013 loading, defects, split and statistics on the real training data."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import run_cli
from edgerep.data import SplitConfig, load_split, split_train_validation
from edgerep.data.replab import load_entities
from edgerep.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def training(data_root):
    return load_split(data_root, "training")


def test_real_counts(training):
    tweets, report = training
    assert report.entities == 61
    assert report.labeled_rows == 45671
    assert report.kept == len(tweets) == 26822
    assert dict(report.label_counts) == {"NEGATIVE": 3545, "NEUTRAL": 7314, "POSITIVE": 15963}
    assert dict(report.dropped) == {"not_EN": 8731, "unrelated": 9418, "empty_text": 698, "stray_polarity:RELATED": 2}
    # every labelled row is accounted for
    assert report.kept + sum(report.dropped.values()) == report.labeled_rows


def test_real_defects_are_counted_with_locations(training):
    _, report = training
    assert report.defects["bom_files"] == 61  # every tweet_text file starts with a UTF-8 BOM
    assert report.defects["non_utf8_lines"] == 529
    assert report.defects["stray_polarity"] == 2
    assert report.defects["duplicate_text_rows"] == 125
    assert report.defect_examples["stray_polarity"][0].endswith("labeled/RL2013D04E169.dat:845")
    assert "RL2013D01E001.dat:130" in report.defect_examples["non_utf8_lines"][0]


def test_tweets_carry_entity_domain_and_clean_text(training, data_root):
    tweets, _ = training
    domains = load_entities(data_root)
    assert set(domains.values()) == {"automotive", "banking", "university", "music"}
    assert {t.domain for t in tweets} == set(domains.values())
    assert all(t.language == "EN" and t.text.strip() for t in tweets)
    assert not any(t.text.startswith("\ufeff") or t.tweet_id.startswith("\ufeff") for t in tweets)
    first = tweets[0]
    assert first.entity_id == "RL2013D01E001" and first.domain == "automotive"
    assert first.timestamp > 1_300_000_000


def test_spanish_selection(data_root):
    tweets, report = load_split(data_root, "training", languages=("ES",), entities=("RL2013D01E001", "RL2013D02E051"))
    assert report.entities == 2
    assert tweets and all(t.language == "ES" for t in tweets)


def test_temporal_split_is_latest_fifteen_percent_per_entity(training):
    tweets, _ = training
    train, val = split_train_validation(tweets, SplitConfig())
    assert (len(train), len(val)) == (22770, 4052)
    assert {t.tweet_id + t.entity_id for t in train}.isdisjoint({t.tweet_id + t.entity_id for t in val})
    for entity in {t.entity_id for t in tweets}:
        tr = [t.timestamp for t in train if t.entity_id == entity]
        va = [t.timestamp for t in val if t.entity_id == entity]
        assert va and max(tr) <= min(va)
    assert split_train_validation(tweets, SplitConfig()) == (train, val)


def test_random_split_depends_on_seed(training):
    tweets, _ = training
    a = split_train_validation(tweets, SplitConfig(strategy="random", seed=1))
    b = split_train_validation(tweets, SplitConfig(strategy="random", seed=1))
    c = split_train_validation(tweets, SplitConfig(strategy="random", seed=2))
    assert a == b and a[1] != c[1] and len(a[1]) == len(c[1]) == 4052


def test_split_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="temporal, random"):
        SplitConfig(strategy="weekly")
    with pytest.raises(ConfigError):
        SplitConfig(val_fraction=1.5)


def _mini_corpus(data_root, tmp_path, entity="RL2013D01E002"):
    root = tmp_path / "replab"
    (root / "entities").mkdir(parents=True)
    shutil.copy2(data_root / "entities" / "replab2013_entities.tsv", root / "entities")
    for sub, ext in (("labeled", "dat"), ("tweet_info", "dat"), ("tweet_text", "tsv")):
        (root / "training" / sub).mkdir(parents=True)
        shutil.copy2(data_root / "training" / sub / f"{entity}.{ext}", root / "training" / sub)
    return root


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="data directory not found"):
        load_split(tmp_path / "nope")
    (tmp_path / "training").mkdir()
    with pytest.raises(DataError, match="labeled: directory missing"):
        load_split(tmp_path)


def test_missing_test_split_lists_present_splits(data_root):
    with pytest.raises(DataError, match=r"split 'test' not found; splits present: \['training'\]"):
        load_split(data_root, "test")


def test_malformed_dat_names_file_and_line(data_root, tmp_path):
    root = _mini_corpus(data_root, tmp_path)
    path = root / "training" / "labeled" / "RL2013D01E002.dat"
    lines = path.read_bytes().split(b"\n")
    lines[5] = b"\t".join(lines[5].split(b"\t")[:4])  # row 6 loses three fields
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match=r"RL2013D01E002\.dat:6: expected 7 tab-separated fields .* found 4"):
        load_split(root)


def test_bad_header_and_bad_timestamp(data_root, tmp_path):
    root = _mini_corpus(data_root, tmp_path)
    kept, _ = load_split(root)
    info = root / "training" / "tweet_info" / "RL2013D01E002.dat"
    rows = info.read_text(encoding="utf-8").split("\n")
    line = next(i for i, r in enumerate(rows) if r.startswith(f'"{kept[0].tweet_id}"'))
    fields = rows[line].split("\t")
    fields[5] = '"yesterday"'
    rows[line] = "\t".join(fields)
    info.write_text("\n".join(rows), encoding="utf-8")
    with pytest.raises(DataError, match=rf"tweet_info/RL2013D01E002\.dat:{line + 1}: field 'timestamp'"):
        load_split(root)
    text = root / "training" / "tweet_text" / "RL2013D01E002.tsv"
    text.write_text('"id"\t"author"\t"entity_id"\t"text"\n')
    with pytest.raises(DataError, match=r"RL2013D01E002\.tsv:1: unexpected header"):
        load_split(root)


def test_data_stats_cli_json(data_root):
    proc = run_cli("data", "stats", str(data_root), "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    stats = json.loads(proc.stdout)
    assert stats["splits"]["training"]["n"] == 26822
    assert stats["splits"]["training/validation"]["n"] == 4052
    assert stats["splits"]["training"]["labels"]["NEGATIVE"] == 3545
    assert stats["splits"]["training"]["domains"]["banking"]["NEGATIVE"] == 1642
    tl = stats["splits"]["training"]["token_length"]
    assert 10 < tl["p50"] < tl["p99"] <= tl["p100"] < 200


def test_data_stats_cli_missing_dir_no_traceback(tmp_path):
    proc = run_cli("data", "stats", str(tmp_path / "missing"))
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "error:" in err and "data directory not found" in err and "Traceback" not in err
