"""Neither the repository nor the wheel users install holds a secret: private keys, API or
claim tokens, password hashes, cloud keys."""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATTERNS = {
    "a private key": re.compile(rb"-----BEGIN (?:EC |RSA |ENCRYPTED )?PRIVATE KEY-----"),
    "an API token": re.compile(rb"\bfm_[A-Za-z0-9_-]{40,}"),
    "a claim token": re.compile(rb"\bfmc_[A-Za-z0-9_-]{40,}"),
    "a device secret hash": re.compile(rb"\$7\$\d+\$[A-Za-z0-9+/=]{12,}\$[A-Za-z0-9+/=]{40,}"),
    "an argon2 hash": re.compile(rb"\$argon2id\$v=\d+\$m=\d+"),
    "an AWS access key": re.compile(rb"\bAKIA[0-9A-Z]{16}\b"),
}


def secrets_in(name: str, data: bytes) -> list[str]:
    return [f"{name}: {what}" for what, pattern in PATTERNS.items() if pattern.search(data)]


def test_the_patterns_find_what_they_look_for() -> None:
    token = b"fm_" + b"A" * 43
    key = b"-----BEGIN EC " + b"PRIVATE KEY-----\n"  # in two parts: this file is scanned too
    assert secrets_in("x", key) == ["x: a private key"]
    assert secrets_in("x", b"Bearer " + token) == ["x: an API token"]
    assert secrets_in("x", b"# the prefix fm_ and a short fm_abc") == []


def test_the_repository_holds_no_secret() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    files = [ROOT / name.decode() for name in listed if name]
    assert len(files) > 50
    found = [
        hit for path in files if path.is_file() for hit in secrets_in(str(path), path.read_bytes())
    ]
    assert found == []


def test_the_wheel_holds_no_secret(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    [wheel] = tmp_path.glob("fleetmind-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert any(name.endswith("devices/ca.py") for name in names)
        found = [hit for name in names for hit in secrets_in(name, archive.read(name))]
    assert found == []
