"""Portable artifacts made by hand with the format model (docs/FORMAT.md), for loader tests.

They let the loader and ``sigbpf load`` be tested without ``sigbpf build``:
src_reg 3 kfunc calls, a MAP_IDX_VALUE global data map, weak kfuncs
(KSYM_ADDR sites and calls), and single calls of any name or prototype.
"""

from __future__ import annotations

import struct

from sigbpf.artifact.format import Artifact, FuncInfo, Kfunc, KfuncSite, KfuncSiteKind, Map, \
    MapKind, Program
from sigbpf.asm import (Instruction, JmpOp, PseudoCall, PseudoLdImm64, Size, call_kfunc, exit_,
                        jmp_imm, ld_imm64, ldx_mem, mov64_imm)
from sigbpf.btf import BTFBuilder, Func, FuncLinkage, FuncProto, Int, IntEncoding, Param
from sigbpf.btf.types import Ptr

SYSCALL, SLEEPABLE = 31, 16


class ArtifactMaker:
    """Program BTF with kfunc FUNCs (GLOBAL linkage, as FORMAT.md 4.3 says) + one program."""

    def __init__(self) -> None:
        self.btf = BTFBuilder()
        self.int_id = self.btf.add(Int("int", 4, IntEncoding.SIGNED, 0, 32))
        self.void_proto = self.btf.add(FuncProto(0, ()))
        self.kfuncs: list[Kfunc] = []

    def kfunc(self, name: str, *, weak: bool = False, proto: int | None = None) -> int:
        """Index of a new kfunc whose prog-BTF FUNC is *name*."""
        fid = self.btf.add(Func(name, self.void_proto if proto is None else proto,
                                FuncLinkage.GLOBAL))
        self.kfuncs.append(Kfunc(name, fid, weak))
        return len(self.kfuncs) - 1

    def call(self, k: int) -> Instruction:
        return call_kfunc(self.kfuncs[k].btf_id, PseudoCall.KFUNC_CALL_PROG_BTF)

    def artifact(self, insns: list[Instruction], sites: list[KfuncSite],
                 maps: tuple[Map, ...] = (), name: str = "prog") -> Artifact:
        """The artifact of one program *name*, with the func_info record clang writes (its
        FUNC at insn 0): without func_info the kernel would not attach the program BTF."""
        ctx = self.btf.add(Ptr(0))
        main = self.btf.add(Func(name, self.btf.add(FuncProto(self.int_id, (Param("ctx", ctx),))),
                                 FuncLinkage.STATIC))
        prog = Program(name=name, section="syscall", prog_type=SYSCALL, insns=tuple(insns),
                       prog_flags=SLEEPABLE, license="GPL", kfunc_sites=tuple(sites),
                       func_info=(FuncInfo(0, main),))
        return Artifact("hand", self.btf.encode(), (prog,), maps, tuple(self.kfuncs))


def flat(*parts) -> list[Instruction]:
    out: list[Instruction] = []
    for p in parts:
        out.extend(p if isinstance(p, list) else [p])
    return out


def data_map(value: int) -> Map:
    return Map(name="hand.data", kind=MapKind.DATA, map_type=2, key_size=4, value_size=8,
               max_entries=1, section=".data", initial_data=struct.pack("<q", value))


def rcu_artifact() -> Artifact:
    """rcu lock; r0 = *(u64 *)&.data; rcu unlock; return r0."""
    m = ArtifactMaker()
    lock, unlock = m.kfunc("bpf_rcu_read_lock"), m.kfunc("bpf_rcu_read_unlock")
    insns = flat(m.call(lock), ld_imm64(1, PseudoLdImm64.MAP_IDX_VALUE, 0),
                 ldx_mem(Size.DW, 6, 1, 0), m.call(unlock), Instruction(0xBF, 0, 6), exit_())
    sites = [KfuncSite(0, lock), KfuncSite(4, unlock)]
    return m.artifact(insns, sites, (data_map(1234),), name="rcu")


def weak_artifact() -> Artifact:
    """if (&missing) { missing(); r6 += 10 }  if (&rcu_lock) { lock; unlock; r6 += 1 }  return r6."""
    m = ArtifactMaker()
    missing = m.kfunc("bpf_sigbpf_no_such_kfunc", weak=True)
    lock = m.kfunc("bpf_rcu_read_lock", weak=True)
    unlock = m.kfunc("bpf_rcu_read_unlock", weak=True)
    insns = flat(
        mov64_imm(6, 0),
        ld_imm64(1, PseudoLdImm64.BTF_ID, m.kfuncs[missing].btf_id),   # 1-2
        jmp_imm(JmpOp.JEQ, 1, 0, 2),                                  # 3
        m.call(missing),                                              # 4
        Instruction(0x07, 6, 0, 0, 10),                               # 5: r6 += 10
        ld_imm64(1, PseudoLdImm64.BTF_ID, m.kfuncs[lock].btf_id),     # 6-7
        jmp_imm(JmpOp.JEQ, 1, 0, 3),                                  # 8
        m.call(lock),                                                 # 9
        m.call(unlock),                                               # 10
        Instruction(0x07, 6, 0, 0, 1),                                # 11: r6 += 1
        Instruction(0xBF, 0, 6), exit_())
    sites = [KfuncSite(1, missing, KfuncSiteKind.KSYM_ADDR), KfuncSite(4, missing),
             KfuncSite(6, lock, KfuncSiteKind.KSYM_ADDR), KfuncSite(9, lock), KfuncSite(10, unlock)]
    return m.artifact(insns, sites, name="weak")


def single_call(name: str, proto: int | None = None, **kw) -> Artifact:
    m = ArtifactMaker()
    proto_id = None
    if proto is not None:
        proto_id = m.btf.add(FuncProto(0, (Param("x", m.int_id),)))
    k = m.kfunc(name, proto=proto_id, **kw)
    return m.artifact(flat(mov64_imm(1, 0), m.call(k), mov64_imm(0, 0), exit_()), [KfuncSite(1, k)])




def ctx_reader() -> Artifact:
    """return ((struct test_args *)ctx)->n: a program that needs 8 bytes of context."""
    m = ArtifactMaker()
    return m.artifact(flat(ldx_mem(Size.W, 0, 1, 4), exit_()), [], name="ctx_n")
