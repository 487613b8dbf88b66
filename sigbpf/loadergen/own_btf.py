"""The loader's own program BTF: its main function and the kfuncs its own instructions call.

A loader generated with ``own_kfuncs`` calls kfuncs itself, in the seed's
portable form: ``call`` with ``src_reg = BPF_PSEUDO_KFUNC_CALL_PROG_BTF`` (3)
and ``imm`` = the id of a FUNC *in the loader's own program BTF* named like
the kfunc.  That is the seed's scenario: a signed loader cannot carry vmlinux
ids (they differ between kernels; the signature is fixed), so a kernel with
the seed resolves the names at load time.

What the kernel needs to see that BTF (measured on 7.3, docs/FINDINGS.md): the
verifier attaches ``prog_btf_fd`` to the program only when func_info (or
line_info, or CO-RE relocations) come with it, so the loader's load carries one
func_info record, ``{insn_off 0, type_id = main}``.  The BTF is:

* ``[1] FUNC_PROTO`` ``int (void *ctx)`` with ``[2] INT int`` and ``[3] PTR void``;
* ``[4] FUNC`` the loader's main function (static: the verifier checks nothing
  of a static main's arguments);
* one ``FUNC`` per kfunc, ``GLOBAL`` (``BPF_BTF_LOAD`` refuses ``extern``
  FUNCs), prototype ``void (void)``: the seed resolves by name alone and the
  verifier checks every call against the *kernel's* prototype.

The bytes are a function of the kfunc names only (sorted), so a loader stays
byte-identical across machines and kernels.  **They are not covered by the
kernel's signature** (protocol v2 signs ``insns || blob``): see docs/FORMAT.md 8.4.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterable

#: The name of the loader's main function in its own BTF.
MAIN_NAME = "sigbpf_loader"
#: ``struct bpf_func_info {u32 insn_off; u32 type_id;}``.
FUNC_INFO_REC_SIZE = 8


@dataclass(frozen=True, slots=True)
class OwnBTF:
    """The loader's own BTF (``raw``), its main FUNC's id and each kfunc's FUNC id."""

    raw: bytes
    main_id: int
    kfunc_ids: tuple[tuple[str, int], ...]

    @property
    def func_info(self) -> bytes:
        """The one func_info record that makes the kernel attach this BTF to the loader."""
        return struct.pack("<II", 0, self.main_id)

    def kfunc_id(self, name: str) -> int:
        return dict(self.kfunc_ids)[name]

    def kfunc_name(self, type_id: int) -> str | None:
        return next((n for n, i in self.kfunc_ids if i == type_id), None)


def own_btf(kfuncs: Iterable[str]) -> OwnBTF:
    """The BTF (module docstring) for a loader that calls *kfuncs*."""
    from sigbpf.btf import BTFBuilder, FuncLinkage
    from sigbpf.btf.kinds import IntEncoding
    from sigbpf.btf.types import Func, FuncProto, Int, Param, Ptr

    b = BTFBuilder()
    int_id = b.add(Int("int", 4, IntEncoding.SIGNED, 0, 32))
    void_ptr = b.add(Ptr(0))
    main_proto = b.add(FuncProto(int_id, (Param("ctx", void_ptr),)))
    main_id = b.add(Func(MAIN_NAME, main_proto, FuncLinkage.STATIC))
    void_proto = b.add(FuncProto(0, ()))
    ids = tuple((name, b.add(Func(name, void_proto, FuncLinkage.GLOBAL)))
                for name in sorted(set(kfuncs)))
    return OwnBTF(b.encode(), main_id, ids)


def parse_own_btf(raw: bytes, main_id: int, *, file: str | None = None) -> OwnBTF:
    """An :class:`OwnBTF` read back from a loader file: its FUNCs other than main are the
    kfuncs.  FormatError when *raw* is not BTF or *main_id* is not a FUNC of it."""
    from sigbpf.btf import BTF, Kind
    from sigbpf.errors import FormatError, SigbpfError

    try:
        btf = BTF.parse(raw, file=file)
        if btf.kind_of(main_id) != Kind.FUNC:
            raise FormatError(f"loader BTF: main function id {main_id} is not a FUNC",
                              file=file)
    except FormatError:
        raise
    except SigbpfError as err:
        raise FormatError(f"loader BTF: {err.message}", file=file) from None
    kfuncs = tuple((btf.name_of(i), i) for i in btf.ids_of_kind(Kind.FUNC) if i != main_id)
    return OwnBTF(bytes(raw), main_id, kfuncs)


__all__ = ["OwnBTF", "own_btf", "parse_own_btf", "MAIN_NAME", "FUNC_INFO_REC_SIZE"]
