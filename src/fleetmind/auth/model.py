"""API tokens: random, shown once, stored as SHA-256 (they carry 256 bits, no slow hash needed)."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

TOKEN_PREFIX = "fm_"


@dataclass(frozen=True, slots=True)
class Token:
    id: int
    name: str
    created_at: datetime


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
