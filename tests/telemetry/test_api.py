"""The telemetry and audit query routes against hostile input, in process: the app holds only
the routers under test, a DuckDB store and a registry on SQLite.

Whatever a caller sends, the answer is a page of bounded size or a 422 that says what is wrong,
never a server error; a series of 500,000 points is read in bounded pages and exported in a
stream."""

import base64
import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetmind.audit.api import router as audit_router
from fleetmind.audit.service import AuditService
from fleetmind.audit.store import AuditStore
from fleetmind.auth.api import require
from fleetmind.auth.model import Scope
from fleetmind.auth.service import AuthService
from fleetmind.auth.store import TokenStore
from fleetmind.devices.rejects import RejectLog
from fleetmind.hub.registry import create_engine, migrate
from fleetmind.telemetry.api import router as telemetry_router
from fleetmind.telemetry.duckdb_store import DuckDBTelemetryStore
from fleetmind.telemetry.ingest import IngestStats
from fleetmind.telemetry.model import BATCH_SCHEMA
from fleetmind.telemetry.service import TelemetryService
from fleetmind.transport import http

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BIG = 500_000
SERIES = "/api/v1/devices/big/telemetry"


def series(device: str, metric: str, times: np.ndarray, values: np.ndarray) -> pa.Table:
    """A batch of one series: ``times`` in microseconds since the epoch."""
    count = len(times)
    nulls = pa.nulls(count)
    return pa.Table.from_arrays(
        [
            pa.array([device] * count, pa.string()),
            pa.array([metric] * count, pa.string()),
            pa.array(times, pa.timestamp("us", tz="UTC")),
            pa.array(values, pa.float64()),
            nulls.cast(pa.string()),
            nulls.cast(pa.bool_()),
            nulls.cast(pa.string()),
            nulls.cast(pa.string()),
            nulls.cast(pa.int64()),
        ],
        schema=BATCH_SCHEMA,
    )


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The routes with an admin token; ``big`` holds 500,000 points of ``temp`` one second
    apart (5,000 times with two), ``edge`` a point at each end of the datetime range."""
    directory = tmp_path_factory.mktemp("api")
    engine = create_engine(f"sqlite:///{directory / 'registry.db'}")
    migrate(engine)
    auth = AuthService(TokenStore(engine))
    token = auth.ensure_admin()
    store = DuckDBTelemetryStore(directory / "telemetry.duckdb")
    start = int(T0.timestamp() * 1_000_000)
    seconds = np.arange(BIG - BIG // 100, dtype=np.int64)
    repeated = seconds[::99][: BIG - len(seconds)]  # 5,000 times with two points each
    times = np.concatenate([seconds, repeated]) * 1_000_000 + start
    store.append(series("big", "temp", times, np.arange(BIG, dtype=np.float64)))
    edges = [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)]
    edge_times = np.array([(e - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
                           for e in edges], dtype=np.int64)  # fmt: skip
    store.append(series("edge", "temp", edge_times, np.array([1.0, 2.0])))
    app = FastAPI()
    app.include_router(telemetry_router)
    app.include_router(audit_router, dependencies=[Depends(require(Scope.ADMIN))])
    app.state.auth = auth
    app.state.audit = AuditService(AuditStore(engine))
    app.state.telemetry = TelemetryService(store, IngestStats(), RejectLog())
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app, headers=headers, raise_server_exceptions=False) as test_client:
        yield test_client
    store.close()
    engine.dispose()


# -- the 500s of the review, and their family --------------------------------------------------


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"bucket": "9999999999d"}, "10 years"),
        ({"bucket": "99999999999999999999ms"}, "10 years"),
        ({"bucket": "3651d"}, "10 years"),
        ({"bucket": "1x"}, "pattern"),
        ({"bucket": "1ms", "start": "2026-01-01T00:00:00Z"}, "larger bucket"),
        ({"end": "0001-01-01T00:30:00+01:00"}, "UTC"),
        ({"start": "9999-12-31T23:00:00-05:00"}, "UTC"),
        (
            {"start": "0001-01-01T00:00:00Z", "end": "0001-01-01T05:00:00Z", "bucket": "1h"},
            "bucket",
        ),
        ({"limit": "0"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "10001"}, "limit"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"cursor": "OTk5OTk5OTk5OTk5OTk5OTk5OTk5LjE"}, "cursor"),  # out of the datetime range
        ({"bucket": "1m", "cursor": "MTc5NjMwMjAwMDAwMDAwMC4x"}, "cursor"),
    ],
)
def test_bad_queries_get_a_422_that_says_what_is_wrong(
    client: TestClient, params: dict[str, str], says: str
) -> None:
    response = client.get(SERIES, params={"metric": "temp"} | params)
    assert response.status_code == 422, response.text
    assert says in response.text


def test_a_default_start_stops_at_the_first_moment(client: TestClient) -> None:
    response = client.get(
        "/api/v1/devices/edge/telemetry",
        params={"metric": "temp", "end": "0001-01-01T00:30:00Z"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["start"] == "0001-01-01T00:00:00Z"
    assert [p["value"] for p in response.json()["points"]] == [1.0]


def test_the_whole_datetime_range_can_be_read(client: TestClient) -> None:
    everything = {"metric": "temp", "start": "0001-01-01T00:00:00Z",
                  "end": "9999-12-31T23:59:59.999999Z"}  # fmt: skip
    raw = client.get("/api/v1/devices/edge/telemetry", params=everything)
    assert [p["value"] for p in raw.json()["points"]] == [1.0, 2.0]
    later = everything | {"start": "0011-01-02T00:00:00Z", "bucket": "3650d", "agg": "max"}
    bucketed = client.get("/api/v1/devices/edge/telemetry", params=later)
    assert bucketed.status_code == 200, bucketed.text
    assert [p["value"] for p in bucketed.json()["points"]] == [2.0]


def test_audit_dates_outside_utc_get_a_422(client: TestClient) -> None:
    assert client.get("/api/v1/audit", params={"since": "2026-01-01T00:00:00"}).status_code == 200
    for since in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:00-01:00"):
        response = client.get("/api/v1/audit", params={"since": since})
        assert response.status_code == 422, response.text
        assert "UTC" in response.text


# -- hostile input, generated -----------------------------------------------------------------

offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999_999),
    timezones=st.one_of(offsets, st.just(UTC)),
).map(datetime.isoformat)  # fmt: skip
near = st.datetimes(  # where the big series is
    min_value=datetime(2026, 11, 24), max_value=datetime(2026, 12, 1), timezones=offsets
).map(datetime.isoformat)
durations = st.one_of(
    st.from_regex(r"\A([0-9]{1,22}(ms|s|m|h|d)){1,3}\Z"),
    st.sampled_from(["1s", "1m", "15m", "1h", "1d", "7d", "3650d"]),
)
texts = st.text(max_size=40)
numbers = st.integers(-(10**25), 10**25).map(str)
pairs = st.tuples(numbers, numbers).map(lambda t: f"{t[0]}.{t[1]}")
cursors = st.one_of(texts, st.binary(max_size=30).map(lambda b: b.hex()), pairs,
                    pairs.map(lambda t: base64.urlsafe_b64encode(t.encode()).decode()))  # fmt: skip


def maybe(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), strategy)


@given(
    device=st.sampled_from(["big", "edge", "nobody"]),
    start=maybe(st.one_of(near, moments, texts)),
    end=maybe(st.one_of(near, moments, texts)),
    bucket=maybe(st.one_of(durations, texts)),
    agg=maybe(st.sampled_from(["avg", "min", "max", "count", "last", "median"])),
    limit=maybe(st.one_of(numbers, st.integers(-2, 10_002).map(str), texts)),
    cursor=maybe(cursors),
    export=st.sampled_from([None, "csv", "ndjson", "xml"]),
)
@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
def test_hostile_queries_get_a_page_or_a_422(
    client: TestClient,
    device: str,
    start: str | None,
    end: str | None,
    bucket: str | None,
    agg: str | None,
    limit: str | None,
    cursor: str | None,
    export: str | None,
) -> None:
    given_params = {"metric": "temp", "start": start, "end": end, "bucket": bucket, "agg": agg,
                    "limit": limit, "cursor": cursor}  # fmt: skip
    params = {key: value for key, value in given_params.items() if value is not None}
    path = f"/api/v1/devices/{device}/telemetry"
    if export is not None:  # (of a small series: 500,000 points are slow to draw 400 times)
        path = f"/api/v1/devices/{'edge' if device == 'big' else device}/telemetry/export"
        params = {key: params[key] for key in ("metric", "start", "end") if key in params}
        params["format"] = export
    response = client.get(path, params=params)
    assert response.status_code in (200, 422), (params, response.text[:300])
    if response.status_code == 422:
        assert response.json()["detail"]
    elif export is None:
        assert len(response.json()["points"]) <= 10_001  # a page, or buckets (one more when
        # the range straddles a boundary)


@given(since=maybe(st.one_of(moments, texts)), actor=maybe(texts), kind=maybe(texts))
@settings(max_examples=150, deadline=None, database=None)
def test_hostile_audit_queries_get_events_or_a_422(
    client: TestClient, since: str | None, actor: str | None, kind: str | None
) -> None:
    given_params = {"since": since, "actor": actor, "type": kind}
    params = {key: value for key, value in given_params.items() if value is not None}
    response = client.get("/api/v1/audit", params=params)
    assert response.status_code in (200, 422), (params, response.text[:300])


# -- a series of 500,000 points ---------------------------------------------------------------

WHOLE = {"metric": "temp", "start": T0.isoformat(), "end": (T0 + timedelta(days=7)).isoformat()}


def test_a_large_series_answers_bounded_pages(client: TestClient) -> None:
    first = client.get(SERIES, params=WHOLE)
    assert first.status_code == 200, first.text
    assert len(first.json()["points"]) == 1000 and first.json()["next"]
    assert len(first.content) < 100_000
    widest = client.get(SERIES, params=WHOLE | {"limit": "10000"})
    assert len(widest.json()["points"]) == 10_000 and len(widest.content) < 1_000_000
    nearest = client.get(SERIES, params=WHOLE | {"bucket": "1ms"})
    assert nearest.status_code == 422 and "10,000 buckets" in nearest.text
    hourly = client.get(SERIES, params=WHOLE | {"bucket": "1h", "agg": "count"})
    assert sum(p["value"] for p in hourly.json()["points"]) == BIG


def test_every_point_of_a_large_series_comes_once_through_the_pages(client: TestClient) -> None:
    seen: list[float] = []
    params = WHOLE | {"limit": "10000"}
    while True:
        page = client.get(SERIES, params=params).json()
        seen.extend(point["value"] for point in page["points"])
        if page["next"] is None:
            break
        params = WHOLE | {"limit": "10000", "cursor": page["next"]}
    assert len(seen) == BIG
    assert sorted(seen) == list(range(BIG))


@pytest.mark.parametrize("kind", ["csv", "ndjson"])
def test_a_large_series_is_exported_as_a_stream(client: TestClient, kind: str) -> None:
    with client.stream("GET", f"{SERIES}/export", params=WHOLE | {"format": kind}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(
            {"csv": "text/csv", "ndjson": "application/x-ndjson"}[kind]
        )
        assert "attachment" in response.headers["content-disposition"]
        lines = [line for chunk in response.iter_text() for line in chunk.splitlines()]
    if kind == "csv":
        rows = list(csv.reader(io.StringIO("\n".join(lines))))
        assert rows[0] == ["time", "value"]
        values = [float(row[1]) for row in rows[1:]]
        assert rows[1][0] == "2026-11-24T12:00:00Z"
    else:
        records = [json.loads(line) for line in lines]
        assert records[0] == {"time": "2026-11-24T12:00:00Z", "value": 0.0}
        values = [record["value"] for record in records]
    assert len(values) == BIG and sorted(values) == list(range(BIG))


def test_the_client_follows_the_pages(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "PAGE_SIZE", 7)
    hub = http.HubClient("http://testserver", None)
    monkeypatch.setattr(hub, "_http", client)
    window = {"metric": "temp", "start": (T0 + timedelta(seconds=1)).isoformat(),
              "end": (T0 + timedelta(seconds=30)).isoformat()}  # fmt: skip
    every = hub.telemetry("big", window)
    assert [p["value"] for p in every["points"]] == [float(v) for v in range(1, 31)]
    assert every["next"] is None
    some = hub.telemetry("big", window, limit=10)
    assert [p["value"] for p in some["points"]] == [float(v) for v in range(1, 11)]
    assert some["next"] is not None
