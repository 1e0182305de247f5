"""Issue and check API tokens."""

import logging

from fleetmind.auth.model import Token, hash_token, new_token
from fleetmind.auth.store import TokenStore

log = logging.getLogger(__name__)
ADMIN = "admin"


class TokenService:
    def __init__(self, store: TokenStore) -> None:
        self._store = store

    def ensure_admin(self) -> str | None:
        """Create the admin token on first start; return it (in clear) only that once."""
        if self._store.exists(ADMIN):
            return None
        token = new_token()
        self._store.add(ADMIN, hash_token(token))
        log.info("admin token created")
        return token

    def verify(self, token: str) -> Token | None:
        return self._store.find(hash_token(token))

    def get(self, token_id: int) -> Token | None:
        """The token with this id, if it still exists (a dashboard session refers to it)."""
        return self._store.get(token_id)
