"""Errors of authentication and authorisation.

AuthError
+-- InvalidCredentials    unknown user, wrong password, unknown or expired token
+-- LockedOut             too many failed logins: wait until ``until``
+-- Forbidden             the caller's role or token scopes do not allow it
+-- UserError             a user or token request that cannot be done (name taken, bad password)
"""

from datetime import datetime


class AuthError(Exception):
    pass


class InvalidCredentials(AuthError):
    pass


class LockedOut(AuthError):
    def __init__(self, until: datetime) -> None:
        super().__init__(f"too many failed logins; locked until {until.isoformat()}")
        self.until = until


class Forbidden(AuthError):
    pass


class UserError(AuthError):
    pass
