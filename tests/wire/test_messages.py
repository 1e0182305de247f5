"""The JSON messages of twins, commands, renewal and status: hostile input only ever raises a
WireError, and what decodes is storable (UTF-8 text, integers within 64 bits)."""

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetmind.wire import messages, status
from fleetmind.wire.errors import WireError

DECODERS = {
    "state": messages.State.decode,
    "desired": messages.Desired.decode,
    "command": messages.Command.decode,
    "command result": messages.CommandResult.decode,
    "renewal": messages.Renewal.decode,
    "certificate": messages.Certificate.decode,
    "status": status.decode,
}

hostile_text = st.text(st.characters(codec=None, categories=None), max_size=20)
hostile_integers = st.integers() | st.integers(min_value=-(10**40), max_value=10**40)
keys = st.sampled_from(
    ["version", "reported", "desired_version", "desired", "id", "name", "args", "expires_at",
     "ok", "result", "error", "csr", "certificate", "state", "boot"]
) | hostile_text  # fmt: skip
documents = st.recursive(
    st.none() | st.booleans() | hostile_integers | st.floats() | hostile_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=6),
    max_leaves=25,
)


def storable(value: object) -> None:
    if isinstance(value, str):
        assert "\x00" not in value
        value.encode()
    elif isinstance(value, int) and not isinstance(value, bool):
        assert -(2**63) <= value < 2**63
    elif isinstance(value, dict):
        for key, item in value.items():
            storable(key)
            storable(item)
    elif isinstance(value, list | tuple):
        for item in value:
            storable(item)


@settings(max_examples=300)
@given(st.sampled_from(sorted(DECODERS)), st.dictionaries(keys, documents, max_size=6))
def test_hostile_documents_only_ever_raise_wire_errors(kind: str, document: object) -> None:
    payload = json.dumps(document).encode()
    with contextlib.suppress(WireError):
        decoded = DECODERS[kind](payload)
        storable([getattr(decoded, name) for name in decoded.__slots__])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        ("status", b'{"state": "online", "boot": "\\ud800"}'),
        ("state", b'{"version": 1' + b"0" * 30 + b', "reported": {}, "desired_version": 0}'),
        ("state", b'{"version": 1, "reported": {"x": "\\udfff"}, "desired_version": 0}'),
        (
            "state",
            b'{"version": 1, "reported": {"x": 1' + b"0" * 30 + b"}, " + b'"desired_version": 0}',
        ),
        ("command result", b'{"id": "\\ud800", "ok": true}'),
        ("command result", b'{"id": "c1", "ok": false, "error": "\\ud800"}'),
        ("renewal", b'{"csr": "-----BEGIN\\ud800"}'),
        ("state", b'{"version": 1, "reported": {}, "desired_version": 1' + b"0" * 400 + b"}"),
    ],
)
def test_the_poison_messages_of_the_review_are_refused(kind: str, payload: bytes) -> None:
    with pytest.raises(WireError):
        DECODERS[kind](payload)
