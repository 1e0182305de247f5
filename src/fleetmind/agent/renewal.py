"""Certificate renewal over the device's own connection: a new key's CSR on ``up/csr`` when the
certificate is close to its expiry (checked at every connect) or when the hub asks, the answer
on ``down/certificate``; the agent switches to the new certificate and keeps it on disk."""

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fleetmind import certificates
from fleetmind.agent.journal import Journal
from fleetmind.agent.uplink import Uplink
from fleetmind.certificates import CertificateError
from fleetmind.files import write_file
from fleetmind.wire import messages, topics

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
        self._key: certificates.PrivateKey | None = None

    async def if_due(self) -> None:
        """Ask for a new certificate when the current one is close to its expiry."""
        certificate = self._uplink.credentials.certificate
        if certificate and self._key is None:
            expires = certificates.load_certificate(certificate.encode()).not_valid_after_utc
            if expires - datetime.now(UTC) < RENEW_BEFORE:
                await self.request()

    async def request(self) -> None:
        """Make a new key and send its CSR; the hub answers on ``down/certificate``."""
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
        try:
            new = certificates.load_certificate(answer.certificate.encode())
            ca = certificates.load_certificate(current.ca.encode())
            certificates.verify_issued_by(new, ca, datetime.now(UTC))
        except CertificateError as exc:
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
