"""Userspace runner of a loader: libbpf's ``bpf_load_and_run`` (skel_internal.h) in Python.

:func:`load_and_run` does, in this order:

1. ``BPF_MAP_CREATE``: the blob map (``ARRAY``, key 4 bytes, value = the blob, one entry,
   name ``__loader.map``) with ``excl_prog_hash`` = SHA-256 of the loader's instructions;
2. ``BPF_MAP_UPDATE_ELEM`` key 0 = the blob, then ``BPF_MAP_FREEZE``;
3. protocol v1: ``BPF_OBJ_GET_INFO_BY_FD`` with ``hash``, which makes the kernel compute
   ``map->sha`` (the loader's prologue compares it with its built-in hash);
4. ``BPF_PROG_LOAD`` of the loader (``SYSCALL``, ``BPF_F_SLEEPABLE``, license
   "Dual BSD/GPL", name ``__loader.prog``, ``fd_array`` = [blob map]; v2 also
   ``fd_array_cnt`` = 1) with ``signature`` / ``keyring_id`` when given; a loader
   with its own kfunc calls (format 1.4) also with its own BTF (``BPF_BTF_LOAD`` here,
   ``prog_btf_fd``) and the one func_info record that makes the kernel attach it;
5. ``BPF_PROG_RUN`` with the ctx (``struct bpf_loader_ctx`` + descriptors; a struct_ops
   program's descriptor holds, on the way in, its member's index in the running kernel's
   struct, :func:`member_indexes`; a loader with
   ``.kconfig`` externs (format 1.3) gets, as its KCONFIG map's ``initial_value``, the
   address of the value computed here for the running kernel, or the one given, by
   :meth:`~sigbpf.kernel.environment.KernelEnvironment.kconfig_map_data`);
   a negative return value is the loader's error (``-errno``);
6. the map and program fds read back from the ctx.  The blob map and the
   loader program are closed whatever happened.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sigbpf.errors import KernelError
from sigbpf.kernel.syscall import Fd, strerror
from sigbpf.loadergen.emit import CTX_HEADER_SIZE, map_desc_offset, prog_desc_offset
from sigbpf.loadergen.format import Loader, LoaderMapFlags, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.artifact.format import Program
    from sigbpf.btf import BTF
    from sigbpf.resolve.resolver import Resolution
    from sigbpf.kernel.environment import KernelEnvironment
    from sigbpf.kernel.loader import LoadedArtifact

LOADER_LICENSE = "Dual BSD/GPL"
LOADER_MAP_NAME = "__loader.map"
LOADER_PROG_NAME = "__loader.prog"


@dataclass
class LoaderResult:
    """What a loader returned: fds by name (owned here; ``close()`` or ``with``)."""

    loader: Loader
    map_fds: dict[str, Fd] = field(default_factory=dict)
    prog_fds: dict[str, Fd] = field(default_factory=dict)
    #: The kernel's verdict on the loader program itself (its tag, for reports).
    loader_tag: bytes = b""

    def close(self) -> None:
        for fd in [*self.prog_fds.values(), *self.map_fds.values()]:
            fd.close()

    def __enter__(self) -> "LoaderResult":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def as_loaded(self) -> "LoadedArtifact":
        """The fds as a :class:`~sigbpf.kernel.loader.LoadedArtifact` (they move there: close
        that one), for :mod:`sigbpf.kernel.attach` and :mod:`sigbpf.kernel.bpffs`: its
        ``artifact`` is :func:`attach_view` of the loader (names, types, sections)."""
        from sigbpf.kernel.loader import LoadedArtifact

        view = attach_view(self.loader, set(self.map_fds))
        loaded = LoadedArtifact(report=None, artifact=view,  # type: ignore[arg-type]
                                map_fds=[self.map_fds[m.name] for m in view.maps],
                                prog_fds={p.name: self.prog_fds[p.name] for p in view.programs
                                          if p.name in self.prog_fds})
        self.map_fds, self.prog_fds = {}, {}
        return loaded


@dataclass(frozen=True)
class _MapName:
    name: str


@dataclass(frozen=True)
class AttachView:
    """What :func:`~sigbpf.kernel.attach.attach_loaded` and
    :func:`~sigbpf.kernel.bpffs.pin_loaded` read of an artifact, from a loader file:
    ``programs`` (artifact Programs without instructions) and ``maps`` (names)."""

    name: str
    programs: tuple["Program", ...]
    maps: tuple[_MapName, ...]


def attach_view(loader: Loader, map_names: "set[str] | None" = None) -> AttachView:
    """The loader's programs as artifact Programs (name, section, types, attach target) for
    the attach code.  UsageError when a program that may attach has no section name (a
    loader file written before format 1.2: generate it again)."""
    from sigbpf.artifact.format import Program
    from sigbpf.elf.progtypes import ProgType
    from sigbpf.errors import UsageError

    programs = []
    for p in loader.progs:
        section = p.section or ("syscall" if p.prog_type == ProgType.SYSCALL else "")
        if not section:
            raise UsageError(f"loader {loader.name!r}: program {p.name!r} has no section name "
                             f"in the loader file (written before format 1.2); generate the "
                             f"loader again to attach it")
        programs.append(Program(p.name, section, p.prog_type, (), p.expected_attach_type,
                                attach_to=p.attach_to))
    return AttachView(loader.name, tuple(programs),
                      tuple(_MapName(m.name) for m in loader.maps
                            if map_names is None or m.name in map_names))


def struct_ops_members(loader: Loader) -> dict[int, tuple[str, str]]:
    """The struct_ops programs of *loader*: program index -> (kernel struct, member)."""
    from sigbpf.elf.progtypes import ProgType

    return {i: tuple(p.attach_to.split(".", 1)) for i, p in enumerate(loader.progs)  # type: ignore[misc]
            if p.prog_type == ProgType.STRUCT_OPS and "." in p.attach_to}


def member_indexes(loader: Loader) -> dict[int, int]:
    """Program index -> the index of its struct_ops member in the running kernel's struct,
    bound as ``sigbpf load`` binds it (vmlinux, then the modules: the order in which the
    loader's ``bpf_btf_find_by_name_kind`` finds the struct).  NotFoundError naming the
    program when the kernel lacks the struct or the member."""
    wanted = struct_ops_members(loader)
    if not wanted:
        return {}
    from sigbpf.artifact.format import AttachTarget
    from sigbpf.btf import BTF, Kind
    from sigbpf.kernel.kernel_btf import KernelBTFs, bind_attach_target

    kernel = KernelBTFs(BTF.load_vmlinux())
    try:
        out = {}
        for i, (struct_name, member) in wanted.items():
            bound = bind_attach_target(AttachTarget(struct_name, int(Kind.STRUCT), member=member),
                                       kernel, program=loader.progs[i].name)
            assert bound.member_index is not None
            out[i] = bound.member_index
        return out
    finally:
        kernel.close()


def build_ctx(loader: Loader, *, log_level: int = 0, log_size: int = 0, log_buf: int = 0,
              initial_values: "dict[int, int] | None" = None,
              members: "dict[int, int] | None" = None) -> bytes:
    """The ctx: ``sz`` and the log fields, per-CPU map sizes in their descriptors,
    *initial_values* (map index -> a userspace address) as the descriptors' ``initial_value``
    (the KCONFIG map's: :func:`kconfig_value`), and *members* (program index -> struct_ops
    member index: :func:`member_indexes`) in the program descriptors, which the loader reads
    before it overwrites them with the fds."""
    ctx = bytearray(loader.ctx_size)
    for i, index in (members or {}).items():
        struct.pack_into("<i", ctx, prog_desc_offset(len(loader.maps), i), index)
    for i, address in (initial_values or {}).items():
        struct.pack_into("<Q", ctx, map_desc_offset(i) + 8, address)
    struct.pack_into("<IIIIQ", ctx, 0, len(ctx), 0, log_level, log_size, log_buf)
    for i, m in enumerate(loader.maps):
        if m.flags & LoaderMapFlags.MAX_ENTRIES_FROM_CTX:
            from sigbpf.kernel.cpus import possible_cpus

            struct.pack_into("<I", ctx, map_desc_offset(i) + 4, possible_cpus())
    return bytes(ctx)


def kconfig_value(loader: Loader, env: "KernelEnvironment | None" = None) -> bytes:
    """The KCONFIG map's value of a loader with ``.kconfig`` externs (b"" without): *env*'s
    (None: the running kernel's) config and facts, by libbpf's rules."""
    if loader.kconfig is None:
        return b""
    if env is None:
        from sigbpf.kernel.environment import KernelEnvironment

        env = KernelEnvironment.running()
    return env.kconfig_map_data(loader.kconfig.externs, loader.kconfig.value_size)


class LoaderError(KernelError):
    """The loader program ran and returned ``-errno``."""


class SignedLoadRefused(KernelError):
    """``BPF_PROG_LOAD`` of the loader, given its signature, was refused (errno and log kept)."""


def resolve_own_calls(loader: Loader, vmlinux: "BTF | None" = None) -> "Resolution":
    """The seed's pass over the loader's own instructions (its PROG_BTF kfunc calls, format
    1.4) against *vmlinux* (None: the running kernel's), in userspace with the kernel's rules
    (:func:`~sigbpf.resolve.resolver.resolve_kfunc_calls`): what a kernel with the seed does
    at load.  A signed loader so rewritten no longer matches its signature."""
    from sigbpf.btf import BTF
    from sigbpf.resolve.resolver import resolve_kfunc_calls

    assert loader.own_btf is not None
    own = BTF.parse(loader.own_btf.raw, file="the loader's own BTF")
    return resolve_kfunc_calls(loader.insns, own, vmlinux if vmlinux is not None
                               else BTF.load_vmlinux())


def load_and_run(loader: Loader, signature: bytes | None = None,
                 keyring_id: int | None = None, *,
                 env: "KernelEnvironment | None" = None,
                 members: "dict[int, int] | None" = None,
                 resolve_own: bool = False) -> LoaderResult:
    """Run *loader* in the kernel (module docstring); its fds.  KernelError on any refusal:
    ``LoaderError`` (errno = the loader's) when the loader itself returned an error.
    *env*: the kernel whose kconfig values a loader with ``.kconfig`` externs gets (None:
    the running one).  *members*: the struct_ops member indexes to pass (None: the running
    kernel's, :func:`member_indexes`).  *resolve_own*: the loader's own PROG_BTF kfunc
    calls are resolved here (:func:`resolve_own_calls`, for a kernel without the seed) and
    the rewritten instructions are loaded; ResolveError when a name does not resolve."""
    import ctypes

    from sigbpf.elf.progtypes import ProgFlags, ProgType
    from sigbpf.elf.maps import MapType
    from sigbpf.kernel.info import map_info
    from sigbpf.kernel.maps import create_map, freeze, update_elem
    from sigbpf.kernel.program import ProgLoad, load_program
    from sigbpf.kernel.run import run_program

    result = LoaderResult(loader)
    if members is None:  # before anything is created: a missing member stops here
        members = member_indexes(loader)
    initial: dict[int, int] = {}
    buf = None
    if loader.kconfig is not None:  # computed first: a missing strong extern stops here
        value = kconfig_value(loader, env)
        buf = ctypes.create_string_buffer(value, len(value))
        initial[loader.kconfig.map_index] = ctypes.addressof(buf)
    insns = loader.insn_bytes
    if resolve_own and loader.own_btf is not None:
        from sigbpf.asm import Instruction

        resolved = resolve_own_calls(loader)
        resolved.raise_for_error()
        insns = Instruction.encode(resolved.insns)
    # The blob map is exclusive to the instructions loaded (their SHA-256, as the kernel
    # computes it before any rewrite of its own).
    with create_map(MapType.ARRAY, 4, len(loader.blob), 1, name=LOADER_MAP_NAME,
                    excl_prog_hash=hashlib.sha256(insns).digest()) as blob_map:
        update_elem(blob_map, struct.pack("<I", 0), loader.blob, what="the loader's blob map")
        freeze(blob_map, what="the loader's blob map")
        if loader.protocol is Protocol.V1:
            map_info(blob_map, with_hash=True)
        own_fd = None
        if loader.own_btf is not None:  # the loader's own kfunc calls resolve against it
            from sigbpf.kernel.btf import load_btf

            own_fd = load_btf(loader.own_btf.raw, what="the loader's own BTF")
        req = ProgLoad(prog_type=ProgType.SYSCALL, insns=insns, license=LOADER_LICENSE,
                       name=LOADER_PROG_NAME, flags=ProgFlags.SLEEPABLE,
                       fd_array=(blob_map.fileno(),),
                       fd_array_cnt=1 if loader.protocol is Protocol.V2 else 0,
                       signature=signature, keyring_id=keyring_id or 0,
                       prog_btf_fd=own_fd.fileno() if own_fd is not None else None,
                       func_info=loader.own_btf.func_info if loader.own_btf is not None else b"")
        try:
            prog = load_program(req)
        except KernelError as err:
            if loader.protocol is Protocol.V2 and "excl_prog_hash" in (err.log or ""):
                err.message += (" (protocol v2: this kernel binds fd_array_cnt maps before it "
                                "computes the program's hash, as 6.18 does; use protocol v1)")
            if signature is not None:
                raise SignedLoadRefused(err.message, errno=err.errno, log=err.log) from None
            raise
        finally:
            if own_fd is not None:
                own_fd.close()
        with prog:
            ran = run_program(prog, build_ctx(loader, initial_values=initial, members=members),
                              name=LOADER_PROG_NAME)
        del buf
    if ran.retval < 0:
        raise LoaderError(f"the loader returned {ran.retval} ({strerror(-ran.retval)})",
                          errno=-ran.retval)
    ctx = ran.ctx
    for i, m in enumerate(loader.maps):
        fd = struct.unpack_from("<i", ctx, map_desc_offset(i))[0]
        if fd > 0:
            result.map_fds[m.name] = Fd(fd, "map")
    for i, p in enumerate(loader.progs):
        fd = struct.unpack_from("<i", ctx, prog_desc_offset(len(loader.maps), i))[0]
        if fd > 0:
            result.prog_fds[p.name] = Fd(fd, "prog")
    return result


__all__ = ["AttachView", "attach_view", "LoaderError", "LoaderResult", "SignedLoadRefused",
           "build_ctx", "member_indexes", "resolve_own_calls", "struct_ops_members", "kconfig_value", "load_and_run", "CTX_HEADER_SIZE"]
