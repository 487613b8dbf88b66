"""The loader's emitters: each writes one step of the loader, keeping one register contract.

The contract (libbpf ``gen_loader.c``'s):

* ``r6`` = the ctx (``struct bpf_loader_ctx *``), set by :meth:`Emitter.prologue`, never changed;
* ``r7`` = the result of the last ``bpf_sys_bpf`` (or lookup helper): an fd, an id, or ``-errno``;
* ``r8`` = the instruction being patched (a pointer into the blob), set per relocation;
* ``r9`` = scratch (a BTF object fd, the fd being closed);
* ``r0``-``r5`` = clobbered by every emitter (helper calls).

Errors have one exit: every failing step is followed by :meth:`Emitter.check_err`
(``if r7 s< 0 goto cleanup``); the cleanup block (:meth:`Emitter.cleanup`) closes
every fd the loader may have opened (the stack's BTF and program fds, the
``fd_array``'s map and module-BTF fds; an fd <= 0 is skipped) and returns ``r7``.
Its tail, label ``exit_r7``, returns ``r7`` without closing anything: only the
prologue's hash check goes there, before anything is open (and before the
blob, which the check has just found altered, can be trusted to hold fds).

The stack holds ``struct { u32 btf_fd; u32 prog_fd[n]; }`` at ``r10 - stack_size``
(below it, 8-aligned, a ``struct bpf_iter_num`` when the loader calls kfuncs itself),
zeroed first with stores (libbpf uses ``bpf_probe_read_kernel(dst, size, NULL)``, which
needs a kernel with tracing: :meth:`Emitter.prologue`).
"""

from __future__ import annotations

import errno as errno_mod
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from sigbpf.asm import AluOp, Instruction, JmpOp, PseudoCall, Size, alu32_imm, alu64_imm, \
    alu64_reg, call_helper, call_kfunc, exit_, ldx_mem, mov64_imm, mov64_reg, st_mem, stx_mem
from sigbpf.kernel import attr as A
from sigbpf.kernel.syscall import Cmd
from sigbpf.loadergen.assembler import Asm, BlobAddr, Const, MapPtr, Value
from sigbpf.loadergen.blob import Blob

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.loadergen.own_btf import OwnBTF


class Helper(IntEnum):
    """The helpers a loader calls (``enum bpf_func_id``)."""

    PROBE_READ_KERNEL = 113
    COPY_FROM_USER = 148
    SYS_BPF = 166
    BTF_FIND_BY_NAME_KIND = 167
    SYS_CLOSE = 168
    KALLSYMS_LOOKUP_NAME = 179


class Reg(IntEnum):
    """Registers by role (module docstring)."""

    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    CTX = 6
    RET = 7
    INSN = 8
    SCRATCH = 9
    FP = 10


#: ``struct bpf_loader_ctx {u32 sz, flags, log_level, log_size; u64 log_buf;}``.
CTX_HEADER_SIZE = 24
CTX_LOG_LEVEL = 8
CTX_LOG_SIZE = 12
CTX_LOG_BUF = 16
#: ``struct bpf_map_desc {int map_fd; u32 max_entries; u64 initial_value;}``.
MAP_DESC_SIZE = 16
#: ``struct bpf_prog_desc {int prog_fd;}``.
PROG_DESC_SIZE = 4

#: ``struct bpf_insn`` field offsets.
INSN_OFF = 2
INSN_IMM = 4
INSN_REGS = 1
INSN_SIZE = 8

#: ``struct bpf_map``: ``u8 sha[32]`` at 0, ``u32 excl`` at 32 (6.18; what emit_signature_match reads).
MAP_SHA_OFFSET = 0
MAP_EXCL_OFFSET = 32

#: Attr sizes the loader passes (libbpf's ``offsetofend`` of the last field it sets).
BTF_LOAD_ATTR_SIZE = 28  # ... btf_log_level
MAP_CREATE_ATTR_SIZE = 72  # ... map_extra
MAP_ELEM_ATTR_SIZE = 32  # ... flags
MAP_FREEZE_ATTR_SIZE = 4  # map_fd
PROG_LOAD_ATTR_SIZE = 140  # ... core_relo_rec_size

_SIZES = {1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW}


def map_desc_offset(index: int) -> int:
    """Offset in the ctx of map descriptor *index*."""
    return CTX_HEADER_SIZE + MAP_DESC_SIZE * index


def prog_desc_offset(nr_maps: int, index: int) -> int:
    """Offset in the ctx of program descriptor *index*."""
    return CTX_HEADER_SIZE + MAP_DESC_SIZE * nr_maps + PROG_DESC_SIZE * index


def ctx_size(nr_maps: int, nr_progs: int) -> int:
    return prog_desc_offset(nr_maps, nr_progs)


@dataclass
class Emitter:
    """Writes loader instructions into *asm* and data into *blob*.

    *nr_progs* sizes the stack; *fd_array* names the blob chunk of ``fd_array``
    with *fd_slots* slots (maps first, then module-BTF slots of kfuncs).
    """

    asm: Asm
    blob: Blob
    nr_progs: int
    fd_slots: int
    fd_array: str = "fd_array"
    #: The loader's own BTF when it calls kfuncs itself (its cleanup loop, :meth:`cleanup`).
    own: "OwnBTF | None" = None

    # ------------------------------------------------------------------ layout
    @property
    def _iter_size(self) -> int:
        """``struct bpf_iter_num`` (8 bytes) at the stack's bottom when the cleanup loops."""
        return 8 if self.own is not None else 0

    @property
    def stack_size(self) -> int:
        return -(-(self._iter_size + 4 + 4 * self.nr_progs) // 8) * 8

    def stack_iter(self) -> int:
        return -self.stack_size

    def stack_btf_fd(self) -> int:
        return -self.stack_size + self._iter_size

    def stack_prog_fd(self, index: int) -> int:
        return self.stack_btf_fd() + 4 + 4 * index

    def fd_slot(self, index: int) -> BlobAddr:
        return BlobAddr(self.fd_array, 4 * index)

    # ------------------------------------------------------------- primitives
    def rel_store(self, attr: str, field_off: int, data: str) -> None:
        """``*(u64 *)(blob[attr] + field_off) = &blob[data]``.  Clobbers r0, r1."""
        self.asm.ld_imm64(Reg.R0, BlobAddr(data))
        self.asm.ld_imm64(Reg.R1, BlobAddr(attr, field_off))
        self.asm.emit(stx_mem(Size.DW, Reg.R1, Reg.R0, 0))

    def blob_to_blob(self, dst: BlobAddr, src: BlobAddr, size: int) -> None:
        """``*dst = *src`` (*size* bytes).  Clobbers r0, r1, r2; leaves the value in r0."""
        self.asm.ld_imm64(Reg.R2, src)
        self.asm.emit(ldx_mem(_SIZES[size], Reg.R0, Reg.R2, 0))
        self.asm.ld_imm64(Reg.R1, dst)
        self.asm.emit(stx_mem(_SIZES[size], Reg.R1, Reg.R0, 0))

    def ctx_to_blob(self, dst: BlobAddr, ctx_off: int, size: int, *, if_nonzero: bool = False) -> None:
        """``*dst = ctx[ctx_off]`` (*size* bytes); with *if_nonzero* a zero leaves *dst* as is.
        Clobbers r0, r1."""
        skip = self.asm.fresh("keep")
        self.asm.emit(ldx_mem(_SIZES[size], Reg.R0, Reg.CTX, ctx_off))
        if if_nonzero:
            self.asm.jmp_imm(JmpOp.JEQ, Reg.R0, 0, skip)
        self.asm.ld_imm64(Reg.R1, dst)
        self.asm.emit(stx_mem(_SIZES[size], Reg.R1, Reg.R0, 0))
        if if_nonzero:
            self.asm.label(skip)

    def stack_to_blob(self, dst: BlobAddr, stack_off: int, size: int = 4) -> None:
        """``*dst = stack[stack_off]``.  Clobbers r0, r1."""
        self.asm.emit(ldx_mem(_SIZES[size], Reg.R0, Reg.FP, stack_off))
        self.asm.ld_imm64(Reg.R1, dst)
        self.asm.emit(stx_mem(_SIZES[size], Reg.R1, Reg.R0, 0))

    def sys_bpf(self, cmd: Cmd, attr: str, attr_size: int) -> None:
        """``r7 = bpf_sys_bpf(cmd, &blob[attr], attr_size)``.  Clobbers r0-r5."""
        self.asm.emit(mov64_imm(Reg.R1, int(cmd)))
        self.asm.ld_imm64(Reg.R2, BlobAddr(attr))
        self.asm.emit(mov64_imm(Reg.R3, attr_size), call_helper(Helper.SYS_BPF),
                      mov64_reg(Reg.RET, Reg.R0))

    def check_err(self) -> None:
        """``if r7 s< 0 goto cleanup``: the one error path."""
        self.asm.jmp_imm(JmpOp.JSLT, Reg.RET, 0, "cleanup")

    def close_r1(self) -> None:
        """``if r1 s> 0: bpf_sys_close(r1)``.  Clobbers r0-r5, r9."""
        skip = self.asm.fresh("open")
        self.asm.jmp_imm(JmpOp.JSLE, Reg.R1, 0, skip)
        self.asm.emit(mov64_reg(Reg.SCRATCH, Reg.R1), call_helper(Helper.SYS_CLOSE))
        self.asm.label(skip)

    def close_blob(self, where: BlobAddr) -> None:
        """Close the fd stored at *where* (if > 0).  Clobbers r0-r5, r9."""
        self.asm.ld_imm64(Reg.R0, where)
        self.asm.emit(ldx_mem(Size.W, Reg.R1, Reg.R0, 0))
        self.close_r1()

    def close_stack(self, stack_off: int) -> None:
        """Close the fd stored in the stack at *stack_off* (if > 0).  Clobbers r0-r5, r9."""
        self.asm.emit(ldx_mem(Size.W, Reg.R1, Reg.FP, stack_off))
        self.close_r1()

    def find_by_name_kind(self, name: str, text: str, kind: int) -> None:
        """``r7 = bpf_btf_find_by_name_kind(&blob[name], len, kind, 0)``: the id in the low
        32 bits, the BTF object fd (0 = vmlinux) in the high 32, or ``-errno``.
        Clobbers r0-r5.  *name* is the blob chunk holding *text* NUL-terminated."""
        if name not in self.blob:
            self.blob.add(name, text.encode() + b"\0")
        self.asm.ld_imm64(Reg.R1, BlobAddr(name))
        self.asm.emit(mov64_imm(Reg.R2, len(text.encode()) + 1), mov64_imm(Reg.R3, kind),
                      mov64_imm(Reg.R4, 0), call_helper(Helper.BTF_FIND_BY_NAME_KIND),
                      mov64_reg(Reg.RET, Reg.R0))

    # ------------------------------------------------------------------ steps
    def prologue(self) -> None:
        """``r6 = ctx``; the stack zeroed, 8 bytes a store.  libbpf zeroes it with
        ``bpf_probe_read_kernel(dst, size, NULL)`` in 6 instructions, but a syscall program
        gets that helper only from a kernel with ``CONFIG_BPF_EVENTS`` (measured: the seed
        test kernel's small configuration refuses it), and a loader must not need tracing;
        stores need nothing (at most 64 of them: the stack is 512 bytes)."""
        self.asm.comment("prologue: r6 = ctx, zero the stack (btf_fd, prog_fd[])")
        self.asm.emit(mov64_reg(Reg.CTX, Reg.R1),
                      *(st_mem(Size.DW, Reg.FP, off, 0) for off in range(-self.stack_size, 0, 8)))

    def signature_match(self) -> None:
        """Protocol v1: the blob map must be exclusive and its SHA-256 (``map->sha``, filled by
        ``BPF_OBJ_GET_INFO_BY_FD``) equal to the hash in these instructions (constants
        ``sha0``..``sha3``, little-endian u64 words, given at assembly).  Otherwise
        ``r7 = -EINVAL`` and exit.  Clobbers r1-r3, r7."""
        self.asm.comment("signature_match: the blob map is exclusive and its hash is built in")
        self.asm.ld_imm64(Reg.R1, MapPtr())
        self.asm.emit(ldx_mem(Size.W, Reg.R2, Reg.R1, MAP_EXCL_OFFSET),
                      mov64_imm(Reg.RET, -errno_mod.EINVAL))
        self.asm.jmp_imm(JmpOp.JNE, Reg.R2, 1, "exit_r7")
        for i in range(4):
            self.asm.ld_imm64(Reg.R1, MapPtr())
            self.asm.emit(ldx_mem(Size.DW, Reg.R2, Reg.R1, MAP_SHA_OFFSET + 8 * i))
            self.asm.ld_imm64(Reg.R3, Const(f"sha{i}"))
            self.asm.jmp_reg(JmpOp.JNE, Reg.R2, Reg.R3, "exit_r7")

    def load_btf(self, btf: bytes) -> None:
        """``BPF_BTF_LOAD`` of the program BTF; its fd to the stack's ``btf_fd``."""
        self.asm.comment(f"load_btf: program BTF, {len(btf)} bytes")
        self.blob.add("btf", btf)
        attr = "btf.attr"
        self.blob.add(attr, bytes(A.BTF_LOAD.pack(btf_size=len(btf)))[:BTF_LOAD_ATTR_SIZE])
        self._log_from_ctx(attr, "btf_log_level", "btf_log_size", "btf_log_buf")
        self.rel_store(attr, A.BTF_LOAD.fields["btf"].offset, "btf")
        self.sys_bpf(Cmd.BTF_LOAD, attr, BTF_LOAD_ATTR_SIZE)
        self.check_err()
        self.asm.emit(stx_mem(Size.W, Reg.FP, Reg.RET, self.stack_btf_fd()))

    def _log_from_ctx(self, attr: str, level: str, size: str, buf: str, layout: A.Layout = A.BTF_LOAD
                      ) -> None:
        self.ctx_to_blob(BlobAddr(attr, layout.fields[level].offset), CTX_LOG_LEVEL, 4)
        self.ctx_to_blob(BlobAddr(attr, layout.fields[size].offset), CTX_LOG_SIZE, 4)
        self.ctx_to_blob(BlobAddr(attr, layout.fields[buf].offset), CTX_LOG_BUF, 8)

    def map_create(self, index: int, name: str, attr_bytes: bytes, *, with_btf: bool,
                   inner_slot: int | None, max_entries_from_ctx: bool) -> None:
        """``BPF_MAP_CREATE`` for map *index*; its fd to ``fd_array[index]``.  ``btf_fd`` from the
        stack, ``inner_map_fd`` from ``fd_array[inner_slot]``, ``max_entries`` from the ctx's
        map descriptor when *max_entries_from_ctx* (and it is not 0)."""
        self.asm.comment(f"map_create: map {index} {name!r}")
        attr = f"map{index}.attr"
        self.blob.add(attr, attr_bytes[:MAP_CREATE_ATTR_SIZE])
        fields = A.MAP_CREATE.fields
        if with_btf:
            self.stack_to_blob(BlobAddr(attr, fields["btf_fd"].offset), self.stack_btf_fd())
        if inner_slot is not None:
            self.blob_to_blob(BlobAddr(attr, fields["inner_map_fd"].offset),
                              self.fd_slot(inner_slot), 4)
        if max_entries_from_ctx:
            self.ctx_to_blob(BlobAddr(attr, fields["max_entries"].offset),
                             map_desc_offset(index) + 4, 4, if_nonzero=True)
        self.sys_bpf(Cmd.MAP_CREATE, attr, MAP_CREATE_ATTR_SIZE)
        self.check_err()
        self.asm.ld_imm64(Reg.R1, self.fd_slot(index))
        self.asm.emit(stx_mem(Size.W, Reg.R1, Reg.RET, 0))

    def map_update(self, tag: str, map_slot: int, key: bytes, value: BlobAddr | bytes) -> None:
        """``BPF_MAP_UPDATE_ELEM`` of the map in ``fd_array[map_slot]``: *key* -> *value* (bytes
        put in the blob, or an address in it, e.g. another fd slot)."""
        attr = f"{tag}.attr"
        self.blob.add(f"{tag}.key", key)
        if isinstance(value, bytes):
            self.blob.add(f"{tag}.value", value)
            value = BlobAddr(f"{tag}.value")
        self.blob.add(attr, bytes(MAP_ELEM_ATTR_SIZE))
        fields = A.MAP_ELEM.fields
        self.blob_to_blob(BlobAddr(attr, fields["map_fd"].offset), self.fd_slot(map_slot), 4)
        self.rel_store(attr, fields["key"].offset, f"{tag}.key")
        self.asm.ld_imm64(Reg.R0, value)
        self.asm.ld_imm64(Reg.R1, BlobAddr(attr, fields["value"].offset))
        self.asm.emit(stx_mem(Size.DW, Reg.R1, Reg.R0, 0))
        self.sys_bpf(Cmd.MAP_UPDATE_ELEM, attr, MAP_ELEM_ATTR_SIZE)
        self.check_err()

    def initial_value_from_ctx(self, index: int, dst: BlobAddr, size: int) -> None:
        """``bpf_copy_from_user(dst, size, ctx.map_desc[index].initial_value)`` (helper 148; a
        sleepable loader may call it), libbpf's ``bpf_gen__map_update_elem`` with the caller's
        initial value -- but required: ``initial_value`` 0 is the loader's error (``-EINVAL``,
        through cleanup), and so is a failed copy (``-EFAULT``).  Clobbers r0-r5, r7."""
        self.asm.comment(f"initial value: map {index}, {size} bytes from the ctx's initial_value")
        self.asm.emit(ldx_mem(Size.DW, Reg.R3, Reg.CTX, map_desc_offset(index) + 8),
                      mov64_imm(Reg.RET, -errno_mod.EINVAL))
        self.asm.jmp_imm(JmpOp.JEQ, Reg.R3, 0, "cleanup")
        self.asm.ld_imm64(Reg.R1, dst)
        self.asm.emit(mov64_imm(Reg.R2, size), call_helper(Helper.COPY_FROM_USER),
                      mov64_reg(Reg.RET, Reg.R0))
        self.check_err()

    def map_freeze(self, index: int) -> None:
        """``BPF_MAP_FREEZE`` of map *index*."""
        self.asm.comment(f"map_freeze: map {index}")
        attr = f"map{index}.freeze.attr"
        self.blob.add(attr, bytes(MAP_FREEZE_ATTR_SIZE))
        self.blob_to_blob(BlobAddr(attr), self.fd_slot(index), 4)
        self.sys_bpf(Cmd.MAP_FREEZE, attr, MAP_FREEZE_ATTR_SIZE)
        self.check_err()

    def prog_fd_to_blob(self, dst: BlobAddr, prog: int) -> None:
        """``*dst = prog_fd[prog]`` (from the stack)."""
        self.stack_to_blob(dst, self.stack_prog_fd(prog))

    def kfunc_lookup(self, name: str, *, weak: bool, fd_slot: int,
                     call_sites: list[BlobAddr], addr_sites: list[BlobAddr]) -> None:
        """Resolve kfunc *name* by name in the running kernel and patch its sites.

        ``r7 = bpf_btf_find_by_name_kind(name, FUNC)``; a strong kfunc that is not found
        goes to cleanup.  Found: each CALL site (``src_reg 2``) gets ``imm`` = the id and
        ``off`` = 0 (vmlinux) or *fd_slot* (a module: its BTF fd goes to ``fd_array[fd_slot]``);
        each address site (``ld_imm64 src_reg 3``, ``bpf_ksym_exists``) gets ``imm`` = id,
        second ``imm`` = the BTF object fd.  A weak kfunc not found: CALL sites get
        ``imm 0, off 0`` (libbpf: the verifier drops such a call when it is dead), address
        sites become ``ld_imm64 0`` (``src_reg`` cleared).  Uses r8 = the site, r9 = the fd."""
        asm = self.asm
        asm.comment(f"kfunc: {name}{' (weak)' if weak else ''}: {len(call_sites)} call(s), "
                    f"{len(addr_sites)} address(es)")
        self.find_by_name_kind(f"name.{name}", name, 12)
        if not weak:
            self.check_err()
        found, done = asm.fresh("found"), asm.fresh("patched")
        asm.jmp_imm(JmpOp.JSGE, Reg.RET, 0, found)
        for site in call_sites:
            asm.ld_imm64(Reg.INSN, site)
            asm.emit(st_mem(Size.W, Reg.INSN, INSN_IMM, 0), st_mem(Size.H, Reg.INSN, INSN_OFF, 0))
        self._zero_ld_imm64_sites(addr_sites)
        asm.goto(done)
        asm.label(found)
        self._keep_btf_obj_fd(fd_slot)
        for site in call_sites:
            vmlinux = asm.fresh("vmlinux")
            asm.ld_imm64(Reg.INSN, site)
            asm.emit(stx_mem(Size.W, Reg.INSN, Reg.RET, INSN_IMM),
                     st_mem(Size.H, Reg.INSN, INSN_OFF, 0))
            asm.jmp_imm(JmpOp.JEQ, Reg.SCRATCH, 0, vmlinux)
            asm.emit(st_mem(Size.H, Reg.INSN, INSN_OFF, fd_slot))
            asm.label(vmlinux)
        self._patch_ld_imm64_sites(addr_sites)
        asm.label(done)

    def _keep_btf_obj_fd(self, fd_slot: int) -> None:
        """After a successful ``bpf_btf_find_by_name_kind`` (r7 = BTF obj fd << 32 | id):
        r9 = the BTF object fd (0: vmlinux), also stored in ``fd_array[fd_slot]``."""
        self.asm.emit(mov64_reg(Reg.SCRATCH, Reg.RET), alu64_imm(AluOp.RSH, Reg.SCRATCH, 32))
        self.asm.ld_imm64(Reg.R0, self.fd_slot(fd_slot))
        self.asm.emit(stx_mem(Size.W, Reg.R0, Reg.SCRATCH, 0))

    def _patch_ld_imm64_sites(self, sites: list[BlobAddr]) -> None:
        """Each ld_imm64 site gets ``imm`` = r7 (the id) and second ``imm`` = r9 (the BTF
        object fd, :meth:`_keep_btf_obj_fd`).  Uses r8."""
        for site in sites:
            self.asm.ld_imm64(Reg.INSN, site)
            self.asm.emit(stx_mem(Size.W, Reg.INSN, Reg.RET, INSN_IMM),
                          stx_mem(Size.W, Reg.INSN, Reg.SCRATCH, INSN_SIZE + INSN_IMM))

    def _zero_ld_imm64_sites(self, sites: list[BlobAddr]) -> None:
        """Each ld_imm64 site becomes ``ld_imm64 dst, 0`` (:meth:`_ld_imm64_to_zero`)."""
        for site in sites:
            self.asm.ld_imm64(Reg.INSN, site)
            self._ld_imm64_to_zero()

    def _ld_imm64_to_zero(self) -> None:
        """The ld_imm64 at r8 becomes ``ld_imm64 dst, 0`` (src_reg cleared).  Clobbers r9."""
        self.asm.emit(st_mem(Size.W, Reg.INSN, INSN_IMM, 0),
                      st_mem(Size.W, Reg.INSN, INSN_SIZE + INSN_IMM, 0),
                      ldx_mem(Size.B, Reg.SCRATCH, Reg.INSN, INSN_REGS),
                      alu32_imm(AluOp.AND, Reg.SCRATCH, 0x0F),
                      stx_mem(Size.B, Reg.INSN, Reg.SCRATCH, INSN_REGS))

    def ksym_typed(self, name: str, *, weak: bool, sites: list[BlobAddr], obj_fd_slot: int) -> None:
        """A typed ksym (kernel variable) by name: ``bpf_btf_find_by_name_kind(name, VAR)``;
        each site ``imm`` = the VAR id, second ``imm`` = its BTF object fd (also kept in
        ``fd_array[obj_fd_slot]``, closed after the program is loaded).  Weak and absent:
        ``ld_imm64 dst, 0``.  The type-compatibility check libbpf makes is not made."""
        asm = self.asm
        asm.comment(f"ksym: {name}{' (weak)' if weak else ''} (VAR)")
        self.find_by_name_kind(f"name.{name}", name, 14)
        if not weak:
            self.check_err()
        found, done = asm.fresh("found"), asm.fresh("patched")
        asm.jmp_imm(JmpOp.JSGE, Reg.RET, 0, found)
        self._zero_ld_imm64_sites(sites)
        asm.goto(done)
        asm.label(found)
        self._keep_btf_obj_fd(obj_fd_slot)
        self._patch_ld_imm64_sites(sites)
        asm.label(done)

    def ksym_typeless(self, name: str, *, weak: bool, sites: list[BlobAddr]) -> None:
        """A typeless ksym: ``bpf_kallsyms_lookup_name(name, len, 0, &res)``; each site gets the
        address (low 32 bits in ``imm``, high in the second ``imm``).  Not found: a strong
        one goes to cleanup, a weak one gets address 0."""
        asm = self.asm
        asm.comment(f"ksym: {name}{' (weak)' if weak else ''} (kallsyms)")
        text = f"name.{name}"
        if text not in self.blob:
            self.blob.add(text, name.encode() + b"\0")
        res = f"kallsyms.{name}"
        if res not in self.blob:
            self.blob.add(res, bytes(8))
        asm.ld_imm64(Reg.R1, BlobAddr(text))
        asm.emit(mov64_imm(Reg.R2, len(name.encode()) + 1), mov64_imm(Reg.R3, 0))
        asm.ld_imm64(Reg.R4, BlobAddr(res))
        asm.emit(call_helper(Helper.KALLSYMS_LOOKUP_NAME), mov64_reg(Reg.RET, Reg.R0))
        if weak:
            ok = asm.fresh("absent_ok")
            asm.jmp_imm(JmpOp.JEQ, Reg.RET, -errno_mod.ENOENT, ok)
            self.check_err()
            asm.label(ok)
        else:
            self.check_err()
        asm.ld_imm64(Reg.R0, BlobAddr(res))
        asm.emit(ldx_mem(Size.DW, Reg.SCRATCH, Reg.R0, 0))
        for site in sites:
            asm.ld_imm64(Reg.INSN, site)
            asm.emit(stx_mem(Size.W, Reg.INSN, Reg.SCRATCH, INSN_IMM),
                     mov64_reg(Reg.R0, Reg.SCRATCH), alu64_imm(AluOp.RSH, Reg.R0, 32),
                     stx_mem(Size.W, Reg.INSN, Reg.R0, INSN_SIZE + INSN_IMM))

    def attach_target(self, attr: str, name: str, kind: int) -> None:
        """``attach_btf_id`` / ``attach_btf_obj_fd`` of the program load *attr*, found by name
        (vmlinux, then the modules; the helper's order).  Not found: cleanup."""
        self.asm.comment(f"attach target: {name} (kind {kind})")
        self.find_by_name_kind(f"attach.{name}.{kind}", name, kind)
        self.check_err()
        self.asm.ld_imm64(Reg.R0, BlobAddr(attr))
        self.asm.emit(stx_mem(Size.W, Reg.R0, Reg.RET, A.PROG_LOAD.fields["attach_btf_id"].offset),
                      alu64_imm(AluOp.RSH, Reg.RET, 32),
                      stx_mem(Size.W, Reg.R0, Reg.RET, A.PROG_LOAD.fields["attach_prog_fd"].offset))

    def expected_attach_type_from_ctx(self, attr: str, desc_offset: int) -> None:
        """A struct_ops program: ``expected_attach_type`` of the program load *attr* is the
        member's index in the running kernel's struct, which no helper computes; the caller
        writes it into the program's ctx descriptor (its ``prog_fd``, an output the loader
        overwrites) and the loader copies it from there (docs/FORMAT.md 8.2)."""
        self.asm.comment("expected_attach_type: the struct_ops member index from the ctx")
        self.ctx_to_blob(BlobAddr(attr, A.PROG_LOAD.fields["expected_attach_type"].offset),
                         desc_offset, 4)

    def prog_load_pointers(self, attr: str, chunks: dict[str, str], with_btf: bool) -> None:
        """The pointers of a ``BPF_PROG_LOAD`` attr (license, insns, func/line info, core
        relos, fd_array: field -> blob chunk), the log from the ctx, ``prog_btf_fd``."""
        fields = A.PROG_LOAD.fields
        for fname, chunk in chunks.items():
            self.rel_store(attr, fields[fname].offset, chunk)
        self._log_from_ctx(attr, "log_level", "log_size", "log_buf", A.PROG_LOAD)
        if with_btf:
            self.stack_to_blob(BlobAddr(attr, fields["prog_btf_fd"].offset), self.stack_btf_fd())

    def prog_load(self, index: int, attr: str, close_after: list[BlobAddr]) -> None:
        """``BPF_PROG_LOAD``; then, loaded or not, the module BTF fds it needed are closed (and
        their slots zeroed); an error goes to cleanup; the fd to the stack's ``prog_fd[index]``."""
        self.sys_bpf(Cmd.PROG_LOAD, attr, PROG_LOAD_ATTR_SIZE)
        for where in close_after:
            self.close_blob(where)
            self.asm.ld_imm64(Reg.R0, where)
            self.asm.emit(st_mem(Size.W, Reg.R0, 0, 0))
        self.check_err()
        self.asm.emit(stx_mem(Size.W, Reg.FP, Reg.RET, self.stack_prog_fd(index)))

    def finish(self, nr_maps: int, nr_progs: int, with_btf: bool) -> None:
        """Success: close the BTF fd, copy program fds (stack) and map fds (``fd_array``) into
        the ctx's descriptors, return 0."""
        self.asm.comment("finish: fds to the ctx, return 0")
        if with_btf:
            self.close_stack(self.stack_btf_fd())
        for i in range(nr_progs):
            self.asm.emit(ldx_mem(Size.W, Reg.R0, Reg.FP, self.stack_prog_fd(i)),
                          stx_mem(Size.W, Reg.CTX, Reg.R0, prog_desc_offset(nr_maps, i)))
        for i in range(nr_maps):
            self.asm.ld_imm64(Reg.R1, self.fd_slot(i))
            self.asm.emit(ldx_mem(Size.W, Reg.R0, Reg.R1, 0),
                          stx_mem(Size.W, Reg.CTX, Reg.R0, map_desc_offset(i)))
        self.asm.emit(mov64_imm(Reg.R0, 0), exit_())

    def cleanup(self) -> None:
        """Label ``cleanup``: close every fd the loader may hold (stack: BTF and programs;
        ``fd_array``: maps, module BTFs), then (label ``exit_r7``) return r7.  With the
        loader's own kfuncs the ``fd_array`` part is one loop (:meth:`close_fd_array_loop`).
        A block no step can jump to is left out (the verifier refuses unreachable code): a
        loader with nothing that can fail, such as one of an object without programs."""
        if not self.asm.is_target("exit_r7") and not self.asm.is_target("cleanup"):
            return
        if not self.asm.is_target("cleanup"):
            self.asm.label("exit_r7")
            self.asm.emit(mov64_reg(Reg.R0, Reg.RET), exit_())
            return
        self.asm.label("cleanup")
        self.asm.comment("cleanup: close what was opened, return the error in r7")
        self.close_stack(self.stack_btf_fd())
        for i in range(self.nr_progs):
            self.close_stack(self.stack_prog_fd(i))
        if self.own is not None:
            self.close_fd_array_loop()
        else:
            for i in range(self.fd_slots):
                self.close_blob(self.fd_slot(i))
        self.asm.label("exit_r7")
        self.asm.emit(mov64_reg(Reg.R0, Reg.RET), exit_())

    def own_kfunc(self, name: str) -> Instruction:
        """``call`` *name* in the seed's form: ``src_reg 3``, ``imm`` = its FUNC in the
        loader's own BTF (resolved by name by a kernel with the seed)."""
        assert self.own is not None
        return call_kfunc(self.own.kfunc_id(name), PseudoCall.KFUNC_CALL_PROG_BTF)

    def close_fd_array_loop(self) -> None:
        """``bpf_for(i, 0, fd_slots) if (fd_array[i] > 0) bpf_sys_close(fd_array[i])``: an
        open-coded ``bpf_iter_num`` loop (kfuncs ``bpf_iter_num_new/next/destroy``, called in
        PROG_BTF form), whose size does not grow with the artifact's maps and module-BTF
        slots as the unrolled closes do.  Keeps r6-r9.  Clobbers r0-r5."""
        asm = self.asm
        asm.comment(f"cleanup loop: close fd_array[0..{self.fd_slots}) (bpf_iter_num, PROG_BTF calls)")
        top, done = asm.fresh("next_slot"), asm.fresh("slots_done")
        asm.emit(mov64_reg(Reg.R1, Reg.FP), alu64_imm(AluOp.ADD, Reg.R1, self.stack_iter()),
                 mov64_imm(Reg.R2, 0), mov64_imm(Reg.R3, self.fd_slots),
                 self.own_kfunc("bpf_iter_num_new"))
        asm.label(top)
        asm.emit(mov64_reg(Reg.R1, Reg.FP), alu64_imm(AluOp.ADD, Reg.R1, self.stack_iter()),
                 self.own_kfunc("bpf_iter_num_next"))
        asm.jmp_imm(JmpOp.JEQ, Reg.R0, 0, done)
        asm.emit(ldx_mem(Size.W, Reg.R1, Reg.R0, 0))
        asm.jmp_imm(JmpOp.JGE, Reg.R1, self.fd_slots, top)  # the verifier's bound on i
        asm.emit(alu64_imm(AluOp.LSH, Reg.R1, 2))
        asm.ld_imm64(Reg.R2, BlobAddr(self.fd_array))
        asm.emit(alu64_reg(AluOp.ADD, Reg.R2, Reg.R1), ldx_mem(Size.W, Reg.R1, Reg.R2, 0))
        asm.jmp_imm(JmpOp.JSLE, Reg.R1, 0, top)
        asm.emit(call_helper(Helper.SYS_CLOSE))
        asm.goto(top)
        asm.label(done)
        asm.emit(mov64_reg(Reg.R1, Reg.FP), alu64_imm(AluOp.ADD, Reg.R1, self.stack_iter()),
                 self.own_kfunc("bpf_iter_num_destroy"))


__all__ = ["Emitter", "Helper", "Reg", "CTX_HEADER_SIZE", "MAP_DESC_SIZE", "PROG_DESC_SIZE",
           "ctx_size", "map_desc_offset", "prog_desc_offset", "Value"]
