"""struct_ops in a BPF object: which program implements which member of which kernel struct.

A ``SEC(".struct_ops")`` (or ``.struct_ops.link``) variable is an instance of
a kernel "ops" struct (``struct tcp_congestion_ops cubic = { .init = (void
*)bpf_cubic_init, ... }``).  Its function-pointer members are relocated
(``.rel.struct_ops``) against the programs of ``SEC("struct_ops/...")``.
libbpf's ``bpf_object__collect_st_ops_relos`` turns each relocation into:
program *P* implements member *M* of struct *S*.  ``BPF_PROG_LOAD`` then
takes ``attach_btf_id`` = the kernel's id of *S* and ``expected_attach_type``
= the index of *M* in the kernel's *S* -- both the running kernel's, so a
portable artifact records *S* and *M* by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sigbpf.errors import ELFError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf import BTF
    from sigbpf.elf.datasec import DatasecFixup
    from sigbpf.elf.reader import ElfFile

STRUCT_OPS_SECTIONS = (".struct_ops", ".struct_ops.link")


@dataclass(frozen=True, slots=True)
class StructOpsMember:
    """Program ``program`` implements member ``member`` of the kernel struct ``struct``
    (through the object's variable ``variable`` in section ``section``)."""

    program: str
    struct: str
    member: str
    variable: str
    section: str


def collect_struct_ops(elf: "ElfFile", btf: "BTF | None", fixup: "DatasecFixup",
                       entry_programs: dict[tuple[int, int], str], *,
                       file: str | None = None) -> tuple[StructOpsMember, ...]:
    """Every struct_ops member implemented by a program (libbpf's st_ops relocations).

    *entry_programs* maps (section index, byte offset) of each entry program to its name.
    """
    from sigbpf.btf import Kind

    out: list[StructOpsMember] = []
    for sec in elf.sections:
        if sec.name not in STRUCT_OPS_SECTIONS:
            continue
        if btf is None:
            raise ELFError(f"{sec.name}: struct_ops need the object's .BTF", file=file)
        try:
            sec_id = btf.find_by_name_kind(sec.name, Kind.DATASEC)
        except Exception:
            raise ELFError(f"{sec.name}: no DATASEC of that name in .BTF", file=file) from None
        variables = fixup.datasec(btf, sec_id).vars
        rels = next((e for i, e in elf.rels.items() if elf.sections[i].info == sec.index), ())
        for n, rel in enumerate(rels):
            sym = elf.symbols[rel.symbol]
            program = entry_programs.get((sym.shndx, sym.value))
            where = {"file": file, "offset": rel.offset}
            if program is None:
                raise ELFError(f"struct_ops reloc #{n}: '{sym.name}' is not a struct_ops program",
                               **where)
            vs = next((v for v in variables if v.offset <= rel.offset < v.offset + v.size), None)
            if vs is None:
                raise ELFError(f"struct_ops reloc #{n}: offset {rel.offset} is in no variable "
                               f"of {sec.name}", **where)
            var = btf[vs.type]
            struct_id = btf.resolve_modifiers(var.type)  # type: ignore[union-attr]
            struct = btf[struct_id]
            bit = (rel.offset - vs.offset) * 8
            member = next((m for m in getattr(struct, "members", ()) if m.offset == bit), None)
            if member is None or not member.name:
                raise ELFError(f"struct_ops reloc #{n}: no member of '{struct.name}' at byte "
                               f"{rel.offset - vs.offset}", **where, type_id=struct_id)
            out.append(StructOpsMember(program, struct.name or "", member.name, var.name or "",
                                       sec.name))
    return tuple(out)


__all__ = ["StructOpsMember", "collect_struct_ops", "STRUCT_OPS_SECTIONS"]
