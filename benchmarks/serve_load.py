#!/usr/bin/env python
"""Load test of ``edgerep serve`` on loopback: N concurrent clients for a bounded time.

Starts ``edgerep serve BUNDLE --port 0`` on 127.0.0.1 in a child process, then runs ``--clients``
threads, each with its own keep-alive HTTP/1.1 connection (``http.client``), posting real RepLab
validation tweets one per request until ``--duration`` seconds or ``--max-requests`` requests.
Counts every non-200 answer and every connection error as an error; latency is measured on the
client (request sent -> body read), so it includes queueing in the server.

    python benchmarks/serve_load.py runs/default/bundles/dynamic-int8 --clients 50 --duration 60 -o runs/load/load.json

Prints throughput (requests/s), client latency p50/p90/p99/max, the server process's peak RSS
(psutil, sampled every 100 ms) and CPU, the server's /metrics (mean micro-batch, server-side
p99), and writes an ``edgerep.load`` record. Exit code 1 when any
request failed. Client and server share this machine's cores: on a 2-core host the figures are
a lower bound of what the server does alone.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import threading
import time
from pathlib import Path


from edgerep.measure.bench import latency_stats
from edgerep.registry import MB
from edgerep.measure.records import make_record, write_record


def start_server(bundle: str, threads: int | None, extra: list[str]) -> tuple[subprocess.Popen, str, int]:
    from edgerep.measure.serving import spawn

    try:
        proc, url = spawn(bundle, *extra, *(["--threads", str(threads)] if threads else []))
    except RuntimeError as e:
        sys.exit(str(e))
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return proc, host, int(port)


def client(host: str, port: int, bodies: list[str], offset: int, stop_at: float, budget: list[int], lock: threading.Lock, out: dict) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    lat, errors, i = [], [], offset
    while time.perf_counter() < stop_at:
        with lock:
            if budget[0] <= 0:
                break
            budget[0] -= 1
        body = bodies[i % len(bodies)]
        i += 1
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/classify", body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            if r.status != 200:
                errors.append(f"HTTP {r.status}: {data[:200]!r}")
            else:
                lat.append((time.perf_counter() - t0) * 1e3)
        except (OSError, http.client.HTTPException) as e:
            errors.append(f"{type(e).__name__}: {e}")
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.close()
    out["latencies"] = lat
    out["errors"] = errors


def server_metrics(host: str, port: int) -> dict:
    """The server's ``GET /metrics`` answer."""
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.request("GET", "/metrics")
    body = json.loads(c.getresponse().read())
    c.close()
    return body


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load (bounded)")
    ap.add_argument("--max-requests", type=int, default=1_000_000, help="stop after this many requests in all (bounded)")
    ap.add_argument("--tweets", default="../shared/data/replab2013", help="RepLab root (validation tweets) or a text file")
    ap.add_argument("--n-tweets", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=None, help="server inference threads")
    ap.add_argument("--max-wait-ms", type=float, default=2.0, help="server micro-batching wait")
    ap.add_argument("-o", "--output", default=None, help="write the edgerep.load JSON record here")
    a = ap.parse_args()
    if a.clients < 1 or a.duration <= 0 or a.max_requests < 1:
        sys.exit("--clients, --duration and --max-requests must be positive")
    from edgerep.data import benchmark_tweets
    from edgerep.errors import EdgerepError

    from edgerep.device.manifest import Manifest

    try:
        sample = benchmark_tweets(a.tweets, a.n_tweets)
        conditioned = Manifest.read(a.bundle).entity_conditioned
    except EdgerepError as e:
        sys.exit(f"error: {e}")
    if conditioned and sample.entities is None:
        sys.exit(f"error: {a.tweets} names no entities and {a.bundle} is entity-conditioned; use a RepLab root")
    # entity-conditioned bundles get each tweet's own entity, as a reputation team's client sends it
    texts = [json.dumps({"text": t, **({"entity": e} if conditioned else {})}) for t, e in zip(sample.texts, sample.entities or sample.texts)]
    proc, host, port = start_server(a.bundle, a.threads, ["--max-wait-ms", str(a.max_wait_ms)])
    try:
        c = http.client.HTTPConnection(host, port, timeout=30)
        for t in texts[:20]:  # warm-up, not counted
            c.request("POST", "/classify", body=t, headers={"Content-Type": "application/json"})
            c.getresponse().read()
        c.close()
        stop_at = time.perf_counter() + a.duration
        budget, lock = [a.max_requests], threading.Lock()
        outs = [{} for _ in range(a.clients)]
        workers = [
            threading.Thread(target=client, args=(host, port, texts, k * len(texts) // a.clients, stop_at, budget, lock, outs[k]))
            for k in range(a.clients)
        ]
        import psutil

        server_proc, peak = psutil.Process(proc.pid), {"rss": 0}
        server_proc.cpu_percent()  # start the CPU-time window
        done = threading.Event()

        def sample_rss() -> None:  # the server's resident memory, every 100 ms, while loaded
            while not done.wait(0.1):
                try:
                    peak["rss"] = max(peak["rss"], server_proc.memory_info().rss)
                except psutil.Error:
                    return

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join(a.duration + 60)
        wall = time.perf_counter() - t0
        server_cpu = server_proc.cpu_percent()
        done.set()
        server = server_metrics(host, port)
    finally:
        proc.terminate()
        proc.wait(30)
    lat = [x for o in outs for x in o.get("latencies", [])]
    errors = [e for o in outs for e in o.get("errors", [])]
    stuck = sum(1 for w in workers if w.is_alive())
    if stuck:
        errors.append(f"{stuck} clients did not finish")
    ok = len(lat)
    stats = latency_stats(lat) if ok >= 2 else None
    rec = make_record("load", {
        "bundle": a.bundle,
        "settings": {"clients": a.clients, "duration_s": a.duration, "max_requests": a.max_requests, "tweets": len(texts),
                     "server_threads": a.threads, "max_wait_ms": a.max_wait_ms, "texts_per_request": 1, "transport": "HTTP/1.1 keep-alive, loopback"},
        "wall_s": round(wall, 2),
        "requests_ok": ok,
        "errors": len(errors),
        "error_examples": errors[:10],
        "throughput_requests_per_s": round(ok / wall, 2),
        "server_peak_rss_mb": round(peak["rss"] / MB, 1),
        "server_cpu_percent_of_one_core": round(server_cpu, 1),
        "client_latency": stats,
        "server_metrics": {k: server.get(k) for k in ("requests_total", "requests_by_status", "batches", "mean_batch_texts", "inference_busy_percent", "latency_ms")},
    })
    print(f"{a.clients} clients x {wall:.1f} s on {host}:{port} ({Path(a.bundle).name}): {ok:,} requests ok, {len(errors)} errors")
    print(f"throughput {rec['throughput_requests_per_s']:.1f} requests/s (one tweet each)")
    if stats:
        print(f"client latency ms: p50 {stats['p50_ms']:.1f}  p90 {stats['p90_ms']:.1f}  p99 {stats['p99_ms']:.1f}  max {stats['max_ms']:.1f}")
    print(f"server process: peak RSS {rec['server_peak_rss_mb']:.0f} MB (sampled every 100 ms), CPU {rec['server_cpu_percent_of_one_core']:.0f}% of one core")
    sm = server.get("latency_ms", {})
    print(f"server: mean micro-batch {server.get('mean_batch_texts')} texts, inference busy {server.get('inference_busy_percent')}%, "
          f"server-side p99 {sm.get('p99')} ms (last {sm.get('window')} requests)")
    for e in errors[:5]:
        print(f"error: {e}", file=sys.stderr)
    if a.output:
        write_record(a.output, rec)
        print(f"record written to {a.output}")
    return 1 if errors or ok == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
