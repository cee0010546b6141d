"""The FastAPI app of ``edgerep serve`` and the server around it."""

# No ``from __future__ import annotations`` here: FastAPI and pydantic resolve the endpoints'
# and models' annotations at definition time, inside create_app.
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edgerep import __version__
from edgerep.device.runtime import PolarityClassifier
from edgerep.device.serve.batcher import MicroBatcher, Stats
from edgerep.device.serve.config import RequestError, ServeConfig, is_loopback
from edgerep.device.serve.gate import Gate
from edgerep.device.serve.protocol import guarded_protocol
from edgerep.device.serve.schemas import api_models, validation_answer
from edgerep.errors import ConfigError
from edgerep.registry import MB

#: The error statuses of the API and what each means (the OpenAPI schema's descriptions).
ERROR_STATUSES = {
    400: "Body not JSON or not UTF-8.",
    401: "Missing or wrong bearer token.",
    413: "Body, list or a text too long.",
    415: "Content-Type not JSON.",
    422: "Wrong shape or type, a text empty after normalization, the entity.",
    503: "Queue full: retry later.",
}


def _warm_classifier(bundle: str | os.PathLike, cfg: ServeConfig) -> tuple[PolarityClassifier, dict]:
    """The bundle loaded, each signature run once (its first call allocates: not in a request),
    and the model description ``/health`` and ``/metrics`` give."""
    clf = PolarityClassifier(bundle, num_threads=cfg.threads)
    m = clf.manifest
    for width in m.buckets or [m.max_seq_len]:
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
    return clf, model_info


def _error_handlers(app, entity_conditioned: bool) -> None:
    """Every error answer as ``{"error": one line, "detail": [...]}``: HTTP errors of the router,
    request validation (:func:`validation_answer`) and the :class:`RequestError` of the batcher."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse(
            {"error": f"{request.method} {request.url.path}: {exc.detail}", "detail": []}, status_code=exc.status_code, headers=exc.headers
        )  # a 405 keeps its Allow header (RFC 9110 section 15.5.6)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        status, message, detail = validation_answer(list(exc.errors()), entity_conditioned)
        return JSONResponse({"error": message, "detail": detail}, status_code=status)

    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError):
        return JSONResponse({"error": str(exc), "detail": []}, status_code=exc.status)


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
        from fastapi.security import HTTPBearer
    except ImportError:
        raise ConfigError("edgerep serve needs fastapi and uvicorn: pip install 'edgerep[serve]'") from None
    from contextlib import asynccontextmanager

    clf, model_info = _warm_classifier(bundle, cfg)
    m = clf.manifest
    models = api_models(clf.relatedness, m.entity_conditioned, cfg)
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
        return {c: {"model": ErrorAnswer, "description": ERROR_STATUSES[c]} for c in codes if c != 401 or token}

    _error_handlers(app, m.entity_conditioned)

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
        preds = [clf.prediction_of(row).to_dict() for row in logits]
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
