"""Files replaced atomically, readable only as their mode says from the first byte on."""

import os
import tempfile
from pathlib import Path


def write_file(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``; the file is created with ``mode`` (owner-only by default),
    so a secret is never readable by others, not even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
