"""Users and API tokens in the registry database."""

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine, Row

from fleetmind.auth.model import Role, Scope, Token, User
from fleetmind.sqltime import UtcDateTime

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("password_hash", sa.String(200)),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("failed_logins", sa.Integer, nullable=False, default=0),
    sa.Column("locked_until", UtcDateTime()),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("user_name", sa.String(64), nullable=False),
    sa.Column("scopes", sa.String(100), nullable=False),
    sa.Column("expires_at", UtcDateTime()),
)


def _token(row: Row[tuple[object, ...]]) -> Token:
    mapping = row._mapping
    return Token(
        id=mapping["id"],
        name=mapping["name"],
        created_at=mapping["created_at"],
        user=mapping["user_name"],
        scopes=frozenset(Scope(s) for s in str(mapping["scopes"]).split()),
        expires_at=mapping["expires_at"],
    )


def _user(row: Row[tuple[object, ...]]) -> User:
    mapping = row._mapping
    return User(
        name=mapping["name"],
        role=Role(mapping["role"]),
        created_at=mapping["created_at"],
        failed_logins=mapping["failed_logins"],
        locked_until=mapping["locked_until"],
    )


def _unlocked(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(users.c.locked_until.is_(None), users.c.locked_until <= now)


class TokenStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- tokens -------------------------------------------------------------------------------

    def add(
        self,
        name: str,
        token_hash: str,
        *,
        user: str,
        scopes: frozenset[Scope],
        expires_at: datetime | None,
    ) -> Token:
        created_at = datetime.now(UTC)
        with self._engine.begin() as connection:
            result = connection.execute(
                api_tokens.insert().values(
                    name=name,
                    token_hash=token_hash,
                    created_at=created_at,
                    user_name=user,
                    scopes=" ".join(sorted(scopes)),
                    expires_at=expires_at,
                )
            )
        key = result.inserted_primary_key
        assert key is not None  # noqa: S101 - an insert always yields its key
        return Token(int(key[0]), name, created_at, user, scopes, expires_at)

    def find(self, token_hash: str) -> Token | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                api_tokens.select().where(api_tokens.c.token_hash == token_hash)
            ).first()
        return None if row is None else _token(row)

    def get(self, token_id: int) -> Token | None:
        with self._engine.connect() as connection:
            row = connection.execute(api_tokens.select().where(api_tokens.c.id == token_id)).first()
        return None if row is None else _token(row)

    def tokens(self, user: str | None = None) -> list[Token]:
        query = api_tokens.select().order_by(api_tokens.c.id)
        if user is not None:
            query = query.where(api_tokens.c.user_name == user)
        with self._engine.connect() as connection:
            return [_token(row) for row in connection.execute(query)]

    def delete(self, token_id: int) -> bool:
        with self._engine.begin() as connection:
            return (
                connection.execute(api_tokens.delete().where(api_tokens.c.id == token_id)).rowcount
                > 0
            )

    # -- users --------------------------------------------------------------------------------

    def add_user(self, name: str, role: Role, password_hash: str | None) -> User:
        created_at = datetime.now(UTC)
        with self._engine.begin() as connection:
            connection.execute(
                users.insert().values(
                    name=name,
                    role=role.value,
                    password_hash=password_hash,
                    created_at=created_at,
                    failed_logins=0,
                )
            )
        return User(name, role, created_at)

    def user(self, name: str) -> User | None:
        with self._engine.connect() as connection:
            row = connection.execute(users.select().where(users.c.name == name)).first()
        return None if row is None else _user(row)

    def password_hash(self, name: str) -> str | None:
        with self._engine.connect() as connection:
            value: str | None = connection.execute(
                sa.select(users.c.password_hash).where(users.c.name == name)
            ).scalar()
        return value

    def count_attempt(self, name: str, now: datetime) -> int | None:
        """Count a login attempt of ``name`` as a failure before its password is checked, and
        return the count; None if there is no such user or it is locked at ``now``.

        One UPDATE ... RETURNING: parallel attempts each get a number of their own, so the
        lockout holds whatever the concurrency (SQLite and PostgreSQL alike)."""
        statement = (
            users.update()
            .where(users.c.name == name, _unlocked(now))
            .values(failed_logins=users.c.failed_logins + 1)
            .returning(users.c.failed_logins)
        )
        with self._engine.begin() as connection:
            count: int | None = connection.execute(statement).scalar()
        return count

    def lock(self, name: str, until: datetime, now: datetime) -> datetime | None:
        """Lock ``name`` until ``until`` and start its count again, unless it is locked already
        (a lock is never extended); return when the lock ends, None if the user is gone."""
        with self._engine.begin() as connection:
            connection.execute(
                users.update()
                .where(users.c.name == name, _unlocked(now))
                .values(failed_logins=0, locked_until=until)
            )
            ends: datetime | None = connection.execute(
                sa.select(users.c.locked_until).where(users.c.name == name)
            ).scalar()
        return ends

    def users(self) -> list[User]:
        with self._engine.connect() as connection:
            return [_user(row) for row in connection.execute(users.select().order_by(users.c.name))]

    def update_user(self, name: str, **values: object) -> bool:
        with self._engine.begin() as connection:
            return (
                connection.execute(
                    users.update().where(users.c.name == name).values(**values)
                ).rowcount
                > 0
            )

    def delete_user(self, name: str) -> bool:
        with self._engine.begin() as connection:
            connection.execute(api_tokens.delete().where(api_tokens.c.user_name == name))
            return connection.execute(users.delete().where(users.c.name == name)).rowcount > 0
