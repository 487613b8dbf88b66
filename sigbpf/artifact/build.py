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
==================  ==========================================================

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
    Artifact, ArtifactMapFlags, Kfunc, KfuncSite, KfuncSiteKind, Map, MapKind, Program,
)
from sigbpf.artifact.link import LinkedProgram, link_program
from sigbpf.asm import Instruction, PseudoCall, PseudoLdImm64
from sigbpf.errors import ArtifactError, SigbpfError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.elf import BPFObject

__all__ = ["build_artifact", "build_from_file"]


def build_from_file(path: str | Path) -> Artifact:
    """Read the object at *path* and build its artifact (errors name the file)."""
    from sigbpf.fileio import read_input

    data = read_input(path)
    return build_artifact(data, str(path))


def build_artifact(data: bytes, file: str) -> Artifact:
    """Build the artifact of the object bytes *data*; *file* names it in errors and gives
    the object name (libbpf's rule: base name up to the first dot)."""
    from sigbpf.elf import BPFObject

    try:
        obj = BPFObject.from_bytes(data, file)
        return _build(obj, file)
    except SigbpfError as err:
        raise err.at(file=file)


def _build(obj: "BPFObject", file: str) -> Artifact:
    if obj.byteorder != "little":
        raise ArtifactError("big-endian (bpfeb) objects are not supported by format 1.0")
    prog_btf = _program_btf(obj, file)
    maps = tuple(_map(m) for m in obj.maps)

    kfunc_index: dict[str, int] = {}
    kfuncs: list[Kfunc] = []
    programs: list[Program] = []
    for entry in obj.entry_programs:
        if entry.prog_type is None:
            raise ArtifactError(f"program '{entry.name}': missing BPF prog type, check ELF "
                                f"section name '{entry.section}'")
        linked = link_program(obj, entry)
        insns, sites = _relocate(obj, linked, kfunc_index, kfuncs)
        programs.append(Program(
            name=entry.name, section=entry.section, prog_type=int(entry.prog_type),
            expected_attach_type=int(entry.expected_attach_type or 0),
            prog_flags=int(entry.prog_flags), license=obj.license,
            kern_version=obj.kern_version or 0, attach_to=entry.attach_target or "",
            insns=insns, func_info=linked.func_info, line_info=linked.line_info,
            core_relos=linked.core_relos, kfunc_sites=sites))
    return Artifact(name=obj.name, btf=prog_btf, programs=tuple(programs), maps=maps,
                    kfuncs=tuple(kfuncs))


def _program_btf(obj: "BPFObject", file: str) -> bytes:
    """The fixed-up program BTF (empty when the object has no .BTF)."""
    if obj.btf is None:
        return b""
    from sigbpf.artifact.prog_btf import program_btf

    hidden = [p.name for p in obj.subprograms if p.hidden]
    return program_btf(obj.btf, obj.datasec_fixup, hidden, file=file).data


def _map(spec) -> Map:
    from sigbpf.elf import MapKind as ObjMapKind, MapType

    if spec.kind == ObjMapKind.KCONFIG:
        raise ArtifactError("kconfig externs (.kconfig) cannot be made portable yet: their "
                            "values are the running kernel's")
    if spec.type == MapType.STRUCT_OPS:
        raise ArtifactError(f"map '{spec.name}': struct_ops maps need the kernel's BTF ids and "
                            "are not supported by format 1.0")
    if spec.inner is not None or spec.init_slots:
        raise ArtifactError(f"map '{spec.name}': map-in-map and initialised prog arrays are "
                            "not supported by format 1.0")
    return Map(
        name=spec.name, kind=MapKind(int(spec.kind)), map_type=int(spec.type),
        key_size=spec.key_size, value_size=spec.value_size, max_entries=spec.max_entries,
        map_flags=int(spec.flags), section=spec.section, btf_key_type_id=spec.key_type_id,
        btf_value_type_id=spec.value_type_id,
        flags=ArtifactMapFlags.FROZEN if spec.frozen else ArtifactMapFlags.NONE,
        pinning=int(spec.pinning),
        numa_node=spec.numa_node, map_extra=spec.map_extra, initial_data=bytes(spec.data or b""))


def _relocate(obj: "BPFObject", linked: LinkedProgram, kfunc_index: dict[str, int],
              kfuncs: list[Kfunc]) -> tuple[tuple[Instruction, ...], tuple[KfuncSite, ...]]:
    """Apply the non-call relocations of a linked program; collect its kfunc sites."""
    from sigbpf.elf import RelocKind

    insns = list(linked.insns)
    sites: list[KfuncSite] = []
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
            raise fail(f"ksym variable '{rel.target}': kernel variables cannot be made portable "
                       "yet (only kfuncs)")
        elif rel.kind == RelocKind.KCONFIG:
            raise fail(f"kconfig extern '{rel.symbol}' cannot be made portable yet")
        else:  # pragma: no cover - link_program handled calls
            raise fail(f"unexpected relocation {rel.kind.name}")
    return tuple(insns), tuple(sites)


def _index(rel, fail) -> int:
    if rel.map_index is None:  # pragma: no cover - the object reader always sets it
        raise fail(f"relocation against '{rel.target}' has no map")
    return rel.map_index

