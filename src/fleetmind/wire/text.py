"""What text and numbers from a peer must be before anything stores them.

JSON lets a peer send a lone UTF-16 surrogate (``"\\ud800"``) and integers of any length; neither
survives a database or an Arrow column, so both are refused here, at the edge, with a reason.

    >>> check_text("21.5 °C", "u")
    '21.5 °C'
    >>> check_text("\\ud800", "u")
    Traceback (most recent call last):
    ...
    fleetmind.wire.errors.DecodeError: u is not valid text (a lone surrogate or a NUL character)
"""

from typing import Any

from fleetmind.wire.errors import DecodeError

#: the integers every store keeps exactly (a signed 64-bit column)
MAX_INT = 2**63 - 1


def check_text(value: str, what: str) -> str:
    """``value`` if it encodes as UTF-8 and holds no NUL character, else DecodeError."""
    if "\x00" in value or not (value.isascii() or _encodes(value)):
        raise DecodeError(
            f"{what} is not valid text (a lone surrogate or a NUL character)", reason="text"
        )
    return value


def check_document(value: Any, what: str) -> None:
    """Walk a decoded JSON document: every string valid text, every integer within 64 bits."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            check_text(item, what)
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not -MAX_INT - 1 <= item <= MAX_INT:
                raise DecodeError(f"{what} holds an integer beyond 64 bits", reason="number")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _encodes(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True
