"""Memory shared with the kernel: mmap of a BPF map or perf event fd, ordered loads and stores.

A ring buffer (``BPF_MAP_TYPE_RINGBUF``) and a perf buffer are rings the
kernel writes and user space reads through ``mmap``; the two sides agree on
positions (producer/consumer, ``data_head``/``data_tail``) with acquire loads and
release stores.  :class:`SharedMemory` maps an fd with libc's ``mmap`` through
ctypes (Python's :mod:`mmap` cannot give the address of a read-only mapping),
copies bytes out, and reads and writes positions with the right ordering:

* through libatomic's ``__atomic_load_N`` / ``__atomic_store_N`` with
  ``__ATOMIC_ACQUIRE`` / ``__ATOMIC_RELEASE`` when the system has libatomic
  (Debian ships it with the C compiler's runtime, ``libatomic1``), which is
  correct on every architecture;
* otherwise, on x86-64 only, with plain aligned 8- and 4-byte accesses: x86 is
  TSO, so an aligned load is an acquire and an aligned store is a release.

On another architecture without libatomic, :func:`ordered_access` raises
:class:`~sigbpf.errors.KernelError` instead of reading a ring unordered.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap as mmap_mod
import os
import platform
from typing import Any

from sigbpf.errors import KernelError

PAGE_SIZE = mmap_mod.PAGESIZE
PROT_READ = mmap_mod.PROT_READ
PROT_WRITE = mmap_mod.PROT_WRITE

_ATOMIC_ACQUIRE = 2  # __ATOMIC_ACQUIRE
_ATOMIC_RELEASE = 3  # __ATOMIC_RELEASE
_MAP_FAILED = ctypes.c_void_p(-1).value

_libc: Any = None
_atomic: Any = None
_atomic_checked = False


def _libc_mmap() -> Any:
    global _libc
    if _libc is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]
        libc.munmap.restype = ctypes.c_int
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        _libc = libc
    return _libc


def _libatomic() -> Any:
    """libatomic's functions as {name: ctypes function}, or None without libatomic."""
    global _atomic, _atomic_checked
    if not _atomic_checked:
        _atomic_checked = True
        name = ctypes.util.find_library("atomic") or "libatomic.so.1"
        try:
            lib = ctypes.CDLL(name)
            funcs = {}
            for bits, ctype in ((4, ctypes.c_uint32), (8, ctypes.c_uint64)):
                load = getattr(lib, f"__atomic_load_{bits}")
                load.restype = ctype
                load.argtypes = [ctypes.c_void_p, ctypes.c_int]
                store = getattr(lib, f"__atomic_store_{bits}")
                store.restype = None
                store.argtypes = [ctypes.c_void_p, ctype, ctypes.c_int]
                funcs[f"load{bits}"], funcs[f"store{bits}"] = load, store
            _atomic = funcs
        except (OSError, AttributeError):
            _atomic = None
    return _atomic


def ordered_access() -> str:
    """How positions are read and written here: ``"libatomic"`` or ``"x86-64 TSO"``."""
    if _libatomic() is not None:
        return "libatomic"
    if platform.machine() in ("x86_64", "AMD64"):
        return "x86-64 TSO"
    raise KernelError(f"no libatomic on {platform.machine()}: cannot read a ring buffer with "
                      f"acquire/release ordering (install libatomic1)")


class SharedMemory:
    """``mmap(NULL, length, prot, MAP_SHARED, fd, offset)``; ``close()`` unmaps."""

    def __init__(self, fd: int, length: int, prot: int, offset: int = 0, *,
                 what: str = "mapping") -> None:
        ordered_access()  # refuse early on a machine where ordering cannot be had
        libc = _libc_mmap()
        ctypes.set_errno(0)
        addr = libc.mmap(None, length, prot, mmap_mod.MAP_SHARED, fd, offset)
        if addr is None or addr == _MAP_FAILED:
            err = ctypes.get_errno()
            raise KernelError(f"mmap of {what} ({length} bytes at offset {offset}): "
                              f"{os.strerror(err)}", errno=err)
        self.addr: int = addr
        self.length = length
        self.what = what

    def _at(self, offset: int, size: int) -> int:
        if self.addr == 0:
            raise KernelError(f"{self.what} used after close")
        if offset < 0 or offset + size > self.length:
            raise KernelError(f"{self.what}: access of {size} bytes at {offset} outside the "
                              f"{self.length}-byte mapping")
        return self.addr + offset

    def read(self, offset: int, size: int) -> bytes:
        """A copy of *size* bytes at *offset*."""
        return ctypes.string_at(self._at(offset, size), size) if size else b""

    def load_acquire_u64(self, offset: int) -> int:
        addr = self._at(offset, 8)
        lib = _libatomic()
        if lib is not None:
            return lib["load8"](addr, _ATOMIC_ACQUIRE)
        return ctypes.c_uint64.from_address(addr).value

    def load_acquire_u32(self, offset: int) -> int:
        addr = self._at(offset, 4)
        lib = _libatomic()
        if lib is not None:
            return lib["load4"](addr, _ATOMIC_ACQUIRE)
        return ctypes.c_uint32.from_address(addr).value

    def load_u64(self, offset: int) -> int:
        """A plain (relaxed) load: for a position only this process writes."""
        return ctypes.c_uint64.from_address(self._at(offset, 8)).value

    def store_release_u64(self, offset: int, value: int) -> None:
        addr = self._at(offset, 8)
        lib = _libatomic()
        if lib is not None:
            lib["store8"](addr, value, _ATOMIC_RELEASE)
        else:
            ctypes.c_uint64.from_address(addr).value = value

    @property
    def closed(self) -> bool:
        return self.addr == 0

    def close(self) -> None:
        addr, self.addr = self.addr, 0
        if addr:
            _libc_mmap().munmap(addr, self.length)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
