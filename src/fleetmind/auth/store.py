"""API tokens in the registry database."""

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fleetmind.auth.model import Token

metadata = sa.MetaData()

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


class TokenStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, name: str, token_hash: str) -> Token:
        created_at = datetime.now(UTC)
        with self._engine.begin() as connection:
            result = connection.execute(
                api_tokens.insert().values(name=name, token_hash=token_hash, created_at=created_at)
            )
        key = result.inserted_primary_key
        assert key is not None  # noqa: S101 - an insert always yields its key
        return Token(int(key[0]), name, created_at)

    def find(self, token_hash: str) -> Token | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                api_tokens.select().where(api_tokens.c.token_hash == token_hash)
            ).first()
        return None if row is None else Token(row.id, row.name, row.created_at)

    def exists(self, name: str) -> bool:
        with self._engine.connect() as connection:
            return (
                connection.execute(
                    sa.select(api_tokens.c.id).where(api_tokens.c.name == name)
                ).first()
                is not None
            )

    def get(self, token_id: int) -> Token | None:
        with self._engine.connect() as connection:
            row = connection.execute(api_tokens.select().where(api_tokens.c.id == token_id)).first()
        return None if row is None else Token(row.id, row.name, row.created_at)
