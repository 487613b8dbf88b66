"""`sigbpf build`: what goes into an artifact, determinism, and the CLI's error contract.

Comparisons with the real tools (libbpf's linked instructions, the program
BTF libbpf loads, running the artifacts in the kernel) are in
tests/test_build_reference.py.
"""

from __future__ import annotations

import json
import shutil
import struct

import pytest

from conftest import assert_one_line_error
from sigbpf.artifact.build import build_artifact, build_from_file
from sigbpf.artifact.format import Artifact, KfuncSiteKind, MapKind
from sigbpf.asm import PseudoCall, PseudoLdImm64
from sigbpf.btf import BTF, Kind
from sigbpf.btf.types import Datasec, Func, FuncProto
from sigbpf.btf.kinds import FuncLinkage, VarLinkage
from sigbpf.errors import ArtifactError, ELFError, FormatError

KFUNC_PROGS = ("kfunc_task", "kfunc_rcu_maps", "kfunc_iter", "kfunc_cpumask", "kfunc_obj_new",
               "kfunc_weak", "build_link")


@pytest.fixture(scope="module")
def artifacts(bpf_object):
    return {name: build_from_file(bpf_object(name)) for name in KFUNC_PROGS}


def test_build_is_deterministic_across_runs_and_directories(bpf_object, cli, tmp_path):
    """The same object gives byte-identical artifacts on every run and from any directory."""
    outputs = []
    for sub in ("one", "two/deeper"):
        work = tmp_path / sub
        work.mkdir(parents=True)
        for name in ("kfunc_rcu_maps", "kfunc_task", "build_link"):
            shutil.copy(bpf_object(name), work / f"{name}.o")
            for run in (1, 2):
                proc = cli("build", f"{name}.o", "-o", f"{name}-{run}.sbpf", cwd=work)
                assert proc.returncode == 0, proc.stderr
        outputs.append({p.name: p.read_bytes() for p in sorted(work.glob("*.sbpf"))})
    assert outputs[0] == outputs[1]
    for name in ("kfunc_rcu_maps", "kfunc_task", "build_link"):
        assert outputs[0][f"{name}-1.sbpf"] == outputs[0][f"{name}-2.sbpf"]
    # and the library gives the same bytes as the CLI, whatever path the object is read from
    lib = build_from_file(tmp_path / "two/deeper/kfunc_task.o").encode()
    assert lib == outputs[0]["kfunc_task-1.sbpf"]


def test_nothing_machine_specific_in_the_bytes(bpf_object, tmp_path):
    """No path of the object file, no fd, no kernel id: the directories the object was read
    from never appear; the only path is the source file name clang put in the line info."""
    obj = tmp_path / "kfunc_rcu_maps.o"
    shutil.copy(bpf_object("kfunc_rcu_maps"), obj)
    art = build_from_file(obj)
    data = art.encode()
    assert str(tmp_path).encode() not in data
    assert str(bpf_object("kfunc_rcu_maps").parent).encode() not in data
    btf = _prog_btf(art)
    files = {btf.string_at(li.file_name_off) for li in art.programs[0].line_info}
    assert [f.rsplit("/", 1)[-1] for f in files] == ["kfunc_rcu_maps.c"]


def _prog_btf(art: Artifact) -> BTF:
    return BTF.parse(art.btf, file="program BTF")


def test_every_kfunc_call_is_src_reg_3_naming_a_func_with_the_real_prototype(artifacts,
                                                                              bpf_object):
    for name, art in artifacts.items():
        btf = _prog_btf(art)
        obj_btf = BTF.from_file(bpf_object(name))
        for prog in art.programs:
            sites = {s.insn: s for s in prog.kfunc_sites}
            for i, insn in enumerate(prog.insns):
                if insn.is_call and insn.src in (PseudoCall.KFUNC_CALL, PseudoCall.KFUNC_CALL_PROG_BTF):
                    assert insn.src == PseudoCall.KFUNC_CALL_PROG_BTF and insn.off == 0, (name, i)
                    site = sites.pop(i)
                    assert site.kind == KfuncSiteKind.CALL
                    kfunc = art.kfuncs[site.kfunc]
                    assert insn.imm == kfunc.btf_id
                    func = btf[insn.imm]
                    assert isinstance(func, Func) and func.name == kfunc.name
                    # the kfunc's prototype is the one clang wrote for the extern
                    assert func.linkage == FuncLinkage.GLOBAL
                    obj_func = obj_btf[insn.imm]
                    assert obj_func.name == func.name and obj_func.linkage == FuncLinkage.EXTERN
                    proto, obj_proto = btf[func.type], obj_btf[obj_func.type]
                    assert isinstance(proto, FuncProto)
                    assert proto.return_type == obj_proto.return_type
                    assert [p.type for p in proto.params] == [p.type for p in obj_proto.params]
                elif insn.is_ld_imm64 and insn.src == PseudoLdImm64.BTF_ID:
                    site = sites.pop(i)
                    assert site.kind == KfuncSiteKind.KSYM_ADDR
                    assert insn.imm == art.kfuncs[site.kfunc].btf_id
                    assert prog.insns[i + 1].imm == 0
            assert not sites, (name, sites)


def test_kfunc_table(artifacts):
    names = {name: [(k.name, k.weak) for k in art.kfuncs] for name, art in artifacts.items()}
    assert names["kfunc_task"] == [("bpf_task_from_pid", False), ("bpf_task_release", False)]
    assert names["kfunc_weak"] == [("bpf_sigbpf_no_such_kfunc", True), ("bpf_rcu_read_lock", True),
                                   ("bpf_rcu_read_unlock", True)]
    assert names["kfunc_iter"] == [("bpf_iter_num_new", False), ("bpf_iter_num_next", False),
                                   ("bpf_iter_num_destroy", False)]
    weak = artifacts["kfunc_weak"].programs[0]
    kinds = [(s.kind, artifacts["kfunc_weak"].kfuncs[s.kfunc].name) for s in weak.kfunc_sites]
    assert kinds == [
        (KfuncSiteKind.KSYM_ADDR, "bpf_sigbpf_no_such_kfunc"),
        (KfuncSiteKind.CALL, "bpf_sigbpf_no_such_kfunc"),
        (KfuncSiteKind.KSYM_ADDR, "bpf_rcu_read_lock"),
        (KfuncSiteKind.CALL, "bpf_rcu_read_lock"),
        (KfuncSiteKind.CALL, "bpf_rcu_read_unlock")]


def test_programs_metadata(artifacts):
    prog = artifacts["kfunc_task"].programs[0]
    assert (prog.name, prog.section, prog.prog_type, prog.prog_flags, prog.license) == (
        "task_lookup", "syscall", 31, 16, "GPL")  # BPF_PROG_TYPE_SYSCALL, BPF_F_SLEEPABLE
    assert [p.name for p in artifacts["build_link"].programs] == ["link_a", "link_b"]


def test_maps_and_global_data(artifacts):
    art = artifacts["kfunc_rcu_maps"]
    btf = _prog_btf(art)
    got = [(m.name, m.kind, m.section, m.value_size, m.frozen) for m in art.maps]
    assert got == [
        ("counters", MapKind.BTF_DEFINED, ".maps", 8, False),
        ("kfunc_rc.data", MapKind.DATA, ".data", 8, False),
        ("kfunc_rc.rodata", MapKind.RODATA, ".rodata", 4, True),
        (".data.custom", MapKind.DATA, ".data.custom", 4, False),
        ("kfunc_rc.bss", MapKind.BSS, ".bss", 8, False)]
    by_name = {m.name: m for m in art.maps}
    assert by_name["kfunc_rc.data"].initial_data == struct.pack("<Q", 40)
    assert by_name["kfunc_rc.rodata"].initial_data == struct.pack("<I", 7)
    assert by_name[".data.custom"].initial_data == struct.pack("<I", 2)
    assert by_name["kfunc_rc.bss"].initial_data == b""
    for m in art.maps[1:]:
        value = btf[m.btf_value_type_id]
        assert isinstance(value, Datasec) and value.name == m.section and value.size == m.value_size
        assert m.btf_key_type_id == 0 and m.key_size == 4 and m.max_entries == 1
    counters = by_name["counters"]
    assert (counters.map_type, counters.key_size, counters.max_entries) == (2, 4, 4)
    assert btf.resolved_size(counters.btf_key_type_id) == 4
    assert btf.resolved_size(counters.btf_value_type_id) == 8
    # instructions refer to maps by index (src_reg 5) and to global data by index + offset (6)
    insns = art.programs[0].insns
    srcs = sorted({(i.src, i.imm) for i in insns if i.is_ld_imm64})
    assert (int(PseudoLdImm64.MAP_IDX), 0) in srcs
    assert {imm for src, imm in srcs if src == PseudoLdImm64.MAP_IDX_VALUE} == {1, 2, 3, 4}
    assert not any(i.is_ld_imm64 and i.src in (1, 2) for i in insns)  # no fds


def test_core_relos_are_in_bytes_and_point_at_the_relocated_insn(artifacts):
    task = artifacts["kfunc_task"].programs[0]
    assert task.core_relos
    for relo in task.core_relos:
        assert relo.insn_off % 8 == 0
        insn = task.insns[relo.insn_off // 8]
        assert insn.is_load or insn.is_alu or insn.is_ld_imm64
    obj_new = artifacts["kfunc_obj_new"].programs[0]
    assert [r.kind for r in obj_new.core_relos] == [6]  # BPF_CORE_TYPE_ID_LOCAL
    btf = _prog_btf(artifacts["kfunc_obj_new"])
    assert btf[obj_new.core_relos[0].type_id].name == "local_pair"


def test_linking_appends_subprograms_and_fixes_offsets(artifacts):
    art = artifacts["build_link"]
    btf = _prog_btf(art)
    for prog in art.programs:
        funcs = [btf[fi.type_id].name for fi in prog.func_info]
        starts = [fi.insn_off for fi in prog.func_info]
        assert funcs[0] == prog.name and starts[0] == 0 and starts == sorted(starts)
        for i, insn in enumerate(prog.insns):
            target = None
            if insn.is_pseudo_call or (insn.is_ld_imm64 and insn.src == PseudoLdImm64.FUNC):
                target = i + insn.imm + 1
            if target is not None:
                assert target in starts, (prog.name, i, target)
        lines = [li.insn_off for li in prog.line_info]
        assert lines == sorted(lines) and lines[-1] < len(prog.insns)
    funcs_a = [btf[fi.type_id].name for fi in art.program("link_a").func_info]
    funcs_b = [btf[fi.type_id].name for fi in art.program("link_b").func_info]
    # depth-first, first-call order (libbpf's bpf_object__reloc_code)
    assert funcs_a == ["link_a", "global_sum", "loop_cb", "triple", "add_bias"]
    assert funcs_b == ["link_b", "triple", "add_bias", "hidden_twice"]
    # the hidden global subprogram is static in the program BTF, as libbpf makes it
    hidden = btf.find_by_name_kind("hidden_twice", Kind.FUNC)
    assert btf[hidden].linkage == FuncLinkage.STATIC
    assert btf[btf.find_by_name_kind("global_sum", Kind.FUNC)].linkage == FuncLinkage.GLOBAL


def test_program_btf_fixups(artifacts):
    btf = _prog_btf(artifacts["kfunc_iter"])
    ksyms = btf[btf.find_by_name_kind(".ksyms", Kind.DATASEC)]
    dummy = btf.find_by_name_kind("dummy_ksym", Kind.VAR)
    assert [(v.type, v.offset, v.size) for v in ksyms.vars] == [(dummy, 0, 4), (dummy, 4, 4),
                                                               (dummy, 8, 4)]
    assert btf[dummy].linkage == VarLinkage.GLOBAL_ALLOCATED
    new = btf[btf.find_by_name_kind("bpf_iter_num_new", Kind.FUNC)]
    assert all(p.name for p in btf[new.type].params)  # the kernel wants named arguments
    rcu = _prog_btf(artifacts["kfunc_rcu_maps"])
    for sec in (".data", ".rodata", ".bss", ".data.custom", ".maps", "license"):
        assert rcu[rcu.find_by_name_kind(sec, Kind.DATASEC)].size > 0, sec


def test_inspect_json_of_a_built_artifact(bpf_object, cli, tmp_path):
    out = tmp_path / "weak.sbpf"
    assert cli("build", bpf_object("kfunc_weak"), "-o", out).returncode == 0
    proc = cli("inspect", out, "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["format_version"] == "1.0" and info["prog_btf_size"] > 0
    prog = info["programs"][0]
    assert (prog["type"], prog["flags"], prog["insn_cnt"]) == ("syscall", ["SLEEPABLE"], 14)
    assert [s["kfunc"] for s in prog["kfunc_sites"] if s["kind"] == "call"] == [
        "bpf_sigbpf_no_such_kfunc", "bpf_rcu_read_lock", "bpf_rcu_read_unlock"]
    assert info["kfuncs"][0] == {"name": "bpf_sigbpf_no_such_kfunc", "btf_id": 7, "weak": True,
                                 "prototype": "void bpf_sigbpf_no_such_kfunc(void)",
                                 "call_sites": 1}
    proc = cli("inspect", bpf_object("kfunc_weak").parent / "nothing.sbpf")
    assert_one_line_error(proc, 2)
    text = cli("inspect", out).stdout
    assert "bpf_sigbpf_no_such_kfunc (weak): prog-BTF FUNC [7]" in text


def test_task_prototype_is_shown_as_c(artifacts):
    from sigbpf.artifact.describe import describe

    info = describe(artifacts["kfunc_task"])
    # clang writes extern prototypes without parameter names; libbpf (and sigbpf) name
    # them "dummy_ksym" because the kernel's BTF checks want named FUNC arguments
    assert info["kfuncs"][0]["prototype"] == "struct task_struct *bpf_task_from_pid(s32 dummy_ksym)"
    assert info["kfuncs"][1]["prototype"] == "void bpf_task_release(struct task_struct *dummy_ksym)"


# ------------------------------------------------------------------ errors


def test_build_cli_errors_are_one_line_and_leave_no_output(bpf_object, cli, tmp_path):
    out = tmp_path / "out.sbpf"
    junk = tmp_path / "junk.o"
    junk.write_bytes(b"this is not an ELF file")
    assert_one_line_error(cli("build", junk, "-o", out), 2, "not an ELF file")
    truncated = tmp_path / "trunc.o"
    truncated.write_bytes(bpf_object("kfunc_task").read_bytes()[:3000])
    assert_one_line_error(cli("build", truncated, "-o", out), 2, str(truncated))
    assert_one_line_error(cli("build", tmp_path / "missing.o", "-o", out), 2, "No such file")
    assert_one_line_error(cli("build", bpf_object("kfunc_task"), "-o", tmp_path / "no/dir/x"), 2,
                          "cannot write")
    assert_one_line_error(cli("build", bpf_object("kfunc_task")), 2, "-o")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_fuzzed_objects_raise_only_format_errors(bpf_object):
    """Mutated objects: the builder raises a located FormatError (ELF/BTF/artifact), never
    anything else."""
    import random

    data = bpf_object("kfunc_rcu_maps").read_bytes()
    rng = random.Random(7)
    for n in range(300):
        mutated = bytearray(data)
        for _ in range(rng.choice((1, 2, 8))):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        try:
            build_artifact(bytes(mutated), "fuzz.o").encode()
        except (FormatError, ArtifactError, ELFError) as err:
            assert "fuzz.o" in str(err), err
        except Exception as err:  # noqa: BLE001
            from sigbpf.errors import SigbpfError

            assert isinstance(err, SigbpfError), f"{type(err).__name__}: {err}"


def test_unknown_section_is_refused(bpf_object, tmp_path):
    from elftools.elf.elffile import ELFFile

    src = bpf_object("kfunc_task").read_bytes()
    # rename section "syscall" to "sysxxll" in the section name string table (where
    # "syscall" is the tail of ".relsyscall")
    patched = src.replace(b".relsyscall\0", b".relsysxxll\0", 1)
    assert patched != src
    path = tmp_path / "renamed.o"
    path.write_bytes(patched)
    with open(path, "rb") as f:
        assert any(s.name == "sysxxll" for s in ELFFile(f).iter_sections())
    with pytest.raises(ArtifactError, match="missing BPF prog type, check ELF section name 'sysxxll'"):
        build_from_file(path)


@pytest.mark.parametrize("name, kfunc, params", [
    ("bad_missing_kfunc", "bpf_sigbpf_no_such_kfunc", 1),
    ("bad_not_kfunc", "vfs_read", 4),
    ("bad_proto", "bpf_task_from_pid", 2),
    ("bad_strict_proto", "bpf_task_from_pid", 1),
])
def test_bad_programs_build_their_problem_is_for_the_resolver(bpf_object, name, kfunc, params):
    """Building does not judge kfuncs against a kernel: the declared prototype goes into the
    artifact as written, for the resolver and the loader to check."""
    art = build_from_file(bpf_object(name))
    btf = _prog_btf(art)
    entry = art.kfuncs[0]
    assert entry.name == kfunc and not entry.weak
    func = btf[entry.btf_id]
    assert func.name == kfunc and len(btf[func.type].params) == params
    assert any(i.is_prog_btf_kfunc_call and i.imm == entry.btf_id for i in art.programs[0].insns)
