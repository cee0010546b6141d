"""Server settings, the bearer token and the loopback rule of ``edgerep serve``."""

# No ``from __future__ import annotations`` here: FastAPI and pydantic resolve the endpoints'
# and models' annotations at definition time, inside create_app.
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from edgerep.errors import ConfigError

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
