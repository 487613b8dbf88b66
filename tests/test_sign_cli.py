"""``sigbpf sign`` / ``verify`` / ``load --cert`` from the command line: representative cases.

The exit-code contract: 0 only for an intact artifact signed by that key; 1 for
a signature that does not hold, naming what does not match; 2 for unreadable or
malformed input and unusable key material.  Always one line on stderr.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import assert_one_line_error
from sigbpf.artifact.build import build_from_file
from sigbpf.artifact.format import Artifact
from sigbpf.sign.signed import split_signed
from sign_support import sign_both_layouts, sign_file, swap_func_names

pytest_plugins = ["sign_fixtures"]  # key pairs and key files


@pytest.fixture(scope="module")
def work(tmp_path_factory, bpf_object, cli, key_files):
    """An unsigned artifact and its signed forms (made through the CLI)."""
    out = tmp_path_factory.mktemp("sign-cli")
    unsigned = out / "rcu.sbpf"
    unsigned.write_bytes(build_from_file(bpf_object("kfunc_rcu_maps")).encode())
    return out, sign_both_layouts(cli, unsigned, key_files["key"], key_files["cert_der"])


def tampered(out, source, name: str, change) -> str:
    art = Artifact.decode(source.read_bytes())
    sig = art.extensions[-1]
    unsigned, _ = split_signed(art)
    path = out / name
    path.write_bytes(change(unsigned).with_extension(sig).encode())
    return path


def test_sign_and_verify(cli, work, key_files):
    _, paths = work
    for layout in ("insns", "insns+metadata"):
        for cert in (key_files["cert"], key_files["cert_der"]):
            proc = cli("verify", paths[layout], "--cert", cert)
            assert proc.returncode == 0, proc.stderr
            assert "OK, verified in userspace" in proc.stdout
        proc = cli("verify", paths[layout], "--cert", key_files["cert"], "--json")
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["verified"] is True and report["layout"] == layout
        assert report["programs"][0]["name"] == "rcu_maps"
        assert report["programs"][0]["kernel_checkable"] is (layout == "insns")


def test_sign_with_json_and_der_key(cli, work, key_files, tmp_path):
    _, paths = work
    out = tmp_path / "s.signed"
    proc = cli("sign", paths["unsigned"], "--key", key_files["key_der"], "--cert",
               key_files["cert"], "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"] == str(out)
    # Deterministic: PKCS#1 v1.5 and the canonical encoding give the same bytes.
    assert out.read_bytes() == paths["insns"].read_bytes()


def test_verify_names_what_does_not_match(cli, work, key_files, other_key_files):
    out, paths = work
    signed = paths["insns"]
    assert_one_line_error(cli("verify", signed, "--cert", other_key_files["cert"]), 1,
                          "made by another key")
    renamed = tampered(out, signed, "renamed", lambda a: dataclasses.replace(
        a, btf=swap_func_names(a.btf, "bpf_rcu_read_lock", "bpf_rcu_read_unlock")))
    assert_one_line_error(cli("verify", renamed, "--cert", key_files["cert"]), 1,
                          "program BTF: changed since signing")
    # Why it matters: the instructions (all a 6.18 kernel's signature check covers) are the
    # signed ones, and their program signature still holds; but the same `call` now resolves
    # to the other kfunc.  Only the signed metadata (program BTF) catches it.
    from sigbpf.sign.pkcs7 import verify_detached
    from sigbpf.sign.keys import load_certificate

    (orig_u, orig_sec), (ren_u, _) = (split_signed(Artifact.decode(p.read_bytes()))
                                       for p in (signed, renamed))
    assert ren_u.programs[0].insn_bytes == orig_u.programs[0].insn_bytes
    verify_detached(orig_sec.program_signatures[0], ren_u.programs[0].insn_bytes,
                    load_certificate(key_files["cert"].read_bytes()))

    def resolved(path):
        proc = cli("resolve", path, "--json")
        assert proc.returncode == 0, proc.stderr
        return {c["insn"]: c["name"] for c in json.loads(proc.stdout)["calls"]}

    before, after = resolved(signed), resolved(renamed)
    assert set(before.values()) == {"bpf_rcu_read_lock", "bpf_rcu_read_unlock"}
    assert all(after[insn] != name for insn, name in before.items()), (before, after)

    def new_data(a):
        maps = list(a.maps)
        i = next(i for i, m in enumerate(maps) if m.initial_data)
        maps[i] = dataclasses.replace(maps[i], initial_data=bytes(len(maps[i].initial_data)))
        return dataclasses.replace(a, maps=tuple(maps))

    proc = cli("verify", tampered(out, paths["insns+metadata"], "data", new_data),
               "--cert", key_files["cert"])
    assert_one_line_error(proc, 1, "initial data: changed since signing")
    assert_one_line_error(cli("verify", paths["unsigned"], "--cert", key_files["cert"]), 1,
                          "not signed")
    # A byte of the signature section (its last byte is in a program signature).
    data = bytearray(signed.read_bytes())
    data[-1] ^= 0xFF
    flipped = out / "flipped"
    flipped.write_bytes(bytes(data))
    assert_one_line_error(cli("verify", flipped, "--cert", key_files["cert"]), 1,
                          "program 0 'rcu_maps' signature does not match")


@pytest.mark.parametrize("layout", ["insns", "insns+metadata"])
def test_verify_and_load_accept_signatures_made_by_the_kernels_sign_file(cli, work, key_files,
                                                                         tmp_path, layout, kernel):
    """Every signature of the section remade by the kernel's `sign-file -d sha256 -k` over the
    payload FORMAT.md 5.4 defines (insns; metadata blob; insns || metadata blob): `verify` and
    `load --cert` accept the artifact, and say nothing differs."""
    from sigbpf.artifact.format import ExtensionSection
    from sigbpf.sign.payload import SignatureLayout, signed_bytes
    from sigbpf.sign.signed import SIGNATURE_SECTION

    _, paths = work
    unsigned, section = split_signed(Artifact.decode(paths[layout].read_bytes()))
    theirs = dataclasses.replace(
        section,
        metadata_signature=(sign_file(section.metadata_blob, key_files["key"], key_files["cert"],
                                      tmp_path / "meta", keyid=True)
                            if section.layout is SignatureLayout.INSNS else b""),
        program_signatures=tuple(
            sign_file(signed_bytes(section.layout, p.insn_bytes, section.metadata_blob),
                      key_files["key"], key_files["cert_der"], tmp_path / f"p{i}", keyid=True)
            for i, p in enumerate(unsigned.programs)))
    path = tmp_path / "sign-file.signed"
    path.write_bytes(unsigned.with_extension(
        ExtensionSection(SIGNATURE_SECTION, theirs.encode())).encode())
    proc = cli("verify", path, "--cert", key_files["cert"])
    assert proc.returncode == 0, proc.stderr
    assert f"OK, verified in userspace: layout {layout}" in proc.stdout
    # Not the same DER (sign-file leaves the digest algorithm's NULL parameters out), but the
    # same signer (key id) and the same RSA value: PKCS#1 v1.5 is deterministic.
    from sigbpf.sign.pkcs7 import parse_signature

    for mine, made in zip(section.program_signatures, theirs.program_signatures):
        assert parse_signature(mine).signature == parse_signature(made).signature
        assert parse_signature(mine).key_id == parse_signature(made).key_id
    proc = cli("load", path, "--cert", key_files["cert"], "--run", "--ctx", "020000000a000000")
    assert proc.returncode == 0, proc.stderr
    assert "retval 1142" in proc.stdout


@pytest.mark.parametrize("layout", ["insns", "insns+metadata"])
def test_verify_extract_gives_openssl_the_signed_payloads(cli, work, key_files, other_key_files,
                                                         tmp_path, layout):
    """`verify --extract DIR`: every signature and the bytes it covers, from the command line;
    `openssl cms -verify -binary -inform DER -noverify -content PAYLOAD -certfile CERT`
    accepts each pair (issue 4's cross-check), and refuses a payload changed by one byte."""
    from sign_support import openssl

    _, paths = work
    out = tmp_path / "parts"
    proc = cli("verify", paths[layout], "--cert", key_files["cert"], "--extract", out, "--json")
    assert proc.returncode == 0, proc.stderr
    parts = json.loads(proc.stdout)["extracted"]
    stems = sorted(p.name for p in out.iterdir())
    if layout == "insns":
        assert [p["what"] for p in parts] == ["metadata blob", "program 0 'rcu_maps'"]
        assert stems == ["metadata.p7s", "metadata.payload", "program-0.p7s", "program-0.payload"]
    else:
        assert [p["what"] for p in parts] == ["program 0 'rcu_maps'"]
        assert stems == ["program-0.p7s", "program-0.payload"]
    unsigned, section = split_signed(Artifact.decode(paths[layout].read_bytes()))
    insns = unsigned.programs[0].insn_bytes
    program_payload = (out / "program-0.payload").read_bytes()
    assert program_payload == (insns if layout == "insns" else insns + section.metadata_blob)
    for part in parts:
        proc = openssl("cms", "-verify", "-binary", "-inform", "DER", "-noverify",
                       "-in", part["signature"], "-content", part["payload"],
                       "-certfile", key_files["cert"], "-out", "/dev/null")
        assert proc.returncode == 0 and b"Verification successful" in proc.stderr, proc.stderr
        changed = tmp_path / "changed"
        data = bytearray(open(part["payload"], "rb").read())
        data[-1] ^= 1
        changed.write_bytes(bytes(data))
        assert openssl("cms", "-verify", "-binary", "-inform", "DER", "-noverify",
                       "-in", part["signature"], "-content", changed,
                       "-certfile", key_files["cert"], "-out", "/dev/null").returncode != 0
    # Nothing is extracted from an artifact that does not verify; a file is not a directory.
    assert_one_line_error(cli("verify", paths[layout], "--cert", other_key_files["cert"],
                              "--extract", tmp_path / "never"), 1, "made by another key")
    assert not (tmp_path / "never").exists()
    assert_one_line_error(cli("verify", paths[layout], "--cert", key_files["cert"],
                              "--extract", paths["unsigned"]), 2, "not a directory")


def test_verify_bad_input_is_exit_2(cli, work, key_files, bad_cert_files, tmp_path):
    _, paths = work
    signed = paths["insns"].read_bytes()
    for name, data in (("truncated", signed[:-9]), ("appended", signed + b"\0" * 8),
                       ("garbage", b"\x7fELF not an artifact"), ("empty", b"")):
        (tmp_path / name).write_bytes(data)
        assert_one_line_error(cli("verify", tmp_path / name, "--cert", key_files["cert"]), 2,
                              str(tmp_path / name))
    assert_one_line_error(cli("verify", tmp_path / "missing", "--cert", key_files["cert"]), 2,
                          "missing")
    assert_one_line_error(cli("verify", paths["insns"], "--cert", key_files["key"]), 2,
                          "not an X.509 certificate")
    for name, message in (("expired", "certificate expired on"), ("future", "not valid yet"),
                          ("nonsigning", "not a signing certificate")):
        proc = cli("verify", paths["insns"], "--cert", bad_cert_files[name]["cert"])
        assert_one_line_error(proc, 2, message)
        assert str(bad_cert_files[name]["cert"]) in proc.stderr
    proc = cli("verify", tmp_path / "garbage", "--cert", key_files["cert"], "--json")
    assert_one_line_error(proc, 2)
    assert json.loads(proc.stdout)["verified"] is False


def test_sign_refusals_leave_no_output(cli, work, key_files, other_key_files, bad_cert_files,
                                       tmp_path):
    _, paths = work
    out = tmp_path / "never.signed"
    cases = [
        (("--key", other_key_files["key"], "--cert", key_files["cert"]), 2, "does not belong"),
        (("--key", bad_cert_files["expired"]["key"], "--cert", bad_cert_files["expired"]["cert"]),
         2, "expired"),
        (("--key", bad_cert_files["nonsigning"]["key_der"], "--cert",
          bad_cert_files["nonsigning"]["cert_der"]), 2, "not a signing certificate"),
        (("--key", key_files["cert"], "--cert", key_files["cert"]), 2, "not a private key"),
    ]
    # A key with a passphrase and a key that is not RSA (outside tmp_path: it must stay empty).
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from sigbpf.sign.keys import load_private_key

    keydir = work[0]
    encrypted, ec_key = keydir / "encrypted.key.pem", keydir / "ec.key.der"
    encrypted.write_bytes(load_private_key(key_files["key"].read_bytes()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    ec_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    cases += [(("--key", encrypted, "--cert", key_files["cert"]), 2, "encrypted"),
              (("--key", ec_key, "--cert", key_files["cert"]), 2, "not RSA")]
    for extra, code, message in cases:
        proc = cli("sign", paths["unsigned"], *extra, "-o", out)
        assert_one_line_error(proc, code, message)
        # Names the file at fault: the certificate for its policy, else the key.
        fault = extra[3] if message in ("expired", "not a signing certificate") else extra[1]
        assert str(fault) in proc.stderr, proc.stderr
        assert not out.exists()
    assert_one_line_error(cli("sign", paths["insns"], "--key", key_files["key"], "--cert",
                              key_files["cert"], "-o", out), 2, "already signed")
    assert_one_line_error(cli("sign", paths["unsigned"], "--key", key_files["key"], "--cert",
                              key_files["cert"], "--layout", "bogus", "-o", out), 2)
    assert not out.exists()
    assert not list(tmp_path.iterdir())  # no temporary files left behind either


# ------------------------------------------------------------------ load --cert


def test_load_runs_a_verified_artifact(cli, work, key_files, kernel):
    _, paths = work
    proc = cli("load", paths["insns"], "--cert", key_files["cert"], "--run",
               "--ctx", "020000000a000000")
    assert proc.returncode == 0, proc.stderr
    assert "signature verified in userspace" in proc.stdout
    assert "retval 1142" in proc.stdout  # 40 + 2 + 100 + 1000 (kfunc_rcu_maps.c)


def test_load_refuses_tampered_artifacts_before_the_kernel(cli, work, key_files, other_key_files,
                                                           kernel):
    out, paths = work
    renamed = tampered(out, paths["insns"], "renamed-load", lambda a: dataclasses.replace(
        a, btf=swap_func_names(a.btf, "bpf_rcu_read_lock", "bpf_rcu_read_unlock")))
    cases = [
        (renamed, key_files["cert"], 1, "program BTF: changed since signing"),
        (paths["insns"], other_key_files["cert"], 1, "made by another key"),
        (paths["unsigned"], key_files["cert"], 1, "not signed"),
    ]
    data = bytearray(paths["insns+metadata"].read_bytes())
    data[len(data) // 3] ^= 0x01
    flipped = out / "flipped-load"
    flipped.write_bytes(bytes(data))
    cases.append((flipped, key_files["cert"], None, None))
    for path, cert, code, message in cases:
        proc = cli("load", path, "--cert", cert, "--run")
        if code is None:
            assert proc.returncode in (1, 2), proc.stderr
            assert_one_line_error(proc, proc.returncode)
        else:
            assert_one_line_error(proc, code, message)
        # Nothing was resolved, loaded or run: the loader's report never started.
        assert proc.stdout == "", proc.stdout


def test_load_with_keyring_says_who_verified(cli, work, key_files, kernel):
    """6.18 here answers EOPNOTSUPP to a signed BPF_PROG_LOAD (KERNEL-FACTS.md): a clear
    refusal saying the kernel cannot check signatures and userspace verified it."""
    _, paths = work
    proc = cli("load", paths["insns"], "--cert", key_files["cert"], "--keyring", "session")
    if proc.returncode == 0:  # a kernel that checks signatures accepted it
        assert "signature verified in userspace" in proc.stdout
        return
    assert_one_line_error(proc, 1, "cannot check BPF program signatures")
    assert "userspace" in proc.stderr


def test_the_readmes_python_imports_resolve():
    """README.md's library examples import what exists (e.g. verify_signed from sigbpf.sign.verify)."""
    import importlib
    import re

    from conftest import ROOT

    lines = re.findall(r"^from (sigbpf[\w.]*) import ([\w, ]+)", (ROOT / "README.md").read_text(),
                       re.M)
    assert any(module == "sigbpf.sign.verify" for module, _ in lines)
    for module, names in lines:
        mod = importlib.import_module(module)
        for name in (n.strip() for n in names.split(",")):
            assert hasattr(mod, name), f"README: from {module} import {name}"
