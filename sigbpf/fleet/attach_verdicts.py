"""``attach:`` and ``ksym:`` cells: what the loader binds by name, bound in one kernel's BTF.

Attach targets are found by :func:`sigbpf.kernel.kernel_btf.bind_attach_target`
-- the loader's own rule (libbpf's ``find_kernel_btf_id``: vmlinux first,
then modules, ``module:function`` limits it; struct_ops: the struct and its
member) -- with the kernel's BTF as read from a file instead of the running
kernel (no BTF object fds are opened):

``attach:NAME``
    ``resolves`` (OK, ``value`` = the type id; in a module: ``detail`` says
    which); ``missing`` (FAIL: "failed to find kernel BTF type ID", ESRCH;
    struct_ops: no such struct or member); ``incompatible`` / ``drift``
    (FAIL / WARN) when the program BTF declares a FUNC of the target's name
    (an ``extern`` prototype) and it does not match the kernel's by libbpf's /
    the strict rule -- most programs declare none, and then there is no
    prototype to check.

Typed ksyms go through :func:`sigbpf.btf.ksyms.resolve_ksym_var` (libbpf's
rules, as the loader):

``ksym:NAME``
    ``resolves`` (OK, ``value`` = the VAR id); ``missing`` (FAIL) or
    ``missing-weak`` (WARN: its address is 0); ``incompatible`` (FAIL:
    libbpf's "incompatible types").  Typeless ksyms (``extern const void x
    __ksym``) are bound through ``/proc/kallsyms`` at load time, which no BTF
    shows: ``kallsyms`` (OK) when the BTF has a FUNC or VAR of that name,
    ``kallsyms-unknown`` (WARN) when it has neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from sigbpf.fleet.model import Cell, CheckKind, Verdict
from sigbpf.fleet.needs import attach_label

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.artifact.format import Artifact
    from sigbpf.btf.spec import BTF
    from sigbpf.fleet.scanbtf import ScanBTF
    from sigbpf.resolve.modules import ModuleBTF


def _offline_btfs(vmlinux: "ScanBTF", modules: Sequence["ModuleBTF"]):
    """The loader's :class:`KernelBTFs` over BTF from files: module targets get no fd."""
    from sigbpf.kernel.kernel_btf import KernelBTFs

    class OfflineBTFs(KernelBTFs):
        def module_fd(self, name: str):  # type: ignore[override]
            return None

    return OfflineBTFs(vmlinux, tuple(modules))


def attach_cells(artifact: "Artifact", prog_btf: "BTF | None", vmlinux: "ScanBTF",
                 modules: Sequence["ModuleBTF"], *, prototype: bool = True) -> list[Cell]:
    """One cell per distinct attach target of the artifact's programs."""
    from sigbpf.errors import NotFoundError, SigbpfError
    from sigbpf.kernel.kernel_btf import bind_attach_target

    kernel = _offline_btfs(vmlinux, modules)
    cells: dict[str, Cell] = {}
    for p in artifact.programs:
        t = p.attach
        if t is None:
            continue
        key = f"{CheckKind.ATTACH.label}:{attach_label(t)}"
        if key in cells:
            continue
        try:
            bound = bind_attach_target(t, kernel, program=p.name)
        except NotFoundError as err:
            cells[key] = Cell(key, Verdict.FAIL, "missing", err.message, err.errno)
            continue
        except SigbpfError as err:
            cells[key] = Cell(key, Verdict.FAIL, "missing", err.message, err.errno)
            continue
        where = f" in module {bound.module}" if bound.module else ""
        cell = Cell(key, Verdict.OK, "resolves", f"[{bound.btf_id}]{where}", bound.btf_id)
        if prototype and prog_btf is not None and t.kind == 12:
            target_btf = vmlinux if bound.module is None else \
                next(m.btf for m in modules if m.name == bound.module)
            cell = _with_prototype(cell, t.name, prog_btf, target_btf, bound.btf_id)
        cells[key] = cell
    return list(cells.values())


def _with_prototype(cell: Cell, name: str, prog_btf: "BTF", kernel: "BTF", kernel_id: int) -> Cell:
    """The cell with the program BTF's own prototype of *name* (if it declares one) compared."""
    from sigbpf.btf.compat import compare_func_protos
    from sigbpf.btf.kinds import Kind
    from sigbpf.errors import NotFoundError

    try:
        local_id = prog_btf.find_by_name_kind(name, Kind.FUNC)
    except NotFoundError:
        return cell
    report = compare_func_protos(prog_btf, local_id, kernel, kernel_id, strict=True)
    if not report.compatible:
        why = "; ".join(str(d) for d in report.differences if d.breaks_compat)
        return Cell(cell.check, Verdict.FAIL, "incompatible",
                    f"{cell.detail}: prototype incompatible ({why}): program '{report.local}', "
                    f"kernel '{report.target}'", cell.value)
    if report.strict_differences:
        return Cell(cell.check, Verdict.WARN, "drift",
                    f"{cell.detail}: prototype drift: " + "; ".join(str(d) for d in report.strict_differences),
                    cell.value)
    return cell


def ksym_cells(artifact: "Artifact", prog_btf: "BTF | None", vmlinux: "ScanBTF",
               modules: Sequence["ModuleBTF"]) -> list[Cell]:
    """One cell per ksym of the artifact."""
    from sigbpf.btf.kinds import Kind
    from sigbpf.btf.ksyms import find_ksym_btf_id, resolve_ksym_var
    from sigbpf.errors import CompatError, NotFoundError, SigbpfError

    cells: list[Cell] = []
    for k in artifact.ksyms:
        key = f"{CheckKind.KSYM.label}:{k.name}"
        if not k.typed or prog_btf is None:
            found = find_ksym_btf_id(k.name, Kind.VAR, vmlinux, modules) or \
                find_ksym_btf_id(k.name, Kind.FUNC, vmlinux, modules)
            if found is not None:
                cells.append(Cell(key, Verdict.OK, "kallsyms",
                                  f"typeless: bound through /proc/kallsyms at load time; the BTF has "
                                  f"{'a VAR' if found[1].kind_of(found[0]) == Kind.VAR else 'a FUNC'} "
                                  f"of that name ({found[2]})"))
            else:
                cells.append(Cell(key, Verdict.WARN, "kallsyms-unknown",
                                  "typeless: bound through /proc/kallsyms at load time; the BTF has "
                                  "no FUNC or VAR of that name, so nothing says this kernel has it"))
            continue
        try:
            var = resolve_ksym_var(k.name, prog_btf, k.type_id, vmlinux, modules, weak=k.weak)
        except CompatError as err:
            cells.append(Cell(key, Verdict.FAIL, "incompatible", err.message, err.errno))
            continue
        except NotFoundError as err:
            cells.append(Cell(key, Verdict.FAIL, "missing", err.message, err.errno))
            continue
        except SigbpfError as err:
            cells.append(Cell(key, Verdict.FAIL, "missing", err.message, err.errno))
            continue
        if var is None:
            cells.append(Cell(key, Verdict.WARN, "missing-weak",
                              f"extern (var ksym) '{k.name}': not in kernel BTF; __weak: its address is 0"))
        else:
            where = "" if var.btf_obj == "vmlinux" else f" in module {var.btf_obj}"
            cells.append(Cell(key, Verdict.OK, "resolves", f"VAR [{var.btf_id}]{where}", var.btf_id))
    return cells
