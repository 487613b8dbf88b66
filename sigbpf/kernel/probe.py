"""Does the running kernel resolve ``BPF_PSEUDO_KFUNC_CALL_PROG_BTF`` (src_reg 3) itself?

The probe loads a tiny ``BPF_PROG_TYPE_SYSCALL`` program whose only calls
are ``call`` with ``src_reg = 3`` and ``imm`` = the id of a FUNC named
``bpf_rcu_read_lock`` / ``bpf_rcu_read_unlock`` in a two-function program BTF
(built with :class:`sigbpf.btf.BTFBuilder`, loaded with BPF_BTF_LOAD).

* It loads, or the verifier answers with one of the seed's own
  ``kfunc call insn %d: ...`` lines: the kernel has the resolution pass
  (native = True).
* ``BPF_CALL uses reserved fields`` (EINVAL): a kernel without the seed, such
  as 6.18 (native = False).
* Anything else (no permission, no BTF support) is a KernelError: the loader
  cannot go on either way.

The answer is cached for the process.
"""

from __future__ import annotations

from dataclasses import dataclass

from sigbpf.errors import KernelError

#: What the verifier of a kernel without the seed says about src_reg 3.
RESERVED_FIELDS = "BPF_CALL uses reserved fields"
#: The prefix of every log line of the seed's resolution pass.
SEED_LOG_PREFIX = "kfunc call insn "
#: The kfuncs the probe calls: present in vmlinux since 6.2, allowed in syscall programs.
PROBE_KFUNCS = ("bpf_rcu_read_lock", "bpf_rcu_read_unlock")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """``native``: the kernel resolves src_reg 3 itself; ``detail``: why we think so."""

    native: bool
    detail: str


_cached: ProbeResult | None = None


def probe_program() -> tuple[bytes, bytes]:
    """(instruction bytes, raw program BTF) of the probe."""
    from sigbpf.asm import Instruction, PseudoCall, call_kfunc, exit_, mov64_imm
    from sigbpf.btf import BTFBuilder, Func, FuncLinkage, FuncProto

    b = BTFBuilder()
    proto = b.add(FuncProto(0, ()))
    # GLOBAL, not EXTERN: BPF_BTF_LOAD refuses extern FUNCs ('Invalid func linkage', 6.18).
    ids = [b.add(Func(name, proto, FuncLinkage.GLOBAL)) for name in PROBE_KFUNCS]
    insns = Instruction.encode([call_kfunc(ids[0], PseudoCall.KFUNC_CALL_PROG_BTF),
                                call_kfunc(ids[1], PseudoCall.KFUNC_CALL_PROG_BTF),
                                mov64_imm(0, 0), exit_()])
    return insns, b.encode()


def interpret(log: str | None) -> ProbeResult | None:
    """What the probe's outcome means: *log* None = it loaded; else the verifier's log.

    None when the log says neither (the caller reports the kernel's error).
    """
    if log is None:
        return ProbeResult(True, "kernel loaded a src_reg 3 kfunc call")
    if RESERVED_FIELDS in log:
        return ProbeResult(False, f"kernel answers '{RESERVED_FIELDS}' for src_reg 3")
    seed_lines = [line for line in log.splitlines() if line.startswith(SEED_LOG_PREFIX)]
    if seed_lines:
        return ProbeResult(True, f"kernel resolves src_reg 3 (probe refused later: {seed_lines[0]})")
    return None


def run_probe() -> ProbeResult:
    """Ask the kernel (uncached)."""
    from sigbpf.kernel.btf import load_btf
    from sigbpf.kernel.program import ProgFlags, ProgLoad, ProgType, load_program

    insns, raw_btf = probe_program()
    with load_btf(raw_btf, what="probe program BTF") as btf_fd:
        req = ProgLoad(ProgType.SYSCALL, insns, name="sigbpf_probe", flags=ProgFlags.SLEEPABLE,
                       prog_btf_fd=btf_fd.fileno())
        try:
            load_program(req).close()
        except KernelError as err:
            result = interpret(err.log)
            if result is None:
                raise KernelError(f"cannot probe PROG_BTF kfunc support: {err.message}",
                                  errno=err.errno, log=err.log) from None
            return result
    result = interpret(None)
    assert result is not None
    return result


def kernel_resolves_prog_btf() -> ProbeResult:
    """The probe's answer, asked once per process."""
    global _cached
    if _cached is None:
        _cached = run_probe()
    return _cached
