"""The agent's own health, reported as telemetry (``health.*`` metrics) every health interval."""

import os
import resource
import shutil
import sys
from pathlib import Path

from fleetmind.wire import senml


def rss_mb() -> float:
    """Resident memory of this process (Linux: /proc; elsewhere the peak from getrusage)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def disk_free_mb(path: Path) -> float:
    try:
        return shutil.disk_usage(path).free / 2**20
    except OSError:
        return -1.0


def readings(t: float, figures: dict[str, float | bool]) -> list[senml.Reading]:
    """``figures`` as SenML readings named ``health.<name>``."""
    return [
        senml.Reading(f"health.{name}", t, value if isinstance(value, bool) else round(value, 3))
        for name, value in figures.items()
    ]


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return -1.0
