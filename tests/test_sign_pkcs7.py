"""PKCS#7 in the kernel's format, cross-checked with openssl both ways.

The kernel format (KERNEL-FACTS.md "Signing"): detached, SHA-256, content type
data, no signed attributes, no certificates; bpftool names the signer by
subject key identifier (openssl ``-keyid``), the kernel also accepts issuer and
serial number.
"""

from __future__ import annotations

import pytest
from asn1crypto import cms

from sigbpf.errors import FormatError, SignatureError
from sigbpf.sign import pkcs7
from sign_support import openssl

pytest_plugins = ["sign_fixtures"]  # key pairs and key files

PAYLOAD = bytes(range(256)) * 5 + b"\x95\x00\x00\x00\x00\x00\x00\x00"

OPENSSL_VERIFY = ("cms", "-verify", "-binary", "-inform", "DER", "-noverify")


def openssl_verify(sig_path, payload_path, cert_path):
    return openssl(*OPENSSL_VERIFY, "-in", sig_path, "-content", payload_path,
                   "-certfile", cert_path, "-out", "/dev/null")


@pytest.fixture()
def payload_file(tmp_path):
    path = tmp_path / "payload"
    path.write_bytes(PAYLOAD)
    return path


@pytest.mark.parametrize("kind", list(pkcs7.SignerIdKind))
def test_openssl_accepts_sigbpf_signatures(tmp_path, payload_file, key_pair, key_files, kind):
    sig = pkcs7.sign_detached(PAYLOAD, key_pair.key, key_pair.cert, signer_id=kind)
    (tmp_path / "sig").write_bytes(sig)
    proc = openssl_verify(tmp_path / "sig", payload_file, key_files["cert"])
    assert proc.returncode == 0, proc.stderr
    assert b"Verification successful" in proc.stderr
    # Over other bytes, openssl refuses it too.
    other = tmp_path / "other"
    other.write_bytes(PAYLOAD[:-1] + b"\x01")
    assert openssl_verify(tmp_path / "sig", other, key_files["cert"]).returncode != 0
    # The structure is the kernel's format, as openssl prints it.
    printed = openssl("cms", "-cmsout", "-print", "-inform", "DER", "-in", tmp_path / "sig").stdout.decode()
    assert "eContent: <ABSENT>" in printed
    assert "signedAttrs:\n          <ABSENT>" in printed
    assert "certificates:\n      <ABSENT>" in printed
    assert "sha256" in printed and "pkcs7-data" in printed
    expect = "d.subjectKeyIdentifier" if kind is pkcs7.SignerIdKind.SUBJECT_KEY_IDENTIFIER \
        else "d.issuerAndSerialNumber"
    assert expect in printed


def test_default_signer_id_is_the_subject_key_identifier_like_bpftool(key_pair):
    parsed = pkcs7.parse_signature(pkcs7.sign_detached(PAYLOAD, key_pair.key, key_pair.cert))
    assert parsed.signer_kind is pkcs7.SignerIdKind.SUBJECT_KEY_IDENTIFIER


@pytest.mark.parametrize("keyid", [False, True])
def test_sigbpf_accepts_openssl_signatures(tmp_path, payload_file, key_pair, key_files, keyid):
    sig = tmp_path / "sig"
    proc = openssl("cms", "-sign", "-binary", "-nocerts", "-noattr", "-outform", "DER",
                   "-md", "sha256", "-signer", key_files["cert"], "-inkey", key_files["key"],
                   "-in", payload_file, "-out", sig, *(["-keyid"] if keyid else []))
    assert proc.returncode == 0, proc.stderr
    parsed = pkcs7.verify_detached(sig.read_bytes(), PAYLOAD, key_pair.cert)
    assert parsed.signer_kind is (pkcs7.SignerIdKind.SUBJECT_KEY_IDENTIFIER if keyid
                                  else pkcs7.SignerIdKind.ISSUER_AND_SERIAL)
    # PKCS#1 v1.5 is deterministic: the same RSA signature value as sigbpf's.
    ours = pkcs7.parse_signature(pkcs7.sign_detached(PAYLOAD, key_pair.key, key_pair.cert))
    assert parsed.signature == ours.signature
    with pytest.raises(SignatureError, match="does not match the signed bytes"):
        pkcs7.verify_detached(sig.read_bytes(), PAYLOAD + b"x", key_pair.cert)


def test_openssl_signatures_outside_the_kernel_format_are_refused(tmp_path, payload_file, key_files):
    with_attrs = tmp_path / "attrs"
    openssl("cms", "-sign", "-binary", "-nocerts", "-outform", "DER", "-md", "sha256",
            "-signer", key_files["cert"], "-inkey", key_files["key"], "-in", payload_file,
            "-out", with_attrs)
    with pytest.raises(FormatError, match="signed attributes"):
        pkcs7.parse_signature(with_attrs.read_bytes())
    with_certs = tmp_path / "certs"
    openssl("cms", "-sign", "-binary", "-noattr", "-outform", "DER", "-md", "sha256",
            "-signer", key_files["cert"], "-inkey", key_files["key"], "-in", payload_file,
            "-out", with_certs)
    with pytest.raises(FormatError, match="certificates"):
        pkcs7.parse_signature(with_certs.read_bytes())
    attached = tmp_path / "attached"
    openssl("cms", "-sign", "-binary", "-nodetach", "-nocerts", "-noattr", "-outform", "DER",
            "-md", "sha256", "-signer", key_files["cert"], "-inkey", key_files["key"],
            "-in", payload_file, "-out", attached)
    with pytest.raises(FormatError, match="attached"):
        pkcs7.parse_signature(attached.read_bytes())
    sha1 = tmp_path / "sha1"
    openssl("cms", "-sign", "-binary", "-nocerts", "-noattr", "-outform", "DER", "-md", "sha1",
            "-signer", key_files["cert"], "-inkey", key_files["key"], "-in", payload_file,
            "-out", sha1)
    with pytest.raises(FormatError, match="SHA-256"):
        pkcs7.parse_signature(sha1.read_bytes())


def test_wrong_key_and_other_payload(key_pair, other_key_pair):
    sig = pkcs7.sign_detached(PAYLOAD, other_key_pair.key, other_key_pair.cert)
    with pytest.raises(SignatureError, match="made by another key"):
        pkcs7.verify_detached(sig, PAYLOAD, key_pair.cert, what="program 'x' signature")
    # Another key that claims to be ours (same key id): the RSA check catches it.
    forged = cms.ContentInfo.load(sig)
    from sigbpf.sign.keys import subject_key_identifier
    forged["content"]["signer_infos"][0]["sid"] = cms.SignerIdentifier(
        {"subject_key_identifier": subject_key_identifier(key_pair.cert)})
    with pytest.raises(SignatureError, match="does not match the signed bytes"):
        pkcs7.verify_detached(forged.dump(force=True), PAYLOAD, key_pair.cert)
    good = pkcs7.sign_detached(PAYLOAD, key_pair.key, key_pair.cert)
    with pytest.raises(SignatureError, match="^metadata signature does not match"):
        pkcs7.verify_detached(good, b"another payload", key_pair.cert, what="metadata signature")


def test_every_byte_of_a_signature_matters(key_pair):
    """Flip each byte of both signer forms (three ways): never accepted."""
    for kind in pkcs7.SignerIdKind:
        sig = pkcs7.sign_detached(PAYLOAD, key_pair.key, key_pair.cert, signer_id=kind)
        pkcs7.verify_detached(sig, PAYLOAD, key_pair.cert)
        for i in range(len(sig)):
            for mask in (0x01, 0x80, 0xFF):
                bad = bytearray(sig)
                bad[i] ^= mask
                with pytest.raises((FormatError, SignatureError)):
                    pkcs7.verify_detached(bytes(bad), PAYLOAD, key_pair.cert)
        for cut in (0, 1, len(sig) // 2, len(sig) - 1):
            with pytest.raises(FormatError):
                pkcs7.verify_detached(sig[:cut], PAYLOAD, key_pair.cert)
        with pytest.raises(FormatError, match="bad DER"):
            pkcs7.verify_detached(sig + b"\x00", PAYLOAD, key_pair.cert)
