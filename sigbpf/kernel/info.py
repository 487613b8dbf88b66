"""``BPF_OBJ_GET_INFO_BY_FD``: what the kernel says about a loaded program or a map.

For programs: the tag (``prog->tag``, 8 bytes, which the kernel derives from
a SHA-256 over the instructions as the verifier saw them before rewriting,
with map fd immediates zeroed; see tests/test_kernel_digest.py), the
translated ("xlated") instructions, the map ids.  For maps: the SHA-256 of a
frozen ARRAY map's contents (6.18 ``hash`` / ``hash_size``), which is what a
signed loader's exclusive metadata map is checked by.
"""

from __future__ import annotations

import array
import ctypes
from dataclasses import dataclass

from sigbpf.kernel import attr as A
from sigbpf.kernel.syscall import Cmd, Fd, bpf

SHA256_SIZE = 32


@dataclass(frozen=True, slots=True)
class ProgInfo:
    """The fields of ``struct bpf_prog_info`` sigbpf uses."""

    type: int
    id: int
    tag: bytes
    name: str
    xlated_insns: bytes
    map_ids: tuple[int, ...]
    btf_id: int
    verified_insns: int
    gpl_compatible: bool
    #: The kernel BTF type the program is bound to (fentry/lsm/tp_btf/...), 0 if none, and the
    #: id of the BTF object it is in (0: vmlinux... as the kernel reports it).
    attach_btf_id: int = 0
    attach_btf_obj_id: int = 0


@dataclass(frozen=True, slots=True)
class MapInfo:
    """The fields of ``struct bpf_map_info`` sigbpf uses; ``hash`` is None unless asked for."""

    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str
    btf_id: int
    hash: bytes | None


def _get_info(fd: Fd | int, layout: A.Layout, info: ctypes.Array, what: str) -> None:
    buf = A.OBJ_INFO.pack(bpf_fd=int(fd), info_len=layout.size, info=ctypes.addressof(info))
    bpf(Cmd.OBJ_GET_INFO_BY_FD, buf, what=f"{what} (BPF_OBJ_GET_INFO_BY_FD)")


def _name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def prog_info(fd: Fd | int) -> ProgInfo:
    """Tag, id, name, xlated instructions and map ids of a loaded program."""
    first = ctypes.create_string_buffer(A.PROG_INFO.size)
    _get_info(fd, A.PROG_INFO, first, "reading program info")
    head = A.PROG_INFO.unpack(first)
    keep = A.Buffers()
    xlated = keep.out(head["xlated_prog_len"]) if head["xlated_prog_len"] else None
    maps = keep.out(4 * head["nr_map_ids"]) if head["nr_map_ids"] else None
    second = A.PROG_INFO.pack(
        xlated_prog_len=head["xlated_prog_len"],
        xlated_prog_insns=ctypes.addressof(xlated) if xlated is not None else 0,
        nr_map_ids=head["nr_map_ids"], map_ids=ctypes.addressof(maps) if maps is not None else 0,
    )
    _get_info(fd, A.PROG_INFO, second, "reading program instructions")
    info = A.PROG_INFO.unpack(second)
    return ProgInfo(
        type=info["type"], id=info["id"], tag=info["tag"], name=_name(info["name"]),
        xlated_insns=bytes(xlated) if xlated is not None else b"",
        map_ids=tuple(array.array("I", bytes(maps))) if maps is not None else (),
        btf_id=info["btf_id"], verified_insns=info["verified_insns"],
        gpl_compatible=bool(info["gpl_compatible"] & 1),
        attach_btf_id=info["attach_btf_id"], attach_btf_obj_id=info["attach_btf_obj_id"],
    )


def map_info(fd: Fd | int, *, with_hash: bool = False) -> MapInfo:
    """Type, sizes, name of a map; with *with_hash* also its SHA-256 (frozen ARRAY maps, 6.18)."""
    keep = A.Buffers()
    digest = keep.out(SHA256_SIZE) if with_hash else None
    buf = A.MAP_INFO.pack(hash=ctypes.addressof(digest) if digest is not None else 0,
                          hash_size=SHA256_SIZE if digest is not None else 0)
    _get_info(fd, A.MAP_INFO, buf, "reading map info" + (" and hash" if with_hash else ""))
    info = A.MAP_INFO.unpack(buf)
    return MapInfo(
        type=info["type"], id=info["id"], key_size=info["key_size"], value_size=info["value_size"],
        max_entries=info["max_entries"], map_flags=info["map_flags"], name=_name(info["name"]),
        btf_id=info["btf_id"], hash=bytes(digest) if digest is not None else None,
    )
