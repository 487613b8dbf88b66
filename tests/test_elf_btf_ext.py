""".BTF.ext parsing (sigbpf.elf.btf_ext): hand-made sections, both byte orders, libbpf's checks.

Real objects are compared with the kernel and libbpf in test_elf_object.py;
here each of libbpf's ``btf_ext_parse`` rules is exercised on bytes built by
hand, and every failure must be a located FormatError.
"""

from __future__ import annotations

import struct

import pytest

from sigbpf.btf import BTF, BTFBuilder, Func, FuncProto, Int, IntEncoding
from sigbpf.elf.btf_ext import BTFExt, CoreReloKind
from sigbpf.errors import FormatError


@pytest.fixture(scope="module")
def btf_and_strings():
    b = BTFBuilder()
    i = b.add(Int("int", 4, IntEncoding.SIGNED, 0, 32))
    proto = b.add(FuncProto(i, ()))
    func = b.add(Func("prog", proto))
    names = {s: b.add_string(s) for s in ("syscall", "prog.c", "return 0;", "0:1", ".text")}
    return BTF.parse(b.encode()), names, func


def _block(order: str, rec_size: int, groups: list[tuple[int, list[tuple[int, ...]]]]) -> bytes:
    out = struct.pack(order + "I", rec_size)
    for name_off, recs in groups:
        out += struct.pack(order + "II", name_off, len(recs))
        for r in recs:
            body = struct.pack(order + "I" * len(r), *r)
            out += body + bytes(rec_size - len(body))
    return out


def make_ext(func, line, core, *, order="<", hdr_len=32, version=1, flags=0,
             sizes=(8, 16, 16)) -> bytes:
    blocks = [_block(order, sizes[0], func) if func else b"",
              _block(order, sizes[1], line) if line else b"",
              _block(order, sizes[2], core) if core else b""]
    offs, pos = [], 0
    for blk in blocks:
        offs += [pos, len(blk)]
        pos += len(blk)
    head = struct.pack(order + "HBBI", 0xEB9F, version, flags, hdr_len)
    head += struct.pack(order + "6I", *offs)[: hdr_len - 8]
    return head + bytes(max(0, hdr_len - len(head))) + b"".join(blocks)


def sample(names, func, **kw) -> bytes:
    return make_ext(
        [(names["syscall"], [(0, func), (16, func)])],
        [(names["syscall"], [(0, names["prog.c"], names["return 0;"], 7 << 10 | 3)])],
        [(names["syscall"], [(8, func, names["0:1"], 2)])], **kw)


@pytest.mark.parametrize("order", ["<", ">"])
def test_parse_both_byte_orders(btf_and_strings, order):
    btf, names, func = btf_and_strings
    ext = BTFExt.parse(sample(names, func, order=order), btf)
    assert ext.byteorder == ("little" if order == "<" else "big")
    assert [(r.insn, r.type_id) for r in ext.func_info["syscall"]] == [(0, func), (2, func)]
    li = ext.line_info["syscall"][0]
    assert (li.file_name, li.source_line, li.line, li.col) == ("prog.c", "return 0;", 7, 3)
    co = ext.core_relos["syscall"][0]
    assert (co.insn, co.kind, co.access) == (1, CoreReloKind.FIELD_EXISTS, "0:1")
    assert ext.counts() == {"func_info": 2, "line_info": 1, "core_relos": 1}
    assert (ext.func_info_rec_size, ext.line_info_rec_size, ext.core_relo_rec_size) == (8, 16, 16)


def test_header_without_core_relos(btf_and_strings):
    """A 24-byte header (older clang) has no CO-RE block: libbpf skips it."""
    btf, names, func = btf_and_strings
    data = make_ext([(names["syscall"], [(0, func)])], [], [], hdr_len=24)
    assert BTFExt.parse(data, btf).core_relos == {}


def test_larger_native_records_are_accepted(btf_and_strings):
    """Forward compatibility: bigger records (multiple of 4) in the host's byte order."""
    btf, names, func = btf_and_strings
    data = make_ext([(names["syscall"], [(0, func)])], [], [], sizes=(12, 16, 16))
    assert BTFExt.parse(data, btf).func_info_rec_size == 12


def _corrupt(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value):]


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d[:6], "header too short"),
    (lambda d: _corrupt(d, 0, b"\x00\x00"), "invalid magic"),
    (lambda d: _corrupt(d, 2, b"\x02"), "unsupported version 2"),
    (lambda d: _corrupt(d, 3, b"\x01"), "unsupported flags"),
    (lambda d: _corrupt(d, 4, struct.pack("<I", 4096)), "header length 4096 beyond"),
    (lambda d: _corrupt(d, 4, struct.pack("<I", 16)), "misses func_info/line_info"),
    (lambda d: _corrupt(d, 8, struct.pack("<I", 2)), "not 4-byte aligned"),
    (lambda d: _corrupt(d, 12, struct.pack("<I", 4000)), "runs past the section end"),
    (lambda d: _corrupt(d, 32, struct.pack("<I", 4)), "invalid record size 4"),
    (lambda d: _corrupt(d, 32, struct.pack("<I", 10)), "invalid record size 10"),
    (lambda d: _corrupt(d, 40, struct.pack("<I", 0)), "incorrect num_records 0"),
    (lambda d: _corrupt(d, 40, struct.pack("<I", 9)), "incorrect num_records 9"),
    (lambda d: _corrupt(d, 36, struct.pack("<I", 99999)), "section name string offset 99999"),
    (lambda d: _corrupt(d, 44, struct.pack("<I", 3)), "insn_off 3 is not a multiple of 8"),
])
def test_malformed_is_a_located_error(btf_and_strings, mutate, message):
    btf, names, func = btf_and_strings
    data = mutate(sample(names, func))
    with pytest.raises(FormatError) as info:
        BTFExt.parse(data, btf, file="x.o", base_offset=0x100)
    err = info.value
    assert message in str(err) and err.file == "x.o" and err.offset is not None
    assert err.offset >= 0x100  # a file offset: the section starts at 0x100


def test_bad_strings_and_kinds(btf_and_strings):
    btf, names, func = btf_and_strings
    bad_line = make_ext([], [(names["syscall"], [(0, 12345, names["return 0;"], 0)])], [])
    with pytest.raises(FormatError, match="file name string offset 12345"):
        BTFExt.parse(bad_line, btf)
    bad_kind = make_ext([], [], [(names["syscall"], [(0, func, names["0:1"], 99)])])
    with pytest.raises(FormatError, match="core_relo kind 99 is unknown"):
        BTFExt.parse(bad_kind, btf)
    empty = make_ext([], [], []) + b"\0"
    # every block empty is fine for libbpf only if there is data after the header
    assert BTFExt.parse(empty, btf).counts() == {"func_info": 0, "line_info": 0, "core_relos": 0}


def test_non_native_order_needs_exact_record_sizes(btf_and_strings):
    """libbpf: for the other byte order the record size must be exactly the kernel struct."""
    btf, names, func = btf_and_strings
    data = make_ext([(names["syscall"], [(0, func)])], [], [], order=">", sizes=(12, 16, 16))
    with pytest.raises(FormatError, match="invalid record size 12"):
        BTFExt.parse(data, btf)
