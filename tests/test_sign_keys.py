"""Keys and certificates: ``sigbpf keygen``, loading PEM/DER, the certificate policy.

The reference is openssl: it must read what keygen writes and see the
extensions of the kernel's module-signing key (certs/default_x509.genkey).
"""

from __future__ import annotations

import datetime as dt
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import assert_one_line_error
from sigbpf.errors import KeyMaterialError, UsageError
from sigbpf.sign import keys
from sign_support import openssl

pytest_plugins = ["sign_fixtures"]  # key pairs and key files


def test_keygen_writes_kernel_style_key_and_cert(cli, tmp_path):
    out = tmp_path / "keys"
    proc = cli("keygen", "--out", out, "--bits", "2048", "--days", "30", "--subject", "My BPF key")
    assert proc.returncode == 0, proc.stderr
    for name in (keys.KEY_PEM, keys.KEY_DER, keys.CERT_PEM, keys.CERT_DER):
        assert (out / name).is_file()
    # The private key is readable by its owner only.
    assert stat.S_IMODE(os.stat(out / keys.KEY_PEM).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(out / keys.KEY_DER).st_mode) == 0o600
    # openssl reads both forms and sees what certs/default_x509.genkey asks for.
    text = openssl("x509", "-in", out / keys.CERT_DER, "-inform", "DER", "-noout", "-text").stdout.decode()
    assert "CN = My BPF key" in text
    assert "X509v3 Basic Constraints: critical" in text and "CA:FALSE" in text
    assert "Digital Signature" in text
    assert "X509v3 Subject Key Identifier" in text
    assert "X509v3 Authority Key Identifier" in text
    assert "Public-Key: (2048 bit)" in text
    pem_der = openssl("x509", "-in", out / keys.CERT_PEM, "-outform", "DER").stdout
    assert pem_der == (out / keys.CERT_DER).read_bytes()
    check = openssl("rsa", "-in", out / keys.KEY_DER, "-inform", "DER", "-check", "-noout")
    assert check.returncode == 0 and b"RSA key ok" in check.stdout
    # The key matches the certificate; the SKI is what the kernel uses as key id.
    pair = keys.load_key_pair((out / keys.KEY_PEM).read_bytes(), (out / keys.CERT_DER).read_bytes())
    ski = keys.subject_key_identifier(pair.cert)
    assert ski is not None and ski.hex().upper() in text.replace(":", "")
    validity = pair.cert.not_valid_after_utc - pair.cert.not_valid_before_utc
    assert validity == dt.timedelta(days=30)


# certs/default_x509.genkey of the kernel (module signing), with our common name: the
# reference configuration for `openssl req -x509` in the test below.
KERNEL_GENKEY = """\
[ req ]
default_bits = 4096
distinguished_name = req_distinguished_name
prompt = no
string_mask = utf8only
x509_extensions = myexts

[ req_distinguished_name ]
CN = {cn}

[ myexts ]
basicConstraints=critical,CA:FALSE
keyUsage=digitalSignature
subjectKeyIdentifier=hash
authorityKeyIdentifier={aki}
"""


def test_keygen_certificate_matches_openssl_req_with_the_kernels_genkey(cli, tmp_path):
    """The kernel makes its module-signing certificate with `openssl req -x509 -config
    x509.genkey` (certs/Makefile).  Made from the same key, openssl's certificate and
    keygen's carry the same extensions, byte for byte: basicConstraints critical CA:FALSE,
    keyUsage digitalSignature (not critical), the same SKI (SHA-1 of the public key).
    authorityKeyIdentifier=keyid: OpenSSL 3 leaves it out of a self-signed certificate,
    OpenSSL 1.1 (and `keyid:always`) writes keyid = SKI, which is what keygen writes."""
    from cryptography import x509

    out = tmp_path / "k"
    assert cli("keygen", "--out", out, "--bits", "2048", "--subject", "genkey check").returncode == 0
    ours = x509.load_der_x509_certificate((out / keys.CERT_DER).read_bytes())
    refs = {}
    for aki in ("keyid", "keyid:always"):
        config = tmp_path / f"x509-{aki.replace(':', '-')}.genkey"
        config.write_text(KERNEL_GENKEY.format(cn="genkey check", aki=aki))
        ref = tmp_path / f"ref-{aki.replace(':', '-')}.der"
        proc = openssl("req", "-new", "-nodes", "-utf8", "-sha256", "-days", "36500", "-batch",
                       "-x509", "-config", config, "-key", out / keys.KEY_PEM,
                       "-outform", "DER", "-out", ref)
        assert proc.returncode == 0, proc.stderr
        refs[aki] = x509.load_der_x509_certificate(ref.read_bytes())

    def extensions(cert):
        return {e.oid.dotted_string: (e.critical, e.value.public_bytes()) for e in cert.extensions}

    mine = extensions(ours)
    assert mine == extensions(refs["keyid:always"])
    plain = extensions(refs["keyid"])
    aki_oid = x509.oid.ExtensionOID.AUTHORITY_KEY_IDENTIFIER.dotted_string
    assert {k: v for k, v in mine.items() if k != aki_oid} == \
        {k: v for k, v in plain.items() if k != aki_oid}
    assert aki_oid not in plain or plain[aki_oid] == mine[aki_oid]
    aki = ours.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == keys.subject_key_identifier(ours)
    assert aki.authority_cert_issuer is None and aki.authority_cert_serial_number is None
    for ref in refs.values():
        assert ref.subject == ours.subject == ours.issuer
        assert ref.version == ours.version == x509.Version.v3


def test_keygen_refuses_to_overwrite_and_bad_arguments(cli, tmp_path):
    out = tmp_path / "k"
    assert cli("keygen", "--out", out, "--bits", "2048").returncode == 0
    before = (out / keys.KEY_PEM).read_bytes()
    assert_one_line_error(cli("keygen", "--out", out, "--bits", "2048"), 2, "--force")
    assert (out / keys.KEY_PEM).read_bytes() == before
    assert cli("keygen", "--out", out, "--bits", "2048", "--force").returncode == 0
    assert (out / keys.KEY_PEM).read_bytes() != before
    assert_one_line_error(cli("keygen", "--out", tmp_path / "x", "--bits", "512"), 2, "--bits 512")
    assert_one_line_error(cli("keygen", "--out", tmp_path / "x", "--days", "0"), 2, "--days 0")
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert_one_line_error(cli("keygen", "--out", afile, "--bits", "2048"), 2, "not a directory")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("key_form,cert_form", [("key", "cert"), ("key_der", "cert_der"),
                                                 ("key", "cert_der"), ("key_der", "cert")])
def test_pem_and_der_load_to_the_same_pair(key_files, key_pair, key_form, cert_form):
    pair = keys.load_key_pair(key_files[key_form].read_bytes(), key_files[cert_form].read_bytes())
    assert pair.cert == key_pair.cert
    assert pair.key.private_numbers() == key_pair.key.private_numbers()


def test_combined_pem_like_the_kernels_signing_key(key_files, key_pair):
    # certs/signing_key.pem holds the key and the certificate in one file.
    both = key_files["key"].read_bytes() + key_files["cert"].read_bytes()
    pair = keys.load_key_pair(both, both)
    assert pair.cert == key_pair.cert


def test_pkcs1_traditional_key_loads(key_pair):
    pkcs1 = key_pair.key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption())
    assert keys.load_private_key(pkcs1).private_numbers() == key_pair.key.private_numbers()


def test_unusable_key_material_is_a_clear_error(key_pair, key_files):
    encrypted = key_pair.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"))
    with pytest.raises(KeyMaterialError, match="encrypted"):
        keys.load_private_key(encrypted, file="enc.pem")
    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(KeyMaterialError, match="not RSA"):
        keys.load_private_key(ec_key)
    with pytest.raises(KeyMaterialError, match="not a private key"):
        keys.load_private_key(b"garbage\x00\x01")
    with pytest.raises(KeyMaterialError, match="not a private key"):
        keys.load_private_key(key_files["cert"].read_bytes())
    with pytest.raises(KeyMaterialError, match="not an X.509 certificate"):
        keys.load_certificate(key_files["key_der"].read_bytes())
    with pytest.raises(KeyMaterialError, match="not an X.509 certificate") as info:
        keys.load_certificate(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                              file="c.pem")
    assert str(info.value).startswith("c.pem: ")


def test_certificate_policy(bad_cert_files, key_pair, other_key_pair):
    keys.check_certificate(key_pair.cert)
    with pytest.raises(KeyMaterialError, match="certificate expired on"):
        keys.check_certificate(keys.load_certificate(bad_cert_files["expired"]["cert"].read_bytes()))
    with pytest.raises(KeyMaterialError, match="not valid yet"):
        keys.check_certificate(keys.load_certificate(bad_cert_files["future"]["cert"].read_bytes()))
    with pytest.raises(KeyMaterialError, match="not a signing certificate"):
        keys.check_certificate(
            keys.load_certificate(bad_cert_files["nonsigning"]["cert_der"].read_bytes()))
    with pytest.raises(KeyMaterialError, match="does not belong to the certificate"):
        keys.check_key_matches_certificate(other_key_pair.key, key_pair.cert)


def test_generate_rejects_bad_parameters():
    with pytest.raises(UsageError):
        keys.generate_key_pair(bits=1024)
    with pytest.raises(UsageError):
        keys.generate_key_pair(subject="")


def test_the_kernel_takes_the_certificate_as_an_asymmetric_key(cli, tmp_path, kernel):
    """The running kernel parses keygen's DER certificate (add_key "asymmetric") and names
    the key by the subject key identifier that sigbpf's signatures carry."""
    import shutil
    import subprocess

    keyctl = shutil.which("keyctl")
    if keyctl is None:
        pytest.fail("keyctl is not installed (scripts/deps.sh installs keyutils)")
    out = tmp_path / "k"
    assert cli("keygen", "--out", out, "--bits", "2048", "--subject", "kernel check").returncode == 0
    cert = keys.load_certificate((out / keys.CERT_DER).read_bytes())
    ski = keys.subject_key_identifier(cert)
    # A new anonymous session keyring: nothing is left in the caller's keyrings.
    script = f'id=$({keyctl} padd asymmetric "" @s < "{out / keys.CERT_DER}") && {keyctl} describe "$id"'
    proc = subprocess.run([keyctl, "session", "-", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"asymmetric: kernel check: {ski.hex()}" in proc.stdout
