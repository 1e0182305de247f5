"""Errors of the transports, importable without the transport libraries."""


class HubError(RuntimeError):
    """The hub refused a request or could not be reached; the message is one readable line."""
