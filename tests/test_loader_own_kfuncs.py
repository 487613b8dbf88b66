"""A loader whose own instructions call kfuncs in PROG_BTF form (``sigbpf loader --own-kfuncs``).

The seed's scenario: the loader's cleanup closes its ``fd_array`` with an
open-coded ``bpf_iter_num`` loop, each kfunc called with ``src_reg 3`` and
``imm`` = a FUNC of the loader's own BTF (format 1.4).  Here, on 6.18 (no
seed): the kernel refuses those calls ("BPF_CALL uses reserved fields"), an
unsigned loader is resolved in userspace with the seed's rules and runs, and a
signed one is refused before loading (resolving it would change the signed
instructions).  The patched kernel's side is tests/test_seed_loader.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import assert_one_line_error

pytest_plugins = ["sign_fixtures"]  # key pairs

RCU_CTX = "020000000a000000"


@pytest.fixture(scope="module")
def own(bpf_object, tmp_path_factory, key_pair) -> dict[str, Path]:
    """kfunc_rcu_maps' loaders with their own kfunc calls (v1 and v2, signed and not), and
    the plain v1 loader to compare with."""
    from sigbpf.artifact.build import build_from_file
    from sigbpf.loadergen.generate import generate
    from sigbpf.loadergen.sign import sign_loader

    out = tmp_path_factory.mktemp("own_kfuncs")
    art = build_from_file(bpf_object("kfunc_rcu_maps"))
    files = {"plain": out / "plain.sbpl"}
    files["plain"].write_bytes(generate(art, 1).encode())
    for p in (1, 2):
        data = generate(art, p, own_kfuncs=True).encode()
        files[f"v{p}"] = out / f"v{p}.sbpl"
        files[f"v{p}"].write_bytes(data)
        files[f"v{p}.signed"] = out / f"v{p}.signed"
        files[f"v{p}.signed"].write_bytes(sign_loader(data, key_pair.key, key_pair.cert))
    return files


def test_format_1_4_round_trips_and_names_the_calls(own, cli, bpf_object, tmp_path) -> None:
    """The loader file carries its own BTF (format 1.4), read back equal; the calls are
    src_reg 3 with imm = a FUNC of that BTF, named in the disassembly; generating twice
    (through the CLI) gives the same bytes."""
    from sigbpf.asm import PseudoCall
    from sigbpf.btf import BTF, Kind
    from sigbpf.loadergen.format import VERSION_OWN_BTF, Loader

    data = own["v1"].read_bytes()
    loader = Loader.decode(data)
    assert (int.from_bytes(data[8:10], "little"), int.from_bytes(data[10:12], "little")) \
        == VERSION_OWN_BTF
    assert loader.encode() == data
    own_btf = BTF.parse(loader.own_btf.raw)
    calls = [(i, own_btf.name_of(insn.imm)) for i, insn in enumerate(loader.insns)
             if insn.is_call and insn.src == PseudoCall.KFUNC_CALL_PROG_BTF]
    assert [name for _, name in calls] == ["bpf_iter_num_new", "bpf_iter_num_next",
                                           "bpf_iter_num_destroy"]
    assert all(own_btf.kind_of(insn.imm) == Kind.FUNC for insn in loader.insns
               if insn.is_call and insn.src == PseudoCall.KFUNC_CALL_PROG_BTF)
    assert own_btf.kind_of(loader.own_btf.main_id) == Kind.FUNC
    a, b = tmp_path / "a.sbpl", tmp_path / "b.sbpl"
    for out in (a, b):
        proc = cli("loader", bpf_object("kfunc_rcu_maps"), "-o", out, "--protocol", "v1",
                   "--own-kfuncs")
        assert proc.returncode == 0, proc.stderr
    assert a.read_bytes() == b.read_bytes() == data
    disasm = cli("loader", a, "--disasm").stdout
    assert "kfunc bpf_iter_num_next (PROG_BTF: the loader's own BTF" in disasm


@pytest.mark.usefixtures("kernel")
def test_this_kernel_refuses_the_calls_and_sigbpf_resolves_them(own, cli) -> None:
    """6.18 has no seed: left to the kernel, the loader is refused (EINVAL, "BPF_CALL uses
    reserved fields", in one line); by default sigbpf resolves the loader's own calls in
    userspace with the seed's rules, says so, and the loader runs like the plain one."""
    refused = cli("load", own["v1"], "--resolution", "kernel")
    assert_one_line_error(refused, 1, "BPF_CALL uses reserved fields")
    assert "EINVAL" in refused.stderr
    plain = cli("load", own["plain"], "--run", "--ctx", RCU_CTX, "--json")
    ran = cli("load", own["v1"], "--run", "--ctx", RCU_CTX, "--json")
    assert plain.returncode == 0 and ran.returncode == 0, (plain.stderr, ran.stderr)
    doc = json.loads(ran.stdout)
    assert doc["loader"]["own_kfuncs_resolved_by"] == "userspace"
    assert any("resolved in userspace with the seed's rules" in n for n in doc["notes"])
    assert [(p["name"], p["retval"]) for p in doc["programs"]] == \
        [(p["name"], p["retval"]) for p in json.loads(plain.stdout)["programs"]]


@pytest.mark.usefixtures("kernel")
def test_a_signed_loader_with_own_calls_is_refused_before_loading(own, cli, key_files) -> None:
    """Resolving a signed loader's calls in userspace would change the signed instructions:
    with --keyring, on a kernel without the seed, sigbpf refuses before loading (exit 2);
    --force hands the loader to the kernel as signed."""
    proc = cli("load", own["v1.signed"], "--cert", key_files["cert"], "--keyring", "session")
    assert_one_line_error(proc, 2, "the signed loader calls kfuncs in PROG_BTF form")
    assert "would change the signed instructions" in proc.stderr
    forced = cli("load", own["v1.signed"], "--cert", key_files["cert"], "--keyring", "session",
                 "--force")
    assert_one_line_error(forced, 1, "EOPNOTSUPP")  # 6.18 cannot check signatures at all


@pytest.mark.usefixtures("kernel")
def test_the_cleanup_loop_closes_every_fd(bpf_object) -> None:
    """The loop is the loader's cleanup: a loader that fails after creating its maps and
    loading a program (then a strong kfunc this kernel lacks: -ENOENT) leaves no fd open
    in the caller, as the unrolled cleanup does."""
    from sigbpf.artifact.build import build_from_file
    from sigbpf.errors import KernelError
    from sigbpf.loadergen.generate import generate
    from sigbpf.loadergen.run import load_and_run

    art = build_from_file(bpf_object("loader_fail_late"))
    assert len(art.maps) == 2 and len(art.programs) == 2
    for own_kfuncs in (False, True):
        loader = generate(art, 1, own_kfuncs=own_kfuncs)
        before = set(os.listdir("/proc/self/fd"))
        with pytest.raises(KernelError) as err:
            load_and_run(loader, resolve_own=True)
        assert err.value.errno == 2, err.value  # ENOENT, from the loader
        assert set(os.listdir("/proc/self/fd")) == before, own_kfuncs
