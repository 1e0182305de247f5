"""The hub's certificate authority on disk: its root, the broker's server certificate, the CRL.

The root lives in ``DATA_DIR/ca/`` (``ca.key`` mode 0600, ``ca.crt``), created at first start,
or is supplied by the operator (``--ca-cert``/``--ca-key``). A key file that others may read is
refused: the hub will not sign with a key it cannot keep secret.

What :mod:`fleetmind.certificates` refuses comes out of here as the registry's
:class:`~fleetmind.devices.errors.CertificateError` (a ``DeviceError``).
"""

import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fleetmind import certificates
from fleetmind.certificates import Issued, PrivateKey
from fleetmind.devices.errors import CertificateError
from fleetmind.files import write_file


@contextmanager
def _refused() -> Iterator[None]:
    """The X.509 library's refusal as the registry's, which its callers answer."""
    try:
        yield
    except certificates.CertificateError as exc:
        raise CertificateError(str(exc)) from None


def check_csr(pem: bytes) -> None:
    """Refuse a CSR the CA would not sign (malformed, a weak key) before anything is spent."""
    with _refused():
        certificates.load_csr(pem)


def _private_key(path: Path) -> PrivateKey:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CertificateError(
            f"{path} may be read by others (mode {stat.S_IMODE(mode):o}); chmod 600 it"
        )
    with _refused():
        return certificates.load_key(path.read_bytes())


class CertificateAuthority:
    def __init__(self, key: PrivateKey, certificate: x509.Certificate) -> None:
        self._key = key
        self.certificate = certificate

    @classmethod
    def open(
        cls, directory: Path, *, cert_file: Path | None = None, key_file: Path | None = None
    ) -> "CertificateAuthority":
        """The operator's root if given, else the one in ``directory`` (created if missing)."""
        if (cert_file is None) != (key_file is None):
            raise CertificateError("give both the CA certificate and its key, or neither")
        if cert_file is None or key_file is None:
            cert_file, key_file = directory / "ca.crt", directory / "ca.key"
            if not cert_file.exists() and not key_file.exists():
                key, certificate = certificates.create_ca()
                write_file(key_file, certificates.key_pem(key), 0o600)
                write_file(cert_file, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
        try:
            key = _private_key(key_file)
            with _refused():
                certificate = certificates.load_certificate(cert_file.read_bytes())
        except OSError as exc:
            raise CertificateError(f"cannot read the CA: {exc}") from None
        if certificate.public_key() != key.public_key():
            raise CertificateError(f"{key_file} is not the key of {cert_file}")
        return cls(key, certificate)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue_device(
        self,
        device_id: str,
        csr: bytes | None = None,
        *,
        days: int = certificates.DEVICE_DAYS,
        now: datetime | None = None,
    ) -> tuple[Issued, bytes | None]:
        """A certificate for ``device_id`` over the CSR's key, or over a new key pair (returned as
        PEM; the hub keeps no copy)."""
        with _refused():
            if csr is not None:
                request = certificates.load_csr(csr)
                issued = certificates.issue_device(
                    self._key, self.certificate, request, device_id, days=days, now=now
                )
                return issued, None
            key = certificates.new_key()
            issued = certificates.issue_device(
                self._key, self.certificate, key.public_key(), device_id, days=days, now=now
            )
        return issued, certificates.key_pem(key)

    def server_files(self, directory: Path, hosts: Iterable[str]) -> tuple[Path, Path, Path]:
        """``ca.crt``, ``server.crt`` and ``server.key`` (0600) for a TLS listener on ``hosts``,
        issued anew each start (they are cheap, and a changed host name is picked up)."""
        key = certificates.new_key()
        issued = certificates.issue_server(self._key, self.certificate, key, hosts)
        ca, cert = directory / "ca.crt", directory / "server.crt"
        key_path = directory / "server.key"
        write_file(ca, self.pem, 0o644)
        write_file(key_path, certificates.key_pem(key), 0o600)
        write_file(cert, issued.pem, 0o644)
        return ca, cert, key_path

    def client_files(self, directory: Path, common_name: str) -> tuple[Path, Path, Issued]:
        """``client.crt`` and ``client.key`` (0600) for the hub's own connection to a broker,
        issued anew each start."""
        key = certificates.new_key()
        issued = certificates.issue_client(self._key, self.certificate, key.public_key(),
                                           common_name)  # fmt: skip
        cert, key_path = directory / "client.crt", directory / "client.key"
        write_file(key_path, certificates.key_pem(key), 0o600)
        write_file(cert, issued.pem, 0o644)
        return cert, key_path, issued

    def revocation_list(self, revoked: Iterable[tuple[str, datetime]]) -> bytes:
        return certificates.revocation_list(self._key, self.certificate, revoked)
