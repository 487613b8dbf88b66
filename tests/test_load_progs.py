"""End to end: the C test programs built once with ``sigbpf build``, loaded and run here.

For each program in tests/progs/kfunc_*.c (syscall programs calling real
kfuncs): ``sigbpf build`` then ``sigbpf load --run --json``; its return value
is checked, every kfunc's btf_id is compared with what libbpf resolves for the
same name (``btf__find_by_name_kind`` through ctypes), and the program as the
kernel holds it is compared with the same object loaded by the reference
loader, ``bpftool prog loadall``.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess

import pytest

from kfunc_programs import N, PROGRAMS, ctx_bytes

from conftest import BPFTOOL
from libbpf_ref import vmlinux as libbpf_vmlinux

from sigbpf.asm import Instruction
from sigbpf.asm.opcodes import LD_IMM64_CODE, PseudoLdImm64

pytestmark = pytest.mark.usefixtures("kernel")



def ctx_hex() -> str:
    return ctx_bytes().hex()


@pytest.fixture(scope="module")
def built(bpf_object, cli, tmp_path_factory) -> dict[str, tuple[str, str]]:
    """name -> (object path, artifact path), built once with the CLI."""
    out = tmp_path_factory.mktemp("artifacts")
    paths = {}
    for name in PROGRAMS:
        obj = bpf_object(name)
        art = out / f"{name}.sbpf"
        proc = cli("build", obj, "-o", art)
        assert proc.returncode == 0, proc.stderr
        paths[name] = (str(obj), str(art))
    return paths


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_build_once_load_and_run(cli, built, name) -> None:
    prog, expected = PROGRAMS[name]
    proc = cli("load", built[name][1], "--run", "--ctx", ctx_hex(), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["resolution"] == "userspace"
    assert doc["programs"] == [{"name": prog, "loaded": True, "retval": expected(), "log": ""}]
    ref = libbpf_vmlinux()
    assert doc["kfuncs"], "every test program calls kfuncs"
    for k in doc["kfuncs"]:
        libbpf_id = ref.find(k["name"], 12)
        if k["btf_id"] == 0:  # a weak kfunc this kernel lacks: libbpf does not find it either
            assert libbpf_id < 0 and name == "kfunc_weak"
        else:
            assert k["btf_id"] == libbpf_id, k


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_object_and_artifact_load_the_same(cli, built, name) -> None:
    """``sigbpf load OBJ`` builds in memory: same result as loading the built artifact."""
    obj, art = built[name]
    from_obj = cli("load", obj, "--run", "--ctx", ctx_hex(), "--json")
    from_art = cli("load", art, "--run", "--ctx", ctx_hex(), "--json")
    assert from_obj.returncode == from_art.returncode == 0
    assert json.loads(from_obj.stdout) == json.loads(from_art.stdout)


def _mask_maps(xlated: bytes) -> list[Instruction]:
    """Map references in a dump carry map ids, which differ between loads: zero them."""
    insns = Instruction.decode(xlated)
    for i, insn in enumerate(insns):
        if insn.code == LD_IMM64_CODE and insn.src in (PseudoLdImm64.MAP_FD, PseudoLdImm64.MAP_VALUE):
            insns[i] = insn.replace(imm=0)
    return insns


@pytest.fixture(scope="module")
def bpffs_dir():
    base = f"/sys/fs/bpf/sigbpf-test-{os.getpid()}"
    if not os.path.ismount("/sys/fs/bpf"):
        subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=True)
    os.makedirs(base, exist_ok=True)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_same_program_as_bpftool_loadall(built, bpffs_dir, name) -> None:
    """The kernel's view of sigbpf's load equals its view of bpftool's (libbpf's) load."""
    from sigbpf.artifact.build import build_from_file
    from sigbpf.kernel.bpffs import obj_get
    from sigbpf.kernel.info import prog_info
    from sigbpf.kernel.loader import load_artifact
    from sigbpf.kernel.run import run_program

    obj, _ = built[name]
    prog, expected = PROGRAMS[name]
    pin_dir = f"{bpffs_dir}/{name}"
    proc = subprocess.run([BPFTOOL, "prog", "loadall", obj, pin_dir],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    try:
        with obj_get(f"{pin_dir}/{prog}") as ref_fd:
            ref = prog_info(ref_fd)
            ref_ret = run_program(ref_fd, struct.pack("<ii", os.getpid(), N)).retval
        with load_artifact(build_from_file(obj)) as loaded:
            ours = prog_info(loaded.prog_fds[prog])
    finally:
        shutil.rmtree(pin_dir, ignore_errors=True)
    assert ref_ret == expected()
    assert _mask_maps(ours.xlated_insns) == _mask_maps(ref.xlated_insns)
    assert ours.verified_insns == ref.verified_insns
    assert len(ours.map_ids) == len(ref.map_ids)
    if not ref.map_ids and name != "kfunc_weak":
        # No map: the instructions passed were byte-identical, so the tags are equal too.
        # (Maps: libbpf passes fds, sigbpf fd_array indexes.  kfunc_weak: the dead call of
        # the absent kfunc is sigbpf's poisoned helper call (FORMAT.md, as newer libbpf's
        # poison_kfunc_call); libbpf 1.1 leaves a src_reg 2, imm 0 call there.  The
        # verifier removes the dead code either way, so the xlated programs are equal.)
        assert ours.tag == ref.tag
