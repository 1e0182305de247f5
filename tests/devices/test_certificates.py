"""The hub's CA: device and server certificates, CSRs, the CRL, and the key on disk."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fleetmind import certificates
from fleetmind.devices.ca import CertificateAuthority
from fleetmind.devices.errors import CertificateError


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.open(tmp_path / "ca")


def test_the_root_is_created_once_and_its_key_is_private(tmp_path: Path) -> None:
    first = CertificateAuthority.open(tmp_path / "ca")
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600
    again = CertificateAuthority.open(tmp_path / "ca")
    assert again.pem == first.pem
    constraints = first.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca and constraints.value.path_length == 0


def test_a_readable_ca_key_or_a_mismatched_pair_is_refused(tmp_path: Path) -> None:
    CertificateAuthority.open(tmp_path / "ca")
    (tmp_path / "ca" / "ca.key").chmod(0o644)
    with pytest.raises(CertificateError, match="chmod 600"):
        CertificateAuthority.open(tmp_path / "ca")
    (tmp_path / "ca" / "ca.key").chmod(0o600)
    CertificateAuthority.open(tmp_path / "other")
    with pytest.raises(CertificateError, match="is not the key of"):
        CertificateAuthority.open(
            tmp_path, cert_file=tmp_path / "other" / "ca.crt", key_file=tmp_path / "ca" / "ca.key"
        )
    with pytest.raises(CertificateError, match="both"):
        CertificateAuthority.open(tmp_path, cert_file=tmp_path / "ca" / "ca.crt")


def test_a_device_certificate_names_the_device_and_only_serves_clients(
    ca: CertificateAuthority,
) -> None:
    issued, key = ca.issue_device("pump-7")
    assert key is not None
    cert = issued.certificate
    assert certificates.device_id_of(cert) == "pump-7"
    certificates.verify_issued_by(cert, ca.certificate, datetime.now(UTC))
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert certificates.load_key(key).public_key() == cert.public_key()


def test_two_devices_never_share_a_key_or_serial(ca: CertificateAuthority) -> None:
    a, key_a = ca.issue_device("a")
    b, key_b = ca.issue_device("b")
    assert key_a != key_b and a.serial != b.serial and a.fingerprint != b.fingerprint


def test_a_csr_is_signed_without_its_key_and_its_subject_is_ignored(
    ca: CertificateAuthority,
) -> None:
    key = certificates.new_key()
    csr = certificates.make_csr(key, "someone-else")
    issued, returned_key = ca.issue_device("pump-8", csr)
    assert returned_key is None
    assert issued.certificate.public_key() == key.public_key()
    assert certificates.device_id_of(issued.certificate) == "pump-8"


def test_bad_csrs_are_refused(ca: CertificateAuthority) -> None:
    with pytest.raises(CertificateError, match="not a certificate signing request"):
        ca.issue_device("d", b"-----BEGIN CERTIFICATE REQUEST-----\nnope\n")
    with pytest.raises(CertificateError, match="at most"):
        ca.issue_device("d", b"x" * 10_000)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - refused
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(weak, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(CertificateError, match="2048"):
        ca.issue_device("d", csr)
    odd_curve = ec.generate_private_key(ec.SECP256K1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(odd_curve, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(CertificateError, match="P-256"):
        ca.issue_device("d", csr)
    with pytest.raises(CertificateError):
        ca.issue_device("not a device id!")


def test_foreign_and_expired_certificates_do_not_verify(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    foreign = CertificateAuthority.open(tmp_path / "foreign")
    issued, _ = foreign.issue_device("pump-7")
    with pytest.raises(certificates.CertificateError, match="not issued by"):
        certificates.verify_issued_by(issued.certificate, ca.certificate, datetime.now(UTC))
    issued, _ = ca.issue_device("pump-7", days=1)
    with pytest.raises(certificates.CertificateError, match="expired"):
        later = datetime.now(UTC) + timedelta(days=2)
        certificates.verify_issued_by(issued.certificate, ca.certificate, later)


def test_the_crl_lists_what_was_revoked(ca: CertificateAuthority) -> None:
    a, _ = ca.issue_device("a")
    b, _ = ca.issue_device("b")
    crl = x509.load_pem_x509_crl(ca.revocation_list([(a.serial, datetime.now(UTC))]))
    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(int(a.serial, 16)) is not None
    assert crl.get_revoked_certificate_by_serial_number(int(b.serial, 16)) is None


def test_server_files_cover_the_hosts(ca: CertificateAuthority, tmp_path: Path) -> None:
    _, cert, key = ca.server_files(tmp_path / "tls", ["127.0.0.1", "hub.example"])
    assert key.stat().st_mode & 0o777 == 0o600
    names = (
        certificates.load_certificate(cert.read_bytes())
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert names.get_values_for_type(x509.DNSName) == ["hub.example"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
