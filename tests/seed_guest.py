"""Measurements that run *inside* the seed test kernel (tests/test_seed_kernel.py boots it).

Plain functions, no pytest: the host runs ``python -c "import seed_guest; ..."`` in
the guest (testbench.vm.run_python) and asserts on the JSON that :func:`main`
prints as its last line. Each function loads real programs into the guest's
kernel and returns what the kernel answered next to what sigbpf predicted
(``resolve_kfunc_calls`` against the guest's own /sys/kernel/btf/vmlinux).

* :func:`facts`            release, the probe, the BTF-side rule, the vmlinux BTF hash;
* :func:`cli_loads`        ``sigbpf load OBJ --resolution kernel|auto|userspace --run --json``;
* :func:`cli_resolve`      ``sigbpf resolve ARTIFACT --json`` (the probe's answer, the digest);
* :func:`kernel_choices`   the vmlinux ids the kernel chose (verifier log and xlated
                           instructions) against sigbpf's prediction, both paths;
* :func:`digest`           which digest ``excl_prog_hash`` and ``prog->tag`` are over
                           when the kernel rewrites the calls itself;
* :func:`weak_dead_path`   a missing kfunc on a dead path, src_reg 3 left to the kernel;
* :func:`seed_failures`    each of the seed's refusals as the kernel logs it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as errno_mod
import io
import json
import os
import re
import struct
import sys

#: Two kfuncs every seed kernel has and syscall programs may call.
LOCK, UNLOCK = "bpf_rcu_read_lock", "bpf_rcu_read_unlock"
#: A name no kernel has.
MISSING = "bpf_sigbpf_no_such_kfunc"
LOG_SIZE = 1 << 22


# ------------------------------------------------------------------ helpers

def vmlinux():
    from sigbpf.btf.spec import BTF

    return BTF.load_vmlinux()


@contextlib.contextmanager
def verifier_logs(level: int = 2):
    """Every BPF_PROG_LOAD in the block runs with a log at *level*; the logs go to the list yielded.

    (sigbpf asks for a log only after a refusal; the ids the kernel chose are in the log of a
    load that succeeded, as ``(85) call NAME#ID`` lines, which 7.3 prints at level 2 only.)
    """
    import sigbpf.kernel.program as program
    from sigbpf.errors import KernelError
    from sigbpf.kernel.log import decode_log

    logs: list[str] = []
    original = program.with_log_retry

    def always(attempt):
        buf = ctypes.create_string_buffer(LOG_SIZE)
        try:
            fd = attempt(buf, level)
        except KernelError as err:
            err.log = decode_log(buf)
            logs.append(err.log)
            raise
        logs.append(decode_log(buf))
        return fd

    program.with_log_retry = always
    try:
        yield logs
    finally:
        program.with_log_retry = original


def kallsyms() -> dict[int, str]:
    out = {}
    with open("/proc/kallsyms") as fh:
        for line in fh:
            addr, _kind, name = line.split()[:3]
            out.setdefault(int(addr, 16), name)
    return out


def xlated_kfunc_names(xlated: bytes, symbols: dict[int, str]) -> list[str]:
    """Names of the kfuncs the xlated program calls: ``__bpf_call_base + imm`` (x86-64 JIT)."""
    from sigbpf.asm import Instruction
    from sigbpf.asm.opcodes import CALL_CODE, PseudoCall

    base = next(a for a, n in symbols.items() if n == "__bpf_call_base")
    return [symbols.get(base + i.imm, f"?{base + i.imm:#x}") for i in Instruction.decode(xlated)
            if i.code == CALL_CODE and i.src == PseudoCall.KFUNC_CALL]


def log_kfunc_calls(log: str, names: set[str]) -> list[list]:
    """``[name, id]`` of the ``(85) call NAME#ID`` lines of a verifier log for a kfunc in *names*,
    each pair once, in the order of first appearance (level 2 prints an insn several times)."""
    pairs = [(m.group(1), int(m.group(2))) for m in re.finditer(r"\(85\) call (\w+)#(\d+)", log)
             if m.group(1) in names]
    return [list(pair) for pair in dict.fromkeys(pairs)]


def masked(xlated: bytes) -> str:
    """xlated instructions with map ids zeroed (they differ between loads), as hex."""
    from sigbpf.asm import Instruction
    from sigbpf.asm.opcodes import LD_IMM64_CODE

    insns = Instruction.decode(xlated)
    for i, insn in enumerate(insns):
        if insn.code == LD_IMM64_CODE and insn.src != 0:
            insns[i] = insn.replace(imm=0)
    return Instruction.encode(insns).hex()


def prog_btf(*names: str) -> tuple[bytes, dict[str, int]]:
    """A program BTF: ``int seed_main(void)`` (for func_info) and ``void NAME(void)`` per name.

    Returns the raw BTF and name -> FUNC id (plus "seed_main", "int", "void_proto").
    """
    from sigbpf.btf import BTFBuilder, FuncLinkage, IntEncoding
    from sigbpf.btf.types import Func, FuncProto, Int

    b = BTFBuilder()
    ids = {"int": b.add(Int("int", 4, IntEncoding.SIGNED))}
    ids["main_proto"] = b.add(FuncProto(ids["int"], ()))
    ids["seed_main"] = b.add(Func("seed_main", ids["main_proto"], FuncLinkage.GLOBAL))
    ids["void_proto"] = b.add(FuncProto(0, ()))
    for name in names:
        ids[name] = b.add(Func(name, ids["void_proto"], FuncLinkage.GLOBAL))
    return b.encode(), ids


def load_raw(insns, raw_btf: bytes | None, main_id: int | None, *, fd_array=(), name="seed"):
    """Load a sleepable syscall program; (fd or None, errno, verifier log). *main_id*: func_info."""
    from sigbpf.asm import Instruction
    from sigbpf.errors import KernelError
    from sigbpf.kernel.btf import load_btf
    from sigbpf.kernel.program import ProgFlags, ProgLoad, ProgType, load_program

    btf_fd = load_btf(raw_btf, what="test program BTF") if raw_btf is not None else None
    try:
        req = ProgLoad(ProgType.SYSCALL, Instruction.encode(list(insns)), name=name,
                       flags=ProgFlags.SLEEPABLE,
                       prog_btf_fd=btf_fd.fileno() if btf_fd is not None else None,
                       func_info=struct.pack("<II", 0, main_id) if main_id is not None else b"",
                       fd_array=tuple(fd_array))
        with verifier_logs() as logs:
            try:
                fd = load_program(req)
            except KernelError as err:
                return None, err.errno, err.log or ""
        return fd, 0, logs[-1]
    finally:
        if btf_fd is not None:
            btf_fd.close()


def predict(insns, raw_btf: bytes | None, vm) -> dict:
    """sigbpf's pass over *insns*: ok, errno, log, the ids."""
    from sigbpf.btf.spec import BTF
    from sigbpf.resolve.resolver import resolve_kfunc_calls

    res = resolve_kfunc_calls(list(insns), BTF.parse(raw_btf) if raw_btf is not None else None, vm)
    return {"ok": res.ok, "errno": res.errno or 0, "log": list(res.log),
            "calls": [[c.name, c.btf_id] for c in res.calls], "insns": res.insns}


# ------------------------------------------------------------------ measurements

def facts() -> dict:
    import hashlib

    from sigbpf.kernel.probe import run_probe
    from sigbpf.resolve.native import native_prog_btf

    probe = run_probe()
    with open("/sys/kernel/btf/vmlinux", "rb") as fh:
        raw = fh.read()
    return {"release": os.uname().release, "probe_native": probe.native, "probe_detail": probe.detail,
            "btf_rule": native_prog_btf(vmlinux()), "vmlinux_sha256": hashlib.sha256(raw).hexdigest(),
            "pid": os.getpid()}


def cli_loads(objects: dict[str, str], modes=("kernel", "auto", "userspace")) -> dict:
    """``sigbpf load OBJ --resolution MODE --run --ctx {pid, 10} --json``, in this process."""
    from sigbpf.cli.main import main

    ctx = struct.pack("<ii", os.getpid(), 10).hex()
    out: dict[str, dict] = {}
    for name, obj in objects.items():
        for mode in modes:
            stdout, stderr = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                rc = main(["load", obj, "--resolution", mode, "--run", "--ctx", ctx, "--json"])
            doc = json.loads(stdout.getvalue()) if rc == 0 else None
            out[f"{name}/{mode}"] = {"rc": rc, "doc": doc, "stderr": stderr.getvalue()}
    return {"pid": os.getpid(), "loads": out}


def cli_resolve(obj: str) -> dict:
    """``sigbpf build OBJ`` then ``sigbpf resolve ARTIFACT --json`` against this running kernel."""
    import tempfile

    from sigbpf.cli.main import main

    with tempfile.TemporaryDirectory() as tmp:
        art = os.path.join(tmp, "a.sbpf")
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["build", obj, "-o", art]) == 0
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            rc = main(["resolve", art, "--json"])
    doc = json.loads(stdout.getvalue())
    return {"rc": rc, "native_prog_btf": doc["native_prog_btf"],
            "excl_prog_hash": doc["excl_prog_hash"], "calls": doc["calls"]}


def kernel_choices(objects: dict[str, str]) -> dict:
    """Per program: the ids in the native load's verifier log, the kfuncs its xlated code calls,
    sigbpf's prediction, and whether native and userspace xlated code are the same."""
    from sigbpf.artifact.build import build_from_file
    from sigbpf.btf.spec import BTF
    from sigbpf.kernel.info import prog_info
    from sigbpf.kernel.loader import load_artifact
    from sigbpf.resolve.binding import bind_sites, lookup_kfuncs
    from sigbpf.resolve.digest import prog_tag
    from sigbpf.resolve.resolver import resolve_kfunc_calls

    vm = vmlinux()
    symbols = kallsyms()
    out = {}
    for name, obj in objects.items():
        art = build_from_file(obj)
        (prog,) = art.programs
        bound = bind_sites(prog, lookup_kfuncs(art, vm))
        res = resolve_kfunc_calls(bound, BTF.parse(art.btf), vm)
        names = {c.name for c in res.calls}
        per = {"predicted": [[c.name, c.btf_id] for c in res.calls], "ok": res.ok}
        for path in ("kernel", "userspace"):
            with verifier_logs() as logs, load_artifact(art, resolution=path) as loaded:
                outcome = loaded.report.programs[0]
                per[path] = {"loaded": outcome.loaded, "error": outcome.error}
                if outcome.loaded:
                    info = prog_info(loaded.prog_fds[prog.name])
                    per[path].update(
                        log_calls=log_kfunc_calls(logs[-1], names),
                        xlated_names=xlated_kfunc_names(info.xlated_insns, symbols),
                        xlated=masked(info.xlated_insns), tag=info.tag.hex())
        per["tag_sent"] = prog_tag(bound).hex()              # src_reg 3, prog-BTF ids
        per["tag_resolved"] = prog_tag(res.insns).hex()      # src_reg 2, vmlinux ids
        out[name] = per
    return out


def digest() -> dict:
    """A src_reg 3 program bound to an exclusive map: which digest the kernel compares and tags.

    The map is created with ``excl_prog_hash`` = the digest of either the instructions as sent
    (src_reg 3, prog-BTF ids) or as the kernel rewrites them (src_reg 2, vmlinux ids, sigbpf's
    prediction); the program reads the map through ``MAP_IDX_VALUE`` (fd_array, bound after
    ``bpf_prog_calc_tag()``) and returns its value.
    """
    from sigbpf.asm import PseudoCall, PseudoLdImm64, Size, call_kfunc, exit_, ld_imm64, ldx_mem
    from sigbpf.kernel.info import prog_info
    from sigbpf.kernel.maps import MapType, create_map, update_elem
    from sigbpf.kernel.run import run_program
    from sigbpf.resolve.digest import prog_sha256, prog_tag

    raw, ids = prog_btf(LOCK, UNLOCK)
    insns = [call_kfunc(ids[LOCK], PseudoCall.KFUNC_CALL_PROG_BTF),
             call_kfunc(ids[UNLOCK], PseudoCall.KFUNC_CALL_PROG_BTF),
             *ld_imm64(1, PseudoLdImm64.MAP_IDX_VALUE, 0), ldx_mem(Size.DW, 0, 1, 0), exit_()]
    pred = predict(insns, raw, vmlinux())
    digests = {"sent": prog_sha256(insns), "resolved": prog_sha256(pred["insns"])}
    out = {"tag_sent": prog_tag(insns).hex(), "tag_resolved": prog_tag(pred["insns"]).hex(),
           "predicted_calls": pred["calls"]}
    for which, digest_ in digests.items():
        with create_map(MapType.ARRAY, 4, 8, 1, name="excl", excl_prog_hash=digest_) as m:
            update_elem(m, bytes(4), struct.pack("<q", 4242))
            fd, err, log = load_raw(insns, raw, ids["seed_main"], fd_array=(m.fileno(),))
            entry = {"errno": err, "log_tail": log.strip().splitlines()[-3:] if log else []}
            if fd is not None:
                with fd:
                    info = prog_info(fd)
                    entry.update(tag=info.tag.hex(), retval=run_program(fd, bytes(8)).retval,
                                 log_calls=log_kfunc_calls(log, {LOCK, UNLOCK}))
            out[which] = entry
    return out


def weak_dead_path(weak_object: str) -> dict:
    """A kfunc the kernel lacks, called only on a path the verifier proves dead.

    * ``hand``: ``r1 = 0; if r1 == 0 goto +1; call MISSING (src_reg 3); r0 = 0; exit``;
    * ``poisoned``: the same with libbpf's poisoned call in place of the src_reg 3 call;
    * ``artifact``: tests/progs/kfunc_weak.c as sigbpf binds it (``bpf_ksym_exists`` -> 0) but
      with the missing kfunc's call left as src_reg 3 for the kernel;
    * ``artifact_bound``: the same program as sigbpf's loader sends it (call poisoned).
    """
    from sigbpf.artifact.build import build_from_file
    from sigbpf.artifact.format import KfuncSiteKind
    from sigbpf.asm import Instruction, JmpOp, PseudoCall, call_kfunc, exit_, jmp_imm, mov64_imm
    from sigbpf.asm.opcodes import CALL_CODE
    from sigbpf.errors import KernelError
    from sigbpf.kernel.btf import load_btf
    from sigbpf.kernel.program import ProgLoad, load_program
    from sigbpf.kernel.run import run_program
    from sigbpf.resolve.binding import POISON_CALL_KFUNC_BASE, bind_sites, lookup_kfuncs

    vm = vmlinux()
    out = {}
    raw, ids = prog_btf(MISSING)
    for label, call in (("hand", call_kfunc(ids[MISSING], PseudoCall.KFUNC_CALL_PROG_BTF)),
                        ("poisoned", Instruction(CALL_CODE, 0, 0, 0, POISON_CALL_KFUNC_BASE))):
        insns = [mov64_imm(1, 0), jmp_imm(JmpOp.JEQ, 1, 0, 1), call, mov64_imm(0, 7), exit_()]
        fd, err, log = load_raw(insns, raw, ids["seed_main"])
        out[label] = {"errno": err, "log_tail": log.strip().splitlines()[-2:],
                      "retval": run_program(fd, bytes(8)).retval if fd is not None else None,
                      "predicted": {k: v for k, v in predict(insns, raw, vm).items() if k != "insns"}}
        if fd is not None:
            fd.close()

    art = build_from_file(weak_object)
    (prog,) = art.programs
    bound = bind_sites(prog, lookup_kfuncs(art, vm))
    unpoisoned = list(bound)
    missing = [k.name for k in art.kfuncs if k.name == MISSING]
    for site in prog.kfunc_sites:
        if site.kind == KfuncSiteKind.CALL and art.kfuncs[site.kfunc].name == MISSING:
            unpoisoned[site.insn] = prog.insns[site.insn]
    for label, insns in (("artifact", unpoisoned), ("artifact_bound", bound)):
        with load_btf(art.btf) as btf_fd:
            req = ProgLoad(prog.prog_type, Instruction.encode(insns), license=prog.license,
                           name=prog.name, flags=prog.prog_flags, prog_btf_fd=btf_fd.fileno(),
                           func_info=prog.func_info_bytes, line_info=prog.line_info_bytes,
                           core_relos=prog.core_relo_bytes)
            try:
                with load_program(req) as fd:
                    out[label] = {"errno": 0, "retval": run_program(fd, bytes(8)).retval, "log_tail": []}
            except KernelError as err:
                out[label] = {"errno": err.errno, "log_tail": (err.log or "").strip().splitlines()[-2:]}
        from sigbpf.btf.spec import BTF
        from sigbpf.resolve.resolver import resolve_kfunc_calls

        res = resolve_kfunc_calls(insns, BTF.parse(art.btf), vm)
        out[label]["predicted"] = {"ok": res.ok, "errno": res.errno or 0, "log": list(res.log)}
    out["missing"] = missing
    return out


def seed_failures() -> dict:
    """Each refusal of the seed's pass, and its neighbours, as this kernel answers them."""
    from sigbpf.asm import Instruction, PseudoCall, call_kfunc, exit_, mov64_imm
    from sigbpf.asm.opcodes import CALL_CODE, InsnClass, JmpOp, Source

    vm = vmlinux()
    raw, ids = prog_btf(LOCK, UNLOCK, MISSING, "kallsyms_lookup_name")
    count = raw_type_count(raw)
    src3 = PseudoCall.KFUNC_CALL_PROG_BTF
    jmp32_call = int(InsnClass.JMP32) | int(JmpOp.CALL) | int(Source.K)
    cases = {
        # name: (instructions, with func_info (prog BTF attached), with prog_btf_fd at all)
        "ok": ([call_kfunc(ids[LOCK], src3), call_kfunc(ids[UNLOCK], src3)], True, True),
        "prog_btf_fd_without_func_info": ([call_kfunc(ids[LOCK], src3)], False, True),
        "no_prog_btf": ([call_kfunc(ids[LOCK], src3)], False, False),
        "off_nonzero": ([call_kfunc(ids[LOCK], src3, off=1)], True, True),
        "imm_zero": ([call_kfunc(0, src3)], True, True),
        "imm_negative": ([call_kfunc(-5, src3)], True, True),
        "imm_past_last_type": ([call_kfunc(count + 1, src3)], True, True),
        "imm_func_proto": ([call_kfunc(ids["void_proto"], src3)], True, True),
        "name_not_in_vmlinux": ([call_kfunc(ids[MISSING], src3)], True, True),
        "second_call_fails": ([call_kfunc(ids[LOCK], src3), call_kfunc(ids[MISSING], src3)],
                              True, True),
        "not_a_kfunc": ([call_kfunc(ids["kallsyms_lookup_name"], src3)], True, True),
        "jmp32_call_src3": ([Instruction(jmp32_call, 0, src3, 0, ids[LOCK])], True, True),
        "dst_reg_nonzero": ([Instruction(CALL_CODE, 1, src3, 0, ids[LOCK])], True, True),
    }
    out = {}
    for name, (calls, func_info, with_btf) in cases.items():
        insns = [*calls, mov64_imm(0, 0), exit_()]
        fd, err, log = load_raw(insns, raw if with_btf else None,
                                ids["seed_main"] if func_info else None)
        if fd is not None:
            fd.close()
        pred = predict(insns, raw if func_info else None, vm)
        lines = [line for line in log.splitlines() if line.strip()]
        out[name] = {"errno": err, "errno_name": errno_mod.errorcode.get(err, "") if err else "",
                     "log": lines[:80], "seed_lines": [line for line in lines
                                                            if line.startswith("kfunc call insn ")],
                     "predicted": {k: v for k, v in pred.items() if k != "insns"}}
    # A nameless FUNC never gets that far: BPF_BTF_LOAD refuses it (the seed's check 3).
    from sigbpf.btf import BTFBuilder, FuncLinkage
    from sigbpf.btf.types import Func, FuncProto
    from sigbpf.errors import KernelError
    from sigbpf.kernel.btf import load_btf

    b = BTFBuilder()
    b.add(Func("", b.add(FuncProto(0, ())), FuncLinkage.GLOBAL))
    try:
        load_btf(b.encode()).close()
        out["nameless_func_btf_load"] = {"errno": 0, "log_tail": []}
    except KernelError as err:
        out["nameless_func_btf_load"] = {"errno": err.errno,
                                         "log_tail": (err.log or "").strip().splitlines()[-1:]}
    return out


def raw_type_count(raw: bytes) -> int:
    from sigbpf.btf.spec import BTF

    return BTF.parse(raw).type_count


def main(spec: dict[str, list]) -> None:
    """Run each measurement named in *spec* with its arguments; print one JSON line {name: result}."""
    out = {name: globals()[name](*args) for name, args in spec.items()}
    sys.stdout.write("\n" + json.dumps(out) + "\n")
