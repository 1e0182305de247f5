"""Where a broker is: host, port, the identity to log in with, and whether over TLS."""

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> "BrokerAddress":
        """``mqtt://user:secret@host:1883`` or ``mqtts://host:8883``."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("broker URL must look like mqtt://host:port or mqtts://host:port")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )

    def __repr__(self) -> str:  # never show the password
        return f"BrokerAddress({self.host}:{self.port}, user={self.username!r}, tls={self.tls})"
