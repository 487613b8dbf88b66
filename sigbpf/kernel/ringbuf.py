"""Consumer of a BPF ring buffer (``BPF_MAP_TYPE_RINGBUF``): records to a Python callback.

The kernel's ring buffer (kernel/bpf/ringbuf.c) is shared through ``mmap`` of
the map fd, the way libbpf's ``ring_buffer__new`` (src/ringbuf.c) uses it:

* page 0, the **consumer page**, mapped read-write: ``consumer_pos`` (u64),
  which only user space writes;
* from page 1, read-only: the **producer page** (``producer_pos``, u64), then the
  data pages, ``max_entries`` bytes mapped *twice* back to back (the mapping is
  ``page + 2 * max_entries`` long), so a record that wraps around the end of
  the ring reads as one contiguous run of bytes.

Each record starts with an 8-byte header: ``u32 len`` whose bit 31 is BUSY
(reserved, not committed yet) and bit 30 DISCARD (committed with
``bpf_ringbuf_discard``), then ``u32 pgoff`` (for the kernel).  The record takes
``len + 8`` bytes rounded up to 8.  The consumer reads ``producer_pos`` with an
acquire load, each header's ``len`` with an acquire load (it pairs with the
kernel's ``xchg`` at commit), stops at the first BUSY record, hands every
record that is not discarded to the callback (a copy: ``bytes``), and
advances ``consumer_pos`` with a release store after each record, so the
kernel can reuse the space.

``poll(timeout_ms)`` waits on an epoll set holding the map fd (the kernel wakes
it on commit) and consumes; ``consume()`` consumes without waiting.  Both
return the number of records handed to the callback.  An exception from the
callback propagates after ``consumer_pos`` has moved past its record.
"""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Any

from sigbpf.elf.maps import MapType
from sigbpf.errors import KernelError
from sigbpf.kernel.shmem import PAGE_SIZE, PROT_READ, PROT_WRITE, SharedMemory
from sigbpf.kernel.syscall import Fd

__all__ = ["RingBuffer", "BUSY_BIT", "DISCARD_BIT", "HDR_SIZE"]

BUSY_BIT = 1 << 31  # BPF_RINGBUF_BUSY_BIT
DISCARD_BIT = 1 << 30  # BPF_RINGBUF_DISCARD_BIT
HDR_SIZE = 8  # BPF_RINGBUF_HDR_SZ
_LEN_MASK = DISCARD_BIT - 1


def record_span(header_len: int) -> int:
    """Bytes a record with header word *header_len* takes in the ring (header included)."""
    return ((header_len & _LEN_MASK) + HDR_SIZE + 7) // 8 * 8


def map_fd_and_name(map_: Any, user: str = "RingBuffer") -> tuple[int, str]:
    """The fd number and name (may be "") of a MapView, an Fd or an fd number."""
    from sigbpf.kernel.mapview import MapView

    if isinstance(map_, MapView):
        return map_.fd.fileno(), map_.name
    if isinstance(map_, Fd):
        return map_.fileno(), ""
    if isinstance(map_, int) and not isinstance(map_, bool):
        return map_, ""
    raise TypeError(f"{user} takes a MapView, an Fd or an int fd, not {type(map_).__name__}")


def open_typed_map(map_: Any, expected: MapType, what: str, user: str):
    """(fd, name, map info, label) of *map_*, a KernelError unless it is an *expected* map;
    *what* names the consumer in messages ("ring buffer" / "perf buffer")."""
    from sigbpf.kernel.info import map_info

    fd, name = map_fd_and_name(map_, user)
    info = map_info(fd)
    name = name or info.name
    label = f"{what} {name!r}"
    if info.type != expected:
        try:
            kind = MapType(info.type).name
        except ValueError:
            kind = str(info.type)
        raise KernelError(f"{label}: map is {kind}, not {expected.name}")
    return fd, name, info, label


class RingBuffer:
    """Reads the records of one ``BPF_MAP_TYPE_RINGBUF`` map: ``callback(data: bytes)`` each.

    *map_* is a :class:`~sigbpf.kernel.mapview.MapView`, an :class:`Fd` or an fd
    number; the fd stays the caller's.  Use as a context manager, or call
    :meth:`close`.
    """

    def __init__(self, map_: Any, callback: Callable[[bytes], Any]) -> None:
        fd, self.name, info, what = open_typed_map(map_, MapType.RINGBUF, "ring buffer",
                                                   "RingBuffer")
        size = info.max_entries
        if size <= 0 or size & (size - 1) or size % PAGE_SIZE:
            raise KernelError(f"{what}: max_entries {size} is not a power-of-2 multiple of "
                              f"the page size ({PAGE_SIZE})")
        self.callback = callback
        self.size = size
        self._mask = size - 1
        self._fd = fd
        self._consumer: SharedMemory | None = None
        self._producer: SharedMemory | None = None
        self._epoll: select.epoll | None = None
        try:
            self._consumer = SharedMemory(fd, PAGE_SIZE, PROT_READ | PROT_WRITE, 0,
                                          what=f"{what} consumer page")
            self._producer = SharedMemory(fd, PAGE_SIZE + 2 * size, PROT_READ, PAGE_SIZE,
                                          what=f"{what} producer and data pages")
            self._epoll = select.epoll()
            self._epoll.register(fd, select.EPOLLIN)
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        """The epoll fd: readable when a record is ready (for callers' own event loops)."""
        if self._epoll is None:
            raise KernelError(f"ring buffer {self.name!r} used after close")
        return self._epoll.fileno()

    @property
    def consumer_pos(self) -> int:
        return self._pages()[0].load_acquire_u64(0)

    @property
    def producer_pos(self) -> int:
        return self._pages()[1].load_acquire_u64(0)

    def available(self) -> int:
        """Bytes committed or reserved and not consumed yet."""
        return self.producer_pos - self.consumer_pos

    def _pages(self) -> tuple[SharedMemory, SharedMemory]:
        if self._consumer is None or self._producer is None:
            raise KernelError(f"ring buffer {self.name!r} used after close")
        return self._consumer, self._producer

    def poll(self, timeout_ms: int = -1) -> int:
        """Wait up to *timeout_ms* (-1: forever) for a record, then consume; records handed over."""
        self._pages()
        try:
            self._epoll.poll(timeout_ms / 1000 if timeout_ms >= 0 else -1)
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
            pass
        return self.consume()

    def consume(self, limit: int | None = None) -> int:
        """Hand every committed record (at most *limit*) to the callback; how many were."""
        consumer, producer = self._pages()
        count = 0
        cons = consumer.load_acquire_u64(0)
        while True:
            got_new = False
            prod = producer.load_acquire_u64(0)
            while cons < prod:
                start = PAGE_SIZE + (cons & self._mask)
                header = producer.load_acquire_u32(start)
                if header & BUSY_BIT:
                    return count
                got_new = True
                length = header & _LEN_MASK
                if record_span(header) > prod - cons:
                    raise KernelError(f"ring buffer {self.name!r}: record of {length} bytes at "
                                      f"position {cons} runs past the producer position {prod}")
                data = None if header & DISCARD_BIT else producer.read(start + HDR_SIZE, length)
                cons += record_span(header)
                if data is None:
                    consumer.store_release_u64(0, cons)
                    continue
                try:
                    self.callback(data)
                finally:
                    consumer.store_release_u64(0, cons)
                count += 1
                if limit is not None and count >= limit:
                    return count
            if not got_new:
                return count

    def close(self) -> None:
        """Stop waiting on the map fd and unmap the pages (the map fd stays open)."""
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        for mem in (self._producer, self._consumer):
            if mem is not None:
                mem.close()
        self._producer = self._consumer = None

    def __enter__(self) -> "RingBuffer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
