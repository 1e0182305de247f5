"""Twin documents, JSON merge patch (RFC 7386) and the limits. Pure logic, no I/O."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fleetmind.twins.errors import InvalidDocument

#: the largest document, desired or reported, as compact JSON (Azure allows 32 KiB, AWS 8 KiB)
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_DEPTH = 10


@dataclass(frozen=True, slots=True)
class Twin:
    device_id: str
    desired: dict[str, Any]
    desired_version: int
    reported: dict[str, Any]
    reported_version: int
    updated_at: datetime | None = None


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386: objects merge key by key, ``null`` deletes, anything else replaces.

    >>> merge_patch({"a": 1, "b": {"c": 2}}, {"b": {"c": None, "d": 3}})
    {'a': 1, 'b': {'d': 3}}
    """
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def make_patch(source: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that turns ``source`` into ``target`` (``null`` values in ``target``
    cannot be expressed: a merge patch reads them as deletions).

    >>> make_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": 2, "d": 4}, "e": 5})
    {'a': None, 'b': {'d': 4}, 'e': 5}
    """
    patch: dict[str, Any] = {key: None for key in source if key not in target}
    for key, value in target.items():
        old = source.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            if inner := make_patch(old, value):
                patch[key] = inner
        elif key not in source or old != value or type(old) is not type(value):
            patch[key] = value
    return patch


def encode(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def check_document(document: object) -> dict[str, Any]:
    """A twin document is a JSON object within the size and depth limits."""
    if not isinstance(document, dict):
        raise InvalidDocument("a twin document is a JSON object")
    if _depth(document) > MAX_DEPTH:
        raise InvalidDocument(f"a twin document nests at most {MAX_DEPTH} levels")
    try:
        size = len(encode(document).encode())
    except (TypeError, ValueError) as exc:
        raise InvalidDocument(f"not JSON: {exc}") from None
    if size > MAX_DOCUMENT_BYTES:
        raise InvalidDocument(f"document of {size} bytes exceeds {MAX_DOCUMENT_BYTES}")
    return document


def _depth(value: object, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(item, level + 1) for item in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(item, level + 1) for item in value), default=level + 1)
    return level
