"""Tweet normalization and polarity metrics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgerep.device.runtime import softmax
from edgerep.measure.metrics import classification_report, confusion_matrix, paired_bootstrap
from edgerep.device.text import MAX_TEXT_CHARS, normalize_tweet


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("RT @BMW_UK: New 3 Series http://t.co/abc123 &amp; more", "RT @user: New 3 Series http & more"),
        ("  lots\t\tof \n whitespace  ", "lots of whitespace"),
        ("email me at bob@example.com", "email me at bob@example.com"),
        ("zero\u200bwidth and \x00null", "zero width and null"),
        ("www.hsbc.com is down &lt;3", "http is down <3"),
        ("#fail 😡😡", "#fail 😡😡"),
        ("", ""),
        (" \t\n\x0b", ""),
    ],
)
def test_normalize_tweet(raw, expected):
    assert normalize_tweet(raw) == expected


def test_normalize_bounds_long_input():
    out = normalize_tweet("bmw " * 10_000)
    assert len(out) <= MAX_TEXT_CHARS and out.startswith("bmw bmw")


def test_normalize_rejects_bytes():
    with pytest.raises(TypeError, match="expects str"):
        normalize_tweet(b"bytes")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=3000))
def test_normalize_properties(text):
    out = normalize_tweet(text)
    assert len(out) <= MAX_TEXT_CHARS
    assert out == out.strip() and "  " not in out
    assert all(ch.isprintable() or ch == " " for ch in out)


def test_metrics_by_hand():
    labels = ("NEGATIVE", "NEUTRAL", "POSITIVE")
    y_true = [0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 2, 0, 2]
    r = classification_report(y_true, y_pred, labels)
    assert r["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 3]]
    assert r["accuracy"] == pytest.approx(6 / 8)
    # NEGATIVE: P=1/2 R=1/2 F1=1/2; NEUTRAL: P=2/3 R=1 F1=0.8; POSITIVE: P=1 R=3/4 F1=6/7
    assert r["per_class"]["NEUTRAL"]["f1"] == pytest.approx(0.8)
    assert r["macro_f1"] == pytest.approx((0.5 + 0.8 + 6 / 7) / 3)
    assert r["per_class"]["POSITIVE"]["support"] == 4


def test_metrics_absent_class_counts_zero():
    r = classification_report([0, 0], [0, 0], ("A", "B"))
    assert r["macro_f1"] == pytest.approx(0.5) and r["per_class"]["B"]["f1"] == 0.0


def test_confusion_matrix_rejects_bad_labels():
    with pytest.raises(ValueError):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError):
        confusion_matrix([0], [0, 1], 3)


def test_softmax_rows_sum_to_one():
    p = softmax(np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]]))
    assert p.dtype == np.float32 and np.allclose(p.sum(1), 1) and p[0, 0] == pytest.approx(1.0)


def test_paired_bootstrap_by_hand():
    """The difference is the full-sample difference; identical predictions give a zero-width
    interval; a clearly better model's interval excludes 0; swapping the models mirrors it."""
    labels = ("NEGATIVE", "NEUTRAL", "POSITIVE")
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 600)
    weak = np.where(rng.random(600) < 0.5, y, rng.integers(0, 3, 600))  # ~67% right
    strong = np.where(rng.random(600) < 0.9, y, rng.integers(0, 3, 600))  # ~93% right
    r = paired_bootstrap(y, weak, strong, 3, resamples=500)
    full = classification_report(y, strong, labels), classification_report(y, weak, labels)
    assert r["n"] == 600 and r["resamples"] == 500 and r["confidence"] == 0.95
    assert r["accuracy"]["diff"] == pytest.approx(full[0]["accuracy"] - full[1]["accuracy"])
    assert r["macro_f1"]["diff"] == pytest.approx(full[0]["macro_f1"] - full[1]["macro_f1"])
    assert 0 < r["accuracy"]["low"] < r["accuracy"]["diff"] < r["accuracy"]["high"]
    back = paired_bootstrap(y, strong, weak, 3, resamples=500)
    for k in ("accuracy", "macro_f1"):
        assert back[k]["diff"] == pytest.approx(-r[k]["diff"])
        assert back[k]["low"] == pytest.approx(-r[k]["high"]) and back[k]["high"] == pytest.approx(-r[k]["low"])
    same = paired_bootstrap(y, weak, weak, 3)
    assert same["macro_f1"] == {"diff": 0.0, "low": 0.0, "high": 0.0}
    assert paired_bootstrap(y, weak, strong, 3, resamples=500) == r  # seeded: the same interval again


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)), min_size=2, max_size=60))
def test_paired_bootstrap_interval_brackets_a_difference_of_resampled_tweets(rows):
    y, a, b = (np.array(c) for c in zip(*rows))
    r = paired_bootstrap(y, a, b, 3, resamples=200)
    for k in ("accuracy", "macro_f1"):
        assert -1 <= r[k]["low"] <= r[k]["high"] <= 1
    acc = (b == y).mean() - (a == y).mean()
    assert r["accuracy"]["diff"] == pytest.approx(acc)
    # every per-tweet accuracy difference lies in [-1, 1]: the interval of their mean does too,
    # and it cannot lie entirely beyond the largest or smallest single-tweet difference
    d = (b == y).astype(int) - (a == y).astype(int)
    assert d.min() - 1e-9 <= r["accuracy"]["low"] and r["accuracy"]["high"] <= d.max() + 1e-9


def test_paired_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap([0, 1, 2], [0, 1], [0, 1, 2], 3)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        paired_bootstrap([0, 1, 3], [0, 1, 2], [0, 1, 2], 3)
    with pytest.raises(ValueError, match="at least 2"):
        paired_bootstrap([0], [0], [1], 3)
