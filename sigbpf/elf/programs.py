"""Programs of a BPF object: one per ``STT_FUNC`` symbol in an executable section.

libbpf's ``bpf_object__add_programs`` rules: every FUNC symbol of a
non-empty ``SHF_EXECINSTR`` PROGBITS section is a program spanning
``st_value .. st_value + st_size``.  Functions in ``.text`` are
*subprograms* (static or global; they are appended to the entry programs
that call them); functions in any other section are *entry programs*, whose
type comes from the section name (:func:`sigbpf.elf.progtypes.section_def`).
A static (``STB_LOCAL``) function outside ``.text`` is refused ("program
'%s' is static and not supported"), as is a program that is empty, not a
multiple of 8 bytes, or crosses the end of its section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sigbpf.asm import Instruction
from sigbpf.elf.progtypes import AttachType, ProgFlags, ProgType, SectionDef, section_def
from sigbpf.elf.sections import Section, SectionType, Symbol, SymbolBinding, SymbolType, Visibility
from sigbpf.errors import ELFError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.elf.relocations import Relocation

TEXT_SECTION = ".text"
INSN_SIZE = 8


@dataclass(frozen=True, slots=True)
class Program:
    """One function of the object (entry program or ``.text`` subprogram).

    ``insn_offset``/``insn_count`` are in 8-byte slots within the section
    (``offset``/``size`` the same in bytes).  ``insns`` are the program's own
    slots as in the object (not relocated, subprograms not appended).
    ``relocations`` hold section-relative ``insn`` indexes and
    ``prog_insn`` relative to this program.  ``calls`` are the subprograms
    called directly (bpf-to-bpf calls and callback addresses), in first-use
    order; :meth:`sigbpf.elf.BPFObject.subprograms_of` gives the transitive
    list in the order libbpf appends them.
    """

    name: str
    section: str  # as in the ELF, including a leading '?'
    section_index: int
    offset: int
    size: int
    insns: tuple[Instruction, ...]
    is_subprog: bool
    is_global: bool
    hidden: bool  # global but STV_HIDDEN/INTERNAL: libbpf marks its BTF FUNC static
    autoload: bool  # False for SEC("?...")
    section_def: SectionDef | None
    relocations: tuple["Relocation", ...] = ()
    calls: tuple[str, ...] = field(default=())

    @property
    def insn_offset(self) -> int:
        return self.offset // INSN_SIZE

    @property
    def insn_count(self) -> int:
        return self.size // INSN_SIZE

    @property
    def section_name(self) -> str:
        """The section name libbpf matches against its table (without a leading '?')."""
        return self.section[1:] if self.section.startswith("?") else self.section

    @property
    def prog_type(self) -> ProgType | None:
        """The program type from the section name; None for subprograms and unknown sections."""
        return self.section_def.prog_type if self.section_def else None

    @property
    def expected_attach_type(self) -> AttachType | None:
        return self.section_def.attach_type if self.section_def else None

    @property
    def prog_flags(self) -> ProgFlags:
        return self.section_def.prog_flags if self.section_def else ProgFlags.NONE

    @property
    def attach_target(self) -> str | None:
        """For programs that need ``attach_btf_id`` (fentry/, lsm/, ...): the name after '/'."""
        if not self.section_def or not self.section_def.needs_attach_btf:
            return None
        _, slash, rest = self.section_name.partition("/")
        return rest if slash else None

    def contains(self, section_index: int, insn: int) -> bool:
        """Whether slot *insn* of section *section_index* belongs to this program."""
        return (section_index == self.section_index
                and self.insn_offset <= insn < self.insn_offset + self.insn_count)


def find_programs(section: Section, symbols: tuple[Symbol, ...], byteorder: str,
                  *, file: str | None = None) -> list[Program]:
    """The programs of one executable section, in symbol-table order."""
    if section.type != SectionType.PROGBITS or not section.is_exec or section.size == 0:
        return []
    is_text = section.name == TEXT_SECTION
    sdef = None if is_text else section_def(section.name)
    out: list[Program] = []
    for sym in symbols:
        if sym.shndx != section.index or sym.type != SymbolType.FUNC:
            continue
        where = {"file": file, "offset": section.offset + sym.value}
        if sym.value + sym.size > section.size:
            raise ELFError(f"sec '{section.name}': program at offset {sym.value} crosses section "
                           "boundary", **where)
        if not is_text and sym.bind == SymbolBinding.LOCAL:
            raise ELFError(f"sec '{section.name}': program '{sym.name}' is static and not supported",
                           **where)
        if sym.size == 0 or sym.size % INSN_SIZE or sym.value % INSN_SIZE:
            raise ELFError(f"sec '{section.name}': corrupted program '{sym.name}', offset {sym.value}, "
                           f"size {sym.size}", **where)
        insns = Instruction.decode(section.data[sym.value:sym.value + sym.size],
                                   byteorder)  # type: ignore[arg-type]
        is_global = sym.bind != SymbolBinding.LOCAL
        out.append(Program(
            name=sym.name, section=section.name, section_index=section.index, offset=sym.value,
            size=sym.size, insns=tuple(insns), is_subprog=is_text, is_global=is_global,
            hidden=is_global and sym.visibility in (Visibility.HIDDEN, Visibility.INTERNAL),
            autoload=not section.name.startswith("?"), section_def=sdef))
    return out


def program_at(programs: list[Program], section_index: int, insn: int) -> Program | None:
    """The program that holds slot *insn* of section *section_index* (libbpf's find_prog_by_sec_insn)."""
    for prog in programs:
        if prog.contains(section_index, insn):
            return prog
    return None
