"""BPFObject (sigbpf.elf): programs, relocations, maps, externs, compared with the real tools.

References: libbpf 1.1 (``bpf_object__open_file`` through ctypes, and its
debug log of relocations), ``llvm-readelf-19 -r -s``, ``bpftool btf dump``.
The kernel is only used where libbpf has to load a program to tell (the
func_info / line_info counts the kernel accepted).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from elf_libbpf import open_object
from sigbpf.btf import FuncLinkage, Kind
from sigbpf.elf import BPFObject
from sigbpf.elf.btf_ext import CoreReloKind
from sigbpf.elf.describe import describe
from sigbpf.elf.externs import ExternKind, KconfigType
from sigbpf.elf.maps import MapKind, MapType
from sigbpf.elf.progtypes import AttachType, ProgFlags, ProgType
from sigbpf.elf.relocations import RelocKind

ELF_PROGS = ["elf_progs", "elf_data", "elf_externs"]
LEAD_PROGS = ["kfunc_task", "kfunc_iter", "kfunc_obj_new", "kfunc_rcu_maps", "kfunc_weak",
              "kfunc_cpumask"]
READELF = "llvm-readelf-19"
BPFTOOL = "bpftool"


@pytest.fixture(scope="module")
def obj(bpf_object):
    cache: dict[tuple, BPFObject] = {}

    def get(name: str, *extra: str) -> BPFObject:
        key = (name, *extra)
        if key not in cache:
            cache[key] = BPFObject.from_file(bpf_object(name, *extra))
        return cache[key]

    return get


# ------------------------------------------------------------------ libbpf


@pytest.mark.parametrize("name", ELF_PROGS + LEAD_PROGS)
def test_programs_match_libbpf(name, bpf_object, obj):
    ref = open_object(bpf_object(name))
    o = obj(name)
    assert o.name == ref.name
    mine = {p.name: {"section": p.section_name, "type": int(p.prog_type or 0),
                     "attach_type": int(p.expected_attach_type or 0), "insns": p.insn_count,
                     "autoload": p.autoload} for p in o.entry_programs}
    theirs = {p["name"]: {k: p[k] for k in ("section", "type", "attach_type", "insns", "autoload")}
              for p in ref.programs}
    assert mine == theirs


@pytest.mark.parametrize("name", ELF_PROGS + LEAD_PROGS)
def test_maps_match_libbpf(name, bpf_object, obj):
    """Same maps, same order (libbpf's map index), same attributes and initial values."""
    ref = open_object(bpf_object(name))
    o = obj(name)
    assert [m.name for m in o.maps] == [m["name"] for m in ref.maps]
    for m, r in zip(o.maps, ref.maps):
        assert (m.type, m.key_size, m.value_size, m.max_entries, m.flags) == \
            (r["type"], r["key_size"], r["value_size"], r["max_entries"], r["flags"]), m.name
        assert (m.key_type_id, m.value_type_id, m.map_extra, m.numa_node) == \
            (r["key_type_id"], r["value_type_id"], r["map_extra"], r["numa_node"]), m.name
        assert (m.inner.name if m.inner else None) == r["inner"]
        if r["initial_value"] is not None:  # global data: libbpf's mmaped copy
            assert (m.data if m.data is not None else bytes(m.value_size)) == r["initial_value"]


@pytest.mark.parametrize("name", ELF_PROGS + LEAD_PROGS)
def test_relocations_match_libbpf_log(name, bpf_object, obj):
    """libbpf logs "sec '.relX': relo #N: insn #I against 'SYM'" for every code relocation."""
    ref = open_object(bpf_object(name))
    mine = sorted((r.section, r.insn, r.symbol) for r in obj(name).relocations)
    assert mine == sorted(ref.relocations())


# ------------------------------------------------------------------ llvm-readelf


def _readelf_relocs(path: Path) -> dict[str, list[tuple[int, str]]]:
    text = subprocess.run([READELF, "-r", str(path)], check=True, capture_output=True,
                          text=True).stdout
    out: dict[str, list[tuple[int, str]]] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"Relocation section '\.rel(.*)' at offset", line)
        if m:
            current = m.group(1)
            out[current] = []
            continue
        m = re.match(r"([0-9a-f]{16})\s+[0-9a-f]{16}\s+R_BPF_\w+\s+[0-9a-f]{16}\s+(\S+)", line)
        if m and current is not None:
            out[current].append((int(m.group(1), 16), m.group(2)))
    return out


@pytest.mark.parametrize("name", ELF_PROGS)
@pytest.mark.parametrize("target", ["bpf", "bpfeb"])
def test_relocations_match_llvm_readelf(name, target, bpf_object):
    """Every relocation of a code section, at r_offset / 8 against the same symbol."""
    path = bpf_object(name, "-target", target)
    o = BPFObject.from_file(path)
    ref = _readelf_relocs(path)
    code = {p.section for p in o.programs}
    expected = sorted((sec, off // 8, sym) for sec, rels in ref.items() if sec in code
                      for off, sym in rels)
    assert sorted((r.section, r.insn, r.symbol) for r in o.relocations) == expected
    assert expected


@pytest.mark.parametrize("name", ["elf_data", "elf_externs"])
def test_symbols_match_llvm_readelf(name, bpf_object):
    from sigbpf.elf.reader import read_elf
    from sigbpf.elf.sections import SymbolBinding, SymbolType

    path = bpf_object(name)
    elf = read_elf(path.read_bytes(), str(path))
    text = subprocess.run([READELF, "-s", str(path)], check=True, capture_output=True, text=True).stdout
    rows = re.findall(r"^\s+(\d+): ([0-9a-f]{16})\s+(\d+) (\w+)\s+(\w+)\s+\w+\s+(\w+) ?(.*)$",
                      text, re.M)
    assert len(rows) == len(elf.symbols)
    for (num, value, size, typ, bind, ndx, sym_name), sym in zip(rows, elf.symbols):
        assert int(num) == sym.index and int(value, 16) == sym.value and int(size) == sym.size
        assert SymbolType[typ].value == sym.type and SymbolBinding[bind].value == sym.bind
        assert (0 if ndx == "UND" else 0xFFF1 if ndx == "ABS" else int(ndx)) == sym.shndx
        if typ != "SECTION":
            assert sym_name == sym.name


# ------------------------------------------------------------------ BTF


@pytest.mark.parametrize("name", ["elf_data", "kfunc_task"])
def test_btf_matches_bpftool(name, bpf_object, obj):
    """The object's .BTF: same type count, and each kfunc extern is a FUNC linkage=extern in .ksyms."""
    text = subprocess.run([BPFTOOL, "btf", "dump", "file", str(bpf_object(name))], check=True,
                          capture_output=True, text=True).stdout
    ids = [int(i) for i in re.findall(r"^\[(\d+)\]", text, re.M)]
    o = obj(name)
    assert o.btf.type_count == max(ids)
    for ext in o.externs:
        if ext.kind == ExternKind.KFUNC:
            assert f"[{ext.btf_id}] FUNC '{ext.name}' type_id={ext.type_id} linkage=extern" in text


def test_datasec_fixup_like_libbpf(obj):
    """Clang leaves DATASEC sizes and global VAR offsets 0; the fix-up takes them from the ELF."""
    o = obj("elf_data")
    btf = o.btf
    data_id = btf.find_by_name_kind(".data", Kind.DATASEC)
    assert btf[data_id].size == 0  # as clang wrote it
    fixed = o.datasec_fixup.datasec(btf, data_id)
    sec = next(s for s in o.sections if s.name == ".data")
    assert fixed.size == sec.size
    offsets = {btf.name_of(vi.type): vi.offset for vi in fixed.vars}
    assert offsets == {"data_counter": 0, "data_array": 8}
    assert [vi.offset for vi in fixed.vars] == sorted(vi.offset for vi in fixed.vars)


# ------------------------------------------------------------------ semantics


def test_programs_sections_and_types(obj):
    o = obj("elf_progs")
    progs = {p.name: p for p in o.programs}
    assert {p.name for p in o.subprograms} == {"static_mid", "static_leaf", "loop_cb", "global_sub"}
    assert progs["global_sub"].is_global and not progs["static_leaf"].is_global
    sc = progs["prog_syscall"]
    assert (sc.prog_type, sc.prog_flags, sc.section) == (ProgType.SYSCALL, ProgFlags.SLEEPABLE, "syscall")
    assert progs["prog_fexit_s"].attach_target == "do_unlinkat"
    assert progs["prog_fexit_s"].expected_attach_type == AttachType.TRACE_FEXIT
    assert progs["prog_xdp_frags"].prog_flags == ProgFlags.XDP_HAS_FRAGS
    assert not progs["prog_xdp_frags"].autoload
    # two programs in one section, at their byte offsets
    tc = [p for p in o.programs if p.section == "tc"]
    assert [(p.name, p.offset) for p in tc] == [("prog_tc", 0), ("prog_tc_second", 80)]
    # instructions are the section bytes
    sec = next(s for s in o.sections if s.name == "tc")
    from sigbpf.asm import Instruction
    assert Instruction.encode(tc[1].insns, o.byteorder) == sec.data[80:80 + tc[1].size]


def test_calls_subprograms_and_callbacks(obj):
    o = obj("elf_progs")
    sc = o.program("prog_syscall")
    kinds = [(r.prog_insn, r.kind, r.target) for r in sc.relocations]
    # bpf_loop(…, loop_cb, …): ld_imm64 of a static function (BPF_PSEUDO_FUNC), then a call
    # to a global .text function; both across sections, against .text symbols
    assert kinds == [(5, RelocKind.SUBPROG_ADDR, "loop_cb"), (10, RelocKind.CALL, "global_sub")]
    # clang leaves src_reg 0 here; the linker marks it BPF_PSEUDO_FUNC (4), as libbpf does
    assert sc.insns[5].is_ld_imm64 and sc.insns[5].src == 0 and sc.insns[5].imm == 88
    # libbpf's append order: depth-first, in first-use order
    assert [p.name for p in o.subprograms_of(sc)] == ["loop_cb", "global_sub", "static_mid",
                                                       "static_leaf"]
    # the static call inside .text has no relocation but is followed
    assert o.program("static_mid").calls == ("static_leaf",)
    assert o.program("static_mid").relocations == ()
    assert [p.name for p in o.subprograms_of("prog_xdp")] == ["static_mid", "static_leaf"]
    assert o.subprograms_of("prog_kprobe") == ()


def test_relocation_kinds_of_externs(obj):
    o = obj("elf_externs")
    user = o.program("externs_user")
    by_target = {}
    for r in user.relocations:
        by_target.setdefault(r.target if not r.kind == RelocKind.KCONFIG else r.symbol, set()).add(r.kind)
    assert by_target["bpf_rcu_read_lock"] == {RelocKind.KFUNC_ADDR, RelocKind.KFUNC_CALL}
    assert by_target["bpf_sigbpf_absent"] == {RelocKind.KFUNC_ADDR, RelocKind.KFUNC_CALL}
    assert by_target["bpf_prog_active"] == {RelocKind.KSYM}
    assert by_target["bpf_link_fops"] == {RelocKind.KSYM}
    assert by_target["LINUX_KERNEL_VERSION"] == {RelocKind.KCONFIG}
    assert by_target["sub_with_kfunc"] == {RelocKind.CALL}
    weak = {r.symbol: r.weak for r in user.relocations if r.is_extern}
    assert weak["bpf_sigbpf_absent"] and not weak["LINUX_KERNEL_VERSION"]
    # kfuncs called, through the subprogram too
    assert o.kfuncs_of("externs_user") == ("bpf_rcu_read_lock", "bpf_rcu_read_unlock",
                                           "bpf_sigbpf_absent", "bpf_task_from_pid",
                                           "bpf_task_release")
    assert o.kfuncs_of("externs_tc") == ("bpf_task_from_pid", "bpf_task_release")
    # KCONFIG relocations point into the .kconfig map at the extern's offset
    kcfg = next(m for m in o.maps if m.kind == MapKind.KCONFIG)
    for r in user.relocations:
        if r.kind == RelocKind.KCONFIG:
            assert o.maps[r.map_index] is kcfg
            assert r.offset == o.extern(r.symbol).kconfig_offset


def test_externs(obj):
    o = obj("elf_externs")
    got = {e.name: (e.kind, e.weak) for e in o.externs}
    assert got == {
        "LINUX_KERNEL_VERSION": (ExternKind.KCONFIG, False),
        "CONFIG_BPF_SYSCALL": (ExternKind.KCONFIG, True),
        "CONFIG_SIGBPF_MISSING": (ExternKind.KCONFIG, True),
        "bpf_prog_active": (ExternKind.KSYM, False),
        "bpf_link_fops": (ExternKind.KSYM, True),
        "bpf_task_from_pid": (ExternKind.KFUNC, False),
        "bpf_task_release": (ExternKind.KFUNC, False),
        "bpf_rcu_read_lock": (ExternKind.KFUNC, True),
        "bpf_rcu_read_unlock": (ExternKind.KFUNC, True),
        "bpf_sigbpf_absent": (ExternKind.KFUNC, True),
    }
    # libbpf's order: kconfig first (alignment desc, size, name), then ksyms by name
    assert [e.name for e in o.externs][:3] == ["CONFIG_SIGBPF_MISSING", "LINUX_KERNEL_VERSION",
                                                "CONFIG_BPF_SYSCALL"]
    layout = {e.name: (e.kconfig_type, e.kconfig_offset, e.kconfig_size) for e in o.externs
              if e.kind == ExternKind.KCONFIG}
    assert layout == {"CONFIG_SIGBPF_MISSING": (KconfigType.TRISTATE, 0, 4),
                      "LINUX_KERNEL_VERSION": (KconfigType.INT, 4, 4),
                      "CONFIG_BPF_SYSCALL": (KconfigType.BOOL, 8, 1)}
    # a kfunc's btf_id is the FUNC (linkage extern) with its real prototype
    ext = o.extern("bpf_task_from_pid")
    func = o.btf[ext.btf_id]
    assert func.kind == Kind.FUNC and func.linkage == FuncLinkage.EXTERN
    assert ext.type_id == func.type and o.btf.kind_of(ext.type_id) == Kind.FUNC_PROTO
    assert o.btf.name_of(ext.section_btf_id) == ".ksyms"
    assert o.extern("bpf_link_fops").type_id == 0  # typeless ksym


def test_maps_and_global_data(obj):
    o = obj("elf_data")
    maps = {m.name: m for m in o.maps}
    assert maps["hash_map"].type == MapType.HASH and maps["hash_map"].key_size == 16
    assert maps["sized_array"].pinning == 1
    assert maps["bloom"].map_extra == 3
    outer = maps["outer_map"]
    assert outer.inner.type == MapType.ARRAY and outer.inner.name == "outer_map.inner"
    assert [(s.index, s.target) for s in outer.init_slots] == [(1, "inner_a")]
    assert [(s.index, s.target) for s in maps["jmp_table"].init_slots] == [(2, "tail_target")]
    # global data: kinds, names (libbpf's internal_map_name), contents, frozen, DATASEC ids
    data = {m.section: m for m in o.maps if m.kind != MapKind.USER}
    assert data[".data"].name == "elf_data.data" and data[".data.custom"].name == ".data.custom"
    assert data[".rodata"].frozen and data[".rodata.custom"].frozen and not data[".data"].frozen
    assert data[".bss"].kind == MapKind.BSS and data[".bss"].data is None
    assert data[".data"].data[:8] == (5).to_bytes(8, "little")
    assert data[".rodata"].data.endswith(b"hello\0")
    assert o.btf.name_of(data[".data"].value_type_id) == ".data"
    assert o.btf.kind_of(data[".data"].value_type_id) == Kind.DATASEC
    # global data relocations: map + offset (sym value; insn imm is added by the loader)
    rel = next(r for r in o.program("data_user").relocations if r.symbol == "data_array")
    assert rel.kind == RelocKind.DATA and o.maps[rel.map_index].section == ".data" and rel.offset == 8
    assert o.license == "GPL" and o.kern_version == 0x60C00
    assert obj("elf_progs").license == "Dual BSD/GPL" and obj("elf_progs").kern_version is None


def test_internal_map_names():
    """libbpf's internal_map_name, including its own documented examples."""
    from sigbpf.elf.datasec import internal_map_name, object_name

    assert internal_map_name("my_object_name", ".rodata") == "my_objec.rodata"
    assert internal_map_name("my_object_name", ".bss") == "my_objec.bss"
    assert internal_map_name("my_object_name", ".kconfig") == "my_obje.kconfig"
    assert internal_map_name("my_object_name", ".rodata.abracadabra") == ".rodata.abracad"
    assert internal_map_name("a-b", ".data") == "a_b.data"
    assert object_name("/x/y/some.thing.o") == "some"


@pytest.mark.parametrize("name", ELF_PROGS)
def test_big_endian_objects_read_alike(name, bpf_object):
    """clang -target bpfeb: the same programs, maps, externs and relocations."""
    le, be = (BPFObject.from_bytes(bpf_object(name, *extra).read_bytes(), f"{name}.o")
              for extra in ((), ("-target", "bpfeb")))
    assert (le.byteorder, be.byteorder) == ("little", "big")
    a, b = describe(le), describe(be)
    for d in (a, b):
        d.pop("file"), d.pop("byteorder"), d.pop("btf_ext")
        for p in d["programs"]:  # code generation may differ by an instruction
            for k in ("insns", "line_info"):
                p.pop(k)
        for s in d["subprograms"]:
            s.pop("insns")
    assert a == b
    assert [(r.kind, r.target, r.symbol) for r in le.relocations] == \
        [(r.kind, r.target, r.symbol) for r in be.relocations]
    for p in be.programs:  # instructions decode in the object's byte order
        from sigbpf.asm import Instruction
        sec = next(s for s in be.sections if s.name == p.section)
        assert Instruction.encode(p.insns, "big") == sec.data[p.offset:p.offset + p.size]


def test_core_relocations(obj):
    o = obj("elf_externs")
    relos = o.ext_info_of("externs_user").core_relos + o.ext_info_of("sub_with_kfunc").core_relos
    kinds = Counter(r.kind for r in relos)
    assert set(kinds) == {CoreReloKind.FIELD_BYTE_OFFSET, CoreReloKind.FIELD_EXISTS,
                          CoreReloKind.FIELD_BYTE_SIZE, CoreReloKind.TYPE_EXISTS,
                          CoreReloKind.TYPE_SIZE, CoreReloKind.ENUMVAL_EXISTS}
    exists = next(r for r in relos if r.kind == CoreReloKind.FIELD_EXISTS)
    assert o.btf.name_of(exists.type_id) == "task_struct___local" and exists.access == "0:1"
    user = o.program("externs_user")
    assert all(0 <= r.insn < user.insn_count for r in o.ext_info_of(user).core_relos)
    assert obj("kfunc_obj_new").ext_info_of("obj_new_local").core_relos[0].kind == \
        CoreReloKind.TYPE_ID_LOCAL


def test_ext_info_counts_match_the_kernel(kernel, bpf_object, obj):
    """libbpf loads the program; the kernel reports nr_func_info / nr_line_info; libbpf's log
    counts CO-RE records ("sec 'X': found N CO-RE relocations")."""
    for name in ("kfunc_task", "kfunc_iter"):
        ref = open_object(bpf_object(name), load=True)
        o = obj(name)
        for prog in o.entry_programs:
            infos = [o.ext_info_of(p) for p in (prog, *o.subprograms_of(prog))]
            assert (sum(len(i.func_info) for i in infos), sum(len(i.line_info) for i in infos)) \
                == ref.prog_info[prog.name]
        for section, count in ref.core_relo_counts().items():
            assert len(o.btf_ext.core_relos[section]) == count
    assert o.btf_ext.func_info_rec_size == 8 and o.btf_ext.line_info_rec_size == 16


def test_reading_is_deterministic_and_never_touches_sys(bpf_object):
    """Read twice in a fresh interpreter that fails any open() under /sys or /proc."""
    path = bpf_object("elf_externs")
    code = f"""
import sys, json
def hook(event, args):
    if event == "open" and isinstance(args[0], str) and args[0].startswith(("/sys", "/proc")):
        raise RuntimeError("touched " + args[0])
sys.addaudithook(hook)
from sigbpf.elf import BPFObject
from sigbpf.elf.describe import describe
a = BPFObject.from_file({str(path)!r}); b = BPFObject.from_file({str(path)!r})
assert a.programs == b.programs and a.maps == b.maps and a.externs == b.externs
print(json.dumps(describe(a), sort_keys=True))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["externs"]
