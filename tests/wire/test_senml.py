"""SenML codec: RFC 8428 resolution, FleetMind's extensions, explicit limits, fuzzing."""

import contextlib
import json
import math

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetmind.wire import senml
from fleetmind.wire.errors import DecodeError, LimitError, WireError
from fleetmind.wire.limits import Limits

NOW = 1_732_400_000.0


def decode(document: object, device_id: str = "d1", **kwargs: object) -> senml.Pack:
    return senml.decode(json.dumps(document).encode(), device_id=device_id, now=NOW, **kwargs)  # type: ignore[arg-type]


def test_issue_example_stores_metric_under_its_name() -> None:
    pack = decode([{"bt": 1732400000, "n": "temp", "v": 21.5}])
    assert pack.names == ["temp"]
    assert pack.times == [1732400000.0]
    assert pack.values == [21.5]


def test_base_fields_resolve_as_rfc8428_says() -> None:
    pack = decode(
        [
            {"bn": "urn:dev:x:", "bt": NOW, "bu": "Cel", "bv": 10, "n": "a", "v": 1.5},
            {"n": "b", "t": 2, "v": 2},
            {"n": "c", "u": "%RH", "vb": True},
            {"n": "d", "vs": "open"},
            {"bs": 100, "n": "e", "s": 5},
        ]
    )
    assert pack.names == ["urn:dev:x:a", "urn:dev:x:b", "urn:dev:x:c", "urn:dev:x:d", "urn:dev:x:e"]
    assert pack.times == [NOW, NOW + 2, NOW, NOW, NOW]
    assert pack.values == [11.5, 12.0, None, None, 105.0]
    assert pack.bools == [None, None, True, None, None]
    assert pack.strings == [None, None, None, "open", None]
    assert pack.units == ["Cel", "Cel", "%RH", "Cel", "Cel"]


@pytest.mark.parametrize("base_name", ["d1/", "d1:", "d1."])
def test_device_own_prefix_is_removed(base_name: str) -> None:
    assert decode([{"bn": base_name, "bt": NOW, "n": "temp", "v": 1}]).names == ["temp"]


def test_other_device_prefix_is_kept() -> None:
    assert decode([{"bn": "d2/", "bt": NOW, "n": "temp", "v": 1}]).names == ["d2/temp"]


def test_relative_time_is_relative_to_now() -> None:
    pack = decode([{"n": "temp", "v": 1, "t": -5}])
    assert pack.times == [NOW - 5]


def test_boot_and_seq_identify_a_pack() -> None:
    payload = senml.encode_cbor([senml.Reading("temp", NOW, 1.0)], boot="b1", seq=7)
    pack = senml.decode(payload, device_id="d1", now=NOW)
    assert (pack.boot, pack.seq) == ("b1", 7)


def test_cbor_and_json_encodings_agree() -> None:
    readings = [
        senml.Reading("temp", NOW, 21.5, "Cel"),
        senml.Reading("door", NOW + 1, True),
        senml.Reading("mode", NOW + 2, "auto"),
    ]
    from_cbor = senml.decode(senml.encode_cbor(readings, boot="b", seq=1), device_id="d", now=NOW)
    from_json = senml.decode(senml.encode_json(readings, boot="b", seq=1), device_id="d", now=NOW)
    assert from_cbor == from_json
    assert from_cbor.names == ["temp", "door", "mode"]
    assert from_cbor.values == [21.5, None, None]


@pytest.mark.parametrize(
    ("document", "error", "reason"),
    [
        ([], DecodeError, "decode"),
        ({"n": "x"}, DecodeError, "decode"),
        ([1, 2], DecodeError, "type"),
        ([{"n": "temp", "v": "hot"}], DecodeError, "type"),
        ([{"n": "temp", "v": True}], DecodeError, "type"),
        ([{"n": "temp", "vb": 1}], DecodeError, "type"),
        ([{"n": "temp", "v": 1, "vs": "x"}], DecodeError, "value"),
        ([{"n": "temp"}], DecodeError, "value"),
        ([{"n": "bad name!", "v": 1}], DecodeError, "name"),
        ([{"n": "temp", "v": 1, "x_": 1}], DecodeError, "field"),
        ([{"n": "temp", "v": 1, "bt": NOW - 40 * 86400}], LimitError, "time"),
        ([{"n": "temp", "v": 1, "bt": NOW + 3600}], LimitError, "time"),
        ([{"n": "x" * 129, "v": 1}], LimitError, "name"),
        ([{"n": "temp", "vs": "x" * 1025}], LimitError, "value"),
    ],
)
def test_bad_packs_raise_typed_errors(
    document: object, error: type[WireError], reason: str
) -> None:
    with pytest.raises(error) as raised:
        decode(document)
    assert raised.value.reason == reason


def test_limits_on_size_and_records() -> None:
    limits = Limits(max_payload_bytes=100, max_records=2)
    with pytest.raises(LimitError) as too_big:
        decode([{"n": "temp", "v": 1, "u": "x" * 200}], limits=limits)
    assert too_big.value.reason == "size"
    with pytest.raises(LimitError) as too_many:
        decode([{"n": "a", "v": 1}] * 3, limits=limits)
    assert too_many.value.reason == "records"


def test_garbage_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        senml.decode(b"\xff\x00garbage", device_id="d1", now=NOW)
    with pytest.raises(DecodeError):
        senml.decode(b"[not json", device_id="d1", now=NOW)
    with pytest.raises(DecodeError):
        senml.decode(b"", device_id="d1", now=NOW)


names = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.booleans(),
    st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=50),
)
readings = st.lists(
    st.builds(senml.Reading, names, st.floats(NOW - 86400, NOW + 60), values),
    min_size=1,
    max_size=50,
)


@given(readings, st.booleans())
def test_round_trip(items: list[senml.Reading], as_cbor: bool) -> None:
    encode = senml.encode_cbor if as_cbor else senml.encode_json
    pack = senml.decode(encode(items, boot="boot", seq=3), device_id="dev", now=NOW)
    assert pack.names == [item.name for item in items]
    assert (pack.boot, pack.seq) == ("boot", 3)
    for item, time, number, text, flag in zip(
        items, pack.times, pack.values, pack.strings, pack.bools, strict=True
    ):
        assert math.isclose(time, item.time, abs_tol=1e-6)
        decoded = next(v for v in (flag, text, number) if v is not None)
        assert decoded == item.value


@settings(max_examples=500)
@given(st.binary(max_size=2000))
def test_fuzz_bytes_only_ever_raise_wire_errors(payload: bytes) -> None:
    with contextlib.suppress(WireError):
        senml.decode(payload, device_id="d1", now=NOW)


#: any code point, lone surrogates and NUL included: what a hostile JSON sender can write
hostile_text = st.text(st.characters(codec=None, categories=None), max_size=20)
#: integers far past 64 bits (JSON has no limit; CBOR encodes them as bignums)
hostile_integers = st.integers() | st.integers(min_value=-(10**400), max_value=10**400)
json_values = st.recursive(
    st.none() | st.booleans() | hostile_integers | st.floats() | hostile_text,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["n", "v", "t", "bt", "bn", "u", "vs", "vb", "s", "x_", "bid", "seq"])
            | st.text(max_size=5),
            children,
            max_size=6,
        )
    ),
    max_leaves=30,
)


def assert_storable(pack: senml.Pack) -> None:
    """What a store needs of a decoded pack: columns of one length, finite numbers, UTF-8 text."""
    assert len(pack.names) == len(pack.times) == len(pack.values) == len(pack.units)
    assert all(
        math.isfinite(number) for number in (*pack.times, *pack.values) if number is not None
    )
    for text in (*pack.names, *pack.strings, *pack.units, pack.boot):
        if text is not None:
            assert "\x00" not in text
            text.encode()
    assert pack.seq is None or 0 <= pack.seq < 2**63


@settings(max_examples=500)
@given(st.lists(json_values, max_size=5))
def test_fuzz_json_structures_only_ever_raise_wire_errors(document: list[object]) -> None:
    encodings = [json.dumps(document).encode()]
    with contextlib.suppress(UnicodeEncodeError):  # CBOR text cannot hold a lone surrogate
        encodings.append(cbor2.dumps(document))
    for encoded in encodings:
        try:
            pack = senml.decode(encoded, device_id="d1", now=NOW)
        except WireError:
            continue
        assert_storable(pack)


@given(
    st.sampled_from(["vs", "u", "bid", "bn"]),
    st.sampled_from(["\ud800", "\udfff", "a\x00b", "x\ud83d"]),
    st.booleans(),
)
def test_text_that_no_store_can_keep_is_refused(field: str, text: str, as_cbor: bool) -> None:
    """Lone surrogates arrive in JSON escapes; CBOR cannot carry them, but NUL it can."""
    if as_cbor and "\x00" not in text:
        return
    labels = senml.CBOR_LABELS if as_cbor else senml.JSON_LABELS
    record: dict[object, object] = {labels.n: "temp"}
    if field == "vs":
        record[labels.vs] = text
    else:
        record[labels.v] = 1.0
        record[getattr(labels, field, field)] = text
    payload = cbor2.dumps([record]) if as_cbor else json.dumps([record]).encode()
    with pytest.raises(DecodeError) as raised:
        senml.decode(payload, device_id="d1", now=NOW)
    assert raised.value.reason == ("name" if field == "bn" else "text")  # a name is ASCII


@pytest.mark.parametrize(
    "payload",
    [
        b'[{"n": "temp", "v": 1' + b"0" * 400 + b"}]",
        cbor2.dumps([{0: "temp", 2: 10**400}]),
        cbor2.dumps([{0: "temp", 2: -(10**400)}]),
        b'[{"n": "temp", "v": 1, "bt": 1' + b"0" * 400 + b"}]",
        b'[{"n": "temp", "bv": 1.7e308, "v": 1.7e308}]',
        b'[{"n": "temp", "bs": -1.7e308, "s": -1.7e308}]',
    ],
)
def test_numbers_beyond_a_double_are_refused(payload: bytes) -> None:
    with pytest.raises(WireError) as raised:
        senml.decode(payload, device_id="d1", now=NOW)
    assert raised.value.reason in ("number", "time")
