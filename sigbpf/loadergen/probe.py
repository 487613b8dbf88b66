"""Which loader protocol (docs/FORMAT.md 8.3) the running kernel implements.

The obvious probe does not decide: a tiny ``BPF_PROG_TYPE_SYSCALL`` program
loaded with ``fd_array_cnt = 1`` naming a frozen exclusive map whose
``excl_prog_hash`` is the program's SHA-256 is refused with ``EACCES``
"program's hash doesn't match map's excl_prog_hash" by 6.18 *and* by Debian's
7.3 (measured: 7.3 computes the program's hash before binding the maps only
for a signed load).  What does decide, without a key, is whether the v1
loader's prologue verifies -- it reads ``struct bpf_map`` at the offsets of
6.18's ``excl`` (u32 at 32) and ``sha`` (u8[32] at 0).  :func:`probe_protocol`:

1. ``BPF_MAP_CREATE`` with ``excl_prog_hash``: refused -> no protocol (``None``);
2. ``BPF_PROG_LOAD`` (``SYSCALL``, sleepable) of the prologue's reads of a map
   pointer (``ldx_w 32``, ``ldx_dw 0``): loads -> ``V1``; refused with the
   verifier naming ``struct bpf_map`` (7.3: "cannot access ptr member ops with
   moff 32 in struct bpf_map") -> ``V2``, the protocol of a kernel with
   exclusive maps whose ``bpf_map`` no longer starts with ``sha``/``excl``;
   anything else -> ``None``.

The verifier's view of ``struct bpf_map`` is the kernel BTF's, so this is
the BTF layout check done by the kernel itself.  Measured answers:
docs/FINDINGS.md, "Kernel-checked signatures".
"""

from __future__ import annotations

import errno
import hashlib
import struct
from dataclasses import dataclass

from sigbpf.loadergen.emit import MAP_EXCL_OFFSET, MAP_SHA_OFFSET
from sigbpf.loadergen.format import Protocol


def _prologue_reads(map_fd: int) -> bytes:
    """``r1 = map; r2 = *(u32 *)(r1 + excl); r3 = *(u64 *)(r1 + sha); r0 = 0; exit``."""
    return (struct.pack("<BBhi", 0x18, 0x11, 0, map_fd) + bytes(8)           # ld_imm64 MAP_FD
            + struct.pack("<BBhi", 0x61, 0x12, MAP_EXCL_OFFSET, 0)             # ldx_w
            + struct.pack("<BBhi", 0x79, 0x13, MAP_SHA_OFFSET, 0)              # ldx_dw
            + bytes.fromhex("b700000000000000" "9500000000000000"))


@dataclass(frozen=True)
class ProbeResult:
    """The probe's verdict: a protocol or None, and the kernel's answer that decided it."""

    protocol: Protocol | None
    answer: str

    def describe(self) -> str:
        if self.protocol is None:
            return f"the running kernel implements neither loader protocol ({self.answer})"
        return (f"the running kernel implements protocol v{int(self.protocol)} "
                f"(probed: {self.answer})")


def probe_protocol() -> ProbeResult:
    """Ask the running kernel (see the module docstring); needs bpf() (CAP_BPF)."""
    from sigbpf.elf.maps import MapType
    from sigbpf.elf.progtypes import ProgFlags, ProgType
    from sigbpf.errors import KernelError, errno_name
    from sigbpf.kernel.maps import create_map
    from sigbpf.kernel.program import ProgLoad, load_program

    def said(err: KernelError) -> str:
        name = errno_name(err.errno) or f"errno {err.errno}"
        lines = [ln.strip() for ln in (err.log or "").splitlines()
                 if ln.strip() and not ln.startswith("processed ")]
        return name + (f": {lines[-1]}" if lines else "")

    try:
        create_map(MapType.ARRAY, 4, 8, 1, name="__probe.excl",
                   excl_prog_hash=hashlib.sha256(b"").digest()).close()
    except KernelError as err:
        return ProbeResult(None, f"no exclusive maps: BPF_MAP_CREATE with excl_prog_hash: "
                                 f"{said(err)}")
    with create_map(MapType.ARRAY, 4, 8, 1, name="__probe.map") as plain:
        req = ProgLoad(prog_type=ProgType.SYSCALL, insns=_prologue_reads(plain.fileno()),
                       license="GPL", name="__probe.prog", flags=ProgFlags.SLEEPABLE)
        try:
            with load_program(req):
                pass
        except KernelError as err:
            if err.errno == errno.EACCES and "struct bpf_map" in (err.log or ""):
                return ProbeResult(Protocol.V2, f"the v1 prologue's read of struct bpf_map is "
                                                f"refused: {said(err)}")
            return ProbeResult(None, f"the v1 prologue's read of struct bpf_map: {said(err)}")
    return ProbeResult(Protocol.V1, "the v1 prologue's read of struct bpf_map (excl at "
                                    f"{MAP_EXCL_OFFSET}, sha at {MAP_SHA_OFFSET}) verifies")


__all__ = ["ProbeResult", "probe_protocol"]
