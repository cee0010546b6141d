"""``benchmarks/serve_load.py``: bounded concurrent load against a real ``edgerep serve`` (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "serve_load.py"


def test_load_script_short_run_has_no_errors(tiny_bundles, tmp_path, validation_texts):
    tweets = tmp_path / "tweets.txt"
    tweets.write_text("\n".join(t.replace("\n", " ") for t in validation_texts))
    out = tmp_path / "load.json"
    p = subprocess.run(
        [sys.executable, str(SCRIPT), str(tiny_bundles["dynamic-int8"]), "--clients", "12", "--duration", "3",
         "--max-requests", "400", "--tweets", str(tweets), "-o", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    rec = json.loads(out.read_text())
    assert rec["schema"] == "edgerep.load" and rec["errors"] == 0 and rec["settings"]["clients"] == 12
    assert 0 < rec["requests_ok"] <= 400 and rec["client_latency"]["n"] == rec["requests_ok"]
    assert rec["server_metrics"]["requests_by_status"]["200"] == rec["requests_ok"] + 20  # + the 20 warm-up requests
    assert rec["server_peak_rss_mb"] > 20 and rec["server_cpu_percent_of_one_core"] > 0
    assert "requests/s" in p.stdout and "p99" in p.stdout
