"""Errors of the transports, importable without the transport libraries.

TransportError (ConnectionError)   the broker refused us, or the connection dropped
HubError (RuntimeError)            the hub's REST API refused a request or is unreachable
"""


class TransportError(ConnectionError):
    """The broker refused us or the connection dropped."""


class HubError(RuntimeError):
    """The hub refused a request or could not be reached; the message is one readable line."""
