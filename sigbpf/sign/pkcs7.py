"""Detached PKCS#7/CMS signatures in the kernel's format: make, parse, verify.

The format is the one ``BPF_PROG_LOAD``'s ``signature`` field takes (and the
one of module signatures): a DER ``ContentInfo`` holding ``SignedData`` with

* content type ``data`` and the content *detached* (absent),
* digest algorithm SHA-256,
* no signed attributes (the RSA signature is over the content's digest itself),
* no certificates and no CRLs inside (the kernel finds the key in a keyring),
* exactly one ``SignerInfo``, RSA PKCS#1 v1.5.

bpftool signs with ``CMS_DETACHED|CMS_BINARY|CMS_NOCERTS|CMS_NOATTR`` and
names the signer by subject key identifier.  ``cryptography``'s
``PKCS7SignatureBuilder`` (used here to make the signature, options
DetachedSignature, NoAttributes, NoCerts, Binary) names it by issuer and
serial number; sigbpf re-labels the one ``SignerInfo`` to the subject key
identifier (SignerInfo and SignedData version 3, as RFC 5652 requires) when
the certificate has one, so that its signatures look like bpftool's.  The RSA
signature value is unchanged by that: without signed attributes it covers only
the content.  The kernel's PKCS#7 parser and ``verify`` accept both forms.

``cryptography`` 48 has no public PKCS#7 verification, so ``parse_signature``
reads the structure with ``asn1crypto`` and ``verify_detached`` checks the RSA
signature over SHA-256 of the content with ``cryptography``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from sigbpf.errors import FormatError, SignatureError


if TYPE_CHECKING:  # pragma: no cover
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa


class SignerIdKind(IntEnum):
    """How a SignerInfo names its signer; the value is the SignerInfo version RFC 5652 requires."""

    ISSUER_AND_SERIAL = 1
    SUBJECT_KEY_IDENTIFIER = 3


#: Object identifiers accepted for the signer's signature algorithm (asn1crypto names).
_RSA_SIGNATURE_ALGORITHMS = ("rsassa_pkcs1v15", "sha256_rsa")


@dataclass(frozen=True, slots=True)
class DetachedSignature:
    """What a parsed signature says: who signed, and the RSA signature value."""

    signer_kind: SignerIdKind
    key_id: bytes | None          # subject key identifier, for SUBJECT_KEY_IDENTIFIER
    issuer_der: bytes | None      # DER of the issuer Name, for ISSUER_AND_SERIAL
    serial: int | None            # serial number, for ISSUER_AND_SERIAL
    signature: bytes              # the raw RSA PKCS#1 v1.5 signature

    def signer(self) -> str:
        """The signer as a short text (for messages)."""
        if self.signer_kind is SignerIdKind.SUBJECT_KEY_IDENTIFIER:
            return f"key id {self.key_id.hex() if self.key_id else '?'}"
        return f"issuer+serial {self.serial:x}" if self.serial is not None else "issuer+serial ?"


def _bad(what: str) -> FormatError:
    return FormatError(f"not a signature in the kernel's PKCS#7 format: {what}")


def _check_null_params(algorithm: object, what: str) -> None:
    from asn1crypto import core

    params = algorithm["parameters"]
    if not isinstance(params, core.Void) and params.dump() != b"\x05\x00":
        raise _bad(f"{what} has parameters other than NULL")


def parse_signature(der: bytes) -> DetachedSignature:
    """Parse and check the structure of a detached signature (no cryptography yet).

    Every deviation from the kernel's format above is a :class:`FormatError`
    naming it; trailing bytes after the DER are rejected.
    """
    from asn1crypto import cms, core

    if not der:
        raise _bad("empty")
    try:
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "signed_data":
            raise _bad(f"content type is {info['content_type'].dotted}, not signedData")
        signed = info["content"]
        if signed["version"].native not in ("v1", "v3"):
            raise _bad(f"SignedData version {signed['version'].native}")
        digests = signed["digest_algorithms"]
        if len(digests) != 1 or digests[0]["algorithm"].native != "sha256":
            raise _bad("digest algorithms are not exactly SHA-256")
        _check_null_params(digests[0], "digest algorithm")
        encap = signed["encap_content_info"]
        if encap["content_type"].native != "data":
            raise _bad(f"content type {encap['content_type'].dotted} is not data")
        if not isinstance(encap["content"], core.Void):
            raise _bad("content is attached, not detached")
        if not isinstance(signed["certificates"], core.Void) and len(signed["certificates"]):
            raise _bad("it carries certificates (the kernel's format has none)")
        if not isinstance(signed["crls"], core.Void) and len(signed["crls"]):
            raise _bad("it carries CRLs")
        signers = signed["signer_infos"]
        if len(signers) != 1:
            raise _bad(f"{len(signers)} signers, not exactly one")
        signer = signers[0]
        if signer["digest_algorithm"]["algorithm"].native != "sha256":
            raise _bad("signer's digest algorithm is not SHA-256")
        _check_null_params(signer["digest_algorithm"], "signer's digest algorithm")
        if not isinstance(signer["signed_attrs"], core.Void):
            raise _bad("it has signed attributes (the kernel's format has none)")
        if not isinstance(signer["unsigned_attrs"], core.Void):
            raise _bad("it has unsigned attributes")
        sig_alg = signer["signature_algorithm"]
        if sig_alg["algorithm"].native not in _RSA_SIGNATURE_ALGORITHMS:
            raise _bad(f"signature algorithm {sig_alg['algorithm'].dotted} is not RSA PKCS#1 v1.5")
        _check_null_params(sig_alg, "signature algorithm")
        sid = signer["sid"]
        version = signer["version"].native
        if sid.name == "subject_key_identifier":
            if version != "v3" or signed["version"].native != "v3":
                raise _bad("a subject key identifier signer needs SignerInfo/SignedData version 3")
            kind, key_id, issuer, serial = (SignerIdKind.SUBJECT_KEY_IDENTIFIER,
                                            sid.chosen.native, None, None)
        else:
            if version != "v1":
                raise _bad("an issuer+serial signer needs SignerInfo version 1")
            kind, key_id = SignerIdKind.ISSUER_AND_SERIAL, None
            issuer = sid.chosen["issuer"].dump()
            serial = sid.chosen["serial_number"].native
        value = signer["signature"].native
        if not value:
            raise _bad("empty signature value")
        return DetachedSignature(kind, key_id, issuer, serial, value)
    except FormatError:
        raise
    except Exception as err:  # asn1crypto raises ValueError/TypeError/KeyError on bad DER
        raise _bad(f"bad DER ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
                   ) from None


def sign_detached(content: bytes, key: "rsa.RSAPrivateKey", cert: "x509.Certificate", *,
                  signer_id: SignerIdKind | None = None) -> bytes:
    """A detached SHA-256 PKCS#7 signature of *content*, DER, in the kernel's format.

    *signer_id* defaults to the subject key identifier when the certificate has
    one (as bpftool), else issuer and serial number.
    """
    from asn1crypto import cms
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs7

    from sigbpf.sign.keys import subject_key_identifier

    options = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.NoAttributes,
               pkcs7.PKCS7Options.NoCerts, pkcs7.PKCS7Options.Binary]
    der = (pkcs7.PKCS7SignatureBuilder().set_data(bytes(content))
           .add_signer(cert, key, hashes.SHA256())
           .sign(serialization.Encoding.DER, options))
    ski = subject_key_identifier(cert)
    if signer_id is None:
        signer_id = SignerIdKind.SUBJECT_KEY_IDENTIFIER if ski else SignerIdKind.ISSUER_AND_SERIAL
    if signer_id is SignerIdKind.ISSUER_AND_SERIAL:
        return der
    if ski is None:
        raise SignatureError("certificate has no subjectKeyIdentifier to name the signer by")
    info = cms.ContentInfo.load(der)
    signed = info["content"]
    signer = signed["signer_infos"][0]
    signer["sid"] = cms.SignerIdentifier({"subject_key_identifier": ski})
    signer["version"] = "v3"
    signed["version"] = "v3"
    return info.dump(force=True)


def signer_matches(parsed: DetachedSignature, cert: "x509.Certificate") -> bool:
    """Does the signature name *cert* as its signer?"""
    from sigbpf.sign.keys import subject_key_identifier

    if parsed.signer_kind is SignerIdKind.SUBJECT_KEY_IDENTIFIER:
        return parsed.key_id is not None and parsed.key_id == subject_key_identifier(cert)
    return parsed.serial == cert.serial_number and parsed.issuer_der == cert.issuer.public_bytes()


def verify_detached(signature: bytes, content: bytes, cert: "x509.Certificate", *,
                    what: str = "signature") -> DetachedSignature:
    """Check that *signature* is *cert*'s key's signature over exactly *content*.

    A malformed signature is a :class:`FormatError`; a signature by another key
    or over other bytes is a :class:`SignatureError` whose message starts with
    *what* (e.g. ``"program 'prog' instructions signature"``).
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from sigbpf.sign.keys import describe_certificate

    try:
        parsed = parse_signature(signature)
    except FormatError as err:
        raise FormatError(f"{what}: {err.message}") from None
    if not signer_matches(parsed, cert):
        raise SignatureError(f"{what} was made by another key ({parsed.signer()}), "
                             f"not by {describe_certificate(cert)}")
    try:
        cert.public_key().verify(parsed.signature, bytes(content), padding.PKCS1v15(),
                                 hashes.SHA256())
    except InvalidSignature:
        raise SignatureError(f"{what} does not match the signed bytes "
                             "(they were changed, or it signs other bytes)") from None
    return parsed
