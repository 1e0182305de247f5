"""Certificate renewal over the device's own connection: a new key's CSR on ``up/csr`` when the
certificate is close to its expiry (checked at every connect) or when the hub asks, the answer
on ``down/certificate``; the agent switches to the new certificate and keeps it on disk.

Renewal is rare, and the X.509 stack (``cryptography``) is large: it is imported only to renew.
The expiry checked at every connect is read from the certificate with the standard library.
"""

import dataclasses
import json
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from fleetmind.agent.journal import Journal
from fleetmind.agent.uplink import Uplink
from fleetmind.files import write_file
from fleetmind.wire import messages, topics

if TYPE_CHECKING:
    from fleetmind.certificates import PrivateKey

#: the device's identity (credentials with its certificate and key), kept current on renewal
IDENTITY_FILE = "identity.json"
#: a certificate this close to its expiry is renewed at the next connect
RENEW_BEFORE = timedelta(days=30)


class Renewal:
    def __init__(self, uplink: Uplink, journal: Journal, state_dir: Path | None) -> None:
        self._uplink = uplink
        self._journal = journal
        self._state_dir = state_dir
        #: the key of the CSR sent, until the hub answers
        self._key: PrivateKey | None = None

    async def if_due(self) -> None:
        """Ask for a new certificate when the current one is close to its expiry."""
        certificate = self._uplink.credentials.certificate
        if not certificate or self._key is not None:
            return
        if expires_at(certificate) - datetime.now(UTC) < RENEW_BEFORE:
            await self.request()

    async def request(self) -> None:
        """Make a new key and send its CSR; the hub answers on ``down/certificate``."""
        from fleetmind import certificates

        self._key = certificates.new_key()
        device_id = self._journal.device_id
        csr = certificates.make_csr(self._key, device_id).decode()
        await self._uplink.send(topics.up(device_id, topics.Up.CSR), messages.Renewal(csr).encode())
        self._journal.note("certificate renewal requested")

    def answered(self, answer: messages.Certificate) -> None:
        """Switch to the new certificate if it is for the key this agent made and its hub's CA
        signed it; keep it on disk (0600) for the next start."""
        key, self._key = self._key, None
        current = self._uplink.credentials
        if answer.certificate is None or key is None or current.ca is None:
            self._journal.note(f"certificate renewal refused: {answer.error or 'not asked for'}")
            return
        from fleetmind import certificates

        try:
            new = certificates.load_certificate(answer.certificate.encode())
            ca = certificates.load_certificate(current.ca.encode())
            certificates.verify_issued_by(new, ca, datetime.now(UTC))
        except certificates.CertificateError as exc:
            self._journal.note(f"certificate renewal refused: {exc}")
            return
        if new.public_key() != key.public_key():
            self._journal.note("certificate renewal refused: not for this agent's key")
            return
        renewed = dataclasses.replace(
            current,
            certificate=answer.certificate,
            private_key=certificates.key_pem(key).decode(),
        )
        if self._state_dir is not None:
            write_file(self._state_dir / IDENTITY_FILE, json.dumps(renewed.document()))
        self._uplink.replace_credentials(renewed)
        self._journal.note(f"certificate renewed, serial {certificates.serial_hex(new)}")


def expires_at(pem: str) -> datetime:
    """When a PEM certificate expires (its ``notAfter``), read from its DER with the standard
    library; a certificate it cannot read goes to ``cryptography``, which says what is wrong."""
    try:
        return _not_after(ssl.PEM_cert_to_DER_cert(pem.strip()))
    except (ValueError, IndexError):
        from fleetmind import certificates

        return certificates.load_certificate(pem.encode()).not_valid_after_utc


def _not_after(der: bytes) -> datetime:
    """Certificate > tbsCertificate > [version], serialNumber, signature, issuer, validity >
    notBefore, notAfter (RFC 5280, 4.1)."""
    _, at, _ = _element(der, 0, 0x30)
    _, at, _ = _element(der, at, 0x30)
    if der[at] == 0xA0:  # the version, explicitly tagged (absent in a v1 certificate)
        at = _element(der, at)[2]
    for tag in (0x02, 0x30, 0x30):  # serialNumber, signature, issuer
        at = _element(der, at, tag)[2]
    _, at, _ = _element(der, at, 0x30)  # validity
    at = _element(der, at)[2]  # notBefore
    tag, start, end = _element(der, at)
    text = der[start:end].decode("ascii")
    if tag == 0x17:  # UTCTime, YYMMDDHHMMSSZ: 50 to 99 are 19xx (RFC 5280, 4.1.2.5.1)
        text = ("19" if int(text[:2]) >= 50 else "20") + text
    elif tag != 0x18:  # GeneralizedTime, YYYYMMDDHHMMSSZ
        raise ValueError("notAfter is not a time")
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)


def _element(der: bytes, at: int, tag: int | None = None) -> tuple[int, int, int]:
    """The DER element at ``at``: its tag, where its content starts and where it ends."""
    found, length = der[at], der[at + 1]
    at += 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(der[at : at + size], "big")
        at += size
    if (tag is not None and found != tag) or at + length > len(der):
        raise ValueError("not a DER certificate")
    return found, at, at + length
