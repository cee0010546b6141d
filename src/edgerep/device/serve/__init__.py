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

from edgerep.device.serve.app import create_app, serve
from edgerep.device.serve.batcher import MicroBatcher, Stats
from edgerep.device.serve.config import MIN_TOKEN_CHARS, OPEN_PATHS, RequestError, ServeConfig, is_loopback, read_token
from edgerep.device.serve.gate import Gate
from edgerep.device.serve.protocol import guarded_protocol
from edgerep.device.serve.schemas import EXPECTED_BODY, api_models, validation_answer

__all__ = [
    "EXPECTED_BODY",
    "MIN_TOKEN_CHARS",
    "OPEN_PATHS",
    "Gate",
    "MicroBatcher",
    "RequestError",
    "ServeConfig",
    "Stats",
    "api_models",
    "create_app",
    "guarded_protocol",
    "is_loopback",
    "read_token",
    "serve",
    "validation_answer",
]
