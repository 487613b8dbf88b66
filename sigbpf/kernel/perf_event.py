"""perf events for BPF: ``perf_event_open()`` for kprobes, uprobes, tracepoints and samples.

kprobe, uprobe and tracepoint programs run when a perf event fires; sigbpf
opens the event here and then attaches the program to it with
``BPF_LINK_CREATE`` (attach type ``BPF_PERF_EVENT``), as libbpf does on
kernels that have perf links (5.15+): the link can be pinned and keeps the
event alive.  What the kernel needs:

* **kprobe / kretprobe**: the dynamic PMU ``kprobe``
  (``/sys/bus/event_source/devices/kprobe/type``), ``config1`` = address of
  the function name, ``config2`` = offset; a kretprobe sets the bit named in
  ``.../kprobe/format/retprobe`` (``config:0``).  A kernel built without
  ``CONFIG_KPROBES`` has no such PMU.
* **uprobe / uretprobe**: the PMU ``uprobe``, ``config1`` = path of the
  binary, ``config2`` = file offset of the function.
* **tracepoint**: ``PERF_TYPE_TRACEPOINT``, ``config`` = the id in
  ``<tracefs>/events/<category>/<name>/id``.

Like libbpf, probes and tracepoints are opened with ``pid = -1, cpu = 0``
(a tracing event fires on every CPU whatever its ``cpu``), with
``PERF_FLAG_FD_CLOEXEC``.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import fcntl
import os
import platform
import re
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from sigbpf.errors import KernelError, NotFoundError
from sigbpf.kernel import attr as A
from sigbpf.kernel.syscall import Fd, raw_syscall, strerror

__all__ = ["PerfType", "PerfSample", "PERF_EVENT_ATTR", "perf_event_open", "probe_pmu_type",
           "retprobe_bit", "kprobe_event", "uprobe_event", "tracepoint_event", "tracefs",
           "tracepoint_id", "sample_event", "enable", "disable", "online_cpus",
           "PERF_EVENT_NAMES"]

#: __NR_perf_event_open per architecture.
_NR_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "riscv64": 241, "ppc64le": 319,
                       "s390x": 331}

PERF_FLAG_FD_CLOEXEC = 8
#: ioctls (include/uapi/linux/perf_event.h): _IO('$', 0), _IO('$', 1), _IOW('$', 8, __u32).
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_EVENT_IOC_SET_BPF = 0x40042408

#: The bits of ``struct perf_event_attr``'s u64 flag word (offset 40) that sigbpf sets.
ATTR_FLAG_DISABLED = 1 << 0
ATTR_FLAG_FREQ = 1 << 10

#: ``struct perf_event_attr`` up to ``config2`` (``PERF_ATTR_SIZE_VER1``, 72 bytes): the
#: kernel accepts any published size and zero-fills the rest.
PERF_EVENT_ATTR = A.Layout("perf_event_attr", 72, {
    "type": A.Field(0, 4), "size": A.Field(4, 4), "config": A.Field(8, 8),
    "sample_period": A.Field(16, 8), "sample_freq": A.Field(16, 8),
    "sample_type": A.Field(24, 8), "read_format": A.Field(32, 8), "flags": A.Field(40, 8),
    "wakeup_events": A.Field(48, 4), "bp_type": A.Field(52, 4),
    "config1": A.Field(56, 8), "kprobe_func": A.Field(56, 8), "uprobe_path": A.Field(56, 8),
    "config2": A.Field(64, 8), "kprobe_addr": A.Field(64, 8), "probe_offset": A.Field(64, 8),
})

PMU_DIR = Path("/sys/bus/event_source/devices")
TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))


class PerfType(IntEnum):
    """``enum perf_type_id``."""

    HARDWARE = 0
    SOFTWARE = 1
    TRACEPOINT = 2
    HW_CACHE = 3
    RAW = 4
    BREAKPOINT = 5


#: Event names for ``--perf-event`` (``perf list`` spells them the same): (type, config).
PERF_EVENT_NAMES: dict[str, tuple[PerfType, int]] = {
    "cpu-cycles": (PerfType.HARDWARE, 0), "cycles": (PerfType.HARDWARE, 0),
    "instructions": (PerfType.HARDWARE, 1), "cache-references": (PerfType.HARDWARE, 2),
    "cache-misses": (PerfType.HARDWARE, 3), "branch-instructions": (PerfType.HARDWARE, 4),
    "branch-misses": (PerfType.HARDWARE, 5), "bus-cycles": (PerfType.HARDWARE, 6),
    "cpu-clock": (PerfType.SOFTWARE, 0), "task-clock": (PerfType.SOFTWARE, 1),
    "page-faults": (PerfType.SOFTWARE, 2), "context-switches": (PerfType.SOFTWARE, 3),
    "cpu-migrations": (PerfType.SOFTWARE, 4), "minor-faults": (PerfType.SOFTWARE, 5),
    "major-faults": (PerfType.SOFTWARE, 6),
}


@dataclass(frozen=True, slots=True)
class PerfSample:
    """A sampling event for ``perf_event`` programs: type, config, and either a frequency
    (samples per second, ``freq``) or a period (every N events)."""

    type: int
    config: int
    frequency: int = 0
    period: int = 0
    name: str = ""

    @classmethod
    def parse(cls, spec: str) -> "PerfSample":
        """``NAME[:freq=HZ|:period=N]`` or ``TYPE:CONFIG[:...]`` (numbers); default 99 Hz."""
        from sigbpf.errors import UsageError

        parts = spec.split(":")
        if parts[0] in PERF_EVENT_NAMES:
            ptype, config = PERF_EVENT_NAMES[parts[0]]
            rest = parts[1:]
        else:
            try:
                ptype, config = int(parts[0], 0), int(parts[1], 0)
            except (ValueError, IndexError):
                names = ", ".join(sorted(PERF_EVENT_NAMES))
                raise UsageError(f"--perf-event {spec!r}: not an event name ({names}) "
                                 f"nor TYPE:CONFIG") from None
            rest = parts[2:]
        frequency, period = 99, 0
        for item in rest:
            key, _, value = item.partition("=")
            try:
                number = int(value, 0)
            except ValueError:
                number = -1
            if key not in ("freq", "period") or number <= 0:
                raise UsageError(f"--perf-event {spec!r}: {item!r} is not freq=HZ or period=N")
            frequency, period = (number, 0) if key == "freq" else (0, number)
        return cls(int(ptype), config, frequency, period, spec)


def _nr() -> int:
    try:
        return _NR_PERF_EVENT_OPEN[platform.machine()]
    except KeyError:
        raise KernelError(f"perf_event_open() syscall number unknown for "
                          f"{platform.machine()}") from None


def perf_event_open(fields: dict[str, int], *, pid: int = -1, cpu: int = 0,
                    what: str = "perf_event_open") -> Fd:
    """``perf_event_open(&attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC)``: the event's fd."""
    buf = PERF_EVENT_ATTR.pack(size=PERF_EVENT_ATTR.size, **fields)
    fd, err = raw_syscall(_nr(), buf, ctypes.c_int(pid), ctypes.c_int(cpu), ctypes.c_int(-1),
                          ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        raise KernelError(f"{what}: {strerror(err)}", errno=err)
    return Fd(fd, "perf_event")


def _read_int(path: Path, pattern: str) -> int:
    text = path.read_text()
    match = re.fullmatch(pattern, text.strip())
    if match is None:
        raise KernelError(f"{path}: unexpected content {text.strip()!r}")
    return int(match.group(1))


def probe_pmu_type(kind: str) -> int:
    """The dynamic PMU type of ``kprobe`` or ``uprobe`` (NotFoundError when the kernel has none)."""
    path = PMU_DIR / kind / "type"
    try:
        return _read_int(path, r"(\d+)")
    except FileNotFoundError:
        config = "CONFIG_KPROBES" if kind == "kprobe" else "CONFIG_UPROBE_EVENTS"
        raise NotFoundError(f"this kernel has no {kind} PMU ({path} does not exist: "
                            f"built without {config}?)", errno=errno_mod.ENOENT) from None


def retprobe_bit(kind: str) -> int:
    """The ``config`` bit that makes a kprobe/uprobe a return probe (``config:0`` → 0)."""
    return _read_int(PMU_DIR / kind / "format" / "retprobe", r"config:(\d+)")


def kprobe_event(function: str, offset: int = 0, *, retprobe: bool = False,
                 what: str = "") -> Fd:
    """A kprobe (or kretprobe) perf event on *function* + *offset*."""
    keep = ctypes.create_string_buffer(function.encode())
    config = 1 << retprobe_bit("kprobe") if retprobe else 0
    return perf_event_open({"type": probe_pmu_type("kprobe"), "config": config,
                            "config1": ctypes.addressof(keep), "config2": offset},
                           pid=-1, cpu=0, what=what or f"perf_event_open(kprobe {function})")


def uprobe_event(path: str, offset: int, *, retprobe: bool = False, pid: int = -1,
                 what: str = "") -> Fd:
    """A uprobe (or uretprobe) perf event at file *offset* of the binary *path*."""
    keep = ctypes.create_string_buffer(os.fsencode(path))
    config = 1 << retprobe_bit("uprobe") if retprobe else 0
    return perf_event_open({"type": probe_pmu_type("uprobe"), "config": config,
                            "config1": ctypes.addressof(keep), "config2": offset},
                           pid=pid, cpu=0 if pid == -1 else -1,
                           what=what or f"perf_event_open(uprobe {path}:{offset:#x})")


def tracefs() -> Path:
    """Where tracefs is mounted (/sys/kernel/tracing, else the debugfs copy)."""
    for path in TRACEFS_CANDIDATES:
        if (path / "events").is_dir():
            return path
    raise NotFoundError("tracefs is not mounted (neither /sys/kernel/tracing nor "
                        "/sys/kernel/debug/tracing has events/)", errno=errno_mod.ENOENT)


def tracepoint_id(category: str, name: str) -> int:
    """The id of tracepoint *category*/*name* (``<tracefs>/events/CAT/NAME/id``)."""
    path = tracefs() / "events" / category / name / "id"
    try:
        return _read_int(path, r"(\d+)")
    except FileNotFoundError:
        raise NotFoundError(f"no tracepoint {category}/{name} ({path} does not exist)",
                            errno=errno_mod.ENOENT) from None


def tracepoint_event(category: str, name: str, *, what: str = "") -> Fd:
    """A perf event on tracepoint *category*/*name*."""
    return perf_event_open({"type": PerfType.TRACEPOINT, "config": tracepoint_id(category, name)},
                           pid=-1, cpu=0, what=what or f"perf_event_open(tracepoint {category}/{name})")


def sample_event(sample: PerfSample, cpu: int, *, what: str = "") -> Fd:
    """A sampling event on *cpu* for every process (what ``perf_event`` programs attach to)."""
    flags = ATTR_FLAG_FREQ if sample.frequency else 0
    return perf_event_open({"type": sample.type, "config": sample.config, "flags": flags,
                            "sample_period": sample.frequency or sample.period},
                           pid=-1, cpu=cpu, what=what or f"perf_event_open({sample.name}, cpu {cpu})")


def online_cpus() -> list[int]:
    """The online CPUs (``/sys/devices/system/cpu/online``: ``0-3,6``)."""
    text = Path("/sys/devices/system/cpu/online").read_text().strip()
    cpus: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def enable(fd: Fd | int) -> None:
    """``PERF_EVENT_IOC_ENABLE``."""
    try:
        fcntl.ioctl(int(fd), PERF_EVENT_IOC_ENABLE, 0)
    except OSError as err:
        raise KernelError(f"enabling perf event (PERF_EVENT_IOC_ENABLE): {strerror(err.errno)}",
                          errno=err.errno) from None


def disable(fd: Fd | int) -> None:
    """``PERF_EVENT_IOC_DISABLE`` (errors ignored: the event goes away anyway)."""
    try:
        fcntl.ioctl(int(fd), PERF_EVENT_IOC_DISABLE, 0)
    except OSError:
        pass
