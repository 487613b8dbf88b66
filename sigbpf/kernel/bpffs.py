"""The BPF filesystem: pin objects (``BPF_OBJ_PIN``), open pinned ones (``BPF_OBJ_GET``),
pin a whole loaded artifact in a directory and take it down again.

:func:`pin_loaded` lays a loaded artifact out under one directory on bpffs::

    DIR/maps/NAME     each map, by its name in the object (``bpftool map dump pinned ...``)
    DIR/progs/NAME    each loaded program
    DIR/links/NAME    each attachment's link (``NAME_cpuN`` for per-CPU perf events)

bpffs refuses names with a dot (``EPERM``: dots are reserved), so a ``.``
in a name becomes ``_``, as libbpf's pin paths do (``obj.rodata`` is pinned
as ``maps/obj_rodata``).

DIR must be on bpffs (``statfs`` magic ``BPF_FS_MAGIC``) and must not exist
yet, or be an empty directory.  It is all or nothing: when one pin fails,
the pins made so far are removed, and the directories made.
:func:`unload_dir` undoes it: each link is detached (``BPF_LINK_DETACH``
where the link type has it) and unpinned, then the programs and maps are
unpinned and the directories removed.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sigbpf.errors import KernelError, UsageError
from sigbpf.kernel import attr as A
from sigbpf.kernel.syscall import Cmd, Fd, bpf

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.kernel.loader import LoadedArtifact

__all__ = ["BPFFS", "BPF_FS_MAGIC", "obj_pin", "obj_get", "fs_magic", "is_bpffs", "pin_name",
           "check_pin_dir", "pin_loaded", "Pinned", "unload_dir", "Unloaded", "PIN_SUBDIRS"]

#: Where bpffs is mounted on systemd machines (``mount -t bpf bpf /sys/fs/bpf``).
BPFFS = "/sys/fs/bpf"
#: ``statfs.f_type`` of bpffs (include/uapi/linux/magic.h).
BPF_FS_MAGIC = 0xCAFE4A11
#: The directories :func:`pin_loaded` makes under DIR, in the order :func:`unload_dir` empties them.
PIN_SUBDIRS = ("links", "progs", "maps")


def obj_pin(fd: Fd | int, path: str) -> None:
    """``BPF_OBJ_PIN``: make *fd*'s object outlive this process at *path* (on bpffs)."""
    keep = A.Buffers()
    buf = A.OBJ_PIN.pack(pathname=keep.cstr(path), bpf_fd=int(fd))
    bpf(Cmd.OBJ_PIN, buf, what=f"pinning at {path} (BPF_OBJ_PIN)")


def obj_get(path: str, kind: str = "pinned") -> Fd:
    """``BPF_OBJ_GET``: a new fd for the object pinned at *path*."""
    keep = A.Buffers()
    buf = A.OBJ_PIN.pack(pathname=keep.cstr(path))
    return Fd(bpf(Cmd.OBJ_GET, buf, what=f"opening pinned {path} (BPF_OBJ_GET)"), kind)


def pin_name(name: str) -> str:
    """*name* as a bpffs entry: ``.`` (refused by bpffs) becomes ``_``, as in libbpf."""
    return name.replace(".", "_")


def fs_magic(path: str) -> int:
    """``statfs(path).f_type`` (OSError when *path* cannot be reached)."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux
    if libc.statfs(os.fsencode(path), buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return int.from_bytes(buf.raw[:ctypes.sizeof(ctypes.c_long)], "little",
                          signed=True) & 0xFFFFFFFF


def is_bpffs(path: str) -> bool:
    """Whether *path* is on a BPF filesystem."""
    try:
        return fs_magic(path) == BPF_FS_MAGIC
    except OSError:
        return False


def check_pin_dir(directory: str) -> bool:
    """Check that *directory* can take a loaded artifact's pins; True when it must be made.

    UsageError (one line) when it exists and is not an empty directory, or
    is not (or would not be) on bpffs.
    """
    if os.path.lexists(directory):
        if not os.path.isdir(directory):
            raise UsageError(f"--pin {directory}: exists and is not a directory",
                             errno=errno_mod.EEXIST)
        if os.listdir(directory):
            raise UsageError(f"--pin {directory}: exists and is not empty (pin into a new "
                             f"directory, or `sigbpf unload {directory}` first)",
                             errno=errno_mod.EEXIST)
        where, create = directory, False
    else:
        where, create = os.path.dirname(os.path.abspath(directory)), True
        if not os.path.isdir(where):
            raise UsageError(f"--pin {directory}: parent directory {where} does not exist",
                             errno=errno_mod.ENOENT)
        if "." in os.path.basename(os.path.abspath(directory)):
            raise UsageError(f"--pin {directory}: bpffs refuses names with a '.' (reserved); "
                             f"choose another name", errno=errno_mod.EINVAL)
    try:
        magic = fs_magic(where)
    except OSError as err:
        raise UsageError(f"--pin {directory}: {where}: {err.strerror}", errno=err.errno) from None
    if magic != BPF_FS_MAGIC:
        raise UsageError(f"--pin {directory}: {where} is not on a BPF filesystem (bpffs, statfs "
                         f"magic {BPF_FS_MAGIC:#x}; found {magic:#x}): pin under {BPFFS} or "
                         f"mount one (mount -t bpf bpf DIR)", errno=errno_mod.EINVAL)
    return create


@dataclass
class Pinned:
    """What :func:`pin_loaded` pinned: name -> path for maps, programs and links."""

    directory: str
    maps: dict[str, str] = field(default_factory=dict)
    progs: dict[str, str] = field(default_factory=dict)
    links: dict[str, list[str]] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {"dir": self.directory, "maps": self.maps, "progs": self.progs,
                "links": self.links}


def pin_loaded(loaded: "LoadedArtifact", directory: str) -> Pinned:
    """Pin every map, program and attachment of *loaded* under *directory* (see the module
    docstring); all or nothing.  Errors are one line, naming what could not be pinned."""
    from sigbpf.kernel.attach import Attachment

    artifact = loaded.artifact
    assert artifact is not None, "LoadedArtifact without its artifact"
    directory = os.path.normpath(directory)
    create = check_pin_dir(directory)
    names = [m.name for m in artifact.maps][: len(loaded.map_fds)]
    entries = [pin_name(n) for n in names]
    duplicates = sorted({e for e in entries if entries.count(e) > 1})
    if duplicates:
        raise UsageError(f"--pin {directory}: two maps would be pinned at "
                         f"{directory}/maps/{duplicates[0]}")
    made: list[str] = []
    pinned = Pinned(directory)
    attachments = [a for a in loaded.links if isinstance(a, Attachment)]
    try:
        if create:
            _mkdir(directory, made)
        for sub in ("maps", "progs", "links"):
            _mkdir(os.path.join(directory, sub), made)
        for name, fd in zip(names, loaded.map_fds):
            path = os.path.join(directory, "maps", pin_name(name))
            _pin(fd, path, f"map {name!r}")
            pinned.maps[name] = path
        for name, fd in loaded.prog_fds.items():
            path = os.path.join(directory, "progs", pin_name(name))
            _pin(fd, path, f"program {name!r}")
            pinned.progs[name] = path
        for attachment in attachments:
            try:
                pinned.links[attachment.program] = attachment.pin(os.path.join(directory, "links"))
            except KernelError as err:
                raise KernelError(f"pinning the link of program {attachment.program!r} "
                                  f"({attachment.target}) under {directory}/links: {err.message}",
                                  errno=err.errno) from None
    except BaseException:
        for attachment in attachments:
            attachment.unpin()
        for path in [*pinned.maps.values(), *pinned.progs.values()]:
            _unlink_quietly(path)
        for path in reversed(made):
            try:
                os.rmdir(path)
            except OSError:
                pass
        raise
    return pinned


def _mkdir(path: str, made: list[str]) -> None:
    try:
        os.mkdir(path, 0o700)
    except OSError as err:
        raise UsageError(f"--pin: cannot make directory {path}: {err.strerror}",
                         errno=err.errno) from None
    made.append(path)


def _pin(fd: Fd, path: str, what: str) -> None:
    try:
        obj_pin(fd, path)
    except KernelError as err:
        raise KernelError(f"pinning {what} at {path} (BPF_OBJ_PIN): "
                          f"{os.strerror(err.errno) if err.errno else err.message}",
                          errno=err.errno) from None


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


@dataclass(frozen=True, slots=True)
class UnpinnedObject:
    """One pin :func:`unload_dir` removed (or failed to)."""

    kind: str  # "link", "prog", "map"
    path: str
    detached: bool | None = None  # links: BPF_LINK_DETACH done (False: not supported)
    link_type: str | None = None
    error: str | None = None

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "path": self.path}
        if self.kind == "link":
            out.update(detached=self.detached, type=self.link_type)
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class Unloaded:
    """What :func:`unload_dir` did."""

    directory: str
    objects: list[UnpinnedObject] = field(default_factory=list)
    removed_dirs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.error is None for o in self.objects)

    def as_json(self) -> dict[str, object]:
        return {"dir": self.directory, "ok": self.ok,
                "unpinned": [o.as_json() for o in self.objects],
                "removed_dirs": self.removed_dirs}


def unload_dir(directory: str) -> Unloaded:
    """Detach and unpin everything :func:`pin_loaded` put under *directory*, then remove its
    directories.  Refuses (UsageError) a directory that is not on bpffs or holds anything
    but ``maps/``, ``progs/`` and ``links/``; failures on single objects are reported in
    the result, and the rest still goes."""
    from sigbpf.kernel.links import link_detach, link_info

    directory = os.path.normpath(directory)
    if not os.path.isdir(directory):
        raise UsageError(f"{directory}: no such directory (nothing pinned there)",
                         errno=errno_mod.ENOENT)
    if not is_bpffs(directory):
        raise UsageError(f"{directory}: not on a BPF filesystem (bpffs): not a directory "
                         f"`sigbpf load --pin` made", errno=errno_mod.EINVAL)
    strange = sorted(set(os.listdir(directory)) - set(PIN_SUBDIRS))
    if strange:
        raise UsageError(f"{directory}: holds {strange[0]!r}, which `sigbpf load --pin` does not "
                         f"make (only maps/, progs/, links/); refusing to unload it",
                         errno=errno_mod.EINVAL)
    for sub in PIN_SUBDIRS:
        path = os.path.join(directory, sub)
        if os.path.lexists(path) and not os.path.isdir(path):
            raise UsageError(f"{path}: not a directory; refusing to unload {directory}",
                             errno=errno_mod.EINVAL)
    result = Unloaded(directory)
    for sub in PIN_SUBDIRS:
        subdir = os.path.join(directory, sub)
        if not os.path.isdir(subdir):
            continue
        for name in sorted(os.listdir(subdir)):
            path = os.path.join(subdir, name)
            kind = sub[:-1]
            detached: bool | None = None
            link_type = None
            error = None
            if kind == "link":
                try:
                    with obj_get(path, "link") as fd:
                        link_type = link_info(fd).type_name
                        detached = link_detach(fd, what=f"detaching {path} (BPF_LINK_DETACH)")
                except KernelError as err:
                    error = str(err)
            try:
                os.unlink(path)
            except OSError as err:
                error = error or f"unpinning {path}: {err.strerror}"
            result.objects.append(UnpinnedObject(kind, path, detached, link_type, error))
        try:
            os.rmdir(subdir)
            result.removed_dirs.append(subdir)
        except OSError as err:
            result.objects.append(UnpinnedObject("dir", subdir, error=f"removing {subdir}: "
                                                                       f"{err.strerror}"))
    try:
        os.rmdir(directory)
        result.removed_dirs.append(directory)
    except OSError as err:
        result.objects.append(UnpinnedObject("dir", directory,
                                             error=f"removing {directory}: {err.strerror}"))
    return result
