#!/usr/bin/env python
"""Slow-client attack on ``edgerep serve`` (loopback only): does a normal client still get answers?

Starts ``edgerep serve BUNDLE --port 0`` on 127.0.0.1 with its default limits (request-read
deadline 10 s, keep-alive 5 s, 512 connections), then:

1. baseline: a normal client posts one real validation tweet every ``--every`` seconds, each on a
   fresh TCP connection, for ``--baseline`` seconds;
2. attack: ``--attackers`` sockets (Slowloris) each open a request head and send one more header
   byte every ``--byte-every`` seconds, never finishing it, and reconnect as soon as the server
   drops them; the normal client keeps posting meanwhile, for ``--duration`` seconds.

Client latency (connect -> answer read) is measured per request; the target is that every normal
request under attack answers within 1 s. Prints the figures and writes an ``edgerep.slow_clients``
record: latencies p50/p90/max per phase, errors, attack sockets opened and dropped, the server's
``slow_connections_dropped``, its peak RSS and the machine's CPU flags.

    python benchmarks/serve_slow_clients.py runs/default/bundles/dynamic-int8 -o runs/load/slow-clients.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import threading
import time

from edgerep.measure.bench import latency_stats
from edgerep.measure.records import make_record, write_record
from edgerep.registry import MB
from serve_load import server_metrics  # this folder: run as a script

HEAD = b"POST /classify HTTP/1.1\r\nHost: edgerep\r\nContent-Type: application/json\r\nX-Slow: "


def normal_client(host: str, port: int, bodies: list[bytes], every_s: float, stop_at: float) -> tuple[list[float], list[str]]:
    """Post ``bodies`` in turn, one fresh connection each, every ``every_s`` until ``stop_at``."""
    lat, errors, i = [], [], 0
    while time.perf_counter() < stop_at:
        t0 = time.perf_counter()
        try:
            c = http.client.HTTPConnection(host, port, timeout=30)
            c.request("POST", "/classify", body=bodies[i % len(bodies)], headers={"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == 200:
                lat.append((time.perf_counter() - t0) * 1e3)
            else:
                errors.append(f"HTTP {r.status}")
        except (OSError, http.client.HTTPException) as e:
            errors.append(f"{type(e).__name__}: {e}")
        i += 1
        time.sleep(max(0.0, every_s - (time.perf_counter() - t0)))
    return lat, errors


class Slowloris(threading.Thread):
    """``n`` sockets, each sending one header byte every ``byte_every_s``; dropped ones reopen."""

    def __init__(self, host: str, port: int, n: int, byte_every_s: float):
        super().__init__(daemon=True)
        self.host, self.port, self.n, self.byte_every_s = host, port, n, byte_every_s
        self.stop = threading.Event()
        self.opened = self.dropped = self.open_failures = 0
        self.socks: list[socket.socket] = []

    def _open(self) -> None:
        try:
            s = socket.create_connection((self.host, self.port), timeout=5)
            s.sendall(HEAD)
            s.setblocking(False)
            self.socks.append(s)
            self.opened += 1
        except OSError:
            self.open_failures += 1

    def _poke(self, s: socket.socket) -> bool:
        """One more header byte on ``s``; False when the server has closed it."""
        try:
            if s.recv(1) == b"":
                return False
        except BlockingIOError:
            pass
        except OSError:
            return False
        try:
            s.send(b"a")
        except BlockingIOError:
            pass
        except OSError:
            return False
        return True

    def run(self) -> None:
        while not self.stop.is_set():
            while len(self.socks) < self.n and not self.stop.is_set():
                self._open()
            for s in list(self.socks):
                if not self._poke(s):
                    self.socks.remove(s)
                    s.close()
                    self.dropped += 1
            self.stop.wait(self.byte_every_s)
        for s in self.socks:
            s.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--attackers", type=int, default=200, help="slow sockets held open (default 200)")
    ap.add_argument("--byte-every", type=float, default=1.0, help="seconds between an attacker's bytes (default 1)")
    ap.add_argument("--duration", type=float, default=45.0, help="seconds of attack (bounded)")
    ap.add_argument("--baseline", type=float, default=10.0, help="seconds of normal traffic before the attack")
    ap.add_argument("--every", type=float, default=0.25, help="seconds between the normal client's requests")
    ap.add_argument("--tweets", default="../shared/data/replab2013", help="RepLab root (validation tweets)")
    ap.add_argument("-o", "--output", default=None, help="write the edgerep.slow_clients JSON record here")
    a = ap.parse_args()
    if a.attackers < 1 or a.duration <= 0 or a.baseline <= 0 or a.every <= 0:
        sys.exit("--attackers, --duration, --baseline and --every must be positive")
    import psutil

    from edgerep.data import benchmark_tweets
    from edgerep.device.manifest import Manifest
    from edgerep.measure.serving import spawn
    from edgerep.errors import EdgerepError

    try:
        sample = benchmark_tweets(a.tweets, 200)
        conditioned = Manifest.read(a.bundle).entity_conditioned
    except EdgerepError as e:
        sys.exit(f"error: {e}")
    bodies = [json.dumps({"text": t, **({"entity": e} if conditioned else {})}).encode()
              for t, e in zip(sample.texts, sample.entities or sample.texts)]
    try:
        proc, url = spawn(a.bundle)
    except RuntimeError as e:
        sys.exit(str(e))
    host, port = url.removeprefix("http://").rsplit(":", 1)
    port = int(port)
    server, peak = psutil.Process(proc.pid), {"rss": 0}
    done = threading.Event()

    def sample_rss() -> None:
        while not done.wait(0.2):
            try:
                peak["rss"] = max(peak["rss"], server.memory_info().rss)
            except psutil.Error:
                return

    threading.Thread(target=sample_rss, daemon=True).start()
    try:
        base_lat, base_err = normal_client(host, port, bodies, a.every, time.perf_counter() + a.baseline)
        attack = Slowloris(host, port, a.attackers, a.byte_every)
        attack.start()
        time.sleep(2.0)  # all sockets open before the clock starts
        held = len(attack.socks)
        lat, errors = normal_client(host, port, bodies, a.every, time.perf_counter() + a.duration)
        attack.stop.set()
        attack.join(30)
        metrics = server_metrics(host, port)
    finally:
        done.set()
        proc.terminate()
        proc.wait(30)
    base = latency_stats(base_lat) if len(base_lat) >= 2 else None
    under = latency_stats(lat) if len(lat) >= 2 else None
    rec = make_record("slow_clients", {
        "bundle": a.bundle,
        "settings": {"attackers": a.attackers, "byte_every_s": a.byte_every, "duration_s": a.duration, "baseline_s": a.baseline,
                     "normal_request_every_s": a.every, "server": "edgerep serve defaults: request_timeout_s 10, keep_alive_s 5, max_connections 512",
                     "transport": "HTTP/1.1, a fresh connection per normal request, loopback"},
        "baseline": {"requests_ok": len(base_lat), "errors": len(base_err), "latency": base},
        "under_attack": {"requests_ok": len(lat), "errors": len(errors), "error_examples": errors[:10], "latency": under,
                         "attack_sockets_held_at_start": held, "attack_sockets_opened": attack.opened,
                         "attack_sockets_dropped_by_server": attack.dropped, "attack_open_failures": attack.open_failures},
        "server_slow_connections_dropped": metrics.get("slow_connections_dropped"),
        "server_peak_rss_mb": round(peak["rss"] / MB, 1),
        "target": {"max_latency_under_attack_ms": 1000, "met": bool(under and under["max_ms"] < 1000 and not errors)},
    })
    print(f"baseline ({a.baseline:.0f} s): {len(base_lat)} ok, {len(base_err)} errors"
          + (f"; latency ms p50 {base['p50_ms']:.1f} p90 {base['p90_ms']:.1f} max {base['max_ms']:.1f}" if base else ""))
    print(f"under attack ({a.attackers} slow sockets, one byte every {a.byte_every:g} s, {a.duration:.0f} s): {len(lat)} ok, "
          f"{len(errors)} errors" + (f"; latency ms p50 {under['p50_ms']:.1f} p90 {under['p90_ms']:.1f} max {under['max_ms']:.1f}" if under else ""))
    print(f"attack sockets: {held} held at start, {attack.opened} opened, {attack.dropped} dropped by the server "
          f"(server counted {metrics.get('slow_connections_dropped')}); server peak RSS {rec['server_peak_rss_mb']:.0f} MB")
    print(f"target (every normal request under attack < 1 s, no errors): {'met' if rec['target']['met'] else 'NOT met'}")
    for e in errors[:5]:
        print(f"error: {e}", file=sys.stderr)
    if a.output:
        write_record(a.output, rec)
        print(f"record written to {a.output}")
    return 0 if rec["target"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
