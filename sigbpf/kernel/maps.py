"""BPF maps in the kernel: create, update, look up, delete, iterate, freeze.

``create_map`` is ``BPF_MAP_CREATE`` with every field a loader needs (BTF
key/value ids, ``map_extra``, and the 6.18 ``excl_prog_hash`` that makes a map
usable by exactly one program, identified by the SHA-256 of its instructions).
Global data (``.data``, ``.rodata``, ``.bss``) is an ARRAY map with one
element at key 0 whose value is the section; ``.rodata`` is then frozen.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
from enum import IntEnum

from sigbpf.elf.maps import MapFlags, MapType
from sigbpf.errors import KernelError
from sigbpf.kernel import attr as A
from sigbpf.kernel.syscall import Cmd, Fd, bpf


class UpdateFlags(IntEnum):
    """``flags`` of BPF_MAP_UPDATE_ELEM."""

    ANY = 0
    NOEXIST = 1
    EXIST = 2
    LOCK = 4


def create_map(
    map_type: MapType | int,
    key_size: int,
    value_size: int,
    max_entries: int,
    *,
    name: str = "",
    flags: MapFlags | int = 0,
    btf_fd: Fd | int | None = None,
    btf_key_type_id: int = 0,
    btf_value_type_id: int = 0,
    btf_vmlinux_value_type_id: int = 0,
    map_extra: int = 0,
    inner_map_fd: Fd | int | None = None,
    numa_node: int = 0,
    excl_prog_hash: bytes | None = None,
) -> Fd:
    """``BPF_MAP_CREATE``; *name* is cut to 15 bytes like the kernel's ``BPF_OBJ_NAME_LEN``.

    The kernel only accepts ``[A-Za-z0-9_.]`` in names; callers sanitize
    (see :func:`object_name`).
    """
    keep = A.Buffers()
    fields = dict(
        map_type=map_type, key_size=key_size, value_size=value_size, max_entries=max_entries,
        map_flags=flags, map_name=object_name(name).encode(),
        btf_key_type_id=btf_key_type_id if btf_fd is not None else 0,
        btf_value_type_id=btf_value_type_id if btf_fd is not None else 0,
        btf_vmlinux_value_type_id=btf_vmlinux_value_type_id, map_extra=map_extra,
        numa_node=numa_node,
    )
    if inner_map_fd is not None:
        fields["inner_map_fd"] = int(inner_map_fd)
    if btf_fd is not None:
        fields["btf_fd"] = int(btf_fd)
    if excl_prog_hash is not None:
        fields["excl_prog_hash"] = keep.ptr(excl_prog_hash)
        fields["excl_prog_hash_size"] = len(excl_prog_hash)
    buf = A.MAP_CREATE.pack(**fields)
    label = f"creating map {name!r}" if name else "creating map"
    return Fd(bpf(Cmd.MAP_CREATE, buf, what=f"{label} (BPF_MAP_CREATE)"), "map")


def object_name(name: str) -> str:
    """A program or map name as the kernel accepts it: ``[A-Za-z0-9_.]``, at most 15 bytes."""
    cleaned = "".join(c if (c.isascii() and (c.isalnum() or c in "_.")) else "_" for c in name)
    return cleaned[:15]


def update_elem(map_fd: Fd | int, key: bytes, value: bytes, flags: int = UpdateFlags.ANY,
                *, what: str = "map") -> None:
    """``BPF_MAP_UPDATE_ELEM``."""
    keep = A.Buffers()
    buf = A.MAP_ELEM.pack(map_fd=int(map_fd), key=keep.ptr(key), value=keep.ptr(value), flags=flags)
    bpf(Cmd.MAP_UPDATE_ELEM, buf, what=f"writing {what} (BPF_MAP_UPDATE_ELEM)")


def lookup_elem(map_fd: Fd | int, key: bytes, value_size: int, *, what: str = "map") -> bytes:
    """``BPF_MAP_LOOKUP_ELEM``: the value bytes (KernelError ENOENT when absent)."""
    keep = A.Buffers()
    out = keep.out(value_size)
    buf = A.MAP_ELEM.pack(map_fd=int(map_fd), key=keep.ptr(key), value=ctypes.addressof(out))
    bpf(Cmd.MAP_LOOKUP_ELEM, buf, what=f"reading {what} (BPF_MAP_LOOKUP_ELEM)")
    return bytes(out)


def delete_elem(map_fd: Fd | int, key: bytes, *, what: str = "map") -> None:
    """``BPF_MAP_DELETE_ELEM`` (KernelError ENOENT when absent)."""
    keep = A.Buffers()
    buf = A.MAP_ELEM.pack(map_fd=int(map_fd), key=keep.ptr(key))
    bpf(Cmd.MAP_DELETE_ELEM, buf, what=f"deleting from {what} (BPF_MAP_DELETE_ELEM)")


def get_next_key(map_fd: Fd | int, key: bytes | None, key_size: int, *,
                 what: str = "map") -> bytes | None:
    """``BPF_MAP_GET_NEXT_KEY``: the key after *key* (None: the first key); None at the end.

    A hash map answers an absent *key* with its first key (the kernel's rule), so
    iteration that deletes the current key starts over; callers fetch the next key
    before handing the current one out.
    """
    keep = A.Buffers()
    out = keep.out(max(key_size, 1))
    buf = A.MAP_ELEM.pack(map_fd=int(map_fd), key=keep.ptr(key) if key is not None else 0,
                          value=ctypes.addressof(out))
    try:
        bpf(Cmd.MAP_GET_NEXT_KEY, buf, what=f"iterating {what} (BPF_MAP_GET_NEXT_KEY)")
    except KernelError as err:
        if err.errno == errno_mod.ENOENT:
            return None
        raise
    return bytes(out)[:key_size]


def freeze(map_fd: Fd | int, *, what: str = "map") -> None:
    """``BPF_MAP_FREEZE``: no more writes from user space (``.rodata``)."""
    buf = A.MAP_ELEM.pack(map_fd=int(map_fd))
    bpf(Cmd.MAP_FREEZE, buf, what=f"freezing {what} (BPF_MAP_FREEZE)")
