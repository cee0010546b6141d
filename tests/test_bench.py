"""``edgerep bench``: isolated worker processes, profiles, baseline, records (no timing asserts)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from edgerep.errors import ConfigError
from edgerep.measure.bench import UNSTABLE_SPREAD, bench, latency_stats, merge_into, warnings_of
from edgerep.registry import PROFILES, parse_profiles


def test_profiles():
    assert [p.name for p in parse_profiles("host,rpi4")] == ["host", "rpi4"]
    assert PROFILES["rpi3b"].cores == 4 and PROFILES["rpi3b"].memory_mib == 1024
    with pytest.raises(ConfigError, match="unknown device profile 'rpi9'; valid: host, pi-zero-2w"):
        parse_profiles("host,rpi9")


def test_board_profiles_say_what_they_do_not_emulate():
    """A board profile caps cores and memory only; its note names this machine's flags and what
    the board's CPU lacks (no dot products on a Pi 4's Cortex-A72; a Pi 5's A76 has them)."""
    rpi4 = PROFILES["rpi4"].isa_note(["avx2", "fma", "avx512_vnni"])
    assert "clock and instruction set are this machine's (avx2 fma avx512_vnni)" in rpi4
    assert "Cortex-A72" in rpi4 and "lacks asimddp (int8 dot products" in rpi4
    rpi5 = PROFILES["rpi5"].isa_note([])
    assert "asimddp" in rpi5.split(" lacks ")[0] and "lacks i8mm" in rpi5 and "no int8/fp16 flags read" in rpi5
    assert PROFILES["host"].isa_note(["avx2"]) is None and PROFILES["single-core"].isa_note(["avx2"]) is None


def test_bench_cells_with_baseline_and_profile(tiny_bundles, tiny_model, validation_texts):
    rec = bench(
        [tiny_bundles["dynamic-int8"], tiny_bundles["onnx-dynamic-int8"]], validation_texts[:12], threads=[1],
        profiles=[PROFILES["host"], PROFILES["single-core"]], baseline=tiny_model, warmup=2, repeats=2,
    )
    assert rec["schema"] == "edgerep.bench" and rec["settings"]["tweets"] == 12
    cells = {(c["kind"], c.get("backend"), c["profile"]["profile"]): c for c in rec["cells"]}
    assert len(rec["cells"]) == 6 and not [c for c in rec["cells"] if "error" in c]
    single = cells[("bundle", "litert", "single-core")]
    assert single["profile"]["cpus"] == [0] and single["profile"]["memory_cap_mib"] == 1024
    for c in rec["cells"]:
        lat = c["latency"]
        assert lat["n"] == 24 and 0 < lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"]
        assert len(lat["run_medians_ms"]) == 2 and lat["mad_ms"] >= 0 and c["repeats"] == 2
        assert c["peak_rss_mb"] > 10 and c["throughput_tweets_per_s"] > 0 and c["cpu_percent_of_one_core"] > 0
        assert any("only 24 samples" in w for w in c["warnings"])  # too few samples is flagged
    assert "speedup_vs_pytorch" in cells[("bundle", "litert", "host")]
    assert cells[("pytorch", "pytorch", "host")]["quantization"] == "fp32"


def test_batch_cells(tiny_bundles, validation_texts):
    rec = bench([tiny_bundles["dynamic-int8"]], validation_texts[:16], batches=[1, 8, 4], warmup=1, repeats=1)
    by_batch = {c["batch"]: c for c in rec["cells"]}
    assert by_batch[1]["latency"]["n"] == 16 and by_batch[8]["latency"]["n"] == 2
    assert "batches of 1 or 8, not 4" in by_batch[4]["error"]


def test_failed_cell_is_reported_not_raised(tiny_bundles):
    from edgerep.measure import bench as bench_module

    spec = {"kind": "bundle", "path": str(tiny_bundles["dynamic-int8"]), "threads": 1, "profile": "nope", "texts": ["a", "b"], "warmup": 0}
    cell = bench_module._run_cell(spec, 60)
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
    proc = run_cli("bench", str(tiny_bundles["dynamic-int8"]), "--tweets", str(f), "--threads", "1", "--samples", "6", "--warmup", "1",
                   "--repeats", "2", "-o", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"p50\xc2\xb1MAD ms" in proc.stdout and b"x 2 runs a cell" in proc.stdout
    assert json.loads(out.read_text())["cells"][0]["latency"]["n"] == 12
    # a record of another kind at -o: one error line naming the file, no traceback
    other = tmp_path / "evaluation.json"
    other.write_text(json.dumps({"schema": "edgerep.evaluation", "schema_version": 1}))
    wrong = run_cli("bench", str(tiny_bundles["dynamic-int8"]), "--tweets", str(f), "--threads", "1", "--samples", "2", "--warmup", "0",
                    "--repeats", "1", "-o", str(other))
    assert wrong.returncode == 1 and b"expected edgerep.bench" in wrong.stderr and b"Traceback" not in wrong.stderr
    assert b"bench:" not in wrong.stderr  # refused before any cell was measured
    isdir = run_cli("bench", str(tiny_bundles["fp32"]), "--tweets", str(f), "-o", str(tmp_path))
    assert isdir.returncode == 1 and b"is a directory; give a JSON file path" in isdir.stderr and b"p50" not in isdir.stdout
    bad = run_cli("bench", str(tiny_bundles["fp32"]), "--tweets", str(f), "--profile", "rpi9")
    assert bad.returncode == 1 and b"unknown device profile" in bad.stderr and b"Traceback" not in bad.stderr


def _fake_cgroup_tree(tmp_path, subtree="cpu memory pids"):
    """A directory shaped like a delegated cgroup v2 hierarchy (plain files stand in for the kernel's)."""
    root = tmp_path / "cgroup"
    here = root / "user.slice" / "me.scope"
    here.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (here / "cgroup.subtree_control").write_text(subtree + "\n")
    proc = tmp_path / "proc_self_cgroup"
    proc.write_text("0::/user.slice/me.scope\n")
    return root, here, proc


def test_cgroup_v2_detection(tmp_path):
    from edgerep.measure.bench import cgroup_v2_parent

    root, here, proc = _fake_cgroup_tree(tmp_path)
    assert cgroup_v2_parent(root, proc) == (here, "cgroup v2")
    (here / "cgroup.subtree_control").write_text("cpu pids\n")
    parent, reason = cgroup_v2_parent(root, proc)
    assert parent is None and reason.startswith("memory controller not enabled")
    proc.write_text("4:memory:/x\n")  # cgroup v1 only
    assert cgroup_v2_parent(root, proc)[1].endswith("has no cgroup v2 entry")
    assert cgroup_v2_parent(tmp_path / "nothing", proc) == (None, f"no cgroup v2 unified hierarchy at {tmp_path / 'nothing'}")


def test_worker_joins_cgroup_v2_with_memory_max(tmp_path, tiny_bundles, validation_texts):
    """The parent writes memory.max / memory.swap.max, the worker writes its own pid to cgroup.procs."""
    from edgerep.measure import bench as bench_module

    root, here, proc = _fake_cgroup_tree(tmp_path)
    made = []
    real_make = bench_module.make_memory_cgroup

    def make(parent, name, mb):
        cg = real_make(parent, name, mb)
        made.append(cg)
        return cg

    bench_module.make_memory_cgroup, saved = make, bench_module.make_memory_cgroup
    try:
        spec = {"kind": "bundle", "path": str(tiny_bundles["dynamic-int8"]), "threads": 1, "profile": "rpi3b", "texts": validation_texts[:4], "warmup": 0}
        cell = bench_module._run_cell(spec, 120, here)
    finally:
        bench_module.make_memory_cgroup = saved
    assert "error" not in cell, cell
    (cg,) = made
    assert (cg / "memory.max").read_text() == str(1024 * 1024 * 1024)
    pid = int((cg / "cgroup.procs").read_text())
    assert pid != __import__("os").getpid()  # the worker joined, not the parent
    assert cell["profile"]["memory_cap"].startswith("cgroup v2 memory.max") and cell["profile"]["memory_cap_mib"] == 1024
    assert cell["profile"]["not_emulated"].startswith("rpi3b emulates 4 cores and 1024 MiB only: clock and instruction set are this machine's")


def test_memory_cap_falls_back_to_rlimit_as_with_reason(tiny_bundles, validation_texts):
    from edgerep.measure.bench import cgroup_v2_parent

    parent, reason = cgroup_v2_parent()
    rec = bench([tiny_bundles["dynamic-int8"]], validation_texts[:4], profiles=[PROFILES["single-core"]], warmup=0)
    prof = rec["cells"][0]["profile"]
    if parent is None:  # this host (cgroup v1): the reason is recorded beside the RLIMIT_AS cap
        assert prof["memory_cap"].startswith("RLIMIT_AS") and prof["memory_cap_note"].startswith(reason)
    else:
        assert prof["memory_cap"].startswith("cgroup v2")


def test_interrupted_bench_resumes_finished_runs(tiny_bundles, validation_texts, tmp_path):
    """Each run of a cell is its own worker process, the cells timed in alternating order run
    after run (A B, B A, A B); an interrupted bench keeps the runs it finished."""
    from edgerep.measure import bench as bench_module

    ckpt = tmp_path / "bench.json.partial"
    models = [tiny_bundles["fp32"], tiny_bundles["dynamic-int8"]]
    a, b = (str(m) for m in models)
    real_run_cell, calls, stop_at = bench_module._run_cell, [], [3]

    def interrupted(spec, timeout_s, cgroup_parent=None):
        calls.append(spec["path"])
        assert spec["repeats"] == 1 and spec["keep_samples"]
        if len(calls) in stop_at:
            stop_at.clear()
            raise KeyboardInterrupt
        return real_run_cell(spec, timeout_s, cgroup_parent)

    bench_module._run_cell = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            bench(models, validation_texts[:6], warmup=0, checkpoint=ckpt)
        partial = json.loads(ckpt.read_text())
        assert partial["complete"] is False and partial["cells"] == [] and [r["path"] for r in partial["runs"]] == [a, b]
        calls.clear()
        rec = bench(models, validation_texts[:6], warmup=0, checkpoint=ckpt)
    finally:
        bench_module._run_cell = real_run_cell
    assert calls == [b, a, a, b]  # the two finished runs kept; run 2 in reverse order, run 3 forward
    assert rec["settings"]["interleaved"] is True and [c["path"] for c in rec["cells"]] == [a, b]
    for c in rec["cells"]:
        assert "error" not in c and c["repeats"] == c["processes"] == 3 and c["latency"]["n"] == 18
        assert len(c["latency"]["run_medians_ms"]) == 3 and "samples_ms" not in c and "run_index" not in c
    kept = next(r for r in partial["runs"] if r["path"] == a)
    assert rec["cells"][0]["latency"]["run_medians_ms"][0] == round(float(np.median(kept["samples_ms"])), 4)  # kept, not measured again
    with pytest.raises(ConfigError, match="interrupted bench made with other settings"):
        bench(models, validation_texts[:5], warmup=0, checkpoint=ckpt)


def test_merge_runs_pools_samples_and_takes_the_largest_memory():
    from edgerep.measure.bench import merge_runs

    def run(samples, wall, cpu, rss, init):
        return {"kind": "bundle", "path": "p", "batch": 1, "repeats": 1, "threads": 1, "profile": {"profile": "host"},
                "samples_ms": samples, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss, "init_ms": init,
                "first_inference_ms": init, "run_index": 0}

    cell = merge_runs([run([1.0, 2.0], 0.5, 0.4, 80.0, 10.0), run([3.0, 4.0], 1.5, 1.2, 90.0, 30.0), run([2.0, 2.0], 1.0, 1.0, 85.0, 20.0)])
    assert cell["latency"]["n"] == 6 and cell["latency"]["run_medians_ms"] == [1.5, 3.5, 2.0] and cell["latency"]["p50_ms"] == 2.0
    assert cell["throughput_tweets_per_s"] == 2.0 and cell["cpu_percent_of_one_core"] == pytest.approx(86.7)  # 6 tweets / 3 s; 2.6 / 3 s
    assert cell["peak_rss_mb"] == 90.0 and cell["init_ms"] == 20.0 and cell["repeats"] == cell["processes"] == 3
    assert not {"samples_ms", "wall_s", "cpu_s", "run_index"} & set(cell)
    with pytest.raises(ValueError):
        merge_runs([])


def test_latency_stats_median_mad_and_run_spread():
    # two runs of the same 4 tweets: run medians 2.0 and 3.0 ms
    st = latency_stats([1.0, 2.0, 2.0, 9.0, 2.0, 3.0, 3.0, 10.0], runs=2)
    assert st["n"] == 8 and st["p50_ms"] == 2.5 and st["run_medians_ms"] == [2.0, 3.0]
    assert st["mad_ms"] == 0.5  # median of |x - 2.5| = [1.5, .5, .5, 6.5, .5, .5, .5, 7.5]
    assert st["run_spread"] == pytest.approx(1.0 / 2.5)


def test_instability_is_judged_on_repeated_runs_not_on_spread_between_tweets():
    # tweets of very different lengths (1 ms and 9 ms) but identical runs: stable
    steady = {"latency": latency_stats([1.0, 9.0] * 20 + [1.0, 9.0] * 20, runs=2)}
    assert not [w for w in warnings_of(steady) if w.startswith("unstable")]
    # the second run of the same tweets 30% slower: a busy machine
    busy = {"latency": latency_stats([1.0, 2.0] * 20 + [1.3, 2.6] * 20, runs=2)}
    assert busy["latency"]["run_spread"] > UNSTABLE_SPREAD
    assert [w for w in warnings_of(busy) if w.startswith("unstable: the medians of 2 runs")]


def test_records_compare_machine_libraries_and_commit():
    from edgerep.measure.records import differences, make_record

    a = make_record("bench", {})
    assert differences(a, make_record("bench", {})) == []
    b = {**a, "machine": {**a["machine"], "ai-edge-litert": "0.0.1"}}
    assert [d for d in differences(a, b) if d.startswith("ai-edge-litert:")]
    c = {**a, "git_commit": "0" * 40}
    assert [d for d in differences(a, c) if d.startswith("git_commit:")]


def test_peak_rss_is_the_worker_own_not_inherited_from_a_large_parent(tiny_bundles, validation_texts):
    """ru_maxrss survives fork + exec on Linux; the worker reports VmHWM of its own memory."""
    from edgerep.measure import bench as bench_module

    ballast = bytearray(600 * 10**6)  # the parent grows to > 600 MB resident
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    spec = {"kind": "bundle", "path": str(tiny_bundles["dynamic-int8"]), "threads": 1, "profile": "host", "texts": validation_texts[:4], "warmup": 0}
    cell = bench_module._run_cell(spec, 120)
    del ballast
    assert "error" not in cell and 10 < cell["peak_rss_mb"] < 400, cell["peak_rss_mb"]


def test_peak_rss_reads_vmhwm(tmp_path):
    from edgerep.measure.bench import peak_rss_bytes

    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmPeak:\t  999999 kB\nVmHWM:\t  143360 kB\nVmRSS:\t  100000 kB\n")
    assert peak_rss_bytes(status) == 143360 * 1024
