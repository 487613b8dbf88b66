"""CO-RE relocations (:mod:`sigbpf.btf.core`) against the two programs that apply them.

* **The running kernel.**  Kernel-side CO-RE (``BPF_PROG_LOAD`` with
  ``core_relos``, what sigbpf's artifacts use) runs libbpf's
  ``bpf_core_calc_relo_insn`` in the kernel.  Every program of
  ``tests/progs/core_*.c`` is loaded through sigbpf's loader and what the
  kernel did -- the xlated instruction at each relocation site, or the
  instruction and message it refused the program with -- is compared with
  ``relocate_all(..., rules=KERNEL)`` against /sys/kernel/btf/vmlinux.  The
  kernel keeps the candidates of the last 31 essential names it searched and
  answers a name from there whatever the kind asked; ``core_flush.c`` fills
  those 31 slots before each load so that every load searches afresh (the
  slots are checked against the kernel's own log), and one test shows the
  cache answering an ENUM with an ENUM64's candidates.
* **libbpf 1.1** (``libbpf.so.1`` through ctypes), each program opened with
  ``btf_custom_path`` set to a target kernel's BTF: Debian 6.1 and 6.12 from
  the corpus, the running kernel, variants of 6.12 derived with
  :class:`~sigbpf.btf.BTFBuilder` (a field renamed; a duplicate
  ``task_struct___dup`` that makes relocations ambiguous; copies named like
  flavors that are not flavors) and 6.1 with the xfs module's BTF flattened
  in.  libbpf's debug log says, per relocation, the value it patched in, the
  instruction it poisoned, or why it failed; compared with
  ``relocate_all(..., rules=LIBBPF)``.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import lzma
import pickle
import random
import re
from pathlib import Path

import pytest

from conftest import CORPUS, VMLINUX

KERNEL_61, KERNEL_612 = "6.1.0-56-amd64", "6.12.95+deb12-amd64"
POISON_CALL = "call unknown#195896080"


# ----------------------------------------------------------------- sigbpf's answers

def _object(bpf_object, name: str):
    from sigbpf.elf import BPFObject

    return BPFObject.from_file(bpf_object(name))


def _ours(source, program: str, target, *, rules=None, modules=()):
    """relocate_all for one program's relocations (in the order its loader applies them)."""
    from sigbpf.btf.core import core_relocations, relocate_all

    found = core_relocations(source)
    relos = [r for r in found.relocations if r.program == program]
    return relocate_all(found.parse_btf(), relos, target, modules=modules,
                        rules=found.rules if rules is None else rules)


# ----------------------------------------------------------------- the kernel's answers

def _jhash(key: bytes, initval: int = 0) -> int:
    """The kernel's ``jhash()`` (include/linux/jhash.h), which places names in its candidate cache."""
    mask = 0xFFFFFFFF

    def rol(x: int, k: int) -> int:
        return ((x << k) | (x >> (32 - k))) & mask

    a = b = c = (0xDEADBEEF + len(key) + initval) & mask
    rest = key
    while len(rest) > 12:
        a, b, c = ((a + int.from_bytes(rest[0:4], "little")) & mask,
                   (b + int.from_bytes(rest[4:8], "little")) & mask,
                   (c + int.from_bytes(rest[8:12], "little")) & mask)
        a = (a - c) & mask; a ^= rol(c, 4); c = (c + b) & mask
        b = (b - a) & mask; b ^= rol(a, 6); a = (a + c) & mask
        c = (c - b) & mask; c ^= rol(b, 8); b = (b + a) & mask
        a = (a - c) & mask; a ^= rol(c, 16); c = (c + b) & mask
        b = (b - a) & mask; b ^= rol(a, 19); a = (a + c) & mask
        c = (c - b) & mask; c ^= rol(b, 4); b = (b + a) & mask
        rest = rest[12:]
    if not rest:
        return c
    tail = rest + bytes(12 - len(rest))
    a = (a + int.from_bytes(tail[0:4], "little")) & mask
    b = (b + int.from_bytes(tail[4:8], "little")) & mask
    c = (c + int.from_bytes(tail[8:12], "little")) & mask
    c ^= b; c = (c - rol(b, 14)) & mask
    a ^= c; a = (a - rol(c, 11)) & mask
    b ^= a; b = (b - rol(a, 25)) & mask
    c ^= b; c = (c - rol(b, 16)) & mask
    a ^= c; a = (a - rol(c, 4)) & mask
    b ^= a; b = (b - rol(a, 14)) & mask
    c ^= b; c = (c - rol(b, 24)) & mask
    return c


def _load_with_log(artifact, program: str, level: int = 2) -> tuple[bool, str]:
    """BPF_PROG_LOAD of a map-less artifact program with a verifier log whatever the outcome."""
    from sigbpf.kernel import attr as A
    from sigbpf.kernel.btf import load_btf
    from sigbpf.kernel.log import decode_log
    from sigbpf.kernel.syscall import Cmd, Fd, bpf
    from sigbpf.errors import KernelError

    prog = artifact.program(program)
    keep = A.Buffers()
    log = ctypes.create_string_buffer(1 << 22)
    with load_btf(artifact.btf) as btf_fd:
        attr = A.PROG_LOAD.pack(
            prog_type=prog.prog_type, insn_cnt=len(prog.insns), insns=keep.ptr(prog.insn_bytes),
            license=keep.cstr(prog.license), prog_btf_fd=int(btf_fd),
            func_info=keep.ptr(prog.func_info_bytes), func_info_rec_size=8,
            func_info_cnt=len(prog.func_info), line_info=keep.ptr(prog.line_info_bytes),
            line_info_rec_size=16, line_info_cnt=len(prog.line_info),
            core_relos=keep.ptr(prog.core_relo_bytes), core_relo_rec_size=16,
            core_relo_cnt=len(prog.core_relos), prog_flags=prog.prog_flags, log_level=level,
            log_buf=ctypes.addressof(log), log_size=ctypes.sizeof(log))
        try:
            Fd(bpf(Cmd.PROG_LOAD, attr, what="loading with a log"), "prog").close()
            return True, decode_log(log)
        except KernelError:
            return False, decode_log(log)


@pytest.fixture(scope="module")
def flush_artifact(bpf_object):
    from sigbpf.artifact.build import build_artifact

    return build_artifact(bpf_object("core_flush"))


@pytest.fixture(scope="module")
def flush_cache(kernel, flush_artifact):
    """flush(): fill the kernel's 31 candidate-cache slots with names no other program uses."""
    from sigbpf.kernel.loader import load_artifact

    def flush() -> None:
        with load_artifact(flush_artifact) as loaded:
            assert loaded.report.ok, loaded.report.programs

    return flush


def _kernel_load(artifact, program: str):
    """Load one program; (outcome, xlated instructions or None)."""
    from sigbpf.asm import Instruction
    from sigbpf.kernel.info import prog_info
    from sigbpf.kernel.loader import load_artifact

    with load_artifact(artifact, programs=[program]) as loaded:
        outcome = loaded.report.programs[0]
        xlated = None
        if outcome.loaded:
            xlated = Instruction.decode(prog_info(loaded.programs[program].fd).xlated_insns)
        return outcome, xlated


def test_flush_fills_every_slot_of_the_kernel_candidate_cache(kernel, flush_artifact):
    ok, log = _load_with_log(flush_artifact, "flush")
    assert ok, log[-2000:]
    caches = [line for line in log.splitlines() if line.startswith("vmlinux_cand_cache:")]
    assert caches, "log_level 2 prints the candidate cache after each relocation"
    slots = dict((int(slot), name) for slot, name in re.findall(r"\[(\d+)\](\w+)\(", caches[-1]))
    assert set(slots) == set(range(31))
    for slot, name in slots.items():
        assert name.startswith("sigbpf_core_flush_"), (slot, name)
        assert _jhash(name.encode()) % 31 == slot, name


KERNEL_PROGRAMS = [
    ("core_kinds", p) for p in ("fields", "bitfields", "types", "enums", "loads")
] + [
    ("core_edges", p) for p in ("poison_dead", "poison_reached", "ambiguous_offset",
                                "ambiguous_size", "pruned_candidates", "enum_vs_enum64",
                                "load_resized", "load_poisoned")
]


@pytest.mark.parametrize("source,program", KERNEL_PROGRAMS)
def test_kernel_relocates_as_computed(kernel, bpf_object, flush_cache, source, program):
    """What the kernel did to each relocated instruction is what relocate_all(KERNEL) says."""
    from sigbpf.artifact.build import build_artifact
    from sigbpf.btf import BTF
    from sigbpf.btf.core import CoreRules

    artifact = build_artifact(bpf_object(source))
    ours = _ours(artifact, program, BTF.load_vmlinux(), rules=CoreRules.KERNEL)
    assert ours
    flush_cache()
    outcome, xlated = _kernel_load(artifact, program)
    refused = [o for o in ours if o.refused]
    poisoned = {o.insn for o in ours if o.poisoned}
    if refused:
        assert not outcome.loaded and outcome.errno == errno.EINVAL, outcome
        # our reason starts with libbpf's own words, which the kernel logs
        assert refused[0].reason.split(" (")[0] in outcome.log, (refused[0].reason, outcome.log[-2000:])
        return
    if not outcome.loaded:
        at = re.search(rf"^(\d+): \(85\) {POISON_CALL}$", outcome.log, re.M)
        assert at and int(at.group(1)) in poisoned, (poisoned, outcome.log[-2000:])
        return
    insns = artifact.program(program).insns
    # the verifier drops dead code: only sites before the first poisoned one keep their index
    if len(xlated) != len(insns):
        assert poisoned, "instructions disappeared where no relocation was poisoned"
    end = min(poisoned, default=len(insns))
    checked = 0
    for o in ours:
        if o.insn < end:
            assert tuple(xlated[o.insn:o.insn + len(o.patched)]) == o.patched, o.describe()
            checked += 1
    assert checked


def test_kernel_cache_answers_an_enum_with_enum64_candidates(kernel, bpf_object, flush_cache):
    """The kernel's candidate cache ignores the kind: after an ENUM64 search of a name,
    an ENUM of the same essential name gets the ENUM64 as candidate (libbpf's answer);
    searched afresh it gets none (sigbpf's KERNEL answer)."""
    from sigbpf.artifact.build import build_artifact
    from sigbpf.btf import BTF
    from sigbpf.btf.core import CoreRules

    edges, kinds = build_artifact(bpf_object("core_edges")), build_artifact(bpf_object("core_kinds"))
    vmlinux = BTF.load_vmlinux()
    fresh, = _ours(edges, "enum_vs_enum64", vmlinux, rules=CoreRules.KERNEL)
    libbpf, = _ours(edges, "enum_vs_enum64", vmlinux, rules=CoreRules.LIBBPF)
    assert fresh.ok and libbpf.ok and fresh.value != libbpf.value
    flush_cache()
    _, xlated = _kernel_load(edges, "enum_vs_enum64")
    assert tuple(xlated[fresh.insn:fresh.insn + 2]) == fresh.patched
    flush_cache()
    enum64, _ = _kernel_load(kinds, "enums")  # searches perf_callchain_context as an ENUM64
    assert enum64.loaded, enum64.log[-2000:]
    _, xlated = _kernel_load(edges, "enum_vs_enum64")
    assert tuple(xlated[libbpf.insn:libbpf.insn + 2]) == libbpf.patched


def test_kinds_the_kernel_does_not_know_are_refused(kernel, bpf_object, corpus_btf, tmp_path):
    """A relocation kind the kernel's CO-RE does not handle stops the load: the running kernel
    refuses a kind number it has no name for, and a kernel whose ``enum bpf_core_relo_kind``
    lacks a kind (TYPE_MATCHES before 6.0) gets the same answer from relocate_all."""
    from sigbpf.artifact.build import build_artifact
    from sigbpf.btf import BTF, Kind
    from sigbpf.btf.core import CoreReloKind, CoreRules, kernel_core_kinds

    artifact = build_artifact(bpf_object("core_kinds"))
    prog = artifact.program("types")
    unknown = max(CoreReloKind) + 1
    bad = dataclasses.replace(prog, core_relos=(dataclasses.replace(prog.core_relos[0], kind=unknown),
                                                *prog.core_relos[1:]))
    artifact = dataclasses.replace(artifact, programs=(bad,))
    vmlinux = BTF.load_vmlinux()
    assert kernel_core_kinds(vmlinux) is not None
    first = _ours(artifact, "types", vmlinux, rules=CoreRules.KERNEL)[0]
    assert first.refused and "unrecognized" in first.reason
    outcome, _ = _kernel_load(artifact, "types")
    assert not outcome.loaded and outcome.errno == errno.EINVAL, outcome

    base = BTF.from_file(corpus_btf(f"{KERNEL_612}.btf"), validate=False)
    enum_id = base.find_by_name_kind("bpf_core_relo_kind", Kind.ENUM)
    enum = base[enum_id]
    older = BTF.from_file(_variant([base], tmp_path / "no-type-matches.btf", replace=lambda i, t: (
        dataclasses.replace(t, values=tuple(v for v in enum.values if v.name != "BPF_CORE_TYPE_MATCHES"))
        if i == enum_id else t)), validate=False)
    assert kernel_core_kinds(older) == kernel_core_kinds(base) - {CoreReloKind.TYPE_MATCHES}
    obj = _object(bpf_object, "core_kinds")
    now = _ours(obj, "types", base, rules=CoreRules.KERNEL)
    then = _ours(obj, "types", older, rules=CoreRules.KERNEL)
    changed = [(a.kind, b.code) for a, b in zip(now, then) if a != b]
    assert changed and all(c == (CoreReloKind.TYPE_MATCHES, "refused") for c in changed), changed


# ----------------------------------------------------------------- libbpf's answers

class _OpenOpts(ctypes.Structure):
    """libbpf 1.1's ``struct bpf_object_open_opts`` (x86-64 layout, 80 bytes)."""

    _fields_ = [("sz", ctypes.c_size_t), ("object_name", ctypes.c_char_p),
                ("relaxed_maps", ctypes.c_bool), ("pin_root_path", ctypes.c_char_p),
                ("_attach_prog_fd", ctypes.c_uint32), ("kconfig", ctypes.c_char_p),
                ("btf_custom_path", ctypes.c_char_p), ("kernel_log_buf", ctypes.c_char_p),
                ("kernel_log_size", ctypes.c_size_t), ("kernel_log_level", ctypes.c_uint32)]


_PRINT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_SIGS = [
    ("bpf_object__open_file", ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_void_p]),
    ("libbpf_get_error", ctypes.c_long, [ctypes.c_void_p]),
    ("bpf_object__load", ctypes.c_int, [ctypes.c_void_p]),
    ("bpf_object__close", None, [ctypes.c_void_p]),
    ("bpf_object__next_program", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p]),
    ("bpf_program__name", ctypes.c_char_p, [ctypes.c_void_p]),
    ("bpf_program__set_autoload", ctypes.c_int, [ctypes.c_void_p, ctypes.c_bool]),
    ("libbpf_set_print", ctypes.c_void_p, [ctypes.c_void_p]),
]
_LIBBPF_LINE = re.compile(r"prog '(?P<prog>[^']*)': relo #(?P<idx>\d+): (?P<text>.*)")
_PATCHED = re.compile(r"patched insn #\d+ \((?:ALU/ALU64|LDX/ST/STX|LDIMM64)\) (?:imm|off|imm64) "
                      r"-?\d+ -> (\d+)")


class _Libbpf:
    """libbpf.so.1: CO-RE-relocate one program of an object against a target BTF file."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libbpf.so.1")
        for name, res, args in _SIGS:
            fn = getattr(self.lib, name)
            fn.restype, fn.argtypes = res, args
        self.libc = ctypes.CDLL(None)
        self.lines: list[str] = []
        self._print = _PRINT(self._capture)  # kept: libbpf holds the pointer

    def _capture(self, level: int, fmt: bytes, args: int) -> int:
        buf = ctypes.create_string_buffer(16384)
        self.libc.vsnprintf(buf, len(buf), fmt, ctypes.c_void_p(args))
        self.lines.append(buf.value.decode(errors="replace"))
        return 0

    def relocate(self, obj_path: Path, program: str, btf_path: Path) -> dict[int, tuple]:
        """libbpf's result per relocation index of the program's section:
        ("value", v), ("poisoned",) or ("refused", message)."""
        self.lines = []
        previous = self.lib.libbpf_set_print(ctypes.cast(self._print, ctypes.c_void_p))
        try:
            opts = _OpenOpts(sz=ctypes.sizeof(_OpenOpts), btf_custom_path=str(btf_path).encode())
            obj = self.lib.bpf_object__open_file(str(obj_path).encode(), ctypes.byref(opts))
            assert not self.lib.libbpf_get_error(obj), "".join(self.lines)[-2000:]
            try:
                prog = None
                while True:
                    prog = self.lib.bpf_object__next_program(obj, prog)
                    if not prog:
                        break
                    self.lib.bpf_program__set_autoload(
                        prog, self.lib.bpf_program__name(prog).decode() == program)
                self.lib.bpf_object__load(obj)  # the kernel may refuse the program: irrelevant
            finally:
                self.lib.bpf_object__close(obj)
        finally:
            self.lib.libbpf_set_print(previous)
        results: dict[int, tuple] = {}
        for line in self.lines:
            m = _LIBBPF_LINE.search(line)
            if not m or m.group("prog") != program:
                continue
            idx, text = int(m.group("idx")), m.group("text")
            patched = _PATCHED.search(text)
            if patched:
                results[idx] = ("value", int(patched.group(1)))
            elif text.startswith("substituting insn"):
                results.setdefault(idx, ("poisoned",))
            elif "failed to relocate" in text or "failed to patch" in text:
                results[idx] = ("refused", text)
            elif "ambiguity" in text:
                results.setdefault(idx, ("refused", text))
        return results


@pytest.fixture(scope="module")
def libbpf() -> _Libbpf:
    return _Libbpf()


def _section_indices(obj, program: str) -> list[int]:
    """libbpf's "relo #N" of each relocation of *program*: its index among its section's records."""
    func = obj.program(program)
    records = obj.btf_ext.core_relos[func.section]
    return [i for i, r in enumerate(records)
            if func.insn_offset <= r.insn < func.insn_offset + func.insn_count]


def _assert_libbpf_agrees(ours, theirs: dict[int, tuple], indices: list[int], where: str) -> None:
    assert len(ours) == len(indices)
    for outcome, idx in zip(ours, indices):
        said = theirs.get(idx)
        context = f"{where}: {outcome.describe()} vs libbpf {said}"
        if outcome.ok:
            assert said == ("value", outcome.value), context
        elif outcome.poisoned:
            assert said == ("poisoned",), context
        else:
            assert said is not None and said[0] == "refused", context
            # libbpf stops the object's CO-RE pass at the first failure
            assert not any(i > idx for i in theirs), context
            return


def _variant(btfs, path: Path, *, replace=None, extra=()) -> Path:
    """Write the types of *btfs* (a BTF and the split BTFs on it, in order) as one raw BTF,
    *replace(id, type)* deciding each one, and *extra* types appended."""
    from sigbpf.btf import BTFBuilder

    builder = BTFBuilder()
    for btf in btfs:
        for type_id, t in btf.types():
            builder.add(replace(type_id, t) if replace is not None else t)
    builder.add_all(extra)
    path.write_bytes(builder.encode())
    return path


def _swap_members(t, a: str, b: str):
    """*t* with members *a* and *b* trading offsets (a struct of the same size and kinds)."""
    offsets = {m.name: m.offset for m in t.members}
    members = tuple(dataclasses.replace(m, offset=offsets[b] if m.name == a else offsets[a]
                                        if m.name == b else m.offset) for m in t.members)
    return dataclasses.replace(t, members=members)


@pytest.fixture(scope="module")
def targets(corpus_btf, tmp_path_factory) -> dict[str, Path]:
    """Target kernels for libbpf: the corpus, the running kernel and derived variants."""
    from sigbpf.btf import BTF, Kind

    out_dir = tmp_path_factory.mktemp("core_targets")
    k612 = corpus_btf(f"{KERNEL_612}.btf")
    base = BTF.from_file(k612, validate=False)
    task = base.find_by_name_kind("task_struct", Kind.STRUCT)
    task_t = base[task]

    def renamed(type_id, t):
        if type_id != task:
            return t
        return dataclasses.replace(t, members=tuple(
            dataclasses.replace(m, name="tgid_renamed") if m.name == "tgid" else m for m in t.members))

    swapped = _swap_members(task_t, "pid", "tgid")
    not_flavors = [dataclasses.replace(swapped, name=name)
                   for name in ("task_struct___a___b", "task_struct____x", "task_structx___y",
                                "_task_struct___y")]
    return {
        "running": VMLINUX,
        KERNEL_61: corpus_btf(f"{KERNEL_61}.btf"),
        KERNEL_612: k612,
        "6.12-tgid-renamed": _variant([base], out_dir / "renamed.btf", replace=renamed),
        "6.12-task_struct-twice": _variant([base], out_dir / "twice.btf",
                                           extra=[dataclasses.replace(swapped, name="task_struct___dup")]),
        "6.12-not-flavors": _variant([base], out_dir / "not-flavors.btf", extra=not_flavors),
    }


LIBBPF_TARGETS = ["running", KERNEL_61, KERNEL_612, "6.12-tgid-renamed", "6.12-task_struct-twice",
                  "6.12-not-flavors"]


@pytest.mark.parametrize("target", LIBBPF_TARGETS)
@pytest.mark.parametrize("source", ["core_kinds", "core_edges"])
def test_libbpf_relocates_as_computed(kernel, bpf_object, libbpf, targets, source, target):
    """Every relocation of every program: libbpf's value, poison or failure is sigbpf's (LIBBPF)."""
    from sigbpf.btf import BTF
    from sigbpf.btf.core import CoreRules

    obj = _object(bpf_object, source)
    target_btf = BTF.from_file(targets[target], validate=False)
    kinds = set()
    for prog in obj.entry_programs:
        ours = _ours(obj, prog.name, target_btf, rules=CoreRules.LIBBPF)
        theirs = libbpf.relocate(bpf_object(source), prog.name, targets[target])
        _assert_libbpf_agrees(ours, theirs, _section_indices(obj, prog.name), f"{target} {prog.name}")
        kinds |= {(o.kind, o.code) for o in ours}
    assert len(kinds) > 3


def test_variants_change_what_they_should(bpf_object, targets):
    """The derived kernels are not the base kernel in disguise: each makes sigbpf answer
    differently where it should (the libbpf test above checks the answers themselves)."""
    from sigbpf.btf import BTF
    from sigbpf.btf.core import CoreRules

    obj = _object(bpf_object, "core_kinds")

    def answers(target: str):
        btf = BTF.from_file(targets[target], validate=False)
        return {(o.program, o.insn): o.code for p in ("fields", "loads", "types")
                for o in _ours(obj, p, btf, rules=CoreRules.LIBBPF)}

    base, renamed = answers(KERNEL_612), answers("6.12-tgid-renamed")
    twice, not_flavors = answers("6.12-task_struct-twice"), answers("6.12-not-flavors")
    assert "fails-if-reached" in set(renamed.values()) - set(base.values())
    assert "refused" in set(twice.values()) - set(base.values())
    assert not_flavors == base


def test_module_types_are_searched_when_vmlinux_has_none(kernel, bpf_object, libbpf, corpus_btf,
                                                         tmp_path):
    """xfs types come from the module's split BTF; libbpf sees the same types flattened."""
    from sigbpf.btf import BTF
    from sigbpf.btf.core import CoreRules

    vmlinux = BTF.from_file(corpus_btf(f"{KERNEL_61}.btf"), validate=False)
    xfs = BTF.parse(lzma.decompress((CORPUS / f"{KERNEL_61}.xfs.btf.xz").read_bytes()), vmlinux,
                    validate=False)
    flat = _variant([vmlinux, xfs], tmp_path / "6.1-with-xfs.btf")
    assert BTF.from_file(flat, validate=False).type_count == xfs.type_count

    obj = _object(bpf_object, "core_module")
    with_module = _ours(obj, "module_types", vmlinux, modules=[xfs], rules=CoreRules.LIBBPF)
    without = _ours(obj, "module_types", vmlinux, rules=CoreRules.LIBBPF)
    theirs = libbpf.relocate(bpf_object("core_module"), "module_types", flat)
    _assert_libbpf_agrees(with_module, theirs, _section_indices(obj, "module_types"), "6.1+xfs")
    assert [o.code for o in with_module] != [o.code for o in without]
    assert any(o.ok and o.value >= xfs.start_id for o in with_module)  # a module type id


# ----------------------------------------------------------------- the seam's contract

def test_outcomes_are_plain_picklable_data(bpf_object):
    from sigbpf.artifact.build import build_artifact
    from sigbpf.btf import BTF
    from sigbpf.btf.core import core_relocations, relocate_all

    found = core_relocations(build_artifact(bpf_object("core_edges")))
    outcomes = relocate_all(found.parse_btf(), found.relocations, BTF.load_vmlinux(), rules=found.rules)
    assert pickle.loads(pickle.dumps((found, outcomes))) == (found, outcomes)
    assert {o.code for o in outcomes} == {"relocated", "fails-if-reached", "refused"}


def test_artifact_and_object_list_the_same_relocations(bpf_object):
    from sigbpf.artifact.build import build_artifact
    from sigbpf.btf.core import CoreRules, core_relocations

    obj = _object(bpf_object, "core_kinds")
    from_object = core_relocations(obj)
    from_artifact = core_relocations(build_artifact(obj))
    assert (from_object.rules, from_artifact.rules) == (CoreRules.LIBBPF, CoreRules.KERNEL)

    def key(found):
        return sorted((r.program, r.insn, int(r.kind), r.type_id, r.access) for r in found.relocations)

    assert key(from_object) == key(from_artifact) and from_object.relocations


def test_nonsense_relocations_are_refused_not_raised(bpf_object):
    """Any type id, access string or kind: an outcome, never an exception."""
    from sigbpf.btf import BTF
    from sigbpf.btf.core import CoreRelocation, core_relocations, relocate_all

    found = core_relocations(_object(bpf_object, "core_kinds"))
    local = found.parse_btf()
    rng = random.Random(1)
    relos = []
    for n in range(400):
        access = rng.choice(["0", "", ":", "0:", "0::1", "-1", "0:1:2:3:4", "1", "0:99999",
                             ":".join(str(rng.randrange(5)) for _ in range(rng.randrange(1, 6)))])
        relos.append(CoreRelocation("p", n, rng.randrange(15), rng.randrange(-1, local.type_count + 3),
                                    access, rng.choice(found.relocations).insns))
    outcomes = relocate_all(local, relos, BTF.load_vmlinux())
    assert len(outcomes) == len(relos)
    assert any(o.refused for o in outcomes) and any(o.ok for o in outcomes)
