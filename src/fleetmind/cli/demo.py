"""``fleetmind demo``: a hub with the embedded broker and a simulated fleet, until Ctrl-C."""

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from fleetmind.cli.shared import DEFAULT_DATA_DIR, DataDir, fail, out
from fleetmind.cli.sim import sim


def demo(
    devices: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Start a hub with the embedded broker and a simulated fleet; run until Ctrl-C."""
    signal.signal(signal.SIGTERM, _interrupt)  # stop the hub on SIGTERM as on Ctrl-C
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "hub.url").unlink(missing_ok=True)
    log = data_dir / "hub.log"
    with log.open("ab") as log_file:
        hub_process = subprocess.Popen(
            [sys.executable, "-m", "fleetmind", "hub", "--data-dir", str(data_dir)],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        url = _wait_for_hub(data_dir, hub_process)
        token = (data_dir / "admin.token").read_text().strip()
        out.print(f"\n[bold]FleetMind demo[/bold] (hub log: {log})", soft_wrap=True)
        out.print(f"Dashboard: {url}/", soft_wrap=True)
        out.print(f"API:       {url}/docs", soft_wrap=True)
        out.print(f"Admin token: {token}\n", highlight=False, soft_wrap=True)
        out.print(f"Running {devices} simulated devices; Ctrl-C stops the demo.")
        sim(
            devices=devices,
            rate=1.0,
            duration=None,
            prefix="demo",
            url=url,
            token=token,
            data_dir=data_dir,
            as_json=False,
        )
    except KeyboardInterrupt:
        out.print("stopping")
    finally:
        hub_process.terminate()
        hub_process.wait(timeout=30)


def _interrupt(_signal: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _wait_for_hub(  # noqa: RET503 - the last statement, fail(), raises
    data_dir: Path, process: "subprocess.Popen[bytes]", timeout: float = 60
) -> str:
    import httpx

    deadline = time.monotonic() + timeout
    url_file = data_dir / "hub.url"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            fail("the hub did not start; run `fleetmind hub` to see why")
        if url_file.exists():
            url = url_file.read_text().strip()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    fail(f"the hub did not answer within {timeout:.0f} s")
