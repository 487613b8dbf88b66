"""``sigbpf inspect OBJ``: output, and the one-line errors for files that are not BPF objects.

Also a fuzz-style test: truncated and mutated object bytes only ever raise
ELFError/FormatError (BTFError is one) from BPFObject.from_bytes -- never
another exception, never a hang.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import sys

import pytest

from conftest import assert_one_line_error
from sigbpf.elf import BPFObject
from sigbpf.elf.reader import read_elf
from sigbpf.errors import FormatError


def test_inspect_text(cli, bpf_object):
    proc = cli("inspect", bpf_object("elf_externs"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "externs_user  section syscall  type syscall flags SLEEPABLE" in out
    assert "subprograms: sub_with_kfunc" in out
    assert ("kfuncs: bpf_rcu_read_lock, bpf_rcu_read_unlock, bpf_sigbpf_absent, "
            "bpf_task_from_pid, bpf_task_release") in out
    assert "LINUX_KERNEL_VERSION  kconfig\n" in out and "bpf_sigbpf_absent  kfunc  weak" in out


def test_inspect_json(cli, bpf_object):
    proc = cli("inspect", "--json", bpf_object("elf_data"))
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["format"] == "elf" and info["license"] == "GPL" and info["kern_version"] == 0x60C00
    progs = {p["name"]: p for p in info["programs"]}
    assert progs["data_user"]["type"] == "syscall" and progs["tail_target"]["type"] == "sched_cls"
    maps = {m["name"]: m for m in info["maps"]}
    assert maps["elf_data.rodata"]["frozen"] and maps["elf_data.rodata"]["initial_data_size"] == 10
    assert maps["elf_data.bss"]["zero_init"] and maps["elf_data.bss"]["initial_data_size"] == 0
    assert maps["hash_map"]["flags"] == ["NO_PREALLOC"]
    assert maps["outer_map"]["init_slots"] == {"1": "inner_a"}
    assert maps["events"]["type"] == "ringbuf"


def test_inspect_kfuncs_through_subprograms(cli, bpf_object):
    info = json.loads(cli("inspect", "--json", bpf_object("kfunc_iter")).stdout)
    (prog,) = info["programs"]
    assert prog["subprograms"] == ["sum_below"]
    assert prog["kfuncs"] == ["bpf_iter_num_new", "bpf_iter_num_next", "bpf_iter_num_destroy"]


def test_inspect_json_externs_and_kfuncs_per_program(cli, bpf_object):
    """The issue's four parts in JSON: programs, maps, externs, and the kfuncs each program calls."""
    proc = cli("inspect", "--json", bpf_object("elf_externs"))
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert set(info) >= {"programs", "maps", "externs"}
    externs = {e["name"]: (e["kind"], e["weak"]) for e in info["externs"]}
    assert externs == {
        "LINUX_KERNEL_VERSION": ("kconfig", False), "CONFIG_BPF_SYSCALL": ("kconfig", True),
        "CONFIG_SIGBPF_MISSING": ("kconfig", True), "bpf_prog_active": ("ksym", False),
        "bpf_link_fops": ("ksym", True), "bpf_task_from_pid": ("kfunc", False),
        "bpf_task_release": ("kfunc", False), "bpf_rcu_read_lock": ("kfunc", True),
        "bpf_rcu_read_unlock": ("kfunc", True), "bpf_sigbpf_absent": ("kfunc", True)}
    assert all(isinstance(e["btf_id"], int) and e["btf_id"] > 0 for e in info["externs"])
    progs = {p["name"]: p for p in info["programs"]}
    # externs_tc calls no kfunc itself: its two come from the subprogram it calls
    assert progs["externs_tc"]["kfuncs"] == ["bpf_task_from_pid", "bpf_task_release"]
    assert set(progs["externs_user"]["kfuncs"]) == {n for n, (k, _) in externs.items() if k == "kfunc"}
    assert [m["name"] for m in info["maps"]] == ["elf_ext.kconfig"]


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("command", ["inspect", "disasm", "btf dump", "kfuncs --btf"])
def test_fifo_and_device_inputs_are_refused_not_read(cli, tmp_path, command):
    """A FIFO (open would wait for a writer) or /dev/zero (never ends): one line, exit 2, no hang."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert_one_line_error(cli(*command.split(), fifo), 2, f"{fifo}: not a regular file")
    assert_one_line_error(cli(*command.split(), "/dev/zero"), 2, "/dev/zero: not a regular file")
    assert_one_line_error(cli(*command.split(), tmp_path), 2, "is a directory")


def test_not_an_elf_file(cli, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello\n")
    assert_one_line_error(cli("inspect", f), 2, f"{f}: not an ELF file")
    empty = tmp_path / "empty.o"
    empty.write_bytes(b"")
    assert_one_line_error(cli("inspect", empty), 2, "not an ELF file")


def test_not_a_bpf_object(cli):
    """The Python interpreter is an ELF file, but not BPF."""
    assert_one_line_error(cli("inspect", sys.executable), 2, "not a BPF object (e_machine")


def test_truncated_object(cli, bpf_object, tmp_path):
    data = bpf_object("elf_data").read_bytes()
    for size in (10, 100, len(data) // 2, len(data) - 1):
        f = tmp_path / f"t{size}.o"
        f.write_bytes(data[:size])
        proc = cli("inspect", f)
        assert_one_line_error(proc, 2, str(f))


def test_header_checks(cli, bpf_object, tmp_path):
    data = bpf_object("elf_data").read_bytes()
    cases = {
        "elf32.o": (data[:4] + b"\x01" + data[5:], "not a 64-bit ELF file"),
        "exec.o": (data[:16] + struct.pack("<H", 2) + data[18:], "not a relocatable object"),
    }
    for name, (raw, message) in cases.items():
        f = tmp_path / name
        f.write_bytes(raw)
        assert_one_line_error(cli("inspect", f), 2, message)


def test_stripped_and_legacy_objects(cli, bpf_object, tmp_path):
    objcopy = shutil.which("llvm-objcopy-19")
    if objcopy is None:
        pytest.fail("llvm-objcopy-19 is missing (llvm-19 provides it)")
    src = bpf_object("elf_data")
    stripped = tmp_path / "stripped.o"
    subprocess.run([objcopy, "--strip-all", str(src), str(stripped)], check=True)
    assert_one_line_error(cli("inspect", stripped), 2, "couldn't find symbol table")
    legacy = tmp_path / "legacy.o"
    subprocess.run([objcopy, "--rename-section", ".maps=maps", str(src), str(legacy)], check=True)
    # libbpf >= 1.0: "legacy map definitions in 'maps' section are not supported"
    assert_one_line_error(cli("inspect", legacy), 2, "legacy map definitions in 'maps' section")


def test_missing_file(cli, tmp_path):
    assert_one_line_error(cli("inspect", tmp_path / "nope.o"), 2, "nope.o")


# ------------------------------------------------------------------ fuzz


def test_fuzz_truncated_and_mutated_bytes(bpf_object):
    """Only FormatError (ELFError, BTFError, ...) -- never a traceback -- for broken objects."""
    data = bpf_object("elf_data").read_bytes()
    elf = read_elf(data)
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    interesting = [(0, 64), (shoff, len(data) - shoff)] + [
        (s.offset, s.size) for s in elf.sections
        if s.size and s.name in (".BTF", ".BTF.ext", ".symtab", ".strtab", ".maps", ".rel.maps",
                                 ".relsyscall", ".reltc", "syscall", "tc", "version", "license")]
    rng = random.Random(1234)
    cases = [data[:n] for n in range(0, len(data), max(1, len(data) // 60))]
    for _ in range(250):
        b = bytearray(data)
        for _ in range(rng.choice((1, 1, 2, 4))):
            off, size = rng.choice(interesting)
            i = off + rng.randrange(size)
            b[i] = rng.randrange(256) if rng.random() < 0.7 else b[i] ^ (1 << rng.randrange(8))
        cases.append(bytes(b))
    failures = 0
    for case in cases:
        try:
            BPFObject.from_bytes(case, "fuzz.o")
        except FormatError as err:
            failures += 1
            assert str(err).startswith("fuzz.o"), str(err)
    assert failures > len(cases) // 4  # most of the damage is noticed


def test_static_program_is_refused_like_libbpf(cli, bpf_object):
    from elf_libbpf import open_object

    path = bpf_object("elf_bad_static")
    message = "sec 'xdp': program 'static_prog' is static and not supported"
    with pytest.raises(RuntimeError) as ref:
        open_object(path)
    assert message in str(ref.value)  # libbpf's own words
    assert_one_line_error(cli("inspect", path), 2, message)
