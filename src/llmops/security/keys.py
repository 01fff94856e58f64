"""API key material: ``llmops_<prefix>_<secret>``.

The prefix (8 characters, stored in clear and indexed) finds the key row; the whole key is stored only
as a SHA-256 hash. Keys carry 256 bits of randomness, so a fast hash is the right choice (password
hashing schemes exist to slow down guessing of low-entropy secrets).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX_LEN = 8
KEY_HEAD = "llmops_"


@dataclass(frozen=True)
class KeyMaterial:
    token: str  # shown once, never stored
    prefix: str
    hashed: str


def generate() -> KeyMaterial:
    prefix = secrets.token_hex(PREFIX_LEN // 2)
    token = f"{KEY_HEAD}{prefix}_{secrets.token_urlsafe(32)}"
    return KeyMaterial(token=token, prefix=prefix, hashed=hash_token(token))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_prefix(token: str) -> str | None:
    if not token.startswith(KEY_HEAD):
        return None
    rest = token[len(KEY_HEAD) :]
    prefix, sep, secret = rest.partition("_")
    if not sep or len(prefix) != PREFIX_LEN or not secret:
        return None
    return prefix


def matches(token: str, hashed: str) -> bool:
    return hmac.compare_digest(hash_token(token), hashed)
