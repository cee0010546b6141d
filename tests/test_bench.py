"""``edgerep bench``: isolated worker processes, profiles, baseline, records (no timing asserts)."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from edgerep.bench import PROFILES, bench, merge_into, parse_profiles
from edgerep.errors import ConfigError


def test_profiles():
    assert [p.name for p in parse_profiles("host,rpi4")] == ["host", "rpi4"]
    assert PROFILES["rpi3b"].cores == 4 and PROFILES["rpi3b"].memory_mb == 1024
    with pytest.raises(ConfigError, match="unknown device profile 'rpi9'; valid: host, pi-zero-2w"):
        parse_profiles("host,rpi9")


def test_bench_cells_with_baseline_and_profile(tiny_bundles, tiny_model, validation_texts):
    rec = bench(
        [tiny_bundles["dynamic-int8"], tiny_bundles["onnx-dynamic-int8"]], validation_texts[:12], threads=[1],
        profiles=[PROFILES["host"], PROFILES["single-core"]], baseline=tiny_model, warmup=2,
    )
    assert rec["schema"] == "edgerep.bench" and rec["settings"]["tweets"] == 12
    cells = {(c["kind"], c.get("backend"), c["profile"]["profile"]): c for c in rec["cells"]}
    assert len(rec["cells"]) == 6 and not [c for c in rec["cells"] if "error" in c]
    single = cells[("bundle", "litert", "single-core")]
    assert single["profile"]["cpus"] == [0] and single["profile"]["memory_cap_mb"] == 1024
    for c in rec["cells"]:
        lat = c["latency"]
        assert lat["n"] == 12 and 0 < lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"]
        assert c["peak_rss_mb"] > 10 and c["throughput_tweets_per_s"] > 0 and c["cpu_percent_of_one_core"] > 0
        assert any("only 12 samples" in w for w in c["warnings"])  # too few samples is flagged
    assert "speedup_vs_pytorch" in cells[("bundle", "litert", "host")]
    assert cells[("pytorch", "pytorch", "host")]["quantization"] == "fp32"


def test_batch_cells(tiny_bundles, validation_texts):
    rec = bench([tiny_bundles["dynamic-int8"]], validation_texts[:16], batches=[1, 8, 4], warmup=1)
    by_batch = {c["batch"]: c for c in rec["cells"]}
    assert by_batch[1]["latency"]["n"] == 16 and by_batch[8]["latency"]["n"] == 2
    assert "batches of 1 or 8, not 4" in by_batch[4]["error"]


def test_failed_cell_is_reported_not_raised(tiny_bundles):
    from edgerep import bench as B

    spec = {"kind": "bundle", "path": str(tiny_bundles["dynamic-int8"]), "threads": 1, "profile": "nope", "texts": ["a", "b"], "warmup": 0}
    cell = B._run_cell(spec, 60)
    assert cell["error"].startswith("failed") and "KeyError" in cell["error"]


def test_merge_refuses_other_settings(tiny_bundles, validation_texts, tmp_path):
    out = tmp_path / "bench.json"
    a = bench([tiny_bundles["fp32"]], validation_texts[:4], warmup=0)
    merge_into(out, a)
    b = bench([tiny_bundles["dynamic-int8"]], validation_texts[:4], warmup=0)
    merged = merge_into(out, b)
    assert len(merged["cells"]) == 2
    c = bench([tiny_bundles["fp32"]], validation_texts[:6], warmup=0)
    with pytest.raises(ConfigError, match="other settings"):
        merge_into(out, c)


def test_bench_cli(tiny_bundles, tmp_path):
    f = tmp_path / "tweets.txt"
    f.write_text("I love my new car\nBank fined again\nConcert tonight!\n")
    out = tmp_path / "b.json"
    proc = run_cli("bench", str(tiny_bundles["dynamic-int8"]), "--tweets", str(f), "--threads", "1", "--samples", "6", "--warmup", "1", "-o", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"p50 ms" in proc.stdout
    assert json.loads(out.read_text())["cells"][0]["latency"]["n"] == 6
    bad = run_cli("bench", str(tiny_bundles["fp32"]), "--tweets", str(f), "--profile", "rpi9")
    assert bad.returncode == 1 and b"unknown device profile" in bad.stderr and b"Traceback" not in bad.stderr
