"""The program digest as the kernel computes it: ``prog->digest`` and ``prog->tag``.

``bpf_prog_calc_tag()`` (kernel/bpf/core.c) copies the instructions, zeroes
the immediates that hold map file descriptors (they differ from one load to
the next), and hashes the copy.  Since 6.18 the hash is SHA-256 into
``prog->digest``; the tag shown by ``BPF_OBJ_GET_INFO_BY_FD`` and bpftool is
its first 8 bytes.  The same ``prog->digest`` is what a map created with
``excl_prog_hash`` is compared against.

The zeroing rule, exactly as the kernel writes it (a two-state walk over the
slots, not a structural ld_imm64 parse):

* a slot with ``code == BPF_LD|BPF_IMM|BPF_DW`` and ``src_reg`` 1
  (``BPF_PSEUDO_MAP_FD``) or 2 (``BPF_PSEUDO_MAP_VALUE``), when the previous
  slot did not start such a load: its ``imm`` is zeroed;
* the slot right after it, if its ``code``, ``dst_reg``, ``src_reg`` and
  ``off`` are all zero: its ``imm`` is zeroed too (for ``MAP_VALUE`` that is
  the offset into the value);
* nothing else: ``MAP_IDX`` (5) / ``MAP_IDX_VALUE`` (6) indexes into
  ``fd_array`` stay in the hash, as do kfunc ``imm`` values.

When it runs: ``bpf_check()`` calls ``bpf_prog_calc_tag()`` at the start of
the pass that resolves ld_imm64 map references (``resolve_pseudo_ldimm64``,
renamed ``check_and_resolve_insns`` later), i.e. after
``add_subprog_and_kfunc()``, where the seed rewrites PROG_BTF kfunc calls.
tests/test_kernel_digest.py checks this module against the running kernel's
tag and ``excl_prog_hash``; tests/test_resolve_digest.py the rule's corner cases.
"""

from __future__ import annotations

import struct
from typing import Sequence, Union

from sigbpf.asm.instruction import Instruction
from sigbpf.asm.opcodes import INSN_SIZE, LD_IMM64_CODE, PseudoLdImm64

TAG_SIZE = 8  # BPF_TAG_SIZE
DIGEST_SIZE = 32  # SHA256_DIGEST_SIZE

_ZEROED_LD_SRCS = frozenset({int(PseudoLdImm64.MAP_FD), int(PseudoLdImm64.MAP_VALUE)})
_SLOT = struct.Struct("<BBhi")

InsnsLike = Union[Sequence[Instruction], bytes, bytearray, memoryview]


def _as_bytes(insns: InsnsLike) -> bytes:
    if isinstance(insns, (bytes, bytearray, memoryview)):
        data = bytes(insns)
        # Decoding checks the length (a multiple of 8) with a located error.
        Instruction.decode(data)
        return data
    return Instruction.encode(insns)


def digest_input(insns: InsnsLike) -> bytes:
    """The bytes the kernel hashes: the instructions with map fd immediates zeroed."""
    data = bytearray(_as_bytes(insns))
    was_ld_map = False
    for pos in range(0, len(data), INSN_SIZE):
        code, regs, off, _imm = _SLOT.unpack_from(data, pos)
        src, dst = regs >> 4, regs & 0x0F
        if not was_ld_map and code == LD_IMM64_CODE and src in _ZEROED_LD_SRCS:
            was_ld_map = True
            data[pos + 4:pos + 8] = b"\0\0\0\0"
        elif was_ld_map and code == 0 and dst == 0 and src == 0 and off == 0:
            was_ld_map = False
            data[pos + 4:pos + 8] = b"\0\0\0\0"
        else:
            was_ld_map = False
    return bytes(data)


def prog_sha256(insns: InsnsLike) -> bytes:
    """``prog->digest``: SHA-256 of :func:`digest_input` (what ``excl_prog_hash`` must equal)."""
    import hashlib  # on use: ~3 ms to import, and most commands never hash

    return hashlib.sha256(digest_input(insns)).digest()


def prog_tag(insns: InsnsLike) -> bytes:
    """``prog->tag``: the first 8 bytes of :func:`prog_sha256` (bpftool's ``tag``)."""
    return prog_sha256(insns)[:TAG_SIZE]


def raw_sha256(insns: InsnsLike) -> bytes:
    """SHA-256 of the instruction bytes as they are, nothing zeroed (what a 6.18 signature covers)."""
    import hashlib

    return hashlib.sha256(_as_bytes(insns)).digest()
