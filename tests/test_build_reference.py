"""`sigbpf build` against the real tools: libbpf 1.1 (through ctypes), bpftool and the kernel.

* the program BTF is the BTF libbpf loads for the same object (byte for
  byte, ``btf__raw_data``; and as bpftool prints it);
* the linked instructions are libbpf's final instructions
  (``bpf_program__insns`` after ``bpf_object__load``) once map fds and kernel
  BTF ids are mapped back to map indexes and kfunc names, and CO-RE
  instructions (libbpf patches them, the kernel patches ours) are masked;
* map names and order are libbpf's;
* the artifacts load and run in this kernel through sigbpf's loader with the
  expected return values, bind the same kfunc ids libbpf resolves, and the
  kernel keeps as many func_info / line_info records as for libbpf's load.
"""

from __future__ import annotations

import ctypes
import os
import struct
import subprocess

import pytest

from conftest import BPFTOOL
from sigbpf.artifact.build import build_from_file
from libbpf_ref import vmlinux as libbpf_btf
from sigbpf.artifact.format import Artifact, KfuncSiteKind
from sigbpf.asm import Instruction, PseudoCall, PseudoLdImm64
from sigbpf.btf import BTF, Kind
from sigbpf.errors import NotFoundError

PROGS = ("kfunc_task", "kfunc_rcu_maps", "kfunc_iter", "kfunc_cpumask", "kfunc_obj_new",
         "kfunc_weak", "build_link")
#: Objects compared with libbpf but not run: the object reader's test program with one
#: program of each type, minus those this kernel refuses to load without a target
#: (fentry/fexit: EPERM here; lsm: needs the BPF LSM).
COMPARED_ONLY = {"elf_progs": ("prog_fentry", "prog_fexit_s", "prog_lsm"),
                 # format 1.1: kconfig externs, map fix-ups, slots, attach targets
                 "kconfig_system": (), "bind_maps": ("on_missing",)}

#: libbpf's poison_kfunc_call: a missing weak kfunc's call becomes helper call 2002000000 + i.
POISON_CALL_KFUNC_BASE = 2002000000


class LibbpfObject:
    """A BPF object opened and loaded by libbpf (the reference loader)."""

    _sigs = [
        ("bpf_object__open_file", ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_void_p]),
        ("bpf_object__load", ctypes.c_int, [ctypes.c_void_p]),
        ("bpf_program__set_autoload", ctypes.c_int, [ctypes.c_void_p, ctypes.c_bool]),
        ("bpf_program__autoload", ctypes.c_bool, [ctypes.c_void_p]),
        ("bpf_object__close", None, [ctypes.c_void_p]),
        ("bpf_object__btf", ctypes.c_void_p, [ctypes.c_void_p]),
        ("btf__raw_data", ctypes.c_void_p, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)]),
        ("bpf_object__find_program_by_name", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]),
        ("bpf_program__insns", ctypes.c_void_p, [ctypes.c_void_p]),
        ("bpf_program__insn_cnt", ctypes.c_size_t, [ctypes.c_void_p]),
        ("bpf_program__fd", ctypes.c_int, [ctypes.c_void_p]),
        ("bpf_object__next_map", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p]),
        ("bpf_map__name", ctypes.c_char_p, [ctypes.c_void_p]),
        ("bpf_map__fd", ctypes.c_int, [ctypes.c_void_p]),
    ]

    def __init__(self, path, skip: tuple[str, ...] = ()) -> None:
        lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
        for name, restype, argtypes in self._sigs:
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        self.lib = lib
        self.obj = lib.bpf_object__open_file(str(path).encode(), None)
        assert self.obj, f"libbpf cannot open {path}"
        for name in skip:
            lib.bpf_program__set_autoload(self._prog(name), False)
        rc = lib.bpf_object__load(self.obj)
        assert rc == 0, f"libbpf cannot load {path}: {rc}"

    def close(self) -> None:
        self.lib.bpf_object__close(self.obj)

    def btf_bytes(self) -> bytes:
        size = ctypes.c_uint32()
        ptr = self.lib.btf__raw_data(self.lib.bpf_object__btf(self.obj), ctypes.byref(size))
        return ctypes.string_at(ptr, size.value)

    def _prog(self, name: str) -> int:
        prog = self.lib.bpf_object__find_program_by_name(self.obj, name.encode())
        assert prog, name
        return prog

    def insns(self, name: str) -> list[Instruction]:
        prog = self._prog(name)
        count = self.lib.bpf_program__insn_cnt(prog)
        return Instruction.decode(ctypes.string_at(self.lib.bpf_program__insns(prog), 8 * count))

    def loaded(self, name: str) -> bool:
        return bool(self.lib.bpf_program__autoload(self._prog(name)))

    def prog_fd(self, name: str) -> int:
        return self.lib.bpf_program__fd(self._prog(name))

    def maps(self) -> list[tuple[str, int]]:
        out, m = [], None
        while True:
            m = self.lib.bpf_object__next_map(self.obj, m)
            if not m:
                return out
            out.append((self.lib.bpf_map__name(m).decode(), self.lib.bpf_map__fd(m)))


@pytest.fixture(scope="module")
def built(bpf_object):
    return {name: (bpf_object(name), build_from_file(bpf_object(name)))
            for name in (*PROGS, *COMPARED_ONLY)}


@pytest.fixture(scope="module")
def libbpf_objects(kernel, built):
    objs = {name: LibbpfObject(path, COMPARED_ONLY.get(name, ())) for name, (path, _) in built.items()}
    yield objs
    for obj in objs.values():
        obj.close()


@pytest.fixture(scope="module")
def vmlinux():
    return BTF.load_vmlinux()


@pytest.mark.parametrize("name", (*PROGS, *COMPARED_ONLY))
def test_program_btf_is_what_libbpf_loads(name, built, libbpf_objects):
    _, art = built[name]
    assert art.btf == libbpf_objects[name].btf_bytes()


def test_program_btf_as_bpftool_prints_it(kernel, built, tmp_path):
    """bpftool's view: `btf dump file` of our BTF == `btf dump id` of what libbpf loaded."""
    if not os.path.ismount("/sys/fs/bpf"):
        subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=False)
    pin = f"/sys/fs/bpf/sigbpf-build-test-{os.getpid()}"
    path, art = built["kfunc_rcu_maps"]
    try:
        subprocess.run([BPFTOOL, "prog", "loadall", str(path), pin], check=True,
                       capture_output=True, text=True)
        show = subprocess.run([BPFTOOL, "prog", "show", "pinned", f"{pin}/rcu_maps", "--json"],
                              check=True, capture_output=True, text=True).stdout
        import json

        btf_id = json.loads(show)["btf_id"]
        theirs = subprocess.run([BPFTOOL, "btf", "dump", "id", str(btf_id)], check=True,
                                capture_output=True, text=True).stdout
    finally:
        subprocess.run(["rm", "-rf", pin], check=False)
    ours_file = tmp_path / "prog.btf"
    ours_file.write_bytes(art.btf)
    ours = subprocess.run([BPFTOOL, "btf", "dump", "file", str(ours_file)], check=True,
                          capture_output=True, text=True).stdout
    assert ours == theirs
    assert "DATASEC '.ksyms' size=8 vlen=2" in ours and "VAR 'dummy_ksym'" in ours


def _in_kernel(vmlinux: BTF, name: str, cache: dict[str, bool] = {}) -> bool:
    """Whether this kernel's BTF has a FUNC *name* (cached)."""
    if name not in cache:
        try:
            vmlinux.find_by_name_kind(name, Kind.FUNC)
            cache[name] = True
        except NotFoundError:
            cache[name] = False
    return cache[name]


def _normalize_ours(art: Artifact, prog, vmlinux: BTF) -> list[tuple]:
    """Our instructions with map indexes as map names and kfunc FUNC ids as kfunc names;
    a kfunc this kernel lacks shows as absent, as libbpf binds it."""
    btf = BTF.parse(art.btf)
    core = {r.insn_off // 8 for r in prog.core_relos}
    out: list[tuple] = []
    second = False
    for i, insn in enumerate(prog.insns):
        if second:
            second = False
            out.append(("slot2", insn.imm))
            continue
        second = insn.is_ld_imm64
        if i in core:
            out.append(("core", insn.code, insn.dst, insn.src))
        elif second and insn.src == PseudoLdImm64.MAP_IDX:
            out.append(("map", insn.dst, art.maps[insn.imm].name))
        elif second and insn.src == PseudoLdImm64.MAP_IDX_VALUE:
            out.append(("map_value", insn.dst, art.maps[insn.imm].name))
        elif second and insn.src == PseudoLdImm64.BTF_ID:
            name = btf[insn.imm].name
            out.append(("ksym", insn.dst, name if _in_kernel(vmlinux, name) else None))
        elif insn.is_call and insn.src == PseudoCall.KFUNC_CALL_PROG_BTF:
            name = btf[insn.imm].name
            out.append(("kfunc", name if _in_kernel(vmlinux, name) else "poisoned"))
        else:
            out.append(("insn", insn.code, insn.dst, insn.src, insn.off, insn.imm))
    return out


def _normalize_libbpf(insns: list[Instruction], fds: dict[int, str], core: set[int],
                      ksym_sites: set[int], vmlinux: BTF) -> list[tuple]:
    """libbpf's final instructions in the same terms (fds -> map names, ids -> names)."""
    out: list[tuple] = []
    second = False
    for i, insn in enumerate(insns):
        if second:
            second = False
            out.append(("slot2", insn.imm))
            continue
        second = insn.is_ld_imm64
        if i in core:
            out.append(("core", insn.code, insn.dst, insn.src))
        elif second and insn.src == PseudoLdImm64.MAP_FD:
            out.append(("map", insn.dst, fds[insn.imm]))
        elif second and insn.src == PseudoLdImm64.MAP_VALUE:
            out.append(("map_value", insn.dst, fds[insn.imm]))
        elif second and insn.src == PseudoLdImm64.BTF_ID:
            out.append(("ksym", insn.dst, vmlinux.name_of(insn.imm)))
        elif second and i in ksym_sites and insn.src == 0 and insn.imm == 0:
            out.append(("ksym", insn.dst, None))  # a missing weak kfunc's address: 0
        elif insn.is_call and insn.src == PseudoCall.KFUNC_CALL and insn.imm == 0:
            out.append(("kfunc", "poisoned"))  # libbpf 1.1 marks a missing weak kfunc imm 0
        elif insn.is_call and insn.src == PseudoCall.KFUNC_CALL:
            out.append(("kfunc", vmlinux.name_of(insn.imm)))
        elif insn.is_call and insn.src == 0 and insn.imm >= POISON_CALL_KFUNC_BASE:
            out.append(("kfunc", "poisoned"))  # libbpf >= 1.2: poison_kfunc_call
        else:
            out.append(("insn", insn.code, insn.dst, insn.src, insn.off, insn.imm))
    return out


@pytest.mark.parametrize("name", (*PROGS, *COMPARED_ONLY))
def test_linked_instructions_are_libbpfs(name, built, libbpf_objects, vmlinux):
    _, art = built[name]
    ref = libbpf_objects[name]
    fds = {fd: map_name for map_name, fd in ref.maps()}
    # inner-map prototypes (format 1.1) are ours: libbpf keeps them inside the outer map
    assert [m.name for m in art.maps if not m.inner_template] == [map_name for map_name, _ in ref.maps()]
    compared = 0
    for prog in art.programs:
        if not ref.loaded(prog.name):
            continue  # libbpf relocates only the programs it loads
        compared += 1
        theirs = ref.insns(prog.name)
        assert len(theirs) == len(prog.insns), prog.name
        core = {r.insn_off // 8 for r in prog.core_relos}
        ksym_sites = {s.insn for s in prog.kfunc_sites if s.kind == KfuncSiteKind.KSYM_ADDR}
        assert _normalize_ours(art, prog, vmlinux) == _normalize_libbpf(
            theirs, fds, core, ksym_sites, vmlinux)
    assert compared >= len(art.programs) - len(COMPARED_ONLY.get(name, ())) - 1


EXPECTED = {  # program -> (ctx n, expected return value); task_lookup returns the pid
    "task_lookup": (0, None), "rcu_maps": (0, 1142), "iter_sum": (10, 45),
    "cpumask_roundtrip": (0, 1), "obj_new_local": (0, 42), "weak_kfuncs": (0, 1),
    "link_a": (10, 69), "link_b": (10, 60),
}


def _func_line_counts(fd: int) -> tuple[int, int]:
    from sigbpf.kernel import attr as A
    from sigbpf.kernel.syscall import Cmd, bpf

    info = A.PROG_INFO.pack()
    bpf(Cmd.OBJ_GET_INFO_BY_FD,
        A.OBJ_INFO.pack(bpf_fd=fd, info_len=A.PROG_INFO.size, info=ctypes.addressof(info)),
        what="prog info")
    values = A.PROG_INFO.unpack(info)
    return values["nr_func_info"], values["nr_line_info"]


@pytest.mark.parametrize("name", PROGS)
def test_artifacts_load_and_run_here(name, built, libbpf_objects, kernel, vmlinux):
    """End to end: build once, load with sigbpf's loader, run, compare with libbpf's load."""
    from sigbpf.kernel.loader import load_artifact

    _, art = built[name]
    art = Artifact.decode(art.encode())  # what a loader reads from disk
    ref = libbpf_objects[name]
    pid = os.getpid()
    for prog in art.programs:
        n, expected = EXPECTED[prog.name]
        ctx = struct.pack("<ii", pid, n)
        with load_artifact(art, run=True, ctx=ctx, vmlinux=vmlinux) as loaded:
            outcome = {p.name: p for p in loaded.report.programs}[prog.name]
            assert outcome.loaded, outcome.log
            assert outcome.retval == (pid if expected is None else expected), outcome
            ours = _func_line_counts(int(loaded.prog_fds[prog.name]))
            assert ours == _func_line_counts(ref.prog_fd(prog.name))
            assert ours[0] == len(prog.func_info)
            # the kfunc ids bound are the ones libbpf resolves for the same names
            for binding in loaded.report.kfuncs:
                if binding.btf_id:
                    assert binding.btf_id == libbpf_btf().func_id(binding.name)


def test_record_units_are_the_kernels(built, kernel, vmlinux):
    """func_info/line_info insn_off count instructions, core_relo insn_off counts bytes: the
    kernel itself refuses the other unit (verifier messages quoted from this kernel)."""
    import dataclasses

    from sigbpf.artifact.format import CoreRelo, FuncInfo
    from sigbpf.kernel.loader import load_artifact

    def refusal(art: Artifact, prog) -> str:
        changed = dataclasses.replace(art, programs=(prog,))
        with load_artifact(changed, run=False, vmlinux=vmlinux) as loaded:
            outcome = loaded.report.programs[0]
        assert not outcome.loaded
        return outcome.log

    _, task = built["kfunc_task"]
    prog = task.programs[0]
    in_slots = tuple(CoreRelo(r.insn_off // 8, r.type_id, r.access_str_off, r.kind)
                     for r in prog.core_relos)
    first = in_slots[0].insn_off
    assert (f"Invalid core_relo[0].insn_off:{first} prog->len:{len(prog.insns)}"
            in refusal(task, dataclasses.replace(prog, core_relos=in_slots)))

    _, iters = built["kfunc_iter"]
    prog = iters.programs[0]
    in_bytes = tuple(FuncInfo(8 * r.insn_off, r.type_id) for r in prog.func_info)
    assert ("func_info BTF section doesn't match subprog layout in BPF program"
            in refusal(iters, dataclasses.replace(prog, func_info=in_bytes)))
    lines_in_bytes = tuple(dataclasses.replace(r, insn_off=8 * r.insn_off) for r in prog.line_info)
    assert "missing bpf_line_info for func#1" in refusal(
        iters, dataclasses.replace(prog, line_info=lines_in_bytes))


def test_each_program_btf_fixup_is_one_the_kernel_needs(built, kernel):
    """Undo one fixup at a time (docs/FORMAT.md 4.3): the kernel refuses the BTF, in its words."""
    from dataclasses import replace

    from sigbpf.btf import BTFBuilder
    from sigbpf.btf.kinds import FuncLinkage
    from sigbpf.errors import KernelError
    from sigbpf.kernel.btf import load_btf

    _, art = built["kfunc_task"]
    btf = BTF.parse(art.btf)
    types = [t for _, t in btf.types()]
    func_id = btf.find_by_name_kind("bpf_task_from_pid", Kind.FUNC)
    func = types[func_id - 1]
    ksyms_id = btf.find_by_name_kind(".ksyms", Kind.DATASEC)
    license_id = btf.find_by_name_kind("license", Kind.DATASEC)

    def load(changes: dict[int, object]) -> str:
        builder = BTFBuilder()
        for type_id, t in enumerate(types, start=1):
            builder.add(changes.get(type_id, t))
        try:
            load_btf(builder.encode()).close()
        except KernelError as err:
            return err.log
        return "accepted"

    assert load({}) == "accepted"
    assert "FUNC bpf_task_from_pid type_id=" in load(
        {func_id: replace(func, linkage=FuncLinkage.EXTERN)})
    assert "Invalid func linkage" in load({func_id: replace(func, linkage=FuncLinkage.EXTERN)})
    proto = types[func.type - 1]
    unnamed = replace(proto, params=tuple(replace(p, name="") for p in proto.params))
    assert "Invalid arg#1" in load({func.type: unnamed})
    ksyms = types[ksyms_id - 1]
    funcs_in_ksyms = replace(ksyms, vars=tuple(replace(v, type=func_id) for v in ksyms.vars))
    assert "Not a VAR kind member" in load({ksyms_id: funcs_in_ksyms})
    assert "size == 0" in load({license_id: replace(types[license_id - 1], size=0)})
