"""``edgerep serve``: a local HTTP API around the on-device runtime, with micro-batching.

Endpoints (JSON in, JSON out; every error is ``{"error": "...", "detail": [...]}`` with a 4xx
status; ``/openapi.json`` describes them all, request and answer bodies included):

* ``POST /classify`` — ``{"text": "one tweet"}`` -> ``{"label", "probabilities"}``, or
  ``{"texts": ["tweet", ...]}`` -> ``{"predictions": [{"label", "probabilities"}, ...]}``.
  An entity-conditioned bundle (``/health`` says ``"entity_conditioned": true``) needs
  ``"entity": "BMW"`` beside them (the entity every text of the request is about); without it the
  answer is a 422 naming ``"entity"``, and other bundles refuse an ``"entity"`` the same way.
* ``GET /health`` — ``{"status": "ok", "uptime_s", "model": {...}}``; open without a token (for
  liveness probes), and then without ``model``.
* ``GET /metrics`` — request counts per status (``/metrics`` calls themselves not counted), texts,
  batches, mean batch size, latency p50/p90/p99 (ms, server side, last 10,000 requests),
  inference time share, slow connections dropped.

Bodies are pydantic models (:func:`api_models`), validated by FastAPI; its validation errors are
mapped to the documented answers: 400 (not JSON, not UTF-8), 413 (body over ``max_body_bytes``,
over ``max_texts`` texts, a text over ``max_text_chars``), 415 (a Content-Type other than JSON; a
request without one is read as JSON), 422 (shape, types, a text empty after normalization, the
entity), 503 (queue full). ``error`` names the field (``texts[3]``), never echoes the text.

Authentication: with a token (:func:`read_token`), every path but ``/health`` and
``/openapi.json`` needs ``Authorization: Bearer <token>`` (compared in constant time,
:func:`hmac.compare_digest`); anything else is a 401 answered before the body is read, so it
costs no inference. :func:`serve` refuses a non-loopback address without a token unless told
``insecure``.

Slow and abusive clients (uvicorn has no request-read timeout, `uvicorn#157
<https://github.com/encode/uvicorn/issues/157>`_): a connection must deliver a whole request,
head and body, within ``request_timeout_s`` of its first byte (of connecting, for the first
request) or it is closed; an idle keep-alive connection is closed after ``keep_alive_s``; beyond
``max_connections`` open connections requests get uvicorn's 503.

Privacy: no tweet text reaches the access log (method, path, status only), ``/metrics``, or an
error message; a text that fails is named by its position.

Micro-batching: requests arriving together are queued, and one inference worker (a single
thread: a LiteRT interpreter is not thread-safe) takes everything waiting — up to
``max_batch`` texts, waiting at most ``max_wait_ms`` for more — and runs it as one call of
:meth:`PolarityClassifier.logits`, each tweet in its length bucket, so a tweet's result never
depends on the requests it was grouped with (it equals ``edgerep classify``'s). The event loop
keeps accepting connections meanwhile.

No outbound network use: the bundle is read from disk at start, nothing is fetched, and the
interactive docs pages (which load scripts from a CDN) are disabled; ``/openapi.json`` stays.
Needs the ``[serve]`` extra: ``fastapi`` and ``uvicorn``.
"""

# No ``from __future__ import annotations`` here: FastAPI and pydantic resolve the endpoints'
# and models' annotations at definition time, inside create_app.
import asyncio
import hashlib
import hmac
import ipaddress
import json
import os
import re
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edgerep import __version__
from edgerep.device.runtime import PolarityClassifier, softmax
from edgerep.device.text import normalize_entity, normalize_tweet
from edgerep.errors import ConfigError, InputTextError
from edgerep.registry import MB

OPEN_PATHS = frozenset({"/health", "/openapi.json"})
"""Paths answered without a token when authentication is on."""
MIN_TOKEN_CHARS = 16
"""Shortest token accepted (characters): 16 random ASCII letters/digits are ~95 bits."""


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
        request_timeout_s: a connection must deliver a whole request (head and body) within this
            many seconds of its first byte, else it is closed (s).
        keep_alive_s: an idle keep-alive connection is closed after this many seconds (s).
        max_connections: open connections beyond which requests get a 503 (uvicorn's
            ``limit_concurrency``).
    """

    max_batch: int = 32
    max_wait_ms: float = 2.0
    max_body_bytes: int = 1 << 20
    max_texts: int = 256
    max_text_chars: int = 20_000
    max_queue_texts: int = 8192
    threads: int | None = None
    request_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    max_connections: int = 512

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_body_bytes", "max_texts", "max_text_chars", "max_queue_texts", "max_connections"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ConfigError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        for name in ("request_timeout_s", "keep_alive_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")


class RequestError(Exception):
    """A client error: ``status`` (4xx/503) and a message naming the field."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def read_token(path: str | os.PathLike) -> str:
    """The bearer token in ``path``: its first line, surrounding whitespace removed.

    Raises:
        ConfigError: the file is missing or unreadable, or the token is shorter than
            :data:`MIN_TOKEN_CHARS` or not printable ASCII (an HTTP header cannot carry it).
            The message names the file, never the token.
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"token file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read token file {p}: {getattr(e, 'strerror', None) or e}") from None
    token = lines[0].strip() if lines else ""
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"token file {p}: the token (first line) has {len(token)} characters, at least {MIN_TOKEN_CHARS} "
            'needed; make one with: python -c "import secrets; print(secrets.token_urlsafe(32))" > FILE'
        )
    if not all(33 <= ord(c) < 127 for c in token):
        raise ConfigError(f"token file {p}: the token must be printable ASCII without spaces (it travels in an HTTP header)")
    return token


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1); other names and
    addresses (``0.0.0.0``, a LAN address, a host name) count as reachable from the network."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


EXPECTED_BODY = 'expected a JSON object with "text": "a tweet" or "texts": ["tweet", ...]'
_EMPTY_TEXT = "empty after normalization (only whitespace or control characters)"
_SURROGATE = re.compile("[\ud800-\udfff]")


def api_models(labels: tuple[str, ...] | list[str], entity_conditioned: bool, cfg: ServeConfig) -> dict:
    """The request and answer bodies of the API as pydantic models, for one bundle.

    ``ClassifyRequest`` holds exactly one of ``text`` (str, 1..``max_text_chars``) and ``texts``
    (1..``max_texts`` of them), plus ``entity`` (required) for an entity-conditioned bundle and
    no other field; a text or entity empty after normalization fails with error type
    ``empty_text`` / ``invalid_entity``. ``Prediction`` is ``{"label", "probabilities"}`` with
    one probability per label (float in [0, 1]); ``Predictions`` wraps a list of them;
    ``Health``, ``Metrics`` and ``ErrorAnswer`` describe the other answers.

    Returns:
        ``{"ClassifyRequest", "Prediction", "Predictions", "Health", "Metrics", "ErrorAnswer"}``
        -> model class.
    """
    from typing import Annotated

    from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator
    from pydantic_core import PydanticCustomError

    def check_text(t: str) -> str:
        if not normalize_tweet(t):
            raise PydanticCustomError("empty_text", _EMPTY_TEXT)
        return t

    def check_entity(e: str) -> str:
        try:
            normalize_entity(e)
        except InputTextError as exc:
            raise PydanticCustomError("invalid_entity", str(exc)) from None
        return e

    def lone_surrogates_to_space(v):  # JSON may escape them ("\\ud800"); pydantic refuses such a str, and
        # normalize_tweet turns them into a space anyway (edgerep.device.text), so the answer stays classify's
        return _SURROGATE.sub(" ", v) if isinstance(v, str) else v

    def no_default(schema: dict) -> None:  # an absent field is absent, not null, in the schema
        schema.pop("default", None)

    Text = Annotated[
        str, BeforeValidator(lone_surrogates_to_space), Field(min_length=1, max_length=cfg.max_text_chars), AfterValidator(check_text)
    ]
    one_of = [{"required": ["text"]}, {"required": ["texts"]}]

    class ClassifyRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": one_of})  # type: ignore[dict-item]
        text: Text = Field(  # type: ignore[assignment]  # absent, not null: see the validator
            None, description="One tweet (give this or `texts`).", json_schema_extra=no_default, examples=["Great service from @BMW today!"]
        )
        texts: Annotated[list[Text], Field(min_length=1, max_length=cfg.max_texts)] = Field(
            None,  # type: ignore[arg-type]  # absent, not null: see the validator
            description=f"1 to {cfg.max_texts} tweets (give this or `text`).",
            json_schema_extra=no_default,
        )

        @model_validator(mode="after")
        def _exactly_one(self):
            if (self.text is None) == (self.texts is None):
                raise PydanticCustomError("text_or_texts", EXPECTED_BODY)
            return self

    if entity_conditioned:
        ClassifyRequest = create_model(  # type: ignore[misc]  # a model class built at run time
            "ClassifyRequest",
            __base__=ClassifyRequest,
            entity=(
                Annotated[
                    str,
                    BeforeValidator(lone_surrogates_to_space),
                    Field(
                        min_length=1,
                        max_length=cfg.max_text_chars,
                        description="The entity every text is about (the bundle is entity-conditioned).",
                        examples=["BMW"],
                    ),
                    AfterValidator(check_entity),
                ],
                ...,
            ),
        )
    Probabilities = create_model("Probabilities", **{lab: (Annotated[float, Field(ge=0, le=1)], ...) for lab in labels})  # type: ignore[call-overload]

    class Prediction(BaseModel):
        label: Literal[tuple(labels)]  # type: ignore[valid-type]
        probabilities: Probabilities  # type: ignore[valid-type]

    class Predictions(BaseModel):
        predictions: list[Prediction]

    class ModelInfo(BaseModel):
        bundle: str
        backend: str
        quantization: str | None
        labels: list[str]
        max_seq_len: int
        size_mb: float
        model_sha256: str
        source: str | None
        entity_conditioned: bool

    class Health(BaseModel):
        status: Literal["ok"]
        uptime_s: float
        auth: bool = Field(description="Whether requests other than /health and /openapi.json need a bearer token.")
        model: ModelInfo | None = Field(None, description="The bundle served (only for authenticated callers when auth is on).")

    class LatencyWindow(BaseModel):
        window: int
        p50: float | None = None
        p90: float | None = None
        p99: float | None = None
        max: float | None = None

    class Metrics(BaseModel):
        uptime_s: float
        requests_total: int
        requests_by_status: dict[str, int]
        texts_classified: int
        batches: int
        mean_batch_texts: float | None
        queue_texts: int
        inference_busy_percent: float | None
        slow_connections_dropped: int
        latency_ms: LatencyWindow
        auth: bool
        model: ModelInfo
        config: dict[str, Any]

    class ErrorItem(BaseModel):
        type: str
        loc: list[str | int]
        msg: str

    class ErrorAnswer(BaseModel):
        error: str = Field(description="One line naming the field (`texts[3]`); never the text itself.")
        detail: list[ErrorItem] = Field(default_factory=list, description="FastAPI's validation errors, without the input values.")

    return {
        "ClassifyRequest": ClassifyRequest,
        "Prediction": Prediction,
        "Predictions": Predictions,
        "Health": Health,
        "Metrics": Metrics,
        "ErrorAnswer": ErrorAnswer,
    }


_STATUS_413 = {"string_too_long", "too_long"}


def validation_answer(errors: list[dict], entity_conditioned: bool) -> tuple[int, str, list[dict]]:
    """Map FastAPI's request validation errors to ``(status, message, detail)``.

    ``status``: 400 when the body is not JSON, 413 when a text, the entity or the list is too
    long, else 422. ``message``: one line for the first error of that status, naming the field
    (``"text"``, ``texts[3]``, ``"entity"``). ``detail``: each error's ``type``, ``loc`` and
    ``msg`` — its ``input`` (the tweet) is dropped.
    """

    def status(e: dict) -> int:
        return 400 if e["type"] == "json_invalid" else 413 if e["type"] in _STATUS_413 else 422

    if not errors:
        return 422, EXPECTED_BODY, []
    worst = min(errors, key=lambda e: {400: 0, 413: 1, 422: 2}[status(e)])  # the first of the gravest
    code = status(worst)
    detail = [{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in errors]
    return code, _message(worst, entity_conditioned), detail


def _message(e: dict, entity_conditioned: bool) -> str:
    """One line for one pydantic/FastAPI error (see :func:`validation_answer`)."""
    loc, kind, ctx, value = list(e["loc"])[1:], e["type"], e.get("ctx") or {}, e.get("input")
    if kind == "json_invalid":
        return f"body is not valid JSON: {ctx.get('error', e['msg'])} at character {loc[0] if loc else 0}"
    if not loc or kind == "text_or_texts":
        return EXPECTED_BODY
    name = loc[0]
    where = f"{name}[{loc[1]}]" if len(loc) > 1 else f'"{name}"'
    if name == "entity" and kind == "missing":
        return '"entity": required: this bundle is entity-conditioned; name the entity the tweets are about'
    if kind == "extra_forbidden":
        if name == "entity":
            return '"entity": this bundle was trained without entity conditioning and takes no entity'
        return f'{where}: unknown field; expected "text" or "texts"' + (' and "entity"' if entity_conditioned else "")
    if kind == "string_type":
        return f"{where}: expected a string, got {type(value).__name__}"
    if kind == "list_type":
        return f"{where}: expected a list of strings, got {type(value).__name__}"
    if kind == "too_short":
        return f"{where}: empty list"
    if kind == "too_long":
        return f"{where}: {ctx.get('actual_length', '?')} texts, at most {ctx.get('max_length')} per request"
    if kind == "string_too_long":
        n = f"{len(value):,}" if isinstance(value, str) else "too many"
        return f"{where}: {n} characters, at most {ctx.get('max_length'):,}"
    if kind in ("string_too_short", "empty_text"):
        return f"{where}: {_EMPTY_TEXT}"
    return f"{where}: {e['msg']}"


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
        # neighbours; buckets are also the faster path at 1 thread.
        return self.clf.logits(texts, batch_size=1, entities=entities)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = [await self.queue.get()]
            n = len(group[0][0])
            deadline = loop.time() + self.cfg.max_wait_ms / 1e3
            while n < self.cfg.max_batch:
                try:
                    item = (
                        self.queue.get_nowait()
                        if loop.time() >= deadline
                        else await asyncio.wait_for(self.queue.get(), deadline - loop.time())
                    )
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
    """Request counters, slow connections dropped, and a window of the last 10,000 request latencies (ms)."""

    def __init__(self) -> None:
        self.started = time.time()
        self.status: Counter = Counter()
        self.texts = 0
        self.slow_dropped = 0
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
            "slow_connections_dropped": self.slow_dropped,
            "latency_ms": {
                "window": int(lat.size),
                **({f"p{q}": round(float(np.percentile(lat, q)), 3) for q in (50, 90, 99)} if lat.size else {}),
                **({"max": round(float(lat.max()), 3)} if lat.size else {}),
            },
        }


async def _send_json(send, status: int, obj: dict, headers: tuple = ()) -> None:
    body = json.dumps(obj).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Gate:
    """ASGI middleware in front of the FastAPI app: authentication, body limits, status counts.

    For each HTTP request, before the app reads anything: a path outside :data:`OPEN_PATHS`
    without the bearer token is a 401 (``WWW-Authenticate: Bearer``); a ``POST`` body with a
    non-JSON Content-Type is a 415 (none: read as JSON), over ``max_body_bytes`` (declared or
    streamed) a 413, not UTF-8 a 400 (RFC 8259 section 8.1). Otherwise the buffered body is
    replayed to the app. Every answer's status is counted in ``stats`` (``/metrics`` excepted);
    ``scope["state"]["edgerep_authorized"]`` tells the app whether the caller gave the token.
    """

    def __init__(self, app, cfg: ServeConfig, token: str | None, stats: "Stats"):
        self.app, self.cfg, self.stats = app, cfg, stats
        self._token_digest = None if token is None else _digest(token.encode())

    def _authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        if self._token_digest is None:
            return True
        value = next((v for k, v in headers if k == b"authorization"), b"")
        scheme, _, given = value.partition(b" ")
        # equal-length digests: the comparison time tells nothing about the token, not even its length
        return scheme.lower() == b"bearer" and hmac.compare_digest(_digest(given.strip()), self._token_digest)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        seen: dict = {}

        async def counted(message):
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, counted)
        finally:
            if "status" in seen and scope["path"] != "/metrics":
                self.stats.status[seen["status"]] += 1

    async def _handle(self, scope, receive, send):
        headers = scope["headers"]
        authorized = self._authorized(headers)
        scope.setdefault("state", {})["edgerep_authorized"] = authorized
        if not authorized and scope["path"] not in OPEN_PATHS:
            return await _send_json(
                send,
                401,
                {"error": "missing or wrong bearer token: send Authorization: Bearer <token>", "detail": []},
                ((b"www-authenticate", b'Bearer realm="edgerep"'),),
            )
        if scope["method"] != "POST":
            return await self.app(scope, receive, send)
        ctype = next((v for k, v in headers if k == b"content-type"), None)
        if ctype is None:  # curl-less clients (raw sockets, some SDKs) send none: read it as JSON
            scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        else:
            media = ctype.split(b";")[0].strip().lower()
            if not (media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))):
                shown = ctype.decode("latin-1")[:80]
                return await _send_json(
                    send,
                    415,
                    {
                        "error": f"Content-Type {shown!r} is not JSON: send Content-Type: application/json "
                        "(curl: --json '{...}' or -H 'Content-Type: application/json')",
                        "detail": [],
                    },
                )
        limit = self.cfg.max_body_bytes
        declared = next((v for k, v in headers if k == b"content-length"), b"")
        if declared.isdigit() and int(declared) > limit:
            return await _send_json(send, 413, {"error": f"body of {int(declared):,} bytes, at most {limit:,}", "detail": []})
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await _send_json(send, 413, {"error": f"body larger than {limit:,} bytes", "detail": []})
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as e:
            return await _send_json(send, 400, {"error": f"body is not UTF-8 (byte {e.start})", "detail": []})
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _digest(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def create_app(bundle: str | os.PathLike, cfg: ServeConfig = ServeConfig(), token: str | None = None):
    """The ASGI application serving ``bundle`` (loaded and verified now, before any request):
    FastAPI routes behind the :class:`Gate`. ``token``: the bearer token requests need (None:
    no authentication). The returned Gate's ``stats`` holds the counters.

    Raises:
        BundleError: the bundle cannot be loaded (see :class:`PolarityClassifier`).
        ConfigError: fastapi is not installed.
    """
    try:
        from fastapi import Depends, FastAPI, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import JSONResponse
        from fastapi.security import HTTPBearer
        from starlette.exceptions import HTTPException as StarletteHTTPException
    except ImportError:
        raise ConfigError("edgerep serve needs fastapi and uvicorn: pip install 'edgerep[serve]'") from None
    from contextlib import asynccontextmanager

    clf = PolarityClassifier(bundle, num_threads=cfg.threads)
    m = clf.manifest
    for width in m.buckets or [m.max_seq_len]:  # first call of each signature allocates: not in a request
        clf.logits(["a " * max(1, width - 2)], entities="a" if clf.entity_conditioned else None)
    model_info = {
        "bundle": str(Path(bundle)),
        "backend": m.backend,
        "quantization": m.quantization.get("mode"),
        "labels": list(m.labels),
        "max_seq_len": m.max_seq_len,
        "size_mb": round(clf.model_size_bytes / MB, 3),
        "model_sha256": m.model_sha256[:16],
        "source": m.source.get("model") if isinstance(m.source, dict) else None,
        "entity_conditioned": m.entity_conditioned,
    }
    models = api_models(m.labels, m.entity_conditioned, cfg)
    ClassifyRequest, ErrorAnswer = models["ClassifyRequest"], models["ErrorAnswer"]  # noqa: N806 - model classes
    stats = Stats()
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app):
        state["batcher"] = MicroBatcher(clf, cfg)
        state["batcher"].start()
        yield
        await state["batcher"].stop()

    app = FastAPI(
        title="edgerep",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="Reputation polarity of tweets, on this device. See `edgerep serve --help`.",
    )
    # documents the scheme in /openapi.json; the Gate has already refused a missing or wrong token
    secured = [Depends(HTTPBearer(auto_error=False, description="The token of `edgerep serve --token-file`."))] if token else []

    def errors(*codes: int) -> dict:
        what = {
            400: "Body not JSON or not UTF-8.",
            401: "Missing or wrong bearer token.",
            413: "Body, list or a text too long.",
            415: "Content-Type not JSON.",
            422: "Wrong shape or type, a text empty after normalization, the entity.",
            503: "Queue full: retry later.",
        }
        return {c: {"model": ErrorAnswer, "description": what[c]} for c in codes if c != 401 or token}

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse(
            {"error": f"{request.method} {request.url.path}: {exc.detail}", "detail": []}, status_code=exc.status_code, headers=exc.headers
        )  # a 405 keeps its Allow header (RFC 9110 section 15.5.6)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        status, message, detail = validation_answer(list(exc.errors()), m.entity_conditioned)
        return JSONResponse({"error": message, "detail": detail}, status_code=status)

    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError):
        return JSONResponse({"error": str(exc), "detail": []}, status_code=exc.status)

    @app.post(
        "/classify",
        response_model=models["Prediction"] | models["Predictions"],
        dependencies=secured,
        responses=errors(400, 401, 413, 415, 422, 503),
        summary="Reputation polarity of one tweet or a list",
    )
    async def classify(body: ClassifyRequest):  # type: ignore[valid-type]
        t0 = time.perf_counter()
        req: Any = body  # a model class built at run time (entity or not)
        texts = [req.text] if req.text is not None else req.texts
        logits = await state["batcher"].submit(texts, getattr(body, "entity", None))
        probs = softmax(logits)
        preds = [
            {"label": m.labels[int(np.argmax(row))], "probabilities": {lab: round(float(p), 6) for lab, p in zip(m.labels, pr)}}
            for row, pr in zip(logits, probs)
        ]
        stats.texts += len(texts)
        stats.latencies_ms.append((time.perf_counter() - t0) * 1e3)
        return preds[0] if req.text is not None else {"predictions": preds}

    @app.get("/health", response_model=models["Health"], response_model_exclude_none=True, summary="Liveness (open without a token)")
    async def health(request: Request):
        show = request.scope.get("state", {}).get("edgerep_authorized", True)
        return {
            "status": "ok",
            "uptime_s": round(time.time() - stats.started, 1),
            "auth": token is not None,
            **({"model": model_info} if show else {}),
        }

    @app.get("/metrics", response_model=models["Metrics"], dependencies=secured, responses=errors(401), summary="Counters and latency")
    async def metrics():
        return {**stats.snapshot(state["batcher"]), "auth": token is not None, "model": model_info, "config": asdict(cfg)}

    return Gate(app, cfg, token, stats)


def guarded_protocol(request_timeout_s: float, stats: Stats | None = None):
    """uvicorn's h11 protocol class with a request-read deadline (uvicorn has none: its
    ``timeout_keep_alive`` restarts on every byte, `uvicorn#157
    <https://github.com/encode/uvicorn/issues/157>`_).

    The deadline is armed when a connection opens and when the first byte of a next request
    arrives, and disarmed once the request (head and body) is complete; when it fires, the
    connection is closed and ``stats.slow_dropped`` counts it. A response being computed or
    sent is never cut.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
                self._arm()  # a next request on a kept-alive connection starts its clock
            super().data_received(data)
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete and not cycle.more_body:
                self._disarm()  # the whole request is in

        def on_response_complete(self) -> None:
            self._disarm()  # answered (perhaps before its body was read, a 413): keep-alive rules now
            super().on_response_complete()

        def connection_lost(self, exc):
            self._disarm()
            super().connection_lost(exc)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _arm(self) -> None:
            self._deadline = self.loop.call_later(request_timeout_s, self._expired)

        def _expired(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                if stats is not None:
                    stats.slow_dropped += 1
                self.transport.close()

    return GuardedH11Protocol


def serve(
    bundle: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8000,
    cfg: ServeConfig = ServeConfig(),
    access_log: bool = False,
    announce=None,
    token: str | None = None,
    insecure: bool = False,
) -> None:
    """Load ``bundle``, bind ``host:port`` (0: any free port) and serve with uvicorn until
    interrupted (Ctrl-C / SIGTERM). ``announce(url)`` is called once listening is certain.
    ``token``: bearer token requests need (see :func:`read_token`); a non-loopback ``host``
    without one is refused unless ``insecure``.

    Raises:
        BundleError, ConfigError: see :func:`create_app`; uvicorn missing; a network-reachable
            address without a token; the address cannot be bound (in use, not local, no permission).
    """
    import socket

    if token is None and not insecure and not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host} without a token: anyone on that network could use the API; "
            "give --token-file FILE (docs/usage/serving-network.md), or --insecure to accept it"
        )
    app = create_app(bundle, cfg, token)
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
    import copy

    from uvicorn.config import LOGGING_CONFIG

    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["handlers"]["access"]["stream"] = "ext://sys.stderr"  # logs to stderr, like every edgerep line
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=access_log,
        lifespan="on",
        backlog=2048,
        log_config=log_config,
        http=guarded_protocol(cfg.request_timeout_s, app.stats),
        timeout_keep_alive=cfg.keep_alive_s,  # type: ignore[arg-type]  # uvicorn takes seconds as a float too
        limit_concurrency=cfg.max_connections,
    )
    if access_log:  # uvicorn logs access lines at INFO: lift only that logger above the quiet default
        import logging

        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])


def spawn(bundle: str | os.PathLike, *args: str, prefix: tuple[str, ...] = (), timeout_s: float = 120, stderr_lines: list | None = None):
    """Start ``edgerep serve BUNDLE --port 0 ARGS`` in a child process on loopback and wait
    until it listens (tests, ``benchmarks/serve_load.py``). ``prefix`` runs it under another
    command (``("unshare", "-n")``). Its stderr is drained in a thread after the start line, into
    ``stderr_lines`` when given (every line, the start line included).

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
    assert proc.stderr is not None  # stderr=PIPE
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(r" on (http://\S+)", line)
        if m:
            if stderr_lines is not None:
                stderr_lines.extend(seen)
            # a full pipe would block the server
            threading.Thread(
                target=(lambda: stderr_lines.extend(proc.stderr or ())) if stderr_lines is not None else proc.stderr.read, daemon=True
            ).start()
            return proc, m.group(1)
    proc.kill()
    raise RuntimeError("edgerep serve did not start:\n" + "".join(seen))
