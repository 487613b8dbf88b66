"""`sigbpf btf dump`: raw text, JSON and C header, compared with bpftool 7.1.

The reference is the real tool: ``bpftool btf dump file X [format c]`` (with
``-B base`` for split BTF) and ``bpftool -j``.  The raw and C outputs must be
byte-identical for the running kernel's vmlinux, both corpus kernels, corpus
modules on their base, and every clang object of tests/progs.  JSON must carry
the same values as bpftool's, except bpftool's sign extension of unsigned
ENUM values >= 2**31 (documented in sigbpf.btf.rawdump).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import BPFTOOL, CLANG, CORPUS_KERNELS, CORPUS_MODULES, PROGS, VMLINUX, assert_one_line_error

from sigbpf.btf import BTF, Kind
from sigbpf.btf.cdump import dump_c
from sigbpf.btf.rawdump import dump_json, dump_raw

# Every test program that builds with the default flags (asm_* need -mcpu=v3/v4).
OBJECTS = sorted(p.stem for p in PROGS.glob("*.c")
                 if p.stem.startswith(("btf_", "kfunc_", "bad_", "elf_")))


def bpftool(*args: str) -> bytes:
    return subprocess.run([BPFTOOL, *args], check=True, capture_output=True).stdout


def bpftool_dump(path: Path, base: Path | None = None, *extra: str) -> bytes:
    pre = ["-B", str(base)] if base else []
    return bpftool(*pre, "btf", "dump", "file", str(path), *extra)


def assert_same_text(mine: bytes, ref: bytes) -> None:
    """Byte equality, with the first differing line in the failure message."""
    if mine == ref:
        return
    for n, (a, b) in enumerate(zip(mine.split(b"\n"), ref.split(b"\n")), 1):
        if a != b:
            pytest.fail(f"line {n} differs:\n sigbpf:  {a!r}\n bpftool: {b!r}")
    pytest.fail(f"lengths differ: sigbpf {len(mine)} bytes, bpftool {len(ref)} bytes")


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")




@pytest.fixture(scope="module")
def corpus(corpus_btf):
    """name -> path; 'K' a kernel, 'K.mod' a module (base 'K')."""
    def path(kernel: str, module: str | None = None) -> Path:
        return corpus_btf(f"{kernel}.{module}.btf" if module else f"{kernel}.btf")
    return path


# ---- raw text ---------------------------------------------------------------

def test_raw_vmlinux_cli_identical_to_bpftool(kernel, cli):
    proc = cli("btf", "dump", str(VMLINUX))
    assert proc.returncode == 0, proc.stderr
    assert_same_text(encode(proc.stdout), bpftool_dump(VMLINUX))


@pytest.mark.parametrize("kernel", CORPUS_KERNELS)
def test_raw_corpus_kernel_identical_to_bpftool(corpus, kernel):
    path = corpus(kernel)
    assert_same_text(encode(dump_raw(BTF.from_file(path))), bpftool_dump(path))


@pytest.mark.parametrize("module", CORPUS_MODULES)
@pytest.mark.parametrize("kernel", CORPUS_KERNELS)
def test_raw_corpus_module_with_base_identical_to_bpftool(corpus, kernel, module):
    base, path = corpus(kernel), corpus(kernel, module)
    btf = BTF.from_file(path, base=BTF.from_file(base))
    text = dump_raw(btf)
    assert text.startswith(f"[{btf.start_id}] ")  # only the split part, as bpftool -B
    assert_same_text(encode(text), bpftool_dump(path, base))


def test_raw_module_cli_with_base(cli, corpus):
    kernel, module = CORPUS_KERNELS[1], CORPUS_MODULES[0]
    proc = cli("btf", "dump", corpus(kernel, module), "--base", corpus(kernel))
    assert proc.returncode == 0, proc.stderr
    assert_same_text(encode(proc.stdout), bpftool_dump(corpus(kernel, module), corpus(kernel)))


@pytest.mark.parametrize("name", OBJECTS)
def test_raw_clang_object_identical_to_bpftool(bpf_object, name):
    obj = bpf_object(name)
    assert_same_text(encode(dump_raw(BTF.from_file(obj))), bpftool_dump(obj))


def test_raw_shapes_cover_every_kind(bpf_object):
    """btf_shapes.o exercises the kinds a clang object can hold."""
    text = dump_raw(BTF.from_file(bpf_object("btf_shapes")))
    for piece in ("] INT '", "] PTR '", "] ARRAY '", "] STRUCT '", "] UNION '", "] ENUM '",
                  "] ENUM64 '", "] FWD '", "] TYPEDEF '", "] VOLATILE '", "] CONST '",
                  "] RESTRICT '", "] FUNC '", "] FUNC_PROTO '", "] VAR '", "] DATASEC '",
                  "] FLOAT '", "] DECL_TAG '", "] TYPE_TAG '", "bitfield_size=",
                  "encoding=SIGNED size=8", "val=-5000000000LL", "val=18446744073709551600ULL",
                  "val=4294967295\n", "linkage=extern", "type_id=", "fwd_kind=struct",
                  "component_idx=-1", "fwd_kind=union", "(VAR 'g_node')", "(FUNC 'bpf_extern_func')"):
        assert piece in text, piece


# ---- JSON ---------------------------------------------------------------------

def _bpftool_json(path: Path, base: Path | None = None) -> list[dict]:
    pre = ["-B", str(base)] if base else []
    types = json.loads(bpftool("-j", *pre, "btf", "dump", "file", str(path)))["types"]
    for t in types:  # undo bpftool's sign extension of unsigned 32-bit enum values
        if t["kind"] == "ENUM" and t["encoding"] == "UNSIGNED":
            for v in t["values"]:
                v["val"] &= 0xFFFFFFFF
    return types


def test_json_vmlinux_matches_bpftool(kernel):
    assert dump_json(BTF.load_vmlinux()) == _bpftool_json(VMLINUX)


def test_json_cli_matches_bpftool(cli, bpf_object):
    obj = bpf_object("btf_shapes")
    proc = cli("btf", "dump", obj, "--json")
    assert proc.returncode == 0, proc.stderr
    mine = json.loads(proc.stdout)
    assert isinstance(mine, list) and mine[0]["id"] == 1
    assert mine == _bpftool_json(obj)


@pytest.mark.parametrize("name", ["btf_shapes", "kfunc_task", "elf_data"])
def test_json_clang_object_matches_bpftool(bpf_object, name):
    obj = bpf_object(name)
    assert dump_json(BTF.from_file(obj)) == _bpftool_json(obj)


def test_json_unsigned_enum_values_are_not_sign_extended(bpf_object):
    types = dump_json(BTF.from_file(bpf_object("btf_shapes")))
    high = next(t for t in types if t["name"] == "high_u32")
    assert [v["val"] for v in high["values"]] == [0x80000000, 0xFFFFFFFF]
    signed = next(t for t in types if t["name"] == "signed_enum")
    assert signed["encoding"] == "SIGNED" and signed["values"][0]["val"] == -1


def test_json_module_with_base(corpus):
    kernel, module = CORPUS_KERNELS[0], CORPUS_MODULES[1]
    base, path = corpus(kernel), corpus(kernel, module)
    assert dump_json(BTF.from_file(path, base=BTF.from_file(base))) == _bpftool_json(path, base)


# ---- C header ------------------------------------------------------------------

def test_c_vmlinux_cli_identical_to_bpftool(kernel, cli, tmp_path):
    out = tmp_path / "vmlinux.h"
    proc = cli("btf", "dump", str(VMLINUX), "--format", "c", "-o", out)
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    assert_same_text(out.read_bytes(), bpftool_dump(VMLINUX, None, "format", "c"))


@pytest.mark.parametrize("kernel", CORPUS_KERNELS)
def test_c_corpus_kernel_identical_to_bpftool(corpus, kernel):
    path = corpus(kernel)
    assert_same_text(encode(dump_c(BTF.from_file(path))), bpftool_dump(path, None, "format", "c"))


def test_c_module_with_base_identical_to_bpftool(corpus):
    """Split BTF: bpftool 7.1 writes base and module types alike."""
    kernel, module = CORPUS_KERNELS[0], CORPUS_MODULES[0]
    base, path = corpus(kernel), corpus(kernel, module)
    text = dump_c(BTF.from_file(path, base=BTF.from_file(base)))
    assert "struct nf_conn {" in text and "struct task_struct {" in text
    assert_same_text(encode(text), bpftool_dump(path, base, "format", "c"))


@pytest.mark.parametrize("name", OBJECTS)
def test_c_clang_object_identical_to_bpftool(bpf_object, name):
    obj = bpf_object(name)
    assert_same_text(encode(dump_c(BTF.from_file(obj))), bpftool_dump(obj, None, "format", "c"))


def test_c_shapes_text(bpf_object):
    """The declarators and layouts libbpf writes, spelled out."""
    text = dump_c(BTF.from_file(bpf_object("btf_shapes")))
    for piece in (
        "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute push "
        "(__attribute__((preserve_access_index)), apply_to = record)\n#endif\n",
        "struct node;\n\ntypedef int (*visit_fn)(struct node *, void *, ...);",
        "typedef void (* (*signal_like)(int, void (*)(int)))(int);",
        "\tint (*ops[3])(const char * restrict, volatile int *);",
        "\tvolatile const unsigned long *cv;",
        "\tchar * const const_ptr;",
        "\tint matrix[2][3];",
        "\tint (*row)[4];",
        "\tunsigned long long d: 33;",
        "\tint __attribute__((btf_type_tag(\"rcu\"))) __attribute__((btf_type_tag(\"percpu\"))) *two_tags;",
        "struct packed_one {\n\tchar c;\n\tint i;\n\tlong l;\n} __attribute__((packed));",
        "struct padded {\n\tchar c;\n\tlong: 64;\n\tlong l;",
        "typedef struct {\n\tint x;\n\tint y;\n} point_t;",
        "\tenum {\n\t\tIN_A = 0,\n\t\tIN_B = 1,\n\t} inline_enum;",
        "\tstruct empty empty;",
        "struct empty {};",
        "struct opaque;\n\nunion opaque_u;\n\n",
        "BIG_HI = 18446744073709551600ULL,",
        "BIG_NEG = -5000000000LL,",
        "NEG_BIG = -2147483648,",
        "#endif /* __VMLINUX_H__ */\n",
    ):
        assert piece in text, piece
    assert "global_fn" not in text and "g_node" not in text  # FUNC/VAR are not emitted


def _compile(header_dir: Path, src: Path, out: Path, *defines: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLANG, "-target", "bpf", "-g", "-O2", "-D__TARGET_ARCH_x86", *defines,
         "-I", str(header_dir), "-c", str(src), "-o", str(out)],
        capture_output=True, text=True)


@pytest.mark.parametrize("which", ["running", *CORPUS_KERNELS])
def test_c_header_compiles_as_vmlinux_h(request, cli, corpus, tmp_path, which):
    """The acceptance test: sigbpf's header is a working vmlinux.h for clang-19."""
    if which == "running":
        request.getfixturevalue("kernel")  # the running kernel's BTF: required in CI
        src_btf = VMLINUX
    else:
        src_btf = corpus(which)
    header_dir = tmp_path / "include"
    header_dir.mkdir()
    proc = cli("btf", "dump", src_btf, "--format", "c", "-o", header_dir / "vmlinux.h")
    assert proc.returncode == 0, proc.stderr
    defines = [] if which.startswith("6.1.0") else ["-DHAVE_BPF_CPUMASK"]
    out = tmp_path / "use.o"
    done = _compile(header_dir, PROGS / "btf_header_use.c", out, *defines)
    assert done.returncode == 0, done.stderr[-3000:]
    # the object calls the kfunc (an extern FUNC in its BTF)
    assert "FUNC 'bpf_task_from_pid' type_id=" in dump_raw(BTF.from_file(out))


def test_c_enum_size_attrs_option_compiles(bpf_object, tmp_path):
    """Opt-in mode(byte)/mode(word) (newer libbpf): the header compiles and keeps sizes."""
    from sigbpf.btf.cdump import dump_c as dump

    text = dump(BTF.from_file(bpf_object("btf_shapes")), enum_size_attrs=True)
    assert "} __attribute__((mode(byte)));" in text
    header = tmp_path / "vmlinux.h"
    header.write_text(text)
    src = tmp_path / "check.c"
    src.write_text('#include "vmlinux.h"\n'
                   "_Static_assert(sizeof(enum small_enum) == 1, \"small\");\n"
                   "_Static_assert(sizeof(enum big_signed) == 8, \"big\");\n"
                   "_Static_assert(sizeof(struct bits) == 24, \"bits\");\n"
                   "_Static_assert(sizeof(struct packed_one) == 13, \"packed\");\n"
                   "_Static_assert(sizeof(struct padded) == 32, \"padded\");\n"
                   "_Static_assert(sizeof(struct over_aligned) == 32, \"aligned\");\n")
    done = _compile(tmp_path, src, tmp_path / "check.o")
    assert done.returncode == 0, done.stderr


# ---- CLI errors ---------------------------------------------------------------

def test_cli_missing_file(cli, tmp_path):
    assert_one_line_error(cli("btf", "dump", tmp_path / "nope"), 2, "No such file")


def test_cli_not_btf(cli, tmp_path):
    bad = tmp_path / "bad.btf"
    bad.write_bytes(b"hello world, this is not BTF at all")
    assert_one_line_error(cli("btf", "dump", bad), 2, "magic")


def test_cli_directory(cli, tmp_path):
    assert_one_line_error(cli("btf", "dump", tmp_path), 2, "directory")


def test_cli_truncated_btf(cli, bpf_object, tmp_path):
    from sigbpf.btf import BTF as _BTF

    raw = _BTF.from_file(bpf_object("kfunc_task")).encode()
    bad = tmp_path / "cut.btf"
    bad.write_bytes(raw[: len(raw) // 2])
    assert_one_line_error(cli("btf", "dump", bad), 2)


def test_cli_elf_without_btf(cli, tmp_path):
    obj = tmp_path / "nobtf.o"
    src = tmp_path / "nobtf.c"
    src.write_text("int x = 1;\n")
    subprocess.run([CLANG, "-target", "bpf", "-O2", "-c", str(src), "-o", str(obj)], check=True)
    assert_one_line_error(cli("btf", "dump", obj), 2)


def test_cli_split_btf_without_base_says_so(cli, corpus):
    proc = cli("btf", "dump", corpus(CORPUS_KERNELS[0], CORPUS_MODULES[1]))
    assert_one_line_error(proc, 2, "--base")


def test_cli_json_with_format_c_is_usage_error(cli, bpf_object):
    assert_one_line_error(cli("btf", "dump", bpf_object("kfunc_task"), "--json", "--format", "c"), 2)


def test_cli_bad_input_never_leaves_output(cli, tmp_path):
    out = tmp_path / "out.h"
    bad = tmp_path / "bad.btf"
    bad.write_bytes(b"\x9f\xeb\x01\x00" + b"\xff" * 20)
    assert_one_line_error(cli("btf", "dump", bad, "--format", "c", "-o", out), 2)
    assert not out.exists()
    out.write_text("previous\n")
    assert_one_line_error(cli("btf", "dump", bad, "-o", out), 2)
    assert out.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.h")] == []


def test_cli_output_file_equals_stdout(cli, bpf_object, tmp_path):
    obj = bpf_object("btf_shapes")
    out = tmp_path / "raw.txt"
    assert cli("btf", "dump", obj, "-o", out).returncode == 0
    assert out.read_text() == cli("btf", "dump", obj).stdout


def test_mutated_btf_never_crashes_dumpers(bpf_object):
    """Any bytes: either a SigbpfError or a dump, never another exception."""
    import random

    from sigbpf.errors import SigbpfError

    raw = bytearray(BTF.from_file(bpf_object("btf_shapes")).encode())
    rng = random.Random(1234)
    dumped = 0
    for _ in range(300):
        data = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(24, len(data))
            data[pos] = rng.randrange(256)
        try:
            btf = BTF.parse(bytes(data))
            dump_raw(btf)
            dump_json(btf)
            dump_c(btf)
            dumped += 1
        except SigbpfError:
            pass
    assert dumped > 0  # some mutations (names, offsets) still make valid BTF


def test_big_endian_btf_identical_to_bpftool(bpf_object, tmp_path):
    """The same types written big-endian: bpftool (libbpf swaps) and sigbpf agree."""
    from sigbpf.btf import BTFBuilder

    btf = BTF.from_file(bpf_object("btf_shapes"))
    builder = BTFBuilder(byte_order="big")
    builder.add_all(btf[i] for i in range(1, btf.type_count + 1))
    path = tmp_path / "be.btf"
    path.write_bytes(builder.encode())
    big = BTF.from_file(path)
    assert big.byte_order == "big"
    assert dump_raw(big) == dump_raw(btf)
    assert_same_text(encode(dump_raw(big)), bpftool_dump(path))
    assert_same_text(encode(dump_c(big)), bpftool_dump(path, None, "format", "c"))


def test_c_kfunc_prototypes_declare_tagged_kfuncs(kernel, tmp_path):
    """kfunc_prototypes (bpftool >= 7.5's section): a program calls kfuncs it never declared."""
    header_dir = tmp_path / "include"
    header_dir.mkdir()
    vm = BTF.load_vmlinux()
    text = dump_c(vm, kfunc_prototypes=True)
    (header_dir / "vmlinux.h").write_text(text)
    section = text[text.index("/* BPF kfuncs */\n#ifndef BPF_NO_KFUNC_PROTOTYPES\n"):]
    decls = [line for line in section.splitlines() if line.startswith("extern ")]
    tagged = sorted(vm[vm[t].type].name for t in vm.ids_of_kind(Kind.DECL_TAG)
                    if vm[t].name == "bpf_kfunc" and vm[t].component_idx == -1)
    assert len(decls) == len(tagged) > 0
    for decl, name in zip(decls, tagged):  # sorted by name, one each
        assert re.search(rf"[ *]{name}\(", decl), (decl, name)
    assert ("extern struct task_struct *bpf_task_from_pid(s32 pid) __weak __ksym;"
            in decls)
    src = tmp_path / "use.c"
    src.write_text('#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n'
                   'SEC("syscall") int f(void *ctx)\n{\n'
                   '\tstruct task_struct *t = bpf_task_from_pid(1);\n\n'
                   '\tif (t)\n\t\tbpf_task_release(t);\n\treturn 0;\n}\n'
                   'char LICENSE[] SEC("license") = "GPL";\n')
    out = tmp_path / "use.o"
    done = _compile(header_dir, src, out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "FUNC 'bpf_task_release' type_id=" in dump_raw(BTF.from_file(out))


def test_c_kfunc_prototypes_empty_for_untagged_kernel(corpus):
    """Debian 6.1/6.12 BTF has no bpf_kfunc tags: the section is there but empty."""
    text = dump_c(BTF.from_file(corpus(CORPUS_KERNELS[1])), kfunc_prototypes=True)
    assert "/* BPF kfuncs */\n#ifndef BPF_NO_KFUNC_PROTOTYPES\n#endif\n\n#ifndef BPF_NO_PRESERVE" in text
    assert "#ifndef __ksym\n#define __ksym __attribute__((section(\".ksyms\")))\n#endif\n" in text


def test_cli_kfunc_prototypes_needs_format_c(cli, bpf_object):
    assert_one_line_error(cli("btf", "dump", bpf_object("kfunc_task"), "--kfunc-prototypes"), 2,
                          "--format c")
