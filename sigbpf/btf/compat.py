"""Type compatibility between two BTFs: libbpf's rule, and a strict comparison.

Three things live here, all taking ``(local_btf, local_id, targ_btf, targ_id)``
where *local* is the program's BTF (a clang object) and *target* the kernel's:

:func:`types_are_compat`
    libbpf's ``bpf_core_types_are_compat`` (libbpf 1.1, ``src/relo_core.c``),
    the check ``libbpf`` runs for every ``__ksym`` kfunc extern before it loads
    a program ("func_proto [6] incompatible with kernel [65888]").  Rules:
    typedefs and modifiers (const, volatile, restrict, type tags) are skipped;
    the two kinds must be the same, except that ENUM and ENUM64 match each
    other (so a FWD does **not** match a STRUCT); names are ignored;
    STRUCT/UNION/ENUM/ENUM64/FWD/void then match; INTs match any INT unless
    either is a bitfield-like INT (non-zero bit offset); PTRs and ARRAYs
    recurse into the pointee/element; FUNC_PROTOs need the same number of
    parameters and compatible parameters and return type.  Recursion is
    bounded (depth 32 along a chain, 32 levels of nested parameters); hitting
    a bound is libbpf's ``-EINVAL``, i.e. incompatible.  Any other kind (FUNC,
    VAR, ...) is incompatible.  :func:`core_types_are_compat` returns libbpf's
    raw answer (1, 0 or ``-EINVAL``).

:func:`compare_func_protos`
    Returns a :class:`CompatReport`: libbpf's verdict plus a readable list of
    every :class:`Difference` found by walking both prototypes side by side.
    With ``strict=True`` it also reports what libbpf ignores: INT size and
    signedness (and ``_Bool``; plain ``char`` is not compared for sign, as
    compilers record it differently), const/volatile/restrict *below a pointer*
    (top-level qualifiers of by-value parameters are not part of a C
    prototype's meaning), the names of pointed-to structs, unions, enums and
    forward declarations (compared without a ``___flavor`` suffix), enum
    sizes and array lengths.  Typedef names are not compared (``u32`` and
    ``__u32`` are the same type).  Each difference says where it is
    (``return``, ``param 1 (pid)``, ``param 2 (p) pointee``) and what differs
    (``int size 8 vs 4``), and whether libbpf's rule rejects it too.

:func:`format_func_proto`
    A FUNC or FUNC_PROTO as a C prototype, ``struct task_struct
    *bpf_task_from_pid(s32 pid)``, written by :mod:`sigbpf.btf.cdump` (the
    same declarator rules as ``vmlinux.h``).  :meth:`CompatReport.side_by_side`
    shows two of them one above the other.

Example (what ``sigbpf resolve`` does for each kfunc)::

    report = compare_func_protos(prog_btf, local_func_id, vmlinux, kfunc_id)
    if not report.compatible:      # libbpf would refuse to load
        raise CompatError(str(report))
    for diff in report.differences:  # strict-only findings: warnings
        print("warning:", diff)
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass
from typing import Any

from sigbpf.btf.kinds import IntEncoding, Kind

__all__ = [
    "types_are_compat", "core_types_are_compat", "compare_func_protos", "CompatReport",
    "Difference", "format_func_proto", "MAX_COMPAT_DEPTH",
]

MAX_COMPAT_DEPTH = 32  # libbpf: `int depth = 32` and `bpf_core_types_are_compat(..., 32)`

_MODS = frozenset({Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG})
_SKIPPED = _MODS | {Kind.TYPEDEF}
_QUALIFIERS = ((Kind.CONST, "const"), (Kind.VOLATILE, "volatile"), (Kind.RESTRICT, "restrict"))
_ENUMS = frozenset({Kind.ENUM, Kind.ENUM64})
_NAMED_AGGREGATES = frozenset({Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.FWD})
_KIND_WORDS = {
    Kind.UNKN: "void", Kind.INT: "int", Kind.PTR: "pointer", Kind.ARRAY: "array",
    Kind.STRUCT: "struct", Kind.UNION: "union", Kind.ENUM: "enum", Kind.ENUM64: "enum64",
    Kind.FWD: "forward declaration", Kind.TYPEDEF: "typedef", Kind.FUNC: "function",
    Kind.FUNC_PROTO: "function prototype", Kind.FLOAT: "float", Kind.VAR: "variable",
    Kind.DATASEC: "data section",
}


# ---- libbpf's rule --------------------------------------------------------------

def _skip_mods_and_typedefs(btf: Any, type_id: int) -> tuple[Any, int] | None:
    """libbpf's ``skip_mods_and_typedefs``: (type, id) after modifiers and typedefs."""
    t = btf[type_id]
    steps = 0
    while t.kind in _SKIPPED:
        type_id = t.type
        t = btf[type_id]
        steps += 1
        if steps > btf.type_count:  # a loop: malformed BTF
            return None
    return t, type_id


def _same_kind_family(a: Any, b: Any) -> bool:
    """libbpf's ``btf_kind_core_compat``: same kind, or ENUM vs ENUM64."""
    return a.kind == b.kind or (a.kind in _ENUMS and b.kind in _ENUMS)


def core_types_are_compat(local_btf: Any, local_id: int, targ_btf: Any, targ_id: int,
                          level: int = MAX_COMPAT_DEPTH) -> int:
    """libbpf's ``__bpf_core_types_are_compat``: 1 compatible, 0 not, ``-EINVAL`` error."""
    if not _same_kind_family(local_btf[local_id], targ_btf[targ_id]):
        return 0
    depth = MAX_COMPAT_DEPTH
    while True:
        depth -= 1
        if depth < 0:
            return -_errno.EINVAL
        local = _skip_mods_and_typedefs(local_btf, local_id)
        targ = _skip_mods_and_typedefs(targ_btf, targ_id)
        if local is None or targ is None:
            return -_errno.EINVAL
        (lt, local_id), (tt, targ_id) = local, targ
        if not _same_kind_family(lt, tt):
            return 0
        kind = lt.kind
        if kind in (Kind.UNKN, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.FWD, Kind.ENUM64):
            return 1
        if kind is Kind.INT:
            # only deprecated bitfield-like ints are rejected
            return int(lt.offset == 0 and tt.offset == 0)
        if kind in (Kind.PTR, Kind.ARRAY):
            local_id, targ_id = lt.type, tt.type
            continue
        if kind is Kind.FUNC_PROTO:
            if len(lt.params) != len(tt.params):
                return 0
            for lp, tp in zip(lt.params, tt.params):
                if level <= 0:
                    return -_errno.EINVAL
                lp_res = _skip_mods_and_typedefs(local_btf, lp.type)
                tp_res = _skip_mods_and_typedefs(targ_btf, tp.type)
                if lp_res is None or tp_res is None:
                    return -_errno.EINVAL
                err = core_types_are_compat(local_btf, lp_res[1], targ_btf, tp_res[1], level - 1)
                if err <= 0:
                    return err
            # tail recursion on the return type
            local_id, targ_id = lt.return_type, tt.return_type
            ret_l = _skip_mods_and_typedefs(local_btf, local_id)
            ret_t = _skip_mods_and_typedefs(targ_btf, targ_id)
            if ret_l is None or ret_t is None:
                return -_errno.EINVAL
            local_id, targ_id = ret_l[1], ret_t[1]
            continue
        return 0  # libbpf: "unexpected kind %s relocated"


def types_are_compat(local_btf: Any, local_id: int, targ_btf: Any, targ_id: int) -> bool:
    """True when libbpf's ``bpf_core_types_are_compat`` accepts the pair.

    This is the test libbpf applies to a kfunc extern: pass the FUNC_PROTO
    ids (the ``type`` of each FUNC).
    """
    return core_types_are_compat(local_btf, local_id, targ_btf, targ_id) > 0


# ---- the strict comparison ------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Difference:
    """One way two prototypes differ: ``where`` (e.g. ``param 1 (pid)``) and ``what``."""

    where: str
    what: str
    breaks_compat: bool = False  # libbpf's rule rejects this difference as well

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass(frozen=True, slots=True)
class CompatReport:
    """The result of :func:`compare_func_protos`.

    ``compatible`` is libbpf's verdict; ``differences`` lists what differs
    (with ``strict=False`` only the differences libbpf's rule rejects);
    ``local`` and ``target`` are the two prototypes as C.
    """

    compatible: bool
    differences: tuple[Difference, ...]
    local: str
    target: str
    strict: bool = True

    @property
    def ok(self) -> bool:
        """Compatible, and (in strict mode) without any difference."""
        return self.compatible and not (self.strict and self.differences)

    @property
    def strict_differences(self) -> tuple[Difference, ...]:
        """The differences libbpf's rule lets through (strict-mode warnings)."""
        return tuple(d for d in self.differences if not d.breaks_compat)

    def side_by_side(self) -> str:
        """The two prototypes, one above the other."""
        return f"local:  {self.local}\ntarget: {self.target}"

    def __str__(self) -> str:
        verdict = "compatible" if self.compatible else "incompatible"
        if self.compatible and self.strict and self.differences:
            verdict += " by libbpf's rules, but differs"
        lines = [verdict, *(f"  {d}" for d in self.differences)]
        lines += ["  " + line for line in self.side_by_side().splitlines()]
        return "\n".join(lines)


def format_func_proto(btf: Any, type_id: int, name: str | None = None) -> str:
    """A FUNC or FUNC_PROTO as a C prototype, e.g. ``struct task_struct *f(s32 pid)``.

    *name* defaults to the FUNC's name ("" for a bare FUNC_PROTO, which then
    reads like a function type, as libbpf writes one: ``int(void *p)``).
    """
    t = btf[type_id]
    if t.kind is Kind.FUNC:
        if name is None:
            name = t.name
        type_id = t.type
    from sigbpf.btf.cdump import c_declaration  # on use: only messages and dumps need C text

    return c_declaration(btf, type_id, name or "")


def _describe(btf: Any, type_id: int) -> str:
    """Short C text of a type, for messages: ``u64``, ``struct task_struct *``."""
    from sigbpf.btf.cdump import c_declaration

    return c_declaration(btf, type_id)


def _essential(name: str) -> str:
    from sigbpf.btf.core_types import essential_name  # libbpf's rule, kept once there

    return essential_name(name)


class _Walker:
    """Walks two types in parallel and records :class:`Difference` s."""

    def __init__(self, lb: Any, tb: Any, strict: bool) -> None:
        self.lb, self.tb, self.strict = lb, tb, strict
        self.found: list[Difference] = []

    def add(self, where: str, what: str, breaks: bool) -> None:
        if breaks or self.strict:
            self.found.append(Difference(where, what, breaks))

    def _peel(self, btf: Any, type_id: int) -> tuple[int, set[str]]:
        """Skip modifiers and typedefs; return the id reached and the qualifiers met."""
        quals: set[str] = set()
        steps = 0
        t = btf[type_id]
        while t.kind in _SKIPPED:
            for kind, word in _QUALIFIERS:
                if t.kind is kind:
                    quals.add(word)
            type_id = t.type
            t = btf[type_id]
            steps += 1
            if steps > btf.type_count:
                break
        return type_id, quals

    def compare(self, lid: int, tid: int, where: str, depth: int, below_ptr: bool) -> None:
        lid, lquals = self._peel(self.lb, lid)
        tid, tquals = self._peel(self.tb, tid)
        if depth > MAX_COMPAT_DEPTH:
            self.add(where, f"nesting deeper than {MAX_COMPAT_DEPTH} levels", True)
            return
        if below_ptr:
            for _, word in _QUALIFIERS:
                if (word in lquals) != (word in tquals):
                    side = "local" if word in lquals else "target"
                    self.add(where, f"{word} differs (only the {side} has it)", False)
        lt, tt = self.lb[lid], self.tb[tid]
        if not _same_kind_family(lt, tt):
            self.add(where, f"{_KIND_WORDS.get(lt.kind, lt.kind.name)} vs "
                            f"{_KIND_WORDS.get(tt.kind, tt.kind.name)} "
                            f"('{_describe(self.lb, lid)}' vs '{_describe(self.tb, tid)}')", True)
            return
        kind = lt.kind
        if kind is Kind.INT:
            if lt.offset or tt.offset:
                self.add(where, "bitfield-like int (non-zero bit offset)", True)
            if lt.size != tt.size:
                self.add(where, f"int size {lt.size} vs {tt.size}", False)
            # plain `char` is one C type whatever encoding the compiler
            # recorded (clang: SIGNED, pahole from gcc: none)
            if lt.signed != tt.signed and not (lt.name == tt.name == "char"):
                words = ("signed" if lt.signed else "unsigned", "signed" if tt.signed else "unsigned")
                self.add(where, f"signedness differs ({words[0]} vs {words[1]})", False)
            lbool, tbool = bool(lt.encoding & IntEncoding.BOOL), bool(tt.encoding & IntEncoding.BOOL)
            if lbool != tbool:
                self.add(where, f"'{lt.name}' vs '{tt.name}' (bool differs)", False)
        elif kind in _NAMED_AGGREGATES:
            if _essential(lt.name) != _essential(tt.name):
                self.add(where, f"{_KIND_WORDS[kind]} name '{lt.name or '(anon)'}' vs "
                                f"'{tt.name or '(anon)'}'", False)
            if kind in _ENUMS and lt.size != tt.size:
                self.add(where, f"enum size {lt.size} vs {tt.size}", False)
        elif kind is Kind.FLOAT:
            if lt.size != tt.size:
                self.add(where, f"float size {lt.size} vs {tt.size}", False)
        elif kind is Kind.PTR:
            self.compare(lt.type, tt.type, f"{where} pointee", depth + 1, True)
        elif kind is Kind.ARRAY:
            if lt.nelems != tt.nelems:
                self.add(where, f"array length {lt.nelems} vs {tt.nelems}", False)
            self.compare(lt.type, tt.type, f"{where} element", depth + 1, below_ptr)
        elif kind is Kind.FUNC_PROTO:
            self.protos(lt, tt, where, depth + 1)
        elif kind is not Kind.UNKN:
            self.add(where, f"unexpected kind {kind.name}", True)

    def protos(self, lt: Any, tt: Any, prefix: str, depth: int) -> None:
        def place(i: int, lp: Any, tp: Any) -> str:
            label = lp.name or tp.name
            where = f"param {i}" + (f" ({label})" if label else "")
            return f"{prefix} {where}" if prefix else where

        if len(lt.params) != len(tt.params):
            self.add(f"{prefix} params" if prefix else "params",
                     f"{len(lt.params)} params vs {len(tt.params)}", True)
        for i, (lp, tp) in enumerate(zip(lt.params, tt.params), 1):
            self.compare(lp.type, tp.type, place(i, lp, tp), depth, False)
        self.compare(lt.return_type, tt.return_type, f"{prefix} return" if prefix else "return",
                     depth, False)


def _proto_of(btf: Any, type_id: int) -> tuple[int, str]:
    t = btf[type_id]
    if t.kind is Kind.FUNC:
        return t.type, t.name
    return type_id, ""


def compare_func_protos(local_btf: Any, local_id: int, targ_btf: Any, targ_id: int,
                        strict: bool = True) -> CompatReport:
    """Compare two function prototypes (FUNC or FUNC_PROTO ids) and explain.

    ``compatible`` is exactly :func:`types_are_compat` on the two FUNC_PROTOs.
    The differences are found by a separate side-by-side walk; should libbpf
    reject a pair for a reason the walk does not name (a recursion bound), a
    difference saying so is added, so an incompatible report always says why.
    """
    lproto, lname = _proto_of(local_btf, local_id)
    tproto, tname = _proto_of(targ_btf, targ_id)
    compatible = types_are_compat(local_btf, lproto, targ_btf, tproto)
    walker = _Walker(local_btf, targ_btf, strict)
    lt, tt = local_btf[lproto], targ_btf[tproto]
    if lt.kind is Kind.FUNC_PROTO and tt.kind is Kind.FUNC_PROTO:
        walker.protos(lt, tt, "", 0)
    else:
        walker.compare(lproto, tproto, "type", 0, False)
    found = walker.found
    if not compatible and not any(d.breaks_compat for d in found):
        found.append(Difference("prototype", "incompatible by libbpf's rules "
                                f"(recursion bound of {MAX_COMPAT_DEPTH} reached)", True))
    name = lname or tname
    return CompatReport(
        compatible=compatible,
        differences=tuple(found),
        local=format_func_proto(local_btf, lproto, lname or name),
        target=format_func_proto(targ_btf, tproto, tname or name),
        strict=strict,
    )
