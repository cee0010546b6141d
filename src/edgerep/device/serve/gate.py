"""The ASGI gate in front of the app: body size, content type and the bearer token, answered
before the body is read."""

# No ``from __future__ import annotations`` here: FastAPI and pydantic resolve the endpoints'
# and models' annotations at definition time, inside create_app.
import hashlib
import hmac
import json

from edgerep.device.serve.batcher import Stats
from edgerep.device.serve.config import OPEN_PATHS, ServeConfig


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
