"""Ring buffer and perf buffer consumers on real kernel events.

tests/progs/events_exec.c runs on the ``sched/sched_process_exec`` tracepoint
and sends a ``struct event`` (pid, comm, filename, cpu) through a ring buffer
(after a reserved-then-discarded record the consumer must skip) and through a
perf event array declared, as real tools declare it, without max_entries.
The tests exec /bin/true and find that process's record, with its contents.
tests/progs/events_ringrun.c feeds a one-page ring buffer from a syscall program
(BPF_PROG_RUN) for the consumer's corner cases: wrap-around, discards,
BPF_RB_NO_WAKEUP, a callback that raises.

The tracepoint is attached with a local helper (perf_event_open of the
tracepoint, PERF_EVENT_IOC_SET_BPF, PERF_EVENT_IOC_ENABLE) so these tests do
not depend on sigbpf's attach code.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import subprocess
import time
from pathlib import Path

import pytest

from sigbpf.errors import KernelError
from sigbpf.kernel.mapview import MapView
from sigbpf.kernel.perfbuf import PerfBuffer
from sigbpf.kernel.ringbuf import RingBuffer

pytestmark = pytest.mark.usefixtures("kernel")

EVENT = struct.Struct("<QIIII16s64s")  # struct event of events_exec.c
EVENT_MAGIC = 0x5349474250460001
TRUE = "/bin/true"


def parse(data: bytes) -> dict:
    magic, pid, tgid, cpu, seq, comm, filename = EVENT.unpack_from(data)
    assert magic == EVENT_MAGIC, data[:16].hex()
    return {"pid": pid, "tgid": tgid, "cpu": cpu, "seq": seq,
            "comm": comm.split(b"\0")[0], "filename": filename.split(b"\0")[0]}


@pytest.fixture(scope="module")
def tracefs() -> Path:
    path = Path("/sys/kernel/tracing")
    if not (path / "events").is_dir():
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(path)], check=True)
    return path


@contextlib.contextmanager
def attached(prog_fd, tracefs: Path, category: str, name: str):
    """The program on tracepoint category/name: perf_event_open + SET_BPF + ENABLE."""
    from sigbpf.kernel.perf_event import PerfType, perf_event_open

    tp_id = int((tracefs / "events" / category / name / "id").read_text())
    event = perf_event_open({"type": PerfType.TRACEPOINT, "config": tp_id, "sample_period": 1,
                             "wakeup_events": 1}, pid=-1, cpu=0)
    try:
        fcntl.ioctl(event.fileno(), 0x40042408, prog_fd.fileno())  # PERF_EVENT_IOC_SET_BPF
        fcntl.ioctl(event.fileno(), 0x2400, 0)  # PERF_EVENT_IOC_ENABLE
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.ioctl(event.fileno(), 0x2401, 0)  # PERF_EVENT_IOC_DISABLE
        event.close()


def run_true(cpu: int | None = None) -> int:
    """Exec /bin/true (on *cpu* if given); its pid."""
    pre = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    proc = subprocess.Popen([TRUE], preexec_fn=pre)
    assert proc.wait() == 0
    return proc.pid


def wait_for(poll, found, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not found():
        assert time.monotonic() < deadline, "the event did not arrive"
        poll(100)


def views(loaded) -> dict[str, MapView]:
    from test_kernel_mapview import map_views

    return map_views(loaded)


@pytest.fixture
def load(bpf_object):
    from sigbpf.artifact.build import build_artifact
    from sigbpf.kernel.loader import load_artifact

    opened = []

    def load_(name: str, *cflags: str):
        la = load_artifact(build_artifact(bpf_object(name, *cflags)))
        opened.append(la)
        assert la.report.ok, [p.error for p in la.report.programs]
        return la

    yield load_
    for la in opened:
        la.close()


def test_ring_buffer_exec_event(load, tracefs) -> None:
    la = load("events_exec")
    maps = views(la)
    records: list[bytes] = []
    with RingBuffer(maps["rb"], records.append) as rb, \
            attached(la.prog_fds["on_exec"], tracefs, "sched", "sched_process_exec"):
        pid = run_true()
        wait_for(rb.poll, lambda: any(parse(r)["tgid"] == pid for r in records))
        rb.consume()
        assert rb.consumer_pos == rb.producer_pos
    (mine,) = [parse(r) for r in records if parse(r)["tgid"] == pid]
    assert mine["pid"] == pid and mine["comm"] == b"true" and mine["filename"] == TRUE.encode()
    # Every exec also reserved and discarded a 24-byte record: none reached the callback.
    assert all(len(r) == EVENT.size for r in records)


def test_perf_buffer_exec_event_real_world_map(load, tracefs) -> None:
    """The perf event array has no max_entries in the source: the loader gives it one
    slot per possible CPU, and PerfBuffer opens a buffer on each online one."""
    from sigbpf.kernel.cpus import possible_cpus
    from sigbpf.kernel.info import map_info
    from sigbpf.kernel.perf_event import online_cpus

    la = load("events_exec")
    maps = views(la)
    assert maps["perf_events"].spec.max_entries == 0  # as declared
    assert map_info(maps["perf_events"].fd).max_entries == possible_cpus()
    assert maps["perf_events"].max_entries == possible_cpus()  # MapView asks the kernel
    samples: list[tuple[int, bytes]] = []
    with PerfBuffer(maps["perf_events"], lambda cpu, data: samples.append((cpu, data))) as pb, \
            attached(la.prog_fds["on_exec"], tracefs, "sched", "sched_process_exec"):
        assert pb.cpus == tuple(c for c in online_cpus() if c < possible_cpus())
        pids = {cpu: run_true(cpu) for cpu in pb.cpus}
        wait_for(pb.poll, lambda: set(pids.values()) <= {parse(d)["tgid"] for _, d in samples})
    for cpu, pid in pids.items():
        (found,) = [(c, parse(d), d) for c, d in samples if parse(d)["tgid"] == pid]
        got_cpu, event, data = found
        assert got_cpu == cpu == event["cpu"]  # the sample came through that CPU's buffer
        assert event["comm"] == b"true" and event["filename"] == TRUE.encode()
        # The kernel pads the raw sample (u32 size + data) to 8 bytes: 104 + 4 -> 108 bytes.
        assert len(data) == 108 and data[EVENT.size:] == b"\0" * 4
    assert pb.lost == 0


def test_perf_buffer_fewer_slots_than_cpus(load, tracefs) -> None:
    """max_entries 1: one buffer, on CPU 0 (libbpf caps the CPUs at max_entries)."""
    la = load("events_exec", "-DPERF_MAX_ENTRIES=1")
    samples: list[tuple[int, bytes]] = []
    with PerfBuffer(views(la)["perf_events"], lambda c, d: samples.append((c, d))) as pb, \
            attached(la.prog_fds["on_exec"], tracefs, "sched", "sched_process_exec"):
        assert pb.cpus == (0,)
        pid = run_true(0)
        wait_for(pb.poll, lambda: any(parse(d)["tgid"] == pid for _, d in samples))


def test_perf_buffer_wraps_and_reports_lost(load, tracefs) -> None:
    """A one-page buffer: 120-byte records straddle its end (reassembled); left unread it
    fills up, and the kernel reports the dropped samples (PERF_RECORD_LOST) with the next
    one that fits."""
    la = load("events_exec", "-DPERF_MAX_ENTRIES=1")
    samples: list[bytes] = []
    lost: list[tuple[int, int]] = []
    with PerfBuffer(views(la)["perf_events"].fd, lambda c, d: samples.append(d),
                    lambda cpu, n: lost.append((cpu, n)), pages=1) as pb, \
            attached(la.prog_fds["on_exec"], tracefs, "sched", "sched_process_exec"):
        pids = []
        for _ in range(40):  # 40 * 120 bytes > 4096: wraps around
            pids.append(run_true(0))
            pb.poll(0)
        wait_for(pb.poll, lambda: pids[-1] in {parse(d)["tgid"] for d in samples})
        assert set(pids) <= {parse(d)["tgid"] for d in samples}
        assert lost == []
        for _ in range(50):  # unread: the ring fills
            run_true(0)
        pb.consume()
        pid = run_true(0)
        wait_for(pb.poll, lambda: pid in {parse(d)["tgid"] for d in samples})
    assert lost and all(cpu == 0 for cpu, _ in lost)
    assert pb.lost == sum(n for _, n in lost) >= 50 - 4096 // 120


def _emit(la, seq: int, size: int, discard: bool = False, flags: int = 0) -> None:
    from sigbpf.kernel.run import run_program

    ret = run_program(la.prog_fds["emit"], struct.pack("<IIII", seq, size, discard, flags))
    assert ret.retval == 0, ret


def _check_record(data: bytes) -> int:
    seq, size = struct.unpack_from("<II", data)
    assert len(data) == size
    assert data[8:] == bytes((seq + j) & 0xFF for j in range(size - 8))
    return seq


def test_ring_buffer_wraps_and_skips_discarded(load) -> None:
    la = load("events_ringrun")
    records: list[bytes] = []
    with RingBuffer(views(la)["small_rb"], records.append) as rb:
        assert rb.size == 4096
        expected = []
        for seq in range(120):
            discard = seq % 7 == 3
            _emit(la, seq, 8 + (seq * 37) % 248, discard)
            if not discard:
                expected.append(seq)
            if seq % 5 == 4:
                rb.poll(0)
        rb.consume()
        assert rb.producer_pos > 3 * rb.size  # the ring wrapped around several times
        assert rb.consumer_pos == rb.producer_pos
    assert [_check_record(r) for r in records] == expected


def test_ring_buffer_no_wakeup_and_limit(load) -> None:
    la = load("events_ringrun")
    records: list[bytes] = []
    with RingBuffer(views(la)["small_rb"].fd, records.append) as rb:  # an Fd works too
        _emit(la, 1, 16, flags=1)  # BPF_RB_NO_WAKEUP: no epoll wakeup, poll() consumes anyway
        _emit(la, 2, 16, flags=1)
        assert rb.poll(0) == 2
        for seq in (3, 4, 5):
            _emit(la, seq, 24)
        assert rb.consume(limit=1) == 1
        assert rb.available() == 2 * 32
        assert rb.consume() == 2
        assert rb.poll(10) == 0
    assert [_check_record(r) for r in records] == [1, 2, 3, 4, 5]


def test_ring_buffer_callback_error_propagates_after_the_record(load) -> None:
    la = load("events_ringrun")
    seen: list[int] = []

    def callback(data: bytes) -> None:
        seen.append(_check_record(data))
        if len(seen) == 1:
            raise ValueError("stop")

    with RingBuffer(views(la)["small_rb"].fd.fileno(), callback) as rb:  # and an int fd
        for seq in (1, 2, 3):
            _emit(la, seq, 32)
        with pytest.raises(ValueError):
            rb.consume()
        assert rb.consumer_pos < rb.producer_pos  # the first record is consumed, not the rest
        assert rb.consume() == 2
    assert seen == [1, 2, 3]


def test_wrong_map_types_and_closed_use(load) -> None:
    la = load("events_ringrun")
    maps = views(la)
    with pytest.raises(KernelError) as err:
        RingBuffer(maps["scratch"], print)
    assert "ring buffer 'scratch': map is ARRAY, not RINGBUF" in str(err.value)
    with pytest.raises(KernelError) as err:
        PerfBuffer(maps["small_rb"], print)
    assert "perf buffer 'small_rb': map is RINGBUF, not PERF_EVENT_ARRAY" in str(err.value)
    rb = RingBuffer(maps["small_rb"], print)
    rb.close()
    rb.close()
    with pytest.raises(KernelError) as err:
        rb.consume()
    assert "used after close" in str(err.value)
