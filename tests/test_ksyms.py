"""sigbpf.kernel.kallsyms and sigbpf.btf.ksyms: ksym variables resolved as libbpf does.

* kallsyms parsing and libbpf's rules for typeless ksyms (first address,
  ambiguity, ``.llvm.`` suffixes, weak/strong);
* typed ksyms against BTF (vmlinux first, then module BTF's own types,
  compatibility, weak), on hand-built BTF;
* the running kernel, with libbpf 1.1 as the reference: the ld_imm64s it
  relocates in ``tests/progs/ksym_vars.c`` carry the addresses and BTF ids
  sigbpf computes, and its refusals (ambiguous symbol, incompatible type) are
  sigbpf's.
"""

from __future__ import annotations

import re
import struct

import pytest

from sigbpf.btf import (BTF, BTFBuilder, Const, Int, IntEncoding, Kind, Member, Struct, Typedef, Var,
                        VarLinkage)
from sigbpf.btf.ksyms import KsymVar, btf_kind_str, find_ksym_btf_id, resolve_ksym_var
from sigbpf.elf import BPFObject
from sigbpf.elf.externs import ExternKind
from sigbpf.errors import ArtifactError, CompatError, FormatError, NotFoundError
from sigbpf.kernel.kallsyms import Kallsyms, KsymSpec, resolve_ksym_var_running
from test_kconfig import libbpf_load

KALLSYMS_TEXT = """\
ffffffff81000000 T _stext
ffffffff81000100 t helper
ffffffff81000200 t helper
ffffffff81000300 T dup_same
ffffffff81000300 T dup_same
ffffffff82000000 D some_data
ffffffff82000010 d local_var.llvm.123456
ffffffff81000400 t text_fn.llvm.99
ffffffffc0000000 t mod_fn\t[nf_conntrack]
ffffffffc0000100 T __x64_sys_bpf
"""


# ---- kallsyms -----------------------------------------------------------------------------

def test_parse_entries():
    k = Kallsyms.parse(KALLSYMS_TEXT, "test")
    assert len(k) == 10
    e = k.lookup("mod_fn")[0]
    assert (e.address, e.type, e.module, e.line) == (0xFFFFFFFFC0000000, "t", "nf_conntrack", 9)
    assert k.lookup("_stext")[0].module is None
    assert k.addresses_visible()
    assert not Kallsyms.parse("0000000000000000 T a\n0000000000000000 t b\n").addresses_visible()


def test_llvm_suffix_only_for_local_data():
    k = Kallsyms.parse(KALLSYMS_TEXT)
    assert k.resolve("local_var") == 0xFFFFFFFF82000010  # 'd' x.llvm.N answers to x
    assert "text_fn" not in k and "text_fn.llvm.99" in k  # not for 't'


def test_resolve_first_same_ambiguous_missing():
    k = Kallsyms.parse(KALLSYMS_TEXT, "test")
    assert k.resolve("_stext") == 0xFFFFFFFF81000000
    assert k.resolve("dup_same") == 0xFFFFFFFF81000300  # the same address twice is fine
    assert k.resolve("mod_fn") == 0xFFFFFFFFC0000000  # module symbols count
    with pytest.raises(NotFoundError) as err:
        k.resolve("helper")
    assert "extern (ksym) 'helper': resolution is ambiguous: 0xffffffff81000100 or 0xffffffff81000200" \
        in str(err.value)
    assert err.value.file == "test:3" and "\n" not in str(err.value)
    assert k.resolve("nope", weak=True) == 0
    with pytest.raises(NotFoundError) as err:
        k.resolve("nope")
    assert str(err.value).startswith("extern 'nope' (strong): not resolved")


def test_resolve_all_order_and_typed():
    k = Kallsyms.parse(KALLSYMS_TEXT + "ffffffff81000500 T later\nffffffff81000600 T later\n")
    got = k.resolve_all([KsymSpec("_stext"), KsymSpec("gone", weak=True), KsymSpec("some_data", typed=True)])
    assert got == {"_stext": 0xFFFFFFFF81000000, "gone": 0}  # typed specs: no address
    # a typed spec still takes part in the ambiguity check, as in libbpf
    with pytest.raises(NotFoundError, match="'helper': resolution is ambiguous"):
        k.resolve_all([KsymSpec("_stext"), KsymSpec("helper", typed=True)])
    # the first ambiguous line of the file wins, whatever the spec order
    with pytest.raises(NotFoundError, match="'helper'"):
        k.resolve_all([KsymSpec("later"), KsymSpec("helper")])
    # ambiguity before missing
    with pytest.raises(NotFoundError, match="ambiguous"):
        k.resolve_all([KsymSpec("missing"), KsymSpec("later")])


def test_parse_bad_lines_and_long_names():
    with pytest.raises(FormatError, match="failed to read kallsyms entry") as err:
        Kallsyms.parse("ffffffff81000000 T ok\nnot-hex T x\n", "k")
    assert err.value.file == "k:2"
    with pytest.raises(FormatError):
        Kallsyms.parse("ffffffff81000000 T\n")
    long = "a" * 600
    k = Kallsyms.parse(f"ffffffff81000000 T {long}\n")
    assert k.entries[0].name == "a" * 499  # libbpf's %499s


# ---- typed ksyms on hand-built BTF --------------------------------------------------------------

class _Module:
    """A module's name and split BTF (what sigbpf.resolve.modules.ModuleBTF holds)."""

    def __init__(self, name: str, btf: BTF) -> None:
        self.name, self.btf = name, btf


def _btfs():
    """(vmlinux, [module a, module b], local BTF, local ids) built by hand."""
    b = BTFBuilder()
    i = b.add(Int("int", 4, IntEncoding.SIGNED, 0, 32))
    rq = b.add(Struct("rq", 4, (Member("cpu", i, 0),)))
    b.add(Var("runqueues", rq, VarLinkage.GLOBAL_ALLOCATED))
    b.add(Var("counter", i, VarLinkage.GLOBAL_ALLOCATED))
    vmlinux = BTF.parse(b.encode())

    m1 = BTFBuilder(base=vmlinux)
    m1.add(Var("mod_counter", i, VarLinkage.GLOBAL_ALLOCATED))
    m2 = BTFBuilder(base=vmlinux)
    s = m2.add(Struct("mod_state", 4, (Member("x", i, 0),)))
    m2.add(Var("mod_state_var", s, VarLinkage.GLOBAL_ALLOCATED))
    m2.add(Var("mod_counter", s, VarLinkage.GLOBAL_ALLOCATED))
    modules = [_Module("mod_a", BTF.parse(m1.encode(), base=vmlinux)),
               _Module("mod_b", BTF.parse(m2.encode(), base=vmlinux))]

    loc = BTFBuilder()
    li = loc.add(Int("int", 4, IntEncoding.SIGNED, 0, 32))
    lconst = loc.add(Const(li))
    ltd = loc.add(Typedef("s32", li))
    lrq = loc.add(Struct("rq", 0, ()))
    local = BTF.parse(loc.encode())
    return vmlinux, modules, local, dict(int=li, const=lconst, typedef=ltd, rq=lrq)


def test_typed_vmlinux_then_modules():
    vmlinux, modules, local, ids = _btfs()
    got = resolve_ksym_var("counter", local, ids["const"], vmlinux, modules)
    assert got == KsymVar("counter", vmlinux.find_by_name_kind("counter", Kind.VAR), "vmlinux", 1)
    btf_id, obj = got  # unpacks as (btf_id, btf_obj)
    assert obj == "vmlinux"
    assert resolve_ksym_var("runqueues", local, ids["rq"], vmlinux, modules).btf_obj == "vmlinux"
    # a typedef of int is int; names of structs are not compared (libbpf's rule)
    assert resolve_ksym_var("counter", local, ids["typedef"], vmlinux).btf_id == btf_id
    m = resolve_ksym_var("mod_counter", local, ids["int"], vmlinux, modules)
    assert m.btf_obj == "mod_a" and m.btf_id == modules[0].btf.find_by_name_kind("mod_counter", Kind.VAR)
    # the first module that has it wins; its type must still match
    with pytest.raises(CompatError):
        resolve_ksym_var("mod_counter", local, ids["int"], vmlinux, modules[::-1])
    assert resolve_ksym_var("mod_state_var", local, ids["rq"], vmlinux, modules).btf_obj == "mod_b"
    assert find_ksym_btf_id("nowhere", Kind.VAR, vmlinux, modules) is None


def test_typed_missing_and_incompatible_messages():
    vmlinux, modules, local, ids = _btfs()
    assert resolve_ksym_var("nowhere", local, ids["int"], vmlinux, modules, weak=True) is None
    with pytest.raises(NotFoundError) as err:
        resolve_ksym_var("nowhere", local, ids["int"], vmlinux, modules)
    assert str(err.value) == "extern (var ksym) 'nowhere': not found in kernel BTF (ESRCH)"
    rq_id = vmlinux.find_by_name_kind("rq", Kind.STRUCT)
    for weak in (False, True):  # weak does not excuse a type mismatch
        with pytest.raises(CompatError) as err:
            resolve_ksym_var("runqueues", local, ids["const"], vmlinux, weak=weak)
        assert (f"extern (var ksym) 'runqueues': incompatible types, expected [{ids['int']}] int int, "
                f"but kernel has [{rq_id}] struct rq") in str(err.value)
    with pytest.raises(ArtifactError, match="typeless"):
        resolve_ksym_var("counter", local, 0, vmlinux)
    assert btf_kind_str(local, ids["rq"]) == "struct" and btf_kind_str(local, 0) == "void"


# ---- the running kernel, and libbpf ------------------------------------------------------------

@pytest.fixture(scope="module")
def kallsyms() -> Kallsyms:
    return Kallsyms.running()


def test_running_kallsyms(kernel, kallsyms):
    assert len(kallsyms) > 1000
    assert kallsyms.addresses_visible(), "run as root: kallsyms addresses read as 0"
    assert kallsyms.resolve("_stext") != 0


def _ld_imm64s(insns: bytes) -> list[tuple[int, int]]:
    """(src_reg, 64-bit imm) of every ld_imm64 in *insns*."""
    out, i = [], 0
    while i < len(insns):
        code, regs, _, imm = struct.unpack_from("<BBhi", insns, i)
        if code == 0x18:
            hi = struct.unpack_from("<i", insns, i + 12)[0]
            out.append((regs >> 4, (imm & 0xFFFFFFFF) | ((hi & 0xFFFFFFFF) << 32)))
            i += 16
        else:
            i += 8
    return out


def _ksym_resolution(path, kallsyms):
    """sigbpf's answer for every ksym variable of *path*: name -> ("addr", a) | ("btf", id, obj) | None."""
    obj = BPFObject.from_file(path)
    ksyms = [e for e in obj.externs if e.kind == ExternKind.KSYM]
    addrs = kallsyms.resolve_all([KsymSpec(e.name, e.weak, bool(e.type_id)) for e in ksyms])
    out = {}
    for e in ksyms:
        if not e.type_id:
            out[e.name] = ("addr", addrs[e.name])
        else:
            got = resolve_ksym_var_running(e.name, obj.btf, e.type_id, weak=e.weak)
            out[e.name] = None if got is None else ("btf", got.btf_id, got.btf_obj)
    return out


def test_libbpf_relocates_ksyms_as_we_resolve(kernel, bpf_object, kallsyms):
    path = bpf_object("ksym_vars")
    ref = libbpf_load(path)
    log = "".join(ref.log)
    # libbpf resolved every extern (the kernel may still refuse typed data ksyms: without
    # CONFIG_KALLSYMS_ALL the verifier says "ldimm64 failed to find the address")
    assert "not resolved" not in log.replace("(weak): not resolved", "")
    assert "incompatible" not in log and "ambiguous" not in log
    ours = _ksym_resolution(path, kallsyms)
    expect = {
        "ksym_typeless": ours["_stext"],
        "ksym_weak_missing": ours["sigbpf_no_such_ksym"],
        "ksym_typed_int": ours["bpf_prog_active"],
        "ksym_typed_struct": ours["runqueues"],
        "ksym_typed_weak": ours["sigbpf_no_such_var"],
    }
    assert ours["sigbpf_no_such_ksym"] == ("addr", 0) and ours["sigbpf_no_such_var"] is None
    for prog, want in expect.items():
        (src, imm), = _ld_imm64s(ref.insns[prog])
        if want is None or want[0] == "addr":  # libbpf: a plain constant (an unresolved typed one: 0)
            assert (src, imm) == (0, 0 if want is None else want[1]), prog
        else:  # BPF_PSEUDO_BTF_ID, imm = id, insn[1].imm = BTF fd (0: vmlinux)
            _, btf_id, btf_obj = want
            assert (src, imm) == (3, btf_id) and btf_obj == "vmlinux", prog
            m = re.search(rf"extern \(var ksym\) '\w+': resolved to \[{btf_id}\] var", log)
            assert m, prog


def _ambiguous_name(kallsyms, vmlinux_h) -> str:
    text = vmlinux_h.read_text()
    for e in kallsyms.entries:
        name = e.key
        if not re.fullmatch(r"[A-Za-z_]\w*", name) or name.startswith("__pfx_"):
            continue
        if len({x.address for x in kallsyms.lookup(name)}) > 1 and not re.search(rf"\b{name}\b", text):
            return name
    pytest.skip("no symbol listed twice with different addresses in kallsyms")


def test_libbpf_ambiguous_ksym(kernel, bpf_object, kallsyms, vmlinux_h):
    name = _ambiguous_name(kallsyms, vmlinux_h)
    path = bpf_object("ksym_vars", f"-DSIGBPF_AMBIGUOUS={name}")
    ref = libbpf_load(path)
    assert ref.rc != 0
    m = re.search(r"extern \(ksym\) '[^']*': resolution is ambiguous: 0x[0-9a-f]+ or 0x[0-9a-f]+",
                  "".join(ref.log))
    assert m
    with pytest.raises(NotFoundError) as err:
        _ksym_resolution(path, kallsyms)
    assert m.group(0) in str(err.value)


def test_libbpf_incompatible_typed_ksym(kernel, bpf_object, kallsyms):
    path = bpf_object("ksym_vars", "-DSIGBPF_BAD_TYPE")
    ref = libbpf_load(path)
    assert ref.rc != 0
    m = re.search(r"extern \(var ksym\) 'bpf_prog_active': incompatible types, expected .*", "".join(ref.log))
    assert m
    with pytest.raises(CompatError) as err:
        _ksym_resolution(path, kallsyms)
    assert m.group(0) in str(err.value)

