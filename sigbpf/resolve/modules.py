"""Module replacement: a kfunc name that a kernel module's BTF also defines.

The seed's review asks whether a PROG_BTF kfunc "should be immutable" when
modules may one day replace kfuncs by name.  sigbpf's policy for signed
artifacts is **pinned to vmlinux**: the seed's pass searches vmlinux BTF only
and leaves ``off = 0``, so a module's FUNC of the same name is never chosen,
whatever modules are loaded.  This check makes a collision visible:

* the name resolved in vmlinux and a module also has a FUNC of that name ->
  warning, saying the call stays pinned to vmlinux;
* the name is missing from vmlinux but a module defines it -> note: the
  seed's pass cannot reach module kfuncs (it would need ``off > 0`` and a
  module BTF fd in ``fd_array``), so the call is rejected with ENOENT.

Module BTF is split BTF on the vmlinux given (``/sys/kernel/btf/<module>``
or a module's ``.BTF`` section); only the module's own types count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Sequence

from sigbpf.btf.kinds import Kind
from sigbpf.resolve.findings import CheckName, Finding, Severity
from sigbpf.resolve.resolver import KfuncCall

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf.spec import BTF

POLICY = "pinned to vmlinux"


@dataclass(frozen=True, slots=True)
class ModuleBTF:
    """A module's split BTF and the name it is reported under (e.g. ``nf_conntrack``)."""

    name: str
    btf: "BTF"

    @classmethod
    def from_file(cls, path: str, vmlinux: "BTF") -> "ModuleBTF":
        """Parse *path* as split BTF on *vmlinux*.

        The name is the file name without a ``.btf`` suffix and without any
        dotted prefix (module names have no dots): ``/sys/kernel/btf/xfs`` and
        ``6.12.95+deb12-amd64.xfs.btf`` are both ``xfs``.
        """
        from sigbpf.btf.spec import BTF

        name = PurePath(path).name
        if name.endswith(".btf"):
            name = name[:-4]
        name = name.rsplit(".", 1)[-1] or name
        return cls(name, BTF.from_file(path, base=vmlinux, validate=False))

    def own_funcs(self, name: str) -> list[int]:
        """Ids of the module's own FUNCs called *name* (base types excluded)."""
        return [i for i in self.btf.find_all_by_name_kind(name, Kind.FUNC) if i >= self.btf.start_id]


def check_module_collisions(calls: Sequence[KfuncCall], modules: Sequence[ModuleBTF]) -> list[Finding]:
    """One finding per (kfunc name, module) where the module defines a FUNC of that name."""
    findings: list[Finding] = []
    seen: set[str] = set()
    for call in calls:
        if not call.name or call.name in seen:
            continue
        seen.add(call.name)
        for module in modules:
            ids = module.own_funcs(call.name)
            if not ids:
                continue
            if call.btf_id is not None:
                findings.append(Finding(
                    CheckName.MODULE, Severity.WARNING, call.name, call.insn,
                    f"{call.name} is also defined by module {module.name} (FUNC [{ids[0]}]); "
                    f"{POLICY}: the call resolves to vmlinux FUNC [{call.btf_id}] with off = 0, "
                    f"the module's FUNC is never chosen",
                    detail=tuple(f"module {module.name}: FUNC [{i}] {call.name}" for i in ids),
                    module=module.name))
            else:
                findings.append(Finding(
                    CheckName.MODULE, Severity.NOTE, call.name, call.insn,
                    f"{call.name} is not in vmlinux but module {module.name} defines it "
                    f"(FUNC [{ids[0]}]); PROG_BTF resolution searches vmlinux only "
                    f"({POLICY}), so module kfuncs cannot be called this way",
                    module=module.name))
    return findings
