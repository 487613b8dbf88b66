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
from sign_support import openssl, sign_file

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


@pytest.mark.parametrize("keyid", [False, True], ids=["issuer-serial", "keyid"])
def test_sigbpf_accepts_the_kernels_sign_file_signatures(tmp_path, key_pair, key_files, keyid):
    """The kernel's own tool, `scripts/sign-file -d sha256 [-k] KEY CERT FILE` (what signs
    modules: CMS_NOCERTS|CMS_BINARY|CMS_DETACHED, no attributes), over the same payload."""
    for cert in (key_files["cert"], key_files["cert_der"]):
        sig = sign_file(PAYLOAD, key_files["key"], cert, tmp_path, keyid=keyid)
        parsed = pkcs7.verify_detached(sig, PAYLOAD, key_pair.cert)
        assert parsed.signer_kind is (pkcs7.SignerIdKind.SUBJECT_KEY_IDENTIFIER if keyid
                                      else pkcs7.SignerIdKind.ISSUER_AND_SERIAL)
        # The same RSA signature value as sigbpf's (PKCS#1 v1.5 over SHA-256 of the payload).
        ours_der = pkcs7.sign_detached(PAYLOAD, key_pair.key, key_pair.cert)
        ours = pkcs7.parse_signature(ours_der)
        assert parsed.signature == ours.signature
        if keyid:  # the same structure but for two NULL digest-algorithm parameters (FORMAT.md 5.2)
            assert len(ours_der) == len(sig) + 4
        with pytest.raises(SignatureError, match="does not match the signed bytes"):
            pkcs7.verify_detached(sig, PAYLOAD[:-1], key_pair.cert)


def test_the_kernels_rsa_accepts_sigbpf_signature_values(tmp_path, key_pair, key_files, kernel):
    """The running kernel's asymmetric key (the certificate, added with add_key) checks the RSA
    value of sigbpf's signature over SHA-256 of the payload: `keyctl pkey_verify ... enc=pkcs1
    hash=sha256` (KEYCTL_PKEY_VERIFY), the primitive its PKCS#7 verification uses.  A changed
    digest is refused (EKEYREJECTED).  (BPF_PROG_LOAD itself answers EOPNOTSUPP here.)"""
    import hashlib
    import shutil
    import subprocess

    keyctl = shutil.which("keyctl")
    if keyctl is None:
        pytest.fail("keyctl is not installed (scripts/deps.sh installs keyutils)")
    value = pkcs7.parse_signature(pkcs7.sign_detached(PAYLOAD, key_pair.key, key_pair.cert)).signature
    (tmp_path / "sig").write_bytes(value)
    (tmp_path / "digest").write_bytes(hashlib.sha256(PAYLOAD).digest())
    (tmp_path / "other").write_bytes(hashlib.sha256(PAYLOAD + b"x").digest())
    script = (f'id=$({keyctl} padd asymmetric "" @s < "{key_files["cert_der"]}") || exit 9; '
              f'{keyctl} pkey_verify "$id" 0 "{tmp_path / "digest"}" "{tmp_path / "sig"}" '
              f'enc=pkcs1 hash=sha256 || exit 3; '
              f'{keyctl} pkey_verify "$id" 0 "{tmp_path / "other"}" "{tmp_path / "sig"}" '
              f'enc=pkcs1 hash=sha256 && exit 4; exit 0')
    # A new anonymous session keyring: nothing is left in the caller's keyrings.
    proc = subprocess.run([keyctl, "session", "-", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert "rejected" in proc.stderr.lower(), proc.stderr


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
