"""Users, logins with lockout, and API tokens."""

import logging
from datetime import UTC, datetime, timedelta
from typing import NoReturn

import sqlalchemy as sa

from fleetmind.auth import model
from fleetmind.auth.errors import Forbidden, InvalidCredentials, LockedOut, UserError
from fleetmind.auth.model import Principal, Role, Scope, Token, User
from fleetmind.auth.passwords import hash_password, verify_password
from fleetmind.auth.store import TokenStore

log = logging.getLogger(__name__)
ADMIN = "admin"


class AuthService:
    def __init__(self, store: TokenStore) -> None:
        self._store = store

    def ensure_admin(self) -> str | None:
        """Create the ``admin`` user and its token on first start; return the token (in clear)
        only that once. The admin has no password until one is set."""
        if self._store.user(ADMIN) is not None:
            return None
        self._store.add_user(ADMIN, Role.ADMIN, None)
        token, _ = self.issue(ADMIN, ADMIN, frozenset(Scope), expires_in=None)
        log.info("admin user and token created")
        return token

    # -- tokens -------------------------------------------------------------------------------

    def issue(
        self,
        user: str,
        name: str,
        scopes: frozenset[Scope],
        *,
        expires_in: timedelta | None,
    ) -> tuple[str, Token]:
        """A new token for ``user`` (in clear, once) with ``scopes`` within the user's role."""
        owner = self._store.user(user)
        if owner is None:
            raise UserError(f"no user {user!r}")
        if not scopes:
            raise UserError("a token needs at least one scope")
        if extra := scopes - model.ROLE_SCOPES[owner.role]:
            raise Forbidden(f"role {owner.role} does not have {', '.join(sorted(extra))}")
        secret = model.new_token()
        expires_at = datetime.now(UTC) + expires_in if expires_in is not None else None
        token = self._store.add(
            name, model.hash_token(secret), user=user, scopes=scopes, expires_at=expires_at
        )
        return secret, token

    def verify(self, secret: str) -> Principal | None:
        """The caller behind a token, or None (unknown, expired, or its user is gone)."""
        token = self._store.find(model.hash_token(secret))
        return self._principal(token)

    def get(self, token_id: int) -> Principal | None:
        """The caller behind a token id, if it is still valid (a dashboard session holds one)."""
        return self._principal(self._store.get(token_id))

    def _principal(self, token: Token | None) -> Principal | None:
        if token is None or token.expired(datetime.now(UTC)):
            return None
        user = self._store.user(token.user)
        return None if user is None else Principal(token, user.role)

    def tokens(self, user: str | None = None) -> list[Token]:
        return self._store.tokens(user)

    def revoke_token(self, token_id: int) -> None:
        if not self._store.delete(token_id):
            raise UserError(f"no token {token_id}")

    # -- people -------------------------------------------------------------------------------

    def login(self, name: str, password: str) -> tuple[str, Token]:
        """A token for ``name`` with its role's scopes, valid for 12 hours. After
        ``MAX_FAILURES`` wrong passwords in a row the account locks for ``LOCKOUT``.

        Each attempt is counted in the registry before its password is checked, so at most
        ``MAX_FAILURES`` passwords are checked before the account locks, however many attempts
        arrive in parallel; an attempt beyond them is refused unchecked."""
        now = datetime.now(UTC)
        attempt = self._store.count_attempt(name, now)
        if attempt is None:
            self._refuse_uncounted(name, password, now)
        if attempt > model.MAX_FAILURES:
            self._lock(name, now)
        if not verify_password(password, self._store.password_hash(name)):
            if attempt == model.MAX_FAILURES:
                self._lock(name, now)
            raise InvalidCredentials("unknown user or wrong password")
        self._store.update_user(name, failed_logins=0, locked_until=None)
        user = self._store.user(name)
        if user is None:  # deleted meanwhile
            raise InvalidCredentials("unknown user or wrong password")
        scopes = model.ROLE_SCOPES[user.role]
        return self.issue(
            name, f"login {now:%Y-%m-%d %H:%M}", scopes, expires_in=model.LOGIN_TOKEN_TTL
        )

    def _refuse_uncounted(self, name: str, password: str, now: datetime) -> NoReturn:
        """Refuse an attempt that was not counted: the account is locked (no password is
        checked), or there is no such user (a dummy hash is checked, so the time taken does not
        tell an unknown user from a wrong password)."""
        user = self._store.user(name)
        if user is not None and user.locked_until is not None and user.locked(now):
            raise LockedOut(user.locked_until)
        verify_password(password, None)
        raise InvalidCredentials("unknown user or wrong password")

    def _lock(self, name: str, now: datetime) -> NoReturn:
        until = self._store.lock(name, now + model.LOCKOUT, now)
        if until is None:  # deleted meanwhile
            raise InvalidCredentials("unknown user or wrong password")
        raise LockedOut(until)

    def add_user(self, name: str, role: Role, password: str) -> User:
        try:
            model.check_password(password)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        try:
            return self._store.add_user(name, role, hash_password(password))
        except sa.exc.IntegrityError:
            raise UserError(f"user {name!r} exists") from None

    def update_user(self, name: str, *, role: Role | None, password: str | None) -> User:
        if self._store.user(name) is None:
            raise UserError(f"no user {name!r}")
        values: dict[str, object] = {}
        if role is not None:
            if name == ADMIN and role is not Role.ADMIN:
                raise UserError("the admin user stays an admin")
            values["role"] = role.value
        if password is not None:
            try:
                model.check_password(password)
            except ValueError as exc:
                raise UserError(str(exc)) from None
            values |= {"password_hash": hash_password(password), "failed_logins": 0,
                       "locked_until": None}  # fmt: skip
        if values:
            self._store.update_user(name, **values)
        user = self._store.user(name)
        assert user is not None  # noqa: S101 - checked above
        return user

    def users(self) -> list[User]:
        return self._store.users()

    def delete_user(self, name: str) -> None:
        if name == ADMIN:
            raise UserError("the admin user cannot be deleted")
        if not self._store.delete_user(name):
            raise UserError(f"no user {name!r}")
