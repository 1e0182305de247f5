"""Users, logins with lockout, API tokens, and who may do what with them.

Every check of a credential (a password login, a token on a request or a dashboard session)
and every change to people and tokens is recorded in the audit log here, so the API and the
dashboard record the same events by calling the same methods. Methods that change something
take ``by``, the :class:`~fleetmind.audit.model.Actor` who asked (None: the hub itself, not
recorded); methods that check a credential take the ``source`` it came from.
"""

import logging
from datetime import UTC, datetime, timedelta
from typing import NoReturn

import sqlalchemy as sa

from fleetmind.audit.model import Actor, Outcome
from fleetmind.audit.service import AuditService
from fleetmind.auth import model
from fleetmind.auth.errors import Forbidden, InvalidCredentials, LockedOut, UserError
from fleetmind.auth.model import Principal, Role, Scope, Token, User
from fleetmind.auth.passwords import hash_password, verify_password
from fleetmind.auth.store import TokenStore

log = logging.getLogger(__name__)
ADMIN = "admin"


class AuthService:
    def __init__(self, store: TokenStore, *, audit: AuditService | None = None) -> None:
        self._store = store
        #: where events are recorded (None: nowhere, for tests of other domains)
        self._audit = audit

    def _record(
        self, kind: str, by: Actor | None, *, outcome: Outcome = Outcome.SUCCESS, detail: str = ""
    ) -> None:
        if by is not None and self._audit is not None:
            self._audit.record(kind, by, outcome=outcome, detail=detail)

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
        by: Actor | None = None,
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
        detail = f"token {token.id} for {user}: {' '.join(sorted(scopes))}"
        self._record("token.create", by, detail=detail)
        return secret, token

    def authorize(
        self,
        credential: str | int | None,
        scope: Scope | None,
        *,
        source: str,
        what: str = "",
        verb: str = "",
    ) -> Principal:
        """The caller behind ``credential`` (a token, or the id of one a dashboard session
        holds), if it is valid and allows ``scope`` (None: any valid token). A refusal is
        recorded: ``auth.token`` (InvalidCredentials: missing, unknown, expired, or its user is
        gone; the detail is ``what`` was asked for) or ``auth.scope`` (Forbidden; the detail is
        ``verb what needs scope``)."""
        if credential is None:
            principal = None
        elif isinstance(credential, int):
            principal = self.get(credential)
        else:
            principal = self.verify(credential)
        if principal is None:
            self._record("auth.token", Actor("-", source), outcome=Outcome.FAILURE, detail=what)
            raise InvalidCredentials("missing, invalid or expired token")
        if scope is not None and not principal.allows(scope):
            detail = f"{' '.join(filter(None, (verb, what)))} needs {scope}"
            by = principal.as_actor(source)
            self._record("auth.scope", by, outcome=Outcome.FAILURE, detail=detail)
            raise Forbidden(f"this token lacks the {scope} scope")
        return principal

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

    def revoke_token(self, token_id: int, *, by: Actor | None = None) -> None:
        if not self._store.delete(token_id):
            raise UserError(f"no token {token_id}")
        self._record("token.delete", by, detail=f"token {token_id}")

    # -- people -------------------------------------------------------------------------------

    def login(self, name: str, password: str, *, source: str = "-") -> tuple[str, Token]:
        """A token for ``name`` with its role's scopes, valid for 12 hours. After
        ``MAX_FAILURES`` wrong passwords in a row the account locks for ``LOCKOUT``.

        Each attempt is counted in the registry before its password is checked, so at most
        ``MAX_FAILURES`` passwords are checked before the account locks, however many attempts
        arrive in parallel; an attempt beyond them is refused unchecked.

        Recorded as ``name`` from ``source``: ``auth.login`` (a success names the token, a
        failure is InvalidCredentials) or ``auth.lockout`` (LockedOut)."""
        by = Actor(name, source)
        try:
            secret, token = self._login(name, password)
        except LockedOut:
            self._record("auth.lockout", by, outcome=Outcome.FAILURE)
            raise
        except InvalidCredentials:
            self._record("auth.login", by, outcome=Outcome.FAILURE)
            raise
        self._record("auth.login", by, detail=f"token {token.id}")
        return secret, token

    def _login(self, name: str, password: str) -> tuple[str, Token]:
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

    def add_user(self, name: str, role: Role, password: str, *, by: Actor | None = None) -> User:
        try:
            model.check_password(password)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        try:
            user = self._store.add_user(name, role, hash_password(password))
        except sa.exc.IntegrityError:
            raise UserError(f"user {name!r} exists") from None
        self._record("user.create", by, detail=f"{user.name} as {user.role}")
        return user

    def update_user(
        self, name: str, *, role: Role | None, password: str | None, by: Actor | None = None
    ) -> User:
        """Change a user's role (their tokens narrow at once) or password (which also
        unlocks); each change recorded (``user.role``, ``user.password``)."""
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
        if role is not None:
            self._record("user.role", by, detail=f"{name} is now {role}")
        if password is not None:
            self._record("user.password", by, detail=name)
        user = self._store.user(name)
        assert user is not None  # noqa: S101 - checked above
        return user

    def users(self) -> list[User]:
        return self._store.users()

    def delete_user(self, name: str, *, by: Actor | None = None) -> None:
        if name == ADMIN:
            raise UserError("the admin user cannot be deleted")
        if not self._store.delete_user(name):
            raise UserError(f"no user {name!r}")
        self._record("user.delete", by, detail=name)
