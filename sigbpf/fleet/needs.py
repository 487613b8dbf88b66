"""What an artifact needs from a kernel: its checks, worked out once before any kernel is read.

:class:`ArtifactNeeds` is built once per run (and once in each worker
process, from the same bytes) from a portable artifact, a signed artifact (the
same container with signature sections: they change nothing a kernel
answers) or a BPF object (built into an artifact in memory, as ``sigbpf
load`` does).  It holds:

* the :class:`~sigbpf.fleet.model.Check` list, in :class:`CheckKind` order,
  each kind in first-use order:

  - ``program:NAME`` -- the seed's resolution pass (and sigbpf's checks) over
    the program, as ``sigbpf resolve`` runs it;
  - ``kfunc:NAME`` -- each kfunc of the artifact's kfunc table;
  - ``attach:NAME`` -- each attach target (``[module:]name`` with libbpf's
    prefix: ``bpf_lsm_file_open``, ``btf_trace_sched_switch``; struct_ops
    ``struct.member``);
  - ``ksym:NAME`` -- each ksym;
  - ``prog_type:BPF_PROG_TYPE_X``, ``map_type:BPF_MAP_TYPE_X``,
    ``attach_type:BPF_X`` (non-zero ``expected_attach_type`` only),
    ``helper:BPF_FUNC_x`` -- enum values the kernel must know;
  - ``core:PROG/insn N`` -- each CO-RE relocation;

* :attr:`ArtifactNeeds.names`: every name a kernel is searched for (module
  BTFs that contain none of them are never parsed);
* :attr:`ArtifactNeeds.digest`: SHA-256 of the artifact's canonical bytes
  (the cache key's artifact half).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sigbpf.fleet.model import Check, CheckKind

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.artifact.format import Artifact


@dataclass(frozen=True, slots=True)
class EnumUse:
    """One enum value the artifact uses: which enum, its value, its UAPI name."""

    kind: CheckKind
    value: int
    name: str


def load_artifact(data: bytes, path: str) -> "Artifact":
    """An artifact (signed or not) from its bytes, or built in memory from a BPF object."""
    from sigbpf.artifact.format import Artifact, is_artifact
    from sigbpf.errors import FormatError

    if is_artifact(data):
        return Artifact.decode(data, file=path)
    if data[:4] == b"\x7fELF":
        from sigbpf.artifact.build import build_artifact

        return build_artifact(data, path)
    raise FormatError("neither a sigbpf artifact (signed or not) nor a BPF object (ELF)", file=path,
                      offset=0)


def _enum_name(kind: CheckKind, value: int) -> str:
    from sigbpf.elf.maps import MapType
    from sigbpf.elf.progtypes import AttachType, ProgType
    from sigbpf.fleet.helper_names import helper_name

    try:
        if kind is CheckKind.PROG_TYPE:
            return f"BPF_PROG_TYPE_{ProgType(value).name}"
        if kind is CheckKind.MAP_TYPE:
            return f"BPF_MAP_TYPE_{MapType(value).name}"
        if kind is CheckKind.ATTACH_TYPE:
            return f"BPF_{AttachType(value).name}"
    except ValueError:
        return f"#{value}"
    return helper_name(value)


def attach_label(target) -> str:
    """``[module:]name`` of an attach target; struct_ops ``struct.member``."""
    name = f"{target.name}.{target.member}" if target.member else target.name
    return f"{target.module}:{name}" if target.module else name


@dataclass(frozen=True)
class ArtifactNeeds:
    """The checks of one artifact and what answering them takes (module docstring)."""

    path: str
    data: bytes  # the artifact's canonical bytes (what workers rebuild from)
    digest: str
    checks: tuple[Check, ...]
    enums: tuple[EnumUse, ...]
    names: frozenset[str]

    @classmethod
    def from_input(cls, data: bytes, path: str) -> "ArtifactNeeds":
        art = load_artifact(data, path)
        return cls.from_artifact(art, path)

    @classmethod
    def from_artifact(cls, art: "Artifact", path: str) -> "ArtifactNeeds":
        from sigbpf.asm.opcodes import CALL_CODE, PseudoCall

        canonical = art.without_extensions().encode()
        checks: list[Check] = []
        names: set[str] = set()

        def add(kind: CheckKind, name: str, detail: str) -> None:
            key = f"{kind.label}:{name}"
            for i, c in enumerate(checks):
                if c.key == key:
                    if detail and detail not in c.detail.split("; "):
                        checks[i] = Check(kind, name, f"{c.detail}; {detail}" if c.detail else detail)
                    return
            checks.append(Check(kind, name, detail))

        for p in art.programs:
            add(CheckKind.PROGRAM, p.name, f"section {p.section}")
        users: dict[int, list[str]] = {}
        for p in art.programs:
            for site in p.kfunc_sites:
                users.setdefault(site.kfunc, [])
                if p.name not in users[site.kfunc]:
                    users[site.kfunc].append(p.name)
        for i, k in enumerate(art.kfuncs):
            detail = ("weak; " if k.weak else "") + "used by " + ", ".join(users.get(i, ["no program"]))
            add(CheckKind.KFUNC, k.name, detail)
            names.add(k.name)
        for p in art.programs:
            if p.attach is not None:
                add(CheckKind.ATTACH, attach_label(p.attach), f"program {p.name} ({p.section})")
                names.add(p.attach.name)
        for k in art.ksyms:
            add(CheckKind.KSYM, k.name, ("weak " if k.weak else "") + ("typed" if k.typed else "typeless"))
            names.add(k.name)
        enums: list[EnumUse] = []

        def use(kind: CheckKind, value: int, where: str) -> None:
            name = _enum_name(kind, value)
            if not any(e.kind is kind and e.value == value for e in enums):
                enums.append(EnumUse(kind, value, name))
            add(kind, name, where)

        for p in art.programs:
            use(CheckKind.PROG_TYPE, p.prog_type, f"program {p.name}")
        for m in art.maps:
            use(CheckKind.MAP_TYPE, m.map_type, f"map {m.name}")
        for p in art.programs:
            if p.expected_attach_type:
                use(CheckKind.ATTACH_TYPE, p.expected_attach_type, f"program {p.name}")
        for p in art.programs:
            for insn in p.insns:
                if insn.code == CALL_CODE and insn.src == PseudoCall.HELPER and insn.imm > 0:
                    use(CheckKind.HELPER, insn.imm, f"program {p.name}")
        for p in art.programs:
            for r in p.core_relos:
                add(CheckKind.CORE, f"{p.name}/insn {r.insn_off // 8}", "")
        if any(p.core_relos for p in art.programs):
            checks = _core_details(art, checks)
        ordered = sorted(checks, key=lambda c: int(c.kind))  # stable: first use within a kind
        return cls(path, canonical, hashlib.sha256(canonical).hexdigest(), tuple(ordered),
                   tuple(enums), frozenset(names))

    def artifact(self) -> "Artifact":
        from sigbpf.artifact.format import Artifact

        return Artifact.decode(self.data, file=self.path)


def _core_details(art: "Artifact", checks: list[Check]) -> list[Check]:
    """CO-RE checks' details: ``byte_off struct task_struct (0:84)``, from the local BTF."""
    from sigbpf.btf.spec import BTF

    try:
        local = BTF.parse(art.btf, validate=False)
    except Exception:  # the artifact decoded, so its BTF framing is fine; be safe anyway
        return checks
    details: dict[str, str] = {}
    from sigbpf.elf.btf_ext import CoreReloKind

    for p in art.programs:
        for r in p.core_relos:
            try:
                kind = CoreReloKind(r.kind).name.lower()
            except ValueError:
                kind = f"kind {r.kind}"
            try:
                access = local.string_at(r.access_str_off)
                root = local.name_of(r.type_id) or f"[{r.type_id}]"
                what = f"{local.kind_of(r.type_id).name.lower()} {root}"
            except Exception:
                access, what = "?", f"[{r.type_id}]"
            key = f"core:{p.name}/insn {r.insn_off // 8}"
            details.setdefault(key, f"{kind} {what} ({access})")
    return [Check(c.kind, c.name, details.get(c.key, c.detail)) if c.kind is CheckKind.CORE else c
            for c in checks]
