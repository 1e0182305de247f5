"""X.509 for device identity: the hub's CA, device and broker certificates, CSRs and the CRL.

Pure logic over the ``cryptography`` library, no I/O: keys and certificates go in and out as
objects or PEM bytes. Keys are ECDSA P-256 (small and fast on devices; AWS IoT and Mosquitto
accept them). A device certificate names the device in its subject's common name, which the
broker takes as the MQTT username (Mosquitto's ``use_identity_as_username``).

Both sides use it: the hub's CA (``devices/ca.py``) signs and revokes, an agent makes its key and
CSR and checks the certificate it is given. What it refuses raises :class:`CertificateError`,
which the registry wraps in its own (``devices.errors.CertificateError``, a ``DeviceError``).
"""

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleetmind.wire import topics
from fleetmind.wire.errors import TopicError

PrivateKey = ec.EllipticCurvePrivateKey


class CertificateError(ValueError):
    """A certificate, key or CSR that is malformed, foreign, weak or not valid now."""


CA_DAYS = 3650
DEVICE_DAYS = 365
SERVER_DAYS = 825
#: the CRL is reissued at least this often (and on every revocation)
CRL_DAYS = 7
#: a certificate may start this far back, so a device with a slow clock accepts it
CLOCK_SKEW = timedelta(minutes=5)
MAX_CSR_BYTES = 8 * 1024
MIN_RSA_BITS = 2048
_CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate just signed, with what the registry keeps of it."""

    certificate: x509.Certificate
    serial: str
    fingerprint: str
    not_after: datetime

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def new_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key(pem: bytes) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"not a private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError("the private key is not an EC key")
    return key


def load_certificate(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise CertificateError(f"not a certificate: {exc}") from None


def serial_hex(certificate: x509.Certificate) -> str:
    return format(certificate.serial_number, "x")


def fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "FleetMind"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def create_ca(
    common_name: str = "FleetMind root CA", *, now: datetime | None = None
) -> tuple[PrivateKey, x509.Certificate]:
    """A self-signed root that may sign end-entity certificates only (path length 0)."""
    now = now or datetime.now(UTC)
    key = new_key()
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def make_csr(key: PrivateKey, device_id: str) -> bytes:
    """A certificate signing request for ``device_id`` (made on the device: its key stays there)."""
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(device_id))
    return csr.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def load_csr(pem: bytes) -> x509.CertificateSigningRequest:
    """A CSR whose signature holds and whose key is EC P-256 or RSA >= 2048 bits."""
    if len(pem) > MAX_CSR_BYTES:
        raise CertificateError(f"a CSR is at most {MAX_CSR_BYTES} bytes")
    try:
        csr = x509.load_pem_x509_csr(pem)
        valid = csr.is_signature_valid
    except (ValueError, InvalidSignature, TypeError) as exc:
        raise CertificateError(f"not a certificate signing request: {exc}") from None
    if not valid:
        raise CertificateError("the CSR's signature does not match its key")
    public = csr.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        if public.curve.name not in {"secp256r1", "secp384r1"}:
            raise CertificateError("EC keys must be on P-256 or P-384")
    elif not isinstance(public, rsa.RSAPublicKey) or public.key_size < MIN_RSA_BITS:
        raise CertificateError("keys must be EC P-256/P-384 or RSA of at least 2048 bits")
    return csr


def issue_device(
    ca_key: PrivateKey,
    ca: x509.Certificate,
    public_key: x509.CertificateSigningRequest | ec.EllipticCurvePublicKey,
    device_id: str,
    *,
    days: int = DEVICE_DAYS,
    now: datetime | None = None,
) -> Issued:
    """A client certificate for ``device_id`` (the subject's common name) over a CSR's key or a
    public key; whatever else the CSR asks for is ignored."""
    try:
        topics.check_device_id(device_id)
    except TopicError as exc:
        raise CertificateError(str(exc)) from None
    key = (
        public_key.public_key()
        if isinstance(public_key, x509.CertificateSigningRequest)
        else public_key
    )
    return issue_client(ca_key, ca, key, device_id, days=days, now=now)


def issue_client(
    ca_key: PrivateKey,
    ca: x509.Certificate,
    public_key: object,
    common_name: str,
    *,
    days: int = DEVICE_DAYS,
    now: datetime | None = None,
) -> Issued:
    """A client certificate for ``common_name`` (a device id, or the hub's own identity)."""
    return _sign(
        ca_key, ca, public_key, _name(common_name), days, now,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH, alt_names=[],
    )  # fmt: skip


def issue_server(
    ca_key: PrivateKey,
    ca: x509.Certificate,
    key: PrivateKey,
    hosts: Iterable[str],
    *,
    now: datetime | None = None,
) -> Issued:
    """The broker's (or API's) server certificate for ``hosts`` (names or IP addresses)."""
    hosts = list(dict.fromkeys(hosts))
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    return _sign(
        ca_key, ca, key.public_key(), _name(hosts[0]), SERVER_DAYS, now,
        usage=ExtendedKeyUsageOID.SERVER_AUTH, alt_names=alt_names,
    )  # fmt: skip


def _sign(
    ca_key: PrivateKey,
    ca: x509.Certificate,
    public: object,
    subject: x509.Name,
    days: int,
    now: datetime | None,
    *,
    usage: x509.ObjectIdentifier,
    alt_names: list[x509.GeneralName],
) -> Issued:
    now = now or datetime.now(UTC)
    not_after = min(now + timedelta(days=days), ca.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.subject)
        .public_key(public)  # type: ignore[arg-type]  # checked by load_csr or made here
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    certificate = builder.sign(ca_key, hashes.SHA256())
    return Issued(
        certificate,
        serial_hex(certificate),
        fingerprint(certificate),
        certificate.not_valid_after_utc,
    )


def device_id_of(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise CertificateError("a device certificate names exactly one common name")
    return str(names[0].value)


def verify_issued_by(certificate: x509.Certificate, ca: x509.Certificate, now: datetime) -> None:
    """Raise :class:`CertificateError` unless ``ca`` signed ``certificate`` and it is valid now."""
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CertificateError(f"not issued by this hub's CA: {exc}") from None
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise CertificateError("the certificate is expired or not valid yet")


def revocation_list(
    ca_key: PrivateKey,
    ca: x509.Certificate,
    revoked: Iterable[tuple[str, datetime]],
    *,
    now: datetime | None = None,
) -> bytes:
    """The CRL (PEM) listing ``revoked`` (serial in hex, revocation time)."""
    now = now or datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now - CLOCK_SKEW)
        .next_update(now + timedelta(days=CRL_DAYS))
    )
    for serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(int(serial, 16))
            .revocation_date(when)
            .build()
        )
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
