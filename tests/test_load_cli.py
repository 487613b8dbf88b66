"""``sigbpf load`` from the command line: output, exit codes, one-line errors, permissions.

Artifacts here are hand-built (tests/hand_artifacts.py) so that the command
is tested on its own; tests/test_load_progs.py runs it on the C programs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, assert_one_line_error
from hand_artifacts import ctx_reader, rcu_artifact, single_call, weak_artifact
from libbpf_ref import vmlinux as libbpf_vmlinux

pytestmark = pytest.mark.usefixtures("kernel")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("load_cli")
    paths = {}
    for name, art in {"rcu": rcu_artifact(), "weak": weak_artifact(),
                      "missing": single_call("bpf_sigbpf_no_such_kfunc"),
                      "notkfunc": single_call("vfs_read"), "ctx": ctx_reader()}.items():
        paths[name] = out / f"{name}.sbpf"
        paths[name].write_bytes(art.encode())
    return paths


def test_json_output_is_exactly_the_contract(cli, artifacts) -> None:
    proc = cli("load", artifacts["rcu"], "--run", "--ctx", "00" * 8, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert list(doc) == ["resolution", "programs", "kfuncs"]
    assert doc["resolution"] == "userspace"
    assert doc["programs"] == [{"name": "rcu", "loaded": True, "retval": 1234, "log": ""}]
    ref = libbpf_vmlinux()
    assert doc["kfuncs"] == [{"name": n, "btf_id": ref.func_id(n)}
                             for n in ("bpf_rcu_read_lock", "bpf_rcu_read_unlock")]


def test_without_run_retval_is_null(cli, artifacts) -> None:
    proc = cli("load", artifacts["rcu"], "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["programs"][0]["retval"] is None


def test_text_output_says_which_path_ran(cli, artifacts) -> None:
    proc = cli("load", artifacts["weak"], "--run", "--ctx", "0000000000000000")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("resolution: userspace (kernel answers 'BPF_CALL uses reserved fields'")
    assert "bpf_sigbpf_no_such_kfunc" in out and "absent from this kernel (weak" in out
    assert "program weak: loaded, ran, retval 1" in out


def test_missing_kfunc_exit_1_with_log(cli, artifacts) -> None:
    proc = cli("load", artifacts["missing"], "--run", "--ctx", "00" * 8)
    assert_one_line_error(proc, 1, "bpf_sigbpf_no_such_kfunc not found in vmlinux BTF")
    assert "program prog: REFUSED" in proc.stdout
    assert "kfunc call insn 1: bpf_sigbpf_no_such_kfunc not found in vmlinux BTF" in proc.stdout
    as_json = cli("load", artifacts["missing"], "--json")
    assert as_json.returncode == 1
    doc = json.loads(as_json.stdout)
    assert doc["programs"][0]["loaded"] is False
    assert "not found in vmlinux BTF" in doc["programs"][0]["log"]


def test_kernel_refusal_shows_the_full_verifier_log(cli, artifacts) -> None:
    proc = cli("load", artifacts["notkfunc"], "--no-kfunc-check", "--no-proto-check")
    assert_one_line_error(proc, 1, "Permission denied")
    assert "verifier log:" in proc.stdout
    assert "calling kernel function vfs_read is not allowed" in proc.stdout
    assert "processed" in proc.stdout or "verification time" in proc.stdout or \
        proc.stdout.count("\n") > 3


def test_not_a_kfunc_exit_1(cli, artifacts) -> None:
    proc = cli("load", artifacts["notkfunc"], "--no-proto-check", "--json")
    assert proc.returncode == 1
    assert "vfs_read" in proc.stderr and "Traceback" not in proc.stderr


def test_run_with_too_short_ctx_is_a_clear_failure(cli, artifacts) -> None:
    assert json.loads(cli("load", artifacts["ctx"], "--run", "--ctx", "0000000005000000",
                          "--json").stdout)["programs"][0]["retval"] == 5
    proc = cli("load", artifacts["ctx"], "--run")
    assert_one_line_error(proc, 1, "--ctx")
    assert "program ctx_n: loaded, run FAILED" in proc.stdout


@pytest.mark.parametrize("content, message", [
    (b"", "neither a sigbpf artifact nor a BPF object"),
    (b"hello world, not bpf", "neither a sigbpf artifact nor a BPF object"),
    (b"SIGBPFA\x00" + bytes(10), "offset 0x12: truncated header (18 bytes, need 32)"),
    (b"\x7fELF" + bytes(60), "not a 64-bit ELF"),
])
def test_bad_input_bytes_exit_2(cli, tmp_path, content, message) -> None:
    path = tmp_path / "bad"
    path.write_bytes(content)
    assert_one_line_error(cli("load", path), 2, message)


def test_truncated_and_flipped_artifacts_exit_2(cli, tmp_path, artifacts) -> None:
    data = artifacts["rcu"].read_bytes()
    for i, (variant, message) in enumerate([
            (data[:20], "truncated header (20 bytes, need 32)"),
            (data[: len(data) // 2], "out of range (file"),
            (data[:-1], "out of range (file"),
            (data + b"\0" * 8, "not in canonical form")]):
        path = tmp_path / f"v{i}.sbpf"
        path.write_bytes(variant)
        proc = cli("load", path, "--json")
        assert_one_line_error(proc, 2, message)
        assert f"{path}: offset 0x" in proc.stderr and proc.stdout == ""


def test_usage_errors(cli, artifacts, tmp_path) -> None:
    assert_one_line_error(cli("load", artifacts["rcu"], "--run", "--ctx", "zz"), 2,
                          "--ctx 'zz' is not hex bytes")
    assert_one_line_error(cli("load", artifacts["rcu"], "--ctx", "00" * 8), 2,
                          "--ctx goes with --run")
    assert_one_line_error(cli("load", artifacts["rcu"], "--resolution", "native"), 2,
                          "invalid choice: 'native'")
    assert_one_line_error(cli("load", artifacts["rcu"], "--keyring", "session"), 2, "--cert")
    assert_one_line_error(cli("load", tmp_path / "nope.sbpf"), 2, "nope.sbpf")
    assert_one_line_error(cli("load"), 2)


def _world_readable_copy(src: Path) -> Path:
    """A copy of *src* and of the sigbpf package that an unprivileged user can read.

    (The checkout itself may live in a directory only root can enter, such as
    a ``mktemp -d`` clone.)"""
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="sigbpf-perm-"))
    shutil.copytree(ROOT / "sigbpf", d / "sigbpf", ignore=shutil.ignore_patterns("__pycache__"))
    dst = d / src.name
    shutil.copy(src, dst)
    for path in [d, *d.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dst


@pytest.mark.parametrize("drop", [
    ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],   # nobody
    ["setpriv", "--inh-caps=-all", "--bounding-set=-all"],              # root without capabilities
])
def test_no_permission_is_a_clear_error(artifacts, drop) -> None:
    if shutil.which(drop[0]) is None:
        pytest.skip(f"{drop[0]} not installed")
    path = _world_readable_copy(artifacts["rcu"])
    try:
        proc = subprocess.run([*drop, sys.executable, "-m", "sigbpf", "load", str(path), "--run"],
                              capture_output=True, text=True, timeout=120, cwd="/",
                              env={**os.environ, "PYTHONPATH": str(path.parent),
                                   "PYTHONDONTWRITEBYTECODE": "1"})
    finally:
        shutil.rmtree(path.parent)
    assert_one_line_error(proc, 1, "EPERM")
    assert "no permission to use bpf()" in proc.stderr


def test_any_flipped_byte_ends_in_a_verdict_not_a_traceback(artifacts, tmp_path, capsys) -> None:
    """A dense sample of single-byte flips of an artifact: exit 0, 1 or 2, never an exception.

    (In-process through sigbpf.cli.main.main, which lets only SigbpfError become
    an exit code: anything else would escape and fail the test.)"""
    from sigbpf.cli.main import main

    data = artifacts["rcu"].read_bytes()
    path = tmp_path / "flipped.sbpf"
    codes = set()
    for pos in range(0, len(data), max(1, len(data) // 80)):
        flipped = bytearray(data)
        flipped[pos] ^= 0xFF
        path.write_bytes(bytes(flipped))
        code = main(["load", str(path), "--run", "--ctx", "00" * 8])
        err = capsys.readouterr().err.strip()
        assert code in (0, 1, 2), (pos, code)
        if code:
            assert len(err.splitlines()) == 1 and err.startswith("sigbpf:"), (pos, err)
        codes.add(code)
    assert 2 in codes  # most flips break the format


def test_map_the_kernel_refuses_is_exit_1(tmp_path, cli) -> None:
    from hand_artifacts import ArtifactMaker, data_map, flat
    from sigbpf.artifact.format import Map, MapKind
    from sigbpf.asm import exit_, mov64_imm

    bad_map = Map(name="bad", kind=MapKind.BTF_DEFINED, map_type=9999, key_size=4, value_size=4,
                  max_entries=1, section=".maps")
    art = ArtifactMaker().artifact(flat(mov64_imm(0, 0), exit_()), [], (data_map(1), bad_map))
    path = tmp_path / "badmap.sbpf"
    path.write_bytes(art.encode())
    assert_one_line_error(cli("load", path), 1, "creating map 'bad' (BPF_MAP_CREATE)")


def test_btf_the_kernel_refuses_shows_its_log(tmp_path, cli) -> None:
    """An EXTERN FUNC in the program BTF: BPF_BTF_LOAD says 'Invalid func linkage'."""
    from hand_artifacts import ArtifactMaker, flat
    from sigbpf.artifact.format import Artifact
    from sigbpf.asm import exit_, mov64_imm
    from sigbpf.btf import Func, FuncLinkage

    m = ArtifactMaker()
    m.btf.add(Func("bpf_rcu_read_lock", m.void_proto, FuncLinkage.EXTERN))
    art = m.artifact(flat(mov64_imm(0, 0), exit_()), [])
    path = tmp_path / "badbtf.sbpf"
    path.write_bytes(Artifact(art.name, art.btf, art.programs).encode())
    proc = cli("load", path)
    assert_one_line_error(proc, 1, "BPF_BTF_LOAD")
    assert "Invalid func linkage" in proc.stdout


def test_forced_kernel_resolution_reports_the_kernels_answer(cli, artifacts) -> None:
    """--resolution kernel hands src_reg 3 to this kernel, which does not know it.

    The native path (the kernel resolves src_reg 3 itself) cannot succeed on
    6.18: its verifier answers 'BPF_CALL uses reserved fields' (EINVAL), the
    probe's own answer.  The error line says so and names the way out."""
    proc = cli("load", artifacts["rcu"], "--resolution", "kernel", "--json")
    assert_one_line_error(proc, 1, "loading program 'rcu' (BPF_PROG_LOAD): Invalid argument "
                                   "(EINVAL): this kernel does not resolve src_reg 3 (PROG_BTF) "
                                   "kfunc calls itself (the verifier answers 'BPF_CALL uses "
                                   "reserved fields', as the probe does); load with "
                                   "--resolution userspace (or auto)")
    doc = json.loads(proc.stdout)
    assert doc["resolution"] == "kernel"
    # The kernel got the call as the artifact has it: src_reg 3 at insn 0 (bpf_rcu_read_lock,
    # prog-BTF FUNC [3]): the last instruction it looked at, then its answer.
    log = doc["programs"][0]["log"].splitlines()
    assert log[-3:-1] == ["0: (85) call unknown#3", "BPF_CALL uses reserved fields"]
    text = cli("load", artifacts["rcu"], "--resolution", "kernel")
    assert text.stdout.startswith("resolution: kernel (resolution forced to kernel; the probe says: "
                                  "kernel answers 'BPF_CALL uses reserved fields' for src_reg 3)\n")
    assert "verifier log:\n" in text.stdout and "  BPF_CALL uses reserved fields\n" in text.stdout


def test_kernel_path_passes_a_program_without_kfunc_calls_unchanged(cli, artifacts) -> None:
    """The native path's other half, observable here: instructions and program BTF go to the
    kernel as the artifact has them (the tag the kernel computes is that of the artifact's
    instructions), and the program runs."""
    proc = cli("load", artifacts["ctx"], "--resolution", "kernel", "--run", "--ctx",
               "0000000007000000", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc == {"resolution": "kernel", "kfuncs": [],
                   "programs": [{"name": "ctx_n", "loaded": True, "retval": 7, "log": ""}]}
    from sigbpf.artifact.format import Artifact
    from sigbpf.kernel.info import prog_info
    from sigbpf.kernel.loader import load_artifact
    from sigbpf.resolve.digest import prog_tag

    art = Artifact.decode(artifacts["ctx"].read_bytes())
    with load_artifact(art, resolution="kernel") as loaded:
        assert prog_info(loaded.prog_fds["ctx_n"]).tag == prog_tag(art.programs[0].insns)


def test_artifact_with_malformed_program_btf_is_bad_input(cli, tmp_path) -> None:
    """Well-framed artifact, program BTF that is not BTF: exit 2 naming the file and the
    place in the program BTF, before anything reaches the kernel (the kernel's own words
    for the first case: BPF_BTF_LOAD says "Invalid kind:31" too)."""
    from sigbpf.artifact.format import Artifact

    art = rcu_artifact()
    bad_kind = bytearray(art.btf)
    bad_kind[24 + 7] = 31  # type [1]: info's kind bits := 31
    for i, (btf, message) in enumerate([
            (bytes(bad_kind), "program BTF: offset 0x1c: type [1]: Invalid kind:31"),
            (art.btf[:30], "program BTF: offset 0xc: Total section length too long")]):
        path = tmp_path / f"badbtf{i}.sbpf"
        path.write_bytes(Artifact(art.name, btf, art.programs, art.maps, art.kfuncs).encode())
        proc = cli("load", path, "--json")
        assert_one_line_error(proc, 2, f"{path}: {message}")
        assert proc.stdout == ""
