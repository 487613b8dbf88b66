"""A portable artifact -> a loader (:class:`~sigbpf.loadergen.format.Loader`).

The loader does, in the kernel, the steps of docs/FORMAT.md chapter 3 in the
same order as :mod:`sigbpf.kernel.loader` (and libbpf's ``bpf_object__load``
under ``gen_loader``): [v1: check the blob's hash] -> load the program BTF ->
create each map (an inner prototype first), write its initial value, freeze
it -> fill map-in-map slots -> per program: pointers into the blob, attach
target by name, kfuncs and ksyms by name, ``BPF_PROG_LOAD`` -> fill prog-array
slots -> fds to the ctx.  Every step's failure goes to the one cleanup block.

What the generator decides now (the loader cannot, in the kernel):

* the programs: libbpf's autoload set (sections without a leading ``?``);
* ring-buffer sizes: rounded with *page_size* (4096 unless given);
* kfunc ``CALL`` sites become ``src_reg 2, imm 0, off 0`` and address sites
  ``ld_imm64 src_reg 3, imm 0`` in the blob; the loader writes the ids it finds.

``.kconfig`` externs: their values are the running kernel's config, which a loader program
cannot read; as libbpf's ``gen_loader`` lets the caller give a map's initial value
(``struct bpf_map_desc.initial_value``), the loader copies the KCONFIG map's value from
the caller (``bpf_copy_from_user``) -- required: 0 there is the loader's ``-EINVAL`` --
then updates and freezes it; the loader file records the externs (format 1.3) so that
the runner can compute the values (:func:`sigbpf.loadergen.run.load_and_run`).  Neither
the names nor the values are covered by a signature (docs/FORMAT.md 8.1).

What it refuses (:class:`~sigbpf.errors.ArtifactError`): initial data for a BTF-defined
map (the userspace loader refuses it too), more than one KCONFIG map.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from sigbpf.asm import Instruction, PseudoCall, PseudoLdImm64
from sigbpf.errors import ArtifactError
from sigbpf.kernel import attr as A
from sigbpf.kernel.maps import object_name
from sigbpf.loadergen.assembler import Asm, BlobAddr
from sigbpf.loadergen.blob import Blob
from sigbpf.loadergen.emit import PROG_LOAD_ATTR_SIZE, Emitter, prog_desc_offset
from sigbpf.loadergen.format import Loader, LoaderKconfig, LoaderMap, LoaderMapFlags, LoaderProg, \
    Protocol

#: BPF_MAP_TYPE_PROG_ARRAY.
_PROG_ARRAY = 3

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.artifact.format import Artifact, AttachTarget, Map, Program

DEFAULT_PAGE_SIZE = 4096
#: The programs one loader loads: ``struct { u32 btf_fd; u32 prog_fd[n]; }`` (and an 8-byte
#: iterator) on the 512-byte BPF stack (libbpf's gen_loader keeps at most MAX_USED_PROGS = 32).
MAX_PROGRAMS = (512 - 8 - 4) // 4
#: The kfuncs a loader with its own kfunc calls calls (its cleanup loop): open-coded
#: iterators, allowed in every program type, present since 6.4, and what the verifier
#: offers for a loop whose length is the artifact's.
OWN_KFUNCS = ("bpf_iter_num_new", "bpf_iter_num_next", "bpf_iter_num_destroy")
_KEY0 = struct.pack("<I", 0)


def generate(artifact: "Artifact", protocol: Protocol | int = Protocol.V1, *,
             page_size: int = DEFAULT_PAGE_SIZE, own_kfuncs: bool = False) -> Loader:
    """The loader of *artifact* (deterministic: the same artifact gives the same bytes).

    *own_kfuncs*: the loader calls kfuncs itself, in the seed's PROG_BTF form against its
    own BTF (:mod:`sigbpf.loadergen.own_btf`): its cleanup closes the ``fd_array`` with an
    open-coded ``bpf_iter_num`` loop (:data:`OWN_KFUNCS`).  Only a kernel with the seed
    loads such a loader; others refuse ``src_reg 3`` ("BPF_CALL uses reserved fields")."""
    from sigbpf.artifact.format import ArtifactMapFlags, KfuncSiteKind, MapKind, SlotKind

    protocol = Protocol(protocol)
    kconfig_maps = [i for i, m in enumerate(artifact.maps) if m.kind == MapKind.KCONFIG]
    if len(kconfig_maps) > 1:
        raise ArtifactError(f"{len(kconfig_maps)} KCONFIG maps: an artifact has at most one")
    if artifact.kconfig and not kconfig_maps:
        raise ArtifactError("the artifact has .kconfig externs but no KCONFIG map")
    kconfig = None
    if kconfig_maps:
        km = artifact.maps[kconfig_maps[0]]
        kconfig = LoaderKconfig(kconfig_maps[0], km.value_size, tuple(artifact.kconfig))
    for i, m in enumerate(artifact.maps):
        if m.initial_data and m.kind == MapKind.BTF_DEFINED:
            raise ArtifactError(f"map {i} {m.name!r}: initial data for a BTF-defined map is "
                                f"not supported")
    programs = [(i, p) for i, p in enumerate(artifact.programs) if p.autoload]
    if len(programs) > MAX_PROGRAMS:
        raise ArtifactError(f"{len(programs)} programs: a loader's stack (512 bytes: its BTF fd "
                            f"and one fd per program) holds at most {MAX_PROGRAMS}")
    nr_maps = len(artifact.maps)
    kfunc_base = max(nr_maps, 1)  # fd_array slot 0 can never be a module BTF (off 0 = vmlinux)
    ksym_base = kfunc_base + len(artifact.kfuncs)
    fd_slots = ksym_base + len(artifact.ksyms)
    if fd_slots > 0x7FFF:
        raise ArtifactError(f"{fd_slots} fd_array slots: more than a kfunc call's off can index")

    asm, blob = Asm(), Blob()
    own = None
    if own_kfuncs:
        from sigbpf.loadergen.own_btf import own_btf

        own = own_btf(OWN_KFUNCS)
    em = Emitter(asm, blob, nr_progs=len(programs), fd_slots=fd_slots, own=own)
    blob.add("fd_array", size=4 * fd_slots)
    em.prologue()
    if protocol is Protocol.V1:
        em.signature_match()
    with_btf = bool(artifact.btf)
    refusal = _kernel_refuses(artifact.btf) if with_btf else None
    if refusal is not None:
        # As `sigbpf load` does and libbpf: "BTF is optional, ignoring" -- maps without BTF
        # types, programs without func/line info and CO-RE relocations.  Decided here from
        # the kernel's rules (a policy every kernel applies), not from one kernel's answer.
        if any(p.attach is not None and p.attach.member for _, p in programs):
            raise ArtifactError(f"the kernel refuses the program BTF ({refusal}) and struct_ops "
                                f"programs cannot load without it")
        asm.comment(f"program BTF left out: the kernel refuses it ({refusal}); BTF is optional")
        with_btf = False
    if with_btf:
        em.load_btf(artifact.btf)

    # Maps, an inner prototype before the map naming it.
    done: set[int] = set()

    def create(index: int, chain: tuple[int, ...] = ()) -> None:
        if index in done:
            return
        if index in chain:
            raise ArtifactError(f"map {index}: inner map references form a cycle")
        m = artifact.maps[index]
        if m.inner_map >= 0:
            create(m.inner_map, chain + (index,))
        # A prog array takes no BTF key/value (the kernel's map_check_no_btf: EINVAL, measured);
        # the userspace loader retries without it as libbpf does, a loader cannot retry.
        btf_ids = (with_btf and bool(m.btf_key_type_id or m.btf_value_type_id)
                   and m.map_type != _PROG_ARRAY)
        attr = bytes(A.MAP_CREATE.pack(
            map_type=m.map_type, key_size=m.key_size, value_size=m.value_size,
            max_entries=_max_entries(m, page_size), map_flags=m.map_flags,
            map_name=object_name(m.name).encode(), numa_node=m.numa_node, map_extra=m.map_extra,
            btf_key_type_id=m.btf_key_type_id if btf_ids else 0,
            btf_value_type_id=m.btf_value_type_id if btf_ids else 0))
        em.map_create(index, m.name, attr, with_btf=btf_ids,
                      inner_slot=m.inner_map if m.inner_map >= 0 else None,
                      max_entries_from_ctx=bool(m.flags & ArtifactMapFlags.MAX_ENTRIES_CPUS))
        if m.kind == MapKind.KCONFIG:
            # The running kernel's values, from the caller (the ctx's initial_value).
            tag = f"map{index}.init"
            blob.add(f"{tag}.value", bytes(m.value_size))
            em.initial_value_from_ctx(index, BlobAddr(f"{tag}.value"), m.value_size)
            asm.comment(f"map_update_elem: map {index} {m.name!r} kconfig values, "
                        f"{m.value_size} bytes")
            em.map_update(tag, index, _KEY0, BlobAddr(f"{tag}.value"))
        elif m.initial_data:
            asm.comment(f"map_update_elem: map {index} {m.name!r} initial value, "
                        f"{len(m.initial_data)} bytes")
            em.map_update(f"map{index}.init", index, _KEY0,
                          m.initial_data + bytes(m.value_size - len(m.initial_data)))
        if m.frozen or m.kind == MapKind.KCONFIG:
            em.map_freeze(index)
        done.add(index)

    for index in range(nr_maps):
        create(index)
    for index, m in enumerate(artifact.maps):
        for slot in m.slots:
            if slot.kind == SlotKind.MAP:
                asm.comment(f"map slot: map {index} [{slot.slot}] = map {slot.target}")
                em.map_update(f"map{index}.slot{slot.slot}", index, struct.pack("<I", slot.slot),
                              em.fd_slot(slot.target))

    loaded: dict[int, int] = {}  # artifact program index -> loader program index
    for j, (pi, program) in enumerate(programs):
        _program(em, j, program, artifact, kfunc_base, ksym_base, with_btf, KfuncSiteKind)
        loaded[pi] = j

    for index, m in enumerate(artifact.maps):
        for slot in m.slots:
            if slot.kind == SlotKind.PROG and slot.target in loaded:
                tag = f"map{index}.slot{slot.slot}"
                asm.comment(f"prog slot: map {index} [{slot.slot}] = program "
                            f"{artifact.programs[slot.target].name!r}")
                blob.add(f"{tag}.value", size=4)
                em.prog_fd_to_blob(BlobAddr(f"{tag}.value"), loaded[slot.target])
                em.map_update(tag, index, struct.pack("<I", slot.slot), BlobAddr(f"{tag}.value"))

    em.finish(nr_maps, len(programs), with_btf)
    em.cleanup()
    data = blob.bytes()
    consts = {}
    if protocol is Protocol.V1:
        from hashlib import sha256

        digest = sha256(data).digest()
        consts = {f"sha{i}": struct.unpack_from("<Q", digest, 8 * i)[0] for i in range(4)}
    out = asm.assemble(blob.offsets(), consts)
    maps = tuple(LoaderMap(m.name, m.map_type,
                           LoaderMapFlags.MAX_ENTRIES_FROM_CTX
                           if m.flags & ArtifactMapFlags.MAX_ENTRIES_CPUS else LoaderMapFlags.NONE)
                 for m in artifact.maps)
    # What attaching needs (format 1.2), recorded only when a program attaches at all: a
    # loader of syscall programs only is written as before.
    from sigbpf.elf.progtypes import ProgType

    attaches = any(p.prog_type != ProgType.SYSCALL for _, p in programs)
    progs = tuple(LoaderProg(p.name, p.prog_type, p.section, p.expected_attach_type,
                             struct_ops_name(p.attach) if p.attach and p.attach.member
                             else p.attach_to)
                  if attaches else LoaderProg(p.name, p.prog_type) for _, p in programs)
    return Loader(protocol, artifact.name, out.insns, data, maps, progs, out.notes,
                  kconfig=kconfig, own_btf=own)


def _kernel_refuses(raw: bytes) -> str | None:
    """Why every kernel refuses the program BTF *raw* (a rule of ``BPF_BTF_LOAD`` it breaks,
    :func:`~sigbpf.btf.validate.parse_lenient`), or None when it is loadable."""
    from sigbpf.btf import BTF
    from sigbpf.btf.validate import parse_lenient

    _btf, policy = parse_lenient(BTF, raw, file="program BTF")
    return policy.message if policy is not None else None


def struct_ops_name(target: "AttachTarget") -> str:
    """A struct_ops program's ATTACH name in a loader file: ``STRUCT.member`` (neither a C
    struct nor a member name holds a '.'), from which the caller computes the member index."""
    return f"{target.name}.{target.member}"


def _max_entries(m: "Map", page_size: int) -> int:
    """``max_entries`` known at generation: the declared one, a ring buffer's rounded size
    (libbpf's ``adjust_ringbuf_sz`` with *page_size*); a per-CPU count comes from the ctx."""
    from sigbpf.artifact.format import ArtifactMapFlags

    if m.flags & ArtifactMapFlags.RINGBUF_SIZE and m.max_entries:
        mul = -(-m.max_entries // page_size)
        return page_size * (1 << (mul - 1).bit_length())
    return m.max_entries


def _program(em: Emitter, j: int, program: "Program", artifact: "Artifact", kfunc_base: int,
             ksym_base: int, with_btf: bool, KfuncSiteKind) -> None:
    """Everything for loading program *j*: blob chunks, relocations, ``BPF_PROG_LOAD``."""
    asm, blob = em.asm, em.blob
    asm.comment(f"prog_load: program {j} {program.name!r} ({len(program.insns)} insns)")
    insns = list(program.insns)
    kfunc_sites: dict[int, tuple[list[int], list[int]]] = {}
    for site in program.kfunc_sites:
        insn = insns[site.insn]
        calls, addrs = kfunc_sites.setdefault(site.kfunc, ([], []))
        if site.kind == KfuncSiteKind.CALL:
            if not insn.is_call or insn.src != PseudoCall.KFUNC_CALL_PROG_BTF:
                raise ArtifactError(f"program {program.name!r}: kfunc site at insn {site.insn} "
                                    f"is not a src_reg 3 call")
            insns[site.insn] = insn.replace(src=int(PseudoCall.KFUNC_CALL), imm=0, off=0)
            calls.append(site.insn)
        else:
            if not insn.is_ld_imm64 or insn.src != PseudoLdImm64.BTF_ID:
                raise ArtifactError(f"program {program.name!r}: kfunc address site at insn "
                                    f"{site.insn} is not an ld_imm64 src_reg 3")
            insns[site.insn] = insn.replace(imm=0)
            insns[site.insn + 1] = insns[site.insn + 1].replace(imm=0)
            addrs.append(site.insn)
    ksym_sites: dict[int, list[int]] = {}
    for site in program.ksym_sites:
        ksym = artifact.ksyms[site.ksym]
        insn = insns[site.insn]
        insns[site.insn] = insn.replace(src=int(PseudoLdImm64.BTF_ID) if ksym.typed else 0, imm=0)
        insns[site.insn + 1] = insns[site.insn + 1].replace(imm=0)
        ksym_sites.setdefault(site.ksym, []).append(site.insn)

    p = f"prog{j}"
    chunks = {"license": f"{p}.license", "insns": f"{p}.insns"}
    blob.add(f"{p}.license", program.license.encode() + b"\0")
    blob.add(f"{p}.insns", Instruction.encode(insns))
    fields: dict[str, int | bytes] = dict(
        prog_type=program.prog_type, insn_cnt=len(insns), kern_version=program.kern_version,
        prog_flags=program.prog_flags, prog_name=object_name(program.name).encode(),
        expected_attach_type=program.expected_attach_type)
    if with_btf:
        for name, data, rec in (("func_info", program.func_info_bytes, 8),
                                ("line_info", program.line_info_bytes, 16),
                                ("core_relos", program.core_relo_bytes, 16)):
            if not data:
                continue
            blob.add(f"{p}.{name}", data)
            chunks[name] = f"{p}.{name}"
            cnt = "core_relo_cnt" if name == "core_relos" else f"{name}_cnt"
            size = "core_relo_rec_size" if name == "core_relos" else f"{name}_rec_size"
            fields[cnt] = len(data) // rec
            fields[size] = rec
    chunks["fd_array"] = em.fd_array
    attr = f"{p}.attr"
    blob.add(attr, bytes(A.PROG_LOAD.pack(**fields))[:PROG_LOAD_ATTR_SIZE])
    em.prog_load_pointers(attr, chunks, with_btf)
    close_after: list[BlobAddr] = []
    if program.attach is not None:
        em.attach_target(attr, program.attach.name, program.attach.kind)
        close_after.append(BlobAddr(attr, A.PROG_LOAD.fields["attach_prog_fd"].offset))
        if program.attach.member:  # struct_ops: the member's index comes from the caller
            em.expected_attach_type_from_ctx(attr, prog_desc_offset(len(artifact.maps), j))
    for k, (calls, addrs) in kfunc_sites.items():
        kfunc = artifact.kfuncs[k]
        em.kfunc_lookup(kfunc.name, weak=kfunc.weak, fd_slot=kfunc_base + k,
                        call_sites=[BlobAddr(f"{p}.insns", 8 * i) for i in calls],
                        addr_sites=[BlobAddr(f"{p}.insns", 8 * i) for i in addrs])
        close_after.append(em.fd_slot(kfunc_base + k))
    for k, sites in ksym_sites.items():
        ksym = artifact.ksyms[k]
        where = [BlobAddr(f"{p}.insns", 8 * i) for i in sites]
        if ksym.typed:
            em.ksym_typed(ksym.name, weak=ksym.weak, sites=where, obj_fd_slot=ksym_base + k)
            close_after.append(em.fd_slot(ksym_base + k))
        else:
            em.ksym_typeless(ksym.name, weak=ksym.weak, sites=where)
    asm.comment(f"prog_load: BPF_PROG_LOAD {program.name!r}")
    em.prog_load(j, attr, close_after)


__all__ = ["generate", "DEFAULT_PAGE_SIZE", "MAX_PROGRAMS", "OWN_KFUNCS"]
