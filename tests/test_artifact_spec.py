"""docs/FORMAT.md is a spec a second implementation can follow: a reader written from it alone.

``SpecReader`` below uses only ``struct`` and the tables of FORMAT.md chapters
1 and 2 (no import from :mod:`sigbpf.artifact`).  It reads the artifacts
``sigbpf build`` makes from the C test programs, checks the invariants the
spec states (alignment, zero padding, section order and entry sizes,
contiguous per-program ranges, one kfunc site per ``src_reg 3`` instruction
with ``imm`` = the kfunc's prog-BTF id, map data padding) and must agree
field by field with the reference reader (``Artifact.decode``).
"""

from __future__ import annotations

import struct
import subprocess
from dataclasses import dataclass

import pytest

from conftest import BPFTOOL

PROGS = ("kfunc_task", "kfunc_rcu_maps", "kfunc_iter", "kfunc_cpumask", "kfunc_obj_new",
         "kfunc_weak", "build_link")

# FORMAT.md 1.3: type -> (name, entry_size), in the order the core sections must appear.
CORE = {1: ("META", 8), 2: ("STRTAB", 0), 3: ("BTF", 0), 4: ("PROGRAMS", 72), 5: ("INSNS", 8),
        6: ("FUNC_INFO", 8), 7: ("LINE_INFO", 16), 8: ("CORE_RELOS", 16),
        9: ("KFUNC_SITES", 12), 10: ("MAPS", 72), 11: ("MAP_DATA", 0), 12: ("KFUNCS", 12)}


@dataclass
class SpecArtifact:
    name: str
    btf: bytes
    programs: list[dict]
    maps: list[dict]
    kfuncs: list[dict]


def _records(payload: bytes, size: int) -> list[bytes]:
    return [payload[i:i + size] for i in range(0, len(payload), size)]


def spec_read(data: bytes) -> SpecArtifact:
    """Read an artifact following FORMAT.md 1-2 only, asserting what the spec says must hold."""
    magic, major, minor, header_size, count, table, flags, reserved = \
        struct.unpack_from("<8sHHIIIII", data, 0)
    assert magic == b"SIGBPFA\0" and (major, minor) == (1, 0)
    assert (header_size, table, flags, reserved) == (32, 32, 0, 0)
    entries = [struct.unpack_from("<IIII", data, 32 + 16 * i) for i in range(count)]
    end_of_table = 32 + 16 * count
    first = min(e[2] for e in entries)
    assert first == (end_of_table + 7) // 8 * 8 and not any(data[end_of_table:first])
    # core sections: all present, once, in order, with the spec's entry sizes
    assert [e[0] for e in entries[:12]] == list(CORE)
    sec: dict[str, bytes] = {}
    pos = first
    for type_, entry_size, offset, size in entries:
        assert offset == pos and offset % 8 == 0
        if type_ in CORE:
            name, want = CORE[type_]
            assert entry_size == want, name
            if want:
                assert size % want == 0, name
            sec[name] = data[offset:offset + size]
        else:
            assert type_ >= 0x100
        padded = (size + 7) // 8 * 8
        assert not any(data[offset + size:offset + padded])
        pos = offset + padded
    assert pos == len(data)  # end of file = end of the last payload's padding

    strtab = sec["STRTAB"]
    assert strtab[:1] == b"\0" and strtab[-1:] == b"\0"

    def string(off: int) -> str:
        assert off < len(strtab)
        return strtab[off:strtab.index(b"\0", off)].decode()

    (meta,) = _records(sec["META"], 8)
    name_off, meta_flags = struct.unpack("<II", meta)
    assert meta_flags == 0
    insns = _records(sec["INSNS"], 8)
    func_info = [struct.unpack("<II", r) for r in _records(sec["FUNC_INFO"], 8)]
    line_info = [struct.unpack("<IIII", r) for r in _records(sec["LINE_INFO"], 16)]
    core_relos = [struct.unpack("<IIII", r) for r in _records(sec["CORE_RELOS"], 16)]
    sites = [struct.unpack("<III", r) for r in _records(sec["KFUNC_SITES"], 12)]
    kfuncs = []
    for n, btf_id, kflags in (struct.unpack("<III", r) for r in _records(sec["KFUNCS"], 12)):
        assert kflags & ~1 == 0
        kfuncs.append({"name": string(n), "btf_id": btf_id, "weak": bool(kflags & 1)})

    programs = []
    next_start = [0, 0, 0, 0, 0]  # insns, func_info, line_info, core_relos, sites
    for rec in _records(sec["PROGRAMS"], 72):
        f = struct.unpack("<18I", rec)
        starts, counts = f[8::2], f[9::2]
        assert list(starts) == next_start, "ranges are contiguous (canonical form)"
        assert counts[0] > 0
        next_start = [s + c for s, c in zip(starts, counts)]
        p_insns = insns[starts[0]:starts[0] + counts[0]]
        p_sites = sites[starts[4]:starts[4] + counts[4]]
        # every src_reg 3 call / ld_imm64 has exactly one site, of its kind, imm = btf_id
        src3 = {}
        for i, raw in enumerate(p_insns):
            code, regs, off, imm = struct.unpack("<BBhi", raw)
            if regs >> 4 == 3 and code == 0x85:
                assert off == 0
                src3[i] = (1, imm)
            elif regs >> 4 == 3 and code == 0x18:
                src3[i] = (2, imm)
        assert [s[1] for s in p_sites] == sorted(src3)
        for kfunc, insn, kind in p_sites:
            assert src3[insn] == (kind, kfuncs[kfunc]["btf_id"])
        programs.append({
            "name": string(f[0]), "section": string(f[1]), "license": string(f[2]),
            "attach_to": string(f[3]), "prog_type": f[4], "expected_attach_type": f[5],
            "prog_flags": f[6], "kern_version": f[7], "insns": b"".join(p_insns),
            "func_info": func_info[starts[1]:starts[1] + counts[1]],
            "line_info": line_info[starts[2]:starts[2] + counts[2]],
            "core_relos": core_relos[starts[3]:starts[3] + counts[3]],
            "kfunc_sites": [(insn, kfunc, kind) for kfunc, insn, kind in p_sites]})
    assert next_start == [len(insns), len(func_info), len(line_info), len(core_relos), len(sites)]

    maps = []
    data_pos = 0
    for rec in _records(sec["MAPS"], 72):
        (name_o, section_o, kind, map_type, key_size, value_size, max_entries, map_flags,
         key_id, value_id, mflags, pinning, inner, numa, data_off, data_size, extra) = \
            struct.unpack("<12Ii3IQ", rec)
        assert data_size <= value_size and mflags & ~1 == 0
        if data_size:
            assert data_off == data_pos
            padded = (data_size + 7) // 8 * 8
            assert not any(sec["MAP_DATA"][data_off + data_size:data_off + padded])
            data_pos += padded
        maps.append({"name": string(name_o), "section": string(section_o), "kind": kind,
                     "map_type": map_type, "key_size": key_size, "value_size": value_size,
                     "max_entries": max_entries, "map_flags": map_flags,
                     "btf_key_type_id": key_id, "btf_value_type_id": value_id,
                     "frozen": bool(mflags & 1), "pinning": pinning, "inner_map": inner,
                     "numa_node": numa, "map_extra": extra,
                     "initial_data": sec["MAP_DATA"][data_off:data_off + data_size]})
    assert data_pos == len(sec["MAP_DATA"])
    return SpecArtifact(string(name_off), sec["BTF"], programs, maps, kfuncs)


@pytest.fixture(scope="module")
def built(bpf_object, cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("spec")
    paths = {}
    for name in PROGS:
        path = out / f"{name}.sbpf"
        proc = cli("build", bpf_object(name), "-o", path)
        assert proc.returncode == 0, proc.stderr
        paths[name] = path
    return paths


@pytest.mark.parametrize("name", PROGS)
def test_a_reader_written_from_the_spec_agrees_with_the_reference(built, name):
    from sigbpf.artifact.format import Artifact, ArtifactMapFlags
    from sigbpf.asm import Instruction

    data = built[name].read_bytes()
    spec = spec_read(data)
    ref = Artifact.decode(data)
    assert spec.name == ref.name and spec.btf == ref.btf
    assert spec.kfuncs == [{"name": k.name, "btf_id": k.btf_id, "weak": k.weak} for k in ref.kfuncs]
    assert len(spec.programs) == len(ref.programs)
    for s, r in zip(spec.programs, ref.programs):
        assert (s["name"], s["section"], s["license"], s["attach_to"], s["prog_type"],
                s["expected_attach_type"], s["prog_flags"], s["kern_version"]) == \
            (r.name, r.section, r.license, r.attach_to, r.prog_type, r.expected_attach_type,
             r.prog_flags, r.kern_version)
        assert s["insns"] == Instruction.encode(r.insns)
        assert s["func_info"] == [(f.insn_off, f.type_id) for f in r.func_info]
        assert s["line_info"] == [(li.insn_off, li.file_name_off, li.line_off, li.line_col)
                                  for li in r.line_info]
        assert s["core_relos"] == [(c.insn_off, c.type_id, c.access_str_off, c.kind)
                                   for c in r.core_relos]
        assert s["kfunc_sites"] == [(k.insn, k.kfunc, int(k.kind)) for k in r.kfunc_sites]
    assert [(m["name"], m["section"], m["kind"], m["map_type"], m["key_size"], m["value_size"],
             m["max_entries"], m["map_flags"], m["btf_key_type_id"], m["btf_value_type_id"],
             m["frozen"], m["pinning"], m["inner_map"], m["numa_node"], m["map_extra"],
             m["initial_data"])
            for m in spec.maps] == \
        [(m.name, m.section, int(m.kind), m.map_type, m.key_size, m.value_size, m.max_entries,
          m.map_flags, m.btf_key_type_id, m.btf_value_type_id,
          bool(m.flags & ArtifactMapFlags.FROZEN), m.pinning, m.inner_map, m.numa_node,
          m.map_extra, m.initial_data) for m in ref.maps]


def test_the_spec_readers_program_btf_is_what_bpftool_reads(built, tmp_path):
    """The BTF section is raw program BTF "as given to BPF_BTF_LOAD": bpftool reads it too."""
    spec = spec_read(built["kfunc_task"].read_bytes())
    path = tmp_path / "prog.btf"
    path.write_bytes(spec.btf)
    proc = subprocess.run([BPFTOOL, "btf", "dump", "file", str(path)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    for k in spec.kfuncs:
        assert f"[{k['btf_id']}] FUNC '{k['name']}'" in proc.stdout
