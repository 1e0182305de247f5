"""People and API tokens: roles, scopes, expiry and the lockout rule. Pure logic, no I/O.

Tokens are random, shown once and stored as SHA-256 (they carry 256 bits: no slow hash needed).
Every token belongs to a user; what it may do is its own scopes within its user's role today,
so demoting a user narrows the tokens they already have.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from fleetmind.audit.model import Actor

TOKEN_PREFIX = "fm_"
#: failed logins in a row before the account locks, and for how long
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
#: a token from a password login lives this long
LOGIN_TOKEN_TTL = timedelta(hours=12)
MIN_PASSWORD_LENGTH = 12


class Scope(StrEnum):
    READ = "read"  # see devices, telemetry, twins, commands
    OPERATE = "operate"  # change them: add devices, lifecycle, twins, commands, enrollments
    ADMIN = "admin"  # people, tokens, the audit log


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.VIEWER: frozenset({Scope.READ}),
    Role.OPERATOR: frozenset({Scope.READ, Scope.OPERATE}),
    Role.ADMIN: frozenset(Scope),
}


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    created_at: datetime
    failed_logins: int = 0
    locked_until: datetime | None = None

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until


@dataclass(frozen=True, slots=True)
class Token:
    id: int
    name: str
    created_at: datetime
    user: str
    scopes: frozenset[Scope]
    expires_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a valid token, its user's role, and what the two allow together."""

    token: Token
    role: Role

    @property
    def scopes(self) -> frozenset[Scope]:
        return self.token.scopes & ROLE_SCOPES[self.role]

    @property
    def actor(self) -> str:
        return f"{self.token.user} (token {self.token.id})"

    def as_actor(self, source: str) -> Actor:
        """This caller as the audit log records them, acting from ``source``."""
        return Actor(self.actor, source)

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scopes(values: list[str]) -> frozenset[Scope]:
    """Scopes by name; ValueError naming an unknown one."""
    try:
        return frozenset(Scope(value) for value in values)
    except ValueError:
        known = ", ".join(scope.value for scope in Scope)
        raise ValueError(f"unknown scope in {values}; scopes are {known}") from None


def check_password(password: str) -> None:
    """ValueError unless ``password`` is long enough to stand a guessing attack."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
