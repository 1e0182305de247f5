"""Who may call the API: the bearer-token dependencies every route uses (by the scope it needs),
password login with lockout, users and tokens. :class:`AuthService` checks and records; the
routes here parse, call it, and format."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from fleetmind.audit.model import Actor
from fleetmind.auth.errors import Forbidden, InvalidCredentials, LockedOut, UserError
from fleetmind.auth.model import Principal, Role, Scope, Token, User
from fleetmind.auth.service import AuthService

_bearer = HTTPBearer(auto_error=False, description="An API token, for example the admin token.")


def _service(request: Request) -> AuthService:
    service: AuthService = request.app.state.auth
    return service


def source(request: Request) -> str:
    """Where a request came from, as the audit log records it: its client's address."""
    return request.client.host if request.client else "-"


def actor(request: Request, principal: Principal) -> Actor:
    """The caller of this request, for the service to record what it did."""
    return principal.as_actor(source(request))


def require(scope: Scope) -> Callable[..., Principal]:
    """A dependency: the caller's principal if its token is valid and allows ``scope`` (a
    refusal is recorded by :meth:`AuthService.authorize`)."""

    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        try:
            return _service(request).authorize(
                credentials.credentials if credentials else None, scope,
                source=source(request), what=request.url.path, verb=request.method,
            )  # fmt: skip
        except InvalidCredentials:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing, invalid or expired bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            ) from None
        except Forbidden as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None

    return dependency


Reader = Annotated[Principal, Depends(require(Scope.READ))]
Operator = Annotated[Principal, Depends(require(Scope.OPERATE))]
Administrator = Annotated[Principal, Depends(require(Scope.ADMIN))]

router = APIRouter(prefix="/api/v1", tags=["people"])


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenOut(BaseModel):
    id: int
    name: str
    user: str
    scopes: list[Scope]
    created_at: datetime
    expires_at: datetime | None

    @classmethod
    def of(cls, token: Token) -> "TokenOut":
        return cls(
            id=token.id,
            name=token.name,
            user=token.user,
            scopes=sorted(token.scopes),
            created_at=token.created_at,
            expires_at=token.expires_at,
        )


class NewTokenOut(TokenOut):
    #: the token itself, shown this once
    token: str


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(min_length=1)
    #: seconds until it expires; None never (up to ten years)
    expires_in_s: int | None = Field(default=None, ge=60, le=10 * 365 * 86400)
    #: whose token (admins only; default: the caller's own)
    user: str | None = Field(default=None, max_length=64)


class UserOut(BaseModel):
    name: str
    role: Role
    created_at: datetime
    locked_until: datetime | None

    @classmethod
    def of(cls, user: User) -> "UserOut":
        return cls(
            name=user.name,
            role=user.role,
            created_at=user.created_at,
            locked_until=user.locked_until,
        )


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
    role: Role
    password: str = Field(min_length=12, max_length=1024)


class UserChange(BaseModel):
    role: Role | None = None
    password: str | None = Field(default=None, min_length=12, max_length=1024)


class PrincipalOut(BaseModel):
    user: str
    role: Role
    scopes: list[Scope]
    token: TokenOut


def _new(secret: str, token: Token) -> NewTokenOut:
    return NewTokenOut(token=secret, **TokenOut.of(token).model_dump())


@router.post("/auth/login")
def login(request: Request, body: LoginIn) -> NewTokenOut:
    """A 12-hour token for a user's password; five failures in a row lock the account for 15
    minutes (429 with Retry-After)."""
    service = _service(request)
    try:
        secret, token = service.login(body.username, body.password, source=source(request))
    except LockedOut as exc:
        retry = max(1, int((exc.until - datetime.now(exc.until.tzinfo)).total_seconds()))
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, str(exc), headers={"Retry-After": str(retry)}
        ) from None
    except InvalidCredentials as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from None
    return _new(secret, token)


@router.get("/auth/me")
def me(principal: Reader) -> PrincipalOut:
    return PrincipalOut(
        user=principal.token.user,
        role=principal.role,
        scopes=sorted(principal.scopes),
        token=TokenOut.of(principal.token),
    )


@router.get("/tokens")
def list_tokens(request: Request, principal: Reader) -> list[TokenOut]:
    """Every token for an admin; a caller's own tokens otherwise."""
    user = None if principal.allows(Scope.ADMIN) else principal.token.user
    return [TokenOut.of(token) for token in _service(request).tokens(user)]


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
def create_token(request: Request, principal: Reader, body: TokenIn) -> NewTokenOut:
    """A token with some of the caller's scopes (an admin may make one for any user)."""
    user = body.user or principal.token.user
    scopes = frozenset(body.scopes)
    if user != principal.token.user and not principal.allows(Scope.ADMIN):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin makes tokens for others")
    if user == principal.token.user and not scopes <= principal.scopes:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a token cannot exceed its maker's scopes")
    expires = timedelta(seconds=body.expires_in_s) if body.expires_in_s else None
    try:
        secret, token = _service(request).issue(
            user, body.name, scopes, expires_in=expires, by=actor(request, principal)
        )
    except Forbidden as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except UserError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return _new(secret, token)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_token(request: Request, principal: Reader, token_id: int) -> Response:
    service = _service(request)
    owned = {token.id for token in service.tokens(principal.token.user)}
    if token_id not in owned and not principal.allows(Scope.ADMIN):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no token {token_id} of yours")
    try:
        service.revoke_token(token_id, by=actor(request, principal))
    except UserError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users")
def list_users(request: Request, _: Administrator) -> list[UserOut]:
    return [UserOut.of(user) for user in _service(request).users()]


@router.post("/users", status_code=status.HTTP_201_CREATED)
def create_user(request: Request, principal: Administrator, body: UserIn) -> UserOut:
    try:
        user = _service(request).add_user(
            body.name, body.role, body.password, by=actor(request, principal)
        )
    except UserError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return UserOut.of(user)


@router.patch("/users/{name}")
def change_user(request: Request, principal: Administrator, name: str, body: UserChange) -> UserOut:
    """Change a user's role (their tokens narrow at once) or password (which also unlocks)."""
    try:
        user = _service(request).update_user(
            name, role=body.role, password=body.password, by=actor(request, principal)
        )
    except UserError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return UserOut.of(user)


@router.delete("/users/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_user(request: Request, principal: Administrator, name: str) -> Response:
    try:
        _service(request).delete_user(name, by=actor(request, principal))
    except UserError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
