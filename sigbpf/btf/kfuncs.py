"""The kfuncs of a kernel, from its BTF (or, for older kernels, its ``.BTF_ids``).

Two sources, and what each can and cannot tell:

1. **DECL_TAG "bpf_kfunc"** (pahole >= 1.26, kernels since about 6.8): every
   kfunc FUNC carries a DECL_TAG named ``bpf_kfunc`` with component_idx -1.
   :func:`kfuncs` lists those.  A BTF without any such tag (Debian's 6.1 and
   6.12 in the corpus) is *untagged*: :func:`kfuncs` then raises
   :class:`NotFoundError` instead of guessing, and :func:`has_kfunc_tags`
   says so up front.

2. **The vmlinux ELF's ``.BTF_ids`` section**: kfunc sets are
   ``struct btf_id_set8 { u32 cnt; u32 flags; struct { u32 id; u32 flags; } pairs[cnt]; }``
   written by ``BTF_SET8_START``/``BTF_ID_FLAGS`` and filled in (and sorted by
   id) by resolve_btfids.  The section has no symbols, so
   :func:`find_set8s` finds sets by shape: at a 4-byte aligned offset, a
   ``cnt >= 1`` and a set flags word of 0 or ``BTF_SET8_KFUNCS`` (1), then
   ``cnt`` pairs whose ids are FUNCs of the given BTF, strictly ascending, with
   KF_* flags below 2**16.  A match is taken whole and the scan continues after
   it.  Limits: (a) when some set has the ``BTF_SET8_KFUNCS`` flag (kernels
   >= 6.9), only such sets count; on older kernels every set8 counts, which
   also takes in the few non-kfunc set8s (fmodret id sets, e.g. HID/MPTCP) --
   on 6.1 there is no way to tell them apart without symbols; (b) a kfunc whose
   id resolve_btfids could not fill in (0) makes its set unrecognisable;
   (c) plain ``BTF_SET``\\s (no flags word) and ``BTF_ID_LIST``\\s are never taken,
   because their second word is a type id, never 0 or 1.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sigbpf.btf.kinds import Kind
from sigbpf.errors import BTFError, NotFoundError

if TYPE_CHECKING:
    from sigbpf.btf.spec import BTF

KFUNC_TAG = "bpf_kfunc"
BTF_SET8_KFUNCS = 1 << 0  # set flag of kfunc sets (include/linux/btf_ids.h)
_MAX_KF_FLAGS = 1 << 16


@dataclass(frozen=True, slots=True)
class Kfunc:
    """One kfunc: FUNC id and name in the BTF; KF_* flags when they came from a set8."""

    name: str
    id: int
    flags: int | None = None


@dataclass(frozen=True, slots=True)
class KfuncSet:
    """One ``btf_id_set8`` found in a ``.BTF_ids`` section."""

    offset: int  # byte offset of ``cnt`` in the section
    flags: int  # set flags (BTF_SET8_KFUNCS on newer kernels)
    entries: tuple[tuple[int, int], ...]  # (FUNC id, KF_* flags), ascending ids


def kfunc_tag_ids(btf: "BTF") -> list[int]:
    """Ids of the DECL_TAG ``bpf_kfunc`` records of *btf* (own and base)."""
    return btf.find_all_by_name_kind(KFUNC_TAG, Kind.DECL_TAG)


def has_kfunc_tags(btf: "BTF") -> bool:
    """True when this BTF marks kfuncs with DECL_TAG ``bpf_kfunc``."""
    return bool(kfunc_tag_ids(btf))


def tagged_kfunc_ids(btf: "BTF", *, include_base: bool = False) -> set[int]:
    """FUNC ids carrying DECL_TAG ``bpf_kfunc`` (component_idx -1); empty for an untagged BTF."""
    out: set[int] = set()
    for tag_id in kfunc_tag_ids(btf):
        tag = btf.type_by_id(tag_id)
        if tag.component_idx != -1 or btf.kind_of(tag.type) != Kind.FUNC:  # type: ignore[union-attr]
            continue
        if tag.type >= btf.start_id or include_base:  # type: ignore[union-attr]
            out.add(tag.type)  # type: ignore[union-attr]
    return out


def kfuncs(btf: "BTF", *, include_base: bool = False) -> list[Kfunc]:
    """The kfuncs tagged in *btf*, by FUNC id (only this blob's own FUNCs unless *include_base*).

    Raises :class:`NotFoundError` for an untagged BTF (see the module docstring).
    """
    if not has_kfunc_tags(btf):
        raise NotFoundError(
            f"no DECL_TAG {KFUNC_TAG!r} in this BTF (built by pahole < 1.26?): its kfuncs can "
            "only be read from the kernel's .BTF_ids section (--btf-ids)", file=btf.file)
    return [Kfunc(btf.name_of(i), i) for i in sorted(tagged_kfunc_ids(btf, include_base=include_base))]


def find_set8s(btf: "BTF", data: bytes, *, file: str | None = None) -> list[KfuncSet]:
    """The ``btf_id_set8`` sets in a raw ``.BTF_ids`` section (heuristic: see the module docstring)."""
    if len(data) % 4:
        raise BTFError(f".BTF_ids section length {len(data)} is not a multiple of 4", file=file,
                       offset=len(data) - len(data) % 4)
    words = struct.unpack(f"<{len(data) // 4}I", data)
    n = len(words)
    kind_of = btf.kind_of
    top = btf.type_count

    def is_func(type_id: int) -> bool:
        return 0 < type_id <= top and kind_of(type_id) == Kind.FUNC

    found: list[KfuncSet] = []
    i = 0
    while i + 3 < n:
        cnt, set_flags = words[i], words[i + 1]
        end = i + 2 + 2 * cnt
        if cnt and set_flags in (0, BTF_SET8_KFUNCS) and end <= n:
            pairs = tuple(zip(words[i + 2:end:2], words[i + 3:end:2]))
            if all(is_func(fid) and kf < _MAX_KF_FLAGS for fid, kf in pairs) and all(
                    a[0] < b[0] for a, b in zip(pairs, pairs[1:])):
                found.append(KfuncSet(4 * i, set_flags, pairs))
                i = end
                continue
        i += 1
    if any(s.flags & BTF_SET8_KFUNCS for s in found):
        found = [s for s in found if s.flags & BTF_SET8_KFUNCS]
    return found


def read_btf_ids(source: "str | os.PathLike[str] | bytes") -> tuple[bytes, str | None]:
    """(section bytes, file name) from raw ``.BTF_ids`` bytes, a file holding them, or a vmlinux ELF."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None
    from sigbpf.btf.reader import read_file

    name = os.fspath(source)
    data = read_file(name)
    if data[:4] == b"\x7fELF":
        from sigbpf.elf.reader import read_named_section

        sec = read_named_section(data, ".BTF_ids", name)
        if sec is None:
            raise NotFoundError("no .BTF_ids section", file=name)
        data = sec
    return data, name


def btf_ids_kfunc_ids(source: "str | os.PathLike[str] | bytes", btf: "BTF") -> list[int]:
    """FUNC ids of the kfuncs in a ``.BTF_ids`` section (path, ELF path or bytes) of *btf*'s kernel."""
    data, name = read_btf_ids(source)
    return [k.id for k in kfuncs_from_btf_ids(btf, data, file=name)]


def kfuncs_from_btf_ids(btf: "BTF", data: bytes, *, file: str | None = None) -> list[Kfunc]:
    """kfuncs listed in the set8s of a ``.BTF_ids`` section, by FUNC id (flags OR-ed over sets)."""
    flags: dict[int, int] = {}
    for s in find_set8s(btf, data, file=file):
        for fid, kf in s.entries:
            flags[fid] = flags.get(fid, 0) | kf
    if not flags:
        raise NotFoundError("no btf_id_set8 of FUNCs of this BTF found in the .BTF_ids data "
                            "(is it the section of the same kernel?)", file=file)
    return [Kfunc(btf.name_of(fid), fid, flags[fid]) for fid in sorted(flags)]
