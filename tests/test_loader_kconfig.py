"""A loader of an artifact with ``.kconfig`` externs (docs/FORMAT.md 8.1, 8.2): the runner
computes the KCONFIG map's value and passes its address as the map descriptor's
``initial_value``; the loader copies it (``bpf_copy_from_user``), writes and freezes the map.
The loaded map holds what the userspace loader writes, and the program returns the same."""

from __future__ import annotations

import errno
import json
import struct

import pytest

from sigbpf.artifact.format import MapKind


@pytest.fixture(scope="module")
def kconfig_artifact(bpf_object):
    from sigbpf.artifact.build import build_artifact

    return build_artifact(bpf_object("kconfig_system"))


def test_loader_records_the_kconfig_externs(kconfig_artifact) -> None:
    """Format 1.3 (flag KCONFIG): the externs round-trip; a reader of 1.0-1.2 would refuse
    the version; loaders without externs keep their format (tests/test_loader_attach.py)."""
    from sigbpf.loadergen.format import Loader, LoaderFlags
    from sigbpf.loadergen.generate import generate

    loader = generate(kconfig_artifact, 1)
    data = loader.encode()
    assert data[8:12] == b"\x01\x00\x03\x00" and data[20] & LoaderFlags.KCONFIG
    assert struct.unpack_from("<I", data, 60)[0] == len(kconfig_artifact.kconfig)
    back = Loader.decode(data)
    assert back.encode() == data and back == loader
    assert back.kconfig.externs == tuple(kconfig_artifact.kconfig)
    (index,) = [i for i, m in enumerate(kconfig_artifact.maps) if m.kind == MapKind.KCONFIG]
    assert back.kconfig.map_index == index
    assert back.kconfig.value_size == kconfig_artifact.maps[index].value_size
    assert generate(kconfig_artifact, 1).encode() == data  # deterministic


@pytest.mark.usefixtures("kernel")
def test_loader_writes_the_kconfig_map_like_the_userspace_loader(kconfig_artifact) -> None:
    from sigbpf.kernel.loader import load_artifact
    from sigbpf.kernel.maps import lookup_elem
    from sigbpf.kernel.run import run_program
    from sigbpf.loadergen.generate import generate
    from sigbpf.loadergen.run import load_and_run

    art = kconfig_artifact
    (index,) = [i for i, m in enumerate(art.maps) if m.kind == MapKind.KCONFIG]
    km = art.maps[index]
    with load_artifact(art, run=True) as direct:
        assert direct.report.ok, direct.report.programs
        (dmap,) = [v for v in direct.maps.values() if v.spec.kind == MapKind.KCONFIG]
        expected = dmap.lookup_bytes(0)
        direct_ret = run_program(direct.prog_fds["kconfig_system"]).retval

    loader = generate(art, 1)
    with load_and_run(loader) as result:
        value = lookup_elem(result.map_fds[km.name], struct.pack("<I", 0), km.value_size)
        assert value == expected
        assert any(value)
        assert run_program(result.prog_fds["kconfig_system"]).retval == direct_ret


@pytest.mark.usefixtures("kernel")
def test_loader_without_initial_value_returns_einval(kconfig_artifact) -> None:
    """The ctx built by hand, the KCONFIG descriptor's initial_value left 0: -EINVAL (zeros
    would be wrong values), through the cleanup block (no fd written to the ctx)."""
    from sigbpf.elf.progtypes import ProgFlags, ProgType
    from sigbpf.elf.maps import MapType
    from sigbpf.kernel.info import map_info
    from sigbpf.kernel.maps import create_map, freeze, update_elem
    from sigbpf.kernel.program import ProgLoad, load_program
    from sigbpf.kernel.run import run_program
    from sigbpf.loadergen.emit import map_desc_offset
    from sigbpf.loadergen.generate import generate
    from sigbpf.loadergen.run import LOADER_LICENSE, build_ctx

    loader = generate(kconfig_artifact, 1)
    ctx = build_ctx(loader)
    assert struct.unpack_from("<Q", ctx, map_desc_offset(loader.kconfig.map_index) + 8)[0] == 0
    with create_map(MapType.ARRAY, 4, len(loader.blob), 1, name="__loader.map",
                    excl_prog_hash=loader.insns_sha256) as blob_map:
        update_elem(blob_map, struct.pack("<I", 0), loader.blob)
        freeze(blob_map)
        map_info(blob_map, with_hash=True)
        req = ProgLoad(prog_type=ProgType.SYSCALL, insns=loader.insn_bytes,
                       license=LOADER_LICENSE, name="__loader.prog", flags=ProgFlags.SLEEPABLE,
                       fd_array=(blob_map.fileno(),))
        with load_program(req) as prog:
            ran = run_program(prog, ctx)
    assert ran.retval == -errno.EINVAL
    assert ran.ctx[24:] == bytes(len(ran.ctx) - 24)  # no fd handed out


def test_light_skeleton_refuses_a_kconfig_loader(kconfig_artifact) -> None:
    """The C light skeleton leaves initial_value 0: its loader would return -EINVAL."""
    from sigbpf.errors import UsageError
    from sigbpf.loadergen.generate import generate
    from sigbpf.loadergen.skeleton import skeleton_header

    with pytest.raises(UsageError, match="kconfig"):
        skeleton_header(generate(kconfig_artifact, 2), "kc")


def test_struct_ops_programs_load_through_the_loader(kernel, cli, bpf_object, tmp_path) -> None:
    """A struct_ops program's expected_attach_type is its member's index in the running
    kernel's struct, which no helper computes: the loader file names ``STRUCT.member``, the
    caller passes the index in the program's ctx descriptor (unsigned, like kconfig values)
    and the loader finds the struct itself (bpf_btf_find_by_name_kind).  Loaded through the
    loader, the programs carry the same attach_btf_id as loaded directly; a wrong index is
    the kernel's refusal, so the index passed is the one used."""
    from sigbpf.btf import BTF, Kind
    from sigbpf.errors import KernelError
    from sigbpf.kernel.info import prog_info
    from sigbpf.loadergen.format import Loader
    from sigbpf.loadergen.run import load_and_run, member_indexes

    out = tmp_path / "stops.loader"
    proc = cli("loader", bpf_object("struct_ops_cc"), "-o", out)
    assert proc.returncode == 0, proc.stderr
    loader = Loader.decode(out.read_bytes())
    assert [p.attach_to for p in loader.progs] == ["tcp_congestion_ops.ssthresh",
                                                   "tcp_congestion_ops.undo_cwnd",
                                                   "tcp_congestion_ops.cong_avoid"]
    vmlinux = BTF.load_vmlinux()
    ops = vmlinux.find_by_name_kind("tcp_congestion_ops", Kind.STRUCT)
    names = [m.name for m in vmlinux[ops].members]
    assert member_indexes(loader) == {0: names.index("ssthresh"), 1: names.index("undo_cwnd"),
                                      2: names.index("cong_avoid")}
    with load_and_run(loader) as result:
        assert sorted(result.prog_fds) == sorted(p.name for p in loader.progs)
        for fd in result.prog_fds.values():
            assert prog_info(fd).attach_btf_id == ops
    # The member 'name' (a char array, not a function pointer): the kernel refuses.
    with pytest.raises(KernelError) as err:
        load_and_run(loader, members={0: names.index("name"), 1: names.index("undo_cwnd"),
                                      2: names.index("cong_avoid")})
    assert err.value.errno == errno.EINVAL
    loaded = cli("load", out, "--json")
    assert loaded.returncode == 0, loaded.stderr
    assert [p["loaded"] for p in json.loads(loaded.stdout)["programs"]] == [True] * 3
