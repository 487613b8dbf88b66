"""Reading one kernel for the fleet check: a :class:`KernelSource` -> digest -> :class:`KernelData`.

Two steps, so that a cached kernel costs no parsing:

1. :meth:`KernelReader.digest` -- the kernel's content digest
   (:func:`~sigbpf.fleet.digests.kernel_digest`): files already read for it
   are kept for step 2 (BTF files, BTFHub archives), packages are hashed in
   chunks and read again only if step 2 runs; digests of unchanged files come
   from the memo (:mod:`.digests`) without reading them.
2. :meth:`KernelReader.read` -- the kernel's BTF as the verdicts need it:
   vmlinux as a :class:`~sigbpf.fleet.scanbtf.ScanBTF`, the ``.BTF_ids``
   sections, the module BTFs that mention one of the artifact's names (split
   BTF on vmlinux; the others are never parsed), and the version read from the
   content (ELF banner, bzImage header, package) when there is one.

Nothing is written to disk; what is read is dropped when the kernel is done.
A kernel image (bzImage payload, ELF vmlinux, a package's modules) takes
100-150 MB while it is decompressed: :data:`BIG_READS` (a lock the worker
pool shares) lets one worker at a time do that, so peak memory stays one
image plus the other workers' BTF files, whatever the number of packages.
Every problem is a :class:`~sigbpf.errors.SigbpfError` whose message becomes
the kernel's "could not read: ..." verdict.
"""

from __future__ import annotations

import io
import os
import struct
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from sigbpf.errors import FormatError
from sigbpf.fleet.digests import DigestMemo, kernel_digest, sha256_bytes, sha256_file, stat_key
from sigbpf.fleet.sources import SYS_VMLINUX, KernelSource, SourceKind

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.fleet.scanbtf import ScanBTF
    from sigbpf.resolve.modules import ModuleBTF

BTF_MAGIC = (b"\x9f\xeb", b"\xeb\x9f")
ELF_MAGIC = b"\x7fELF"
AR_MAGIC = b"!<arch>\n"
SYS_BTF_DIR = os.path.dirname(SYS_VMLINUX)
_MODULE_FILE = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")

#: Held while a kernel image or a package is decompressed (see the module docstring); the
#: worker pool replaces it with a lock shared by its processes.
BIG_READS: "AbstractContextManager" = nullcontext()


@dataclass
class KernelData:
    """One kernel's BTF as the verdicts use it."""

    version: str | None  # read from the content; None: name it by its file
    vmlinux: "ScanBTF"
    btf_ids: tuple[tuple[str, bytes], ...]  # (where from, section bytes)
    modules: tuple["ModuleBTF", ...]
    modules_seen: int  # module BTFs looked at (parsed or not)
    running: bool = False


def _unxz(data: bytes, name: str) -> bytes:
    """*data* itself, or decompressed when it is xz (``.xz`` files, and any xz content)."""
    if data[:6] == b"\xfd7zXZ\x00":
        from sigbpf.fleet.decompress import decompress

        try:
            return bytes(decompress(data, "xz"))
        except FormatError as err:
            raise err.at(file=name)
    return data


def _read(path: str) -> bytes:
    from sigbpf.fileio import read_input

    return read_input(path)


@dataclass(frozen=True)
class Mentions:
    """What a module's split BTF holds if one of the artifact's names may be defined in it.

    Split BTF names its types either by its own strings or, when vmlinux has
    the string already, by vmlinux's string offset (libbpf's ``btf__add_str``).
    So a module is parsed only when its string section has one of the names
    as a whole string, or its type section has, at a word boundary, one of
    the vmlinux offsets of a name; and kept only when one of its own records
    is named so (a word equal to such an offset by chance only costs a parse).
    """

    names: tuple[bytes, ...]
    base_offsets: tuple[int, ...]

    @classmethod
    def of(cls, names: Iterable[str], vmlinux: "ScanBTF", core_names: Iterable[str] = ()) -> "Mentions":
        """*names* are looked up in modules always; *core_names* (CO-RE root types) only when
        vmlinux has no type of that name (the kernel searches modules only then)."""
        from sigbpf.fleet.scanbtf import string_offsets

        raw = tuple(n.encode() for n in names)
        raw += tuple(c for c in (n.encode() for n in core_names) if not vmlinux.names_any((c,)))
        offsets = {off for r in raw for off in string_offsets(vmlinux, r)[:8]}
        return cls(raw, tuple(sorted(offsets)))

    def in_btf(self, btf: bytes | bytearray) -> bool:
        """True when the raw (little-endian) split BTF *btf* may define one of the names."""
        if len(btf) < 24 or btf[:2] != b"\x9f\xeb":
            return True  # not what we expect: let the parser say what is wrong
        hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<IIIII", btf, 4)
        strings = btf[hdr_len + str_off:hdr_len + str_off + str_len]
        for name in self.names:
            if strings.startswith(name + b"\0") or b"\0" + name + b"\0" in strings:
                return True
        from sigbpf.fleet.scanbtf import word_positions

        types = btf[hdr_len + type_off:hdr_len + type_off + type_len]
        return any(next(word_positions(types, off), None) is not None for off in self.base_offsets)


def _module_name(file_name: str) -> str:
    """``xfs.ko.xz`` -> ``xfs``; ``6.1.0-56-amd64.xfs.btf`` -> ``xfs`` (:class:`ModuleBTF`'s rule)."""
    name = file_name
    for suffix in (".xz", ".zst", ".gz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    for suffix in (".ko", ".btf"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name.rsplit(".", 1)[-1] or name


def _module_btf_bytes(data: bytes | bytearray, name: str) -> bytes | None:
    """A module's split BTF: raw BTF as is, an ELF ``.ko``'s ``.BTF`` section (None: none)."""
    if data[:2] in BTF_MAGIC:
        return bytes(data)
    if data[:4] == ELF_MAGIC:
        from sigbpf.fleet.vmlinux_image import elf_sections_streamed, in_memory

        try:
            sections, _banner = elf_sections_streamed(in_memory(data), (".BTF",))
        except FormatError as err:
            raise err.at(file=name)
        return sections.get(".BTF")
    raise FormatError("neither raw BTF nor an ELF module", file=name, offset=0)


@dataclass
class KernelReader:
    """One kernel source through the two steps of the module docstring."""

    source: KernelSource
    memo: DigestMemo | None = None
    #: (path, stat key, digest) of every file hashed here, for the caller's memo.
    hashed: list[tuple[str, tuple | None, str]] = field(default_factory=list)
    _blobs: dict[str, bytes] = field(default_factory=dict)
    _core_names: tuple[str, ...] = ()

    # ---------------------------------------------------------------- step 1
    def _file_digest(self, path: str, keep: bool) -> str:
        """The digest of *path*: remembered, or computed (keeping the bytes when *keep*)."""
        if self.memo is not None and not keep:
            found = self.memo.get(path)
            if found is not None:
                return found
        key = stat_key(path)
        if keep:
            data = _read(path)
            self._blobs[path] = data
            digest = sha256_bytes(data)
        else:
            try:
                digest = sha256_file(path)
            except OSError as err:
                raise FormatError(err.strerror or str(err), file=path) from None
        self.hashed.append((path, key, digest))
        return digest

    def cached_digest(self) -> str | None:
        """The digest from the memo alone (no file read), or None when a file is not remembered."""
        s = self.source
        if s.kind in (SourceKind.RUNNING, SourceKind.UNREADABLE) or self.memo is None:
            return None
        parts = []
        for role, path in self._roles():
            d = self.memo.get(path)
            if d is None:
                return None
            parts.append((role, d))
        return kernel_digest(parts)

    def _roles(self) -> list[tuple[str, str]]:
        s = self.source
        out = [("vmlinux" if s.kind is not SourceKind.DEB else "deb:image", s.path)]
        out += [("btf_ids", p) for p in s.btf_ids]
        if s.kind is SourceKind.DEB:
            out += [("deb:modules", p) for p in s.modules]
        else:
            out += [(f"module:{_module_name(os.path.basename(p))}", p) for p in s.modules]
        return out

    def digest(self) -> str:
        """The kernel's content digest (reads and keeps what step 2 needs again)."""
        s = self.source
        if s.kind is SourceKind.UNREADABLE:
            raise FormatError(s.error or "cannot be read", file=s.path)
        if s.kind is SourceKind.RUNNING:
            return self._running_digest()
        keep = s.kind in (SourceKind.BTF_FILE, SourceKind.BTFHUB)
        return kernel_digest((role, self._file_digest(path, keep and role != "deb:modules"))
                             for role, path in self._roles())

    def _running_digest(self) -> str:
        from sigbpf.btf.reader import load_file

        self._blobs[SYS_VMLINUX] = data = bytes(load_file(SYS_VMLINUX))
        parts = [("vmlinux", sha256_bytes(data))]
        for name in self._running_module_names():
            path = os.path.join(SYS_BTF_DIR, name)
            try:
                blob = _read(path)
            except FormatError:
                continue  # unloaded meanwhile
            self._blobs[path] = blob
            parts.append((f"module:{name}", sha256_bytes(blob)))
        return kernel_digest(parts)

    @staticmethod
    def _running_module_names() -> list[str]:
        try:
            return sorted(n for n in os.listdir(SYS_BTF_DIR) if n != "vmlinux")
        except OSError:
            return []

    # ---------------------------------------------------------------- step 2
    def read(self, names: Iterable[str], core_names: Iterable[str] = ()) -> KernelData:
        """The kernel's BTF (module docstring); modules only when they define one of *names*
        (or of *core_names* that vmlinux lacks: :class:`Mentions`)."""
        s = self.source
        self._core_names = tuple(core_names)
        names = tuple(names)
        if s.kind is SourceKind.RUNNING:
            return self._read_running(names)
        if s.kind is SourceKind.DEB:
            return self._read_deb(names)
        if s.kind is SourceKind.BTFHUB:
            raw, version = self._from_tar(self._blob(s.path), s.path), None
            return self._assemble(raw, names, version)
        return self._assemble(self._blob(s.path), names, None)

    def _blob(self, path: str) -> bytes:
        data = self._blobs.pop(path, None)
        return data if data is not None else _read(path)

    def _from_tar(self, data: bytes, name: str) -> bytes:
        """The one regular member of a BTFHub ``.btf.tar.xz``, from memory."""
        import tarfile

        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
                for info in tar:
                    if info.isfile():
                        handle = tar.extractfile(info)
                        if handle is not None:
                            return handle.read()
        except (tarfile.TarError, EOFError, OSError, ValueError) as err:
            raise FormatError(f"corrupt BTFHub archive: {err}", file=name) from None
        raise FormatError("BTFHub archive without a file in it", file=name)

    def _assemble(self, main: bytes, names: tuple[str, ...], version: str | None) -> KernelData:
        """vmlinux from raw BTF / ELF / bzImage bytes, plus the source's sibling files."""
        s = self.source
        main = _unxz(main, s.path)
        ids: list[tuple[str, bytes]] = []
        if main[:4] == ELF_MAGIC or (main[:2] not in BTF_MAGIC and len(main) > 0x250
                                     and main[0x202:0x206] == b"HdrS"):
            from sigbpf.fleet.vmlinux_image import image_btf

            with BIG_READS:
                image = image_btf(main, s.path)
            main, version = image.btf, version or image.version
            if image.btf_ids is not None:
                ids.append((f"{s.path}:.BTF_ids", image.btf_ids))
        elif main[:2] not in BTF_MAGIC:
            what = "a tar archive" if main[257:262] == b"ustar" else "an ar archive (.deb?)" \
                if main[:8] == AR_MAGIC else "not BTF"
            raise FormatError(f"{what}: no BTF magic (9f eb), no ELF, no bzImage header", file=s.path,
                              offset=0)
        vmlinux = self._vmlinux(main)
        for path in s.btf_ids:
            ids.append((path, self._btf_ids_bytes(_unxz(self._blob(path), path), path)))
        modules = []
        for path in s.modules:  # given by name: always read (a handful)
            data = _unxz(self._blob(path), path)
            try:
                btf = _module_btf_bytes(data, path)
            except FormatError as err:
                raise err.at(file=path)
            if btf is not None:
                modules.append(self._module(_module_name(os.path.basename(path)), btf, vmlinux, path))
        return KernelData(version, vmlinux, tuple(ids), tuple(modules), len(s.modules))

    @staticmethod
    def _btf_ids_bytes(data: bytes, path: str) -> bytes:
        if data[:4] == ELF_MAGIC:
            from sigbpf.elf.reader import read_named_section

            sec = read_named_section(data, ".BTF_ids", path)
            if sec is None:
                raise FormatError("no .BTF_ids section", file=path)
            return sec
        return data

    def _vmlinux(self, data: bytes) -> "ScanBTF":
        from sigbpf.fleet.scanbtf import ScanBTF

        return ScanBTF.parse(data, file=self.source.path, validate=False)

    @staticmethod
    def _module(name: str, data: bytes, vmlinux: "ScanBTF", where: str) -> "ModuleBTF":
        from sigbpf.fleet.scanbtf import ScanBTF
        from sigbpf.resolve.modules import ModuleBTF

        return ModuleBTF(name, ScanBTF.parse(data, vmlinux, file=where, validate=False))

    def _read_running(self, names: tuple[str, ...]) -> KernelData:
        if SYS_VMLINUX not in self._blobs:
            self._running_digest()
        vmlinux = self._vmlinux(self._blobs.pop(SYS_VMLINUX))
        mentions = Mentions.of(names, vmlinux, self._core_names)
        modules = []
        seen = 0
        for path in sorted(self._blobs):
            data = self._blobs.pop(path)
            seen += 1
            if mentions.in_btf(data):
                module = self._module(os.path.basename(path), data, vmlinux, path)
                if module.btf.names_any(mentions.names):
                    modules.append(module)
        return KernelData(os.uname().release, vmlinux, (), tuple(modules), seen, running=True)

    def _read_deb(self, names: tuple[str, ...]) -> KernelData:
        with BIG_READS:
            return self._read_deb_unlocked(names)

    def _read_deb_unlocked(self, names: tuple[str, ...]) -> KernelData:
        from sigbpf.fleet.deb import control, data_members
        from sigbpf.fleet.sources import deb_release
        from sigbpf.fleet.vmlinux_image import image_btf

        s = self.source
        release = deb_release(control(s.path).get("Package", "")) or s.label

        def is_image(name: str) -> bool:
            base = os.path.basename(name)
            return base.startswith("vmlinuz") or base == "vmlinux" or \
                (base.startswith("vmlinux-") and "/boot/" in f"/{name}")

        image = None
        for name, data in data_members(s.path, is_image):
            image = image_btf(data, f"{s.path}:{name}")
            break
        if image is None:
            raise FormatError("no vmlinuz in the package (a meta or headers package?)", file=s.path)
        vmlinux = self._vmlinux(image.btf)
        ids = ((f"{s.path}:.BTF_ids", image.btf_ids),) if image.btf_ids is not None else ()
        mentions = Mentions.of(names, vmlinux, self._core_names)
        modules = []
        seen = 0
        from sigbpf.fleet.decompress import by_suffix, decompress

        for deb in (s.path, *s.modules):  # linux-image-* packages hold the modules themselves
            for name, data in data_members(deb, lambda n: n.endswith(_MODULE_FILE)):
                seen += 1
                where = f"{deb}:{name}"
                fmt = by_suffix(name)
                try:
                    elf = decompress(data, fmt) if fmt != "none" else data
                except FormatError as err:
                    raise err.at(file=where)
                del data
                btf = _module_btf_bytes(elf, where)
                del elf
                if btf is not None and mentions.in_btf(btf):
                    module = self._module(_module_name(os.path.basename(name)), btf, vmlinux, where)
                    if module.btf.names_any(mentions.names):
                        modules.append(module)
        modules.sort(key=lambda m: m.name)
        return KernelData(image.version or release, vmlinux, ids, tuple(modules), seen)
