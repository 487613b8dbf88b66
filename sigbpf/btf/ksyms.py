"""Typed ksym variables (``extern const int x __ksym;``) resolved against kernel BTF, as libbpf does.

A *typed* ksym is an extern VAR in ``.ksyms`` whose type is not ``void``.
libbpf (``bpf_object__resolve_ksym_var_btf_id`` and ``find_ksym_btf_id``)
resolves it to a VAR of the same name in kernel BTF -- the one the program's
``ld_imm64`` then names with ``src_reg = BPF_PSEUDO_BTF_ID`` (``imm`` = the
VAR's id, ``insn[1].imm`` = the BTF object's fd, 0 for vmlinux):

1. the first VAR of that name in vmlinux BTF (vmlinux BTF has VARs for
   per-CPU variables only, e.g. ``bpf_prog_active``, ``runqueues``);
2. else the first module, in the order given, whose *own* types (split BTF,
   base excluded) have such a VAR -- libbpf walks the loaded module BTFs in
   kernel BTF-object-id order;
3. else: a weak extern stays unresolved (None; libbpf then loads the address
   0 as a plain constant), a strong one is "extern (var ksym) 'x': not found
   in kernel BTF";
4. the local type (modifiers and typedefs skipped) and the kernel VAR's type
   (the same) must pass :func:`sigbpf.btf.compat.core_types_are_compat`
   (libbpf's ``bpf_core_types_are_compat``) -- weak or not, else "extern
   (var ksym) 'x': incompatible types, expected [3] int int, but kernel has
   [10206] struct rq".

Pure: the caller passes the BTFs (``sigbpf.kernel.kallsyms`` has the
running-kernel wrapper).
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Sequence

from sigbpf.btf.compat import core_types_are_compat
from sigbpf.btf.kinds import Kind
from sigbpf.errors import ArtifactError, CompatError, NotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf.spec import BTF

__all__ = ["NamedBTF", "KsymVar", "resolve_ksym_var", "find_ksym_btf_id", "btf_kind_str"]

VMLINUX = "vmlinux"

#: libbpf's ``btf_kind_str``.
_KIND_STR = {
    Kind.UNKN: "void", Kind.INT: "int", Kind.PTR: "ptr", Kind.ARRAY: "array", Kind.STRUCT: "struct",
    Kind.UNION: "union", Kind.ENUM: "enum", Kind.FWD: "fwd", Kind.TYPEDEF: "typedef",
    Kind.VOLATILE: "volatile", Kind.CONST: "const", Kind.RESTRICT: "restrict", Kind.FUNC: "func",
    Kind.FUNC_PROTO: "func_proto", Kind.VAR: "var", Kind.DATASEC: "datasec", Kind.FLOAT: "float",
    Kind.DECL_TAG: "decl_tag", Kind.TYPE_TAG: "type_tag", Kind.ENUM64: "enum64",
}


def btf_kind_str(btf: "BTF", type_id: int) -> str:
    """libbpf's ``btf_kind_str``: ``int``, ``struct``, ``ptr``, ... (``void`` for id 0)."""
    return _KIND_STR.get(btf.kind_of(type_id), "unknown") if type_id else "void"


class NamedBTF(Protocol):
    """A module's split BTF and its name (:class:`sigbpf.resolve.modules.ModuleBTF` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def btf(self) -> "BTF": ...


@dataclass(frozen=True, slots=True)
class KsymVar:
    """Where a typed ksym resolved: the VAR's id in ``btf`` (vmlinux or a module's split BTF)."""

    name: str
    btf_id: int
    btf_obj: str  # "vmlinux" or the module's name
    type_id: int  # the kernel VAR's type, modifiers and typedefs skipped

    def __iter__(self):  # (btf_id, btf_obj), as a pair
        return iter((self.btf_id, self.btf_obj))


def find_ksym_btf_id(name: str, kind: Kind, vmlinux: "BTF",
                     modules: Sequence[NamedBTF] = ()) -> tuple[int, "BTF", str] | None:
    """libbpf's ``find_ksym_btf_id``: (id, BTF, "vmlinux" or module name), or None."""
    try:
        return vmlinux.find_by_name_kind(name, kind), vmlinux, VMLINUX
    except NotFoundError:
        pass
    for module in modules:
        btf = module.btf
        start = getattr(btf, "start_id", 1)
        own = [i for i in btf.find_all_by_name_kind(name, kind) if i >= start]
        if own:
            return own[0], btf, module.name
    return None


def resolve_ksym_var(name: str, local_btf: "BTF", local_type_id: int, vmlinux: "BTF",
                     modules: Sequence[NamedBTF] = (), *, weak: bool = False) -> KsymVar | None:
    """Resolve the typed ksym *name* (its VAR's type is *local_type_id* in *local_btf*).

    Returns a :class:`KsymVar` (which unpacks as ``(btf_id, btf_obj)``), or
    None for a weak extern that no BTF has.  Raises NotFoundError (``ESRCH``)
    for a strong one, CompatError (``EINVAL``) for incompatible types.
    """
    if not local_type_id:
        raise ArtifactError(f"extern (var ksym) '{name}': typeless (void) ksyms resolve through kallsyms")
    local_id = local_btf.resolve_modifiers(local_type_id)
    found = find_ksym_btf_id(name, Kind.VAR, vmlinux, modules)
    if found is None:
        if weak:
            return None
        raise NotFoundError(f"extern (var ksym) '{name}': not found in kernel BTF", errno=_errno.ESRCH)
    var_id, btf, obj = found
    targ_id = btf.resolve_modifiers(btf[var_id].type)  # type: ignore[union-attr]
    if core_types_are_compat(local_btf, local_id, btf, targ_id) <= 0:
        raise CompatError(
            f"extern (var ksym) '{name}': incompatible types, expected [{local_id}] "
            f"{btf_kind_str(local_btf, local_id)} {local_btf.name_of(local_id)}, but kernel has "
            f"[{targ_id}] {btf_kind_str(btf, targ_id)} {btf.name_of(targ_id)}"
            + ("" if obj == VMLINUX else f" (module {obj})"),
            errno=_errno.EINVAL)
    return KsymVar(name, var_id, obj, targ_id)
