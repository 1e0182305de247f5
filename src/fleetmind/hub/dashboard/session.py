"""Who is signed in to this browser.

A browser signs in once, with a user name and password or with an API token; its server-side
session then remembers the token's id (never the token). Whether the token still allows what a
page or a button does is :meth:`AuthService.authorize`'s to decide (and to record when it does
not); :func:`principal` only tells the pages whom to greet and which buttons to offer.
"""

from nicegui import app as gui

from fleetmind.audit.model import Actor
from fleetmind.auth.errors import AuthError
from fleetmind.auth.model import Principal, Scope
from fleetmind.hub.runtime import Hub

#: the source of what the dashboard asks for, in the audit log
SOURCE = "dashboard"
_TOKEN_ID = "token_id"


def sign_in(token_id: int) -> None:
    gui.storage.user[_TOKEN_ID] = token_id


def sign_out() -> None:
    gui.storage.user.clear()


def _token_id() -> int | None:
    token_id = gui.storage.user.get(_TOKEN_ID)
    return token_id if isinstance(token_id, int) else None


def principal(hub: Hub) -> Principal | None:
    """The signed-in caller, if their token is still valid (None: sign in first)."""
    token_id = _token_id()
    return hub.auth.get(token_id) if token_id is not None else None


def authorize(hub: Hub, scope: Scope, *, what: str, verb: str) -> Principal | None:
    """The signed-in caller if their token still allows ``scope`` for ``verb`` on ``what``
    (a page's path); None, and the refusal recorded, if not."""
    try:
        return hub.auth.authorize(_token_id(), scope, source=SOURCE, what=what, verb=verb)
    except AuthError:
        return None


def actor(who: Principal) -> Actor:
    """``who``, acting through the dashboard, for the service to record."""
    return who.as_actor(SOURCE)
