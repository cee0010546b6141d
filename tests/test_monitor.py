"""``edgerep monitor``: quantification estimators against known answers, the whole path from a
real RepLab archive through ``edgerep batch`` to monitor.json and the dashboard (rendered in
headless Chromium), alerts on an injected crisis, and bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

pytest.importorskip("duckdb")
pytest.importorskip("plotly")
pa = pytest.importorskip("pyarrow")

from edgerep.app.batch import COLUMNS, BatchConfig, run_batch, write_shard  # noqa: E402
from edgerep.app.monitor import MonitorConfig, monitor  # noqa: E402
from edgerep.errors import ConfigError, DataError  # noqa: E402
from edgerep.measure import quantify  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
WEEK = 7 * 86400
MONDAY = 1338768000  # 2012-06-04 00:00 UTC, a Monday


def test_wilson_interval_matches_the_published_values():
    lo, hi = quantify.wilson_interval(np.array([0, 5, 81]), np.array([10, 10, 263]))
    # Newcombe, Statistics in Medicine 1998, table I (method 3): 0/10 -> 0-0.2775, 81/263 -> 0.2553-0.3662
    assert lo[0] == 0 and hi[0] == pytest.approx(0.2775, abs=1e-4)
    assert (lo[2], hi[2]) == (pytest.approx(0.2553, abs=1e-4), pytest.approx(0.3662, abs=1e-4))
    assert lo[1] < 0.5 < hi[1] and lo[1] == pytest.approx(1 - hi[1])


def _simulate(priors, n, rng, sep=1.2):
    """Tweets of a 3-class Gaussian mixture and a classifier's Bayes posteriors under uniform training priors."""
    means = np.array([[-sep, 0.0], [0.0, sep], [sep, 0.0]])
    y = rng.choice(3, size=n, p=priors)
    x = means[y] + rng.normal(size=(n, 2))
    logits = -0.5 * ((x[:, None, :] - means[None]) ** 2).sum(-1)
    post = np.exp(logits - logits.max(1, keepdims=True))
    return y, post / post.sum(1, keepdims=True)


def test_em_and_acc_recover_shifted_priors_where_counting_does_not():
    rng = np.random.default_rng(0)
    train = np.full(3, 1 / 3)
    y_val, p_val = _simulate(train, 20_000, rng)
    cm = np.zeros((3, 3), dtype=int)
    np.add.at(cm, (y_val, p_val.argmax(1)), 1)
    tpr, fpr = quantify.one_vs_rest_rates(cm)
    shifted = np.array([0.6, 0.3, 0.1])
    _, post = _simulate(shifted, 20_000, rng)
    cc = np.bincount(post.argmax(1), minlength=3) / len(post)
    em, iterations = quantify.em_priors(post, train)
    acc = quantify.renormalise(quantify.adjusted_count(cc, tpr, fpr))
    assert np.abs(cc - shifted).max() > 0.06  # counting is biased towards the training priors
    assert np.abs(em - shifted).max() < 0.015 and 1 < iterations < 100  # calibrated posteriors: EM is consistent
    # one-vs-rest ACC is exact for two classes; with three, a class's false-positive rate moves with the mix of the others
    assert np.abs(acc - shifted).max() < 0.5 * np.abs(cc - shifted).max()
    assert em.sum() == pytest.approx(1) and acc.sum() == pytest.approx(1)


def test_estimators_refuse_inconsistent_inputs():
    with pytest.raises(ValueError, match="square"):
        quantify.one_vs_rest_rates(np.ones((2, 3)))
    with pytest.raises(ValueError, match="gold examples"):
        quantify.one_vs_rest_rates(np.array([[1, 0, 0], [0, 0, 0], [0, 0, 1]]))
    with pytest.raises(ValueError, match="do not match"):
        quantify.em_priors(np.ones((4, 2)) / 2, np.ones(3) / 3)


def _synthetic_output(
    path: Path,
    weeks: list[tuple[int, int]],
    entity: str = "BMW",
    bundle_sha: str = "a" * 64,
    seed: int = 0,
    unrelated: dict[int, int] | None = None,
    keep_text: bool = False,
) -> Path:
    """A batch output of one entity: per week (tweets, predicted negatives), written by batch's own
    writer; ``unrelated``: week -> extra tweets predicted NEGATIVE and unrelated (a relatedness
    bundle's stream; without it the rows carry no relatedness, as from a polarity bundle)."""
    rng, off_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    path.mkdir(parents=True)
    cols: dict[str, list] = {c: [] for c in COLUMNS}
    related_rng = rng
    for k, (n, neg) in enumerate(weeks):
        off_topic = (unrelated or {}).get(k, 0)
        for i in range(n + off_topic):
            is_neg = i < neg or i >= n
            rng = off_rng if i >= n else related_rng
            p_neg = rng.uniform(0.6, 0.95) if is_neg else rng.uniform(0.0, 0.3)
            rest = 1 - p_neg
            cols["id"].append(f"{entity}-{k}-{i}")
            cols["entity"].append(entity)
            cols["time"].append(MONDAY + k * WEEK + int(rng.integers(0, WEEK)))
            cols["label"].append("NEGATIVE" if is_neg else "POSITIVE")
            cols["p_negative"].append(p_neg)
            cols["p_neutral"].append(rest * 0.3)
            cols["p_positive"].append(rest * 0.7)
            cols["related"].append(None if unrelated is None else i < n)
            cols["p_related"].append(None if unrelated is None else (0.9 if i < n else 0.1))
            cols["error"].append(None)
            cols["text"].append(f"<b>{entity}</b> tweet {k}-{i}" if keep_text else None)
    write_shard(path / "part-00000.parquet", cols, {"edgerep.bundle": "/nowhere", "edgerep.bundle_sha256": bundle_sha})
    (path / "_edgerep_batch.json").write_text(json.dumps({"schema": "edgerep.batch/3", "bundle_sha256": bundle_sha, "keep_text": keep_text}))
    return path


def test_an_injected_crisis_alerts_and_a_steady_stream_does_not(tmp_path):
    rng = np.random.default_rng(1)
    steady = [(int(n), int(rng.binomial(n, 0.12))) for n in rng.integers(60, 120, size=40)]
    quiet = monitor([_synthetic_output(tmp_path / "steady", steady)], tmp_path / "m1")
    assert quiet["alerts"] == []
    crisis = list(steady)
    n, k = crisis[30]
    crisis[30] = (n + 2 * k + 6, 3 * k + 6)  # the window's negatives more than double
    rec = monitor([_synthetic_output(tmp_path / "crisis", crisis)], tmp_path / "m2")
    (alert,) = rec["alerts"]
    assert alert["window"] == MONDAY + 30 * WEEK and alert["negatives"] == 3 * k + 6
    assert alert["p_value"] < alert["threshold"] == pytest.approx(0.5 / (365.25 / 7), rel=1e-2)
    assert alert["baseline_rate"] < alert["negative_share"] and len(alert["top_negative_ids"]) == 10
    assert all(i.startswith("BMW-30-") for i in alert["top_negative_ids"])
    weeks = rec["entities"][0]["windows"]
    assert [w.get("alert", False) for w in weeks].index(True) == 30


def test_unrelated_tweets_are_counted_beside_and_left_out_of_shares_and_alerts(tmp_path):
    rng = np.random.default_rng(1)
    steady = [(int(n), int(rng.binomial(n, 0.12))) for n in rng.integers(60, 120, size=40)]
    flood = {30: 400, 31: 5}  # an off-topic wave of negative tweets: not the entity's reputation
    rec = monitor([_synthetic_output(tmp_path / "flood", steady, unrelated=flood)], tmp_path / "m")
    plain = monitor([_synthetic_output(tmp_path / "plain", steady)], tmp_path / "p")
    assert rec["alerts"] == [] and rec["rows"]["unrelated"] == 405 and plain["rows"]["unrelated"] == 0
    (ent,) = rec["entities"]
    assert ent["unrelated"] == 405 and [w["unrelated"] for w in ent["windows"]][30:32] == [400, 5]
    for w, v in zip(ent["windows"], plain["entities"][0]["windows"]):
        assert w["tweets"] == v["tweets"] and w["counts"] == v["counts"] and w["shares"] == v["shares"]
    assert "405 unrelated ones left out" in (tmp_path / "m" / "dashboard.html").read_text()


def test_show_text_gives_an_alerts_tweets_from_an_output_that_kept_them(tmp_path):
    rng = np.random.default_rng(1)
    weeks = [(int(n), int(rng.binomial(n, 0.12))) for n in rng.integers(60, 120, size=40)]
    n, k = weeks[30]
    weeks[30] = (n + 2 * k + 6, 3 * k + 6)
    with pytest.raises(ConfigError, match="--keep-text"):
        monitor([_synthetic_output(tmp_path / "ids", weeks)], tmp_path / "m1", MonitorConfig(show_text=True))
    rec = monitor([_synthetic_output(tmp_path / "texts", weeks, keep_text=True)], tmp_path / "m2", MonitorConfig(show_text=True))
    (alert,) = rec["alerts"]
    assert [t["id"] for t in alert["top_negative"]] == alert["top_negative_ids"]
    assert all(t["text"] == f"<b>BMW</b> tweet {t['id'][4:]}" for t in alert["top_negative"])
    page = (tmp_path / "m2" / "dashboard.html").read_text()
    assert "&lt;b&gt;BMW&lt;/b&gt; tweet 30-" in page and "<b>BMW</b> tweet" not in page


def test_month_windows_start_on_the_first_and_keep_every_tweet(tmp_path):
    import datetime as dt

    rng = np.random.default_rng(2)
    weeks = [(int(n), int(rng.binomial(n, 0.12))) for n in rng.integers(20, 40, size=40)]
    rec = monitor([_synthetic_output(tmp_path / "b", weeks)], tmp_path / "m", MonitorConfig(window="month"))
    (ent,) = rec["entities"]
    starts = [dt.datetime.fromtimestamp(w["start"], dt.timezone.utc) for w in ent["windows"]]
    assert all((s.day, s.hour, s.minute) == (1, 0, 0) for s in starts) and len(starts) in (10, 11)
    assert sum(w["tweets"] for w in ent["windows"]) == sum(n for n, _ in weeks) == ent["tweets"]
    assert rec["settings"]["alpha"] == pytest.approx(0.5 / 12)
    with pytest.raises(ConfigError, match="valid: day, week, month"):
        MonitorConfig(window="year")


def test_too_few_tweets_is_shown_as_such_not_as_zero(tmp_path):
    out = _synthetic_output(tmp_path / "b", [(50, 5), (12, 0), (50, 6)])
    rec = monitor([out], tmp_path / "m", MonitorConfig(min_tweets=30))
    w = rec["entities"][0]["windows"]
    assert w[1]["too_few"] and "shares" not in w[1] and w[1]["tweets"] == 12
    assert w[0]["shares"]["cc"]["NEGATIVE"][0] == pytest.approx(0.1) and rec["methods"] == ["cc", "pcc"]


def test_bad_inputs_are_one_error_line(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="not an edgerep batch output"):
        monitor([tmp_path / "plain"], tmp_path / "m")
    a = _synthetic_output(tmp_path / "a", [(40, 4)] * 4)
    b = _synthetic_output(tmp_path / "b", [(40, 4)] * 4, bundle_sha="b" * 64)
    with pytest.raises(ConfigError, match="another bundle"):
        monitor([a, b], tmp_path / "m")
    with pytest.raises(ConfigError, match="needs the bundle's validation record"):
        monitor([a], tmp_path / "m", MonitorConfig(method="em"))
    proc = run_cli("monitor", str(tmp_path / "plain"), "-o", str(tmp_path / "m"))
    assert proc.returncode == 1 and proc.stderr.decode().count("\n") == 1 and b"not an edgerep batch output" in proc.stderr


@pytest.fixture(scope="module")
def corpus_monitor(tmp_path_factory, tiny_entity_bundles, data_root):
    """Three entities' real tweets with their timestamps, classified by ``edgerep batch`` and monitored by the CLI."""
    from edgerep.data.replab import entity_names, load_texts
    from edgerep.measure.evaluate import evaluate
    from edgerep.measure.records import write_record

    root = tmp_path_factory.mktemp("monitor")
    names = entity_names(data_root)
    tweets, _ = load_texts(data_root)
    keep = sorted({t.entity_id for t in tweets})[:3]
    with open(root / "archive.jsonl", "w") as f:
        for t in tweets:
            if t.entity_id in keep:
                f.write(json.dumps({"id": t.tweet_id, "text": t.text, "entity": names[t.entity_id], "created": t.timestamp}) + "\n")
    bundle = tiny_entity_bundles["dynamic-int8"]
    run_batch([root / "archive.jsonl"], root / "batch", bundle, BatchConfig(time_field="created"), show_progress=False)
    write_record(root / "evaluation.json", evaluate(bundle, data_root, limit=200))
    proc = run_cli("monitor", str(root / "batch"), "-o", str(root / "out"), "--evaluation", str(root / "evaluation.json"), "--method", "em")
    assert proc.returncode == 0, proc.stderr.decode()
    return root, proc


def test_a_real_archive_is_monitored_end_to_end(corpus_monitor):
    root, proc = corpus_monitor
    rec = json.loads((root / "out" / "monitor.json").read_text())
    assert rec["schema"] == "edgerep.monitor" and rec["methods"] == ["cc", "pcc", "acc", "em"] and len(rec["entities"]) == 3
    batch_rows = sum(pa.parquet.read_table(p).num_rows for p in (root / "batch").glob("part-*.parquet"))
    assert rec["rows"]["total"] == batch_rows and rec["rows"]["used"] == sum(e["tweets"] for e in rec["entities"])
    windows = [w for e in rec["entities"] for w in e["windows"]]
    assert all(w["start"] % 86400 == 0 for w in windows)  # UTC midnights (Mondays)
    full = [w for w in windows if "shares" in w]
    assert full and any(w.get("too_few") for w in windows)
    for w in full:
        for m in rec["methods"]:
            s = [w["shares"][m][lab][0] for lab in ("NEGATIVE", "NEUTRAL", "POSITIVE")]
            assert sum(s) == pytest.approx(1, abs=1e-3)
            assert all(w["shares"][m][lab][1] <= w["shares"][m][lab][0] <= w["shares"][m][lab][2] for lab in ("NEGATIVE", "POSITIVE"))
        assert w["shares"]["cc"]["NEGATIVE"][0] == pytest.approx(w["counts"]["NEGATIVE"] / w["tweets"], abs=1e-4)
    assert "dashboard:" in proc.stdout.decode()


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (CI installs Debian's chromium)")
def test_the_dashboard_renders_offline_without_console_errors(corpus_monitor, tmp_path):
    root, _ = corpus_monitor
    page = (root / "out" / "dashboard.html").read_text()
    assert "<script src=" not in page and "plotly.js v" in page  # plotly.js inlined: the page opens offline
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
             "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000"]
    url = (root / "out" / "dashboard.html").resolve().as_uri()
    done = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.count("js-plotly-plot") >= 3  # every entity's figure was drawn by plotly.js
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not [line for line in console if "rror" in line or "Uncaught" in line], console


def _benchmark(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_alert_benchmarks_measure_the_real_streams(data_root, tmp_path):
    """benchmarks/alert_quality.py writes real batch outputs and reproduces the published false
    alarms; benchmarks/alert_power.py's ceiling rises with the window size."""
    quality = _benchmark("alert_quality")
    table = tmp_path / "alerts.json"
    assert quality.main(["--data", str(data_root), "--out", str(tmp_path / "q"), "--repeats", "1", "--factors", "2", "--table", str(table)]) == 0
    rec = json.loads(table.read_text())
    published = json.loads((Path(__file__).parents[1] / "docs" / "records" / "alerts.json").read_text())
    false_alarms = published["caption"].split("False alarms")[1]
    assert rec["caption"].endswith(false_alarms) and int(rec["rows"][0][1]) > 25  # the published false alarms; a crisis per entity
    power = _benchmark("alert_power")
    ceiling = [power.power(n, 0.13, 0.0096, 1.0) for n in (40, 100, 200)]
    assert ceiling == sorted(ceiling) and ceiling[0] < 0.5 < ceiling[-1]
    assert power.binom.sf(power.critical_count(50, 0.13, 0.0096) - 1, 50, 0.13) < 0.0096



def test_bias_corrected_temperature_scaling_recovers_a_known_miscalibration():
    """benchmarks/quantification_quality.py's BCTS fit undoes a known temperature and class bias:
    labels drawn from calibrated posteriors, then the posteriors sharpened and shifted."""
    quality = _benchmark("quantification_quality")
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1.5, size=(6000, 3))
    calibrated = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=p) for p in calibrated])
    distorted = quality.apply_bcts(np.array([np.log(0.5), 0.8, -0.4]), calibrated)  # T = 0.5: over-confident
    theta = quality.fit_bcts(distorted, y)
    assert abs(np.exp(theta[0]) - 2.0) < 0.15 and abs(theta[1] + 0.4) < 0.1  # log p = (log q - b) / 2: T = 2, b1 = -0.4
    recovered = quality.apply_bcts(theta, distorted)
    assert np.abs(recovered - calibrated).mean() < 0.02 < np.abs(distorted - calibrated).mean()
