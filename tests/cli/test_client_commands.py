"""The client commands reach the hub only through ``HubClient``'s typed methods."""

import re
from pathlib import Path

import fleetmind.cli

CLI = Path(fleetmind.cli.__file__).parent


def test_no_cli_module_sends_requests_by_hand() -> None:
    modules = sorted(CLI.glob("*.py"))
    assert len(modules) > 1
    for module in modules:
        source = module.read_text()
        assert not re.search(r"\.request\s*\(", source), f"{module.name} calls .request(...)"
