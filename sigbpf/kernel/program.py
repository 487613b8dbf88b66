"""``BPF_PROG_LOAD``: a program into the kernel, with the verifier log on refusal.

``ProgType``, ``AttachType`` and ``ProgFlags`` are re-exported from
:mod:`sigbpf.elf.progtypes`, where sigbpf names them once.

A :class:`ProgLoad` holds everything one load needs, already encoded for the
kernel (instruction bytes, ``bpf_func_info`` / ``bpf_line_info`` /
``bpf_core_relo`` records, the ``fd_array``).  :func:`load_program` passes it
and returns the program :class:`~sigbpf.kernel.syscall.Fd`; on refusal it
raises :class:`~sigbpf.errors.KernelError` with the errno and the full
verifier log (the log policy is in :mod:`sigbpf.kernel.log`: no log first,
``log_level = 1`` on the retry).
"""

from __future__ import annotations

import array
import ctypes
from dataclasses import dataclass

from sigbpf.elf.progtypes import AttachType, ProgFlags, ProgType  # the one place they are named
from sigbpf.errors import KernelError
from sigbpf.kernel import attr as A
from sigbpf.kernel.log import with_log_retry
from sigbpf.kernel.maps import object_name
from sigbpf.kernel.syscall import Cmd, Fd, bpf

__all__ = ["ProgLoad", "load_program", "ProgType", "AttachType", "ProgFlags",
           "FUNC_INFO_REC_SIZE", "LINE_INFO_REC_SIZE", "CORE_RELO_REC_SIZE"]

#: Record sizes of the kernel's structs (bpf_func_info, bpf_line_info, bpf_core_relo).
FUNC_INFO_REC_SIZE = 8
LINE_INFO_REC_SIZE = 16
CORE_RELO_REC_SIZE = 16


@dataclass(frozen=True, slots=True)
class ProgLoad:
    """One BPF_PROG_LOAD request, every blob already in the kernel's encoding."""

    prog_type: int
    insns: bytes
    license: str = "GPL"
    name: str = ""
    expected_attach_type: int = 0
    flags: int = 0
    kern_version: int = 0
    attach_btf_id: int = 0
    #: The BTF object ``attach_btf_id`` is in: a module's BTF fd, or None for vmlinux.
    attach_btf_obj_fd: int | None = None
    prog_btf_fd: int | None = None
    func_info: bytes = b""
    func_info_rec_size: int = FUNC_INFO_REC_SIZE
    line_info: bytes = b""
    line_info_rec_size: int = LINE_INFO_REC_SIZE
    core_relos: bytes = b""
    core_relo_rec_size: int = CORE_RELO_REC_SIZE
    fd_array: tuple[int, ...] = ()
    #: 6.18: when set, the kernel binds every map of fd_array to the program.
    fd_array_cnt: int = 0
    signature: bytes | None = None
    keyring_id: int = 0


def load_program(req: ProgLoad) -> Fd:
    """Load *req*; the program fd, or KernelError(errno, log=full verifier log)."""
    if len(req.insns) % 8 or not req.insns:
        raise KernelError(f"program {req.name!r}: instruction bytes must be a non-empty multiple of 8",
                          errno=22)
    keep = A.Buffers()
    fields: dict[str, int | bytes] = dict(
        prog_type=req.prog_type, insn_cnt=len(req.insns) // 8, insns=keep.ptr(req.insns),
        license=keep.cstr(req.license), kern_version=req.kern_version, prog_flags=req.flags,
        prog_name=object_name(req.name).encode(), expected_attach_type=req.expected_attach_type,
        attach_btf_id=req.attach_btf_id,
    )
    if req.attach_btf_obj_fd is not None:
        fields["attach_prog_fd"] = req.attach_btf_obj_fd  # the same u32 (attach_btf_obj_fd)
    if req.prog_btf_fd is not None:
        fields["prog_btf_fd"] = req.prog_btf_fd
        if req.func_info:
            fields.update(func_info=keep.ptr(req.func_info), func_info_rec_size=req.func_info_rec_size,
                          func_info_cnt=len(req.func_info) // req.func_info_rec_size)
        if req.line_info:
            fields.update(line_info=keep.ptr(req.line_info), line_info_rec_size=req.line_info_rec_size,
                          line_info_cnt=len(req.line_info) // req.line_info_rec_size)
        if req.core_relos:
            fields.update(core_relos=keep.ptr(req.core_relos), core_relo_rec_size=req.core_relo_rec_size,
                          core_relo_cnt=len(req.core_relos) // req.core_relo_rec_size)
    if req.fd_array:
        fds = array.array("i", req.fd_array)
        fields["fd_array"] = keep.ptr(fds.tobytes())
        fields["fd_array_cnt"] = req.fd_array_cnt
    if req.signature is not None:
        fields.update(signature=keep.ptr(req.signature), signature_size=len(req.signature),
                      keyring_id=req.keyring_id)
    label = f"loading program {req.name!r} (BPF_PROG_LOAD)" if req.name else "loading program (BPF_PROG_LOAD)"

    def attempt(log: ctypes.Array | None, level: int) -> int:
        buf = A.PROG_LOAD.pack(**fields, log_level=level,
                               log_buf=ctypes.addressof(log) if log is not None else 0,
                               log_size=ctypes.sizeof(log) if log is not None else 0)
        try:
            return bpf(Cmd.PROG_LOAD, buf, what=label)
        except KernelError as err:
            err.log_true_size = A.PROG_LOAD.get(buf, "log_true_size")  # type: ignore[attr-defined]
            raise

    return Fd(with_log_retry(attempt), "prog")
