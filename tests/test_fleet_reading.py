"""Reading kernel images for the fleet check: decompression, bzImages, ELF sections as a stream,
name look-ups that scan instead of index, and the helper-name table.

References: the xz, gzip, bzip2, zstd and lz4 tools make the compressed data
(lz4 ``-l``: the legacy frame the kernel's build uses); pyelftools reads the
ELF sections; libbpf (ctypes) and :class:`sigbpf.btf.BTF`'s own index answer
the look-ups; the running kernel's BTF gives ``enum bpf_func_id``.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from resolve_support import Libbpf

from sigbpf.btf import BTF, Kind
from sigbpf.errors import FormatError
from sigbpf.fleet.decompress import chunks, decompress, sniff
from sigbpf.fleet.scanbtf import ScanBTF
from sigbpf.fleet.vmlinux_image import elf_sections_streamed, image_btf, in_memory

K61, K612 = "6.1.0-56-amd64", "6.12.95+deb12-amd64"
TOOLS = {"xz": ["xz", "-c"], "gzip": ["gzip", "-c"], "bzip2": ["bzip2", "-c"], "zstd": ["zstd", "-c", "-q"],
         "lz4-legacy": ["lz4", "-l", "-c", "-q"], "lz4": ["lz4", "-c", "-q"]}


def _compress(fmt: str, data: bytes) -> bytes:
    tool = TOOLS[fmt]
    if shutil.which(tool[0]) is None:
        pytest.fail(f"{tool[0]} is not installed (scripts/deps.sh installs it)")
    return subprocess.run(tool, input=data, capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def payload() -> bytes:
    """4 MB that compress well but not trivially (more than one lz4 legacy block is 8 MB: use 12)."""
    block = b"".join(struct.pack("<I", i * 2654435761 & 0xFFFFFFFF) + b"sigbpf-fleet" for i in range(1 << 16))
    return (block * 12)[: 12 << 20]


@pytest.mark.parametrize("fmt", sorted(TOOLS))
def test_each_format_decompresses_whole_and_in_chunks(fmt, payload):
    packed = _compress(fmt, payload) + b"\x01\x02\x03\x04"  # the kernel's appended payload size
    assert sniff(packed) == fmt
    assert bytes(decompress(packed)) == payload
    parts = list(chunks(packed, fmt, size=1 << 16))
    assert b"".join(parts) == payload and max(map(len, parts)) <= max(1 << 16, 8 << 20)


@pytest.mark.parametrize("fmt", ["xz", "gzip", "zstd", "bzip2"])
def test_truncated_or_corrupt_data_is_a_format_error(fmt, payload):
    packed = _compress(fmt, payload[: 1 << 20])
    with pytest.raises(FormatError):
        decompress(packed[: len(packed) // 2])
    broken = bytearray(packed)
    broken[len(broken) // 2:len(broken) // 2 + 64] = os.urandom(64)
    with pytest.raises(FormatError):
        decompress(bytes(broken))


def _sections(elf: bytes, *names: str) -> dict[str, bytes]:
    import io

    from elftools.elf.elffile import ELFFile

    f = ELFFile(io.BytesIO(elf))
    return {n: f.get_section_by_name(n).data() for n in names if f.get_section_by_name(n) is not None}


def test_elf_sections_read_as_a_stream_equal_pyelftools(bpf_object):
    elf = bpf_object("fleet_all").read_bytes()
    wanted = (".BTF", ".BTF.ext", "license", ".maps")
    found, banner = elf_sections_streamed(in_memory(elf), wanted)
    assert found == _sections(elf, *wanted) and banner is None
    # the same through a compressor, read in small chunks (several passes over the stream)
    packed = _compress("zstd", elf)
    found, _ = elf_sections_streamed(lambda: chunks(packed, "zstd", size=4096), wanted)
    assert found == _sections(elf, *wanted)


def _bzimage(payload: bytes, version: str) -> bytes:
    """A minimal bzImage: setup header (HdrS, setup_sects, kernel_version, payload_offset/length)."""
    setup_sects = 3
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    setup[0x202:0x206] = b"HdrS"
    text = f"{version} (sigbpf@test) #1 SMP".encode() + b"\0"
    struct.pack_into("<H", setup, 0x20E, 0x300 - 0x200)
    setup[0x300:0x300 + len(text)] = text
    struct.pack_into("<II", setup, 0x248, 0x40, len(payload) + 4)
    return bytes(setup) + bytes(0x40) + payload + struct.pack("<I", 1 << 30)


@pytest.mark.parametrize("fmt", ["zstd", "xz", "gzip", "lz4-legacy"])
def test_bzimage_payload_to_btf(fmt, bpf_object):
    """.BTF and the version of a bzImage whose payload is an ELF (here a BPF object's)."""
    elf = bpf_object("fleet_all").read_bytes()
    image = image_btf(_bzimage(_compress(fmt, elf), "6.99.0-sigbpf"), "vmlinuz")
    assert image.btf == _sections(elf, ".BTF")[".BTF"]
    assert image.btf_ids is None and image.version == "6.99.0-sigbpf" and image.how == f"{fmt} payload"


def test_an_image_without_btf_or_payload_says_so(bpf_object):
    with pytest.raises(FormatError, match="no compressed ELF payload"):
        image_btf(_bzimage(b"\x00" * 1000, "6.99.0"), "vmlinuz")
    elf = bpf_object("asm_basic").read_bytes()
    if b".BTF\0" not in elf:
        with pytest.raises(FormatError, match="no .BTF section"):
            image_btf(elf, "vmlinux")


# ------------------------------------------------------------------ ScanBTF

NAMES = [("bpf_task_from_pid", Kind.FUNC), ("bpf_task_release", Kind.FUNC), ("vfs_read", Kind.FUNC),
         ("do_unlinkat", Kind.FUNC), ("bpf_rcu_read_lock", Kind.FUNC), ("no_such_function", Kind.FUNC),
         ("btf_trace_sched_switch", Kind.TYPEDEF), ("bpf_prog_active", Kind.VAR), ("runqueues", Kind.VAR),
         ("task_struct", Kind.STRUCT), ("bpf_prog_type", Kind.ENUM), ("bpf_func_id", Kind.ENUM),
         ("pid_type", Kind.ENUM), ("int", Kind.INT), ("bpf_kfunc", Kind.DECL_TAG), ("", Kind.PTR),
         ("task_struct", Kind.FWD), ("u32", Kind.TYPEDEF)]


@pytest.mark.parametrize("which", [K61, K612, "running"])
def test_scanning_lookups_answer_as_the_index_and_libbpf(which, corpus_btf):
    path = "/sys/kernel/btf/vmlinux" if which == "running" else str(corpus_btf(f"{which}.btf"))
    data = Path(path).read_bytes()
    scan, index = ScanBTF.parse(data, validate=False), BTF.parse(data, validate=False)
    lib = Libbpf(path)
    try:
        for name, kind in NAMES:
            assert scan.find_all_by_name_kind(name, kind) == index.find_all_by_name_kind(name, kind), name
            want = lib.lib.btf__find_by_name_kind(lib.btf, name.encode(), int(kind))
            if want > 0:
                assert scan.find_by_name_kind(name, kind) == want, name
            else:
                with pytest.raises(Exception):
                    scan.find_by_name_kind(name, kind)
    finally:
        lib.close()


def test_scanning_split_btf(corpus_btf):
    base_data = corpus_btf(f"{K612}.btf").read_bytes()
    mod_data = corpus_btf(f"{K612}.nf_conntrack.btf").read_bytes()
    scan_base = ScanBTF.parse(base_data, validate=False)
    scan = ScanBTF.parse(mod_data, scan_base, validate=False)
    index = BTF.parse(mod_data, BTF.parse(base_data, validate=False), validate=False)
    for name, kind in NAMES + [("bpf_skb_ct_lookup", Kind.FUNC), ("nf_conn", Kind.STRUCT),
                               ("nf_conntrack_find_get", Kind.FUNC)]:
        assert scan.find_all_by_name_kind(name, kind) == index.find_all_by_name_kind(name, kind), name
    assert scan.names_any((b"bpf_skb_ct_lookup",)) and not scan.names_any((b"bpf_task_from_pid",))


@pytest.mark.parametrize("which", [K612, "running", "module"])
def test_scanning_core_candidates_answer_as_the_index(which, corpus_btf):
    """The CO-RE candidate search asks a kernel two questions (types named exactly X; types
    named X plus a flavor); ScanBTF answers them by scanning, TypeNames by indexing every
    name: the same ids, in the same order, for plain, flavored, missing and common names."""
    import re

    from sigbpf.btf.core_candidates import TypeNames

    if which == "module":
        base = corpus_btf(f"{K612}.btf").read_bytes()
        data = corpus_btf(f"{K612}.nf_conntrack.btf").read_bytes()
        scan = ScanBTF.parse(data, ScanBTF.parse(base, validate=False), validate=False)
        index = BTF.parse(data, BTF.parse(base, validate=False), validate=False)
    else:
        path = "/sys/kernel/btf/vmlinux" if which == "running" else str(corpus_btf(f"{which}.btf"))
        data = Path(path).read_bytes()
        scan, index = ScanBTF.parse(data, validate=False), BTF.parse(data, validate=False)
    ours, theirs = scan.core_type_names(), TypeNames(index)
    flavored = {m.decode() for m in re.findall(rb"\0([A-Za-z][A-Za-z0-9_]*?)___[A-Za-z0-9]", data)}
    kinds = (Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.TYPEDEF, Kind.INT)
    names = ["task_struct", "nf_conn", "list_head", "sock", "bpf_map", "workspace",
             "syscall_tp_t", "no_such_type", *sorted(flavored)[:20]]
    for name in names:
        assert ours.named(name, kinds) == theirs.named(name, kinds), name
        assert ours.flavored(name, kinds) == theirs.flavored(name, kinds), name
    assert any(theirs.flavored(n, kinds) for n in flavored) or not flavored


def test_helper_table_is_the_running_kernels_enum():
    from sigbpf.fleet.helper_names import HELPERS, helper_name

    vm = BTF.load_vmlinux()
    values = vm[vm.find_by_name_kind("bpf_func_id", Kind.ENUM)].values
    kernel = {v.value: v.name for v in values if not v.name.startswith("__")}
    assert {i: f"BPF_FUNC_{n}" for i, n in enumerate(HELPERS)} == {i: kernel[i] for i in range(len(HELPERS))}
    assert helper_name(1) == "BPF_FUNC_map_lookup_elem" and helper_name(100000) == "BPF_FUNC_#100000"
