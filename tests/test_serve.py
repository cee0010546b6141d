"""``edgerep serve``: the HTTP API in-process (TestClient) and as a real server process, under
concurrent load, with bad input, and with the network unplugged (``unshare -n``)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import urllib.request

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from edgerep.device.runtime import PolarityClassifier  # noqa: E402
from edgerep.device.serve import ServeConfig, create_app  # noqa: E402
from edgerep.measure.serving import spawn  # noqa: E402

ADVERSARIAL_OK = {
    "10,000 characters": "great " * 1666 + "!!!!",
    "control characters": "bad\x00\x07 service\x1b[31m from\u200b @HSBC",
    "emoji only": "\U0001f621\U0001f621\U0001f44e",
    "mixed scripts": "BMW 很好 отлично سيارة ممتازة 🚗",
    "lone surrogate": "broken \ud800 text",
    "RTL override": "\u202egnirts desrever",
}


@pytest.fixture(scope="module")
def client(tiny_bundles):
    with TestClient(create_app(tiny_bundles["dynamic-int8"], ServeConfig(max_texts=8, max_body_bytes=64_000, max_queue_texts=16))) as c:
        yield c


def test_classify_one_and_many_match_the_runtime(client, tiny_bundles, validation_texts):
    clf = PolarityClassifier(tiny_bundles["dynamic-int8"])
    r = client.post("/classify", json={"text": validation_texts[0]})
    assert r.status_code == 200
    want = clf.classify(validation_texts[0])
    assert r.json()["label"] == want.label
    assert r.json()["probabilities"] == pytest.approx(want.probabilities, abs=1e-6)
    r = client.post("/classify", json={"texts": validation_texts[:8]})
    preds = r.json()["predictions"]
    assert [p["label"] for p in preds] == [clf.classify(t).label for t in validation_texts[:8]]
    for p in preds:
        assert sum(p["probabilities"].values()) == pytest.approx(1, abs=1e-5)


def test_health_and_metrics(client):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["model"]["quantization"] == "dynamic-int8" and h["model"]["labels"] == ["NEGATIVE", "NEUTRAL", "POSITIVE"]
    before = client.get("/metrics").json()
    client.post("/classify", json={"text": "Bank fined again"})
    client.post("/classify", content=b"{oops")
    m = client.get("/metrics").json()
    assert m["requests_total"] == before["requests_total"] + 2
    assert m["requests_by_status"]["400"] == before["requests_by_status"].get("400", 0) + 1
    assert m["texts_classified"] == before["texts_classified"] + 1
    lat = m["latency_ms"]
    assert lat["window"] >= 1 and 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{oops", 400, "body is not valid JSON"),
        (b"\xff\xfe\xfa", 400, "body is not"),
        (b"[1, 2]", 422, 'expected a JSON object with "text"'),
        (b'{"text": 5}', 422, '"text": expected a string, got int'),
        (b'{"texts": ["ok", null]}', 422, "texts[1]: expected a string, got NoneType"),
        (b'{"texts": []}', 422, "empty list"),
        (b'{"text": ""}', 422, "empty after normalization"),
        (b'{"text": " \\t\\n\\u200b "}', 422, "empty after normalization"),
        (json.dumps({"texts": ["a"] * 9}).encode(), 413, "9 texts, at most 8"),
        (json.dumps({"text": "x" * 20_001}).encode(), 413, "20,001 characters, at most 20,000"),
        (json.dumps({"texts": ["y" * 10_000] * 7}).encode(), 413, "at most 64,000"),
        (json.dumps({"texts": ["z"] * 8}).encode(), 200, None),
    ],
)
def test_bad_input_is_a_clear_4xx(client, body, status, message):
    r = client.post("/classify", content=body)
    assert r.status_code == status, r.text
    if message:
        assert message in r.json()["error"]


def test_adversarial_texts_never_crash(client):
    body = json.dumps({"texts": list(ADVERSARIAL_OK.values())})  # ASCII JSON: "\\ud800" escaped, as a client would send it
    r = client.post("/classify", content=body.encode())
    assert r.status_code == 200 and len(r.json()["predictions"]) == len(ADVERSARIAL_OK)
    assert client.get("/nope").status_code == 404 and client.get("/classify").status_code == 405


def test_overload_is_a_503(tiny_bundles):
    with TestClient(create_app(tiny_bundles["dynamic-int8"], ServeConfig(max_queue_texts=2))) as c:
        r = c.post("/classify", json={"texts": ["a", "b", "c"]})
        assert r.status_code == 503 and "overloaded" in r.json()["error"]


def _start_server(bundle, *extra):
    return spawn(bundle, *extra)


def _post(url, obj, timeout=30):
    req = urllib.request.Request(url + "/classify", data=json.dumps(obj).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read())


def test_real_server_micro_batches_concurrent_requests(tiny_bundles, validation_texts):
    clf = PolarityClassifier(tiny_bundles["dynamic-int8"])
    want = [clf.classify(t) for t in validation_texts[:48]]
    proc, url = _start_server(tiny_bundles["dynamic-int8"], "--max-wait-ms", "50")
    try:
        results, errors = [None] * 48, []

        def one(i):
            try:
                results[i] = _post(url, {"text": validation_texts[i]})
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(e))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(48)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        for (status, body), w in zip(results, want):
            assert status == 200 and body["label"] == w.label
            assert np.allclose([body["probabilities"][k] for k in w.probabilities], list(w.probabilities.values()), atol=1e-6)
        with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
            m = json.loads(r.read())
        assert m["texts_classified"] == 48 and m["batches"] < 48 and m["mean_batch_texts"] > 1  # requests were grouped
    finally:
        proc.terminate()
        proc.wait(20)
    assert proc.returncode in (0, -15)


def test_serve_bad_bundle_and_busy_port(tiny_bundles, tmp_path):
    from conftest import run_cli

    bad = tmp_path / "bundle"
    shutil.copytree(tiny_bundles["dynamic-int8"], bad)
    (bad / "model.tflite").write_bytes((bad / "model.tflite").read_bytes()[:1000])
    p = run_cli("serve", str(bad), "--port", "0")
    assert p.returncode == 1 and b"SHA-256 differs" in p.stderr and b"Traceback" not in p.stderr
    proc, url = _start_server(tiny_bundles["dynamic-int8"])
    try:
        port = url.rsplit(":", 1)[1]
        p = run_cli("serve", str(tiny_bundles["dynamic-int8"]), "--port", port)
        assert p.returncode == 1 and b"cannot listen on 127.0.0.1:" + port.encode() + b": Address already in use" in p.stderr
    finally:
        proc.terminate()
        proc.wait(20)


def _can_unshare() -> str | None:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "unshare or ip (iproute2) not installed"
    p = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True)
    return None if p.returncode == 0 else f"unshare -n not permitted here: {p.stderr.decode().strip()[:100]}"


@pytest.mark.skipif(_can_unshare() is not None, reason=str(_can_unshare()))
def test_works_with_the_network_unplugged(tiny_bundles, tmp_path):
    """In a fresh network namespace (only a loopback, no route out): classify and serve work."""
    bundle = tiny_bundles["dynamic-int8"]
    script = tmp_path / "offline.py"
    script.write_text(
        f"""
import json, re, socket, subprocess, sys, urllib.request
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    sys.exit("network reachable: not an isolated namespace")
except OSError:
    pass
out = subprocess.run([sys.executable, "-m", "edgerep", "classify", {str(bundle)!r}, "Great service from @BMW", "--json"], capture_output=True, text=True)
assert out.returncode == 0, out.stderr
print("CLASSIFY", out.stdout.strip())
srv = subprocess.Popen([sys.executable, "-m", "edgerep", "serve", {str(bundle)!r}, "--port", "0"], stderr=subprocess.PIPE, text=True)
url = None
while url is None:
    line = srv.stderr.readline()
    assert line, "server exited"
    m = re.search(r"on (http://\\S+)", line)
    url = m and m.group(1)
req = urllib.request.Request(url + "/classify", data=json.dumps({{"text": "HSBC fined again"}}).encode(), headers={{"Content-Type": "application/json"}})
print("SERVE", urllib.request.urlopen(req, timeout=30).read().decode())
srv.terminate(); srv.wait(20)
"""
    )
    p = subprocess.run(["unshare", "-n", sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert re.search(r'CLASSIFY .*"label": "(POSITIVE|NEUTRAL|NEGATIVE)"', p.stdout)
    assert re.search(r'SERVE \{"label":"(POSITIVE|NEUTRAL|NEGATIVE)"', p.stdout)
