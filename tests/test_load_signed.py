"""``sigbpf load SIGNED --cert CERT [--keyring ...]`` (issue 4, the kernel side), on the real kernel.

* The signature is verified in userspace before anything reaches the kernel:
  run without capabilities (no bpf() at all), a bad signature still gives
  the signature error, never the kernel's EPERM.
* With ``--keyring`` the signature goes to BPF_PROG_LOAD; this kernel (6.18,
  no CONFIG_SYSTEM_DATA_VERIFICATION) answers EOPNOTSUPP, which must end in a
  clear refusal saying the kernel cannot check signatures and userspace
  verified it (KERNEL-FACTS.md), never a silent success.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, assert_one_line_error
from sign_support import sign_both_layouts
pytest_plugins = ["sign_fixtures"]  # key pairs and key files (the signing tests' fixtures)

pytestmark = pytest.mark.usefixtures("kernel")

CTX = "00" * 8
RCU_MAPS_RETVAL = 1142


@pytest.fixture(scope="module")
def signed(bpf_object, cli, key_files, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("signed")
    art = out / "rcu.sbpf"
    assert cli("build", bpf_object("kfunc_rcu_maps"), "-o", art).returncode == 0
    paths = sign_both_layouts(cli, art, key_files["key"], key_files["cert"])
    data = bytearray(paths["insns"].read_bytes())
    data[len(data) // 3] ^= 0x01
    paths["tampered"] = out / "rcu.tampered"
    paths["tampered"].write_bytes(bytes(data))
    return paths


def test_verified_in_userspace_then_loaded(cli, signed, key_files) -> None:
    proc = cli("load", signed["insns"], "--cert", key_files["cert"], "--run", "--ctx", CTX)
    assert proc.returncode == 0, proc.stderr
    assert "signature verified in userspace" in proc.stdout
    assert "not passed to the kernel (no --keyring)" in proc.stdout
    assert f"retval {RCU_MAPS_RETVAL}" in proc.stdout


def test_der_certificate_works_too(cli, signed, key_files) -> None:
    proc = cli("load", signed["insns"], "--cert", key_files["cert_der"], "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["programs"][0]["loaded"] is True
    # JSON says who verified what, like `verify --json`, and that nothing went to the kernel.
    verify = json.loads(cli("verify", signed["insns"], "--cert", key_files["cert"], "--json").stdout)
    sig = doc["signature"]
    assert sig["verified"] is True and sig["verified_by"] == "userspace"
    for key in ("layout", "signer", "key_id", "metadata_sha256", "artifact_sha256", "programs"):
        assert sig[key] == verify[key], key
    assert sig["passed_to_kernel"] is False and sig["keyring_id"] is None
    assert any("not passed to the kernel (no --keyring)" in n for n in sig["notes"])


def test_json_of_an_unverified_signed_load_says_so(cli, signed) -> None:
    doc = json.loads(cli("load", signed["insns"], "--json").stdout)
    assert doc["signature"]["verified"] is False
    assert "NOT verified" in doc["signature"]["notes"][0]
    unsigned = json.loads(cli("load", signed["unsigned"], "--json").stdout)
    assert "signature" not in unsigned  # the load JSON of issue 3, unchanged


def test_signed_artifact_without_cert_says_it_was_not_verified(cli, signed) -> None:
    proc = cli("load", signed["insns"])
    assert proc.returncode == 0, proc.stderr
    assert "signature was NOT verified" in proc.stdout


def _session_keys() -> str:
    return subprocess.run(["keyctl", "show", "@s"], capture_output=True, text=True).stdout


@pytest.mark.parametrize("keyring", ["session", "builtin"])
def test_kernel_cannot_check_signatures_here(cli, signed, key_files, keyring) -> None:
    proc = cli("load", signed["insns"], "--cert", key_files["cert"], "--keyring", keyring,
               "--run", "--ctx", CTX)
    assert_one_line_error(proc, 1, "this kernel cannot check BPF program signatures")
    assert "EOPNOTSUPP" in proc.stderr and "verified in userspace" in proc.stderr
    assert "REFUSED" in proc.stdout
    # The kernel would check the instructions as loaded; userspace resolution changed them.
    assert "differ from the signed ones" in proc.stdout
    as_json = cli("load", signed["insns"], "--cert", key_files["cert"], "--keyring", keyring,
                  "--json")
    assert as_json.returncode == 1
    doc = json.loads(as_json.stdout)
    (prog,) = doc["programs"]
    assert prog["loaded"] is False and "cannot check BPF program signatures" in prog["log"]
    assert "verified in userspace only" in prog["log"]
    sig = doc["signature"]
    assert sig["verified"] is True and sig["verified_by"] == "userspace"
    assert sig["passed_to_kernel"] is True
    assert sig["keyring_id"] == {"session": -3, "builtin": 0}[keyring]
    assert any("differ from the signed ones" in n for n in sig["notes"])


def test_session_key_is_removed_afterwards(cli, signed, key_files) -> None:
    if shutil.which("keyctl") is None:
        pytest.skip("keyctl not installed")
    import re

    before = _session_keys().count("asymmetric: sigbpf")
    proc = cli("load", signed["insns"], "--cert", key_files["cert"], "--keyring", "session")
    assert proc.returncode == 1, proc.stderr  # EOPNOTSUPP here
    # The output names the key add_key("asymmetric", ...) made in the session keyring ...
    found = re.search(r"passed to BPF_PROG_LOAD with keyring_id -3 \(the certificate added to "
                      r"the session keyring as asymmetric key (\d+), removed after loading\)",
                      proc.stdout)
    assert found, proc.stdout
    # ... which is no longer linked there.
    assert _session_keys().count("asymmetric: sigbpf") == before
    assert found.group(1) not in _session_keys().split()
    builtin = cli("load", signed["insns"], "--cert", key_files["cert"], "--keyring", "builtin")
    assert "passed to BPF_PROG_LOAD with keyring_id 0" in builtin.stdout
    assert "session keyring" not in builtin.stdout


def test_add_key_asymmetric_accepts_the_certificate(key_files) -> None:
    from sigbpf.kernel.keyring import add_asymmetric_key, unlink_key

    serial = add_asymmetric_key("sigbpf test", key_files["cert_der"].read_bytes())
    try:
        assert serial > 0
    finally:
        unlink_key(serial)


def test_numeric_keyring_and_bad_keyring(cli, signed, key_files) -> None:
    proc = cli("load", signed["insns"], "--cert", key_files["cert"], "--keyring", "0")
    assert_one_line_error(proc, 1, "cannot check BPF program signatures")
    assert_one_line_error(cli("load", signed["insns"], "--cert", key_files["cert"],
                              "--keyring", "nonsense"), 2, "--keyring")


@pytest.mark.parametrize("keyring,kid", [("3", 3), ("process", -2), ("0x7ffffff0", 0x7ffffff0)])
def test_a_keyring_the_kernel_cannot_find(cli, signed, key_files, keyring, kid) -> None:
    """Measured on 6.18: BPF_PROG_LOAD looks the key up before it checks the signature and
    answers EINVAL, with no verifier log, for a keyring_id that names no key (3 is not a
    system keyring; this process has no process keyring; no such serial).  The message says
    so, and that userspace verified the signature."""
    proc = cli("load", signed["insns"], "--cert", key_files["cert"], "--keyring", keyring)
    assert_one_line_error(proc, 1, f"(EINVAL): the kernel found no key or keyring with "
                                   f"keyring_id {kid}")
    assert "the signature was verified in userspace only" in proc.stderr


def test_metadata_layout_cannot_go_to_the_kernel(cli, signed, key_files) -> None:
    assert_one_line_error(cli("load", signed["insns+metadata"], "--cert", key_files["cert"],
                              "--keyring", "session"), 2, "insns+metadata")
    ok = cli("load", signed["insns+metadata"], "--cert", key_files["cert"], "--run", "--ctx", CTX)
    assert ok.returncode == 0, ok.stderr


def test_unsigned_artifact_with_cert_is_refused(cli, signed, key_files) -> None:
    assert_one_line_error(cli("load", signed["unsigned"], "--cert", key_files["cert"]), 1,
                          "not signed")


def _unprivileged(args: list[str]) -> subprocess.CompletedProcess:
    """Run sigbpf as root without any capability: any bpf() call would fail with EPERM.

    (Root without capabilities, not nobody: nobody cannot read this interpreter's
    site-packages and would import another cryptography.)"""
    tmp = Path(tempfile.mkdtemp(prefix="sigbpf-signed-"))
    tmp.chmod(0o755)
    copied = []
    for a in args:
        if os.path.exists(a):
            dst = tmp / Path(a).name
            shutil.copy(a, dst)
            dst.chmod(0o644)
            copied.append(str(dst))
        else:
            copied.append(a)
    try:
        return subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-all",
                               sys.executable, "-m", "sigbpf", "load", *copied],
                              capture_output=True, text=True, timeout=120, cwd="/",
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        shutil.rmtree(tmp)


def test_verification_happens_before_any_bpf_call(signed, key_files, other_key_files) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv not installed")
    # Control: a good signature gets as far as the kernel, which refuses nobody.
    good = _unprivileged([str(signed["insns"]), "--cert", str(key_files["cert"])])
    assert_one_line_error(good, 1, "EPERM")
    # A wrong key or a flipped byte stops in userspace: the kernel is never asked.
    wrong = _unprivileged([str(signed["insns"]), "--cert", str(other_key_files["cert"])])
    assert wrong.returncode == 1 and "EPERM" not in wrong.stderr, wrong.stderr
    assert_one_line_error(wrong, 1)
    tampered = _unprivileged([str(signed["tampered"]), "--cert", str(key_files["cert"])])
    assert tampered.returncode in (1, 2) and "EPERM" not in tampered.stderr, tampered.stderr
    assert_one_line_error(tampered, tampered.returncode)


def test_wrong_key_and_tampered_refused_as_root(cli, signed, key_files, other_key_files) -> None:
    assert_one_line_error(cli("load", signed["insns"], "--cert", other_key_files["cert"], "--run"), 1)
    proc = cli("load", signed["tampered"], "--cert", key_files["cert"], "--run")
    assert proc.returncode in (1, 2) and "retval" not in proc.stdout
    assert_one_line_error(proc, proc.returncode)


# ------------------------------------------------- every tamper case of issue 4, verify and load

def _tamper_cases(source: Path, out: Path, key_pair, other_files, bad_cert_files, cert: Path):
    """(name, file, cert, exit code, message) for each tamper case of issue 4 on *source*."""
    import dataclasses

    from sigbpf.artifact.format import Artifact, ExtensionSection
    from sigbpf.sign.payload import SignatureLayout
    from sigbpf.sign.pkcs7 import sign_detached
    from sigbpf.sign.signed import SIGNATURE_SECTION, split_signed
    from sign_support import swap_func_names

    data = source.read_bytes()
    unsigned, section = split_signed(Artifact.decode(data))
    sig_ext = Artifact.decode(data).extensions[-1]

    def write(name: str, payload: bytes) -> Path:
        path = out / f"{source.name}.{name}"
        path.write_bytes(payload)
        return path

    def changed(name: str, change) -> Path:
        return write(name, change(unsigned).with_extension(sig_ext).encode())

    def new_data(a):
        maps = list(a.maps)
        i = next(i for i, m in enumerate(maps) if m.initial_data)
        maps[i] = dataclasses.replace(maps[i], initial_data=b"\x07" + maps[i].initial_data[1:])
        return dataclasses.replace(a, maps=tuple(maps))

    def new_insn(a):
        prog = a.programs[0]
        insns = list(prog.insns)
        insns[0] = insns[0].replace(imm=insns[0].imm ^ 1)
        return dataclasses.replace(a, programs=(dataclasses.replace(prog, insns=tuple(insns)),
                                                *a.programs[1:]))

    other_payload = sign_detached(b"another payload", key_pair.key, key_pair.cert)
    if section.layout is SignatureLayout.INSNS:
        resigned = dataclasses.replace(section, metadata_signature=other_payload)
        other_what = "metadata signature does not match the signed bytes"
    else:
        resigned = dataclasses.replace(section, program_signatures=(other_payload,))
        other_what = "program 0 'rcu_maps' signature does not match the signed bytes"
    data_map = next(i for i, m in enumerate(unsigned.maps) if m.initial_data)
    return [
        ("renamed-kfunc", changed("renamed", lambda a: dataclasses.replace(
            a, btf=swap_func_names(a.btf, "bpf_rcu_read_lock", "bpf_rcu_read_unlock"))),
         cert, 1, "program BTF: changed since signing"),
        ("map-data", changed("data", new_data), cert, 1,
         f"map {data_map} '{unsigned.maps[data_map].name}' initial data: changed since signing"),
        ("insn", changed("insn", new_insn), cert, 1,
         "program 0 'rcu_maps' instructions: changed since signing"),
        ("other-payload", write("other", unsigned.with_extension(
            ExtensionSection(SIGNATURE_SECTION, resigned.encode())).encode()), cert, 1, other_what),
        ("truncated", write("truncated", data[:-9]), cert, 2, "out of range"),
        ("appended", write("appended", data + b"\0" * 8), cert, 2, "not in canonical form"),
        ("wrong-key", source, other_files["cert"], 1, "made by another key"),
        ("expired-cert", source, bad_cert_files["expired"]["cert"], 2, "certificate expired on"),
        ("non-signing-cert", source, bad_cert_files["nonsigning"]["cert_der"], 2,
         "not a signing certificate"),
    ]


@pytest.mark.parametrize("layout", ["insns", "insns+metadata"])
def test_every_tamper_case_is_refused_by_verify_and_by_load(cli, signed, key_files, key_pair,
                                                            other_key_files, bad_cert_files,
                                                            tmp_path, layout) -> None:
    """Issue 4's list (renamed FUNC in the program BTF, map initial data, a changed
    instruction, a signature over another payload, truncating, appending, a wrong key, an
    expired or non-signing certificate): `verify` and `load --cert` refuse each with the same
    exit code and the same one-line message naming what does not match, and `load` stops
    before the kernel (nothing on stdout: no resolution, no load)."""
    cases = _tamper_cases(signed[layout], tmp_path, key_pair, other_key_files, bad_cert_files,
                          key_files["cert"])
    for name, path, cert, code, message in cases:
        verify = cli("verify", path, "--cert", cert)
        assert_one_line_error(verify, code, message)
        load = cli("load", path, "--cert", cert, "--run", "--ctx", CTX)
        assert_one_line_error(load, code, message)
        assert load.stderr == verify.stderr, name
        assert load.stdout == "", (name, load.stdout)
        # Where the message is about the artifact, it names the file; about the cert, the cert.
        where = str(cert) if name.endswith("-cert") else str(path)
        assert where in load.stderr, (name, load.stderr)


def test_dense_sample_of_byte_flips_through_the_load_and_verify_commands(signed, key_files,
                                                                         tmp_path, capsys) -> None:
    """Byte flips of a signed artifact through the commands themselves (in-process, the same
    code path as `sigbpf load --cert` / `sigbpf verify`): every 4th byte (insns layout) or
    every 8th (insns+metadata), alternately through `load` and `verify`
    (test_sign_artifact.py flips every byte through the library).
    Each is refused with one line and a non-zero exit, and `load` never gets to the kernel."""
    from sigbpf.cli.main import main

    cert = str(key_files["cert"])
    for layout, step in (("insns", 4), ("insns+metadata", 8)):
        data = signed[layout].read_bytes()
        path = tmp_path / f"flipped.{layout}"
        for n, i in enumerate(range(layout == "insns+metadata", len(data), step)):
            bad = bytearray(data)
            bad[i] ^= 0x01 if n % 3 else 0xFF
            path.write_bytes(bytes(bad))
            command = "load" if n % 2 == 0 else "verify"
            code = main([command, str(path), "--cert", cert])
            out, err = capsys.readouterr()
            assert code in (1, 2), (layout, i, command, out)
            assert err.startswith("sigbpf: error: ") and err.count("\n") == 1, (layout, i, err)
            assert "Traceback" not in err
            assert out == "", (layout, i, command, out)  # load: no resolution, nothing loaded


def test_the_signature_covers_the_instructions_as_loaded_when_nothing_rewrites_them(
        cli, bpf_object, key_files, tmp_path) -> None:
    """Layout insns signs each program's instructions, insn_cnt * 8 bytes: what 6.18 checks.
    A program without kfunc calls ('second') goes to BPF_PROG_LOAD exactly as signed, so no
    note; one whose kfunc calls sigbpf resolves in userspace ('first', no native PROG_BTF
    resolution here) is sent rewritten, and the output says so (FORMAT.md 5.5).  Both get the
    kernel's EOPNOTSUPP here, each reported as a refusal."""
    art = tmp_path / "two.sbpf"
    assert cli("build", bpf_object("sign_two_progs"), "-o", art).returncode == 0
    paths = sign_both_layouts(cli, art, key_files["key"], key_files["cert"])
    proc = cli("load", paths["insns"], "--cert", key_files["cert"], "--keyring", "builtin", "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    differ = [n for n in report["signature"]["notes"] if "differ from the signed ones" in n]
    assert len(differ) == 1 and differ[0].startswith("program 'first':"), report["signature"]
    assert "rewritten by userspace resolution" in differ[0]
    assert [p["loaded"] for p in report["programs"]] == [False, False]
    assert all("cannot check BPF program signatures" in p["log"] for p in report["programs"])
    assert "(and 1 more)" in proc.stderr


def test_how_a_kernel_that_checks_signatures_refusal_is_worded() -> None:
    """This kernel never gets that far (EOPNOTSUPP), so the wording of a signature refusal by a
    kernel that checks them (verify_pkcs7_signature's errnos) is checked on the formatter: it
    says the kernel refused the signature, what it checked, and what userspace had verified.
    Without a signature, the same errno is reported as it is."""
    import errno

    from sigbpf.errors import KernelError
    from sigbpf.kernel.loader import _refusal

    for code, why in ((errno.EKEYREJECTED, "the signature does not match"),
                      (errno.ENOKEY, "no key in that keyring matches the signer"),
                      (errno.EBADMSG, "cannot parse the signature")):
        err = KernelError(f"loading program 'p' (BPF_PROG_LOAD): {os.strerror(code)} "
                          f"({errno.errorcode[code]})", errno=code)
        text = _refusal(err, b"signature", -3)
        assert text.startswith(str(err) + ": the kernel refused the program's signature (")
        assert why in text and "against keyring_id -3" in text
        assert "userspace had verified it over the instructions as signed" in text
        assert _refusal(err, None, None) == str(err)
    eopnotsupp = KernelError("loading program 'p' (BPF_PROG_LOAD): Operation not supported",
                             errno=errno.EOPNOTSUPP)
    assert "this kernel cannot check BPF program signatures" in _refusal(eopnotsupp, b"s", 0)
    verifier = KernelError("loading program 'p' (BPF_PROG_LOAD): Invalid argument (EINVAL)",
                           errno=errno.EINVAL, log="0: (85) call ...\ninvalid func unknown#1\n")
    assert _refusal(verifier, b"s", 0) == str(verifier)  # a verifier EINVAL (with a log) is not a key
