"""``edgerep serve``: a local HTTP API around the on-device runtime, with micro-batching.

Endpoints (JSON in, JSON out; errors are ``{"error": "..."}`` with a 4xx status):

* ``POST /classify`` — ``{"text": "one tweet"}`` -> ``{"label", "probabilities"}``, or
  ``{"texts": ["tweet", ...]}`` -> ``{"predictions": [{"label", "probabilities"}, ...]}``.
  An entity-conditioned bundle (``/health`` says ``"entity_conditioned": true``) needs
  ``"entity": "BMW"`` beside them (the entity every text of the request is about); without it the
  answer is a 422 naming ``"entity"``, and other bundles refuse an ``"entity"`` the same way.
* ``GET /health`` — ``{"status": "ok", "model": {...}, "uptime_s"}``.
* ``GET /metrics`` — request counts per status (``/metrics`` calls themselves not counted), texts, batches, mean batch size, latency
  p50/p90/p99 (ms, server side, last 10,000 requests), inference time share.

Micro-batching: requests arriving together are queued, and one inference worker (a single
thread: a LiteRT interpreter is not thread-safe) takes everything waiting — up to
``max_batch`` texts, waiting at most ``max_wait_ms`` for more — and runs it as one call of
:meth:`PolarityClassifier.logits`, each tweet in its length bucket, so a tweet's result never
depends on the requests it was grouped with (it equals ``edgerep classify``'s). The event loop
keeps accepting connections meanwhile.

Limits: request body ``max_body_bytes`` (413), ``max_texts`` per request and
``max_text_chars`` per text (413), a queue of at most ``max_queue_texts`` waiting texts (503,
retry later). Invalid JSON is a 400; a wrong shape, a non-string or a text empty after
normalization is a 422 naming the field (``texts[3]``).

No outbound network use: the bundle is read from disk at start, nothing is fetched, and the
interactive docs pages (which load scripts from a CDN) are disabled; ``/openapi.json`` stays.
Needs the ``[serve]`` extra: ``fastapi`` and ``uvicorn``.
"""

# No ``from __future__ import annotations`` here: FastAPI resolves the endpoints' ``Request``
# annotation at definition time, inside create_app.
import asyncio
import json
import os
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgerep import __version__
from edgerep.errors import ConfigError
from edgerep.registry import MB
from edgerep.device.runtime import PolarityClassifier, softmax
from edgerep.device.text import normalize_entity, normalize_tweet
from edgerep.errors import InputTextError


@dataclass(frozen=True)
class ServeConfig:
    """Server limits and batching.

    Attributes:
        max_batch: most texts in one inference call (micro-batch).
        max_wait_ms: how long the worker waits for more requests once one is queued (ms).
        max_body_bytes: largest request body (bytes); larger is a 413.
        max_texts: most texts in one request.
        max_text_chars: longest text accepted (characters; the runtime keeps the first 1,000
            after normalization anyway).
        max_queue_texts: texts waiting for inference beyond which requests get a 503.
        threads: inference threads of the engine (None: the engine's default).
    """

    max_batch: int = 32
    max_wait_ms: float = 2.0
    max_body_bytes: int = 1 << 20
    max_texts: int = 256
    max_text_chars: int = 20_000
    max_queue_texts: int = 8192
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_body_bytes", "max_texts", "max_text_chars", "max_queue_texts"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ConfigError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")


class RequestError(Exception):
    """A client error: ``status`` (4xx/503) and a message naming the field."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def parse_request(body: bytes, cfg: ServeConfig, entity_conditioned: bool = False) -> tuple[list[str], bool, str | None]:
    """Validate a ``/classify`` body; return ``(texts, single, entity)``.

    Raises:
        RequestError: 400 (not JSON / not UTF-8), 413 (too many or too long texts), 422 (shape,
            types, empty text, ``entity`` missing for an entity-conditioned bundle or given to
            another) — the message names the field.
    """
    try:
        obj = json.loads(body)
    except UnicodeDecodeError:
        raise RequestError(400, "body is not UTF-8") from None
    except json.JSONDecodeError as e:
        raise RequestError(400, f"body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(obj, dict) or (("text" in obj) == ("texts" in obj)):
        raise RequestError(422, 'expected a JSON object with "text": "a tweet" or "texts": ["tweet", ...]')
    single = "text" in obj
    texts = [obj["text"]] if single else obj["texts"]
    if not isinstance(texts, list):
        raise RequestError(422, f'"texts": expected a list of strings, got {type(texts).__name__}')
    if not texts:
        raise RequestError(422, '"texts": empty list')
    if len(texts) > cfg.max_texts:
        raise RequestError(413, f'"texts": {len(texts)} texts, at most {cfg.max_texts} per request')
    for i, t in enumerate(texts):
        where = '"text"' if single else f"texts[{i}]"
        if not isinstance(t, str):
            raise RequestError(422, f"{where}: expected a string, got {type(t).__name__}")
        if len(t) > cfg.max_text_chars:
            raise RequestError(413, f"{where}: {len(t):,} characters, at most {cfg.max_text_chars:,}")
        if not normalize_tweet(t):
            raise RequestError(422, f"{where}: empty after normalization (only whitespace or control characters)")
    return texts, single, _entity(obj, cfg, entity_conditioned)


def _entity(obj: dict, cfg: ServeConfig, entity_conditioned: bool) -> str | None:
    """The request's ``"entity"``, checked against the bundle (see :func:`parse_request`)."""
    if "entity" not in obj:
        if entity_conditioned:
            raise RequestError(422, '"entity": required: this bundle is entity-conditioned; name the entity the tweets are about')
        return None
    if not entity_conditioned:
        raise RequestError(422, '"entity": this bundle was trained without entity conditioning and takes no entity')
    entity = obj["entity"]
    if not isinstance(entity, str):
        raise RequestError(422, f'"entity": expected a string, got {type(entity).__name__}')
    if len(entity) > cfg.max_text_chars:
        raise RequestError(413, f'"entity": {len(entity):,} characters, at most {cfg.max_text_chars:,}')
    try:
        normalize_entity(entity)
    except InputTextError as exc:
        raise RequestError(422, f'"entity": {exc}') from None
    return entity


class MicroBatcher:
    """Queue of pending texts served by one inference thread in batches.

    ``submit(texts)`` returns float32 logits [len(texts), n_classes] once the batch holding them
    has run. Statistics: ``batches``, ``batched_texts``, ``inference_s``.
    """

    def __init__(self, clf: PolarityClassifier, cfg: ServeConfig):
        self.clf = clf
        self.cfg = cfg
        self.queue: asyncio.Queue = asyncio.Queue()
        self.pending_texts = 0
        self.batches = 0
        self.batched_texts = 0
        self.inference_s = 0.0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgerep-infer")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=True)

    async def submit(self, texts: list[str], entity: str | None = None) -> np.ndarray:
        if self.pending_texts + len(texts) > self.cfg.max_queue_texts:
            raise RequestError(503, f"overloaded: {self.pending_texts} texts waiting; retry later")
        fut = asyncio.get_running_loop().create_future()
        self.pending_texts += len(texts)
        await self.queue.put((texts, None if entity is None else [entity] * len(texts), fut))
        return await fut

    def _infer(self, texts: list[str], entities: list[str] | None) -> np.ndarray:
        # Each tweet runs in its length bucket, not through the batch signature: dynamic-range
        # int8 quantizes activations per call, so a batched tweet's logits would depend on its
        # neighbours; buckets are also the faster path at 1 thread (README, edgerep bench).
        return self.clf.logits(texts, batch_size=1, entities=entities)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = [await self.queue.get()]
            n = len(group[0][0])
            deadline = loop.time() + self.cfg.max_wait_ms / 1e3
            while n < self.cfg.max_batch:
                try:
                    item = self.queue.get_nowait() if loop.time() >= deadline else await asyncio.wait_for(self.queue.get(), deadline - loop.time())
                except (asyncio.QueueEmpty, asyncio.TimeoutError):
                    break
                group.append(item)
                n += len(item[0])
            texts = [t for ts, _, _ in group for t in ts]
            entities = [e for _, es, _ in group for e in es] if self.clf.entity_conditioned else None
            t0 = time.perf_counter()
            try:
                logits = await loop.run_in_executor(self._pool, self._infer, texts, entities)
            except Exception as e:  # an engine failure must fail these requests, not the worker
                for _, _, fut in group:
                    if not fut.done():
                        fut.set_exception(e)
            else:
                s = 0
                for ts, _, fut in group:
                    if not fut.done():
                        fut.set_result(logits[s : s + len(ts)])
                    s += len(ts)
            finally:
                self.inference_s += time.perf_counter() - t0
                self.batches += 1
                self.batched_texts += len(texts)
                self.pending_texts -= len(texts)


class Stats:
    """Request counters and a window of the last 10,000 request latencies (ms)."""

    def __init__(self) -> None:
        self.started = time.time()
        self.status: Counter = Counter()
        self.texts = 0
        self.latencies_ms: deque = deque(maxlen=10_000)

    def snapshot(self, batcher: MicroBatcher) -> dict:
        lat = np.asarray(self.latencies_ms, dtype=np.float64)
        uptime = time.time() - self.started
        return {
            "uptime_s": round(uptime, 1),
            "requests_total": sum(self.status.values()),
            "requests_by_status": {str(k): v for k, v in sorted(self.status.items())},
            "texts_classified": self.texts,
            "batches": batcher.batches,
            "mean_batch_texts": round(batcher.batched_texts / batcher.batches, 2) if batcher.batches else None,
            "queue_texts": batcher.pending_texts,
            "inference_busy_percent": round(100 * batcher.inference_s / uptime, 1) if uptime else None,
            "latency_ms": {
                "window": int(lat.size),
                **({f"p{q}": round(float(np.percentile(lat, q)), 3) for q in (50, 90, 99)} if lat.size else {}),
                **({"max": round(float(lat.max()), 3)} if lat.size else {}),
            },
        }


def create_app(bundle: str | os.PathLike, cfg: ServeConfig = ServeConfig()):
    """The FastAPI application serving ``bundle`` (loaded and verified now, before any request).

    Raises:
        BundleError: the bundle cannot be loaded (see :class:`PolarityClassifier`).
        ConfigError: fastapi is not installed.
    """
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse
        from starlette.exceptions import HTTPException as StarletteHTTPException
    except ImportError:
        raise ConfigError("edgerep serve needs fastapi and uvicorn: pip install 'edgerep[serve]'") from None
    from contextlib import asynccontextmanager

    clf = PolarityClassifier(bundle, num_threads=cfg.threads)
    m = clf.manifest
    for width in m.buckets or [m.max_seq_len]:  # first call of each signature allocates: not in a request
        clf.logits(["a " * max(1, width - 2)], entities="a" if clf.entity_conditioned else None)
    model_info = {
        "bundle": str(Path(bundle)), "backend": m.backend, "quantization": m.quantization.get("mode"), "labels": list(m.labels),
        "max_seq_len": m.max_seq_len, "size_mb": round(clf.model_size_bytes / MB, 3), "model_sha256": m.model_sha256[:16],
        "source": m.source.get("model") if isinstance(m.source, dict) else None,
        "entity_conditioned": m.entity_conditioned,
    }
    stats = Stats()
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app):
        state["batcher"] = MicroBatcher(clf, cfg)
        state["batcher"].start()
        yield
        await state["batcher"].stop()

    app = FastAPI(title="edgerep", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        stats.status[exc.status_code] += 1
        return error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    @app.post("/classify")
    async def classify(request: Request):
        t0 = time.perf_counter()
        try:
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > cfg.max_body_bytes:
                raise RequestError(413, f"body of {int(declared):,} bytes, at most {cfg.max_body_bytes:,}")
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > cfg.max_body_bytes:
                    raise RequestError(413, f"body larger than {cfg.max_body_bytes:,} bytes")
                chunks.append(chunk)
            texts, single, entity = parse_request(b"".join(chunks), cfg, m.entity_conditioned)
            logits = await state["batcher"].submit(texts, entity)
        except RequestError as e:
            stats.status[e.status] += 1
            return error(e.status, str(e))
        probs = softmax(logits)
        preds = [
            {"label": m.labels[int(np.argmax(row))], "probabilities": {lab: round(float(p), 6) for lab, p in zip(m.labels, pr)}}
            for row, pr in zip(logits, probs)
        ]
        stats.status[200] += 1
        stats.texts += len(texts)
        stats.latencies_ms.append((time.perf_counter() - t0) * 1e3)
        return preds[0] if single else {"predictions": preds}

    @app.get("/health")
    async def health():
        stats.status[200] += 1
        return {"status": "ok", "model": model_info, "uptime_s": round(time.time() - stats.started, 1)}

    @app.get("/metrics")
    async def metrics():
        return {**stats.snapshot(state["batcher"]), "model": model_info, "config": cfg.__dict__}

    return app


def serve(
    bundle: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, cfg: ServeConfig = ServeConfig(),
    access_log: bool = False, announce=None,
) -> None:
    """Load ``bundle``, bind ``host:port`` (0: any free port) and serve with uvicorn until
    interrupted (Ctrl-C / SIGTERM). ``announce(url)`` is called once listening is certain.

    Raises:
        BundleError, ConfigError: see :func:`create_app`; uvicorn missing; the address cannot be
            bound (in use, not local, no permission).
    """
    import socket

    app = create_app(bundle, cfg)
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("edgerep serve needs fastapi and uvicorn: pip install 'edgerep[serve]'") from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    bound = sock.getsockname()[1]
    if announce is not None:
        announce(f"http://{'[' + host + ']' if family == socket.AF_INET6 else host}:{bound}")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=access_log, lifespan="on", backlog=2048))
    server.run(sockets=[sock])


def spawn(bundle: str | os.PathLike, *args: str, prefix: tuple[str, ...] = (), timeout_s: float = 120):
    """Start ``edgerep serve BUNDLE --port 0 ARGS`` in a child process on loopback and wait
    until it listens (tests, ``benchmarks/serve_load.py``). ``prefix`` runs it under another
    command (``("unshare", "-n")``). Its stderr is drained in a thread after the start line.

    Returns:
        ``(process, url)`` — ``url`` like ``http://127.0.0.1:40123``; terminate the process when done.

    Raises:
        RuntimeError: the server exited or did not listen within ``timeout_s`` (its stderr in the message).
    """
    import re
    import subprocess
    import sys
    import threading

    cmd = [*prefix, sys.executable, "-m", "edgerep", "serve", str(bundle), "--host", "127.0.0.1", "--port", "0", *args]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline, seen = time.time() + timeout_s, []
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(r" on (http://\S+)", line)
        if m:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # a full pipe would block the server
            return proc, m.group(1)
    proc.kill()
    raise RuntimeError("edgerep serve did not start:\n" + "".join(seen))
