"""Signed loader files (sigbpf.loadergen.sign, docs/FORMAT.md 8.4): sign, verify, and the
kernel's own check of the loader's signature.

On the host (6.18, which cannot check signatures): the round trip, openssl's
``cms -verify`` over the bytes each protocol signs, tampering refused in
userspace, an older reader refusing a signed file, and the host kernel's
EOPNOTSUPP reported as such.  In the VM bench (Debian 7.3, which checks
signatures): the signed v1 loader of tests/progs/kfunc_rcu_maps.c loads and runs
with ``--keyring session`` (verified by userspace and the kernel), and each
tampered loader is refused with the errno the kernel answers (measured; the
answers are printed with ``pytest -s`` and recorded as properties).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, assert_one_line_error
from sign_support import openssl

pytest_plugins = ["sign_fixtures"]  # key pairs

CTX = "2a0000000a000000"
RCU_MAPS = 40 + 2 + 100 + 1000   # tests/test_loadergen.py: what rcu_maps returns


@pytest.fixture(scope="module")
def loaders(bpf_object, tmp_path_factory, key_pair) -> dict[str, Path]:
    """kfunc_rcu_maps' loaders, unsigned and signed (v1, v2), as files."""
    from sigbpf.artifact.build import build_from_file
    from sigbpf.loadergen.generate import generate
    from sigbpf.loadergen.sign import sign_loader

    out = tmp_path_factory.mktemp("loaders")
    art = build_from_file(bpf_object("kfunc_rcu_maps"))
    files = {}
    for protocol in (1, 2):
        data = generate(art, protocol).encode()
        (out / f"v{protocol}.sbpl").write_bytes(data)
        (out / f"v{protocol}.signed").write_bytes(sign_loader(data, key_pair.key, key_pair.cert))
        files[f"v{protocol}"] = out / f"v{protocol}.sbpl"
        files[f"v{protocol}.signed"] = out / f"v{protocol}.signed"
    return files


def _variant(path: Path, out: Path, **changes) -> Path:
    """The signed loader at *path* with fields replaced (insns/blob bytes flipped, ...)."""
    from sigbpf.loadergen.format import Loader

    loader = Loader.decode(path.read_bytes())
    out.write_bytes(dataclasses.replace(loader, **changes).encode())
    return out


def _flip_insn(loader, index: int | None = None):
    from sigbpf.asm import Instruction

    insns = list(loader.insns)
    i = len(insns) // 2 if index is None else index
    raw = bytearray(insns[i].encode([insns[i]]))
    raw[4] ^= 0x01                                   # a bit of imm
    insns[i] = Instruction.decode(bytes(raw))[0]
    return tuple(insns)


def _flip_blob(loader) -> bytes:
    blob = bytearray(loader.blob)
    blob[len(blob) // 2] ^= 0x01
    return bytes(blob)


def tampered(signed: Path, out_dir: Path, other_pair) -> dict[str, Path]:
    """The four refusals: an instruction byte, a blob byte, another key, a truncated signature."""
    from sigbpf.loadergen.format import Loader
    from sigbpf.loadergen.sign import sign_loader

    out_dir.mkdir(parents=True, exist_ok=True)

    loader = Loader.decode(signed.read_bytes())
    unsigned = dataclasses.replace(loader, signature=b"").encode()
    other = out_dir / "other_key.signed"
    other.write_bytes(sign_loader(unsigned, other_pair.key, other_pair.cert))
    return {
        "insn_flipped": _variant(signed, out_dir / "insn.signed", insns=_flip_insn(loader)),
        "blob_flipped": _variant(signed, out_dir / "blob.signed", blob=_flip_blob(loader)),
        "other_key": other,
        "truncated_signature": _variant(signed, out_dir / "trunc.signed",
                                        signature=loader.signature[:-16]),
    }


# ---------------------------------------------------------------- host: format, userspace
def test_sign_verify_round_trip(cli, loaders, key_files, key_pair) -> None:
    from sigbpf.loadergen.format import Loader, Protocol
    from sigbpf.loadergen.sign import embedded_blob_hash, verify_loader

    for proto in ("v1", "v2"):
        out = loaders[proto].with_name(f"cli.{proto}.signed")
        proc = cli("sign", loaders[proto], "--key", key_files["key"], "--cert", key_files["cert"],
                   "-o", out, "--json")
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["loader"] is True and doc["covers"] == ("insns" if proto == "v1" else "insns+blob")
        # deterministic: the CLI and the library give the same bytes, twice
        assert out.read_bytes() == loaders[f"{proto}.signed"].read_bytes()
        unsigned = Loader.decode(loaders[proto].read_bytes())
        signed = Loader.decode(out.read_bytes())
        assert dataclasses.replace(signed, signature=b"") == unsigned
        assert dataclasses.replace(signed, signature=b"").encode() == loaders[proto].read_bytes()
        data = out.read_bytes()
        assert data[8:12] == b"\x01\x00\x01\x00" and data[20] == 1      # format 1.1, SIGNED
        assert int.from_bytes(data[56:60], "little") == len(signed.signature) <= 4096
        v = verify_loader(signed, key_pair.cert)
        if signed.protocol is Protocol.V1:
            assert signed.signed_payload == signed.insn_bytes
            assert embedded_blob_hash(signed) == signed.blob_sha256
        else:
            assert signed.signed_payload == signed.insn_bytes + signed.blob
        assert v.payload_size == len(signed.signed_payload)
        ok = cli("load", out, "--cert", key_files["cert"], "--json")
        # verification happens before anything reaches the kernel; the load itself may
        # be refused here (v2 on 6.18): only the userspace verdict is checked
        if ok.returncode == 0:
            assert json.loads(ok.stdout)["signature"]["verified_by"] == ["userspace"]
    again = cli("sign", loaders["v1.signed"], "--key", key_files["key"], "--cert",
                key_files["cert"], "-o", loaders["v1"].with_name("twice"))
    assert_one_line_error(again, 2, "already signed")
    layout = cli("sign", loaders["v1"], "--key", key_files["key"], "--cert", key_files["cert"],
                 "--layout", "insns+metadata", "-o", loaders["v1"].with_name("x"))
    assert_one_line_error(layout, 2, "--layout does not apply to a loader file")


def test_openssl_cms_verify_accepts_the_loader_signature(loaders, key_files, tmp_path) -> None:
    from sigbpf.loadergen.format import Loader

    for proto in ("v1", "v2"):
        loader = Loader.decode(loaders[f"{proto}.signed"].read_bytes())
        sig, payload = tmp_path / f"{proto}.p7s", tmp_path / f"{proto}.payload"
        sig.write_bytes(loader.signature)
        payload.write_bytes(loader.signed_payload)
        proc = openssl("cms", "-verify", "-binary", "-inform", "DER", "-noverify", "-in", sig,
                       "-content", payload, "-certfile", key_files["cert"], "-out", "/dev/null")
        assert proc.returncode == 0, proc.stderr
        assert b"Verification successful" in proc.stderr
        payload.write_bytes(loader.insn_bytes + b"x")       # other bytes: refused
        bad = openssl("cms", "-verify", "-binary", "-inform", "DER", "-noverify", "-in", sig,
                      "-content", payload, "-certfile", key_files["cert"], "-out", "/dev/null")
        assert bad.returncode != 0


def test_tampering_is_refused_in_userspace(cli, loaders, key_files, other_key_pair,
                                           tmp_path) -> None:
    cases = tampered(loaders["v1.signed"], tmp_path, other_key_pair)
    expect = {
        "insn_flipped": (1, "does not match the signed bytes"),
        "blob_flipped": (1, "blob changed since signing"),
        "other_key": (1, "made by another key"),
        "truncated_signature": (2, "not a signature in the kernel's PKCS#7 format"),
    }
    for name, path in cases.items():
        code, text = expect[name]
        proc = cli("load", path, "--cert", key_files["cert"], "--run", "--ctx", CTX)
        assert_one_line_error(proc, code, text)
        assert proc.stdout == "", (name, proc.stdout)              # nothing loaded
    from sigbpf.loadergen.format import Loader

    v2_loader = Loader.decode(loaders["v2.signed"].read_bytes())
    v2 = _variant(loaders["v2.signed"], tmp_path / "v2blob.signed", blob=_flip_blob(v2_loader))
    assert_one_line_error(cli("load", v2, "--cert", key_files["cert"]), 1,
                          "insns || blob) does not match the signed bytes")
    unsigned = cli("load", loaders["v1"], "--cert", key_files["cert"])
    assert_one_line_error(unsigned, 2, "the loader is not signed")


def test_signature_over_4096_bytes_is_refused(loaders, key_pair, monkeypatch) -> None:
    from sigbpf.errors import FormatError, SignatureError
    from sigbpf.loadergen.format import Loader
    from sigbpf.loadergen.sign import sign_loader
    from sigbpf.sign import pkcs7

    real = pkcs7.sign_detached
    monkeypatch.setattr(pkcs7, "sign_detached", lambda *a, **k: real(*a, **k) + bytes(4096))
    with pytest.raises(SignatureError, match="over the 4096 bytes"):
        sign_loader(loaders["v1"].read_bytes(), key_pair.key, key_pair.cert)
    loader = Loader.decode(loaders["v1"].read_bytes())
    with pytest.raises(FormatError, match="over the 4096 bytes"):
        dataclasses.replace(loader, signature=bytes(4097)).encode()
    data = bytearray(loaders["v1.signed"].read_bytes())
    data[56:60] = (5000).to_bytes(4, "little")
    with pytest.raises(FormatError, match="signature size 5000"):
        Loader.decode(bytes(data))


def test_an_older_reader_refuses_a_signed_loader_cleanly(loaders) -> None:
    """The format 1.0 reader (the commit that added the loader file) says which version it
    does not know."""
    from sigbpf.errors import FormatError

    first = subprocess.run(["git", "log", "--format=%H", "--diff-filter=A", "--",
                            "sigbpf/loadergen/format.py"], cwd=ROOT, capture_output=True,
                           text=True).stdout.split()
    assert first, "the repository's history is needed (a git clone, not an export)"
    old = subprocess.run(["git", "show", f"{first[-1]}:sigbpf/loadergen/format.py"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    assert "VERSION_SIGNED" not in old.stdout
    path = Path(loaders["v1"]).with_name("old_format.py")
    path.write_text(old.stdout)
    spec = importlib.util.spec_from_file_location("old_loader_format", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module           # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    assert module.Loader.decode(loaders["v1"].read_bytes()).insns  # unsigned: unchanged
    with pytest.raises(FormatError, match=r"unsupported loader format version 1\.1"):
        module.Loader.decode(loaders["v1.signed"].read_bytes())


@pytest.mark.usefixtures("kernel")
def test_host_kernel_cannot_check_signatures(cli, loaders, key_files) -> None:
    """6.18 here: EOPNOTSUPP, reported as such, after userspace verified it; exit 1."""
    proc = cli("load", loaders["v1.signed"], "--cert", key_files["cert"], "--keyring", "session",
               "--run", "--ctx", CTX)
    assert_one_line_error(proc, 1, "EOPNOTSUPP")
    assert "cannot check signatures" in proc.stderr and "userspace verified" in proc.stderr
    assert proc.stdout == ""
    builtin = cli("load", loaders["v1.signed"], "--keyring", "builtin")
    assert_one_line_error(builtin, 1, "EOPNOTSUPP")
    assert "not verified in userspace" in builtin.stderr


@pytest.mark.usefixtures("kernel")
def test_v1_blob_flip_is_refused_by_the_loaders_own_hash_check(cli, loaders, other_key_pair,
                                                                tmp_path) -> None:
    """Without --cert and --keyring nothing checks the signature before the loader runs: the
    v1 loader's own check of its blob map's SHA-256 refuses the changed blob (-EINVAL)."""
    blob = tampered(loaders["v1.signed"], tmp_path, other_key_pair)["blob_flipped"]
    proc = cli("load", blob, "--run", "--ctx", CTX)
    assert_one_line_error(proc, 1, "the loader returned -22")
    assert "refused by the loader's own blob hash check" in proc.stderr


@pytest.mark.usefixtures("kernel")
def test_cli_without_keyring_runs_the_signed_loader(cli, loaders, key_files) -> None:
    proc = cli("load", loaders["v1.signed"], "--cert", key_files["cert"], "--run", "--ctx", CTX)
    assert proc.returncode == 0, proc.stderr
    assert "signature verified by: userspace" in proc.stdout
    assert f"program rcu_maps: loaded, retval {RCU_MAPS}" in proc.stdout


# ---------------------------------------------------------------- the VM: Debian 7.3 checks
GUEST = textwrap.dedent('''\
    """Runs in the guest: each case through the CLI, its exit code, JSON and stderr."""
    import json, subprocess, sys
    from sigbpf.kernel.keyring import KEY_SPEC_USER_KEYRING, add_asymmetric_key, unlink_key

    cases, cert_pem, cert_der, ctx = json.loads(sys.argv[1])
    # For the tampered loaders userspace must not refuse first: the certificate goes into the
    # user keyring (it outlives each process, unlike a fresh session keyring) and the CLI
    # passes keyring_id -4 without --cert.
    serial = add_asymmetric_key("sigbpf test: loader signer", open(cert_der, "rb").read(),
                                KEY_SPEC_USER_KEYRING)
    out = {}
    try:
        for name, path, extra in cases:
            argv = [sys.executable, "-m", "sigbpf", "load", path, *extra, "--run", "--ctx", ctx,
                    "--json"]
            p = subprocess.run(argv, capture_output=True, text=True)
            out[name] = {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr.strip()}
    finally:
        unlink_key(serial, KEY_SPEC_USER_KEYRING)
    print(json.dumps(out))
''')


def test_signed_loader_is_checked_by_the_73_kernel(vm, loaders, key_files, other_key_pair,
                                                   tmp_path, record_property) -> None:
    """Debian 7.3 checks the loader's signature.  Measured, per case: exit code, errno and
    which check refused (the kernel's signature check, or the v1 loader's blob hash check)."""
    from testbench.vm import run_in_vm

    cases = {f"v{p}_{name}": path for p in (1, 2) for name, path in
             tampered(loaders[f"v{p}.signed"], tmp_path / f"v{p}", other_key_pair).items()}
    cert = str(key_files["cert"])
    runs = [("v1_session", str(loaders["v1.signed"]),
             ["--cert", cert, "--keyring", "session", "--force"]),
            ("v1_user_keyring", str(loaders["v1.signed"]), ["--keyring", "user", "--force"]),
            ("v1_refused_before_loading", str(loaders["v1.signed"]), ["--keyring", "user"]),
            ("v2_session", str(loaders["v2.signed"]), ["--cert", cert, "--keyring", "session"]),
            ("v2_user_keyring", str(loaders["v2.signed"]), ["--keyring", "user"]),
            ("v2_builtin", str(loaders["v2.signed"]), ["--keyring", "builtin"]),
            ("v1_unsigned", str(loaders["v1"]), ["--force"]),
            ("v2_unsigned", str(loaders["v2"]), []),
            *[(name, str(path), ["--keyring", "user", "--force"]) for name, path in cases.items()]]
    script = tmp_path / "guest.py"
    script.write_text(GUEST)
    arg = json.dumps([runs, cert, str(key_files["cert_der"]), CTX])
    r = run_in_vm([sys.executable, str(script), arg], kernel=vm, cwd=ROOT, timeout=1500,
                  env={"PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    out = json.loads(r.stdout.strip().splitlines()[-1])
    summary = {name: (o["rc"], o["stderr"] or "ok") for name, o in out.items()}
    record_property("signed_loader_answers_7.3", json.dumps(summary, indent=1))
    print("\n[loader-signing 7.3]\n" + json.dumps(summary, indent=1))


    def errno_of(name: str) -> str:
        o = out[name]
        assert o["rc"] == 1 and o["stdout"] == "", (name, o)
        assert len(o["stderr"].splitlines()) == 1, (name, o)
        return o["stderr"]

    # Protocol v2 (insns || blob): 7.3 checks it and loads it.  The signed loader of
    # kfunc_rcu_maps runs; userspace and the kernel (session keyring) verified it.
    for name, who in (("v2_session", ["userspace", "kernel"]), ("v2_user_keyring", ["kernel"])):
        assert out[name]["rc"] == 0, out[name]
        doc = json.loads(out[name]["stdout"])
        assert doc["signature"]["verified_by"] == who, doc["signature"]
        assert [(p["name"], p["loaded"], p["retval"]) for p in doc["programs"]] == \
            [("rcu_maps", True, RCU_MAPS)]
    assert json.loads(out["v2_session"]["stdout"])["signature"]["keyring_id"] == -3
    assert "ENOKEY" in errno_of("v2_builtin")              # the key is not in the builtin keyring
    # Protocol v1: 7.3 refuses the loader itself, signed or not (EACCES at BPF_PROG_LOAD):
    # a v1 loader (6.18's protocol) does not load on 7.3.
    for name in ("v1_session", "v1_user_keyring", "v1_unsigned"):
        assert "EACCES" in errno_of(name), name
    # Without --force sigbpf refuses the v1 loader before the kernel sees it (exit 2).
    refused = out["v1_refused_before_loading"]
    assert refused["rc"] == 2 and len(refused["stderr"].splitlines()) == 1, refused
    assert ("a protocol v1 loader, and the running kernel implements protocol v2"
            in refused["stderr"]) and "--protocol v2" in refused["stderr"], refused
    # The kernel's signature check refuses, for both protocols, with these errnos:
    for p in ("v1", "v2"):
        assert "EKEYREJECTED" in errno_of(f"{p}_insn_flipped")
        assert "ENOKEY" in errno_of(f"{p}_other_key")
        assert "EBADMSG" in errno_of(f"{p}_truncated_signature")
        assert "the kernel refused the signed loader" in errno_of(f"{p}_insn_flipped")
    # A blob byte: v2's signature covers it (EKEYREJECTED); v1's does not, and 7.3 refuses
    # the v1 loader before it could run its own hash check (EACCES, as the intact one).
    assert "EKEYREJECTED" in errno_of("v2_blob_flipped")
    assert "EACCES" in errno_of("v1_blob_flipped")
