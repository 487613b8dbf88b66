"""Format 1.1: everything kernel-specific recorded as a name and a rule, bound at load time.

tests/progs/bind_maps.c has what libbpf fixes up when it loads (a perf event
array without max_entries, a ring buffer size, a map-in-map with its inner
prototype and an initial slot, a prog array with a program in slot 0) and
programs with attach targets (tp_btf, and an fentry on a function no kernel
has).  The build records names and rules; the loader binds them against this
kernel exactly as libbpf does (bpftool prog loadall is the reference).
"""

from __future__ import annotations

import json
import mmap
import struct
import subprocess
from dataclasses import replace

import pytest

from conftest import BPFTOOL, VMLINUX, assert_one_line_error

from sigbpf.artifact.build import build_artifact
from sigbpf.artifact.format import (
    Artifact, ArtifactMapFlags, AttachTarget, MapKind, MapSlot, SlotKind,
)
from sigbpf.btf import BTF, Kind
from sigbpf.errors import ArtifactError, SignatureError

pytest_plugins = ["sign_fixtures"]  # key pairs


@pytest.fixture(scope="module")
def bind_maps(bpf_object):
    return bpf_object("bind_maps")


@pytest.fixture(scope="module")
def art(bind_maps) -> Artifact:
    return build_artifact(bind_maps)


def _map(art: Artifact, name: str):
    return next(m for m in art.maps if m.name == name)


def test_build_records_names_and_rules_not_values(art, bind_maps) -> None:
    assert art.version == (1, 1)
    events, rb, outer, jmp = (_map(art, n) for n in ("events", "rb", "outer", "jmp"))
    # perf event array without max_entries: 0 in the artifact, the rule in its flags
    assert events.max_entries == 0 and events.flags & ArtifactMapFlags.MAX_ENTRIES_CPUS
    assert (events.btf_key_type_id, events.btf_value_type_id) == (0, 0)  # created without BTF
    # ring buffer: the declared size and the page-rounding rule
    assert rb.max_entries == 5000 and rb.flags & ArtifactMapFlags.RINGBUF_SIZE
    # map-in-map: the inner prototype is the last map, flagged, and the slot names inner1
    inner = art.maps[outer.inner_map]
    assert outer.inner_map == len(art.maps) - 1 and inner.inner_template
    assert inner.name == "outer.inner" and (inner.key_size, inner.value_size) == (4, 8)
    names = [m.name for m in art.maps]
    assert outer.slots == (MapSlot(1, SlotKind.MAP, names.index("inner1")),)
    progs = [p.name for p in art.programs]
    assert jmp.slots == (MapSlot(0, SlotKind.PROG, progs.index("tail_target")),)
    # attach targets: libbpf's prefix and kind, no id
    on_switch = art.program("on_switch")
    assert on_switch.attach == AttachTarget("btf_trace_sched_switch", int(Kind.TYPEDEF))
    assert art.program("on_missing").attach == AttachTarget("sigbpf_no_such_function",
                                                            int(Kind.FUNC))
    # byte-identical, canonical, and a round trip
    data = art.encode()
    assert build_artifact(bind_maps).encode() == data
    assert Artifact.decode(data) == art
    assert struct.unpack_from("<HH", data, 8) == (1, 1)


@pytest.mark.parametrize("section, prog_type, attach, want", [
    ("lsm/file_open", "LSM", "LSM_MAC", ("bpf_lsm_file_open", Kind.FUNC, "")),
    ("lsm_cgroup/socket_bind", "LSM", "LSM_CGROUP", ("bpf_lsm_socket_bind", Kind.FUNC, "")),
    ("iter/task", "TRACING", "TRACE_ITER", ("bpf_iter_task", Kind.FUNC, "")),
    ("tp_btf/sched_switch", "TRACING", "TRACE_RAW_TP", ("btf_trace_sched_switch", Kind.TYPEDEF, "")),
    ("fentry/do_unlinkat", "TRACING", "TRACE_FENTRY", ("do_unlinkat", Kind.FUNC, "")),
    ("fexit/bpf_testmod:bpf_testmod_test_read", "TRACING", "TRACE_FEXIT",
     ("bpf_testmod_test_read", Kind.FUNC, "bpf_testmod")),
    ("freplace/handler", "EXT", None, None),
])
def test_attach_target_rules_are_libbpfs(section, prog_type, attach, want) -> None:
    """libbpf's btf_get_kernel_prefix_kind and find_kernel_btf_id's module:function form."""
    from sigbpf.artifact.build import attach_target
    from sigbpf.elf.progtypes import AttachType, ProgType

    target = attach_target(ProgType[prog_type], AttachType[attach] if attach else None,
                           section.partition("/")[2])
    if want is None:
        assert target is None
    else:
        assert target == AttachTarget(want[0], int(want[1]), want[2])


def test_older_readers_refuse_newer_minor_versions(art) -> None:
    data = bytearray(art.encode())
    struct.pack_into("<H", data, 10, 2)
    with pytest.raises(ArtifactError, match=r"unsupported format version 1\.2 \(this reader "
                                            r"knows up to 1\.1\)"):
        Artifact.decode(bytes(data))
    # a 1.1 section type in a 1.0 file is unknown there
    one_oh = bytearray(build_artifact("examples/task_iter.bpf.o").encode())
    assert struct.unpack_from("<H", one_oh, 10) == (0,)
    struct.pack_into("<I", one_oh, 32 + 16 * 11, 16)  # KFUNCS entry relabelled ATTACH
    with pytest.raises(ArtifactError, match="unknown section type 0x10"):
        Artifact.decode(bytes(one_oh))


def test_bad_1_1_records_are_located_errors(art) -> None:
    bad_slot = replace(art, maps=tuple(replace(m, slots=(MapSlot(0, SlotKind.PROG, 99),))
                                       if m.name == "jmp" else m for m in art.maps))
    with pytest.raises(ArtifactError, match="slot 0 names prog 99, out of range"):
        bad_slot.encode()
    data = bytearray(art.encode())
    table = {struct.unpack_from("<I", data, 32 + 16 * i)[0]: 32 + 16 * i for i in range(17)}
    _, _, off, size = struct.unpack_from("<IIII", data, table[17])  # MAP_SLOTS
    struct.pack_into("<I", data, off + 8, 7)  # slot kind 7
    with pytest.raises(ArtifactError, match=r"map_slots section record 0: unknown slot kind 7"):
        Artifact.decode(bytes(data), file="x.sbpf")


def test_load_binds_for_this_kernel_as_libbpf_does(kernel, art) -> None:
    from sigbpf.kernel.cpus import possible_cpus
    from sigbpf.kernel.info import map_info, prog_info
    from sigbpf.kernel.loader import load_artifact
    from sigbpf.kernel.maps import lookup_elem

    vmlinux = BTF.load_vmlinux()
    with load_artifact(art, skip_missing=True) as loaded:
        report = loaded.report
        assert [p.name for p in report.programs] == ["tail_target", "on_switch"]
        assert all(p.loaded for p in report.programs)
        assert report.skipped == [("on_missing", "prog 'on_missing': failed to find kernel BTF "
                                   "type ID of 'sigbpf_no_such_function' (FUNC, searched vmlinux "
                                   "or any module): this kernel has no such attach target")]
        fds = dict(zip((m.name for m in art.maps), loaded.map_fds))
        assert map_info(fds["events"]).max_entries == possible_cpus()
        page = mmap.PAGESIZE
        assert map_info(fds["rb"]).max_entries == page * 2 if page == 4096 else page
        # the initial slots hold the inner map and the program (the kernel reports their ids)
        inner_id = map_info(fds["inner1"]).id
        assert struct.unpack("<I", lookup_elem(fds["outer"], struct.pack("<I", 1), 4)) == (inner_id,)
        tail = loaded.prog_fds["tail_target"]
        assert struct.unpack("<I", lookup_elem(fds["jmp"], struct.pack("<I", 0), 4)) == \
            (prog_info(tail).id,)
        # the attach target: vmlinux's btf_trace_sched_switch
        want = vmlinux.find_by_name_kind("btf_trace_sched_switch", Kind.TYPEDEF)
        for name in ("tail_target", "on_switch"):
            assert prog_info(loaded.prog_fds[name]).attach_btf_id == want


def test_libbpf_loads_the_same_object_the_same_way(kernel, bind_maps, tmp_path, art) -> None:
    """bpftool prog loadall (libbpf) on the same object: the same map sizes and attach ids."""
    pin = f"/sys/fs/bpf/sigbpf-bind-{tmp_path.name}"
    proc = subprocess.run([BPFTOOL, "prog", "loadall", str(bind_maps), pin],
                          capture_output=True, text=True)
    try:
        # libbpf fails on the missing attach target, as sigbpf does without --skip-missing
        assert proc.returncode != 0
        assert "failed to find kernel BTF type ID of 'sigbpf_no_such_function': -3" in proc.stderr
    finally:
        subprocess.run(["rm", "-rf", pin])
    from sigbpf.kernel.loader import load_artifact

    with load_artifact(art) as loaded:
        bad = [p for p in loaded.report.programs if not p.loaded]
        assert [p.name for p in bad] == ["on_missing"]
        assert bad[0].errno == 3  # ESRCH, libbpf's -3


def test_cli_skip_missing_and_programs(kernel, cli, bind_maps) -> None:
    proc = cli("load", bind_maps, "--json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert {p["name"]: p["loaded"] for p in doc["programs"]} == {
        "tail_target": True, "on_switch": True, "on_missing": False}
    proc = cli("load", bind_maps, "--skip-missing", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [s["name"] for s in doc["skipped"]] == ["on_missing"]
    proc = cli("load", bind_maps, "--programs", "on_switch,tail_target")
    assert proc.returncode == 0, proc.stderr
    assert "program on_missing: skipped: not selected" in proc.stdout
    assert "attach target btf_trace_sched_switch@vmlinux:" in proc.stdout
    assert_one_line_error(cli("load", bind_maps, "--programs", "nope"), 2,
                          "no program named 'nope' in the artifact")


def test_signature_covers_the_names(art, key_pair) -> None:
    """Renaming an attach target or a slot's program in a signed artifact breaks the signature,
    and verify names what changed."""
    from sigbpf.sign.signed import sign_artifact
    from sigbpf.sign.verify import verify_signed

    key, cert = key_pair.key, key_pair.cert
    signed = sign_artifact(art.encode(), key, cert)
    verify_signed(signed, cert)

    def tampered(change) -> bytes:
        whole = Artifact.decode(signed)
        return change(whole).encode()

    def rename_attach(a: Artifact) -> Artifact:
        progs = tuple(replace(p, attach=AttachTarget("btf_trace_sched_wakeup", int(Kind.TYPEDEF)))
                      if p.name == "on_switch" else p for p in a.programs)
        return replace(a, programs=progs)

    with pytest.raises(SignatureError, match="program 1 'on_switch' attach target: changed "
                                             "since signing"):
        verify_signed(tampered(rename_attach), cert)

    def move_slot(a: Artifact) -> Artifact:
        return replace(a, maps=tuple(replace(m, slots=(MapSlot(1, SlotKind.PROG, 0),))
                                     if m.name == "jmp" else m for m in a.maps))

    with pytest.raises(SignatureError, match="map 2 'jmp' initial slots: changed since signing"):
        verify_signed(tampered(move_slot), cert)

    def cpu_rule_off(a: Artifact) -> Artifact:
        return replace(a, maps=tuple(replace(m, flags=ArtifactMapFlags.NONE, max_entries=1)
                                     if m.name == "events" else m for m in a.maps))

    with pytest.raises(SignatureError, match="'events' definition: changed since signing"):
        verify_signed(tampered(cpu_rule_off), cert)


@pytest.mark.parametrize("target, message", [
    ("btf_trace_sched_wakeup", "func 'sched_wakeup' doesn't have 4-th argument"),
    ("btf_trace_sched_switch", None),
])
def test_the_kernel_checks_a_renamed_attach_target_against_what_the_program_reads(
        kernel, art, target, message) -> None:
    """Measured (docs/FINDINGS.md): an attach target is bound by name, like a kfunc, and the
    verifier then checks the program's context accesses against that target's prototype.  A
    tp_btf program that reads sched_switch's third argument, bound by name to sched_wakeup
    (one argument), is refused with EACCES and the verifier's own words."""
    from sigbpf.kernel.loader import load_artifact

    renamed = replace(art, programs=tuple(
        replace(p, attach=AttachTarget(target, int(Kind.TYPEDEF))) if p.name == "on_switch"
        else p for p in art.programs))
    with load_artifact(renamed, programs=["on_switch"]) as loaded:
        (outcome,) = loaded.report.programs
        if message is None:
            assert outcome.loaded
        else:
            assert not outcome.loaded and outcome.errno == 13 and outcome.refused_by == "kernel"
            assert message in outcome.log
            assert "invalid bpf_context access off=16 size=8" in outcome.log


def test_struct_ops_programs_name_their_kernel_struct_and_member(kernel, bpf_object,
                                                                 tmp_path) -> None:
    """struct_ops: each program's target is the kernel struct and the member it implements,
    by name; the loader passes the struct's id and the member's index in *this* kernel's
    struct (expected_attach_type), as libbpf does, and libbpf loads the same object."""
    from sigbpf.kernel.info import prog_info
    from sigbpf.kernel.loader import load_artifact

    path = bpf_object("struct_ops_cc")
    art = build_artifact(path)
    targets = {p.name: p.attach for p in art.programs}
    assert targets == {
        "sigbpf_ssthresh": AttachTarget("tcp_congestion_ops", int(Kind.STRUCT), "", "ssthresh"),
        "sigbpf_undo_cwnd": AttachTarget("tcp_congestion_ops", int(Kind.STRUCT), "", "undo_cwnd"),
        "sigbpf_cong_avoid": AttachTarget("tcp_congestion_ops", int(Kind.STRUCT), "", "cong_avoid"),
    }
    vmlinux = BTF.load_vmlinux()
    ops = vmlinux.find_by_name_kind("tcp_congestion_ops", Kind.STRUCT)
    members = [m.name for m in vmlinux[ops].members]
    with load_artifact(art) as loaded:
        assert loaded.report.ok, loaded.report.programs
        for name in targets:
            assert prog_info(loaded.prog_fds[name]).attach_btf_id == ops
    from sigbpf.kernel.kernel_btf import KernelBTFs, bind_attach_target

    bound = bind_attach_target(targets["sigbpf_cong_avoid"], KernelBTFs(vmlinux))
    assert bound.member_index == members.index("cong_avoid")
    pin = f"/sys/fs/bpf/sigbpf-stops-{tmp_path.name}"
    try:
        proc = subprocess.run([BPFTOOL, "prog", "loadall", str(path), pin],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    finally:
        subprocess.run(["rm", "-rf", pin])


def test_a_kconfig_symbol_the_kernel_lacks_is_a_one_line_error(kernel, cli, bpf_object) -> None:
    """Bad input: an artifact naming a kconfig symbol this kernel does not have.  One line
    with libbpf's words, exit 1 (the kernel lacks it), and no program of the run loaded."""
    proc = cli("load", bpf_object("bind_bad_kconfig"), "--run")
    assert_one_line_error(proc, 1, "extern 'CONFIG_SIGBPF_NO_SUCH_OPTION' (strong): not resolved")
    assert proc.stdout == ""


def test_attach_targets_are_searched_in_module_btf(kernel, corpus_btf) -> None:
    """libbpf's find_kernel_btf_id: vmlinux first, then each module's split BTF; a
    ``module:function`` target only in that module.  Debian 6.12's xfs module BTF has
    xfs_* functions vmlinux lacks; binding one needs that module's BTF object fd, which this
    machine (no module BTF) cannot give: the error names the module it was found in."""
    from sigbpf.errors import NotFoundError
    from sigbpf.kernel.kernel_btf import KernelBTFs, bind_attach_target
    from sigbpf.resolve.modules import ModuleBTF

    vmlinux = BTF.from_file(corpus_btf("6.12.95+deb12-amd64.btf"), validate=False)
    xfs = ModuleBTF.from_file(str(corpus_btf("6.12.95+deb12-amd64.xfs.btf")), vmlinux)
    kernel = KernelBTFs(vmlinux, (xfs,))
    name = next(n for n in ("xfs_file_open", "xfs_vn_getattr", "xfs_fs_fill_super")
                if xfs.btf.find_by_name_kind(n, Kind.FUNC))
    # vmlinux functions bind without a module
    assert bind_attach_target(AttachTarget("do_unlinkat", int(Kind.FUNC)), kernel).module is None
    with pytest.raises(NotFoundError, match="module 'xfs': the kernel lists no BTF object"):
        bind_attach_target(AttachTarget(name, int(Kind.FUNC)), kernel)
    with pytest.raises(NotFoundError, match=f"failed to find kernel BTF type ID of '{name}' "
                                            r"\(FUNC, searched vmlinux\)"):
        bind_attach_target(AttachTarget(name, int(Kind.FUNC), "vmlinux"), kernel)
    with pytest.raises(NotFoundError, match="searched module 'nf_conntrack'"):
        bind_attach_target(AttachTarget(name, int(Kind.FUNC), "nf_conntrack"), kernel)


def test_the_signed_loader_binds_the_same_names_in_the_kernel(kernel, bpf_object) -> None:
    """Through the signed loader (sigbpf.loadergen, protocol v1), the same object gets the
    same machine-specific values the userspace loader gives it: one perf-event slot per
    possible CPU, the ring buffer rounded to pages, the inner map and the program in their
    slots, and the tp_btf programs bound to btf_trace_sched_switch -- resolved in the kernel
    by name (bpf_btf_find_by_name_kind), nothing kernel-specific in the loader's bytes."""
    from sigbpf.kernel.cpus import possible_cpus
    from sigbpf.kernel.info import map_info, prog_info
    from sigbpf.kernel.maps import lookup_elem
    from sigbpf.loadergen.generate import generate
    from sigbpf.loadergen.format import Protocol
    from sigbpf.loadergen.run import load_and_run

    art = build_artifact(bpf_object("bind_maps", "-DSIGBPF_NO_MISSING_TARGET"))
    loader = generate(art, Protocol.V1)
    assert generate(art, Protocol.V1).encode() == loader.encode()  # deterministic
    with load_and_run(loader) as result:
        maps, progs = result.map_fds, result.prog_fds
        assert set(progs) == {"tail_target", "on_switch"}
        assert map_info(maps["events"]).max_entries == possible_cpus()
        assert map_info(maps["rb"]).max_entries == (8192 if mmap.PAGESIZE == 4096
                                                   else mmap.PAGESIZE)
        inner_id = map_info(maps["inner1"]).id
        assert struct.unpack("<I", lookup_elem(maps["outer"], struct.pack("<I", 1), 4)) == \
            (inner_id,)
        assert struct.unpack("<I", lookup_elem(maps["jmp"], struct.pack("<I", 0), 4)) == \
            (prog_info(progs["tail_target"]).id,)
        want = BTF.load_vmlinux().find_by_name_kind("btf_trace_sched_switch", Kind.TYPEDEF)
        assert prog_info(progs["on_switch"]).attach_btf_id == want
