"""libbpf 1.1 (libbpf.so.1 through ctypes) as the reference for sigbpf's object reader.

:func:`open_object` runs ``bpf_object__open_file`` -- no kernel involved --
and reports what libbpf made of the object: programs (name, section, type,
expected attach type, instruction count, autoload), maps (name, type, sizes,
entries, flags, BTF ids, map_extra, initial value, inner map) and libbpf's
debug log, whose lines ``sec '.relX': relo #N: insn #I against 'SYM'`` list
every code relocation and ``sec 'X': found N CO-RE relocations`` count the
CO-RE records.  :func:`load_object` also calls ``bpf_object__load`` (needs
the kernel) and returns ``nr_func_info`` / ``nr_line_info`` of each loaded
program from ``bpf_obj_get_info_by_fd``.  Only tests use libbpf.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass, field

_P = ctypes.c_void_p
_PRINT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, _P)
_SIGS = [
    ("bpf_object__open_file", _P, [ctypes.c_char_p, _P]),
    ("libbpf_get_error", ctypes.c_long, [_P]),
    ("bpf_object__load", ctypes.c_int, [_P]),
    ("bpf_object__close", None, [_P]),
    ("bpf_object__name", ctypes.c_char_p, [_P]),
    ("bpf_object__next_program", _P, [_P, _P]),
    ("bpf_program__name", ctypes.c_char_p, [_P]),
    ("bpf_program__section_name", ctypes.c_char_p, [_P]),
    ("bpf_program__type", ctypes.c_int, [_P]),
    ("bpf_program__expected_attach_type", ctypes.c_int, [_P]),
    ("bpf_program__insn_cnt", ctypes.c_size_t, [_P]),
    ("bpf_program__autoload", ctypes.c_bool, [_P]),
    ("bpf_program__fd", ctypes.c_int, [_P]),
    ("bpf_object__next_map", _P, [_P, _P]),
    ("bpf_map__name", ctypes.c_char_p, [_P]),
    ("bpf_map__type", ctypes.c_int, [_P]),
    ("bpf_map__key_size", ctypes.c_uint32, [_P]),
    ("bpf_map__value_size", ctypes.c_uint32, [_P]),
    ("bpf_map__max_entries", ctypes.c_uint32, [_P]),
    ("bpf_map__map_flags", ctypes.c_uint32, [_P]),
    ("bpf_map__btf_key_type_id", ctypes.c_uint32, [_P]),
    ("bpf_map__btf_value_type_id", ctypes.c_uint32, [_P]),
    ("bpf_map__map_extra", ctypes.c_uint64, [_P]),
    ("bpf_map__numa_node", ctypes.c_uint32, [_P]),
    ("bpf_map__initial_value", _P, [_P, ctypes.POINTER(ctypes.c_size_t)]),
    ("bpf_map__inner_map", _P, [_P]),
    ("bpf_obj_get_info_by_fd", ctypes.c_int, [ctypes.c_int, _P, ctypes.POINTER(ctypes.c_uint32)]),
    ("libbpf_prog_type_by_name", ctypes.c_int,
     [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]),
]
# struct bpf_prog_info: nr_func_info at 144, nr_line_info at 148 (checked against vmlinux BTF).
_PROG_INFO_SIZE, _NR_FUNC_INFO, _NR_LINE_INFO = 232, 144, 148


def _lib():
    lib = ctypes.CDLL("libbpf.so.1")
    for name, res, args in _SIGS:
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    return lib


_LIB = None
_LIBC = ctypes.CDLL(None)
_LOG: list[str] = []


@_PRINT
def _print(level: int, fmt: bytes, va: int) -> int:
    buf = ctypes.create_string_buffer(8192)
    _LIBC.vsnprintf(buf, len(buf), fmt, ctypes.c_void_p(va))
    _LOG.append(buf.value.decode(errors="replace"))
    return 0


def lib():
    global _LIB
    if _LIB is None:
        _LIB = _lib()
        _LIB.libbpf_set_print.argtypes = [_PRINT]
        _LIB.libbpf_set_print(_print)
    return _LIB


@dataclass
class LibbpfObject:
    name: str
    programs: list[dict] = field(default_factory=list)
    maps: list[dict] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    prog_info: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (nr_func_info, nr_line_info)

    def relocations(self) -> list[tuple[str, int, str]]:
        """(section, section insn index, symbol) from libbpf's debug log, in order."""
        out = []
        for line in self.log:
            m = re.search(r"sec '\.rel(.*)': relo #\d+: insn #(\d+) against '(.*)'", line)
            if m:
                out.append((m.group(1), int(m.group(2)), m.group(3)))
        return out

    def core_relo_counts(self) -> dict[str, int]:
        """section -> CO-RE relocation count, from 'sec 'X': found N CO-RE relocations'."""
        out = {}
        for line in self.log:
            m = re.search(r"sec '(.*)': found (\d+) CO-RE relocations", line)
            if m:
                out[m.group(1)] = int(m.group(2))
        return out


def _collect(lb, obj, out: LibbpfObject) -> None:
    p = None
    while True:
        p = lb.bpf_object__next_program(obj, p)
        if not p:
            break
        out.programs.append({
            "name": lb.bpf_program__name(p).decode(),
            "section": lb.bpf_program__section_name(p).decode(),
            "type": lb.bpf_program__type(p),
            "attach_type": lb.bpf_program__expected_attach_type(p),
            "insns": lb.bpf_program__insn_cnt(p),
            "autoload": lb.bpf_program__autoload(p),
        })
    m = None
    while True:
        m = lb.bpf_object__next_map(obj, m)
        if not m:
            break
        size = ctypes.c_size_t(0)
        init = lb.bpf_map__initial_value(m, ctypes.byref(size))
        inner = lb.bpf_map__inner_map(m)
        out.maps.append({
            "name": lb.bpf_map__name(m).decode(),
            "type": lb.bpf_map__type(m),
            "key_size": lb.bpf_map__key_size(m),
            "value_size": lb.bpf_map__value_size(m),
            "max_entries": lb.bpf_map__max_entries(m),
            "flags": lb.bpf_map__map_flags(m),
            "key_type_id": lb.bpf_map__btf_key_type_id(m),
            "value_type_id": lb.bpf_map__btf_value_type_id(m),
            "map_extra": lb.bpf_map__map_extra(m),
            "numa_node": lb.bpf_map__numa_node(m),
            "initial_value": ctypes.string_at(init, size.value) if init else None,
            "inner": lb.bpf_map__name(inner).decode() if inner else None,
        })


def open_object(path, *, load: bool = False) -> LibbpfObject:
    """What libbpf 1.1 sees in the object at *path* (``load=True`` also loads it)."""
    lb = lib()
    _LOG.clear()
    obj = lb.bpf_object__open_file(str(path).encode(), None)
    err = lb.libbpf_get_error(obj)
    if err:
        raise RuntimeError(f"libbpf cannot open {path}: {err}: {''.join(_LOG)[-2000:]}")
    try:
        out = LibbpfObject(lb.bpf_object__name(obj).decode())
        _collect(lb, obj, out)
        if load:
            rc = lb.bpf_object__load(obj)
            if rc:
                raise RuntimeError(f"libbpf cannot load {path}: {rc}: {''.join(_LOG)[-3000:]}")
            p = None
            while True:
                p = lb.bpf_object__next_program(obj, p)
                if not p:
                    break
                info = ctypes.create_string_buffer(_PROG_INFO_SIZE)
                size = ctypes.c_uint32(_PROG_INFO_SIZE)
                assert lb.bpf_obj_get_info_by_fd(lb.bpf_program__fd(p), info, ctypes.byref(size)) == 0
                raw = info.raw
                out.prog_info[lb.bpf_program__name(p).decode()] = (
                    int.from_bytes(raw[_NR_FUNC_INFO:_NR_FUNC_INFO + 4], "little"),
                    int.from_bytes(raw[_NR_LINE_INFO:_NR_LINE_INFO + 4], "little"))
        out.log = list(_LOG)
        return out
    finally:
        lb.bpf_object__close(obj)


def prog_type_by_name(section: str) -> tuple[int, int] | None:
    """libbpf's ``libbpf_prog_type_by_name``: (prog type, expected attach type) or None."""
    lb = lib()
    ptype, atype = ctypes.c_int(0), ctypes.c_int(0)
    if lb.libbpf_prog_type_by_name(section.encode(), ctypes.byref(ptype), ctypes.byref(atype)):
        return None
    return ptype.value, atype.value
