"""What gets resolved: the programs of an artifact, or raw instructions and raw program BTF.

A :class:`Subject` is the input of the verifier's pass as the kernel would
get it from ``BPF_PROG_LOAD``: one or more instruction streams (``insns``)
and the program BTF (``prog_btf_fd``) they refer to, or no program BTF at all.
Program BTF is validated with the kernel's rules, because ``BPF_BTF_LOAD``
refuses invalid BTF before any program could refer to it.

Artifacts are *bound* to a kernel before the pass (:meth:`Subject.bind`),
exactly as the loader does (:mod:`sigbpf.resolve.binding`, libbpf's rules for
``__weak __ksym``): kfunc addresses (``bpf_ksym_exists``) get the kernel's id
and calls of weak kfuncs the kernel lacks become poisoned helper calls in
dead code.  So ``sigbpf resolve ARTIFACT`` answers what ``sigbpf load`` would
do; ``--insns`` input is taken exactly as given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sigbpf.asm.instruction import Instruction
from sigbpf.errors import ResolveError
from sigbpf.resolve.findings import CheckName, Finding, Severity

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.artifact.format import Artifact, Program
    from sigbpf.btf.spec import BTF


@dataclass(frozen=True, slots=True)
class SubjectProgram:
    """One instruction stream; ``name`` is None for raw instructions."""

    name: str | None
    insns: tuple[Instruction, ...]
    program: "Program | None" = None  # the artifact's program, for its kfunc sites


@dataclass(frozen=True, slots=True)
class BoundProgram:
    """A program's instructions as the kernel would get them for one kernel.

    ``notes`` say what binding did (weak kfuncs absent); ``error`` is set
    when binding already refuses the program (a missing non-weak kfunc
    address: ENOENT, like the seed's own message for calls).
    """

    name: str | None
    insns: tuple[Instruction, ...]
    notes: tuple[Finding, ...] = ()
    error: ResolveError | None = None
    #: Whether the kernel attaches the program BTF to this program: only when its load
    #: carries func_info, line_info or CO-RE relocations (raw instructions: assumed).
    prog_btf_attached: bool = True


@dataclass(frozen=True, slots=True)
class Subject:
    """Programs plus the program BTF they share (None: no prog BTF given)."""

    file: str
    programs: tuple[SubjectProgram, ...]
    prog_btf: "BTF | None"
    artifact: "Artifact | None" = None  # None for raw instructions

    @property
    def is_artifact(self) -> bool:
        return self.artifact is not None

    def bind(self, vmlinux: "BTF") -> list[BoundProgram]:
        """Every program bound to *vmlinux* (raw instructions are returned unchanged)."""
        if self.artifact is None:
            return [BoundProgram(p.name, p.insns) for p in self.programs]
        from sigbpf.artifact.format import KfuncSiteKind
        from sigbpf.resolve.binding import POISON_CALL_KFUNC_BASE, bind_sites, lookup_kfuncs

        bindings = lookup_kfuncs(self.artifact, vmlinux)
        out: list[BoundProgram] = []
        for p in self.programs:
            assert p.program is not None
            try:
                insns = tuple(bind_sites(p.program, bindings))
            except ResolveError as err:
                out.append(BoundProgram(p.name, p.insns, error=err))
                continue
            notes = []
            for site in p.program.kfunc_sites:
                b = bindings[site.kfunc]
                if b.weak and not b.present:
                    is_call = site.kind == KfuncSiteKind.CALL
                    notes.append(Finding(
                        CheckName.BINDING, Severity.NOTE, b.name, site.insn,
                        f"{b.name} is weak and absent from this kernel: "
                        + (f"call replaced by the poisoned helper call "
                           f"{POISON_CALL_KFUNC_BASE + site.kfunc} (must be dead code)"
                           if is_call else "address is 0"),
                        site="kfunc call" if is_call else "kfunc address"))
            prog = p.program
            out.append(BoundProgram(p.name, insns, tuple(notes), prog_btf_attached=bool(
                prog.func_info_bytes or prog.line_info_bytes or prog.core_relo_bytes)))
        return out

    @classmethod
    def from_artifact(cls, data: bytes, file: str) -> "Subject":
        """Every program of a portable artifact (its bytes; *file* names it in errors)."""
        from sigbpf.artifact.format import Artifact
        from sigbpf.btf.spec import BTF

        art = Artifact.decode(data, file=file)
        where = f"{file}: program BTF"
        prog_btf = None
        if art.btf:
            prog_btf = BTF.parse(art.btf, file=where)
            check_loadable_func_linkage(prog_btf)
        programs = tuple(SubjectProgram(p.name, tuple(p.insns), p) for p in art.programs)
        return cls(file, programs, prog_btf, art)

    @classmethod
    def from_raw(cls, insns: bytes, insns_file: str, prog_btf: bytes | None = None,
                 prog_btf_file: str | None = None, *, validate: bool = True) -> "Subject":
        """Raw 8-byte instructions (little-endian, as BPF_PROG_LOAD takes them) and raw BTF.

        The program BTF is checked as ``BPF_BTF_LOAD`` would check it; with
        ``validate=False`` it is taken as given (framing checks only), so the
        pass's own checks can be shown on BTF no kernel would accept (the
        seed's check 3: a FUNC without a name).
        """
        from sigbpf.btf.spec import BTF
        from sigbpf.errors import InstructionError, SigbpfError

        try:
            decoded = Instruction.decode(insns)
        except SigbpfError as err:
            raise err.at(file=insns_file)
        if not decoded:
            raise InstructionError("no instructions (empty file)", file=insns_file)
        btf = None
        if prog_btf is not None:
            btf = BTF.parse(prog_btf, file=prog_btf_file, validate=validate)
            if validate:
                check_loadable_func_linkage(btf)
        return cls(insns_file, (SubjectProgram(None, tuple(decoded)),), btf)


def check_loadable_func_linkage(btf: "BTF") -> None:
    """``BPF_BTF_LOAD``'s FUNC linkage rule, which sigbpf's validator relaxes for ELF objects.

    The kernel accepts only static (0) and global (1) FUNCs (measured on 6.18:
    ``[2] FUNC bpf_rcu_read_lock type_id=1 Invalid func linkage`` for extern);
    clang's ``.BTF`` has extern kfunc FUNCs that a loader must fix up first.
    """
    from sigbpf.btf.kinds import FuncLinkage, Kind
    from sigbpf.errors import BTFError

    for func_id in btf.ids_of_kind(Kind.FUNC):
        func = btf.type_by_id(func_id)
        if func.linkage > FuncLinkage.GLOBAL:  # type: ignore[union-attr]
            raise BTFError(f"FUNC {func.name} type_id={func.type} Invalid func linkage "  # type: ignore[union-attr]
                           "(BPF_BTF_LOAD accepts static and global FUNCs only)",
                           file=btf.file, type_id=func_id, offset=btf.record_offset(func_id))
