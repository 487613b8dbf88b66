"""libbpf (libbpf.so.1 through ctypes) as the reference for kernel-facing tests.

Tests compare sigbpf with what libbpf says about the running kernel's BTF:
``btf__load_vmlinux_btf`` + ``btf__find_by_name_kind`` give the btf_id a
kfunc resolves to; ``btf__type_by_id`` lets a test walk struct members.
sigbpf itself never calls libbpf; only tests do.
"""

from __future__ import annotations

import ctypes
import struct
from functools import lru_cache

BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_FUNC = 4, 5, 12


class LibbpfBTF:
    """The running kernel's vmlinux BTF as libbpf sees it."""

    def __init__(self) -> None:
        lib = ctypes.CDLL("libbpf.so.1")
        lib.btf__load_vmlinux_btf.restype = ctypes.c_void_p
        lib.btf__find_by_name_kind.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint]
        lib.btf__find_by_name_kind.restype = ctypes.c_int
        lib.btf__type_by_id.restype = ctypes.c_void_p
        lib.btf__type_by_id.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.btf__name_by_offset.restype = ctypes.c_char_p
        lib.btf__name_by_offset.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.btf__resolve_size.restype = ctypes.c_long
        lib.btf__resolve_size.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        self.lib = lib
        self.btf = lib.btf__load_vmlinux_btf()
        assert self.btf, "libbpf could not load vmlinux BTF"

    def find(self, name: str, kind: int) -> int:
        """libbpf's btf__find_by_name_kind: the id, or a negative errno."""
        return self.lib.btf__find_by_name_kind(self.btf, name.encode(), kind)

    def func_id(self, name: str) -> int:
        tid = self.find(name, BTF_KIND_FUNC)
        assert tid > 0, f"libbpf does not find FUNC {name}"
        return tid

    def name(self, off: int) -> str:
        return (self.lib.btf__name_by_offset(self.btf, off) or b"").decode()

    def members(self, tid: int) -> list[tuple[str, int, int]]:
        """(name, type id, bit offset) of each member of a struct/union."""
        ptr = self.lib.btf__type_by_id(self.btf, tid)
        _, info, _ = struct.unpack("<III", ctypes.string_at(ptr, 12))
        kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
        out = []
        if kind in (BTF_KIND_STRUCT, BTF_KIND_UNION):
            raw = ctypes.string_at(ptr + 12, 12 * vlen)
            for i in range(vlen):
                m_name, m_type, m_off = struct.unpack_from("<III", raw, 12 * i)
                out.append((self.name(m_name), m_type, m_off & 0xFFFFFF if kflag else m_off))
        return out

    def size(self, tid: int) -> int:
        return self.lib.btf__resolve_size(self.btf, tid)

    def flatten(self, tid: int, base_bits: int = 0) -> dict[str, tuple[int, int]]:
        """name -> (byte offset, byte size); anonymous structs/unions are flattened."""
        out: dict[str, tuple[int, int]] = {}
        for name, mtype, bits in self.members(tid):
            if not name:
                out.update(self.flatten(mtype, base_bits + bits))
            else:
                out[name] = ((base_bits + bits) // 8, self.size(mtype))
        return out


@lru_cache(maxsize=1)
def vmlinux() -> LibbpfBTF:
    return LibbpfBTF()
