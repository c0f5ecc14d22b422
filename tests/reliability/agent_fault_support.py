"""Helpers for the agent's fault tests: a small disk that fills, a network namespace that cuts an agent
off, and reading an agent's spool file as the agent left it. Each undoes itself, on failure too."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.tools import missing
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb


def require_root(what: str) -> None:
    """Skip (fail under TRAXO_REQUIRE_SYSTEM_TOOLS=1) where this test cannot mount or make namespaces."""
    if os.geteuid() != 0:
        missing(f"{what} needs root")


@contextlib.contextmanager
def small_disk(mount_point: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of `size_bytes` at `mount_point`, unmounted afterwards whatever happened."""
    require_root("a small tmpfs disk")
    if shutil.which("mount") is None:
        missing("mount is not installed (install it with `apt-get install mount`)")
    mount_point.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(mount_point)],
        check=True,
        capture_output=True,
    )
    try:
        yield mount_point
    finally:
        # Lazy: a process killed a moment ago may still hold a file open there.
        subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True)


def fill_disk(directory: Path, leave_bytes: int = 0) -> Path:
    """Writes a ballast file until only about `leave_bytes` are free (0: until the disk refuses)."""
    ballast = directory / "ballast"
    with ballast.open("ab", buffering=0) as out:
        while True:
            stats = os.statvfs(directory)
            free = stats.f_bavail * stats.f_frsize
            if free <= leave_bytes:
                break
            try:
                out.write(bytes(min(65536, free - leave_bytes)))
            except OSError:  # ENOSPC: as full as it gets
                break
    return ballast


def free_bytes(directory: Path) -> int:
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


@dataclass(frozen=True)
class SpooledResult:
    seq: int
    result: pb.CheckResult
    size: int  # the payload's bytes, as the spool's bound counts them


@dataclass(frozen=True)
class SpoolFile:
    """What an agent's spool file holds: its unsent results, and how many it ever took in."""

    results: list[SpooledResult]
    ever_inserted: int  # AUTOINCREMENT's high mark: every result the spool was given, sent or not

    @property
    def result_ids(self) -> list[str]:
        return [spooled.result.result_id for spooled in self.results]

    @property
    def payload_bytes(self) -> int:
        return sum(spooled.size for spooled in self.results)


def checkpoint(path: Path) -> bool:
    """Moves a running agent's spool WAL into its file and truncates it; False if the agent was busy."""
    db = sqlite3.connect(path, timeout=1)
    try:
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        db.close()
    return not busy and path.with_name(path.name + "-wal").stat().st_size == 0


def read_spool(path: Path) -> SpoolFile:
    """Reads an agent's spool: killed (SQLite recovers a crashed write), or running (in WAL mode a reader
    sees the last commits and does not disturb the writer)."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT seq, payload FROM results ORDER BY seq").fetchall()
        high = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'results'").fetchone()
    finally:
        db.close()
    # Each payload is a ResultBatch of one result (agent/convert.py's encode_result).
    results = [
        SpooledResult(seq, pb.ResultBatch.FromString(payload).results[0], len(payload))
        for seq, payload in rows
    ]
    return SpoolFile(results, int(high[0]) if high else 0)


# -- a network cut -----------------------------------------------------------------------------------


@dataclass
class NetnsLink:
    """A network namespace joined to this one by a veth pair: `outside` here, `inside` there. Taking
    the inside end down cuts whatever runs in the namespace off, as a pulled cable would."""

    name: str
    outside: str
    inside: str
    _host_end: str
    _ns_end: str

    def cut(self) -> None:
        _ip("-n", self.name, "link", "set", self._ns_end, "down")

    def restore(self) -> None:
        _ip("-n", self.name, "link", "set", self._ns_end, "up")


@contextlib.contextmanager
def netns_link() -> Iterator[NetnsLink]:
    """A namespace of this test's own, with a /30 of 10.213.0.0/16 on the veth; deleted afterwards."""
    require_root("a network namespace")
    if shutil.which("ip") is None:
        missing("ip is not installed (install it with `apt-get install iproute2`)")
    tag = f"{os.getpid() % 100000}"
    subnet = os.getpid() % 64 * 4  # a /30 of 10.213.0.0/24 per test process
    link = NetnsLink(
        f"traxo-fa-{tag}", f"10.213.0.{subnet + 1}", f"10.213.0.{subnet + 2}", f"tfa{tag}h", f"tfa{tag}n"
    )
    try:
        _ip("netns", "add", link.name)
        _ip("link", "add", link._host_end, "type", "veth", "peer", "name", link._ns_end)
        _ip("link", "set", link._ns_end, "netns", link.name)
        _ip("addr", "add", f"{link.outside}/30", "dev", link._host_end)
        _ip("link", "set", link._host_end, "up")
        _ip("-n", link.name, "addr", "add", f"{link.inside}/30", "dev", link._ns_end)
        _ip("-n", link.name, "link", "set", link._ns_end, "up")
        _ip("-n", link.name, "link", "set", "lo", "up")
        yield link
    finally:
        subprocess.run(["ip", "netns", "del", link.name], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", link._host_end], check=False, capture_output=True)


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, f"ip {' '.join(args)}: {result.stderr}"


class TcpForwarder:
    """Listens on `host` and pipes each connection to 127.0.0.1:`port`: the control plane's gRPC port
    as seen from a namespace (which cannot reach this one's loopback)."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.address = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, 0)
        self.address = f"{self._host}:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._port)
        except OSError:
            writer.close()
            return
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            pipe = asyncio.create_task(_pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        sink.close()
