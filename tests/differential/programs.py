"""The differential test's programs: a seeded generator of syscall programs with PROG_BTF calls.

:func:`generate` (``seed``, ``count``) returns a :class:`Corpus`: a few program
BTF objects (:class:`ProgBTF`, loaded once and shared by every program) and
``count`` :class:`Case` objects, each one ``BPF_PROG_TYPE_SYSCALL`` program
(sleepable, GPL) with the attributes it is loaded with.  Nothing here depends
on a kernel: the same seed gives the same bytes everywhere (:meth:`Corpus.digest`).

How the programs are built, so that every refusal is one the prediction knows of
(:mod:`.expect`):

* every kfunc a valid program calls is used through a **template**, a valid
  use of it in a syscall program (``bpf_rcu_read_lock``/``unlock`` as a pair,
  ``bpf_task_from_pid`` then ``bpf_task_release`` when not NULL, an iterator
  created, advanced and destroyed, ...): once the seed has resolved the
  calls, the rest of the verifier accepts the program;
* helper calls, 64-bit constants (``ld_imm64``: two slots, so the seed's
  ``insn %d`` counts slots) and a bpf-to-bpf call to a static subprogram
  (with its own calls) are mixed in; the program BTF reaches the verifier
  through ``func_info`` (one record per subprogram), ``line_info`` only, or a CO-RE
  relocation only (``BPF_CORE_TYPE_ID_LOCAL`` on a ``mov``), the three ways
  7.3's ``bpf_prepare_btf_info()`` attaches it; or not at all (no
  ``prog_btf_fd``, or the fd without any of the three);
* an invalid program carries one or more **faults**, each a single CALL:
  ``off`` != 0, ``imm`` 0 / negative / past the last type / a non-FUNC
  type, a FUNC whose name vmlinux lacks (made-up names, typos of kfunc
  names, names of vmlinux structs, kfuncs no kernel here has), a
  ``BPF_JMP32|BPF_CALL`` with src_reg 3, or a FUNC of vmlinux that is no
  kfunc (:data:`PLAIN_FUNCTIONS`: the seed resolves it, the verifier refuses
  it later in ``check_kfunc_call``; scalar arguments only, so that
  ``bpf_add_kfunc_call()``, which 7.3 runs right after resolving each call,
  accepts it and the refusal cannot pre-empt a later call's resolution);
  or a variadic FUNC of vmlinux (:data:`VARIADIC_FUNCTIONS`), which
  ``bpf_add_kfunc_call()`` does refuse right after the seed resolved it,
  with a seed fault placed anywhere else in the program: the class that
  shows 7.3's interleaving of resolution and registration.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from enum import Enum
from typing import Callable

from sigbpf.artifact.format import CoreRelo, FuncInfo, LineInfo
from sigbpf.asm import (Instruction, alu64_imm, call_helper, call_kfunc, call_pseudo, exit_,
                        jmp_imm, ld_imm64, mov64_imm, mov64_reg)
from sigbpf.asm.opcodes import CALL_CODE, AluOp, InsnClass, JmpOp, PseudoCall
from sigbpf.btf import (BTFBuilder, Array, Const, Datasec, DeclTag, Enum as BTFEnum, Enum64,
                        EnumValue, Float, Func, FuncLinkage, FuncProto, Fwd, Int, IntEncoding,
                        Kind, Member, Param, Ptr, Restrict, Struct, Typedef, TypeTag, Union, Var,
                        VarLinkage, VarSecinfo, Volatile)
from sigbpf.elf.btf_ext import CoreReloKind

#: The defaults of the test and the bench.
SEED = 20260523
COUNT = 10_000

#: Program type and flags: a syscall program may call the common and generic kfuncs, must be
#: sleepable, and must be GPL to call kernel functions (KERNEL-FACTS, measured on 6.18).
PROG_TYPE_SYSCALL = 31
PROG_FLAGS = 16  # BPF_F_SLEEPABLE
LICENSE = "GPL"

#: Helpers every syscall program may call (bpf_base_func_proto): ktime_get_ns,
#: get_prandom_u32, get_smp_processor_id.
HELPERS = (5, 7, 8)

#: kfuncs with a template: registered for BPF_PROG_TYPE_SYSCALL (kernel/bpf/helpers.c,
#: common_kfunc_set for every type and generic_kfunc_set for syscall programs) in 7.3.
TEMPLATE_KFUNCS = (
    "bpf_rcu_read_lock", "bpf_rcu_read_unlock", "bpf_preempt_disable", "bpf_preempt_enable",
    "bpf_task_from_pid", "bpf_task_release", "bpf_iter_num_new", "bpf_iter_num_next",
    "bpf_iter_num_destroy", "bpf_local_irq_save", "bpf_local_irq_restore",
    "bpf_copy_from_user_str", "bpf_strlen",
)

#: FUNCs of vmlinux that are no kfuncs, with no arguments or scalar ones only.
PLAIN_FUNCTIONS = ("schedule", "msleep", "ktime_get", "get_random_u32", "get_random_u64",
                   "yield", "jiffies_to_msecs", "ktime_get_real_seconds", "usleep_range_state",
                   "__cond_resched")

#: Variadic FUNCs of vmlinux (lib/vsprintf.c, always built): ``btf_distill_func_proto()`` refuses
#: them in ``bpf_add_kfunc_call()`` ("The function %s with variable args is unsupported.").
VARIADIC_FUNCTIONS = ("snprintf", "sprintf", "sscanf", "scnprintf", "kasprintf")

#: Names of vmlinux structs and unions: in every kernel's BTF, never as a FUNC.
VMLINUX_TYPE_NAMES = ("task_struct", "bpf_prog", "bpf_attr", "file", "list_head", "pt_regs")

#: kfunc names no kernel here has: the unmerged loader kfunc, the test module's kfuncs.
UNKNOWN_KFUNCS = ("bpf_loader_verify_metadata", "bpf_kfunc_call_test1",
                  "bpf_kfunc_call_test_acquire", "bpf_testmod_test_mod_kfunc")


def _missing_names() -> tuple[str, ...]:
    """Made-up FUNC names, typos of the template kfuncs, and long names (up to 480 bytes)."""
    made_up = tuple(f"sigbpf_missing_{i}" for i in range(12))
    typos = tuple(t for name in TEMPLATE_KFUNCS[:6]
                  for t in (name[:-1], name + "_", name.upper(), "_" + name))
    long = tuple("sigbpf_long_" + "x" * n for n in (52, 188, 468))
    return made_up + typos + long


MISSING_NAMES = _missing_names()

#: Every FUNC name the program BTF objects carry.
POOL = (TEMPLATE_KFUNCS + PLAIN_FUNCTIONS + VARIADIC_FUNCTIONS + VMLINUX_TYPE_NAMES
        + UNKNOWN_KFUNCS + MISSING_NAMES)


class CaseClass(str, Enum):
    """What a program is built to show (a row of the agreement table)."""

    VALID = "valid"                              # templates only, BTF through func_info
    VALID_LINE_INFO = "valid, BTF via line_info"  # ... BTF attached by line_info alone
    VALID_CORE_RELO = "valid, BTF via core_relo"  # ... by one CO-RE relocation alone
    OFF = "off != 0"
    IMM_ZERO = "imm 0"
    IMM_NEGATIVE = "imm < 0"
    IMM_OUT_OF_RANGE = "imm > last type id"
    IMM_NOT_FUNC = "imm not a FUNC"
    NAME_MISSING = "name missing"
    NAME_VMLINUX_TYPE = "name of a vmlinux type"
    UNKNOWN_KFUNC = "unknown kfunc name"
    PLAIN_FUNCTION = "FUNC that is no kfunc"
    VARIADIC = "variadic FUNC, maybe a fault"
    JMP32 = "BPF_JMP32|BPF_CALL src 3"
    EARLY_FAILURE = "several calls, early failure"
    NO_PROG_BTF = "no prog_btf_fd"
    FD_ONLY = "prog_btf_fd, no func/line info"


#: How many programs of each class in every 100 (the generator cycles through this schedule).
WEIGHTS: dict[CaseClass, int] = {
    CaseClass.VALID: 14, CaseClass.VALID_LINE_INFO: 5, CaseClass.VALID_CORE_RELO: 5,
    CaseClass.OFF: 6, CaseClass.IMM_ZERO: 4, CaseClass.IMM_NEGATIVE: 5,
    CaseClass.IMM_OUT_OF_RANGE: 5, CaseClass.IMM_NOT_FUNC: 7, CaseClass.NAME_MISSING: 7,
    CaseClass.NAME_VMLINUX_TYPE: 4, CaseClass.UNKNOWN_KFUNC: 4, CaseClass.PLAIN_FUNCTION: 7,
    CaseClass.VARIADIC: 4,
    CaseClass.JMP32: 4, CaseClass.EARLY_FAILURE: 13, CaseClass.NO_PROG_BTF: 3,
    CaseClass.FD_ONLY: 3,
}


class Attach(str, Enum):
    """How the program BTF is handed to BPF_PROG_LOAD."""

    FUNC_INFO = "func_info"
    LINE_INFO = "line_info"
    CORE_RELO = "core_relo"
    FUNC_AND_LINE_INFO = "func_info+line_info"
    FD_ONLY = "prog_btf_fd only"
    NONE = "no prog_btf_fd"


# ----------------------------------------------------------------------------- program BTF


@dataclass(frozen=True, slots=True)
class ProgBTF:
    """One program BTF object: its bytes and the ids the generator uses."""

    raw: bytes
    type_count: int
    funcs: dict[str, int]          # FUNC name -> id (the pool, "main", "sub")
    non_funcs: dict[Kind, int]     # one type of every other kind
    int_id: int
    file_name_off: int             # strings for line_info
    line_off: int
    access_str_off: int            # "0", for the CO-RE relocation


def _build_btf(layout: str) -> ProgBTF:
    """``compact`` (pool right after the program's FUNCs, global linkage), ``padded`` (3,000
    types first, pool reversed, static and global linkage) or ``static`` (other kinds first,
    static linkage).  Extern FUNCs are not in the set: BPF_BTF_LOAD refuses them ("Invalid
    func linkage", measured on 6.18)."""
    b = BTFBuilder()
    if layout == "padded":
        first = b.add(Int("long", 8, IntEncoding.SIGNED, 0, 64))
        for _ in range(2999):
            b.add(Ptr(first))
    int_id = b.add(Int("int", 4, IntEncoding.SIGNED, 0, 32))
    void_ptr = b.add(Ptr(0))
    main_proto = b.add(FuncProto(int_id, (Param("ctx", void_ptr),)))
    sub_proto = b.add(FuncProto(int_id, ()))
    pool_proto = b.add(FuncProto(0, ()))

    def add_non_funcs() -> dict[Kind, int]:
        k: dict[Kind, int] = {Kind.INT: int_id, Kind.PTR: void_ptr, Kind.FUNC_PROTO: pool_proto}
        k[Kind.ARRAY] = b.add(Array(int_id, int_id, 4))
        k[Kind.STRUCT] = b.add(Struct("bpf_rcu_read_lock", 4, (Member("x", int_id, 0),)))
        k[Kind.UNION] = b.add(Union("bpf_preempt_enable", 4, (Member("x", int_id, 0),)))
        k[Kind.ENUM] = b.add(BTFEnum("bpf_iter_num_new", 4, (EnumValue("A", 0),)))
        k[Kind.FWD] = b.add(Fwd("bpf_strlen"))
        k[Kind.TYPEDEF] = b.add(Typedef("bpf_task_from_pid", int_id))
        k[Kind.VOLATILE] = b.add(Volatile(int_id))
        k[Kind.CONST] = b.add(Const(int_id))
        k[Kind.RESTRICT] = b.add(Restrict(void_ptr))
        var = b.add(Var("bpf_task_release", int_id, VarLinkage.STATIC))
        k[Kind.VAR] = var
        k[Kind.DATASEC] = b.add(Datasec(".data", 4, (VarSecinfo(var, 0, 4),)))
        k[Kind.FLOAT] = b.add(Float("float", 4))
        tag = b.add(TypeTag("bpf_iter_num_next", int_id))
        b.add(Ptr(tag))  # a type tag is only valid right behind a pointer
        k[Kind.TYPE_TAG] = tag
        k[Kind.ENUM64] = b.add(Enum64("bpf_iter_num_destroy", 8, (EnumValue("B", 1 << 40),)))
        return k

    non_funcs = add_non_funcs() if layout == "static" else {}
    funcs = {"main": b.add(Func("main", main_proto, FuncLinkage.GLOBAL)),
             "sub": b.add(Func("sub", sub_proto, FuncLinkage.STATIC))}
    for i, name in enumerate(reversed(POOL) if layout == "padded" else POOL):
        linkage = {"compact": FuncLinkage.GLOBAL, "static": FuncLinkage.STATIC,
                   "padded": (FuncLinkage.STATIC, FuncLinkage.GLOBAL)[i % 2]}[layout]
        funcs[name] = b.add(Func(name, pool_proto, linkage))
    if layout != "static":
        non_funcs = add_non_funcs()
    non_funcs[Kind.DECL_TAG] = b.add(DeclTag("bpf_kfunc", funcs["main"], -1))
    strings = b.add_string("diff.c"), b.add_string("r0 = 0;"), b.add_string("0")
    return ProgBTF(b.encode(), b.type_count, funcs, non_funcs, int_id, *strings)


BTF_LAYOUTS = ("compact", "padded", "static")

# ----------------------------------------------------------------------------- programs


def _call3(imm: int, off: int = 0) -> Instruction:
    return call_kfunc(imm, src=PseudoCall.KFUNC_CALL_PROG_BTF, off=off)


def _stack_ptr(reg: int, off: int) -> list[Instruction]:
    return [mov64_reg(reg, 10), alu64_imm(AluOp.ADD, reg, off)]


Ids = Callable[[str], int]

#: ``BPF_JMP32 | BPF_CALL``: not in the kernel's opcode table.
JMP32_CALL_CODE = InsnClass.JMP32 | JmpOp.CALL

#: Each template: a valid use, in a sleepable syscall program, of the kfuncs it names.
TEMPLATES: dict[str, Callable[[Ids], list[Instruction]]] = {
    "rcu": lambda f: [_call3(f("bpf_rcu_read_lock")), _call3(f("bpf_rcu_read_unlock"))],
    "preempt": lambda f: [_call3(f("bpf_preempt_disable")), _call3(f("bpf_preempt_enable"))],
    "task": lambda f: [mov64_imm(1, 1), _call3(f("bpf_task_from_pid")),
                       jmp_imm(JmpOp.JEQ, 0, 0, 2), mov64_reg(1, 0),
                       _call3(f("bpf_task_release"))],
    "iter": lambda f: [*_stack_ptr(1, -8), mov64_imm(2, 0), mov64_imm(3, 3),
                       _call3(f("bpf_iter_num_new")), *_stack_ptr(1, -8),
                       _call3(f("bpf_iter_num_next")), *_stack_ptr(1, -8),
                       _call3(f("bpf_iter_num_destroy"))],
    "irq": lambda f: [*_stack_ptr(1, -16), _call3(f("bpf_local_irq_save")),
                      *_stack_ptr(1, -16), _call3(f("bpf_local_irq_restore"))],
    "copy_str": lambda f: [*_stack_ptr(1, -48), mov64_imm(2, 16), mov64_imm(3, 0),
                           mov64_imm(4, 0), _call3(f("bpf_copy_from_user_str"))],
    "strlen": lambda f: [mov64_imm(1, 0), _call3(f("bpf_strlen"))],
}

#: The faults that the seed's own checks refuse (what EARLY_FAILURE picks from).
SEED_FAULTS = (CaseClass.OFF, CaseClass.IMM_ZERO, CaseClass.IMM_NEGATIVE,
               CaseClass.IMM_OUT_OF_RANGE, CaseClass.IMM_NOT_FUNC, CaseClass.NAME_MISSING,
               CaseClass.NAME_VMLINUX_TYPE, CaseClass.UNKNOWN_KFUNC)

OFFSETS = (1, -1, 2, 7, 255, 0x7FFF, -0x8000)


def _fault(kind: CaseClass, btf: ProgBTF, rng: random.Random) -> tuple[Instruction, str]:
    """One faulty CALL of *kind* and a word on it."""
    f = btf.funcs
    if kind is CaseClass.OFF:
        off = rng.choice(OFFSETS) if rng.random() < 0.7 else rng.choice((1, -1)) * rng.randint(1, 0x7FFF)
        return _call3(f[rng.choice(TEMPLATE_KFUNCS)], off), f"off={off}"
    if kind is CaseClass.IMM_ZERO:
        return _call3(0), "imm=0"
    if kind is CaseClass.IMM_NEGATIVE:
        imm = rng.choice((-1, -2, -(2 ** 31), -btf.type_count, rng.randint(-(2 ** 31), -1)))
        return _call3(imm), f"imm={imm}"
    if kind is CaseClass.IMM_OUT_OF_RANGE:
        n = btf.type_count
        imm = rng.choice((n + 1, n + 2, n + rng.randint(1, 5000), 2 ** 31 - 1,
                          rng.randint(n + 1, 2 ** 31 - 1)))
        return _call3(imm), f"imm={imm} (last id {n})"
    if kind is CaseClass.IMM_NOT_FUNC:
        k = rng.choice(sorted(btf.non_funcs))
        return _call3(btf.non_funcs[k]), k.name
    if kind is CaseClass.JMP32:
        name = rng.choice(TEMPLATE_KFUNCS)
        return Instruction(JMP32_CALL_CODE, 0, PseudoCall.KFUNC_CALL_PROG_BTF, 0, f[name]), name
    names = {CaseClass.NAME_MISSING: MISSING_NAMES, CaseClass.NAME_VMLINUX_TYPE: VMLINUX_TYPE_NAMES,
             CaseClass.UNKNOWN_KFUNC: UNKNOWN_KFUNCS,
             CaseClass.PLAIN_FUNCTION: PLAIN_FUNCTIONS,
             CaseClass.VARIADIC: VARIADIC_FUNCTIONS}[kind]
    name = rng.choice(names)
    return _call3(f[name]), name


@dataclass(frozen=True, slots=True)
class Case:
    """One program and how it is loaded."""

    index: int
    klass: CaseClass
    insns: tuple[Instruction, ...]
    btf: int                 # which Corpus.btfs the imm values refer to
    attach: Attach
    func_info: bytes = b""
    line_info: bytes = b""
    core_relos: bytes = b""
    detail: str = ""

    @property
    def insn_bytes(self) -> bytes:
        return Instruction.encode(self.insns)

    @property
    def passes_btf_fd(self) -> bool:
        return self.attach is not Attach.NONE


def _is_src3_call(insn: Instruction) -> bool:
    """A CALL (``BPF_JMP`` or ``BPF_JMP32``) with src_reg 3."""
    return insn.code in (CALL_CODE, JMP32_CALL_CODE) and insn.src == PseudoCall.KFUNC_CALL_PROG_BTF


Item = list[Instruction]  # a template use, a helper call, a fault: instructions that stay together


def _layout(main: list[Item], sub: list[Item] | None, prologue: Item) -> tuple[list[Instruction], int | None]:
    """Main (prologue, items, ``r0 = 0; exit``) then the subprogram; the pseudo call is the
    item ``[]`` of *main* (replaced here).  Returns the instructions and the subprogram start."""
    insns: list[Instruction] = list(prologue)
    call_at = None
    for item in main:
        if not item:
            call_at = len(insns)
            insns.append(call_pseudo(0))  # fixed below
        insns.extend(item)
    insns += [mov64_imm(0, 0), exit_()]
    if sub is None:
        return insns, None
    start = len(insns)
    for item in sub:
        insns.extend(item)
    insns += [mov64_imm(0, 0), exit_()]
    assert call_at is not None
    insns[call_at] = call_pseudo(start - call_at - 1)
    return insns, start


def _case(index: int, klass: CaseClass, rng: random.Random, btfs: tuple[ProgBTF, ...]) -> Case:
    which = rng.randrange(len(btfs))
    btf = btfs[which]
    ids: Ids = btf.funcs.__getitem__

    def valid(n_lo: int, n_hi: int) -> list[Item]:
        items = [TEMPLATES[rng.choice(sorted(TEMPLATES))](ids) for _ in range(rng.randint(n_lo, n_hi))]
        items += [[call_helper(rng.choice(HELPERS))] for _ in range(rng.randint(0, 2))]
        # two-slot instructions move the slot indexes the seed's messages print
        items += [ld_imm64(rng.randint(1, 5), 0, rng.getrandbits(64)) for _ in range(rng.randint(0, 2))]
        rng.shuffle(items)
        return items

    faults: list[Item] = []
    detail = ""
    if klass in SEED_FAULTS or klass in (CaseClass.PLAIN_FUNCTION, CaseClass.JMP32,
                                         CaseClass.VARIADIC):
        insn, detail = _fault(klass, btf, rng)
        faults.append([insn])
    if klass is CaseClass.VARIADIC and rng.random() < 0.7:
        kind = rng.choice(SEED_FAULTS)
        insn, word = _fault(kind, btf, rng)
        faults.append([insn])
        detail += f"; {kind.value}: {word}"
    elif klass is CaseClass.EARLY_FAILURE:
        kinds = [rng.choice(SEED_FAULTS) for _ in range(rng.randint(2, 4))]
        words = []
        for kind in kinds:
            insn, word = _fault(kind, btf, rng)
            faults.append([insn])
            words.append(f"{kind.value}: {word}")
        detail = "; ".join(words)

    main = valid(1 if klass is CaseClass.EARLY_FAILURE else 0, 3)
    sub = valid(0, 2) if rng.random() < 0.5 else None
    if klass is CaseClass.EARLY_FAILURE:
        # one valid call first, so that the failure comes after a call the seed resolved
        main.insert(0, TEMPLATES[rng.choice(sorted(TEMPLATES))](ids))
    for item in faults:
        if sub is not None and rng.random() < 0.3:
            sub.insert(rng.randint(0, len(sub)), item)
        else:
            lo = 1 if klass is CaseClass.EARLY_FAILURE else 0
            main.insert(rng.randint(lo, len(main)), item)
    if not any(_is_src3_call(i) for item in main + (sub or []) for i in item):
        main.append(TEMPLATES[rng.choice(sorted(TEMPLATES))](ids))
    if sub is not None:
        main.insert(rng.randint(0, len(main)), [])

    if klass is CaseClass.VALID_LINE_INFO:
        attach = Attach.LINE_INFO
    elif klass is CaseClass.VALID_CORE_RELO:
        attach = Attach.CORE_RELO
    elif klass is CaseClass.NO_PROG_BTF:
        attach = Attach.NONE
    elif klass is CaseClass.FD_ONLY:
        attach = Attach.FD_ONLY
    elif klass is CaseClass.VALID:
        attach = Attach.FUNC_INFO
    else:
        attach = rng.choice((Attach.FUNC_INFO,) * 5 + (Attach.LINE_INFO, Attach.CORE_RELO,
                                                       Attach.FUNC_AND_LINE_INFO))
    prologue = [mov64_imm(0, 0)] if attach is Attach.CORE_RELO else []
    insns, sub_start = _layout(main, sub, prologue)
    starts = [0] if sub_start is None else [0, sub_start]
    func_info = line_info = core_relos = b""
    if attach in (Attach.FUNC_INFO, Attach.FUNC_AND_LINE_INFO):
        func_info = b"".join(FuncInfo(s, btf.funcs[n]).pack() for s, n in zip(starts, ("main", "sub")))
    if attach in (Attach.LINE_INFO, Attach.FUNC_AND_LINE_INFO):
        line_info = b"".join(LineInfo(s, btf.file_name_off, btf.line_off, (s + 1) << 10 | 1).pack()
                             for s in starts)
    if attach is Attach.CORE_RELO:
        core_relos = CoreRelo(0, btf.int_id, btf.access_str_off, CoreReloKind.TYPE_ID_LOCAL).pack()
    return Case(index, klass, tuple(insns), which, attach, func_info, line_info, core_relos, detail)


@dataclass(frozen=True, slots=True)
class Corpus:
    """The program BTF objects and the programs."""

    seed: int
    btfs: tuple[ProgBTF, ...]
    cases: tuple[Case, ...]

    def digest(self) -> str:
        """SHA-256 over every BTF and every program as loaded (bytes and attributes)."""
        h = hashlib.sha256()
        for btf in self.btfs:
            h.update(len(btf.raw).to_bytes(4, "little") + btf.raw)
        for c in self.cases:
            for blob in (c.insn_bytes, c.func_info, c.line_info, c.core_relos):
                h.update(len(blob).to_bytes(4, "little") + blob)
            h.update(bytes((c.btf, list(Attach).index(c.attach))))
        return h.hexdigest()


def schedule() -> list[CaseClass]:
    """One round of case classes in the proportions of :data:`WEIGHTS`, interleaved."""
    out: list[CaseClass] = []
    left = dict(WEIGHTS)
    while any(left.values()):
        for klass in CaseClass:
            if left[klass]:
                out.append(klass)
                left[klass] -= 1
    return out


def generate(seed: int = SEED, count: int = COUNT) -> Corpus:
    """*count* programs, deterministic in *seed*: every class of :data:`WEIGHTS` in its share."""
    btfs = tuple(_build_btf(layout) for layout in BTF_LAYOUTS)
    rng = random.Random(seed)
    rounds = schedule()
    cases = tuple(_case(i, rounds[i % len(rounds)], rng, btfs) for i in range(count))
    return Corpus(seed, btfs, cases)
