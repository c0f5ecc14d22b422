"""What the HTTP server answers before (or instead of) a route: 405's Allow list, oversized request lines
and headers, malformed requests. The server's own answers are read off a raw socket to a real
`traxo api` on a loopback port."""

from __future__ import annotations

import asyncio
import json
import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from control_plane.api.http_protocol import MAX_HEADER_BYTES, MAX_TARGET_BYTES, _OneSendPerStep
from tests.api_server import ApiServer, traxo_api


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with traxo_api(tmp_path_factory.mktemp("http_edges")) as api_server:
        yield api_server


def exchange(server: ApiServer, request: bytes) -> RawResponse:
    """Send raw bytes, read until the server closes (every request here ends the connection)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        return read_response(sock)


def read_response(sock: socket.socket) -> RawResponse:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split(" ")[1]), headers, body)


def get(path: bytes, *headers: bytes) -> bytes:
    lines = [b"GET " + path + b" HTTP/1.1", b"Host: 127.0.0.1", *headers, b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def assert_json_error(response: RawResponse, status: int, error: str) -> None:
    assert response.status == status, response
    assert response.headers["content-type"] == "application/json", response
    assert int(response.headers["content-length"]) == len(response.body)
    assert response.json() == {"error": error}


# -- 405 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/api/monitors", "GET, POST"),
        ("PATCH", "/api/monitors", "GET, POST"),
        ("POST", "/api/monitors/mon_1", "GET, PUT, DELETE"),
        ("PUT", "/api/organization", "GET, POST, PATCH"),
        ("DELETE", "/api/docs", "GET"),
        ("POST", "/api/docs/static/swagger-ui.css", "GET"),
        ("POST", "/healthz", "GET"),
    ],
)
def test_a_405_lists_every_method_of_its_path(server: ApiServer, method: str, path: str, allow: str) -> None:
    response = httpx.request(method, f"{server.base_url}{path}", timeout=10)

    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.headers["content-type"] == "application/json"
    assert isinstance(response.json()["error"], str)


def test_each_listed_method_is_answered_by_a_route(server: ApiServer) -> None:
    url = f"{server.base_url}/api/organization"
    wrong = httpx.request("OPTIONS", url, timeout=10)
    for method in wrong.headers["allow"].split(", "):
        # Without a key each is a 401 from the route's own dependency, which is past the 405.
        assert httpx.request(method, url, json={}, timeout=10).status_code == 401, method


# -- oversized request lines and headers ------------------------------------------------------------


def test_an_oversized_path_gets_a_json_414(server: ApiServer) -> None:
    response = exchange(server, get(b"/api/" + b"a" * MAX_TARGET_BYTES))

    assert_json_error(response, 414, f"Request path and query too long (limit {MAX_TARGET_BYTES} bytes)")


def test_an_oversized_query_string_counts_too(server: ApiServer) -> None:
    response = exchange(server, get(b"/api/monitors?name=" + b"a" * MAX_TARGET_BYTES))

    assert_json_error(response, 414, f"Request path and query too long (limit {MAX_TARGET_BYTES} bytes)")


def test_a_much_longer_path_gets_the_same_answer(server: ApiServer) -> None:
    # Past 64 KiB httptools cannot even parse the URL; the limit answers first.
    response = exchange(server, get(b"/api/" + b"a" * 100_000))

    assert_json_error(response, 414, f"Request path and query too long (limit {MAX_TARGET_BYTES} bytes)")


def test_an_oversized_header_gets_a_json_431(server: ApiServer) -> None:
    response = exchange(server, get(b"/api/monitors", b"X-Big: " + b"a" * MAX_HEADER_BYTES))

    assert_json_error(response, 431, f"Request headers too large (limit {MAX_HEADER_BYTES} bytes)")


def test_a_client_still_sending_a_huge_header_gets_the_answer(server: ApiServer) -> None:
    # The answer goes out while megabytes are unread; closing then would reset the connection and
    # could take the answer with it, so the server reads on (and drops it) until the client is done.
    response = exchange(server, get(b"/api/monitors", b"X-Huge: " + b"a" * 4_000_000))

    assert_json_error(response, 431, f"Request headers too large (limit {MAX_HEADER_BYTES} bytes)")


def test_many_headers_together_count_against_the_limit(server: ApiServer) -> None:
    headers = [b"X-Part-%d: %s" % (index, b"a" * 1000) for index in range(MAX_HEADER_BYTES // 1000 + 1)]
    response = exchange(server, get(b"/api/monitors", *headers))

    assert_json_error(response, 431, f"Request headers too large (limit {MAX_HEADER_BYTES} bytes)")


def test_a_header_that_never_ends_is_cut_off(server: ApiServer) -> None:
    """A header line still arriving reaches no parser callback; the server must not buffer it forever."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /api/monitors HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: ")
        sent = 0
        # Keep writing until the server answers; 8 MiB unanswered means it buffers on.
        while sent < 8 * 1024 * 1024 and not select.select([sock], [], [], 0)[0]:
            sock.sendall(b"a" * 16384)
            sent += 16384
        response = read_response(sock)

    # Answered before the header ended (kernel buffers on loopback hold megabytes, so `sent` says
    # little about what the server read).
    assert_json_error(response, 431, f"Request headers too large (limit {MAX_HEADER_BYTES} bytes)")


def test_requests_just_inside_the_limits_reach_the_app(server: ApiServer) -> None:
    path = b"/api/" + b"a" * (MAX_TARGET_BYTES - len(b"/api/"))
    assert exchange(server, get(path)).json() == {"error": "Not found"}

    headers = [b"Host: 127.0.0.1", b"Connection: close"]
    used = sum(len(name) + len(value) for name, _, value in (header.partition(b": ") for header in headers))
    filler = b"a" * (MAX_HEADER_BYTES - used - len(b"X-Big"))
    request = b"GET /api/monitors HTTP/1.1\r\n" + b"\r\n".join([*headers, b"X-Big: " + filler]) + b"\r\n\r\n"
    response = exchange(server, request)
    assert response.status == 401 and "API key" in response.json()["error"]


# -- malformed requests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "reason"),
    [
        (b"BAD LINE\r\n\r\n", "Invalid method encountered"),
        (b"GET /api/monitors HTTP/7.1\r\nHost: 127.0.0.1\r\n\r\n", "Invalid HTTP version"),
        (b"GET /api/monitors HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad\x01: a\r\n\r\n", "Invalid header token"),
        (b"GET http://[::1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "invalid url b'http://[::1'"),
    ],
)
def test_a_malformed_request_gets_a_json_400_with_the_reason(
    server: ApiServer, request_bytes: bytes, reason: str
) -> None:
    response = exchange(server, request_bytes)

    assert_json_error(response, 400, f"Malformed HTTP request: {reason}")
    assert "Rejected an HTTP request" in server.log()


# -- one send per response ---------------------------------------------------------------------------


def test_pipelined_requests_are_answered_whole_and_in_order(server: ApiServer) -> None:
    """Responses leave through _OneSendPerStep: held to the end of a loop step, never reordered,
    never dropped by the close that ends the last one."""
    paths = [b"/healthz", b"/api/nothing-here", b"/healthz", b"/api/monitors"]
    requests = [b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" for path in paths[:-1]]
    requests.append(get(paths[-1]))  # the last one closes the connection
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"".join(requests))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    statuses = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
        )
        statuses.append(int(lines[0].split(" ")[1]))
        data = rest[length:]
    assert statuses == [200, 404, 200, 401]


class RecordingTransport:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def write_eof(self) -> None:
        self.calls.append(("eof", b""))

    def close(self) -> None:
        self.calls.append(("close", b""))

    def is_closing(self) -> bool:
        return self.lost

    lost = False


async def test_what_one_step_writes_leaves_in_one_send() -> None:
    loop = asyncio.get_running_loop()
    real = RecordingTransport()
    transport = _OneSendPerStep(real, loop)  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"body")
    assert real.calls == []
    await asyncio.sleep(0)
    assert real.calls == [("write", b"HTTP/1.1 200 OK\r\n\r\nbody")]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert real.calls[-1] == ("write", b"next")
    # A close or an EOF sends what is held first; the step's end then has nothing to send.
    transport.write(b"last")
    transport.write_eof()
    transport.write(b"gone with the close")
    transport.close()
    await asyncio.sleep(0)
    assert real.calls[2:] == [
        ("write", b"last"),
        ("eof", b""),
        ("write", b"gone with the close"),
        ("close", b""),
    ]
    assert transport.is_closing() is False  # everything else is the real transport's
    # Bytes held when the connection is lost are dropped, not written to a closed transport.
    transport.write(b"to nobody")
    real.lost = True
    await asyncio.sleep(0)
    assert real.calls[-1] == ("close", b"")
