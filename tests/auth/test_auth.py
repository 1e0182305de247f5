"""People and tokens: argon2 passwords, lockout, scopes within roles, expiry.

The service runs on SQLite and, when a server answers, on PostgreSQL
(``postgresql+psycopg://postgres@127.0.0.1:5432/test``, each test in a schema of its own).
"""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import postgres_schema
from fleetmind.auth import service as service_module
from fleetmind.auth.errors import Forbidden, InvalidCredentials, LockedOut, UserError
from fleetmind.auth.model import MAX_FAILURES, Role, Scope
from fleetmind.auth.passwords import hash_password, verify_password
from fleetmind.auth.service import ADMIN, AuthService
from fleetmind.auth.store import TokenStore
from fleetmind.hub.registry import create_engine, migrate

PASSWORD = "a long enough passphrase"


@pytest.fixture(params=["sqlite", "postgresql"])
def auth(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuthService]:
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'registry.db'}")
        migrate(engine)
        yield AuthService(TokenStore(engine))
        engine.dispose()
        return
    with postgres_schema("test_auth") as url:
        engine = create_engine(url)
        migrate(engine)
        yield AuthService(TokenStore(engine))
        engine.dispose()


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


def test_parallel_wrong_passwords_are_checked_at_most_max_failures_times(
    auth: AuthService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attacker firing guesses in parallel gets no more password checks than one firing
    them in a row: each attempt is counted before its password is checked."""
    auth.add_user("ana", Role.OPERATOR, PASSWORD)
    checked: list[str] = []

    def counting(password: str, hashed: str | None) -> bool:
        checked.append(password)
        return verify_password(password, hashed)

    monkeypatch.setattr(service_module, "verify_password", counting)

    def guess(number: int) -> str:
        try:
            auth.login("ana", f"wrong guess {number}")
        except LockedOut:
            return "locked"
        except InvalidCredentials:
            return "wrong"
        return "in"

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(guess, range(60)))
    assert len(checked) <= MAX_FAILURES
    assert outcomes.count("wrong") <= MAX_FAILURES - 1 and "in" not in outcomes
    with pytest.raises(LockedOut):
        auth.login("ana", PASSWORD)
    assert len(checked) <= MAX_FAILURES  # a locked account checks no password at all


def test_a_lock_that_ran_out_gives_a_fresh_allowance(auth: AuthService) -> None:
    auth.add_user("ana", Role.VIEWER, PASSWORD)
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(InvalidCredentials):
            auth.login("ana", "wrong")
    with pytest.raises(LockedOut):
        auth.login("ana", "wrong")
    store = auth._store  # the lock ran out
    store.update_user("ana", locked_until=store.user("ana").locked_until - timedelta(hours=1))  # type: ignore[union-attr]
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(InvalidCredentials):
            auth.login("ana", "wrong")
    auth.login("ana", PASSWORD)
