"""The artifact container (docs/FORMAT.md): round trips, exact layout, strict decoding,
mutated and truncated bytes (only ArtifactError, never a hang), and the CLI's errors."""

from __future__ import annotations

import random
import struct

import pytest

from conftest import assert_one_line_error
from sigbpf.artifact.format import (
    HEADER_SIZE, MAGIC, SECTION_ENTRY_SIZE, Artifact, ArtifactMapFlags, CoreRelo, ExtensionSection,
    FuncInfo, Kfunc, KfuncSite, KfuncSiteKind, LineInfo, Map, MapKind, Program, SectionType,
    is_artifact,
)
from sigbpf.asm import Instruction, call_kfunc, exit_, ld_imm64, mov64_imm
from sigbpf.errors import ArtifactError, FormatError


def sample() -> Artifact:
    """A small artifact that uses every section."""
    prog_a = Program(
        name="prog_a", section="syscall", prog_type=31, prog_flags=16, license="GPL",
        insns=(*ld_imm64(1, 5, 0), call_kfunc(7, src=3), *ld_imm64(2, 3, 7), mov64_imm(0, 1),
               exit_()),
        func_info=(FuncInfo(0, 3),), line_info=(LineInfo(0, 1, 5, 12 << 10 | 3),),
        core_relos=(CoreRelo(8, 2, 9, 0),),
        kfunc_sites=(KfuncSite(2, 0, KfuncSiteKind.CALL), KfuncSite(3, 0, KfuncSiteKind.KSYM_ADDR)))
    prog_b = Program(name="prog_b", section="fentry/do_x", prog_type=26, expected_attach_type=24,
                     license="GPL", attach_to="do_x", insns=(mov64_imm(0, 0), exit_()))
    maps = (
        Map("counters", MapKind.BTF_DEFINED, 2, 4, 8, 4, section=".maps", btf_key_type_id=3,
            btf_value_type_id=4),
        Map("x.rodata", MapKind.RODATA, 2, 4, 5, 1, map_flags=0x80, section=".rodata",
            btf_value_type_id=9, flags=ArtifactMapFlags.FROZEN, initial_data=b"\x07\0\0\0\x01"),
        Map("x.bss", MapKind.BSS, 2, 4, 8, 1, section=".bss", btf_value_type_id=10),
    )
    return Artifact(name="x", btf=b"\x9f\xeb\x01\x00" + bytes(20), programs=(prog_a, prog_b),
                    maps=maps, kfuncs=(Kfunc("bpf_rcu_read_lock", 7, weak=True),))


def test_round_trip_and_determinism():
    art = sample()
    data = art.encode()
    assert data == sample().encode()
    back = Artifact.decode(data)
    assert back == art
    assert back.encode() == data
    assert is_artifact(data) and not is_artifact(b"\x7fELF" + data[4:])


def test_layout_follows_the_spec():
    """Header fields, section table order and 8-byte alignment, as FORMAT.md says."""
    data = sample().encode()
    magic, major, minor, hsize, nsec, table, flags, reserved = struct.unpack_from("<8sHHIIIII", data)
    assert (magic, major, minor, hsize, table, flags, reserved) == (MAGIC, 1, 0, 32, 32, 0, 0)
    core_1_0 = [t for t in SectionType if t <= SectionType.KFUNCS]
    assert nsec == len(core_1_0)  # a 1.0 artifact: the 12 core sections of 1.0
    entries = [struct.unpack_from("<IIII", data, HEADER_SIZE + i * SECTION_ENTRY_SIZE)
               for i in range(nsec)]
    assert [e[0] for e in entries] == [int(t) for t in core_1_0]
    sizes = {SectionType(t): (es, off, size) for t, es, off, size in entries}
    assert {t: es for t, (es, _, _) in sizes.items()} == {
        SectionType.META: 8, SectionType.STRTAB: 0, SectionType.BTF: 0, SectionType.PROGRAMS: 72,
        SectionType.INSNS: 8, SectionType.FUNC_INFO: 8, SectionType.LINE_INFO: 16,
        SectionType.CORE_RELOS: 16, SectionType.KFUNC_SITES: 12, SectionType.MAPS: 72,
        SectionType.MAP_DATA: 0, SectionType.KFUNCS: 12}
    assert all(off % 8 == 0 for _, off, _ in sizes.values())
    _, insn_off, insn_size = sizes[SectionType.INSNS]
    insns = Instruction.decode(data[insn_off:insn_off + insn_size])
    assert len(insns) == 9 and insns[2].is_prog_btf_kfunc_call and insns[2].imm == 7
    # a program record: 18 u32, the counts where the spec puts them
    _, p_off, _ = sizes[SectionType.PROGRAMS]
    rec = struct.unpack_from("<18I", data, p_off)
    assert rec[4:10] == (31, 0, 16, 0, 0, 7)  # type, attach, flags, kver, insn_start, insn_cnt
    assert rec[10:] == (0, 1, 0, 1, 0, 1, 0, 2)
    # map record: kind at 8, data_size at 60 for the .rodata map
    _, m_off, _ = sizes[SectionType.MAPS]
    kind, = struct.unpack_from("<I", data, m_off + 72 + 8)
    d_size, = struct.unpack_from("<I", data, m_off + 72 + 60)
    assert (kind, d_size) == (int(MapKind.RODATA), 5)
    # the MAP_DATA payload is the contents padded to 8
    _, d_off, d_len = sizes[SectionType.MAP_DATA]
    assert data[d_off:d_off + d_len] == b"\x07\0\0\0\x01\0\0\0"
    assert len(data) % 8 == 0


def test_extension_sections_are_kept_in_order():
    art = sample().with_extension(ExtensionSection(0x100, b"sig-one")).with_extension(
        ExtensionSection(0x1FF, b"two!" * 3, entry_size=4))
    data = art.encode()
    back = Artifact.decode(data)
    assert back.extensions == art.extensions
    assert back.without_extensions().encode() == sample().encode()
    with pytest.raises(ArtifactError):
        sample().with_extension(ExtensionSection(12, b""))


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def _section_entry(data: bytes, stype: SectionType) -> int:
    nsec, = struct.unpack_from("<I", data, 16)
    for i in range(nsec):
        at = HEADER_SIZE + i * SECTION_ENTRY_SIZE
        if struct.unpack_from("<I", data, at)[0] == stype:
            return at
    raise AssertionError(stype)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: b"\x7fELF" + d[4:], "bad magic"),
    (lambda d: _patch(d, 8, "<H", 2), "unsupported format version 2.0"),
    (lambda d: _patch(d, 10, "<H", 2), "unsupported format version 1.2"),
    (lambda d: _patch(d, 10, "<H", 1), "kconfig section missing"),  # 1.1 has 17 core sections
    (lambda d: d[:20], "truncated header"),
    (lambda d: d[:HEADER_SIZE + 40], "section table (12 entries) runs past the end"),
    (lambda d: d[:-8], "out of range"),
    (lambda d: _patch(d, _section_entry(d, SectionType.PROGRAMS) + 12, "<I", 70),
     "bad record count"),
    (lambda d: _patch(d, _section_entry(d, SectionType.KFUNCS) + 8, "<I", 1 << 20),
     "kfuncs section (table entry 11): bytes"),
    (lambda d: _patch(d, _section_entry(d, SectionType.MAPS), "<I", 77), "unknown section type"),
    (lambda d: d + bytes(8), "not in canonical form"),
])
def test_bad_bytes_name_section_and_offset(mutate, message):
    with pytest.raises(ArtifactError) as info:
        Artifact.decode(mutate(sample().encode()), file="a.sbpf")
    text = str(info.value)
    assert message in text, text
    assert text.startswith("a.sbpf: offset 0x"), text


def test_bad_record_references():
    data = sample().encode()
    progs = struct.unpack_from("<IIII", data, _section_entry(data, SectionType.PROGRAMS))[2]
    # insn_cnt of program 0 far too large
    with pytest.raises(ArtifactError, match=r"programs section record 0: instructions"):
        Artifact.decode(_patch(data, progs + 36, "<I", 1000))
    sites = struct.unpack_from("<IIII", data, _section_entry(data, SectionType.KFUNC_SITES))[2]
    with pytest.raises(ArtifactError, match=r"kfunc_sites section record 0: kfunc index 5"):
        Artifact.decode(_patch(data, sites, "<I", 5))
    with pytest.raises(ArtifactError, match=r"unknown site kind 9"):
        Artifact.decode(_patch(data, sites + 8, "<I", 9))
    maps = struct.unpack_from("<IIII", data, _section_entry(data, SectionType.MAPS))[2]
    with pytest.raises(ArtifactError, match=r"maps section record 1: initial data"):
        Artifact.decode(_patch(data, maps + 72 + 60, "<I", 4096))
    with pytest.raises(ArtifactError, match=r"string offset 9999 outside the string table"):
        Artifact.decode(_patch(data, maps, "<I", 9999))


def test_a_src_reg_3_call_to_a_non_func_is_not_a_format_error():
    """Whether imm names a FUNC in prog BTF is the resolver's question, not the container's."""
    art = Artifact(name="x", btf=b"", programs=(Program(
        "p", "syscall", 31, (call_kfunc(12345, src=3), exit_())),))
    assert Artifact.decode(art.encode()) == art


def test_fuzz_only_artifact_errors():
    """Random bit flips, byte overwrites and truncations: decode succeeds or raises ArtifactError."""
    data = sample().with_extension(ExtensionSection(0x100, b"signature")).encode()
    rng = random.Random(1234)
    outcomes = {"ok": 0, "error": 0}
    for n in range(len(data)):
        with pytest.raises(ArtifactError):
            Artifact.decode(data[:n])
    for _ in range(4000):
        mutated = bytearray(data)
        for _ in range(rng.choice((1, 1, 2, 4))):
            at = rng.randrange(len(mutated))
            if rng.random() < 0.5:
                mutated[at] ^= 1 << rng.randrange(8)
            else:
                mutated[at] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        try:
            Artifact.decode(bytes(mutated))
            outcomes["ok"] += 1
        except ArtifactError:
            outcomes["error"] += 1
        except FormatError as err:  # pragma: no cover - would be a bug in the decoder
            pytest.fail(f"non-artifact FormatError: {err!r}")
    assert outcomes["error"] > 1000


def test_encode_refuses_out_of_range_fields():
    bad = Artifact(name="x", btf=b"", maps=(Map("m", MapKind.DATA, 2, -1, 8, 1),))
    with pytest.raises(ArtifactError, match="key_size -1"):
        bad.encode()


# ----------------------------------------------------------------------- CLI


def test_inspect_cli_on_bad_artifacts(cli, tmp_path):
    good = sample().encode()
    cases = {
        "magic.sbpf": (b"NOTANARTIFACT" + bytes(40), "nor a sigbpf artifact"),
        "prefix.sbpf": (MAGIC[:5], "truncated header"),
        "trunc.sbpf": (good[:100], "runs past the end"),
        "version.sbpf": (_patch(good, 8, "<H", 9), "unsupported format version 9.0"),
        "empty.sbpf": (b"", "nor a sigbpf artifact"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        proc = cli("inspect", path)
        assert_one_line_error(proc, 2, message)
        assert str(path) in proc.stderr
    assert_one_line_error(cli("inspect", tmp_path / "missing.sbpf"), 2, "No such file")


def test_inspect_cli_shows_a_hand_made_artifact(cli, tmp_path):
    path = tmp_path / "x.sbpf"
    path.write_bytes(sample().encode())
    proc = cli("inspect", path)
    assert proc.returncode == 0, proc.stderr
    assert "prog_a: syscall (section syscall), flags SLEEPABLE" in proc.stdout
    assert "insn 2: call bpf_rcu_read_lock" in proc.stdout
    assert "program BTF does not parse" in proc.stdout  # the sample's BTF is a stub
    proc = cli("inspect", path, "--json")
    import json

    info = json.loads(proc.stdout)
    assert info["format_version"] == "1.0"
    assert [p["insn_cnt"] for p in info["programs"]] == [7, 2]
    assert info["kfuncs"][0] == {"name": "bpf_rcu_read_lock", "btf_id": 7, "weak": True,
                                 "prototype": None, "call_sites": 1}
    assert info["maps"][1]["frozen"] is True


def test_fuzzed_built_artifacts_decode_and_show_or_fail_cleanly(bpf_object):
    """Mutations of real artifacts (with real program BTF): decoding and `inspect`'s
    summary either work or raise ArtifactError; nothing else escapes."""
    from sigbpf.artifact.build import build_from_file
    from sigbpf.artifact.describe import describe, render_text

    rng = random.Random(99)
    for name in ("kfunc_rcu_maps", "kfunc_weak"):
        data = build_from_file(bpf_object(name)).encode()
        errors = 0
        for _ in range(600):
            mutated = bytearray(data)
            for _ in range(rng.choice((1, 2, 8))):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            try:
                render_text(describe(Artifact.decode(bytes(mutated))))
            except ArtifactError:
                errors += 1
        assert errors > 100


@pytest.mark.parametrize("art, message", [
    (Artifact("x", b"", programs=(Program("p", "syscall", 31, ()),)), "has no instructions"),
    (Artifact("x", b"", programs=(Program("p", "syscall", 31, (exit_(),),
                                          kfunc_sites=(KfuncSite(0, 3),)),)), "out of range"),
    (Artifact("x", b"", maps=(Map("m", MapKind.DATA, 2, 4, 2, 1, initial_data=b"abc"),)),
     "larger than the value"),
    (Artifact("x", b"", maps=(Map("m", MapKind.DATA, 2, 4, 2, 1, inner_map=4),)),
     "inner map index 4"),
    (Artifact("x", b"", kfuncs=(Kfunc("", 3),)), "without a name"),
    (Artifact("x\0y", b""), "NUL byte"),
])
def test_encode_writes_only_what_decode_accepts(art, message):
    with pytest.raises(ArtifactError, match=message):
        art.encode()
