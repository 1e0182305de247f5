"""Errors of the wire.

    WireError                 anything a peer sent that FleetMind will not accept
    +-- TopicError            a topic outside the FleetMind tree, or a malformed device id
    +-- DecodeError           bytes that are not valid CBOR / JSON / SenML
    +-- LimitError            valid SenML that breaks an explicit limit (size, count, time...)

Every error has a short machine-readable ``reason`` used as the label of the rejection counter.
"""


class WireError(ValueError):
    """A message FleetMind refuses; ``reason`` names the counter it increments."""

    reason = "invalid"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class TopicError(WireError):
    reason = "topic"


class DecodeError(WireError):
    reason = "decode"


class LimitError(WireError):
    reason = "limit"
