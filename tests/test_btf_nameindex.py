"""Look-up by name (sigbpf.btf.nameindex) and the framing/mapping behind the fast parse.

The rule is the kernel's ``btf_find_by_name_kind()`` (kernel/bpf/btf.c): a
linear walk over the ids that returns the first type whose kind
(``BTF_INFO_KIND``: kind_flag ignored) and whole name match.  Every test
compares the index with that linear walk, written out here, or with libbpf's
``btf__find_by_name_kind`` (the same walk) on real BTF.
"""

from __future__ import annotations

import mmap
import os
import random

import pytest

from sigbpf.btf import BTF, BTFBuilder, Func, FuncProto, Int, IntEncoding, Kind, Struct
from sigbpf.btf.nameindex import NameIndex, StringsAt
from sigbpf.btf.reader import load_file
from sigbpf.errors import NotFoundError

VMLINUX = "/sys/kernel/btf/vmlinux"


def linear_find(btf: BTF, name: str, kind: Kind) -> int | None:
    """btf_find_by_name_kind, literally: the first id of *kind* named *name*."""
    for type_id in range(1, btf.type_count + 1):
        if btf.kind_of(type_id) == kind and btf.name_of(type_id) == name:
            return type_id
    return None


def build(func_names: list[str]) -> BTF:
    b = BTFBuilder()
    i = b.add(Int("int", 4, IntEncoding.SIGNED, 0, 32))
    proto = b.add(FuncProto(i, ()))
    b.add(Struct("bpf_obj_new_impl", 4, (), False))  # same name as a FUNC, other kind
    for name in func_names:
        b.add(Func(name, proto))
    return BTF.parse(b.encode())


@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_lowest_id_wins_for_duplicates_in_either_mode(order):
    names = ["a", "b", "b", "bpf_obj_new_impl", "c", "c", "c", "d", "x" * 40, "x" * 40]
    if order == "shuffled":
        random.Random(7).shuffle(names)
    btf = build(names)
    index = btf._index(Kind.FUNC)
    assert index.binary_search == (order == "sorted")
    for name in set(names):
        found = btf.find_by_name_kind(name, Kind.FUNC)
        assert found == linear_find(btf, name, Kind.FUNC)
        expected_all = [t for t in range(1, btf.type_count + 1)
                        if btf.kind_of(t) == Kind.FUNC and btf.name_of(t) == name]
        assert btf.find_all_by_name_kind(name, Kind.FUNC) == expected_all
    # a STRUCT of the same name is found as a STRUCT only (kind is part of the match)
    assert btf.find_by_name_kind("bpf_obj_new_impl", Kind.STRUCT) == 3
    for missing in ("", "0", "aa", "bb", "e", "x" * 39, "x" * 41, "zzz"):
        with pytest.raises(NotFoundError):
            btf.find_by_name_kind(missing, Kind.FUNC)
        assert btf.find_all_by_name_kind(missing, Kind.FUNC) == []


def test_name_index_modes_and_unreadable_names():
    keys = [10, 20, 30, 40]
    in_order = NameIndex([b"a", b"b", b"b", b"c"], keys)
    assert in_order.binary_search
    assert (in_order.first(b"b"), in_order.all(b"b"), in_order.first(b"bb")) == (20, [20, 30], None)
    # None (a name offset outside the string section) never matches and forces the dict
    broken = NameIndex([b"a", None, b"a", b"c"], keys)
    assert not broken.binary_search
    assert (broken.first(b"a"), broken.all(b"a"), broken.first(b"c"), broken.all(b"zz")) == (10, [10, 30], 40, [])
    # StringsAt: names read from a NUL-terminated table on demand
    table = b"\0foo\0bar\0foobar\0"
    names = StringsAt(table, [1, 5, 9, 12])
    assert list(names) == [b"foo", b"bar", b"foobar", b"bar"] and names[2] == b"foobar" and len(names) == 4


def test_kind_flag_does_not_hide_a_func():
    """BTF_INFO_KIND masks kind_flag: a FUNC with kind_flag set (invalid, unvalidated) is still a FUNC."""
    raw = bytearray(build(["f", "g"]).encode())
    type_off = int.from_bytes(raw[8:12], "little")
    # record 4 is FUNC "f": name_off, info, type; set kind_flag (bit 31) in its info word
    btf = BTF.parse(bytes(raw), validate=False)
    where = 24 + type_off + 4 * btf._offsets[3] + 4
    raw[where + 3] |= 0x80
    flagged = BTF.parse(bytes(raw), validate=False)
    assert flagged.kind_of(4) == Kind.FUNC
    assert flagged.find_by_name_kind("f", Kind.FUNC) == 4 == linear_find(flagged, "f", Kind.FUNC)


def test_corpus_kernels_match_linear_search(corpus_btf):
    """Debian 6.1/6.12 (FUNCs not in name order: the dict) and their modules (split BTF)."""
    for kernel in ("6.1.0-56-amd64", "6.12.95+deb12-amd64"):
        base = BTF.from_file(corpus_btf(f"{kernel}.btf"), validate=False)
        mod = BTF.from_file(corpus_btf(f"{kernel}.xfs.btf"), base=base, validate=False)
        rng = random.Random(kernel)
        funcs = mod.ids_of_kind(Kind.FUNC)
        for type_id in rng.sample(funcs, 40) + funcs[-5:]:
            name = mod.name_of(type_id)
            first = next(t for t in funcs if mod.name_of(t) == name)
            assert mod.find_by_name_kind(name, Kind.FUNC) == first


def test_vmlinux_is_mapped_and_reads_the_same(kernel, tmp_path):
    data = load_file(VMLINUX)
    if not isinstance(data, mmap.mmap):
        pytest.skip("this kernel does not let /sys/kernel/btf/vmlinux be mapped (before 6.16)")
    copy = tmp_path / "vmlinux.btf"
    with open(VMLINUX, "rb") as f:
        copy.write_bytes(f.read())
    assert isinstance(load_file(copy), bytes)  # regular files are read, never mapped
    mapped = BTF.load_vmlinux()
    read = BTF.from_file(copy, validate=False)
    assert mapped.type_count == read.type_count and mapped.kinds() == read.kinds()
    assert mapped.strings.data == read.strings.data
    for type_id in range(1, mapped.type_count + 1, 997):
        assert mapped.name_of(type_id) == read.name_of(type_id)
        assert mapped[type_id] == read[type_id]
    assert os.path.getsize(copy) == len(data)


def test_vmlinux_funcs_match_libbpf(kernel, libbpf_handle):
    """Every 50th FUNC of the running kernel, and a missing name, against btf__find_by_name_kind."""
    lib, handle = libbpf_handle
    btf = BTF.load_vmlinux()
    for type_id in btf.ids_of_kind(Kind.FUNC)[::50]:
        name = btf.name_of(type_id)
        assert btf.find_by_name_kind(name, Kind.FUNC) == lib.btf__find_by_name_kind(handle, name.encode(), 12)


@pytest.fixture
def libbpf_handle():
    import ctypes

    lib = ctypes.CDLL("libbpf.so.1")
    lib.btf__parse.restype = ctypes.c_void_p
    lib.btf__parse.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    lib.btf__find_by_name_kind.restype = ctypes.c_int
    lib.btf__find_by_name_kind.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
    lib.btf__free.argtypes = [ctypes.c_void_p]
    handle = lib.btf__parse(VMLINUX.encode(), None)
    assert handle
    yield lib, handle
    lib.btf__free(handle)


def raw_btf(type_bytes: bytes, strings: bytes = b"\0int\0") -> bytes:
    import struct

    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(type_bytes), len(type_bytes), len(strings)) \
        + type_bytes + strings


INT = (1).to_bytes(4, "little") + (0x01000000).to_bytes(4, "little") + (4).to_bytes(4, "little") \
    + (32).to_bytes(4, "little")


@pytest.mark.parametrize("tail, message, type_id", [
    (b"", None, None),
    (b"\0\0\0\0", "truncated type record: meta_left:4 meta_needed:12", 2),  # one word left
    (b"\0" * 8, "truncated type record: meta_left:8 meta_needed:12", 2),  # two words left
    (b"\0\0", "trailing bytes after the last record", 2),  # not a whole word
    ((0).to_bytes(4, "little") + (0x04000002).to_bytes(4, "little") + b"\0" * 16,  # STRUCT vlen 2, 1 member
     "truncated STRUCT record: meta_left:12 meta_needed:24", 2),
])
def test_framing_ends_exactly_at_the_section_end(tail, message, type_id):
    """The self-feeding offset chain (reader.frame) stops at the end; anything else is named like the kernel."""
    from sigbpf.errors import BTFError

    if message is None:
        btf = BTF.parse(raw_btf(INT + tail), validate=False)
        assert btf.type_count == 1 and btf._offsets == [0]
        return
    with pytest.raises(BTFError) as caught:
        BTF.parse(raw_btf(INT + tail), validate=False)
    assert message in str(caught.value) and caught.value.type_id == type_id


def test_empty_split_type_section_frames_to_nothing():
    base = build(["f"])
    import struct

    split = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 0, 0, 0)
    mod = BTF.parse(split, base)
    assert mod.own_count == 0 and mod.type_count == base.type_count
    assert mod.find_by_name_kind("f", Kind.FUNC) == base.find_by_name_kind("f", Kind.FUNC)
