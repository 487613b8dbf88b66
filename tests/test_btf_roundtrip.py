"""Encoding: exact round trips, the other byte order, and the BTFBuilder.

``BTF.encode()`` re-encodes every decoded type (it does not copy the input),
so byte equality with the input checks decoding and encoding of every record.
Built BTF is checked by the real consumers: the kernel (BPF_BTF_LOAD) and
libbpf (btf__parse of a big-endian file).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from sigbpf.btf import BTF, BTFBuilder, FuncLinkage, IntEncoding, Kind, VarLinkage
from sigbpf.btf import types as T
from sigbpf.btf.marshal import encode_btf
from sigbpf.errors import BTFError

VMLINUX = Path("/sys/kernel/btf/vmlinux")
KERNELS = ("6.1.0-56-amd64", "6.12.95+deb12-amd64")


def test_vmlinux_round_trip(kernel):
    data = VMLINUX.read_bytes()
    assert BTF.parse(data, validate=False).encode() == data


@pytest.mark.parametrize("kernel_name", KERNELS)
def test_corpus_round_trip_with_split_modules(corpus_btf, kernel_name):
    base_data = corpus_btf(f"{kernel_name}.btf").read_bytes()
    base = BTF.parse(base_data, validate=False)
    assert base.encode() == base_data
    for module in ("nf_conntrack", "xfs"):
        data = corpus_btf(f"{kernel_name}.{module}.btf").read_bytes()
        assert BTF.parse(data, base).encode() == data


def test_clang_object_round_trip(bpf_object):
    from elftools.elf.elffile import ELFFile

    obj = bpf_object("btf_kinds")
    with open(obj, "rb") as f:
        section = ELFFile(f).get_section_by_name(".BTF").data()
    assert BTF.from_file(obj).encode() == section


def test_clang_big_endian_object(bpf_object):
    """clang -target bpfeb writes big-endian .BTF: same types as the little-endian object, exact round trip."""
    from elftools.elf.elffile import ELFFile

    big_obj = bpf_object("btf_kinds", "-target", "bpfeb")
    with open(big_obj, "rb") as f:
        section = ELFFile(f).get_section_by_name(".BTF").data()
    big = BTF.from_file(big_obj)
    assert big.byte_order == "big" and big.encode() == section
    little = BTF.from_file(bpf_object("btf_kinds"))
    assert list(big.types()) == list(little.types())


def test_big_endian(corpus_btf, tmp_path):
    """Byte-swap a real (split) BTF with the encoder, parse it back, compare every type."""
    base = BTF.from_file(corpus_btf("6.12.95+deb12-amd64.btf"), validate=False)
    little = BTF.from_file(corpus_btf("6.12.95+deb12-amd64.nf_conntrack.btf"), base)
    big_bytes = encode_btf(little, "big")
    assert big_bytes[:2] == b"\xeb\x9f" and big_bytes != little.encode()
    big = BTF.parse(big_bytes, base)
    assert big.byte_order == "big" and big.own_count == little.own_count
    assert list(big.types()) == list(little.types())
    assert big.encode() == big_bytes  # same byte order back
    assert encode_btf(big, "little") == little.encode()

    # libbpf reads big-endian BTF too: it must see the same number of types
    vm_big = encode_btf(BTF.from_file(corpus_btf("6.1.0-56-amd64.btf"), validate=False), "big")
    path = tmp_path / "big.btf"
    path.write_bytes(vm_big)
    lib = ctypes.CDLL("libbpf.so.1")
    lib.btf__parse.restype = ctypes.c_void_p
    lib.btf__parse.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    lib.btf__type_cnt.argtypes = [ctypes.c_void_p]
    handle = lib.btf__parse(str(path).encode(), None)
    assert handle
    assert lib.btf__type_cnt(handle) == BTF.parse(vm_big).type_count + 1


def _build_all_kinds(b: BTFBuilder) -> dict[str, int]:
    ids: dict[str, int] = {}
    ids["int"] = i = b.add(T.Int("int", 4, IntEncoding.SIGNED, 0, 32))
    ids["uchar"] = c = b.add(T.Int("unsigned char", 1, IntEncoding.NONE, 0, 8))
    ids["ptr"] = p = b.add(T.Ptr(0))
    ids["arr"] = a = b.add(T.Array(c, i, 16))
    ids["bits"] = s = b.add(T.Struct("bits", 8, (T.Member("x", i, 0, 3), T.Member("y", i, 3, 29),
                                                 T.Member("z", c, 32)), kind_flag=True))
    ids["union"] = b.add(T.Union("u", 16, (T.Member("a", a, 0), T.Member("s", s, 0))))
    ids["enum"] = e = b.add(T.Enum("e", 4, (T.EnumValue("NEG", -5), T.EnumValue("POS", 7)), signed=True))
    ids["enum64"] = b.add(T.Enum64("e64", 8, (T.EnumValue("BIG", 1 << 60), T.EnumValue("ONE", 1))))
    ids["fwd"] = b.add(T.Fwd("later", union=True))
    ids["typedef"] = td = b.add(T.Typedef("e_t", e))
    ids["volatile"] = v = b.add(T.Volatile(td))
    ids["const"] = b.add(T.Const(v))
    ids["restrict"] = b.add(T.Restrict(p))
    ids["proto"] = fp = b.add(T.FuncProto(i, (T.Param("a", i), T.Param("b", p))))
    ids["func"] = f = b.add(T.Func("my_func", fp, FuncLinkage.GLOBAL))
    ids["var"] = var = b.add(T.Var("my_var", i, VarLinkage.GLOBAL_ALLOCATED))
    ids["datasec"] = b.add(T.Datasec(".data", 4, (T.VarSecinfo(var, 0, 4),)))
    ids["float"] = b.add(T.Float("double", 8))
    ids["decl_tag"] = b.add(T.DeclTag("bpf_kfunc", f, -1))
    ids["param_tag"] = b.add(T.DeclTag("param", f, 1))
    ids["type_tag"] = tt = b.add(T.TypeTag("user", i))
    ids["tagged_ptr"] = b.add(T.Ptr(tt))
    return ids


def test_builder_every_kind_loads_in_the_kernel(kernel):
    from sigbpf.kernel.btf import load_btf

    b = BTFBuilder()
    ids = _build_all_kinds(b)
    assert list(ids.values()) == list(range(1, len(ids) + 1))
    raw = b.encode()
    btf = BTF.parse(raw)  # validates
    assert btf.encode() == raw
    assert [t for _, t in btf.types()] == [b.type_by_id(i) for i in range(1, len(ids) + 1)]
    assert btf.find_by_name_kind("my_func", Kind.FUNC) == ids["func"]
    assert int(load_btf(raw)) >= 0  # the kernel accepts what the builder wrote
    assert b.build()[ids["enum"]].values[0].value == -5


def test_builder_strings_are_deduplicated():
    b = BTFBuilder()
    i = b.add(T.Int("int", 4, IntEncoding.SIGNED, 0, 32))
    b.add(T.Struct("s", 8, (T.Member("int", i, 0), T.Member("x", i, 32))))
    b.add(T.Typedef("x", i))
    raw = b.encode()
    strings = raw[24 + 4 * len(BTF.parse(raw)._words):]
    assert strings == b"\0int\0s\0x\0"


def test_builder_split_on_a_base(corpus_btf, tmp_path):
    base = BTF.from_file(corpus_btf("6.12.95+deb12-amd64.btf"), validate=False)
    b = BTFBuilder(base)
    task = base.find_by_name_kind("task_struct", Kind.STRUCT)
    p = b.add(T.Ptr(task))
    assert p == base.type_count + 1
    s = b.add(T.Struct("my_mod_struct", 8, (T.Member("task", p, 0),)))
    raw = b.encode()
    mod = BTF.parse(raw, base)
    assert mod[s].members[0].name == "task" and mod[p] == T.Ptr(task)
    # "task" is already a base string: the split string table only adds the new name
    assert mod.strings.data == b"my_mod_struct\0"
    assert mod.find_by_name_kind("my_mod_struct", Kind.STRUCT) == s
    assert mod.find_by_name_kind("task_struct", Kind.STRUCT) == task
    # libbpf agrees on the split blob
    path = tmp_path / "mod.btf"
    path.write_bytes(raw)
    lib = ctypes.CDLL("libbpf.so.1")
    for fn, res, args in (("btf__parse", ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_void_p]),
                          ("btf__parse_split", ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_void_p]),
                          ("btf__find_by_name_kind", ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p,
                                                                    ctypes.c_uint])):
        getattr(lib, fn).restype = res
        getattr(lib, fn).argtypes = args
    base_handle = lib.btf__parse(str(corpus_btf("6.12.95+deb12-amd64.btf")).encode(), None)
    handle = lib.btf__parse_split(str(path).encode(), base_handle)
    assert lib.btf__find_by_name_kind(handle, b"my_mod_struct", Kind.STRUCT) == s


def test_builder_rejects_what_cannot_be_encoded():
    b = BTFBuilder()
    with pytest.raises(BTFError, match="Enum64"):
        b.add(T.Enum("e", 4, (T.EnumValue("X", 1 << 33),)))
    with pytest.raises(BTFError, match="kind_flag"):
        b.add(T.Struct("s", 4, (T.Member("x", 1, 0, 3),)))
    with pytest.raises(BTFError, match="NUL"):
        b.add(T.Typedef("a\0b", 1))
    with pytest.raises(BTFError, match="void"):
        b.add(T.VOID)
    with pytest.raises(BTFError):
        BTFBuilder(byte_order="middle")
    assert b.type_count == 0  # nothing half-added, not even strings
    assert b.encode() == BTFBuilder().encode()


def test_builder_big_endian_output():
    b = BTFBuilder(byte_order="big")
    i = b.add(T.Int("int", 4, IntEncoding.SIGNED, 0, 32))
    b.add(T.Ptr(i))
    raw = b.encode()
    btf = BTF.parse(raw)
    assert btf.byte_order == "big" and btf[2] == T.Ptr(1) and btf.encode() == raw
