"""Which kernels ``sigbpf check`` was given: KERNEL arguments -> :class:`KernelSource`\\ s.

A :class:`KernelSource` says where one kernel's BTF is, without reading it
(the workers do, :mod:`.kernel_input`).  The conventions (docs/FLEET.md):

* ``running``: this machine's kernel (``/sys/kernel/btf/vmlinux`` and the
  loaded modules' ``/sys/kernel/btf/*``).  A file named ``running`` is
  given as ``./running``.
* a **BTF file** ``NAME.btf`` (raw BTF, or an ELF vmlinux with ``.BTF``; a
  ``.xz`` suffix is read through xz), with optional siblings in the same
  directory: ``NAME.BTF_ids`` (the vmlinux's ``.BTF_ids`` section: kfunc sets
  of untagged kernels) and ``NAME.<module>.btf`` (a module's split BTF;
  module names have no dots).  Any other file given on the command line is
  read by its content (raw BTF, ELF, bzImage, ``.deb``, BTFHub tar).
* a **BTFHub archive** ``<kernel>.btf.tar.xz`` (its one member, raw BTF or
  ELF, read from the tar in memory; never unpacked to disk).
* a **Debian/Ubuntu package** ``.deb``: ``linux-image-*``/``linux-binary-*``
  give the kernel image; ``linux-modules-*`` packages of the same release
  (found among all the ``.deb`` files given or in the same trees) give its
  modules' split BTF.  A modules package without its image is an error.
* a **directory**: walked recursively in name order; the files above are
  kernels (``vmlinux`` and ``vmlinuz*`` too), siblings attach to their
  kernel, anything else is skipped.  A directory or file that cannot be
  read becomes a kernel of its own that "could not be read".

Legacy options ``--btf K [--module M]... [--btf-ids F]...`` give one BTF
file with exactly the siblings named (none found by name).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Iterable, Sequence

RUNNING = "running"
SYS_VMLINUX = "/sys/kernel/btf/vmlinux"

#: A release string: 6.1.0-56-amd64, 6.12.95+deb12-amd64, 5.4.0-1009-aws.
_RELEASE = re.compile(r"\d+\.\d+(?:\.\d+)?(?:[-+~._][0-9A-Za-z]+)*")
_DEB_RELEASE = re.compile(r"linux-(?:image|binary|modules)(?:-unsigned)?-(.+?)(?:-unsigned|-dbg)?")
_MODULE_NAME = re.compile(r"[A-Za-z0-9_-]+")


class SourceKind(IntEnum):
    RUNNING = 0
    BTF_FILE = 1  # raw BTF or an ELF/bzImage (by content), siblings by name
    BTFHUB = 2  # <kernel>.btf.tar.xz
    DEB = 3  # linux-image/binary .deb (+ modules .debs)
    UNREADABLE = 4  # what could not even be listed (error says why)


@dataclass(frozen=True, slots=True)
class KernelSource:
    """One kernel to check: how to read it, and the name to show until it is read."""

    kind: SourceKind
    path: str
    modules: tuple[str, ...] = ()  # module BTF files, or linux-modules .debs
    btf_ids: tuple[str, ...] = ()
    label: str = ""  # the name when nothing better is read (a release from the file name, or the path)
    error: str | None = None  # UNREADABLE: why

    @property
    def files(self) -> tuple[str, ...]:
        """Every file this kernel is read from (what its digest covers)."""
        if self.kind is SourceKind.RUNNING or self.kind is SourceKind.UNREADABLE:
            return ()
        return (self.path, *self.btf_ids, *self.modules)


def release_from_name(file_name: str) -> str | None:
    """The release a kernel file is named after (``6.1.0-56-amd64.btf`` -> ``6.1.0-56-amd64``)."""
    stem = file_name
    for suffix in (".xz", ".tar", ".btf", ".elf"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    for prefix in ("vmlinux-", "vmlinuz-"):
        if stem.startswith(prefix):
            stem = stem[len(prefix):]
    return stem if _RELEASE.fullmatch(stem) else None


def deb_release(package: str) -> str | None:
    """``linux-binary-7.3.4+deb13-amd64`` -> ``7.3.4+deb13-amd64`` (None: not a kernel package)."""
    m = _DEB_RELEASE.fullmatch(package)
    return m.group(1) if m and _RELEASE.fullmatch(m.group(1)) else None


def _strip_xz(name: str) -> str:
    return name[:-3] if name.endswith(".xz") else name


def _is_kernel_file(name: str) -> bool:
    base = _strip_xz(name)
    return (base.endswith(".btf") or base in ("vmlinux",) or name.startswith("vmlinuz")
            or name.endswith(".btf.tar.xz") or name.endswith(".deb"))


class _Siblings:
    """The sibling files of each kernel stem in one directory, indexed once (1,000 kernels in
    a directory are grouped in one pass, not one pass per kernel)."""

    def __init__(self, directory: str, names: Sequence[str]) -> None:
        self.directory = directory
        self.ids: dict[str, list[str]] = {}
        self.modules: dict[str, list[str]] = {}
        for n in names:
            base = _strip_xz(n)
            if base.endswith(".BTF_ids"):
                self.ids.setdefault(base[:-8], []).append(n)
            elif base.endswith(".btf"):
                head, dot, module = base[:-4].rpartition(".")
                if dot and _MODULE_NAME.fullmatch(module):
                    self.modules.setdefault(head, []).append(n)

    def of(self, stem: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(module BTF files, .BTF_ids files) of kernel *stem*."""
        join = os.path.join
        return (tuple(sorted(join(self.directory, n) for n in self.modules.get(stem, ()))),
                tuple(sorted(join(self.directory, n) for n in self.ids.get(stem, ()))))


def _kernel_stems(names: Sequence[str]) -> set[str]:
    return {_strip_xz(n)[:-4] for n in names if _strip_xz(n).endswith(".btf")}


def _is_module_of_sibling(name: str, stems: set[str]) -> bool:
    """``K.xfs.btf`` when ``K.btf`` is in the same directory: a module, not a kernel."""
    base = _strip_xz(name)[:-4]
    head, _, module = base.rpartition(".")
    return bool(head) and head in stems and bool(_MODULE_NAME.fullmatch(module))


class _Collector:
    """Gathers sources in argument order; .deb files are grouped by release at the end."""

    def __init__(self) -> None:
        self.out: list[KernelSource | tuple[str, str]] = []  # ("deb", path) placeholders
        self.debs: list[str] = []
        self.walked: set[str] = set()  # .deb files found in a directory, not named

    def unreadable(self, path: str, why: str) -> None:
        self.out.append(KernelSource(SourceKind.UNREADABLE, path, label=path, error=why))

    def file(self, path: str, siblings: "_Siblings | None" = None) -> None:
        directory, name = os.path.split(path)
        if name.endswith(".deb"):
            self.debs.append(path)
            self.out.append(("deb", path))
            return
        if name.endswith(".btf.tar.xz"):
            self.out.append(KernelSource(SourceKind.BTFHUB, path,
                                         label=release_from_name(name[:-7]) or path))
            return
        base = _strip_xz(name)
        stem = base[:-4] if base.endswith(".btf") else base
        modules: tuple[str, ...] = ()
        ids: tuple[str, ...] = ()
        if base.endswith(".btf"):
            if siblings is None:
                try:
                    siblings = _Siblings(directory, os.listdir(directory or "."))
                except OSError:
                    siblings = _Siblings(directory, ())
            modules, ids = siblings.of(stem)
        self.out.append(KernelSource(SourceKind.BTF_FILE, path, modules, ids,
                                     label=release_from_name(name) or path))

    def tree(self, root: str) -> None:
        def onerror(err: OSError) -> None:
            self.unreadable(err.filename or root, err.strerror or str(err))

        for directory, dirs, files in os.walk(root, onerror=onerror):
            dirs.sort()
            names = sorted(files)
            stems = _kernel_stems(names)
            siblings = _Siblings(directory, names)
            for name in names:
                if not _is_kernel_file(name):
                    continue
                if _strip_xz(name).endswith(".btf") and _is_module_of_sibling(name, stems):
                    continue
                path = os.path.join(directory, name)  # unreadable: its reader says why
                if name.endswith(".deb"):
                    self.walked.add(path)
                self.file(path, siblings)

    def sources(self) -> list[KernelSource]:
        groups = _group_debs(self.debs, self.walked)
        out: list[KernelSource] = []
        done: set[str] = set()
        for item in self.out:
            if isinstance(item, KernelSource):
                out.append(item)
                continue
            path = item[1]
            source = groups.get(path)
            if source is not None and source.path not in done:
                done.add(source.path)
                out.append(source)
        return out


def _group_debs(paths: Sequence[str], walked: set[str] = frozenset()) -> dict[str, KernelSource]:
    """Each .deb path -> the kernel source it belongs to (modules packages join their image).

    A package that is no kernel's (``linux-base``, headers, anything else) is
    an error when named, and skipped when found in a directory (*walked*)."""
    from sigbpf.errors import FormatError
    from sigbpf.fleet.deb import control

    images: dict[str, str] = {}  # release -> image deb
    modules: dict[str, list[str]] = {}
    by_path: dict[str, KernelSource] = {}
    for path in paths:
        try:
            package = control(path).get("Package", "")
        except FormatError as err:
            by_path[path] = KernelSource(SourceKind.UNREADABLE, path, label=path, error=err.message)
            continue
        release = deb_release(package)
        if release is None and path in walked:
            continue
        if release is None:
            by_path[path] = KernelSource(SourceKind.UNREADABLE, path, label=path,
                                         error=f"package {package or '?'} is not a Linux kernel image "
                                               "or modules package")
        elif package.startswith("linux-modules-"):
            modules.setdefault(release, []).append(path)
        elif release in images:
            by_path[path] = KernelSource(SourceKind.UNREADABLE, path, label=path,
                                         error=f"a second image package for {release} "
                                               f"(the first is {images[release]})")
        else:
            images[release] = path
    for release, image in images.items():
        by_path[image] = KernelSource(SourceKind.DEB, image, tuple(sorted(modules.get(release, ()))),
                                      label=release)
        for m in modules.get(release, ()):
            by_path[m] = by_path[image]
    for release, mods in modules.items():
        if release not in images:
            for m in mods:
                by_path[m] = KernelSource(SourceKind.UNREADABLE, m, label=release,
                                          error=f"modules package without its kernel image "
                                                f"(give linux-image-{release} or linux-binary-{release} too)")
    return by_path


def expand(kernels: Iterable[str]) -> list[KernelSource]:
    """Every kernel the KERNEL arguments name, in argument order (directories in name order)."""
    c = _Collector()
    for arg in kernels:
        if arg == RUNNING:
            c.out.append(KernelSource(SourceKind.RUNNING, SYS_VMLINUX, label=os.uname().release))
        elif os.path.isdir(arg):
            c.tree(arg)
        elif os.path.lexists(arg):
            c.file(arg)
        else:
            c.unreadable(arg, "no such file or directory")
    return c.sources()


def explicit(btf: str, modules: Sequence[str], btf_ids: Sequence[str]) -> KernelSource:
    """A legacy ``--btf`` kernel with exactly the ``--module``/``--btf-ids`` files given."""
    return KernelSource(SourceKind.BTF_FILE, btf, tuple(modules), tuple(btf_ids), label=btf)
