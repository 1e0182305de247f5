"""The REST API fuzzed from its own OpenAPI document (schemathesis strategies, driven by
Hypothesis): whatever arrives, the hub answers without a server error and keeps serving."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from conftest import RunningHub, free_port, start_hub, stop

#: examples per operation (about 30 operations)
EXAMPLES = 25


@pytest.fixture(scope="module")
def fuzzed_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    """A hub of its own: the fuzz deletes and changes what it finds."""
    running = start_hub(
        tmp_path_factory.mktemp("fuzz") / "data",
        "--mqtt-port", str(free_port()), "--mqtt-tls-port", str(free_port()),
    )  # fmt: skip
    yield running
    stop(running.process)


def test_no_request_makes_a_server_error(fuzzed_hub: RunningHub) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed_hub.url}/openapi.json")
    headers = {"Authorization": f"Bearer {fuzzed_hub.token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    statuses: list[int] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def fuzz(case: Any) -> None:
            if case.path == "/api/v1/tokens/{token_id}":  # keep the fuzz's own token
                case.path_parameters["token_id"] = max(2, int(case.path_parameters["token_id"]))
            response = case.call(base_url=fuzzed_hub.url, headers=headers)
            statuses.append(response.status_code)
            assert response.status_code < 500, (case.method, case.path, response.text[:300])

        fuzz()
    assert len(statuses) >= 5 * len(operations)
    assert sum(200 <= code < 300 for code in statuses) >= len(operations)  # not all refused
    assert httpx.get(f"{fuzzed_hub.url}/healthz").status_code == 200
    assert fuzzed_hub.process.poll() is None
