"""``sigbpf disasm OBJ``: disassemble a BPF object (or portable artifact) like llvm-objdump.

For a clang-compiled object the output is, line for line, what
``llvm-objdump-19 -d --no-show-raw-insn OBJ`` prints (``--alu32`` matches
``--mattr=+alu32``).  For a portable artifact (docs/FORMAT.md) each program is
listed as a section named after its ELF section, labelled with the program's
name, using the same layout.  ``--json`` prints, per section, the labels and
``{"index", "text"}`` of every instruction instead.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("obj", metavar="OBJ", help="BPF ELF object (clang -target bpf) or artifact")
    parser.add_argument("-j", "--section", action="append", metavar="NAME", default=None,
                        help="only this code section (repeatable), like llvm-objdump -j")
    parser.add_argument("--alu32", action="store_true",
                        help="32-bit sub-register syntax, like llvm-objdump --mattr=+alu32")
    parser.add_argument("--json", action="store_true", help="JSON instead of text")


def _object_sections(data: bytes, path: str):
    """(byte order, code sections) of an ELF object."""
    from sigbpf.asm.listing import CodeSection, CodeSymbol
    from sigbpf.elf.reader import read_elf
    from sigbpf.elf.sections import SymbolType

    elf = read_elf(data, file=path)
    skip_types = (SymbolType.SECTION, SymbolType.FILE)
    sections = []
    for sec in elf.sections:
        if not sec.is_exec or sec.is_nobits or not sec.size:
            continue
        symbols = tuple(
            CodeSymbol(sym.value, sym.name, is_data=sym.type in (SymbolType.OBJECT, 5))
            for sym in elf.symbols
            if sym.shndx == sec.index and sym.type not in skip_types and sym.name)
        sections.append(CodeSection(sec.name, sec.data, symbols))
    return elf.byteorder, sections


def _artifact_sections(data: bytes, path: str):
    """Code sections of a portable artifact: one per program."""
    from sigbpf.artifact.format import Artifact
    from sigbpf.asm import Instruction
    from sigbpf.asm.listing import CodeSection, CodeSymbol

    art = Artifact.decode(data, file=path)
    return "little", [
        CodeSection(prog.section or prog.name, Instruction.encode(prog.insns),
                    (CodeSymbol(0, prog.name),))
        for prog in art.programs]


def run(args: argparse.Namespace) -> int:
    from sigbpf.asm.listing import choose_labels, list_section, objdump_text
    from sigbpf.cli.output import emit_json
    from sigbpf.fileio import read_input
    from sigbpf.errors import NotFoundError, SigbpfError

    path = args.obj
    data = read_input(path)
    try:
        from sigbpf.artifact.format import is_artifact
        artifact = is_artifact(data)
    except ImportError:  # pragma: no cover - artifact support not installed
        artifact = False
    try:
        if artifact:
            byteorder, sections = _artifact_sections(data, path)
        else:
            byteorder, sections = _object_sections(data, path)
        if args.section:
            wanted = set(args.section)
            missing = sorted(wanted - {s.name for s in sections})
            if missing:
                raise NotFoundError(f"no code section named {missing[0]!r}", file=path)
            sections = [s for s in sections if s.name in wanted]
        if not args.json:
            text = objdump_text(path, sections, byteorder=byteorder, alu32=args.alu32,
                                file_format="sigbpf-artifact" if artifact else "elf64-bpf")
            print(text, end="")
            return 0
        out = []
        for sec in sections:
            lines = list_section(sec, byteorder=byteorder, alu32=args.alu32)
            insns = []
            for line in lines:
                head, sep, text = line.partition(":\t")
                if sep and head.strip().isdigit():
                    insns.append({"index": int(head), "text": text})
            labels = choose_labels(sec.name, sec.symbols, len(sec.data))
            out.append({"section": sec.name,
                        "labels": [{"offset": off, "index": off // 8, "name": name}
                                   for off, name in labels.items()],
                        "insns": insns})
        emit_json({"file": path, "byteorder": byteorder, "sections": out})
        return 0
    except SigbpfError as err:
        raise err.at(file=path)
