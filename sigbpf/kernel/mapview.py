"""A loaded map as a Python mapping: look up, update, delete, iterate, decoded through BTF.

``MapView(fd, spec, btf)`` wraps the fd of a map created from ``spec`` (an
:class:`sigbpf.artifact.format.Map`) and the program BTF its key/value type
ids refer to::

    counts = loaded.maps["counts"]
    counts[{"pid": 42, "cpu": 1}] = {"packets": 1, "bytes": 60}
    for key, value in counts.items(): ...
    loaded.maps["prog.data"][0]            # {"counter": 5, "label": b"abc\\0..."}

Keys and values go in as ``bytes`` (exactly ``key_size`` / ``value_size``) or
as Python values, and come out decoded by :mod:`sigbpf.btf.values` when the
map has a BTF key/value type id: ints, dicts for structs and unions, lists for
arrays (``bytes`` for char arrays), dicts by variable name for global data
(DATASEC values, key ``0``).  Without BTF they come out as ``bytes``; ints
are accepted (little-endian, ``key_size``/``value_size`` bytes) and the keys
of array-like maps (``ARRAY``, ``PERCPU_ARRAY``, ``PROG_ARRAY``,
``PERF_EVENT_ARRAY``, ...: always a ``u32`` index) are ints both ways.

A dict written to a global data map changes only the variables it names (the
rest is read first); elsewhere what a dict leaves out is zero.

Per-CPU maps (``PERCPU_HASH``, ``PERCPU_ARRAY``, ``LRU_PERCPU_HASH``,
``PERCPU_CGROUP_STORAGE``) hold a value per possible CPU: lookups return a
list of :func:`~sigbpf.kernel.cpus.possible_cpus` values (the kernel fills
slot *i* from the *i*-th possible CPU), updates take such a list (or the raw
buffer: ``value_size`` rounded up to 8, times the CPUs).

A MapView does not own its fd: whoever created the map (``LoadedArtifact``)
closes it.  Absent keys raise :class:`MapKeyError` (a ``KeyError`` and a
:class:`~sigbpf.errors.NotFoundError`); bad keys/values raise
:class:`~sigbpf.errors.BTFError` naming the map, the field and the type id;
refusals by the kernel raise :class:`~sigbpf.errors.KernelError`.
"""

from __future__ import annotations

import errno as errno_mod
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sigbpf.elf.maps import MapType
from sigbpf.errors import BTFError, KernelError, NotFoundError
from sigbpf.kernel import maps as M
from sigbpf.kernel.maps import UpdateFlags
from sigbpf.kernel.syscall import Fd

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.artifact.format import Map
    from sigbpf.btf import BTF

__all__ = ["MapView", "MapKeyError", "UpdateFlags", "ANY", "NOEXIST", "EXIST", "PER_CPU_TYPES",
           "ARRAY_LIKE_TYPES"]

ANY = UpdateFlags.ANY
NOEXIST = UpdateFlags.NOEXIST
EXIST = UpdateFlags.EXIST

#: Maps whose value is one slot per possible CPU.
PER_CPU_TYPES = frozenset({MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH,
                           MapType.PERCPU_CGROUP_STORAGE})
#: Maps keyed by a u32 index.
ARRAY_LIKE_TYPES = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.PROG_ARRAY,
                              MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY,
                              MapType.ARRAY_OF_MAPS, MapType.DEVMAP, MapType.CPUMAP,
                              MapType.XSKMAP, MapType.SOCKMAP})
#: Maps where every index below max_entries exists (len() is max_entries).
_DENSE_TYPES = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY})
#: Maps without keys to look up or iterate.
_KEYLESS_TYPES = frozenset({MapType.RINGBUF, MapType.USER_RINGBUF, MapType.QUEUE, MapType.STACK,
                            MapType.BLOOM_FILTER, MapType.ARENA, MapType.STRUCT_OPS})


class MapKeyError(NotFoundError, KeyError):
    """A key that is not in the map (``BPF_MAP_*_ELEM`` answered ENOENT)."""


class MapView:
    """The map behind *fd*, created from *spec*, with keys/values decoded through *btf*."""

    def __init__(self, fd: Fd, spec: "Map", btf: "BTF | None") -> None:
        self.fd = fd
        self.spec = spec
        self.btf = btf
        self.name: str = spec.name
        self.map_type: int = int(spec.map_type)
        self.key_size: int = spec.key_size
        self.value_size: int = spec.value_size
        self._max_entries: int | None = None
        self.key_type_id: int = spec.btf_key_type_id if btf is not None else 0
        self.value_type_id: int = spec.btf_value_type_id if btf is not None else 0
        self.per_cpu: bool = self.map_type in PER_CPU_TYPES
        self._what = f"map {self.name!r}"
        self._ncpus: int | None = None
        self._global_data = False
        if self.value_type_id:
            from sigbpf.btf import Kind

            self._global_data = btf.kind_of(self.value_type_id) is Kind.DATASEC

    # -- shape ----------------------------------------------------------------
    def fileno(self) -> int:
        return self.fd.fileno()

    @property
    def max_entries(self) -> int:
        """The map's max_entries as the kernel created it (the loader may have set it for this
        machine: perf event arrays get the possible CPUs, ring buffers whole pages)."""
        if self._max_entries is None:
            from sigbpf.kernel.info import map_info

            self._max_entries = map_info(self.fd).max_entries
        return self._max_entries

    def __bool__(self) -> bool:
        return True  # a map is there even when it is empty (and len() may not apply)

    @property
    def ncpus(self) -> int:
        """Value slots of a per-CPU map: the possible CPUs (1 for other maps)."""
        if not self.per_cpu:
            return 1
        if self._ncpus is None:
            from sigbpf.kernel.cpus import possible_cpus

            self._ncpus = possible_cpus()
        return self._ncpus

    @property
    def _stride(self) -> int:
        return (self.value_size + 7) // 8 * 8

    @property
    def _value_buf_size(self) -> int:
        return self._stride * self.ncpus if self.per_cpu else self.value_size

    def __repr__(self) -> str:
        try:
            kind = MapType(self.map_type).name
        except ValueError:
            kind = str(self.map_type)
        return (f"MapView({self.name!r}, {kind}, key_size={self.key_size}, "
                f"value_size={self.value_size})")

    # -- conversions ------------------------------------------------------------
    def _raw(self, data: Any, size: int, part: str, type_id: int) -> bytes | None:
        if isinstance(data, (bytes, bytearray, memoryview)):
            raw = bytes(data)
            if len(raw) != size:
                raise BTFError(f"{self._what} {part}: {len(raw)} bytes given, the map's "
                               f"{part}_size is {size}", type_id=type_id or None)
            return raw
        return None

    def _int(self, value: Any, size: int, part: str) -> bytes:
        if hasattr(value, "fileno") and not isinstance(value, int):
            value = value.fileno()
        if isinstance(value, bool) or not isinstance(value, int):
            raise BTFError(f"{self._what} {part}: expected bytes of {size} or an int (the map "
                           f"has no BTF {part} type), got {type(value).__name__}")
        if size not in (1, 2, 4, 8):
            raise BTFError(f"{self._what} {part}: an int cannot fill {size} bytes; pass bytes")
        lo, hi = -(1 << (size * 8 - 1)), (1 << (size * 8)) - 1
        if not lo <= value <= hi:
            raise BTFError(f"{self._what} {part}: value {value} out of range for {size} bytes")
        return (value & ((1 << (size * 8)) - 1)).to_bytes(size, "little")

    def encode_key(self, key: Any) -> bytes:
        """The key bytes of *key* (bytes, a Python value through BTF, or an int)."""
        raw = self._raw(key, self.key_size, "key", self.key_type_id)
        if raw is not None:
            return raw
        if self.key_type_id:
            from sigbpf.btf.values import encode

            return encode(self.btf, self.key_type_id, key, what=f"{self._what} key")
        return self._int(key, self.key_size, "key")

    def decode_key(self, raw: bytes) -> Any:
        if self.key_type_id:
            from sigbpf.btf.values import decode

            return decode(self.btf, self.key_type_id, raw, what=f"{self._what} key")
        if self.map_type in ARRAY_LIKE_TYPES and self.key_size == 4:
            return int.from_bytes(raw, "little")
        return raw

    def _encode_one(self, value: Any, base: bytes | None, part: str) -> bytes:
        raw = self._raw(value, self.value_size, part, self.value_type_id)
        if raw is not None:
            return raw
        if self.value_type_id:
            from sigbpf.btf.values import encode

            return encode(self.btf, self.value_type_id, value, base=base,
                          what=f"{self._what} {part}")
        return self._int(value, self.value_size, "value")

    def encode_value(self, value: Any, base: bytes | None = None) -> bytes:
        """The value buffer of *value*: ``value_size`` bytes, or each CPU's slot (per-CPU maps)."""
        if not self.per_cpu:
            return self._encode_one(value, base, "value")
        n, stride = self.ncpus, self._stride
        if isinstance(value, (bytes, bytearray, memoryview)) and len(value) == n * stride:
            return bytes(value)
        if isinstance(value, (str, bytes, bytearray, memoryview)) or \
                not isinstance(value, Sequence) or len(value) != n:
            got = f"{len(value)} items" if isinstance(value, Sequence) else type(value).__name__
            raise BTFError(f"{self._what} value: a per-CPU map takes a list of {n} values (one "
                           f"per possible CPU) or {n * stride} bytes, got {got}",
                           type_id=self.value_type_id or None)
        pad = bytes(stride - self.value_size)
        return b"".join(self._encode_one(v, None, f"value[cpu {i}]") + pad
                        for i, v in enumerate(value))

    def _decode_one(self, raw: bytes, part: str) -> Any:
        if self.value_type_id:
            from sigbpf.btf.values import decode

            return decode(self.btf, self.value_type_id, raw, what=f"{self._what} {part}")
        return raw

    def decode_value(self, raw: bytes) -> Any:
        if not self.per_cpu:
            return self._decode_one(raw, "value")
        stride = self._stride
        return [self._decode_one(raw[i * stride: i * stride + self.value_size], f"value[cpu {i}]")
                for i in range(self.ncpus)]

    def _check_keyed(self, op: str) -> None:
        if self.map_type in _KEYLESS_TYPES:
            raise KernelError(f"{self._what}: a {MapType(self.map_type).name} map has no keys "
                              f"to {op}")

    # -- operations -----------------------------------------------------------
    def lookup_bytes(self, key: Any) -> bytes:
        """The raw value buffer at *key* (MapKeyError when absent)."""
        self._check_keyed("look up")
        raw_key = self.encode_key(key)
        try:
            return M.lookup_elem(self.fd, raw_key, self._value_buf_size, what=self._what)
        except KernelError as err:
            if err.errno == errno_mod.ENOENT:
                raise MapKeyError(f"{self._what}: no key {_show(key)}",
                                  errno=errno_mod.ENOENT) from None
            raise

    def lookup(self, key: Any) -> Any:
        """The decoded value at *key* (MapKeyError when absent)."""
        return self.decode_value(self.lookup_bytes(key))

    def get(self, key: Any, default: Any = None) -> Any:
        """The decoded value at *key*, or *default* when absent."""
        try:
            return self.lookup(key)
        except MapKeyError:
            return default

    def update(self, key: Any, value: Any, flags: UpdateFlags | int = ANY) -> None:
        """``BPF_MAP_UPDATE_ELEM`` (flags: ANY, NOEXIST, EXIST, LOCK)."""
        self._check_keyed("update")
        raw_key = self.encode_key(key)
        base = None
        if self._global_data and not self.per_cpu and not isinstance(
                value, (bytes, bytearray, memoryview)):
            base = M.lookup_elem(self.fd, raw_key, self.value_size, what=self._what)
        M.update_elem(self.fd, raw_key, self.encode_value(value, base), flags, what=self._what)

    def delete(self, key: Any) -> None:
        """``BPF_MAP_DELETE_ELEM`` (MapKeyError when absent)."""
        self._check_keyed("delete")
        raw_key = self.encode_key(key)
        try:
            M.delete_elem(self.fd, raw_key, what=self._what)
        except KernelError as err:
            if err.errno == errno_mod.ENOENT:
                raise MapKeyError(f"{self._what}: no key {_show(key)}",
                                  errno=errno_mod.ENOENT) from None
            raise

    def raw_keys(self) -> Iterator[bytes]:
        """The keys as bytes, by ``BPF_MAP_GET_NEXT_KEY``.

        The next key is fetched before the current one is handed out, so deleting
        the current key while iterating is safe.  A hash map that loses the key
        iteration stands on (another writer deleted it) starts over; keys already
        seen are then skipped, and a map that keeps restarting is an error.
        """
        self._check_keyed("iterate")
        seen: set[bytes] = set()
        limit = 4 * (self.max_entries + 1) + 64
        steps = 0
        cur = M.get_next_key(self.fd, None, self.key_size, what=self._what)
        while cur is not None:
            nxt = M.get_next_key(self.fd, cur, self.key_size, what=self._what)
            if cur not in seen:
                seen.add(cur)
                yield cur
            steps += 1
            if steps > limit:
                raise KernelError(f"{self._what}: iteration did not end after {steps} keys "
                                  f"(entries deleted while iterating?)")
            cur = nxt

    def keys(self) -> Iterator[Any]:
        """The decoded keys (see :meth:`raw_keys`)."""
        for raw in self.raw_keys():
            yield self.decode_key(raw)

    def items(self) -> Iterator[tuple[Any, Any]]:
        """(key, value) pairs, decoded; keys deleted meanwhile are left out."""
        for raw in self.raw_keys():
            try:
                value = M.lookup_elem(self.fd, raw, self._value_buf_size, what=self._what)
            except KernelError as err:
                if err.errno == errno_mod.ENOENT:
                    continue
                raise
            yield self.decode_key(raw), self.decode_value(value)

    def values(self) -> Iterator[Any]:
        for _, value in self.items():
            yield value

    # -- mapping protocol --------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        return self.lookup(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update(key, value)

    def __delitem__(self, key: Any) -> None:
        self.delete(key)

    def __contains__(self, key: Any) -> bool:
        try:
            self.lookup_bytes(key)
        except MapKeyError:
            return False
        return True

    def __iter__(self) -> Iterator[Any]:
        return self.keys()

    def __len__(self) -> int:
        """max_entries for ARRAY/PERCPU_ARRAY (every index exists); else the keys counted."""
        if self.map_type in _DENSE_TYPES:
            return self.max_entries
        return sum(1 for _ in self.raw_keys())


def _show(key: Any) -> str:
    text = key.hex() if isinstance(key, (bytes, bytearray)) else repr(key)
    text = text.replace("\n", " ")
    return text if len(text) <= 80 else text[:77] + "..."
