"""A loader's readable disassembly: labels, the emitters' comments, blob addresses.

Each instruction is printed as ``llvm-objdump`` writes it (:func:`sigbpf.asm.format_insn`),
except ``ld_imm64`` pseudo forms, which say what they load (``&blob[+0x40]``,
``map[0]``); jumps name their label; helper calls their helper; the loader's own
PROG_BTF kfunc calls the FUNC of its own BTF they name.
"""

from __future__ import annotations

from sigbpf.asm import PseudoCall, PseudoLdImm64
from sigbpf.asm.opcodes import CALL_CODE, LD_IMM64_CODE
from sigbpf.loadergen.assembler import NoteKind
from sigbpf.loadergen.emit import Helper
from sigbpf.loadergen.format import Loader


def _u64(low: int, high: int) -> int:
    return (low & 0xFFFFFFFF) | (high & 0xFFFFFFFF) << 32


def listing(loader: Loader) -> str:
    """The annotated disassembly of *loader*, one line per instruction, notes between."""
    from sigbpf.asm.disasm import format_insn

    insns = loader.insns
    labels = {n.insn: n.text for n in loader.notes if n.kind == NoteKind.LABEL}
    notes: dict[int, list[str]] = {}
    for n in loader.notes:
        notes.setdefault(n.insn, []).append(f"{n.text}:" if n.kind == NoteKind.LABEL
                                            else f"    ; {n.text}")
    lines = [f"; loader {loader.name!r}: protocol v{int(loader.protocol)}, {len(insns)} insns, "
             f"blob {len(loader.blob)} bytes, ctx {loader.ctx_size} bytes, "
             f"{len(loader.maps)} map(s), {len(loader.progs)} program(s)"]
    i = 0
    while i < len(insns):
        lines.extend(notes.get(i, ()))
        insn = insns[i]
        if insn.code == LD_IMM64_CODE and i + 1 < len(insns):
            high = insns[i + 1].imm
            if insn.src == PseudoLdImm64.MAP_IDX_VALUE:
                text = f"r{insn.dst} = &blob[{high & 0xFFFFFFFF:#x}]  (map_idx_value {insn.imm})"
            elif insn.src == PseudoLdImm64.MAP_IDX:
                text = f"r{insn.dst} = map[{insn.imm}]  (struct bpf_map *)"
            else:
                text = f"r{insn.dst} = {_u64(insn.imm, high):#x} ll"
            lines.append(f"{i:6d}: {text}")
            i += 2
            continue
        text = format_insn(insns, i)
        if insn.code == CALL_CODE and insn.src == 0:
            try:
                text += f"  ; {Helper(insn.imm).name.lower()}"
            except ValueError:
                pass
        elif insn.code == CALL_CODE and insn.src == PseudoCall.KFUNC_CALL_PROG_BTF:
            name = loader.own_btf.kfunc_name(insn.imm) if loader.own_btf is not None else None
            text += f"  ; kfunc {name or '?'} (PROG_BTF: the loader's own BTF [{insn.imm}])"
        elif insn.is_jump and not insn.is_exit and (i + 1 + insn.off) in labels:
            text += f"  <{labels[i + 1 + insn.off]}>"
        lines.append(f"{i:6d}: {text}")
        i += 1
    lines.extend(notes.get(len(insns), ()))
    return "\n".join(lines) + "\n"


__all__ = ["listing"]
