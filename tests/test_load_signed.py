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
    assert json.loads(proc.stdout)["programs"][0]["loaded"] is True


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
    (prog,) = json.loads(as_json.stdout)["programs"]
    assert prog["loaded"] is False and "cannot check BPF program signatures" in prog["log"]


def test_session_key_is_removed_afterwards(cli, signed, key_files) -> None:
    if shutil.which("keyctl") is None:
        pytest.skip("keyctl not installed")
    before = _session_keys().count("asymmetric: sigbpf")
    cli("load", signed["insns"], "--cert", key_files["cert"], "--keyring", "session")
    assert _session_keys().count("asymmetric: sigbpf") == before


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
