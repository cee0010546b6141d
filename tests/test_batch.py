"""``edgerep batch``: real RepLab tweets in every input format, the local engine and a real Ray
cluster started by the test on 127.0.0.1, resumption after a kill, and bad input."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from edgerep.app.batch import BatchConfig, read_inputs, run_batch  # noqa: E402
from edgerep.errors import ConfigError, DataError  # noqa: E402


@pytest.fixture(scope="module")
def tweets(data_root):
    from edgerep.data import sample_texts

    s = sample_texts(data_root, "validation", 400)
    return [{"id": f"v{i}", "text": t, "entity": e} for i, (t, e) in enumerate(zip(s.texts, s.entities))]


def _jsonl(path: Path, rows, bad: bool = True) -> Path:
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        if bad:
            f.write(json.dumps({"id": "blank", "text": "  \t "}) + "\n")
            f.write("{not json\n")
            f.write(json.dumps({"id": "number", "text": 42}) + "\n")
    return path


def _table(out: Path):
    return pa.concat_tables([pq.read_table(f) for f in sorted(out.glob("part-*.parquet"))])


def test_every_input_format_reads_the_same_rows(tweets, tmp_path):
    rows = tweets[:50]
    _jsonl(tmp_path / "a.jsonl", rows, bad=False)
    with open(tmp_path / "a.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["id", "text", "entity"])
        w.writeheader()
        w.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    (tmp_path / "a.txt").write_text("".join(r["text"].replace("\n", " ") + "\n" for r in rows))
    cfg = BatchConfig()
    for name in ("a.jsonl", "a.csv", "a.parquet"):
        got = list(read_inputs([tmp_path / name], cfg))
        assert [(r.id, r.text, r.entity, r.error) for r in got] == [(r["id"], r["text"], r["entity"], None) for r in rows], name
    txt = list(read_inputs([tmp_path / "a.txt"], BatchConfig(entity="BMW")))
    assert [r.id for r in txt[:2]] == ["a.txt:1", "a.txt:2"] and txt[0].entity == "BMW" and len(txt) == 50


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A real Ray head on 127.0.0.1 with 2 CPUs (``ray start --head``), stopped at the end.

    Ray replaces a loopback address by this machine's network address (its clusters span
    machines); ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps the head, its worker and this test's
    driver on loopback, as Ray does on a laptop. ``RAY_AUTH_MODE=token``: the head and the
    driver both use token authentication (Ray 2.60's default for new clusters), with a token of the
    test's own in ``RAY_AUTH_TOKEN``."""
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        pytest.skip("Ray not installed (pip install 'edgerep[ray]')")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import secrets

    # a fresh machine has no ~/.ray/auth_token: the head and the driver share a token by environment
    settings = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([str(ray_bin), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
                    "--include-dashboard", "false", "--disable-usage-stats"], check=True, capture_output=True, env=env, timeout=180)
    yield f"127.0.0.1:{port}"
    subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, env=env, timeout=120)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_local_and_ray_engines_give_identical_rows(tiny_entity_bundles, tweets, tmp_path, ray_cluster):
    """2 local worker processes and 2 Ray actors on a real cluster: the same ids, labels and
    probabilities, every row once, unusable rows kept with their error, the bundle's SHA-256 in
    each file's metadata."""
    bundle = tiny_entity_bundles["dynamic-int8"]
    src = _jsonl(tmp_path / "in.jsonl", tweets[:300])
    local = run_batch([src], tmp_path / "local", bundle, BatchConfig(shard_size=100, workers=2), show_progress=False)
    ray_ = run_batch([src], tmp_path / "ray", bundle, BatchConfig(shard_size=100, workers=2, engine="ray", address=ray_cluster), show_progress=False)
    a, b = _table(tmp_path / "local"), _table(tmp_path / "ray")
    assert a.equals(b)
    assert a.num_rows == 303 == local["rows"] == ray_["rows"] and len(set(a["id"].to_pylist())) == 303
    assert a["id"].to_pylist()[:300] == [t["id"] for t in tweets[:300]]
    assert local["errors"] == 3 and sum(local["labels"].values()) == 300
    errors = {r["id"]: r["error"] for r in a.to_pylist() if r["error"]}
    assert "empty" in errors["blank"] and "not JSON" in errors["in.jsonl:302"] and "not a string" in errors["number"]
    assert all(r["label"] is None and r["p_positive"] is None for r in a.to_pylist() if r["error"])
    from edgerep.device.runtime import PolarityClassifier

    clf = PolarityClassifier(bundle, num_threads=1)
    first = clf.classify(tweets[0]["text"], tweets[0]["entity"])
    row = a.to_pylist()[0]
    assert row["label"] == first.label and row["p_negative"] == pytest.approx(first.probabilities["NEGATIVE"], abs=1e-6)
    meta = pq.read_schema(tmp_path / "local" / "part-00000.parquet").metadata
    assert meta[b"edgerep.bundle_sha256"].decode() == local["bundle_sha256"] and len(local["bundle_sha256"]) == 64


def test_killed_batch_resumes_without_lost_or_duplicated_rows(tiny_entity_bundles, tweets, tmp_path):
    """A batch killed mid-way (SIGKILL) and re-run gives the uninterrupted output: every row
    once, finished shards not redone."""
    bundle = str(tiny_entity_bundles["dynamic-int8"])
    src = _jsonl(tmp_path / "in.jsonl", tweets * 6, bad=False)  # 2,400 rows
    args = ["batch", str(src), "--bundle", bundle, "--shard-size", "100", "--workers", "1"]
    full = run_cli(*args, "-o", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr.decode()
    out = tmp_path / "resumed"
    cmd = [sys.executable, "-m", "edgerep", *args, "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while len(list(out.glob("part-*.parquet"))) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = sorted(out.glob("part-*.parquet"))
    assert 3 <= len(kept) < 24 and not (out / "summary.json").exists()  # really interrupted
    mtimes = {f.name: f.stat().st_mtime_ns for f in kept}
    again = run_cli(*args, "-o", str(out), "--json")
    assert again.returncode == 0, again.stderr.decode()
    summary = json.loads(again.stdout)
    assert summary["rows"] == 2400 and summary["classified_this_run"] == 2400 - 100 * len(kept)
    assert {f.name: f.stat().st_mtime_ns for f in kept} == mtimes  # finished shards not rewritten
    a, b = _table(tmp_path / "full"), _table(out)
    assert a.equals(b) and len(b["id"].to_pylist()) == 2400


def test_bad_input_is_one_line_naming_file_and_row(tiny_entity_bundles, tiny_bundles, tweets, tmp_path):
    bundle = str(tiny_entity_bundles["dynamic-int8"])
    good = _jsonl(tmp_path / "ok.jsonl", tweets[:20], bad=False)

    def fails(*args, match: str):
        r = run_cli("batch", *args, "--bundle", bundle, "-o", str(tmp_path / "o"))
        err = r.stderr.decode()
        assert r.returncode == 1 and match in err and "Traceback" not in err, err
        assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1, err

    fails(str(tmp_path / "missing.jsonl"), match="missing.jsonl: input file not found")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    fails(str(tmp_path / "bad.parquet"), match="bad.parquet: unreadable Parquet")
    (tmp_path / "cols.csv").write_text("tweet,id\nhello,1\n")
    fails(str(tmp_path / "cols.csv"), match="cols.csv: no column 'text' (columns: tweet, id)")
    (tmp_path / "quote.csv").write_text('id,text\n1,fine\n2,"broken "quote" here\n3,fine\n')
    fails(str(tmp_path / "quote.csv"), match="quote.csv: row starting on line 3: broken CSV")
    fails(str(good), "--engine", "ray", "--address", "127.0.0.1:1", match="Ray cluster at 127.0.0.1:1 does not answer")
    fails(str(tmp_path / "x.xlsx"), match="unknown input format '.xlsx'")
    assert not (tmp_path / "o").exists()  # nothing written for any of them

    first = run_cli("batch", str(good), "--bundle", bundle, "-o", str(tmp_path / "o"))
    assert first.returncode == 0, first.stderr.decode()
    other = run_cli("batch", str(good), "--bundle", str(tiny_bundles["dynamic-int8"]), "-o", str(tmp_path / "o"))
    assert other.returncode == 1 and b"holds the output of another job (bundle_sha256" in other.stderr
    assert len(list((tmp_path / "o").glob("part-*.parquet"))) == 1  # the finished shard is kept


def test_batch_config_refuses_unknown_engine():
    with pytest.raises(ConfigError, match="valid: local, ray"):
        BatchConfig(engine="spark")
    with pytest.raises(ConfigError, match="--address joins a Ray cluster"):
        BatchConfig(address="auto")
    with pytest.raises(DataError, match="nope.jsonl: input file not found"):
        list(read_inputs([Path("nope.jsonl")], BatchConfig()))


def test_time_is_unix_seconds_or_iso_8601_and_a_bad_one_is_an_error_row():
    from edgerep.app.batch import parse_time

    assert parse_time(1338508800) == parse_time("1338508800") == parse_time("2012-06-01T00:00:00Z") == 1338508800
    assert parse_time("2012-06-01 02:00:00+02:00") == parse_time("2012-06-01") == 1338508800  # no offset: UTC
    assert parse_time(None) is None and parse_time("") is None
    for bad in ("yesterday", "2012-13-01", 1338508800000, True):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_entity_and_time_travel_into_the_output(tiny_entity_bundles, tweets, tmp_path):
    rows = [{**r, "created_at": 1338508800 + 3600 * i} for i, r in enumerate(tweets[:20])]
    rows[3]["created_at"] = "2012-06-01T05:00:00Z"
    rows[5]["created_at"] = "not a time"
    del rows[7]["created_at"]
    src = _jsonl(tmp_path / "in.jsonl", rows, bad=False)
    run_batch([src], tmp_path / "out", tiny_entity_bundles["dynamic-int8"], BatchConfig(time_field="created_at"), show_progress=False)
    t = _table(tmp_path / "out")
    ttype = t.schema.field("time").type
    assert t.column_names[:3] == ["id", "entity", "time"] and pa.types.is_timestamp(ttype) and ttype.tz == "UTC"
    got = t.to_pylist()
    assert [g["entity"] for g in got] == [r["entity"] for r in rows]
    secs = [None if g["time"] is None else int(g["time"].timestamp()) for g in got]
    assert secs[0] == 1338508800 and secs[3] == 1338526800 and secs[7] is None
    assert got[5]["label"] is None and "not a time" in got[5]["error"] and got[5]["entity"] == rows[5]["entity"]  # kept, not dropped
    assert all(g["error"] is None and g["label"] for i, g in enumerate(got) if i != 5)


def test_a_replab_corpus_folder_is_an_input(tiny_entity_bundles, data_root, tmp_path):
    from edgerep.data.replab import entity_names, load_texts

    rows = list(read_inputs([Path(data_root)], BatchConfig()))
    tweets_, _ = load_texts(data_root)
    assert len(rows) == len(tweets_) and all(r.error is None for r in rows)
    names = set(entity_names(data_root).values())
    assert {r.entity for r in rows} <= names and len({r.entity for r in rows}) == 61
    assert all(r.time and 1230768000 <= r.time < 1356998400 for r in rows)  # 2009 to 2012 (Unix seconds)
    assert [r.id for r in read_inputs([Path(data_root) / "training"], BatchConfig())][:100] == [r.id for r in rows[:100]]
