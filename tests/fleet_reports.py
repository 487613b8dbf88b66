"""Fleet reports built from the model directly, with known answers, for the renderer tests.

:func:`small_report` has every :class:`Verdict` and every :class:`CheckKind`
on a few kernels (two of which answer alike, so they group);
:func:`large_report` is a thousand kernels x fifty checks whose grouping is
known by construction (the pattern repeats with the kernel's index).
"""

from __future__ import annotations

from sigbpf.fleet.model import Cell, Check, CheckKind, FleetReport, KernelResult, Verdict

SMALL_CHECKS = (
    Check(CheckKind.CORE, "tp/insn 12", "task_struct.pid (0:18)"),
    Check(CheckKind.KFUNC, "bpf_task_acquire", "prog tp, insn 4"),
    Check(CheckKind.KFUNC, "bpf_task_release", "prog tp, insn 9"),
    Check(CheckKind.PROGRAM, "tp", "tp_btf/sched_switch"),
    Check(CheckKind.ATTACH, "tp_btf/sched_switch", "prog tp"),
    Check(CheckKind.KSYM, "bpf_prog_active", "typed ksym"),
    Check(CheckKind.PROG_TYPE, "BPF_PROG_TYPE_TRACING"),
    Check(CheckKind.MAP_TYPE, "BPF_MAP_TYPE_RINGBUF"),
    Check(CheckKind.ATTACH_TYPE, "BPF_TRACE_RAW_TP"),
    Check(CheckKind.HELPER, "bpf_ringbuf_reserve"),
)

MISSING_ACQUIRE = "no FUNC named bpf_task_acquire in this kernel's BTF"
DRIFT_RELEASE = "strict: argument 1 is 'struct task_struct *' here, 'void *' in the program"
CORE_UNREACHED = "insn 12 (r1 = *(u32 *)(r1 + 2024)) fails if reached: field task_struct.pid not found"
UNREADABLE_ERROR = "could not read: truncated .deb (data.tar.xz ends at byte 1024 of 4096)"


def _cells(not_ok: dict[str, tuple[Verdict, str, str]] | None = None) -> tuple[Cell, ...]:
    """A cell for every SMALL_CHECKS check: OK, except those *not_ok* names (by check key)."""
    not_ok = not_ok or {}
    out = []
    for i, check in enumerate(SMALL_CHECKS):
        verdict, code, detail = not_ok.get(check.key, (Verdict.OK, "resolves", ""))
        out.append(Cell(check.key, verdict, code, detail, 100 + i if verdict == Verdict.OK else None))
    return tuple(out)


def small_report() -> FleetReport:
    kernels = (
        KernelResult("6.1.0-56-amd64", "k/6.1.0-56-amd64.btf", "d1", True, _cells()),
        KernelResult("6.1.0-9-amd64", "k/6.1.0-9-amd64.btf", "d2", None, _cells({
            "kfunc:bpf_task_acquire": (Verdict.FAIL, "missing", MISSING_ACQUIRE)})),
        KernelResult("6.1.0-10-amd64", "k/6.1.0-10-amd64.btf", "d3", None, _cells({
            "kfunc:bpf_task_acquire": (Verdict.FAIL, "missing", MISSING_ACQUIRE)})),
        KernelResult("6.12.95+deb12-amd64", "k/linux-image-6.12.95.deb", "d4", None, _cells({
            "kfunc:bpf_task_release": (Verdict.WARN, "drift", DRIFT_RELEASE),
            "core:tp/insn 12": (Verdict.WARN, "fails-if-reached", CORE_UNREACHED)})),
        KernelResult("5.10.0-30-amd64", "k/5.10.0-30-amd64.btf", "d5", None, _cells({
            "program:tp": (Verdict.FAIL, "rejected", "errno 22: calling kernel function is not supported"),
            "attach:tp_btf/sched_switch": (Verdict.FAIL, "missing", "no typedef btf_trace_sched_switch"),
            "ksym:bpf_prog_active": (Verdict.FAIL, "missing", "no VAR bpf_prog_active"),
            "prog_type:BPF_PROG_TYPE_TRACING": (Verdict.OK, "known", ""),
            "map_type:BPF_MAP_TYPE_RINGBUF": (Verdict.FAIL, "unknown", "not in enum bpf_map_type"),
            "attach_type:BPF_TRACE_RAW_TP": (Verdict.WARN, "kfunc-unknown", "untagged kernel"),
            "helper:bpf_ringbuf_reserve": (Verdict.FAIL, "unknown", "not in enum bpf_func_id"),
            "kfunc:bpf_task_acquire": (Verdict.FAIL, "not-kfunc", "FUNC is not in BTF_ids set"),
            "core:tp/insn 12": (Verdict.FAIL, "fails-if-reached", CORE_UNREACHED)})),
        KernelResult("broken.deb", "k/broken.deb", "", None, (), UNREADABLE_ERROR),
    )
    return FleetReport("prog.o", SMALL_CHECKS, kernels)


# The large report: 50 checks (every kind), 1,000 kernels in 5 behaviours, known by index.
LARGE_KINDS = (CheckKind.PROGRAM, *([CheckKind.KFUNC] * 20), *([CheckKind.ATTACH] * 4),
               *([CheckKind.KSYM] * 3), CheckKind.PROG_TYPE, *([CheckKind.MAP_TYPE] * 3),
               CheckKind.ATTACH_TYPE, *([CheckKind.HELPER] * 7), *([CheckKind.CORE] * 10))


def large_behaviour(index: int) -> str:
    """Which of the five behaviours kernel *index* of :func:`large_report` has."""
    if index % 250 == 249:
        return "unreadable"
    return ("ok", "ok", "missing-kfunc", "warn-core", "fail-map")[index % 5]


def large_report(n: int = 1000) -> FleetReport:
    checks = tuple(Check(kind, f"{kind.label}_{i:02d}", f"used by prog p{i % 3}")
                   for i, kind in enumerate(LARGE_KINDS))
    kernels = []
    for index in range(n):
        major, minor, patch = (5, 10, 6)[index % 3], index % 20, index
        name = f"{major}.{minor}.0-{patch}-amd64"
        behaviour = large_behaviour(index)
        if behaviour == "unreadable":
            kernels.append(KernelResult(name, f"fleet/{name}.btf.tar.xz", error="could not read: not BTF"))
            continue
        cells = []
        for i, check in enumerate(checks):
            verdict, code, detail = Verdict.OK, "resolves", ""
            if behaviour == "missing-kfunc" and check.kind == CheckKind.KFUNC and i % 4 == 1:
                verdict, code, detail = Verdict.FAIL, "missing", f"no FUNC named {check.name}"
            elif behaviour == "warn-core" and check.kind == CheckKind.CORE and i % 2 == 0:
                verdict, code, detail = Verdict.WARN, "fails-if-reached", f"{check.name}: field gone"
            elif behaviour == "fail-map" and check.kind == CheckKind.MAP_TYPE:
                verdict, code, detail = Verdict.FAIL, "unknown", "not in enum bpf_map_type"
            cells.append(Cell(check.key, verdict, code, detail, i))
        kernels.append(KernelResult(name, f"fleet/{name}.btf.tar.xz", f"{index:064x}", None, tuple(cells)))
    return FleetReport("fleet.o", checks, tuple(kernels))
