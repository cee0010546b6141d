"""A uvicorn HTTP protocol with a request-read deadline (uvicorn has none, `uvicorn#157
<https://github.com/encode/uvicorn/issues/157>`_)."""

# No ``from __future__ import annotations`` here: FastAPI and pydantic resolve the endpoints'
# and models' annotations at definition time, inside create_app.
import asyncio

from edgerep.device.serve.batcher import Stats


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
