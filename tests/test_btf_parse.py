"""Parsing BTF: vmlinux, the corpus kernels, split module BTF, clang objects.

The reference is libbpf itself (libbpf.so.1 through ctypes, in the test only):
type counts, the kind and name of every type, and btf__find_by_name_kind
answers must be the same as sigbpf's.  The clang object's types are checked
field by field against what tests/progs/btf_kinds.c declares.
"""

from __future__ import annotations

import ctypes
import errno
import struct
from pathlib import Path

import pytest

from sigbpf.btf import BTF, FuncLinkage, IntEncoding, Kind, VarLinkage
from sigbpf.btf import types as T
from sigbpf.errors import ELFError, NotFoundError

VMLINUX = Path("/sys/kernel/btf/vmlinux")
KERNELS = ("6.1.0-56-amd64", "6.12.95+deb12-amd64")
MODULES = ("nf_conntrack", "xfs")


class Libbpf:
    """The few libbpf BTF calls the comparisons need."""

    def __init__(self) -> None:
        lib = ctypes.CDLL("libbpf.so.1")
        lib.btf__parse.restype = ctypes.c_void_p
        lib.btf__parse.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        lib.btf__parse_split.restype = ctypes.c_void_p
        lib.btf__parse_split.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        lib.btf__type_cnt.restype = ctypes.c_uint
        lib.btf__type_cnt.argtypes = [ctypes.c_void_p]
        lib.btf__find_by_name_kind.restype = ctypes.c_int
        lib.btf__find_by_name_kind.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint]
        lib.btf__type_by_id.restype = ctypes.c_void_p
        lib.btf__type_by_id.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.btf__name_by_offset.restype = ctypes.c_char_p
        lib.btf__name_by_offset.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.btf__free.argtypes = [ctypes.c_void_p]
        self.lib = lib

    def parse(self, path: Path, base: int | None = None) -> int:
        handle = (self.lib.btf__parse_split(str(path).encode(), base) if base
                  else self.lib.btf__parse(str(path).encode(), None))
        assert handle, f"libbpf cannot parse {path}"
        return handle

    def kind_and_name(self, handle: int, type_id: int) -> tuple[int, str]:
        ptr = self.lib.btf__type_by_id(handle, type_id)
        name_off, info = struct.unpack("<II", ctypes.string_at(ptr, 8))
        return (info >> 24) & 0x1F, (self.lib.btf__name_by_offset(handle, name_off) or b"").decode()

    def find(self, handle: int, name: str, kind: int) -> int:
        return self.lib.btf__find_by_name_kind(handle, name.encode(), kind)


@pytest.fixture(scope="module")
def libbpf() -> Libbpf:
    return Libbpf()


def _same_as_libbpf(libbpf: Libbpf, handle: int, btf: BTF) -> None:
    assert libbpf.lib.btf__type_cnt(handle) == btf.type_count + 1  # libbpf counts void
    for type_id in range(btf.start_id, btf.type_count + 1):
        kind, name = libbpf.kind_and_name(handle, type_id)
        assert (kind, name) == (int(btf.kind_of(type_id)), btf.name_of(type_id)), type_id


def test_vmlinux_types_match_libbpf(kernel, libbpf):
    btf = BTF.load_vmlinux()
    handle = libbpf.parse(VMLINUX)
    _same_as_libbpf(libbpf, handle, btf)
    funcs = btf.ids_of_kind(Kind.FUNC)
    assert len(funcs) > 10000
    for type_id in funcs[::97]:
        assert btf.find_by_name_kind(btf.name_of(type_id), Kind.FUNC) == \
            libbpf.find(handle, btf.name_of(type_id), Kind.FUNC)
    # every kind, not only FUNC: structs, typedefs, enums
    for kind in (Kind.STRUCT, Kind.TYPEDEF, Kind.ENUM, Kind.INT, Kind.UNION):
        for type_id in btf.ids_of_kind(kind)[::211]:
            name = btf.name_of(type_id)
            if name:
                assert btf.find_by_name_kind(name, kind) == libbpf.find(handle, name, kind), (kind, name)
    libbpf.lib.btf__free(handle)


@pytest.mark.parametrize("kernel_name", KERNELS)
def test_corpus_vmlinux_and_modules_match_libbpf(libbpf, corpus_btf, kernel_name):
    base_path = corpus_btf(f"{kernel_name}.btf")
    base = BTF.from_file(base_path)
    base_handle = libbpf.parse(base_path)
    _same_as_libbpf(libbpf, base_handle, base)
    for module in MODULES:
        path = corpus_btf(f"{kernel_name}.{module}.btf")
        mod = BTF.from_file(path, base=base)  # validated, split
        assert mod.start_id == base.type_count + 1 and mod.base is base
        handle = libbpf.parse(path, base_handle)
        _same_as_libbpf(libbpf, handle, mod)
        # base ids go to the base; names of module types may live in base strings
        assert mod[1] == base[1]
        own = list(mod.types())
        assert own[0][0] == mod.start_id and len(own) == mod.own_count
        for type_id in mod.ids_of_kind(Kind.FUNC)[::7]:
            if type_id >= mod.start_id:
                name = mod.name_of(type_id)
                assert mod.find_by_name_kind(name, Kind.FUNC) == libbpf.find(handle, name, Kind.FUNC)
        libbpf.lib.btf__free(handle)
    libbpf.lib.btf__free(base_handle)


def test_duplicate_func_names_first_id_wins_like_libbpf(libbpf, corpus_btf):
    """6.1 has 404 duplicated FUNC names: btf_find_by_name_kind returns the lowest id."""
    path = corpus_btf("6.1.0-56-amd64.btf")
    btf = BTF.from_file(path, validate=False)
    handle = libbpf.parse(path)
    by_name: dict[str, list[int]] = {}
    for type_id in btf.ids_of_kind(Kind.FUNC):
        by_name.setdefault(btf.name_of(type_id), []).append(type_id)
    dups = {n: ids for n, ids in by_name.items() if len(ids) > 1}
    assert len(dups) == 404
    for name, ids in dups.items():
        assert btf.find_by_name_kind(name, Kind.FUNC) == ids[0] == libbpf.find(handle, name, Kind.FUNC)
        assert btf.find_all_by_name_kind(name, Kind.FUNC) == ids
    libbpf.lib.btf__free(handle)


def test_find_missing_is_enoent(kernel, libbpf):
    btf = BTF.load_vmlinux()
    with pytest.raises(NotFoundError) as caught:
        btf.find_by_name_kind("no_such_function_anywhere", Kind.FUNC)
    assert caught.value.errno == errno.ENOENT
    handle = libbpf.parse(VMLINUX)
    assert libbpf.find(handle, "no_such_function_anywhere", Kind.FUNC) == -errno.ENOENT
    # a name that exists, but not as that kind
    with pytest.raises(NotFoundError):
        btf.find_by_name_kind("task_struct", Kind.FUNC)
    assert btf.find_all_by_name_kind("no_such_function_anywhere", Kind.FUNC) == []
    libbpf.lib.btf__free(handle)


def test_lookups_and_helpers(kernel):
    btf = BTF.load_vmlinux()
    assert len(btf) == btf.type_count and btf.start_id == 1 and btf.base is None
    assert btf.byte_order == "little"
    assert btf[0] == T.VOID and btf.kind_of(0) == Kind.UNKN and btf.name_of(0) == ""
    tid = btf.find_by_name_kind("task_struct", Kind.STRUCT)
    t = btf[tid]
    assert isinstance(t, T.Struct) and t.name == "task_struct" and btf.resolved_size(tid) == t.size
    u32 = btf.find_by_name_kind("u32", Kind.TYPEDEF)
    resolved = btf.resolve_modifiers(u32)
    assert btf[resolved] == T.Int("unsigned int", 4, IntEncoding.NONE, 0, 32)
    assert btf.resolve_modifiers(u32, typedefs=False) == u32
    assert btf.resolved_size(u32) == 4
    fid = btf.find_by_name_kind("bpf_obj_new_impl", Kind.FUNC)
    f = btf[fid]
    assert isinstance(f, T.Func) and isinstance(btf[f.type], T.FuncProto)
    assert btf.string_at(0) == ""
    with pytest.raises(NotFoundError):
        btf.type_by_id(btf.type_count + 1)


def test_clang_object_every_kind(bpf_object):
    obj = bpf_object("btf_kinds")
    btf = BTF.from_file(obj)
    kinds = {t.kind for _, t in btf.types()}
    assert kinds == set(Kind) - {Kind.UNKN}, set(Kind) - kinds

    def named(name: str, kind: Kind):
        return btf[btf.find_by_name_kind(name, kind)]

    bits = named("kinds_bits", Kind.STRUCT)
    assert bits.kind_flag and bits.size == 4
    assert [(m.name, m.offset, m.bitfield_size) for m in bits.members] == [("a", 0, 3), ("b", 3, 5), ("c", 8, 0)]
    small = named("kinds_small", Kind.ENUM)
    assert small.signed and [(v.name, v.value) for v in small.values] == [("KINDS_NEG", -1), ("KINDS_ONE", 1)]
    big = named("kinds_big", Kind.ENUM64)
    assert big.size == 8 and big.values == (T.EnumValue("KINDS_HUGE", 0xFFFFFFFFFF),) and not big.signed
    union = named("kinds_union", Kind.UNION)
    assert [m.offset for m in union.members] == [0, 0]
    assert named("kinds_fwd", Kind.FWD) == T.Fwd("kinds_fwd", union=False)
    tag = named("kinds_user", Kind.TYPE_TAG)
    assert btf[tag.type] == named("int", Kind.INT)
    shape = named("kinds_shape", Kind.DECL_TAG)
    assert shape.component_idx == -1 and btf[shape.type].name == "kinds_all"
    arg = named("kinds_arg", Kind.DECL_TAG)
    assert arg.component_idx == 0 and btf[arg.type] == T.Func("kinds_sub", btf[arg.type].type, FuncLinkage.GLOBAL)
    kfunc = named("bpf_kinds_kfunc", Kind.FUNC)
    assert kfunc.linkage == FuncLinkage.EXTERN
    ksyms = named(".ksyms", Kind.DATASEC)
    assert sorted(btf[v.type].name for v in ksyms.vars) == ["bpf_kinds_kfunc", "kinds_typeless"]
    typeless = named("kinds_typeless", Kind.VAR)
    assert typeless.linkage == VarLinkage.GLOBAL_EXTERN and btf[typeless.type] == T.Const(0)
    all_ = named("kinds_all", Kind.STRUCT)
    members = {m.name: m for m in all_.members}
    arr = btf[members["arr"].type]
    assert isinstance(arr, T.Array) and arr.nelems == 3 and btf[arr.type].nelems == 2
    assert btf.resolved_size(members["arr"].type) == 48
    fp = btf[btf[members["fp"].type].type]
    assert isinstance(fp, T.FuncProto) and fp.variadic and len(fp.params) == 2
    cv = btf[members["cv"].type]
    assert isinstance(cv, T.Const) and isinstance(btf[cv.type], T.Volatile)
    assert isinstance(btf[members["r"].type], T.Restrict)
    assert named("double", Kind.FLOAT).size == 8
    assert named("kinds_counter", Kind.VAR).linkage == VarLinkage.GLOBAL_ALLOCATED
    assert named("kinds_zero", Kind.VAR).linkage == VarLinkage.STATIC
    assert [btf[v.type].name for v in named(".data.kinds", Kind.DATASEC).vars] == ["kinds_counter"]


def test_elf_without_btf_is_a_clear_error(bpf_object, tmp_path, cli):
    from conftest import assert_one_line_error

    stripped = tmp_path / "nobtf.o"
    import subprocess

    subprocess.run(["llvm-objcopy-19", "--remove-section=.BTF", "--remove-section=.BTF.ext",
                    str(bpf_object("btf_kinds")), str(stripped)], check=True)
    with pytest.raises(ELFError, match="no .BTF section"):
        BTF.from_file(stripped)
    assert_one_line_error(cli("kfuncs", "--btf", stripped), 2, "no .BTF section")
    (tmp_path / "junk.o").write_bytes(b"\x7fELF" + b"\0" * 10)
    assert_one_line_error(cli("kfuncs", "--btf", tmp_path / "junk.o"), 2, "junk.o")
    assert_one_line_error(cli("kfuncs", "--btf", tmp_path / "missing.btf"), 2, "missing.btf")
    assert_one_line_error(cli("kfuncs", "--btf", tmp_path), 2, "directory")
    assert_one_line_error(cli("kfuncs", "--btf", "/dev/zero"), 2, "not a regular file")  # no hang


def test_mutated_elf_objects_raise_only_located_errors(bpf_object, tmp_path):
    """The .BTF (and .BTF_ids) of a damaged ELF file: only SigbpfError naming the file.

    Found by this test: pyelftools' OverflowError on huge header fields used
    to escape as a traceback from ``sigbpf btf dump`` / ``kfuncs --btf``.
    """
    import random
    import struct

    from sigbpf.btf import kfuncs as kf
    from sigbpf.errors import SigbpfError

    data = bpf_object("kfunc_task").read_bytes()
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    rng = random.Random(1)
    path = tmp_path / "bad.o"
    refused = 0
    for n in range(1500):
        b = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            pos = rng.choice((rng.randrange(64), shoff + rng.randrange(len(data) - shoff),
                              rng.randrange(len(b))))
            b[pos] = rng.randrange(256)
        if n % 10 == 0:
            b = b[:rng.randrange(len(b))]
        path.write_bytes(bytes(b))
        for read in (lambda: BTF.from_file(path), lambda: kf.read_btf_ids(path)):
            try:
                read()
            except SigbpfError as err:
                refused += 1
                assert str(err).startswith(str(path)) and "\n" not in str(err), str(err)
    assert refused > 1500  # every .BTF_ids read fails (clang objects have none) and more


def test_import_is_light():
    import subprocess
    import sys

    code = ("import sys, sigbpf.btf; b = sigbpf.btf.BTF; "
            "print(sorted(m for m in ('elftools', 'cryptography', 'ctypes', 'sigbpf.btf.types', "
            "'sigbpf.btf.marshal', 'dataclasses') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
