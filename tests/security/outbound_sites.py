"""A static census of where control_plane/ itself opens a network connection or asks DNS: every
call that makes an HTTP client, an SMTP send, a socket, a DNS look-up, an Apprise notifier or a gRPC
channel, found with ast (so an import alias or a new module cannot hide one)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "control_plane"

# Calls that open or prepare an outbound connection, by their dotted name as written.
_EXACT = {
    "aiohttp.ClientSession",
    "ClientSession",
    "aiohttp.request",
    "aiohttp.TCPConnector",
    "urlopen",
    "socket.create_connection",
    "socket.socket",
    "asyncio.open_connection",
    "dns.asyncresolver.Resolver",
    "dns.resolver.Resolver",
    "dns.resolver.resolve",
    "dns.asyncresolver.resolve",
    "aiosmtplib.send",
    "aiosmtplib.SMTP",
    "apprise.Apprise",
    "grpc.insecure_channel",
    "grpc.secure_channel",
    "grpc.aio.insecure_channel",
    "grpc.aio.secure_channel",
}
_PREFIXES = ("httpx.", "requests.", "urllib.request.", "urllib3.", "smtplib.", "http.client.")
_SUFFIXES = (".getaddrinfo", ".create_connection", ".open_connection", ".sock_connect")


def dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _aliases(tree: ast.Module) -> dict[str, str]:
    """`from aiohttp import ClientSession as S` → {"S": "aiohttp.ClientSession"}."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    head = alias.name.partition(".")[0]
                    names[head] = head
    return names


def is_outbound(name: str, *, imported: bool) -> bool:
    """`imported`: the name starts from an import (a module, or a name taken from one); a method
    such as `loop.getaddrinfo` counts whatever its object."""
    return (imported and (name in _EXACT or name.startswith(_PREFIXES))) or name.endswith(_SUFFIXES)


def outbound_sites() -> set[tuple[str, str]]:
    """(module path, dotted call name with its imports resolved) of every site."""
    sites = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        aliases = _aliases(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = dotted(node.func)
            if name is None:
                continue
            head, _, rest = name.partition(".")
            resolved = aliases.get(head, head) + (f".{rest}" if rest else "")
            if is_outbound(resolved, imported=head in aliases):
                sites.add((str(path.relative_to(PACKAGE.parent)), resolved))
    return sites
