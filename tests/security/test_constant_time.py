"""Item 7: a secret is compared with hmac.compare_digest, never == or !=, which return at the first
different character (a timing oracle for guessing one byte at a time).

A static scan of control_plane/ finds every ==, !=, `in` and `not in` whose operand is named like a
secret (token, secret, signature, password, authorization, bearer, digest, key hash); each must be a
database look-up (a model's column against a value: an index seek, whose timing says nothing of
the bytes) or compare something that is not the secret (its id, a type, None). The comparisons of
secrets that exist are read below: the billing webhook's Authorization and /metrics' bearer token."""

from __future__ import annotations

import ast
import re

from tests.security.outbound_sites import PACKAGE

SECRET_NAME = re.compile(
    r"token|secret|signature|password|passwd|authorization|bearer|digest|api_?key|key_hash", re.I
)
# Names that contain a secret's word but are not secrets: ids, kinds, counts, prefixes, expiries.
NOT_SECRET = re.compile(
    r"(_id|_ids|_type|_kind|_count|_at|_prefix|prefix|last4|_url|_header|_name|_seconds)$", re.I
)


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        return _name(node.func)
    if isinstance(node, ast.Subscript):
        return _name(node.value)
    return None


def _is_column(node: ast.AST) -> bool:
    """`Model.column`: the left side of a SQL WHERE, compared by the database."""
    return (
        isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id[:1].isupper()
    )


def _secretish(node: ast.AST) -> bool:
    name = _name(node)
    return name is not None and bool(SECRET_NAME.search(name)) and not NOT_SECRET.search(name)


def secret_comparisons() -> list[str]:
    """`path:line: source` of every ==/!=/in comparison of a secret-named operand outside SQL."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left, *node.comparators]
            risky = any(isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in node.ops)
            if not risky or any(_is_column(operand) for operand in operands):
                continue
            if any(isinstance(o, ast.Constant) and o.value is None for o in operands):
                continue
            if any(_secretish(operand) for operand in operands):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)}")
    return found


# Read one by one: not a secret's bytes compared.
READ = {
    "control_plane/agents/fences.py: token_id in self._revoked_tokens": "token ids in a set of ids",
    "control_plane/status_pages/domains.py: token in await txt_values(record_host(domain), nameserver)": (
        "the domain verification token is meant to be published in public DNS, and is looked up in a set"
    ),
}


def test_no_secret_is_compared_with_equality() -> None:
    found = {re.sub(r":\d+:", ":", site) for site in secret_comparisons()}
    assert found - READ.keys() == set(), "compare secrets with hmac.compare_digest"
    assert READ.keys() - found == set(), "gone: drop them from READ"


def test_the_scan_sees_what_it_looks_for() -> None:
    """The scan is not blind: the same rules flag a plain comparison of a token or signature."""
    risky = ast.parse(
        "ok = offered_token == token\nif signature != expected_signature: pass\nx = key in secrets"
    )
    flagged = [
        n
        for n in ast.walk(risky)
        if isinstance(n, ast.Compare) and any(_secretish(o) for o in [n.left, *n.comparators])
    ]
    assert len(flagged) == 3
    safe = ast.parse("a = AgentToken.token_hash == hash_secret(raw)\nb = mailbox.token_id == token_id")
    compares = [n for n in ast.walk(safe) if isinstance(n, ast.Compare)]
    assert _is_column(compares[0].left)
    assert not any(_secretish(o) for o in [compares[1].left, *compares[1].comparators])


def _compare_digest_sites() -> set[str]:
    sites = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in (
                "hmac.compare_digest",
                "secrets.compare_digest",
            ):
                sites.add(str(path.relative_to(PACKAGE.parent)))
    return sites


def test_the_secrets_compared_in_python_use_compare_digest() -> None:
    """Read site by site: the billing webhook's Authorization against its secret, and /metrics'
    bearer token against TRAXO_METRICS_TOKEN. API keys, agent tokens and confirmation tokens are
    looked up by their SHA-256 (an index seek); heartbeat tokens and unsubscribe tokens by value in
    an index (whoever guesses a byte learns nothing: the seek's time does not depend on it)."""
    assert _compare_digest_sites() == {
        "control_plane/services/billing.py",
        "control_plane/observability/exposition.py",
    }
