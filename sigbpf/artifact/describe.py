"""What ``sigbpf inspect ARTIFACT`` shows: a JSON-ready summary and its text form.

:func:`describe` turns an :class:`~sigbpf.artifact.format.Artifact` into plain
data (programs with their kfunc call sites, maps, kfuncs with their
prototypes written as C, program BTF size, func/line/CO-RE counts, format
version); :func:`render_text` prints the same for people.
"""

from __future__ import annotations

from typing import Any

from sigbpf.artifact.format import Artifact, ArtifactMapFlags, KfuncSiteKind, SlotKind

__all__ = ["describe", "render_text"]

_PROG_FLAG_NAMES = {1: "STRICT_ALIGNMENT", 2: "ANY_ALIGNMENT", 4: "TEST_RND_HI32",
                    8: "TEST_STATE_FREQ", 16: "SLEEPABLE", 32: "XDP_HAS_FRAGS",
                    64: "XDP_DEV_BOUND_ONLY", 128: "TEST_REG_INVARIANTS"}


def _prog_type_name(value: int) -> str:
    from sigbpf.elf.progtypes import ProgType

    try:
        return ProgType(value).name.lower()
    except ValueError:
        return str(value)


def _attach_type_name(value: int) -> str:
    from sigbpf.elf.progtypes import AttachType

    try:
        return AttachType(value).name.lower()
    except ValueError:
        return str(value)


def _map_type_name(value: int) -> str:
    from sigbpf.elf.maps import MapType

    try:
        return MapType(value).name.lower()
    except ValueError:
        return str(value)


def _flag_names(value: int) -> list[str]:
    names = [name for bit, name in _PROG_FLAG_NAMES.items() if value & bit]
    rest = value & ~sum(_PROG_FLAG_NAMES)
    if rest:
        names.append(hex(rest))
    return names


def _prototypes(art: Artifact) -> tuple[dict[int, str], str | None]:
    """C prototype of each kfunc's prog-BTF FUNC (by btf_id), and a BTF problem if any."""
    from sigbpf.btf import BTF
    from sigbpf.btf.cdump import CDumper, c_declaration
    from sigbpf.btf.types import Func
    from sigbpf.errors import SigbpfError

    out: dict[int, str] = {}
    try:
        btf = BTF.parse(art.btf, file="program BTF")
    except SigbpfError as err:
        return out, str(err)
    dumper = CDumper(btf)
    for k in art.kfuncs:
        try:
            func = btf[k.btf_id]
            if isinstance(func, Func):
                out[k.btf_id] = c_declaration(btf, func.type, func.name, dumper=dumper)
        except SigbpfError:
            continue
    return out, None


def describe(art: Artifact) -> dict[str, Any]:
    """Plain-data summary of *art* (the JSON of ``sigbpf inspect ARTIFACT --json``)."""
    protos, btf_problem = _prototypes(art)
    programs = []
    for prog in art.programs:
        programs.append({
            "name": prog.name,
            "section": prog.section,
            "type": _prog_type_name(prog.prog_type),
            "prog_type": prog.prog_type,
            # 0 is both "none" and BPF_CGROUP_INET_INGRESS: the number, and a name if not 0
            "expected_attach_type": prog.expected_attach_type,
            "expected_attach_type_name": (_attach_type_name(prog.expected_attach_type)
                                          if prog.expected_attach_type else None),
            "attach_to": prog.attach_to or None,
            "prog_flags": prog.prog_flags,
            "flags": _flag_names(prog.prog_flags),
            "license": prog.license,
            "kern_version": prog.kern_version,
            "insn_cnt": len(prog.insns),
            "func_info_cnt": len(prog.func_info),
            "line_info_cnt": len(prog.line_info),
            "core_relo_cnt": len(prog.core_relos),
            "kfunc_sites": [
                {"insn": site.insn, "kind": site.kind.name.lower(),
                 "kfunc": art.kfuncs[site.kfunc].name}
                for site in prog.kfunc_sites],
            "attach_btf": ({"name": prog.attach.name,
                            "kind": {4: "struct", 8: "typedef", 12: "func"}.get(prog.attach.kind,
                                                                   str(prog.attach.kind)),
                            "module": prog.attach.module or None,
                            "member": prog.attach.member or None}
                           if prog.attach is not None else None),
            "ksym_sites": [{"insn": site.insn, "ksym": art.ksyms[site.ksym].name}
                           for site in prog.ksym_sites],
        })
    maps = [{
        "index": i,
        "name": m.name,
        "section": m.section,
        "kind": m.kind.name.lower(),
        "type": _map_type_name(m.map_type),
        "key_size": m.key_size,
        "value_size": m.value_size,
        "max_entries": m.max_entries,
        "map_flags": m.map_flags,
        "btf_key_type_id": m.btf_key_type_id,
        "btf_value_type_id": m.btf_value_type_id,
        "frozen": m.frozen,
        "initial_data_size": len(m.initial_data),
        "load_time": [f.name.lower() for f in ArtifactMapFlags
                      if f not in (ArtifactMapFlags.NONE, ArtifactMapFlags.FROZEN)
                      and m.flags & f],
        "inner_map": m.inner_map if m.inner_map >= 0 else None,
        "slots": [{"slot": slot.slot, "kind": slot.kind.name.lower(),
                   "target": (art.maps[slot.target].name if slot.kind == SlotKind.MAP
                              else art.programs[slot.target].name)} for slot in m.slots],
    } for i, m in enumerate(art.maps)]
    kfuncs = [{
        "name": k.name,
        "btf_id": k.btf_id,
        "weak": k.weak,
        "prototype": protos.get(k.btf_id),
        "call_sites": sum(1 for p in art.programs for s in p.kfunc_sites
                          if art.kfuncs[s.kfunc] is k and s.kind == KfuncSiteKind.CALL),
    } for k in art.kfuncs]
    out: dict[str, Any] = {
        "format_version": f"{art.version[0]}.{art.version[1]}",
        "name": art.name,
        "prog_btf_size": len(art.btf),
        "programs": programs,
        "maps": maps,
        "kfuncs": kfuncs,
        "kconfig": [{"name": k.name, "type": _kconfig_type_name(k.type), "offset": k.offset,
                     "size": k.size, "weak": k.weak, "signed": k.signed} for k in art.kconfig],
        "ksyms": [{"name": y.name, "btf_id": y.btf_id, "type_id": y.type_id, "typed": y.typed,
                   "weak": y.weak}
                  for y in art.ksyms],
        "extensions": [{"type": e.type, "size": len(e.data)} for e in art.extensions],
    }
    if btf_problem:
        out["prog_btf_error"] = btf_problem
    return out


def _kconfig_type_name(value: int) -> str:
    from sigbpf.elf.externs import KconfigType

    try:
        return KconfigType(value).name.lower()
    except ValueError:
        return str(value)


def render_text(info: dict[str, Any]) -> str:
    """The text form of :func:`describe`'s output."""
    lines = [f"artifact {info['name']!r}: format {info['format_version']}, "
             f"program BTF {info['prog_btf_size']} bytes"]
    if info.get("prog_btf_error"):
        lines.append(f"  program BTF does not parse: {info['prog_btf_error']}")
    lines.append(f"programs: {len(info['programs'])}")
    for p in info["programs"]:
        flags = "|".join(p["flags"]) or "0"
        attach = f", attach_to {p['attach_to']}" if p["attach_to"] else ""
        if p["expected_attach_type_name"]:
            attach += f", expected_attach_type {p['expected_attach_type_name']}"
        lines.append(f"  {p['name']}: {p['type']} (section {p['section']}), flags {flags}, "
                     f"license {p['license']!r}{attach}")
        lines.append(f"    {p['insn_cnt']} insns, func_info {p['func_info_cnt']}, "
                     f"line_info {p['line_info_cnt']}, core_relos {p['core_relo_cnt']}")
        if p["attach_btf"]:
            a = p["attach_btf"]
            where = f" in {a['module']}" if a["module"] else ""
            member = f", member {a['member']}" if a["member"] else ""
            lines.append(f"    attach target: {a['kind']} {a['name']}{member}{where} "
                         f"(bound at load time)")
        for s in p["kfunc_sites"]:
            what = "call" if s["kind"] == "call" else "address of"
            lines.append(f"    insn {s['insn']}: {what} {s['kfunc']}")
        for s in p["ksym_sites"]:
            lines.append(f"    insn {s['insn']}: address of ksym {s['ksym']}")
    lines.append(f"maps: {len(info['maps'])}")
    for m in info["maps"]:
        frozen = ", frozen" if m["frozen"] else ""
        extra = "".join(f", {rule} at load" for rule in m["load_time"])
        if m["inner_map"] is not None:
            extra += f", inner map [{m['inner_map']}]"
        lines.append(f"  [{m['index']}] {m['name']}: {m['type']} ({m['kind']}, section "
                     f"{m['section']}), key {m['key_size']}, value {m['value_size']}, "
                     f"max_entries {m['max_entries']}, initial data {m['initial_data_size']} "
                     f"bytes{frozen}{extra}")
        for slot in m["slots"]:
            lines.append(f"    slot {slot['slot']}: {slot['kind']} {slot['target']}")
    lines.append(f"kfuncs: {len(info['kfuncs'])}")
    for k in info["kfuncs"]:
        weak = " (weak)" if k["weak"] else ""
        proto = k["prototype"] or "?"
        lines.append(f"  {k['name']}{weak}: prog-BTF FUNC [{k['btf_id']}] {proto}; "
                     f"{k['call_sites']} call site(s)")
    if info["kconfig"]:
        lines.append(f"kconfig externs: {len(info['kconfig'])} (values bound at load time)")
        for k in info["kconfig"]:
            weak = " (weak)" if k["weak"] else ""
            lines.append(f"  {k['name']}{weak}: {k['type']}, {k['size']} bytes at offset "
                         f"{k['offset']}")
    if info["ksyms"]:
        lines.append(f"ksyms: {len(info['ksyms'])} (addresses bound at load time)")
        for y in info["ksyms"]:
            how = (f"typed, prog-BTF VAR [{y['btf_id']}] declared as type [{y['type_id']}]"
                   if y["typed"] else "typeless (kallsyms)")
            lines.append(f"  {y['name']}{' (weak)' if y['weak'] else ''}: {how}")
    for e in info["extensions"]:
        lines.append(f"extension section {e['type']:#x}: {e['size']} bytes")
    return "\n".join(lines) + "\n"

