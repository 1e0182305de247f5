"""Twin documents: merge patch, limits, versions and optimistic concurrency on the registry."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetmind.devices.errors import DeviceNotFound
from fleetmind.devices.service import DeviceService
from fleetmind.devices.store import DeviceStore
from fleetmind.hub.registry import create_engine, migrate
from fleetmind.twins.client import TwinClient
from fleetmind.twins.errors import InvalidDocument, VersionConflict
from fleetmind.twins.model import MAX_DOCUMENT_BYTES, check_document, make_patch, merge_patch
from fleetmind.twins.service import TwinService
from fleetmind.twins.store import TwinStore
from fleetmind.wire import messages


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [  # examples of RFC 7386 appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch(target: object, patch: object, result: object) -> None:
    assert merge_patch(target, patch) == result


#: no nulls: a merge patch reads them as deletions
_leaves = st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
_documents = st.dictionaries(
    st.text(max_size=3),
    st.recursive(
        _leaves,
        lambda inner: st.dictionaries(st.text(max_size=3), inner, max_size=3),
        max_leaves=8,
    ),
    max_size=4,
)


@given(_documents, _documents)
def test_make_patch_turns_one_document_into_the_other(source: dict, target: dict) -> None:
    assert merge_patch(source, make_patch(source, target)) == target


def test_document_limits() -> None:
    check_document({"x": "y" * (MAX_DOCUMENT_BYTES - 100)})
    with pytest.raises(InvalidDocument):
        check_document({"x": "y" * MAX_DOCUMENT_BYTES})
    with pytest.raises(InvalidDocument):
        check_document([1])  # type: ignore[arg-type]
    deep: dict[str, object] = {}
    node = deep
    for _ in range(20):
        node["a"] = node = {}
    with pytest.raises(InvalidDocument):
        check_document(deep)


@pytest.fixture
def twins(tmp_path: Path) -> TwinService:
    engine = create_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    migrate(engine)
    devices = DeviceService(DeviceStore(engine))
    devices.add("d1")
    sent: list[tuple[str, bytes, bool]] = []
    service = TwinService(TwinStore(engine), devices, lambda *args: sent.append(args))
    service.sent = sent  # type: ignore[attr-defined]
    return service


def test_versions_and_stale_updates(twins: TwinService) -> None:
    assert twins.get("d1").desired_version == 0
    first = twins.patch_desired("d1", {"settings": {"sample_hz": 2}}, if_version=0)
    assert (first.desired, first.desired_version) == ({"settings": {"sample_hz": 2}}, 1)
    second = twins.patch_desired("d1", {"settings": {"pack_interval_s": 5}}, if_version=None)
    assert second.desired == {"settings": {"sample_hz": 2, "pack_interval_s": 5}}
    with pytest.raises(VersionConflict):
        twins.patch_desired("d1", {"x": 1}, if_version=1)  # stale
    assert twins.get("d1").desired_version == 2
    topic, payload, retained = twins.sent[-1]  # type: ignore[attr-defined]
    assert topic == "fm/v1/d/d1/down/desired"
    assert retained
    assert messages.Desired.decode(payload) == messages.Desired(2, second.desired)
    with pytest.raises(DeviceNotFound):
        twins.get("nobody")


def test_reported_state_and_resync(twins: TwinService) -> None:
    twins.patch_desired("d1", {"a": 1}, if_version=None)
    twins.patch_desired("d1", {"a": 2}, if_version=None)
    count = len(twins.sent)  # type: ignore[attr-defined]
    twins.reported("d1", messages.State(10, {"applied": 1}, desired_version=1))
    assert twins.get("d1").reported == {"applied": 1}
    # the device is behind: desired goes out again
    assert len(twins.sent) == count + 1  # type: ignore[attr-defined]
    twins.reported("d1", messages.State(5, {"stale": True}, desired_version=2))
    assert twins.get("d1").reported == {"applied": 1}  # an older report is ignored
    assert len(twins.sent) == count + 1  # type: ignore[attr-defined]


def test_agent_side_applies_only_newer_versions() -> None:
    applied: list[dict[str, object]] = []
    client = TwinClient(lambda doc: applied.append(doc) or {"seen": doc})  # type: ignore[func-returns-value]
    state = client.on_desired(messages.Desired(3, {"x": 3}))
    assert state is not None
    assert (state.desired_version, state.reported) == (3, {"seen": {"x": 3}})
    assert client.on_desired(messages.Desired(2, {"x": 2})) is None
    assert client.on_desired(messages.Desired(3, {"x": 3})) is None
    later = client.state()
    assert later.version > state.version
    assert applied == [{"x": 3}]
