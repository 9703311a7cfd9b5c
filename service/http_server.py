"""uvicorn's HTTP protocol with the two limits it lacks: request-head size and head timeout.

uvicorn (httptools) buffers a request head without bound (a 16 MiB header was answered 200;
ten unfinished 8 MiB heads added 88 MiB RSS) and arms no timer until a first response, so a
connection that sends half a head, or nothing, stays open for good. Here a head longer than
`max_head_bytes` is answered 431 and the connection closed, and a connection that has not
completed a head within `head_timeout_s` of opening (or of its previous response) is closed.
Idle keep-alive connections are uvicorn's own `timeout_keep_alive`; the connection limit is
its `limit_concurrency` (503 above it). `serve` sets all four (docs/reliability.md).
"""

from __future__ import annotations

import logging

log = logging.getLogger("execbench.http")

_431 = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n%s")


def guarded_protocol(max_head_bytes: int, head_timeout_s: float):
    """A uvicorn protocol class (httptools) with the head limits; None without httptools."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # h11 only: its own max-incomplete-event size bounds the head
        return None

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._head_bytes = 0
            self._in_head = True  # before the first request's head is complete
            self._head_timer = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if not self._in_head and self._between_requests():
                self._in_head, self._head_bytes = True, 0
                self._arm()
            counting = self._in_head
            super().data_received(data)
            if counting and self._in_head:  # the head is still not complete after this chunk
                self._head_bytes += len(data)
                if self._head_bytes > max_head_bytes and not self.transport.is_closing():
                    body = (b'{"error": "request_header_fields_too_large", "detail": "request head above '
                            + str(max_head_bytes).encode() + b' bytes"}')
                    log.info("rejected connection from %s: 431 head above %d bytes",
                             self.client[0] if self.client else "?", max_head_bytes)
                    self.transport.write(_431 % (len(body), body))
                    self.transport.close()
                    self._disarm()

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._disarm()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # the next head gets a fresh budget and clock when its first byte arrives; until then
            # uvicorn's keep-alive timer (the idle timeout) runs
            self._head_bytes = 0

        def _between_requests(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(head_timeout_s, self._head_timed_out)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self._in_head and not self.transport.is_closing():
                self.transport.close()

    return GuardedHttpToolsProtocol
