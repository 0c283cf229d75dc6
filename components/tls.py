"""Site TLS material with `cryptography`: issue a CA and a server certificate, check brought ones.

Pure functions, no Pulumi: :mod:`components.cluster.certificates` wraps issuance in resources,
:mod:`components.config.https` checks the certificates and keys a site brings.

What the connected-registry chart needs for https (docs/azure.md, "The Helm chart"; docs/nodes.md, "HTTPS and one image name"): a server certificate
whose subject alternative names hold the Service's pinned ClusterIP (containerd dials the IP and
checks it against the certificate) and its DNS names, passed with its key as PEM. Nodes trust the
CA that issued it, so a renewed server certificate from the same CA needs no change on the nodes.
Keys are ECDSA P-256 (what Go's TLS stack, in containerd and the registry, handles fastest), PEM in
PKCS#8 without a passphrase, because the chart takes the key as a plain value.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    # cryptography is imported by the functions that parse or issue certificates: a site that
    # brings none and serves http (and every offline render: its fakes issue nothing) never loads it.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

#: Certificates start this much before "now", so a node whose clock is a little behind accepts
#: a certificate issued a moment ago.
CLOCK_SKEW = timedelta(minutes=5)


class TlsMaterialError(ValueError):
    """A PEM text that is not what it should be; the message never contains key material."""


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM."""

    certificate_pem: str
    """The certificate (public)."""
    key_pem: str
    """Its private key, PKCS#8, unencrypted (secret)."""
    not_after: datetime
    """When the certificate expires (UTC)."""


def format_time(moment: datetime) -> str:
    """ISO 8601 UTC with a ``Z`` and whole seconds, as stored in state."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time`."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----", re.DOTALL)


def pem_blocks(text: str) -> list[str]:
    """The certificates of a PEM text (a CA file may hold several), each normalized to its
    ``BEGIN``/``END`` lines and one final newline. Text without a PEM certificate counts as one
    opaque entry (the offline render's stand-ins). No parsing: the render loads no ``cryptography``."""
    blocks = [block.replace("\r\n", "\n") + "\n" for block in _PEM_BLOCK.findall(text)]
    if blocks:
        return blocks
    return [text.strip() + "\n"] if text.strip() else []


def trust_bundle(certificates: Sequence[str]) -> str:
    """One CA file for ``certificates`` (PEM texts, in order, duplicates dropped): a single one
    exactly as given, so a site with one CA writes the bytes it always wrote; several as their
    certificates one after the other (what containerd's ``ca_file`` and OpenSSL's ``CAfile`` take)."""
    texts = [text for text in certificates if text]
    if len(texts) == 1 or len({tuple(pem_blocks(text)) for text in texts}) == 1:
        return texts[0]
    blocks: list[str] = []
    for text in texts:
        blocks += [block for block in pem_blocks(text) if block not in blocks]
    return "".join(blocks)


def bundle_holds(bundle: str, certificate: str) -> bool:
    """Whether the CA file ``bundle`` holds every certificate of ``certificate``."""
    held = set(pem_blocks(bundle))
    wanted = pem_blocks(certificate)
    return bool(wanted) and all(block in held for block in wanted)


def renewal_due(not_after: str, renew_before_days: float, at: datetime) -> bool:
    """Whether a certificate expiring at ``not_after`` must be replaced at time ``at``."""
    return at >= parse_time(not_after) - timedelta(days=float(renew_before_days))


def _new_key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: CertificateIssuerPrivateKeyTypes) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def _signature_hash(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed448, ed25519

    # Ed25519/Ed448 sign without a separate hash; RSA and ECDSA keys use SHA-256.
    return None if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) else hashes.SHA256()


def load_certificate(pem: str, what: str = "certificate") -> x509.Certificate:
    """The first certificate in ``pem``; :class:`TlsMaterialError` when there is none."""
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(pem.encode("utf-8"))
    except ValueError:
        raise TlsMaterialError(f"is not a PEM {what} (-----BEGIN CERTIFICATE-----)") from None


def load_private_key(pem: str) -> CertificateIssuerPrivateKeyTypes:
    """A PEM private key (PKCS#8, SEC1 or PKCS#1) that can sign; never echoes the key."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except TypeError:
        raise TlsMaterialError("is passphrase-protected; the chart needs an unencrypted key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsMaterialError("is not a PEM private key (value not shown: it is a secret)") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey,
                            ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        raise TlsMaterialError("is a key type that cannot sign certificates (use RSA, ECDSA or Ed25519)")
    return key


def _same_public_key(key: CertificateIssuerPrivateKeyTypes, certificate: x509.Certificate) -> bool:
    from cryptography.hazmat.primitives import serialization

    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*der) == certificate.public_key().public_bytes(*der)


def issue_ca(common_name: str, validity_days: float, now: datetime) -> Issued:
    """A self-signed CA that may sign server certificates only (path length 0)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    not_after = now + timedelta(days=float(validity_days))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(
        certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"), _key_pem(key),
        certificate.not_valid_after_utc,
    )


def issue_server_certificate(
    ca_certificate_pem: str,
    ca_key_pem: str,
    ip_addresses: Sequence[str],
    dns_names: Sequence[str],
    validity_days: float,
    now: datetime,
) -> Issued:
    """A TLS server certificate for ``ip_addresses`` and ``dns_names``, signed by the CA.

    It never outlives the CA: a certificate valid past its issuer's expiry would fail then anyway.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not ip_addresses and not dns_names:
        raise TlsMaterialError("a server certificate needs at least one IP address or DNS name")
    ca_certificate = load_certificate(ca_certificate_pem, "CA certificate")
    ca_key = load_private_key(ca_key_pem)
    if not _same_public_key(ca_key, ca_certificate):
        raise TlsMaterialError("the CA key does not belong to the CA certificate")
    key = _new_key()
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    names += [x509.DNSName(name) for name in dns_names]
    common_name = dns_names[0] if dns_names else str(ip_addresses[0])
    not_after = min(now + timedelta(days=float(validity_days)), ca_certificate.not_valid_after_utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_certificate.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, _signature_hash(ca_key))
    )
    return Issued(
        certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"), _key_pem(key),
        certificate.not_valid_after_utc,
    )


def subject_ip_addresses(certificate: x509.Certificate) -> list[str]:
    """The IP addresses among the certificate's subject alternative names."""
    from cryptography import x509

    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]


def ca_problems(
    ca_certificate_pem: str, ca_key_pem: str | None, now: datetime, renew_before_days: float | None = None
) -> list[tuple[str, str]]:
    """What is wrong with a brought CA, as ``(which, message)``; ``which`` is ``"ca"`` or ``"ca_key"``.

    With ``renew_before_days`` (the program issues with this CA): a CA inside that window is a
    problem too, since a server certificate never outlives its CA and so would be due for
    renewal again on every run."""
    from cryptography import x509

    try:
        ca = load_certificate(ca_certificate_pem, "CA certificate")
    except TlsMaterialError as error:
        return [("ca", str(error))]
    problems: list[tuple[str, str]] = []
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = constraints.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        problems.append(("ca", "is not a CA certificate (basicConstraints CA:TRUE)"))
    if ca.not_valid_after_utc <= now:
        problems.append(("ca", f"expired on {format_time(ca.not_valid_after_utc)}"))
    elif renew_before_days is not None and renewal_due(format_time(ca.not_valid_after_utc), renew_before_days, now):
        problems.append((
            "ca",
            f"expires on {format_time(ca.not_valid_after_utc)}, within certificateRenewBeforeDays "
            f"({renew_before_days:g}): certificates issued with it could not outlive it; renew the CA first",
        ))
    if ca_key_pem is not None:
        try:
            key = load_private_key(ca_key_pem)
        except TlsMaterialError as error:
            problems.append(("ca_key", str(error)))
        else:
            if not _same_public_key(key, ca):
                problems.append(("ca_key", "does not belong to the CA certificate (value not shown)"))
    return problems


def server_certificate_problems(
    certificate_pem: str, key_pem: str, ca_certificate_pem: str, ip_address: str | None, now: datetime
) -> list[tuple[str, str]]:
    """What is wrong with a brought server certificate and key, as ``(which, message)``;
    ``which`` is ``"certificate"`` or ``"key"``."""
    from cryptography.exceptions import InvalidSignature

    try:
        certificate = load_certificate(certificate_pem)
    except TlsMaterialError as error:
        return [("certificate", str(error))]
    problems: list[tuple[str, str]] = []
    try:
        key = load_private_key(key_pem)
    except TlsMaterialError as error:
        problems.append(("key", str(error)))
    else:
        if not _same_public_key(key, certificate):
            problems.append(("key", "does not belong to the certificate (value not shown)"))
    if ip_address is not None and ip_address not in subject_ip_addresses(certificate):
        problems.append((
            "certificate",
            f"does not name the registry's ClusterIP {ip_address} as a subject alternative name "
            f"(it names {', '.join(subject_ip_addresses(certificate)) or 'no IP address'}); "
            "containerd checks the IP it dials",
        ))
    if certificate.not_valid_after_utc <= now:
        problems.append(("certificate", f"expired on {format_time(certificate.not_valid_after_utc)}"))
    try:
        ca = load_certificate(ca_certificate_pem, "CA certificate")
        certificate.verify_directly_issued_by(ca)
    except TlsMaterialError:
        pass  # reported against the CA
    except (ValueError, TypeError, InvalidSignature):
        problems.append(("certificate", "was not issued by the CA in tlsCaCertificate: nodes would not trust it"))
    return problems

