"""Security headers on every HTTP answer of the hub: the API, the docs and the dashboard.

No page of the hub may be framed by another site (the dashboard's lifecycle buttons would be a
clickjacking target), no answer is sniffed into another type, no address leaks in a Referer.
The content security policy depends on what the answer is: the API's JSON loads nothing; the
dashboard (NiceGUI) serves its scripts, styles and fonts from the hub itself but runs inline
scripts, compiles Vue templates in the browser (``'unsafe-eval'``) and talks over a websocket;
``/docs`` and ``/redoc`` still load Swagger UI and ReDoc from a CDN, so they only refuse framing
until the hub serves those files itself.
"""

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_POLICY = "default-src 'none'; frame-ancestors 'none'"
DOCS_POLICY = "frame-ancestors 'none'"
DASHBOARD_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        # 'self' covers the page's own websocket in current browsers; ws:/wss: older Safari
        "connect-src 'self' ws: wss:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
#: one year; only sent over HTTPS (browsers ignore it over plain HTTP anyway)
_HSTS = "max-age=31536000"


def policy(path: str) -> str:
    """The content security policy for an answer at ``path``."""
    if path.startswith(("/api/", "/healthz", "/openapi.json")):
        return API_POLICY
    if path.startswith(("/docs", "/redoc")):
        return DOCS_POLICY
    return DASHBOARD_POLICY


class SecurityHeaders:
    """ASGI middleware: the headers above on every HTTP response (websockets pass through)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        values = _ALWAYS | {"Content-Security-Policy": policy(scope["path"])}
        if scope.get("scheme") == "https":
            values["Strict-Transport-Security"] = _HSTS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in values.items():
                    headers[name] = value
            await send(message)

        await self._app(scope, receive, send_with_headers)
