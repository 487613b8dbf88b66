"""``prog_type:``, ``map_type:``, ``attach_type:`` and ``helper:`` cells: enum values a kernel must know.

The artifact stores these as numbers (``BPF_PROG_LOAD``'s ``prog_type`` and
``expected_attach_type``, ``BPF_MAP_CREATE``'s ``map_type``, a helper call's
``imm``).  A kernel knows a number when its own UAPI enum in its BTF --
``enum bpf_prog_type``, ``bpf_map_type``, ``bpf_attach_type``,
``bpf_func_id`` -- has an enumerator of that value below the enum's
``__MAX_*`` sentinel (older kernels end their enums earlier: 6.1 has no
``BPF_MAP_TYPE_ARENA``, no ``BPF_TRACE_KPROBE_SESSION``):

* ``known`` (OK, ``value`` = the number; ``detail`` the kernel's name for it,
  when it differs from the UAPI name the artifact was built with);
* ``unknown`` (FAIL: the kernel would refuse the load or the map with EINVAL);
* ``enum-missing`` (WARN: the BTF has no such enum -- a minimal BTF such as
  ``bpftool gen min_core_btf`` output -- so nothing can be said).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from sigbpf.fleet.model import Cell, CheckKind, Verdict

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.fleet.needs import EnumUse
    from sigbpf.fleet.scanbtf import ScanBTF

#: The kernel enum each check kind is answered from.
ENUMS = {
    CheckKind.PROG_TYPE: "bpf_prog_type",
    CheckKind.MAP_TYPE: "bpf_map_type",
    CheckKind.ATTACH_TYPE: "bpf_attach_type",
    CheckKind.HELPER: "bpf_func_id",
}


def kernel_enum(vmlinux: "ScanBTF", enum: str) -> dict[int, list[str]] | None:
    """value -> enumerator names of *enum* (the ``__MAX`` sentinel and what follows it
    left out), or None when the BTF has no such enum."""
    from sigbpf.btf.kinds import Kind
    from sigbpf.errors import NotFoundError

    for kind in (Kind.ENUM, Kind.ENUM64):
        try:
            type_id = vmlinux.find_by_name_kind(enum, kind)
        except NotFoundError:
            continue
        values = vmlinux[type_id].values  # type: ignore[union-attr]
        limit = min((v.value for v in values if v.name.startswith("__")), default=None)
        out: dict[int, list[str]] = {}
        for v in values:
            if v.name.startswith("__") or (limit is not None and v.value >= limit):
                continue
            out.setdefault(v.value, []).append(v.name)
        return out
    return None


def enum_cells(uses: Sequence["EnumUse"], vmlinux: "ScanBTF") -> list[Cell]:
    """One cell per enum value the artifact uses."""
    enums: dict[CheckKind, dict[int, list[str]] | None] = {}
    cells: list[Cell] = []
    for use in uses:
        if use.kind not in enums:
            enums[use.kind] = kernel_enum(vmlinux, ENUMS[use.kind])
        known = enums[use.kind]
        key = f"{use.kind.label}:{use.name}"
        enum = ENUMS[use.kind]
        if known is None:
            cells.append(Cell(key, Verdict.WARN, "enum-missing",
                              f"this BTF has no enum {enum}: cannot tell", use.value))
        elif use.value in known:
            names = known[use.value]
            detail = f"enum {enum} = {use.value}"
            if use.name not in names:
                detail += f" (named {', '.join(names)} here)"
            cells.append(Cell(key, Verdict.OK, "known", detail, use.value))
        else:
            top = max(known, default=-1)
            cells.append(Cell(key, Verdict.FAIL, "unknown",
                              f"enum {enum} of this kernel has no value {use.value} (it ends at {top})",
                              use.value))
    return cells
