"""The page layout of ``llvm-objdump-19 -d --no-show-raw-insn`` for BPF code sections.

:mod:`sigbpf.asm.disasm` gives the text of one instruction; this module lays
a whole section out the way llvm-objdump does, so that ``sigbpf disasm OBJ``
and ``llvm-objdump-19 -d --no-show-raw-insn OBJ`` print the same thing::

    <blank>
    Disassembly of section tc:
    <blank>
    0000000000000000 <prog>:
           0:\\tr1 = 0x0 ll
           2:\\tcall 0x1
    \\t\\t...                      (a run of >= 8 zero bytes is skipped)

Rules observed in llvm-objdump 19 (and tested against it):

* Labels: at each address one symbol is shown: non-data symbols win over
  ``STT_OBJECT`` ones, then the greatest name.  Section and file symbols are
  ignored; when no symbol sits at offset 0, the section's name is used there.
* The number before ``:`` is the byte address divided by 8 (the slot index).
* Jump targets are annotated with the nearest label at or below the target.
* At an instruction start, 8 or more zero bytes (up to the next label) are
  printed as ``\\t\\t...`` and skipped, rounded down to a multiple of 4.

* Bytes under a data (``STT_OBJECT``) label are dumped as hex and ASCII.

Deviation, on purpose: a section whose size is not a multiple of 8, or that
ends in the first half of an ld_imm64, is an :class:`InstructionError` here
(llvm-objdump prints ``<unknown>`` byte by byte).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from sigbpf.asm.disasm import UNKNOWN, Symbolizer, branch_target_at, format_insn, insn_width
from sigbpf.asm.instruction import ByteOrder, Instruction
from sigbpf.asm.opcodes import INSN_SIZE, LD_IMM64_CODE
from sigbpf.errors import InstructionError


@dataclass(frozen=True, slots=True)
class CodeSymbol:
    """A symbol that may label code: byte offset in its section, name, data or not."""

    offset: int
    name: str
    is_data: bool = False


@dataclass(frozen=True, slots=True)
class CodeSection:
    """One executable section to list: its name, raw bytes and the symbols in it."""

    name: str
    data: bytes
    symbols: tuple[CodeSymbol, ...] = ()


def choose_label_symbols(section_name: str, symbols: Iterable[CodeSymbol],
                         size: int) -> dict[int, CodeSymbol]:
    """byte offset -> the one symbol llvm-objdump shows there (a made-up one at 0
    named after the section when no symbol is there)."""
    best: dict[int, CodeSymbol] = {}
    for sym in symbols:
        if not 0 <= sym.offset < size:
            continue
        old = best.get(sym.offset)
        if old is None or (not sym.is_data, sym.name) > (not old.is_data, old.name):
            best[sym.offset] = sym
    if size and 0 not in best:
        best[0] = CodeSymbol(0, section_name)
    return dict(sorted(best.items()))


def choose_labels(section_name: str, symbols: Iterable[CodeSymbol], size: int) -> dict[int, str]:
    """byte offset -> the one label llvm-objdump prints there."""
    return {off: sym.name for off, sym in choose_label_symbols(section_name, symbols, size).items()}


def _data_lines(data: bytes, start: int, end: int) -> list[str]:
    """llvm-objdump's dump of bytes under a data (``STT_OBJECT``) label: 8 a line."""
    lines = []
    for addr in range(start, end, 8):
        chunk = data[addr:min(addr + 8, end)]
        hexes = "".join(f" {b:02x}" for b in chunk)
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{addr:8x}:{hexes}{' ' * (3 * (8 - len(chunk)))}         {text}")
    return lines


def _zero_run(data: bytes, start: int, end: int) -> int:
    n = start
    while n < end and data[n] == 0:
        n += 1
    return n - start


def list_section(section: CodeSection, *, byteorder: ByteOrder = "little",
                 alu32: bool = False) -> list[str]:
    """The lines llvm-objdump prints for one code section (no trailing newlines)."""
    data = section.data
    size = len(data)
    if size % INSN_SIZE:
        raise InstructionError(
            f"section {section.name}: size {size} is not a multiple of {INSN_SIZE}",
            offset=size - size % INSN_SIZE)
    chosen = choose_label_symbols(section.name, section.symbols, size)
    symbolize = Symbolizer({off: sym.name for off, sym in chosen.items()})
    starts = list(chosen)
    lines = ["", f"Disassembly of section {section.name}:"]
    for pos, start in enumerate(starts):
        end = starts[pos + 1] if pos + 1 < len(starts) else size
        lines += ["", f"{start:016x} <{chosen[start].name}>:"]
        if chosen[start].is_data:
            lines += _data_lines(data, start, end)
            continue
        addr = start
        while addr < end:
            zeros = _zero_run(data, addr, end)
            if zeros >= 8:
                lines.append("\t\t...")
                addr += zeros & ~3
                continue
            insn, text, width = _decode_at(data, addr, byteorder, alu32, section.name)
            if insn is not None and text != UNKNOWN:
                target = branch_target_at(insn, addr)
                label = symbolize(target) if target is not None else None
                if label:
                    text = f"{text} {label}"
            lines.append(f"{addr // INSN_SIZE:8d}:\t{text}")
            addr += width
    return lines


def _decode_at(data: bytes, addr: int, byteorder: ByteOrder, alu32: bool,
               section: str) -> tuple[Instruction | None, str, int]:
    """(first slot, text, bytes consumed) at byte ``addr``, as LLVM's decoder sees it."""
    rest = len(data) - addr
    if rest < INSN_SIZE:  # only after a zero run that ended mid-slot
        return None, UNKNOWN, 1
    chunk = data[addr:addr + 2 * INSN_SIZE]
    if len(chunk) % INSN_SIZE:
        chunk = chunk[:INSN_SIZE]
    insns = Instruction.decode(chunk, byteorder)
    if insns[0].code == LD_IMM64_CODE and len(insns) == 1 and insn_width(insns, 0) == 2:
        if addr % INSN_SIZE:
            return None, UNKNOWN, 1
        raise InstructionError(
            f"section {section}: ld_imm64 missing its second slot (truncated program)",
            insn=addr // INSN_SIZE)
    text = format_insn(insns, 0, alu32=alu32)
    if text == UNKNOWN:
        return insns[0], text, INSN_SIZE
    return insns[0], text, insn_width(insns, 0) * INSN_SIZE


def objdump_text(file_label: str, sections: Sequence[CodeSection], *,
                 byteorder: ByteOrder = "little", alu32: bool = False,
                 file_format: str = "elf64-bpf") -> str:
    """The whole output of ``llvm-objdump -d --no-show-raw-insn FILE`` for these sections."""
    lines = ["", f"{file_label}:\tfile format {file_format}"]
    for section in sections:
        if section.data:
            try:
                lines += list_section(section, byteorder=byteorder, alu32=alu32)
            except InstructionError as err:
                raise err.at(file=file_label)
    return "\n".join(lines) + "\n"
