"""A device's MQTT credentials and the private files that hold secrets on disk.

A device has a secret (username and password) and, when the hub has a CA, a certificate: with a
certificate and its private key the agent connects to the broker's mutual-TLS listener and the
certificate is its identity; otherwise it uses the password.
"""

import json
import ssl
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fleetmind.files import write_file


@dataclass(frozen=True, slots=True)
class Credentials:
    host: str
    port: int
    username: str
    password: str
    #: PEM: the hub's CA, the device's certificate and private key (mutual TLS)
    ca: str | None = None
    certificate: str | None = None
    private_key: str | None = None

    def __repr__(self) -> str:  # keep the password and key out of logs and tracebacks
        kind = "mtls" if self.uses_certificate else "password"
        return f"Credentials({self.username}@{self.host}:{self.port}, {kind})"

    @property
    def uses_certificate(self) -> bool:
        return bool(self.ca and self.certificate and self.private_key)

    @classmethod
    def from_device(
        cls, device: dict[str, Any], *, private_key: str | None = None
    ) -> "Credentials":
        """From the JSON the hub returns when a device is added (``fleetmind device add``): its
        mutual-TLS endpoint when the document (or ``private_key``) completes a certificate, else
        its password."""
        try:
            tls = device.get("mqtts") or {}
            key = private_key or tls.get("private_key")
            if tls.get("certificate") and tls.get("ca") and key:
                return cls(
                    str(tls["host"]), int(tls["port"]), str(device["id"]), "",
                    ca=tls["ca"], certificate=tls["certificate"], private_key=key,
                )  # fmt: skip
            mqtt = device["mqtt"]
            return cls(str(mqtt["host"]), int(mqtt["port"]), mqtt["username"], mqtt["password"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a device credentials document: missing {exc}") from None

    @classmethod
    def load(cls, path: Path, *, key_file: Path | None = None) -> "Credentials":
        try:
            document = json.loads(path.read_text())
            key = key_file.read_text() if key_file is not None else None
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read credentials: {exc}") from None
        return cls.from_device(document, private_key=key)

    def document(self) -> dict[str, Any]:
        if not self.uses_certificate:
            return {"id": self.username, "mqtt": asdict(self)}
        endpoint = {"host": self.host, "port": self.port}
        tls = {"ca": self.ca, "certificate": self.certificate, "private_key": self.private_key}
        return {"id": self.username, "mqtts": endpoint | tls}

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for the broker: the hub's CA, and this device's certificate."""
        if not self.uses_certificate:
            return None
        context = ssl.create_default_context(cadata=self.ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # the ssl module loads a key only from a file: a private one, gone once loaded
        with tempfile.TemporaryDirectory(prefix="fleetmind-") as directory:
            chain = Path(directory) / "device.pem"
            write_file(chain, f"{self.certificate}\n{self.private_key}")
            context.load_cert_chain(chain)
        return context
