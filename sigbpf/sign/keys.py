"""Signing keys and certificates: make them, load them (PEM or DER), check them.

``generate_key_pair`` makes what the kernel's ``certs/default_x509.genkey``
makes for module signing: an RSA key (4096 bits by default) and a self-signed
X.509 certificate with ``basicConstraints=critical,CA:FALSE``,
``keyUsage=digitalSignature``, ``subjectKeyIdentifier=hash`` and
``authorityKeyIdentifier=keyid``.  The subject key identifier is what a
signature names its signer by (as bpftool does), and what the kernel matches
against the keys in its keyring.

Loading accepts PEM or DER for both keys and certificates (a PEM file may hold
the key and the certificate together, like the kernel's ``signing_key.pem``).
Keys must be RSA and without a passphrase.  ``check_certificate`` is sigbpf's
policy for a certificate used to sign or verify: inside its validity period,
and allowed to make digital signatures when it has a keyUsage extension.
Problems are :class:`~sigbpf.errors.KeyMaterialError` (exit 2: the key
material cannot be used), never a traceback.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sigbpf.errors import KeyMaterialError, UsageError

DEFAULT_BITS = 4096          # certs/default_x509.genkey: default_bits = 4096
DEFAULT_DAYS = 36500         # certs/Makefile: openssl req ... -days 36500
DEFAULT_SUBJECT = "sigbpf signing key"
MIN_BITS = 2048
MAX_BITS = 16384
PUBLIC_EXPONENT = 65537

#: File names ``keygen`` writes into its output directory.
KEY_PEM = "signing_key.pem"
KEY_DER = "signing_key.der"
CERT_PEM = "signing_cert.pem"
CERT_DER = "signing_cert.der"


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A private key and the certificate of its public key."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def generate_key_pair(
    subject: str = DEFAULT_SUBJECT,
    *,
    bits: int = DEFAULT_BITS,
    days: int = DEFAULT_DAYS,
    not_before: _dt.datetime | None = None,
    digital_signature: bool = True,
) -> KeyPair:
    """Make an RSA key and a self-signed certificate like the kernel's module-signing key.

    *not_before* (default: now) and *days* set the validity period; tests use
    them to make expired and not-yet-valid certificates.  *digital_signature*
    False makes a certificate whose keyUsage only allows key encipherment (a
    non-signing certificate, also for tests).
    """
    if not MIN_BITS <= bits <= MAX_BITS:
        raise UsageError(f"--bits {bits}: RSA key size must be between {MIN_BITS} and {MAX_BITS}")
    if days < 1:
        raise UsageError(f"--days {days}: a certificate must be valid for at least one day")
    if not subject or len(subject) > 64:
        raise UsageError("--subject: the common name must be 1 to 64 characters")
    key = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=bits)
    start = (not_before or _utcnow()).replace(microsecond=0)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    usage = x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False,
        key_encipherment=not digital_signature, data_encipherment=False,
        key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + _dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=False)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(key, cert)


def encode_private_key(key: rsa.RSAPrivateKey, *, pem: bool = True) -> bytes:
    """The key as unencrypted PKCS#8, PEM or DER."""
    encoding = serialization.Encoding.PEM if pem else serialization.Encoding.DER
    return key.private_bytes(encoding, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def encode_certificate(cert: x509.Certificate, *, pem: bool = True) -> bytes:
    """The certificate as PEM or DER."""
    return cert.public_bytes(serialization.Encoding.PEM if pem else serialization.Encoding.DER)


def _is_pem(data: bytes) -> bool:
    return b"-----BEGIN " in data[:4096]


def load_private_key(data: bytes, *, file: str | None = None) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM or DER bytes (PKCS#8 or PKCS#1, no passphrase)."""
    try:
        if _is_pem(data):
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except TypeError:
        raise KeyMaterialError("private key is encrypted; sigbpf needs a key without a passphrase",
                               file=file) from None
    except (ValueError, UnsupportedAlgorithm):
        form = "PEM" if _is_pem(data) else "DER"
        raise KeyMaterialError(f"not a private key ({form} that does not parse as one)",
                               file=file) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyMaterialError(
            f"private key is {type(key).__name__.lstrip('_')}, not RSA: sigbpf signs with RSA keys "
            "like the kernel's module-signing keys", file=file)
    return key


def load_certificate(data: bytes, *, file: str | None = None) -> x509.Certificate:
    """An X.509 certificate with an RSA public key, from PEM or DER bytes."""
    try:
        if _is_pem(data):
            cert = x509.load_pem_x509_certificate(data)
        else:
            cert = x509.load_der_x509_certificate(data)
        public_key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        form = "PEM" if _is_pem(data) else "DER"
        raise KeyMaterialError(f"not an X.509 certificate ({form} that does not parse as one)",
                               file=file) from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise KeyMaterialError(
            f"certificate holds a {type(public_key).__name__.lstrip('_')}, not an RSA key",
            file=file)
    return cert


def subject_key_identifier(cert: x509.Certificate) -> bytes | None:
    """The certificate's subjectKeyIdentifier extension, or None without one."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # a malformed extension
        return None


def describe_certificate(cert: x509.Certificate) -> str:
    """Short human name of a certificate: its subject and key id."""
    ski = subject_key_identifier(cert)
    subject = cert.subject.rfc4514_string() or "(empty subject)"
    return f"{subject} (key id {ski.hex()})" if ski else f"{subject} (serial {cert.serial_number:x})"


def check_certificate(cert: x509.Certificate, *, now: _dt.datetime | None = None,
                      file: str | None = None) -> None:
    """sigbpf's policy for a certificate that signs or verifies: valid now, allowed to sign.

    The kernel itself does not reject expired certificates in its keyrings;
    sigbpf does, in userspace, so that an old key stops being accepted.
    """
    now = now or _utcnow()
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < start:
        raise KeyMaterialError(
            f"certificate is not valid yet: valid from {start:%Y-%m-%d %H:%M:%S} UTC", file=file)
    if now > end:
        raise KeyMaterialError(
            f"certificate expired on {end:%Y-%m-%d %H:%M:%S} UTC", file=file)
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    except ValueError:
        raise KeyMaterialError("certificate has a malformed keyUsage extension", file=file) from None
    if not usage.digital_signature:
        raise KeyMaterialError(
            "certificate is not a signing certificate: its keyUsage lacks digitalSignature",
            file=file)


def check_key_matches_certificate(key: rsa.RSAPrivateKey, cert: x509.Certificate, *,
                                  file: str | None = None) -> None:
    """The private key must be the one whose public half the certificate holds."""
    if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise KeyMaterialError("private key does not belong to the certificate "
                               f"{describe_certificate(cert)}", file=file)


def load_key_pair(key_data: bytes, cert_data: bytes, *, key_file: str | None = None,
                  cert_file: str | None = None) -> KeyPair:
    """Load, check and match a key and its certificate for signing."""
    key = load_private_key(key_data, file=key_file)
    cert = load_certificate(cert_data, file=cert_file)
    check_certificate(cert, file=cert_file)
    check_key_matches_certificate(key, cert, file=key_file)
    return KeyPair(key, cert)
