"""``core:`` cells: every CO-RE relocation of the artifact, computed against one kernel.

The computation is :mod:`sigbpf.btf.core` (libbpf's and the kernel's
``bpf_core_calc_relo_insn``, kernel rules for artifacts); this module only
turns its :class:`~sigbpf.btf.core.CoreOutcome`\\ s into cells:

* ``relocated`` (OK, ``value`` = the new value: offset, size, id, 0/1, ...);
* ``fails-if-reached`` (WARN: the instruction is poisoned, ``call 0xbad2310``;
  the verifier refuses the program only if that instruction is reachable);
* ``refused`` (FAIL: the load stops, e.g. ambiguous candidates).

``detail`` is the outcome's own line (instruction, access string, target).
The relocation set (:class:`~sigbpf.btf.core.CoreRelocationSet`) is worked
out once per process, not per kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from sigbpf.fleet.model import Cell, CheckKind, Verdict

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf.core import CoreRelocationSet
    from sigbpf.btf.spec import BTF
    from sigbpf.resolve.modules import ModuleBTF

_VERDICTS = {"relocated": Verdict.OK, "fails-if-reached": Verdict.WARN, "refused": Verdict.FAIL}


def core_cells(relos: "CoreRelocationSet", local: "BTF", vmlinux: "BTF",
               modules: Sequence["ModuleBTF"]) -> list[Cell]:
    """One cell per relocation site (``core:PROG/insn N``; the worst if a site has several)."""
    from sigbpf.btf.core import relocate_all

    outcomes = relocate_all(local, relos.relocations, vmlinux, modules=[m.btf for m in modules],
                            rules=relos.rules)
    cells: dict[str, Cell] = {}
    for o in outcomes:
        key = f"{CheckKind.CORE.label}:{o.program}/insn {o.insn}"
        value = o.value if o.ok else None
        if value is not None and not -(1 << 63) <= value < (1 << 64):
            value = None
        cell = Cell(key, _VERDICTS[o.code], o.code, o.describe(), value)
        old = cells.get(key)
        if old is None or cell.verdict > old.verdict:
            cells[key] = cell
    return list(cells.values())
