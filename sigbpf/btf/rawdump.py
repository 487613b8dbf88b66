"""BTF as text, one type after another: bpftool's raw format and a JSON form.

Raw text is exactly what ``bpftool btf dump file X`` (bpftool 7.1,
``dump_btf_type`` in ``src/btf.c``) prints, byte for byte: a line per type::

    [id] KIND 'name' field=value ...

names in single quotes (``'(anon)'`` when empty), followed by one indented
line (a tab) per member, enumerator, parameter or DATASEC entry.  For split
BTF only the types of the split part are listed (ids from the base's count
+ 1), as with ``bpftool -B base``.

JSON (``sigbpf btf dump --json``) is a list with one object per type, in id
order, carrying the same fields as ``bpftool -j btf dump``'s ``types`` array
(``bpftool -j`` wraps that list in ``{"types": [...]}``):

==================  ==========================================================
every type          ``id`` (int), ``kind`` (``"INT"`` ... ``"ENUM64"``),
                    ``name`` (str, ``"(anon)"`` when empty)
INT                 ``size``, ``bits_offset``, ``nr_bits``, ``encoding``
                    (``"(none)"``, ``"SIGNED"``, ``"CHAR"``, ``"BOOL"``,
                    ``"UNKN"`` for combinations)
PTR, CONST,         ``type_id``
VOLATILE, RESTRICT,
TYPEDEF, TYPE_TAG
ARRAY               ``type_id``, ``index_type_id``, ``nr_elems``
STRUCT, UNION       ``size``, ``vlen``, ``members``: list of {``name``,
                    ``type_id``, ``bits_offset`` [, ``bitfield_size``]}
ENUM, ENUM64        ``encoding`` (``"SIGNED"``/``"UNSIGNED"``), ``size``,
                    ``vlen``, ``values``: list of {``name``, ``val``}
FWD                 ``fwd_kind`` (``"struct"``/``"union"``)
FUNC                ``type_id``, ``linkage`` (``"static"``, ``"global"``,
                    ``"extern"``, ``"(unknown)"``)
FUNC_PROTO          ``ret_type_id``, ``vlen``, ``params``: list of {``name``,
                    ``type_id``}
VAR                 ``type_id``, ``linkage`` (``"static"``, ``"global"``,
                    ``"extern"``, ``"(unknown)"``)
DATASEC             ``size``, ``vlen``, ``vars``: list of {``type_id``,
                    ``offset``, ``size``}
FLOAT               ``size``
DECL_TAG            ``type_id``, ``component_idx`` (-1: the type itself)
==================  ==========================================================

One deliberate difference from ``bpftool -j``: an unsigned ENUM value of
2**31 or more is written as that value (e.g. ``4294967295``), where bpftool
sign-extends the 32-bit word to 64 bits (``18446744073709551615``).  The raw
text has no such difference (bpftool prints ``%u`` there).
"""

from __future__ import annotations

from typing import Any, Iterator

from sigbpf.btf.kinds import IntEncoding, Kind

__all__ = ["iter_raw_lines", "dump_raw", "type_to_json", "dump_json", "kind_label"]

_INT_ENCODINGS = {
    IntEncoding.NONE: "(none)",
    IntEncoding.SIGNED: "SIGNED",
    IntEncoding.CHAR: "CHAR",
    IntEncoding.BOOL: "BOOL",
}
_FUNC_LINKAGE = ("static", "global", "extern")  # BTF_FUNC_STATIC/GLOBAL/EXTERN
_VAR_LINKAGE = ("static", "global", "extern")  # BTF_VAR_STATIC/GLOBAL_ALLOCATED/GLOBAL_EXTERN
_REFERRING = frozenset({Kind.PTR, Kind.CONST, Kind.VOLATILE, Kind.RESTRICT, Kind.TYPEDEF,
                        Kind.TYPE_TAG})


def kind_label(kind: Kind) -> str:
    """bpftool's name of a kind (``UNKNOWN`` for id 0 / void)."""
    return "UNKNOWN" if kind is Kind.UNKN else kind.name


def _name(name: str) -> str:
    return name if name else "(anon)"


def _linkage(table: tuple[str, ...], value: int) -> str:
    return table[value] if 0 <= int(value) < len(table) else "(unknown)"


def _encoding(t: Any) -> str:
    return _INT_ENCODINGS.get(IntEncoding(int(t.encoding)), "UNKN")


def _default_ids(btf: Any) -> range:
    return range(btf.start_id, btf.type_count + 1)


def format_type(btf: Any, type_id: int, t: Any) -> str:
    """bpftool's raw text of one type, without the final newline."""
    kind = t.kind
    head = f"[{type_id}] {kind_label(kind)} '{_name(t.name)}'"
    if kind is Kind.INT:
        return f"{head} size={t.size} bits_offset={t.offset} nr_bits={t.bits} encoding={_encoding(t)}"
    if kind in _REFERRING:
        return f"{head} type_id={t.type}"
    if kind is Kind.ARRAY:
        return f"{head} type_id={t.type} index_type_id={t.index_type} nr_elems={t.nelems}"
    if kind in (Kind.STRUCT, Kind.UNION):
        parts = [f"{head} size={t.size} vlen={len(t.members)}"]
        for m in t.members:
            line = f"\t'{_name(m.name)}' type_id={m.type} bits_offset={m.offset}"
            if m.bitfield_size:
                line += f" bitfield_size={m.bitfield_size}"
            parts.append(line)
        return "\n".join(parts)
    if kind in (Kind.ENUM, Kind.ENUM64):
        encoding = "SIGNED" if t.signed else "UNSIGNED"
        parts = [f"{head} encoding={encoding} size={t.size} vlen={len(t.values)}"]
        suffix = ("LL" if t.signed else "ULL") if kind is Kind.ENUM64 else ""
        for v in t.values:
            parts.append(f"\t'{_name(v.name)}' val={v.value}{suffix}")
        return "\n".join(parts)
    if kind is Kind.FWD:
        return f"{head} fwd_kind={'union' if t.union else 'struct'}"
    if kind is Kind.FUNC:
        return f"{head} type_id={t.type} linkage={_linkage(_FUNC_LINKAGE, t.linkage)}"
    if kind is Kind.FUNC_PROTO:
        parts = [f"{head} ret_type_id={t.return_type} vlen={len(t.params)}"]
        for p in t.params:
            parts.append(f"\t'{_name(p.name)}' type_id={p.type}")
        return "\n".join(parts)
    if kind is Kind.VAR:
        # sic: bpftool 7.1 prints a comma here
        return f"{head} type_id={t.type}, linkage={_linkage(_VAR_LINKAGE, t.linkage)}"
    if kind is Kind.DATASEC:
        parts = [f"{head} size={t.size} vlen={len(t.vars)}"]
        count = btf.type_count
        for v in t.vars:
            line = f"\ttype_id={v.type} offset={v.offset} size={v.size}"
            if v.type <= count:
                vt = btf[v.type]
                line += f" ({kind_label(vt.kind)} '{_name(vt.name)}')"
            parts.append(line)
        return "\n".join(parts)
    if kind is Kind.FLOAT:
        return f"{head} size={t.size}"
    if kind is Kind.DECL_TAG:
        return f"{head} type_id={t.type} component_idx={t.component_idx}"
    return head


def iter_raw_lines(btf: Any, type_ids: Any = None) -> Iterator[str]:
    """Yield each type's raw text (possibly several lines), newline-terminated."""
    for type_id in (_default_ids(btf) if type_ids is None else type_ids):
        yield format_type(btf, type_id, btf[type_id]) + "\n"


def dump_raw(btf: Any, type_ids: Any = None) -> str:
    """The whole raw dump: what ``bpftool btf dump file X`` prints."""
    return "".join(iter_raw_lines(btf, type_ids))


def type_to_json(btf: Any, type_id: int, t: Any) -> dict[str, Any]:
    """One type as a JSON-ready dict (schema in the module docstring)."""
    kind = t.kind
    obj: dict[str, Any] = {"id": type_id, "kind": kind_label(kind), "name": _name(t.name)}
    if kind is Kind.INT:
        obj.update(size=t.size, bits_offset=t.offset, nr_bits=t.bits, encoding=_encoding(t))
    elif kind in _REFERRING:
        obj["type_id"] = t.type
    elif kind is Kind.ARRAY:
        obj.update(type_id=t.type, index_type_id=t.index_type, nr_elems=t.nelems)
    elif kind in (Kind.STRUCT, Kind.UNION):
        members = []
        for m in t.members:
            member = {"name": _name(m.name), "type_id": m.type, "bits_offset": m.offset}
            if m.bitfield_size:
                member["bitfield_size"] = m.bitfield_size
            members.append(member)
        obj.update(size=t.size, vlen=len(members), members=members)
    elif kind in (Kind.ENUM, Kind.ENUM64):
        obj.update(encoding="SIGNED" if t.signed else "UNSIGNED", size=t.size, vlen=len(t.values),
                   values=[{"name": _name(v.name), "val": v.value} for v in t.values])
    elif kind is Kind.FWD:
        obj["fwd_kind"] = "union" if t.union else "struct"
    elif kind is Kind.FUNC:
        obj.update(type_id=t.type, linkage=_linkage(_FUNC_LINKAGE, t.linkage))
    elif kind is Kind.FUNC_PROTO:
        obj.update(ret_type_id=t.return_type, vlen=len(t.params),
                   params=[{"name": _name(p.name), "type_id": p.type} for p in t.params])
    elif kind is Kind.VAR:
        obj.update(type_id=t.type, linkage=_linkage(_VAR_LINKAGE, t.linkage))
    elif kind is Kind.DATASEC:
        obj.update(size=t.size, vlen=len(t.vars),
                   vars=[{"type_id": v.type, "offset": v.offset, "size": v.size} for v in t.vars])
    elif kind is Kind.FLOAT:
        obj["size"] = t.size
    elif kind is Kind.DECL_TAG:
        obj.update(type_id=t.type, component_idx=t.component_idx)
    return obj


def dump_json(btf: Any, type_ids: Any = None) -> list[dict[str, Any]]:
    """Every type (the split part only, for split BTF) as JSON-ready dicts."""
    return [type_to_json(btf, i, btf[i]) for i in (_default_ids(btf) if type_ids is None else type_ids)]
