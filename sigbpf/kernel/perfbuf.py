"""Consumer of a BPF perf event array (``BPF_MAP_TYPE_PERF_EVENT_ARRAY``): one perf buffer per CPU.

``bpf_perf_event_output(ctx, &map, BPF_F_CURRENT_CPU, data, size)`` writes a
sample into the perf event stored at the running CPU's index of the map.
:class:`PerfBuffer` sets that up the way libbpf's ``perf_buffer__new`` does
(src/libbpf.c): for each possible CPU (at most ``max_entries`` of them; CPUs
that are offline are skipped), it opens a ``PERF_TYPE_SOFTWARE`` /
``PERF_COUNT_SW_BPF_OUTPUT`` event on that CPU (``sample_type`` RAW,
``wakeup_events`` 1) with :func:`sigbpf.kernel.perf_event.perf_event_open`,
maps its ring (one metadata page, ``struct perf_event_mmap_page``, plus
*pages* data pages, read-write), stores the event's fd in the map at key
*cpu*, enables it and adds it to an epoll set.

Reading one CPU's ring: ``data_head`` (written by the kernel) is read with an
acquire load, records are taken from ``data_tail`` up to it, each a ``struct
perf_event_header`` (``u32 type, u16 misc, u16 size``) and its body; a record
that runs past the end of the data area continues at its start (wrap-around),
and is reassembled.  ``PERF_RECORD_SAMPLE`` (9) carries ``u32 size`` and the
raw bytes: the kernel pads ``size + 4`` up to a multiple of 8, so the data handed
to ``callback(cpu, data)`` may end with up to 7 zero bytes past what the
program wrote (as with libbpf and cilium/ebpf).  ``PERF_RECORD_LOST`` (2)
carries how many samples were dropped because the ring was full:
``lost_callback(cpu, count)``.  ``data_tail`` is advanced with a release store
after each record; an exception from a callback propagates once ``data_tail``
has moved past its record.
"""

from __future__ import annotations

import select
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any

from sigbpf.elf.maps import MapType
from sigbpf.errors import KernelError
from sigbpf.kernel.shmem import PAGE_SIZE, PROT_READ, PROT_WRITE, SharedMemory
from sigbpf.kernel.syscall import Fd

__all__ = ["PerfBuffer", "SwEvent", "SampleType", "RecordType"]


class SwEvent(IntEnum):
    """``enum perf_sw_ids``: ``config`` of a ``PERF_TYPE_SOFTWARE`` event (the one used here)."""

    BPF_OUTPUT = 10


class SampleType(IntFlag):
    """``enum perf_event_sample_format`` bits of ``sample_type`` (the one used here)."""

    RAW = 1 << 10


class RecordType(IntEnum):
    """``enum perf_event_type``: ``perf_event_header.type``."""

    LOST = 2
    THROTTLE = 5
    UNTHROTTLE = 6
    SAMPLE = 9


# struct perf_event_mmap_page: the ring's positions (offsets in the metadata page).
_DATA_HEAD = 1024
_DATA_TAIL = 1032
_DATA_OFFSET = 1040
_DATA_SIZE = 1048
_HEADER = struct.Struct("=IHH")  # perf_event_header: type, misc, size
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")


@dataclass(frozen=True, slots=True)
class _CpuBuffer:
    """One CPU's perf event and its mapped ring."""

    cpu: int
    key: int
    fd: Fd
    mem: SharedMemory


class PerfBuffer:
    """Reads samples written with ``bpf_perf_event_output`` into a perf event array.

    *map_* is a :class:`~sigbpf.kernel.mapview.MapView`, an :class:`Fd` or an fd
    number of a ``PERF_EVENT_ARRAY``; *callback(cpu, data)* gets each sample,
    *lost_callback(cpu, count)* each report of dropped samples (without it the
    counts only add up in :attr:`lost`).  *pages* (a power of two) is the size
    of each CPU's data area in pages.  ``close()`` (or ``with``) removes the
    events from the map, unmaps and closes them.
    """

    def __init__(self, map_: Any, callback: Callable[[int, bytes], Any],
                 lost_callback: Callable[[int, int], Any] | None = None, pages: int = 8) -> None:
        from sigbpf.kernel.cpus import possible_cpus
        from sigbpf.kernel.perf_event import online_cpus
        from sigbpf.kernel.ringbuf import open_typed_map

        fd, self.name, info, what = open_typed_map(map_, MapType.PERF_EVENT_ARRAY, "perf buffer",
                                                   "PerfBuffer")
        if pages <= 0 or pages & (pages - 1):
            raise KernelError(f"{what}: pages must be a power of two, not {pages}")
        self.callback = callback
        self.lost_callback = lost_callback
        self.pages = pages
        #: Samples reported lost so far (PERF_RECORD_LOST), over all CPUs.
        self.lost = 0
        #: Records of other types seen (THROTTLE, ...): skipped.
        self.skipped = 0
        self._map_fd = fd
        self._what = what
        self._buffers: dict[int, _CpuBuffer] = {}
        self._epoll: select.epoll | None = select.epoll()
        ncpus = possible_cpus()
        if info.max_entries and info.max_entries < ncpus:
            ncpus = info.max_entries
        online = set(online_cpus())
        try:
            for cpu in range(ncpus):
                if cpu in online:
                    self._open_cpu(cpu)
        except BaseException:
            self.close()
            raise
        if not self._buffers:
            self.close()
            raise KernelError(f"{what}: no online CPU below max_entries {info.max_entries}")

    def _open_cpu(self, cpu: int) -> None:
        from sigbpf.kernel.maps import update_elem
        from sigbpf.kernel.perf_event import PerfType, enable, perf_event_open

        what = f"{self._what} on cpu {cpu}"
        attr = {"type": PerfType.SOFTWARE, "config": SwEvent.BPF_OUTPUT,
                "sample_type": SampleType.RAW, "sample_period": 1, "wakeup_events": 1}
        fd = perf_event_open(attr, pid=-1, cpu=cpu, what=f"opening {what} (perf_event_open)")
        try:
            mem = SharedMemory(fd.fileno(), (1 + self.pages) * PAGE_SIZE,
                               PROT_READ | PROT_WRITE, 0, what=f"{what} ring")
        except BaseException:
            fd.close()
            raise
        buf = _CpuBuffer(cpu, cpu, fd, mem)
        self._buffers[fd.fileno()] = buf
        update_elem(self._map_fd, _U32.pack(buf.key), _U32.pack(fd.fileno()),
                    what=f"{self._what} slot {buf.key}")
        enable(fd)
        self._epoll.register(fd.fileno(), select.EPOLLIN)

    @property
    def cpus(self) -> tuple[int, ...]:
        """The CPUs with a buffer."""
        return tuple(sorted(b.cpu for b in self._buffers.values()))

    def fileno(self) -> int:
        """The epoll fd: readable when some CPU's ring has data."""
        if self._epoll is None:
            raise KernelError(f"{self._what} used after close")
        return self._epoll.fileno()

    def poll(self, timeout_ms: int = -1) -> int:
        """Wait up to *timeout_ms* (-1: forever) for data, read the rings that have some;
        how many samples went to the callback."""
        if self._epoll is None:
            raise KernelError(f"{self._what} used after close")
        ready = self._epoll.poll(timeout_ms / 1000 if timeout_ms >= 0 else -1)
        return sum(self._read(self._buffers[fd]) for fd, _ in ready if fd in self._buffers)

    def consume(self) -> int:
        """Read every CPU's ring without waiting; how many samples went to the callback."""
        if self._epoll is None:
            raise KernelError(f"{self._what} used after close")
        return sum(self._read(buf) for buf in list(self._buffers.values()))

    def _read(self, buf: _CpuBuffer) -> int:
        mem = buf.mem
        head = mem.load_acquire_u64(_DATA_HEAD)
        tail = mem.load_u64(_DATA_TAIL)
        data_off = mem.load_u64(_DATA_OFFSET) or PAGE_SIZE
        data_size = mem.load_u64(_DATA_SIZE) or self.pages * PAGE_SIZE
        count = 0
        while tail < head:
            header = self._wrapped(mem, data_off, data_size, tail, _HEADER.size)
            rtype, _misc, size = _HEADER.unpack(header)
            if size < _HEADER.size or size > head - tail:
                raise KernelError(f"{self._what} on cpu {buf.cpu}: bad record of {size} bytes at "
                                  f"{tail} (head {head})")
            record = self._wrapped(mem, data_off, data_size, tail, size)
            tail += size
            try:
                if rtype == RecordType.SAMPLE:
                    (raw_size,) = _U32.unpack_from(record, _HEADER.size)
                    start = _HEADER.size + _U32.size
                    data = record[start: start + raw_size]
                    count += 1
                    self.callback(buf.cpu, data)
                elif rtype == RecordType.LOST:
                    (lost,) = _U64.unpack_from(record, _HEADER.size + 8)
                    self.lost += lost
                    if self.lost_callback is not None:
                        self.lost_callback(buf.cpu, lost)
                else:
                    self.skipped += 1
            finally:
                mem.store_release_u64(_DATA_TAIL, tail)
        return count

    @staticmethod
    def _wrapped(mem: SharedMemory, data_off: int, data_size: int, pos: int, n: int) -> bytes:
        off = pos % data_size
        first = min(n, data_size - off)
        out = mem.read(data_off + off, first)
        if first < n:
            out += mem.read(data_off, n - first)
        return out

    def close(self) -> None:
        """Remove the events from the map, unmap and close them, close the epoll fd."""
        from sigbpf.kernel.maps import delete_elem
        from sigbpf.kernel.perf_event import disable

        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        buffers, self._buffers = self._buffers, {}
        for buf in buffers.values():
            try:
                delete_elem(self._map_fd, _U32.pack(buf.key), what=self._what)
            except (KernelError, OSError):
                pass  # the map is gone or the slot was replaced: nothing of ours left in it
            disable(buf.fd)
            buf.mem.close()
            buf.fd.close()

    def __enter__(self) -> "PerfBuffer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
