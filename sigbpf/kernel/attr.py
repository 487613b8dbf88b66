"""``union bpf_attr`` and the ``bpf_*_info`` structs as fixed byte layouts.

The offsets are those of x86-64 (and every 64-bit Linux ABI: the UAPI uses
only fixed-width fields and explicit ``__aligned_u64``), taken from the 6.18
kernel's own BTF (``union bpf_attr`` in /sys/kernel/btf/vmlinux), which is the
authority: Debian's ``/usr/include/linux/bpf.h`` (6.1) lacks the newest fields
(``signature``, ``keyring_id``, ``excl_prog_hash``, ``hash``).
tests/test_kernel_attr.py checks every field here against the running
kernel's BTF read through libbpf.

A :class:`Layout` packs keyword values into a zeroed ctypes buffer and reads
them back.  Pointer fields take integer addresses; :class:`Buffers` makes the
ctypes buffers behind them and keeps them alive for as long as the request.
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True, slots=True)
class Field:
    """One field: byte offset, size in bytes; *array* fields are raw bytes."""

    offset: int
    size: int
    signed: bool = False
    array: bool = False

    def _fmt(self) -> str:
        code = {1: "b", 2: "h", 4: "i", 8: "q"}[self.size]
        return "<" + (code if self.signed else code.upper())


class Layout:
    """A C struct as {name: Field} plus its size (what is passed as ``size``)."""

    def __init__(self, name: str, size: int, fields: Mapping[str, Field]) -> None:
        self.name = name
        self.size = size
        self.fields = dict(fields)
        for fname, f in self.fields.items():
            if f.offset + f.size > size:
                raise ValueError(f"{name}.{fname} beyond size {size}")

    def pack(self, **values: Any) -> ctypes.Array:
        """A zeroed buffer of :attr:`size` bytes with *values* written in."""
        buf = ctypes.create_string_buffer(self.size)
        for fname, value in values.items():
            self.set(buf, fname, value)
        return buf

    def set(self, buf: ctypes.Array, fname: str, value: Any) -> None:
        f = self.fields[fname]
        if f.array:
            data = bytes(value)[: f.size]
            ctypes.memmove(ctypes.addressof(buf) + f.offset, data, len(data))
        else:
            struct.pack_into(f._fmt(), buf, f.offset, int(value))

    def get(self, buf: ctypes.Array | bytes, fname: str) -> Any:
        f = self.fields[fname]
        raw = bytes(buf) if not isinstance(buf, bytes) else buf
        if f.array:
            return raw[f.offset: f.offset + f.size]
        return struct.unpack_from(f._fmt(), raw, f.offset)[0]

    def unpack(self, buf: ctypes.Array | bytes) -> dict[str, Any]:
        raw = bytes(buf)
        return {fname: self.get(raw, fname) for fname in self.fields}


def _u32(off: int) -> Field:
    return Field(off, 4)


def _s32(off: int) -> Field:
    return Field(off, 4, signed=True)


def _u64(off: int) -> Field:
    return Field(off, 8)


def _bytes(off: int, n: int) -> Field:
    return Field(off, n, array=True)


#: BPF_MAP_CREATE (the first anonymous struct of union bpf_attr).
MAP_CREATE = Layout("map_create", 96, {
    "map_type": _u32(0), "key_size": _u32(4), "value_size": _u32(8), "max_entries": _u32(12),
    "map_flags": _u32(16), "inner_map_fd": _u32(20), "numa_node": _u32(24),
    "map_name": _bytes(28, 16), "map_ifindex": _u32(44), "btf_fd": _u32(48),
    "btf_key_type_id": _u32(52), "btf_value_type_id": _u32(56),
    "btf_vmlinux_value_type_id": _u32(60), "map_extra": _u64(64),
    "value_type_btf_obj_fd": _s32(72), "map_token_fd": _s32(76),
    "excl_prog_hash": _u64(80), "excl_prog_hash_size": _u32(88),
})

#: BPF_MAP_*_ELEM and BPF_MAP_FREEZE (map_fd only).
MAP_ELEM = Layout("map_elem", 32, {
    "map_fd": _u32(0), "key": _u64(8), "value": _u64(16), "flags": _u64(24),
})

#: BPF_PROG_LOAD, offsets as in KERNEL-FACTS.md; size 168 with the 6.18 signing fields.
PROG_LOAD = Layout("prog_load", 168, {
    "prog_type": _u32(0), "insn_cnt": _u32(4), "insns": _u64(8), "license": _u64(16),
    "log_level": _u32(24), "log_size": _u32(28), "log_buf": _u64(32), "kern_version": _u32(40),
    "prog_flags": _u32(44), "prog_name": _bytes(48, 16), "prog_ifindex": _u32(64),
    "expected_attach_type": _u32(68), "prog_btf_fd": _u32(72), "func_info_rec_size": _u32(76),
    "func_info": _u64(80), "func_info_cnt": _u32(88), "line_info_rec_size": _u32(92),
    "line_info": _u64(96), "line_info_cnt": _u32(104), "attach_btf_id": _u32(108),
    "attach_prog_fd": _u32(112), "core_relo_cnt": _u32(116), "fd_array": _u64(120),
    "core_relos": _u64(128), "core_relo_rec_size": _u32(136), "log_true_size": _u32(140),
    "prog_token_fd": _s32(144), "fd_array_cnt": _u32(148), "signature": _u64(152),
    "signature_size": _u32(160), "keyring_id": _s32(164),
})

#: BPF_PROG_RUN (``attr.test``).
PROG_RUN = Layout("test", 80, {
    "prog_fd": _u32(0), "retval": _u32(4), "data_size_in": _u32(8), "data_size_out": _u32(12),
    "data_in": _u64(16), "data_out": _u64(24), "repeat": _u32(32), "duration": _u32(36),
    "ctx_size_in": _u32(40), "ctx_size_out": _u32(44), "ctx_in": _u64(48), "ctx_out": _u64(56),
    "flags": _u32(64), "cpu": _u32(68), "batch_size": _u32(72),
})

#: BPF_OBJ_GET_INFO_BY_FD (``attr.info``).
OBJ_INFO = Layout("info", 16, {"bpf_fd": _u32(0), "info_len": _u32(4), "info": _u64(8)})

#: BPF_BTF_LOAD.
BTF_LOAD = Layout("btf_load", 40, {
    "btf": _u64(0), "btf_log_buf": _u64(8), "btf_size": _u32(16), "btf_log_size": _u32(20),
    "btf_log_level": _u32(24), "btf_log_true_size": _u32(28), "btf_flags": _u32(32),
    "btf_token_fd": _s32(36),
})

#: BPF_OBJ_PIN / BPF_OBJ_GET.
OBJ_PIN = Layout("obj_pin", 24, {
    "pathname": _u64(0), "bpf_fd": _u32(8), "file_flags": _u32(12), "path_fd": _s32(16),
})

#: BPF_RAW_TRACEPOINT_OPEN (``attr.raw_tracepoint``): *name* NULL attaches a BTF-typed program
#: (tp_btf, fentry/fexit/fmod_ret, lsm) at the target it was loaded for.
RAW_TRACEPOINT_OPEN = Layout("raw_tracepoint", 24, {
    "name": _u64(0), "prog_fd": _u32(8), "cookie": _u64(16),
})

#: BPF_LINK_CREATE (``attr.link_create``).  The union after ``flags`` (offset 16) holds one
#: member per attach type; its fields are named ``member.field`` (``kprobe_multi.syms``), the
#: anonymous ones (``target_btf_id``, ``iter_info``) by their own name.  ``prog_fd``/``map_fd``
#: and ``target_fd``/``target_ifindex`` are unions too: the same bytes under two names.
LINK_CREATE = Layout("link_create", 64, {
    "prog_fd": _u32(0), "map_fd": _u32(0), "target_fd": _u32(4), "target_ifindex": _u32(4),
    "attach_type": _u32(8), "flags": _u32(12),
    "target_btf_id": _u32(16), "iter_info": _u64(16), "iter_info_len": _u32(24),
    "perf_event.bpf_cookie": _u64(16),
    "kprobe_multi.flags": _u32(16), "kprobe_multi.cnt": _u32(20), "kprobe_multi.syms": _u64(24),
    "kprobe_multi.addrs": _u64(32), "kprobe_multi.cookies": _u64(40),
    "tracing.target_btf_id": _u32(16), "tracing.cookie": _u64(24),
    "netfilter.pf": _u32(16), "netfilter.hooknum": _u32(20), "netfilter.priority": _s32(24),
    "netfilter.flags": _u32(28),
    "tcx.relative_fd": _u32(16), "tcx.relative_id": _u32(16), "tcx.expected_revision": _u64(24),
    "uprobe_multi.path": _u64(16), "uprobe_multi.offsets": _u64(24),
    "uprobe_multi.ref_ctr_offsets": _u64(32), "uprobe_multi.cookies": _u64(40),
    "uprobe_multi.cnt": _u32(48), "uprobe_multi.flags": _u32(52), "uprobe_multi.pid": _u32(56),
    "netkit.relative_fd": _u32(16), "netkit.relative_id": _u32(16),
    "netkit.expected_revision": _u64(24),
    "cgroup.relative_fd": _u32(16), "cgroup.relative_id": _u32(16),
    "cgroup.expected_revision": _u64(24),
})

#: BPF_LINK_UPDATE (``attr.link_update``).
LINK_UPDATE = Layout("link_update", 16, {
    "link_fd": _u32(0), "new_prog_fd": _u32(4), "new_map_fd": _u32(4), "flags": _u32(8),
    "old_prog_fd": _u32(12), "old_map_fd": _u32(12),
})

#: BPF_LINK_DETACH (``attr.link_detach``); the kernel's struct is 4 bytes, passed as 8.
LINK_DETACH = Layout("link_detach", 8, {"link_fd": _u32(0)})

#: BPF_LINK_GET_FD_BY_ID and friends (``attr.start_id`` ...): the id to open.
GET_ID = Layout("get_id", 16, {
    "start_id": _u32(0), "prog_id": _u32(0), "map_id": _u32(0), "btf_id": _u32(0),
    "link_id": _u32(0), "next_id": _u32(4), "open_flags": _u32(8), "fd_by_id_token_fd": _s32(12),
})

#: The head of struct bpf_link_info: what every link type has (the rest is a per-type union).
LINK_INFO_HEAD = Layout("bpf_link_info", 16, {"type": _u32(0), "id": _u32(4), "prog_id": _u32(8)})

#: struct bpf_prog_info (6.18).  ``gpl_compatible`` is bit 0 of the u32 at 84.
PROG_INFO = Layout("bpf_prog_info", 232, {
    "type": _u32(0), "id": _u32(4), "tag": _bytes(8, 8), "jited_prog_len": _u32(16),
    "xlated_prog_len": _u32(20), "jited_prog_insns": _u64(24), "xlated_prog_insns": _u64(32),
    "load_time": _u64(40), "created_by_uid": _u32(48), "nr_map_ids": _u32(52), "map_ids": _u64(56),
    "name": _bytes(64, 16), "ifindex": _u32(80), "gpl_compatible": _u32(84),
    "netns_dev": _u64(88), "netns_ino": _u64(96), "nr_jited_ksyms": _u32(104),
    "nr_jited_func_lens": _u32(108), "jited_ksyms": _u64(112), "jited_func_lens": _u64(120),
    "btf_id": _u32(128), "func_info_rec_size": _u32(132), "func_info": _u64(136),
    "nr_func_info": _u32(144), "nr_line_info": _u32(148), "line_info": _u64(152),
    "jited_line_info": _u64(160), "nr_jited_line_info": _u32(168), "line_info_rec_size": _u32(172),
    "jited_line_info_rec_size": _u32(176), "nr_prog_tags": _u32(180), "prog_tags": _u64(184),
    "run_time_ns": _u64(192), "run_cnt": _u64(200), "recursion_misses": _u64(208),
    "verified_insns": _u32(216), "attach_btf_obj_id": _u32(220), "attach_btf_id": _u32(224),
})

#: struct bpf_map_info (6.18): ``hash`` points at a 32-byte buffer for the SHA-256.
MAP_INFO = Layout("bpf_map_info", 104, {
    "type": _u32(0), "id": _u32(4), "key_size": _u32(8), "value_size": _u32(12),
    "max_entries": _u32(16), "map_flags": _u32(20), "name": _bytes(24, 16), "ifindex": _u32(40),
    "btf_vmlinux_value_type_id": _u32(44), "netns_dev": _u64(48), "netns_ino": _u64(56),
    "btf_id": _u32(64), "btf_key_type_id": _u32(68), "btf_value_type_id": _u32(72),
    "btf_vmlinux_id": _u32(76), "map_extra": _u64(80), "hash": _u64(88), "hash_size": _u32(96),
})

#: Every layout, by the name of the C struct (or bpf_attr member) it describes.
LAYOUTS: dict[str, Layout] = {
    lay.name: lay for lay in (MAP_CREATE, MAP_ELEM, PROG_LOAD, PROG_RUN, OBJ_INFO, BTF_LOAD,
                              OBJ_PIN, PROG_INFO, MAP_INFO, RAW_TRACEPOINT_OPEN, LINK_CREATE,
                              LINK_UPDATE, LINK_DETACH, GET_ID)
}


class Buffers:
    """Keeps the ctypes buffers behind pointer fields alive for one request."""

    def __init__(self) -> None:
        self._kept: list[Any] = []

    def ptr(self, data: bytes | bytearray | ctypes.Array | None) -> int:
        """Address of a buffer holding *data* (0 for None or empty)."""
        if data is None:
            return 0
        if isinstance(data, ctypes.Array):
            buf = data
        else:
            if not data:
                return 0
            buf = ctypes.create_string_buffer(bytes(data), len(data))
        self._kept.append(buf)
        return ctypes.addressof(buf)

    def out(self, size: int) -> ctypes.Array:
        """A zeroed writable buffer of *size* bytes kept alive here."""
        buf = ctypes.create_string_buffer(size)
        self._kept.append(buf)
        return buf

    def cstr(self, text: str) -> int:
        """Address of a NUL-terminated copy of *text*."""
        buf = ctypes.create_string_buffer(text.encode())
        self._kept.append(buf)
        return ctypes.addressof(buf)
