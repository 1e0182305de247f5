"""The bearer-token dependency every API route uses."""

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fleetmind.auth.model import Token
from fleetmind.auth.service import TokenService

_bearer = HTTPBearer(auto_error=False, description="An API token, for example the admin token.")


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Token:
    tokens: TokenService = request.app.state.tokens
    token = tokens.verify(credentials.credentials) if credentials else None
    if token is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token


Authenticated = Annotated[Token, Depends(require_token)]
