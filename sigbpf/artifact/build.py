"""Building a portable artifact from a clang-compiled BPF object.

:func:`build_artifact` reads the object with :class:`sigbpf.elf.BPFObject`,
links every entry program (:mod:`sigbpf.artifact.link`), fixes the BTF up
for the kernel (:mod:`sigbpf.artifact.prog_btf`) and rewrites every
relocated instruction into its kernel-independent form (docs/FORMAT.md):

==================  ==========================================================
relocation          artifact instruction
==================  ==========================================================
map                 ``ld_imm64 src_reg 5`` (BPF_PSEUDO_MAP_IDX), imm = map index
global data         ``ld_imm64 src_reg 6`` (BPF_PSEUDO_MAP_IDX_VALUE), imm = map
                    index, second imm = offset in the value (symbol + addend)
kfunc call          ``call src_reg 3`` (BPF_PSEUDO_KFUNC_CALL_PROG_BTF), off 0,
                    imm = the kfunc's FUNC id in the program BTF
kfunc address       ``ld_imm64 src_reg 3`` (BPF_PSEUDO_BTF_ID), imm = that FUNC id,
                    second imm 0 (``bpf_ksym_exists``; a loader always rewrites it)
kconfig extern      ``ld_imm64 src_reg 6``, imm = the ``.kconfig`` map's index, second
                    imm = the extern's offset in it (the loader writes the values)
typed ksym          ``ld_imm64 src_reg 3``, imm = the ksym's VAR in the program BTF,
                    second imm 0 (a loader always rewrites it to the kernel's VAR)
typeless ksym       ``ld_imm64 src_reg 0``, both imms 0 (a loader always writes the
                    kallsyms address)
==================  ==========================================================

Everything else kernel-specific is recorded as a name and a rule (format 1.1):
attach targets (the kernel BTF name libbpf's ``find_kernel_btf_id`` looks up),
kconfig externs and ksyms (tables the loader binds), map sizes libbpf fixes at
load time (flags on the map), inner-map prototypes and initial map slots.

These are the forms libbpf's gen_loader emits for maps and global data
(``bpf_object__relocate_data`` with ``obj->gen_loader``).  The output depends
only on the object's bytes and its name (libbpf's object name: the file's
base name up to the first dot, used in global data map names): no paths,
time, environment or kernel.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sigbpf.artifact.format import (
    Artifact, ArtifactMapFlags, AttachTarget, KconfigExtern, Kfunc, KfuncSite, KfuncSiteKind,
    Ksym, KsymSite, Map, MapKind, MapSlot, Program, SlotKind,
)
from sigbpf.artifact.link import LinkedProgram, link_program
from sigbpf.asm import Instruction, PseudoCall, PseudoLdImm64
from sigbpf.errors import ArtifactError, SigbpfError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.elf import BPFObject

__all__ = ["build_artifact", "build_from_file"]


def build_from_file(path: str | Path) -> Artifact:
    """Read the object at *path* and build its artifact (errors name the file)."""
    return build_artifact(Path(path))


def build_artifact(source: "BPFObject | bytes | bytearray | memoryview | str | Path",
                   file: str | None = None) -> Artifact:
    """Build the artifact of a BPF object: a :class:`~sigbpf.elf.BPFObject`, the object's
    bytes, or a path to read.  *file* names it in errors and gives the object name
    (libbpf's rule: base name up to the first dot); it defaults to the path, or to the
    BPFObject's own file name."""
    from sigbpf.elf import BPFObject

    if isinstance(source, (str, Path)):
        from sigbpf.fileio import read_input

        file = file if file is not None else str(source)
        source = read_input(source)
    if isinstance(source, BPFObject):
        file = file if file is not None else (source.file or "<object>")
        try:
            return _build(source, file)
        except SigbpfError as err:
            raise err.at(file=file)
    file = file if file is not None else "<bytes>"
    try:
        obj = BPFObject.from_bytes(bytes(source), file)
        return _build(obj, file)
    except SigbpfError as err:
        raise err.at(file=file)


def _build(obj: "BPFObject", file: str) -> Artifact:
    if obj.byteorder != "little":
        raise ArtifactError("big-endian (bpfeb) objects are not supported by format 1.0")
    prog_btf = _program_btf(obj, file)
    entries = obj.entry_programs
    struct_ops = {m.program: m for m in obj.struct_ops}
    maps = _maps(obj, [e.name for e in entries])

    kfunc_index: dict[str, int] = {}
    kfuncs: list[Kfunc] = []
    ksym_index: dict[str, int] = {}
    ksyms: list[Ksym] = []
    programs: list[Program] = []
    for entry in entries:
        if entry.prog_type is None:
            raise ArtifactError(f"program '{entry.name}': missing BPF prog type, check ELF "
                                f"section name '{entry.section}'")
        linked = link_program(obj, entry)
        insns, sites, ksym_sites = _relocate(obj, linked, kfunc_index, kfuncs, ksym_index, ksyms)
        programs.append(Program(
            name=entry.name, section=entry.section, prog_type=int(entry.prog_type),
            expected_attach_type=int(entry.expected_attach_type or 0),
            prog_flags=int(entry.prog_flags), license=obj.license,
            kern_version=obj.kern_version or 0, attach_to=entry.attach_target or "",
            insns=insns, func_info=linked.func_info, line_info=linked.line_info,
            core_relos=linked.core_relos, kfunc_sites=sites,
            attach=(struct_ops_target(struct_ops[entry.name]) if entry.name in struct_ops
                    else attach_target(entry.prog_type, entry.expected_attach_type,
                                       entry.attach_target)),
            ksym_sites=ksym_sites))
    return Artifact(name=obj.name, btf=prog_btf, programs=tuple(programs), maps=maps,
                    kfuncs=tuple(kfuncs), kconfig=_kconfig(obj), ksyms=tuple(ksyms))


#: libbpf's ``btf_get_kernel_prefix_kind``: the prefix and BTF kind of the kernel type an
#: attach target names, by expected attach type (default: a FUNC named as the target).
_ATTACH_PREFIX = {"TRACE_RAW_TP": ("btf_trace_", 8), "LSM_MAC": ("bpf_lsm_", 12),
                  "LSM_CGROUP": ("bpf_lsm_", 12), "TRACE_ITER": ("bpf_iter_", 12)}


def attach_target(prog_type, expected_attach_type, target: str | None) -> AttachTarget | None:
    """The kernel BTF type a program's ``attach_btf_id`` names, as a name and a rule.

    *target* is what follows the ``/`` of a section that needs ``attach_btf_id``
    (``fentry/do_unlinkat``, ``lsm/file_open``, ``tp_btf/sched_switch``,
    ``fentry/bpf_testmod:bpf_testmod_test_read``).  A ``module:function`` target
    limits the search to that module (libbpf's ``find_kernel_btf_id``).
    ``freplace`` (EXT) programs attach to another BPF program, not to kernel BTF:
    None, the loader needs a target program.
    """
    from sigbpf.elf.progtypes import ProgType

    if not target or prog_type == ProgType.EXT:
        return None
    module, colon, name = target.partition(":")
    if not colon:
        module, name = "", target
    prefix, kind = _ATTACH_PREFIX.get(getattr(expected_attach_type, "name", ""), ("", 12))
    return AttachTarget(prefix + name, kind, module)


def struct_ops_target(member) -> AttachTarget:
    """A struct_ops program's target: the kernel struct (BTF STRUCT) and the member it
    implements, by name (libbpf's ``bpf_object__collect_st_ops_relos``)."""
    return AttachTarget(member.struct, 4, "", member.member)


def _kconfig(obj: "BPFObject") -> tuple[KconfigExtern, ...]:
    """The ``.kconfig`` externs, at libbpf's offsets in the KCONFIG map."""
    from sigbpf.elf.externs import ExternKind

    return tuple(KconfigExtern(e.name, int(e.kconfig_type), e.kconfig_offset, e.kconfig_size,
                               e.weak, e.kconfig_signed)
                 for e in obj.externs if e.kind == ExternKind.KCONFIG)


def _program_btf(obj: "BPFObject", file: str) -> bytes:
    """The fixed-up program BTF (empty when the object has no .BTF)."""
    if obj.btf is None:
        return b""
    from sigbpf.artifact.prog_btf import program_btf

    from sigbpf.elf.externs import ExternKind, kconfig_size

    hidden = [p.name for p in obj.subprograms if p.hidden]
    kconfig = {e.name: e.kconfig_offset for e in obj.externs if e.kind == ExternKind.KCONFIG}
    return program_btf(obj.btf, obj.datasec_fixup, hidden, kconfig=kconfig,
                       kconfig_size=kconfig_size(list(obj.externs)), file=file).data


def _no_btf_map_types() -> frozenset[int]:
    """Map types libbpf creates without BTF key/value ids (``bpf_object__create_map``)."""
    from sigbpf.elf import MapType

    return frozenset(int(t) for t in (
        MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY, MapType.STACK_TRACE,
        MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.DEVMAP, MapType.DEVMAP_HASH,
        MapType.CPUMAP, MapType.XSKMAP, MapType.SOCKMAP, MapType.SOCKHASH, MapType.QUEUE,
        MapType.STACK, MapType.ARENA))


def _maps(obj: "BPFObject", programs: list[str]) -> tuple[Map, ...]:
    """The object's maps in libbpf's order, then the inner-map prototypes of map-in-maps
    (flag INNER_TEMPLATE), each outer map pointing at its prototype; initial slots name
    maps and programs by index."""
    specs = list(obj.maps)
    inner_of: dict[int, int] = {}
    for i, spec in enumerate(obj.maps):
        if spec.inner is not None:
            inner_of[i] = len(specs)
            specs.append(spec.inner)
    map_index = {spec.name: i for i, spec in enumerate(obj.maps)}
    prog_index = {name: i for i, name in enumerate(programs)}
    out = []
    for i, spec in enumerate(specs):
        slots = []
        for slot in spec.init_slots:
            table = map_index if spec.is_map_in_map else prog_index
            if slot.target not in table:
                raise ArtifactError(f"map '{spec.name}': slot {slot.index} names "
                                    f"'{slot.target}', which is not in the object")
            slots.append(MapSlot(slot.index, SlotKind.MAP if spec.is_map_in_map else SlotKind.PROG,
                                 table[slot.target]))
        out.append(_map(spec, inner_of.get(i, -1), i >= len(obj.maps), tuple(slots)))
    return tuple(out)


def _map(spec, inner: int, template: bool, slots: tuple[MapSlot, ...]) -> Map:
    from sigbpf.elf import MapType

    if spec.type == MapType.STRUCT_OPS:
        raise ArtifactError(f"map '{spec.name}': struct_ops maps are not supported (they "
                            "register kernel callbacks through the kernel's own BTF types)")
    flags = ArtifactMapFlags.FROZEN if spec.frozen else ArtifactMapFlags.NONE
    max_entries = spec.max_entries
    if spec.type == MapType.PERF_EVENT_ARRAY and not max_entries:
        flags |= ArtifactMapFlags.MAX_ENTRIES_CPUS  # libbpf's map_set_def_max_entries
    if spec.type in (MapType.RINGBUF, MapType.USER_RINGBUF):
        flags |= ArtifactMapFlags.RINGBUF_SIZE  # libbpf's adjust_ringbuf_sz (page size)
    if template:
        flags |= ArtifactMapFlags.INNER_TEMPLATE
    key_id, value_id = spec.key_type_id, spec.value_type_id
    if int(spec.type) in _no_btf_map_types():
        key_id = value_id = 0
    return Map(
        name=spec.name, kind=MapKind(int(spec.kind)), map_type=int(spec.type),
        key_size=spec.key_size, value_size=spec.value_size, max_entries=max_entries,
        map_flags=int(spec.flags), section=spec.section, btf_key_type_id=key_id,
        btf_value_type_id=value_id, flags=flags, pinning=int(spec.pinning), inner_map=inner,
        numa_node=spec.numa_node, map_extra=spec.map_extra, initial_data=bytes(spec.data or b""),
        slots=slots)


def _relocate(obj: "BPFObject", linked: LinkedProgram, kfunc_index: dict[str, int],
              kfuncs: list[Kfunc], ksym_index: dict[str, int], ksyms: list[Ksym],
              ) -> tuple[tuple[Instruction, ...], tuple[KfuncSite, ...], tuple[KsymSite, ...]]:
    """Apply the non-call relocations of a linked program; collect its kfunc and ksym sites."""
    from sigbpf.elf import RelocKind

    insns = list(linked.insns)
    sites: list[KfuncSite] = []
    ksym_sites: list[KsymSite] = []
    for placed in linked.relocations:
        at, rel = placed.insn, placed.relocation
        insn = insns[at]

        def fail(message: str) -> ArtifactError:
            return ArtifactError(f"prog '{linked.name}': {message}", insn=at)

        if rel.kind == RelocKind.MAP:
            insns[at] = insn.replace(src=PseudoLdImm64.MAP_IDX, imm=_index(rel, fail))
        elif rel.kind == RelocKind.DATA:
            offset = insn.imm + rel.offset
            insns[at] = insn.replace(src=PseudoLdImm64.MAP_IDX_VALUE, imm=_index(rel, fail))
            insns[at + 1] = insns[at + 1].replace(imm=offset)
        elif rel.kind in (RelocKind.KFUNC_CALL, RelocKind.KFUNC_ADDR):
            ext = obj.extern(rel.target)
            index = kfunc_index.get(ext.name)
            if index is None:
                index = kfunc_index[ext.name] = len(kfuncs)
                kfuncs.append(Kfunc(ext.name, ext.btf_id, ext.weak))
            if rel.kind == RelocKind.KFUNC_CALL:
                insns[at] = insn.replace(src=PseudoCall.KFUNC_CALL_PROG_BTF, off=0, imm=ext.btf_id)
                sites.append(KfuncSite(at, index, KfuncSiteKind.CALL))
            else:
                insns[at] = insn.replace(src=PseudoLdImm64.BTF_ID, imm=ext.btf_id)
                insns[at + 1] = insns[at + 1].replace(imm=0)
                sites.append(KfuncSite(at, index, KfuncSiteKind.KSYM_ADDR))
        elif rel.kind == RelocKind.KSYM:
            ext = obj.extern(rel.target)
            index = ksym_index.get(ext.name)
            if index is None:
                index = ksym_index[ext.name] = len(ksyms)
                ksyms.append(Ksym(ext.name, ext.btf_id, type_id=ext.type_id, weak=ext.weak))
            typed = ksyms[index].typed
            insns[at] = insn.replace(src=PseudoLdImm64.BTF_ID if typed else 0,
                                     imm=ext.btf_id if typed else 0)
            insns[at + 1] = insns[at + 1].replace(imm=0)
            ksym_sites.append(KsymSite(at, index))
        elif rel.kind == RelocKind.KCONFIG:
            # libbpf: insn[0].imm = the .kconfig map, insn[1].imm = the extern's offset in it.
            ext = obj.extern(rel.symbol)
            insns[at] = insn.replace(src=PseudoLdImm64.MAP_IDX_VALUE, imm=_index(rel, fail))
            insns[at + 1] = insns[at + 1].replace(imm=ext.kconfig_offset)
        else:  # pragma: no cover - link_program handled calls
            raise fail(f"unexpected relocation {rel.kind.name}")
    ksym_sites.sort(key=lambda site: site.insn)
    return tuple(insns), tuple(sites), tuple(ksym_sites)


def _index(rel, fail) -> int:
    if rel.map_index is None:  # pragma: no cover - the object reader always sets it
        raise fail(f"relocation against '{rel.target}' has no map")
    return rel.map_index

