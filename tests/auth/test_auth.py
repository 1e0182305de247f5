"""People and tokens: argon2 passwords, lockout, scopes within roles, expiry."""

from datetime import timedelta
from pathlib import Path

import pytest

from fleetmind.auth.errors import Forbidden, InvalidCredentials, LockedOut, UserError
from fleetmind.auth.model import MAX_FAILURES, Role, Scope
from fleetmind.auth.passwords import hash_password, verify_password
from fleetmind.auth.service import ADMIN, AuthService
from fleetmind.auth.store import TokenStore
from fleetmind.hub.registry import create_engine, migrate

PASSWORD = "a long enough passphrase"


@pytest.fixture
def auth(tmp_path: Path) -> AuthService:
    engine = create_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    migrate(engine)
    return AuthService(TokenStore(engine))


def test_passwords_are_argon2id_and_salted() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first.startswith("$argon2id$") and first != second
    assert verify_password(PASSWORD, first)
    assert not verify_password("wrong", first)
    assert not verify_password(PASSWORD, None)
    assert not verify_password(PASSWORD, "not a hash")


def test_the_admin_is_created_once(auth: AuthService) -> None:
    token = auth.ensure_admin()
    assert token is not None and auth.ensure_admin() is None
    principal = auth.verify(token)
    assert principal is not None and principal.role is Role.ADMIN
    assert principal.scopes == frozenset(Scope)
    with pytest.raises(UserError):
        auth.delete_user(ADMIN)
    with pytest.raises(UserError):
        auth.update_user(ADMIN, role=Role.VIEWER, password=None)


def test_short_passwords_and_taken_names_are_refused(auth: AuthService) -> None:
    with pytest.raises(UserError, match="12 characters"):
        auth.add_user("ana", Role.VIEWER, "short")
    auth.add_user("ana", Role.VIEWER, PASSWORD)
    with pytest.raises(UserError, match="exists"):
        auth.add_user("ana", Role.ADMIN, PASSWORD)


def test_lockout_after_failures_and_reset_by_a_new_password(auth: AuthService) -> None:
    auth.add_user("ana", Role.OPERATOR, PASSWORD)
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(InvalidCredentials):
            auth.login("ana", "wrong")
    with pytest.raises(LockedOut):
        auth.login("ana", "wrong")
    with pytest.raises(LockedOut):
        auth.login("ana", PASSWORD)
    auth.update_user("ana", role=None, password=PASSWORD)
    _, token = auth.login("ana", PASSWORD)
    assert token.scopes == {Scope.READ, Scope.OPERATE} and token.expires_at is not None


def test_a_success_resets_the_failure_count(auth: AuthService) -> None:
    auth.add_user("ana", Role.VIEWER, PASSWORD)
    for _ in range(3):
        for _ in range(MAX_FAILURES - 1):
            with pytest.raises(InvalidCredentials):
                auth.login("ana", "wrong")
        auth.login("ana", PASSWORD)


def test_tokens_stay_within_the_role_and_expire(auth: AuthService) -> None:
    auth.add_user("vic", Role.VIEWER, PASSWORD)
    with pytest.raises(Forbidden):
        auth.issue("vic", "x", frozenset({Scope.OPERATE}), expires_in=None)
    with pytest.raises(UserError):
        auth.issue("vic", "x", frozenset(), expires_in=None)
    secret, _ = auth.issue("vic", "x", frozenset({Scope.READ}), expires_in=timedelta(seconds=-1))
    assert auth.verify(secret) is None  # expired
    auth.add_user("olga", Role.OPERATOR, PASSWORD)
    secret, token = auth.issue("olga", "y", frozenset({Scope.READ, Scope.OPERATE}), expires_in=None)
    auth.update_user("olga", role=Role.VIEWER, password=None)
    principal = auth.verify(secret)
    assert principal is not None and principal.scopes == {Scope.READ}
    auth.delete_user("olga")
    assert auth.verify(secret) is None and auth.get(token.id) is None
