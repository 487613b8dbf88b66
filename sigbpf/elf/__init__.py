"""Clang-compiled BPF objects: the *spec* of programs, maps and externs.

Public API::

    from sigbpf.elf import BPFObject
    obj = BPFObject.from_file("prog.o")          # or BPFObject.from_bytes(data, "prog.o")
    for prog in obj.entry_programs:
        prog.name, prog.section, prog.prog_type, prog.expected_attach_type, prog.prog_flags
        prog.insns                                # tuple of sigbpf.asm.Instruction (8-byte slots)
        prog.relocations                          # classified: RelocKind.MAP / DATA / CALL / ...
        obj.subprograms_of(prog)                  # .text subprograms, in libbpf's append order
        obj.kfuncs_of(prog)                       # kfunc names, subprograms included
        obj.ext_info_of(prog)                     # func_info, line_info, core_relos
    obj.maps, obj.externs, obj.license, obj.kern_version, obj.btf, obj.btf_ext

Modules, one concept each: :mod:`.reader` (the ELF container), :mod:`.sections`
(sections and symbols), :mod:`.programs`, :mod:`.progtypes` (ProgType,
AttachType, ProgFlags and libbpf's section table), :mod:`.relocations`,
:mod:`.maps` (BTF-defined maps, MapType), :mod:`.datasec` (global data maps),
:mod:`.externs`, :mod:`.btf_ext`, :mod:`.object` (:class:`BPFObject`).

Reading an object is deterministic and never touches ``/sys`` or the kernel.
Importing this package is cheap: each module is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.elf.btf_ext import BTFExt, CoreRelo, CoreReloKind, FuncInfo, LineInfo  # noqa: F401
    from sigbpf.elf.externs import Extern, ExternKind, KconfigType  # noqa: F401
    from sigbpf.elf.maps import InitSlot, MapFlags, MapKind, MapSpec, MapType, Pinning  # noqa: F401
    from sigbpf.elf.object import BPFObject, ProgramExtInfo  # noqa: F401
    from sigbpf.elf.programs import Program  # noqa: F401
    from sigbpf.elf.progtypes import AttachType, ProgFlags, ProgType, SectionDef, section_def  # noqa: F401
    from sigbpf.elf.relocations import Relocation, RelocKind  # noqa: F401

_EXPORTS = {
    "BPFObject": "object", "ProgramExtInfo": "object",
    "Program": "programs",
    "ProgType": "progtypes", "AttachType": "progtypes", "ProgFlags": "progtypes",
    "SectionDef": "progtypes", "section_def": "progtypes",
    "Relocation": "relocations", "RelocKind": "relocations",
    "MapSpec": "maps", "MapType": "maps", "MapFlags": "maps", "MapKind": "maps",
    "Pinning": "maps", "InitSlot": "maps",
    "Extern": "externs", "ExternKind": "externs", "KconfigType": "externs",
    "BTFExt": "btf_ext", "FuncInfo": "btf_ext", "LineInfo": "btf_ext", "CoreRelo": "btf_ext",
    "CoreReloKind": "btf_ext",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sigbpf.elf' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sigbpf.elf.{module}"), name)


__all__ = sorted(_EXPORTS)
