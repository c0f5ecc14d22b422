"""The HTTP/1.1 protocol `traxo api` serves: uvicorn's httptools one, with explicit limits on the request
line and headers, and the API's JSON errors for requests that never reach the app."""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

__all__ = ["MAX_HEADER_BYTES", "MAX_TARGET_BYTES", "ApiHttpProtocol"]

# llhttp sets no limit on either: without these a client could hold megabytes of headers in memory.
MAX_TARGET_BYTES = 8 * 1024  # the request target: path and query string
MAX_HEADER_BYTES = 16 * 1024  # header names and values, all headers together
# How long a rejected connection is still read (and what arrives dropped) before it is closed.
LINGER_SECONDS = 5.0


class _Rejected(Exception):
    """Raised from a parser callback; httptools hands it back as the context of its own error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _OneSendPerStep:
    """A connection's transport whose writes in one step of the event loop leave in one send.

    uvicorn writes a response's head and its body apart: two send() calls, two wake-ups of the
    reader, where one does. Under load that second syscall was a third of a replayed status page's
    cost in the serving process (py-spy, bench/status_page.py). Bytes written are held until the
    end of the step (or a close, or an EOF, which send them first), then written as one."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._held is None:
            self._held = [data]
            self._loop.call_soon(self.flush)
        else:
            self._held.append(data)

    def flush(self) -> None:
        held, self._held = self._held, None
        # A connection lost meanwhile takes no more bytes (uvloop raises on a write to a closed
        # handle, from a callback: a traceback in the log for a client that went away).
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, pause_reading, get_extra_info...
        return getattr(self._transport, name)


class ApiHttpProtocol(HttpToolsProtocol):
    """Rejects an oversized request target (414) or headers (431), and answers an unparseable request
    with a JSON 400 naming what the parser objected to, where uvicorn sends plain text. A response's
    head and body leave in one send (_OneSendPerStep)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._messages_begun = 0
        self._in_head = False  # between the first byte of a request and the end of its headers
        self._head_bytes = 0  # of the current head, counted per read while the head is unfinished
        self._header_bytes = 0
        self._linger: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # its flow control pauses and resumes the real one
        self.transport = _OneSendPerStep(transport, self.loop)  # type: ignore[assignment]

    def eof_received(self) -> None:
        # The loop closes the transport itself after this (uvicorn's answer is None): what this
        # step's answer wrote leaves first.
        self.transport.flush()  # type: ignore[attr-defined]
        super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's own, but with the parser's reason kept and the answer in JSON.
        if self._linger is not None:
            return  # the rest of a rejected request
        self._unset_keepalive_if_required()
        continuing_head = self._in_head
        messages_begun = self._messages_begun
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Rejected):
                self._reject(cause.status, cause.message)
            elif isinstance(cause, httptools.HttpParserError):  # e.g. a request target that is no URL
                self._reject(400, _malformed(cause))
            else:  # uvicorn's own handling failed; its exception's text is no message for a client
                self._reject(400, "Malformed HTTP request")
            return
        except httptools.HttpParserError as exc:
            self._reject(400, _malformed(exc))
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        # httptools keeps a header to itself until its line ends, so a header that never ends
        # passes no callback: bound it by the bytes read while the head stays unfinished.
        if continuing_head and self._in_head and self._messages_begun == messages_begun:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_TARGET_BYTES + MAX_HEADER_BYTES:
                self._reject(431, _headers_too_large())

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._messages_begun += 1
        self._in_head = True
        self._head_bytes = 0
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_TARGET_BYTES:
            raise _Rejected(414, f"Request path and query too long (limit {MAX_TARGET_BYTES} bytes)")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise _Rejected(431, _headers_too_large())
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        # Only uvicorn's data_received (replaced above) calls it today; any later caller gets JSON too.
        self._reject(400, msg)

    def _reject(self, status: int, message: str) -> None:
        self.logger.warning("Rejected an HTTP request: %s", message)
        body = orjson.dumps({"error": message})
        content = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode("ascii")]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        answering = self.cycle is not None and not self.cycle.response_complete
        if answering or not self.transport.can_write_eof():
            # A pipelined request's answer still being written would fail after write_eof; TLS has
            # no half-close. Close at once, as uvicorn does.
            self.transport.close()
            return
        # Closing now, with the client's bytes unread, would make the kernel reset the connection,
        # and a reset can overtake the answer. Send it and a FIN, and read on until the client hangs
        # up (eof_received closes) or LINGER_SECONDS pass.
        self.transport.write_eof()
        self._linger = self.loop.call_later(LINGER_SECONDS, self.transport.close)


def _headers_too_large() -> str:
    return f"Request headers too large (limit {MAX_HEADER_BYTES} bytes)"


def _malformed(exc: Exception) -> str:
    """llhttp's reasons say what it met ("Invalid method encountered", "Invalid header token")."""
    reason = str(exc).strip().rstrip(".")
    return f"Malformed HTTP request: {reason}" if reason else "Malformed HTTP request"
