"""Helpers for the resolve/check tests: hand-built program BTF and libbpf as the reference.

``prog_btf(*names)`` builds a program BTF the way an artifact carries it: one
FUNC (global linkage, the only linkage BPF_BTF_LOAD accepts for it besides
static) per kfunc name, with a prototype.  ``Libbpf`` is the real library
through ctypes, used only as the reference answer for name look-ups.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

from sigbpf.btf import (BTF, BTFBuilder, Func, FuncLinkage, FuncProto, Int, IntEncoding,
                        Param, Ptr, Struct)

BTF_KIND_FUNC = 12


@dataclass
class ProgBTF:
    """A hand-built program BTF and the ids of what is in it."""

    btf: BTF
    raw: bytes
    funcs: dict[str, int]
    int_id: int
    proto_id: int


def prog_btf(*names: str, nameless: bool = False, validate: bool = True) -> ProgBTF:
    """FUNCs ``names`` (all ``void name(void)``), plus an INT and the FUNC_PROTO.

    Ids: 1 = int, 2 = the FUNC_PROTO, 3.. = the FUNCs in order; with
    *nameless* one more FUNC without a name at the end (BPF_BTF_LOAD would
    refuse it: "Invalid name"; the BTF is then not validated).
    """
    b = BTFBuilder()
    int_id = b.add(Int("int", 4, IntEncoding.SIGNED, 0, 32))
    proto = b.add(FuncProto(0, ()))
    funcs = {name: b.add(Func(name, proto, FuncLinkage.GLOBAL)) for name in names}
    if nameless:
        funcs[""] = b.add(Func("", proto, FuncLinkage.GLOBAL))
    raw = b.encode()
    return ProgBTF(BTF.parse(raw, validate=validate and not nameless), raw, funcs, int_id, proto)


def task_from_pid_btf(param_type: str = "s32", extra_param: bool = False) -> BTFBuilder:
    """``struct task_struct *bpf_task_from_pid(<param_type> pid[, s32 extra])`` as prog BTF."""
    b = BTFBuilder()
    s32 = b.add(Int("int", 4, IntEncoding.SIGNED, 0, 32))
    u64 = b.add(Int("long long unsigned int", 8, IntEncoding.NONE, 0, 64))
    task = b.add(Struct("task_struct", 0, ()))
    ptr = b.add(Ptr(task))
    params = [Param("pid", {"s32": s32, "u64": u64}[param_type])]
    if extra_param:
        params.append(Param("extra", s32))
    proto = b.add(FuncProto(ptr, tuple(params)))
    b.add(Func("bpf_task_from_pid", proto, FuncLinkage.GLOBAL))
    return b


class Libbpf:
    """libbpf.so.1 through ctypes: ``btf__parse`` and ``btf__find_by_name_kind``."""

    def __init__(self, path: str, base: "Libbpf | None" = None) -> None:
        lib = ctypes.CDLL("libbpf.so.1")
        lib.btf__parse.restype = ctypes.c_void_p
        lib.btf__parse.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        lib.btf__parse_split.restype = ctypes.c_void_p
        lib.btf__parse_split.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        lib.btf__find_by_name_kind.restype = ctypes.c_int
        lib.btf__find_by_name_kind.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint]
        lib.btf__free.argtypes = [ctypes.c_void_p]
        self.lib = lib
        if base is None:
            self.btf = lib.btf__parse(path.encode(), None)
        else:
            self.btf = lib.btf__parse_split(path.encode(), base.btf)
        assert self.btf, f"libbpf could not parse {path}"

    def find_func(self, name: str) -> int:
        """libbpf's id for FUNC *name* (negative errno when absent)."""
        return self.lib.btf__find_by_name_kind(self.btf, name.encode(), BTF_KIND_FUNC)

    def close(self) -> None:
        if self.btf:
            self.lib.btf__free(self.btf)
            self.btf = None


__all__ = ["ProgBTF", "prog_btf", "task_from_pid_btf", "Libbpf", "build_artifact_file",
           "module_btf_bytes"]


def build_artifact_file(obj: Path, out_dir: Path) -> Path:
    """The portable artifact of a compiled test object, written next to it (library build)."""
    from sigbpf.artifact.build import build_from_file

    out = Path(out_dir) / (Path(obj).stem + ".sbpf")
    if not out.exists():
        out.write_bytes(build_from_file(obj).encode())
    return out


def module_btf_bytes(base: BTF, *names: str) -> bytes:
    """Raw split BTF of a made-up module (on *base*) defining FUNCs *names*."""
    b = BTFBuilder(base)
    proto = b.add(FuncProto(0, ()))
    for name in names:
        b.add(Func(name, proto, FuncLinkage.GLOBAL))
    return b.encode()
