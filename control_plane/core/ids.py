"""Identifiers and secrets: a type prefix plus 130 random bits, unguessable by design."""

from __future__ import annotations

import base64
import hashlib
import secrets


def new_id(prefix: str) -> str:
    # 17 random bytes -> 136 bits; base32 lowercase keeps ids URL- and DNS-safe.
    return f"{prefix}_" + base64.b32encode(secrets.token_bytes(17)).decode().rstrip("=").lower()


def new_api_key() -> str:
    return "traxo_" + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
