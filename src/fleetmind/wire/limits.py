"""Explicit limits on what a device may send. One frozen object, passed to every decoder."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds checked on every inbound pack; a breach raises :class:`LimitError`."""

    max_payload_bytes: int = 64 * 1024
    max_records: int = 1000
    max_name_length: int = 128
    max_string_value_length: int = 1024
    #: how far in the past (seconds) a record's time may lie
    max_age_s: float = 30 * 24 * 3600
    #: how far in the future (seconds) a record's time may lie (device clock skew)
    max_future_s: float = 300


DEFAULT_LIMITS = Limits()
