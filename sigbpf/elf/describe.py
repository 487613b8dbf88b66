"""What ``sigbpf inspect OBJ`` shows: a JSON-ready summary of a :class:`BPFObject` and its text.

:func:`describe` turns the object into plain data -- entry programs (type,
attach type, flags, instruction count, the subprograms they pull in, the
kfuncs they call directly or through subprograms, their func/line/CO-RE
record counts), subprograms, maps (type, sizes, entries, initial data size,
frozen), externs (kind, weak) -- and :func:`render_text` prints it for
people.  Program and map type names are the kernel's, lower-case, like
bpftool prints them.
"""

from __future__ import annotations

from typing import Any

from sigbpf.elf.maps import MapFlags, MapKind
from sigbpf.elf.object import BPFObject
from sigbpf.elf.relocations import RelocKind

__all__ = ["describe", "render_text"]


def _flag_names(value: int, enum: type) -> list[str]:
    return [f.name for f in enum if f.value and f.value & (f.value - 1) == 0 and value & f.value]


def describe(obj: BPFObject) -> dict[str, Any]:
    """Plain data (str/int/bool/list/dict/None) describing *obj*."""
    from sigbpf.elf.progtypes import ProgFlags

    programs = []
    for p in obj.entry_programs:
        ext = obj.ext_info_of(p)
        programs.append({
            "name": p.name,
            "section": p.section,
            "type": p.prog_type.name.lower() if p.prog_type is not None else None,
            "expected_attach_type": (p.expected_attach_type.name.lower()
                                     if p.expected_attach_type is not None else None),
            "prog_flags": _flag_names(int(p.prog_flags), ProgFlags),
            "attach_target": p.attach_target,
            "autoload": p.autoload,
            "insns": p.insn_count,
            "subprograms": [s.name for s in obj.subprograms_of(p)],
            "kfuncs": list(obj.kfuncs_of(p)),
            "relocations": len(p.relocations),
            "func_info": len(ext.func_info),
            "line_info": len(ext.line_info),
            "core_relos": len(ext.core_relos),
        })
    subprograms = [{"name": p.name, "insns": p.insn_count, "global": p.is_global,
                    "calls": list(p.calls), "kfuncs": sorted({r.target for r in p.relocations
                                                               if r.kind == RelocKind.KFUNC_CALL})}
                   for p in obj.subprograms]
    maps = []
    for m in obj.maps:
        maps.append({
            "name": m.name,
            "type": m.type_name.lower(),
            "kind": m.kind.name.lower(),
            "section": m.section,
            "key_size": m.key_size,
            "value_size": m.value_size,
            "max_entries": m.max_entries,
            "flags": _flag_names(m.flags, MapFlags),
            "initial_data_size": (len(m.data) if m.data is not None else 0),
            "zero_init": m.kind in (MapKind.BSS, MapKind.KCONFIG),
            "frozen": m.frozen,
            "btf_key_type_id": m.key_type_id,
            "btf_value_type_id": m.value_type_id,
            "inner": m.inner.name if m.inner is not None else None,
            "init_slots": {str(s.index): s.target for s in m.init_slots},
        })
    externs = [{"name": e.name, "kind": e.kind_name, "weak": e.weak, "btf_id": e.btf_id}
               for e in obj.externs]
    return {
        "file": obj.file,
        "format": "elf",
        "object_name": obj.name,
        "byteorder": obj.byteorder,
        "license": obj.license,
        "kern_version": obj.kern_version,
        "programs": programs,
        "subprograms": subprograms,
        "maps": maps,
        "externs": externs,
        "btf_types": obj.btf.type_count if obj.btf is not None else None,
        "btf_ext": obj.btf_ext.counts() if obj.btf_ext is not None else None,
    }


def render_text(info: dict[str, Any]) -> str:
    """The summary for people: one block per programs / subprograms / maps / externs."""
    out = [f"object {info['object_name']} ({info['file']}): {info['byteorder']}-endian, "
           f"license {info['license']!r}"
           + (f", kern_version {info['kern_version']:#x}" if info["kern_version"] is not None else "")]
    if info["btf_types"] is not None:
        ext = info["btf_ext"] or {}
        out.append(f"BTF: {info['btf_types']} types; .BTF.ext: {ext.get('func_info', 0)} func_info, "
                   f"{ext.get('line_info', 0)} line_info, {ext.get('core_relos', 0)} CO-RE relocations")
    out.append(f"programs ({len(info['programs'])}):")
    for p in info["programs"]:
        kind = p["type"] or "unknown"
        if p["expected_attach_type"]:
            kind += f"/{p['expected_attach_type']}"
        flags = f" flags {'|'.join(p['prog_flags'])}" if p["prog_flags"] else ""
        out.append(f"  {p['name']}  section {p['section']}  type {kind}{flags}  {p['insns']} insns"
                   + ("" if p["autoload"] else "  (not autoloaded)"))
        if p["subprograms"]:
            out.append(f"    subprograms: {', '.join(p['subprograms'])}")
        if p["kfuncs"]:
            out.append(f"    kfuncs: {', '.join(p['kfuncs'])}")
    if info["subprograms"]:
        out.append(f"subprograms ({len(info['subprograms'])}):")
        for s in info["subprograms"]:
            scope = "global" if s["global"] else "static"
            out.append(f"  {s['name']}  {scope}  {s['insns']} insns")
    out.append(f"maps ({len(info['maps'])}):")
    for m in info["maps"]:
        extra = []
        if m["flags"]:
            extra.append("flags " + "|".join(m["flags"]))
        if m["initial_data_size"]:
            extra.append(f"initial data {m['initial_data_size']} bytes")
        if m["frozen"]:
            extra.append("frozen")
        if m["inner"]:
            extra.append(f"inner {m['inner']}")
        if m["init_slots"]:
            extra.append("slots " + ", ".join(f"[{k}]={v}" for k, v in m["init_slots"].items()))
        out.append(f"  {m['name']}  {m['type']}  key {m['key_size']} value {m['value_size']} "
                   f"entries {m['max_entries']}" + (f"  ({', '.join(extra)})" if extra else ""))
    out.append(f"externs ({len(info['externs'])}):")
    for e in info["externs"]:
        out.append(f"  {e['name']}  {e['kind']}" + ("  weak" if e["weak"] else ""))
    return "\n".join(out) + "\n"
