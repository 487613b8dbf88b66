"""Where a uprobe goes: a binary's path and a function's file offset, read with pyelftools.

The kernel places a uprobe at a *file offset* of a binary, not at a
symbol; these functions follow libbpf (src/elf.c, src/libbpf.c):

* :func:`resolve_binary`: a name without ``/`` is looked up like libbpf's
  ``resolve_full_path``: a shared library (``*.so``, ``*.so.*``) in
  ``$LD_LIBRARY_PATH``, ``/usr/lib64:/usr/lib`` and the Debian multiarch
  directory; anything else in ``$PATH`` then ``/usr/bin:/usr/sbin`` (and it
  must be executable).
* :func:`func_offset`: ``elf_find_func_offset``: the ``STT_FUNC`` symbol
  named *name* (or ``name@VER`` / ``name@@VER``), ``.dynsym`` first, then
  ``.symtab``; several symbols at one offset are one match, a strong and a
  weak one: the strong one wins, two strong ones at different offsets are
  ambiguous.  The offset is ``st_value - sh_addr + sh_offset`` of the
  symbol's section.
* :func:`pattern_offsets`: ``elf_resolve_pattern_offsets`` (``uprobe.multi``):
  every ``STT_FUNC`` whose name matches the glob (``*``, ``?``), ``.symtab``
  first, ``.dynsym`` only when ``.symtab`` matched nothing.
"""

from __future__ import annotations

import errno as errno_mod
import os
import platform
from fnmatch import fnmatchcase
from typing import Iterator

from sigbpf.errors import ELFError, NotFoundError

__all__ = ["resolve_binary", "func_offset", "pattern_offsets", "glob_match"]

#: Debian's multiarch library directory per architecture (libbpf's arch_specific_lib_paths).
_MULTIARCH = {"x86_64": "/lib/x86_64-linux-gnu", "aarch64": "/lib/aarch64-linux-gnu",
              "s390x": "/lib/s390x-linux-gnu", "ppc64le": "/lib/powerpc64le-linux-gnu",
              "riscv64": "/lib/riscv64-linux-gnu"}


def glob_match(name: str, pattern: str) -> bool:
    """libbpf's ``glob_match``: ``*`` any run, ``?`` one character, nothing else special."""
    escaped = pattern.replace("[", "[[]")
    return fnmatchcase(name, escaped)


def resolve_binary(name: str) -> str:
    """The path of binary or library *name* (unchanged when it has a ``/``)."""
    if "/" in name:
        return name
    if name.endswith(".so") or ".so." in name:
        searches = [os.environ.get("LD_LIBRARY_PATH"), "/usr/lib64:/usr/lib",
                    _MULTIARCH.get(platform.machine())]
        mode = os.R_OK
    else:
        searches = [os.environ.get("PATH"), "/usr/bin:/usr/sbin"]
        mode = os.R_OK | os.X_OK
    for search in searches:
        for directory in (search or "").split(":"):
            if directory:
                candidate = f"{directory}/{name}"
                if os.access(candidate, mode, effective_ids=True):
                    return candidate
    raise NotFoundError(f"no binary {name!r} in the library or executable search path "
                        f"(give its full path)", errno=errno_mod.ENOENT)


def _open(path: str):
    from elftools.common.exceptions import ELFError as PyELFError
    from elftools.elf.elffile import ELFFile

    try:
        stream = open(path, "rb")
    except OSError as err:
        raise NotFoundError(f"cannot open {path}: {err.strerror}", file=path,
                            errno=err.errno) from None
    try:
        return stream, ELFFile(stream)
    except PyELFError as err:
        stream.close()
        raise ELFError(f"not an ELF binary: {err}", file=path) from None


def _functions(elf, table: str) -> Iterator[tuple[str, int, int, int]]:
    """(name, file offset, binding is weak, symbol index) of each defined STT_FUNC in *table*."""
    section = elf.get_section_by_name(table)
    if section is None:
        return
    for index, sym in enumerate(section.iter_symbols()):
        if sym["st_info"]["type"] != "STT_FUNC" or not sym.name:
            continue
        shndx = sym["st_shndx"]
        if not isinstance(shndx, int) or shndx == 0 or shndx >= elf.num_sections():
            continue  # SHN_UNDEF (imports), SHN_ABS, ...
        sh = elf.get_section(shndx).header
        yield (sym.name, sym["st_value"] - sh["sh_addr"] + sh["sh_offset"],
               sym["st_info"]["bind"] == "STB_WEAK", index)


def _version_name(elf, index: int) -> str | None:
    """The version (``GLIBC_2.34``) a ``.dynsym`` symbol defines, from .gnu.version/_d."""
    versym = elf.get_section_by_name(".gnu.version")
    verdef = elf.get_section_by_name(".gnu.version_d")
    if versym is None or verdef is None:
        return None
    ndx = versym.get_symbol(index)["ndx"]
    if not isinstance(ndx, int):
        return None
    found = verdef.get_version(ndx & 0x7FFF)
    if found is None:
        return None
    _, auxiliaries = found
    first = next(iter(auxiliaries), None)
    return first.name if first is not None else None


def func_offset(path: str, name: str) -> int:
    """The file offset of function *name* in the ELF binary *path* (libbpf's rules)."""
    base, at, version = name.partition("@")
    version = version.lstrip("@") if at else None
    stream, elf = _open(path)
    try:
        for table in (".dynsym", ".symtab"):
            found: int | None = None
            found_weak = True
            for sym_name, offset, weak, index in _functions(elf, table):
                if sym_name != base and not sym_name.startswith(base + "@"):
                    continue
                if version is not None:
                    if table == ".dynsym":
                        if _version_name(elf, index) != version:
                            continue
                    elif sym_name != name:
                        continue
                if found is not None:
                    if offset == found:
                        continue
                    if not found_weak and not weak:
                        raise ELFError(f"ambiguous function {name!r}: two non-weak symbols at "
                                       f"offsets {found:#x} and {offset:#x}", file=path)
                    if weak:
                        continue
                found, found_weak = offset, weak
            if found:
                return found
    finally:
        stream.close()
    raise NotFoundError(f"no function {name!r} in {path} (neither .dynsym nor .symtab has it)",
                        file=None, errno=errno_mod.ENOENT)


def pattern_offsets(path: str, pattern: str) -> list[int]:
    """The file offsets of every function matching glob *pattern* (``uprobe.multi``)."""
    stream, elf = _open(path)
    try:
        for table in (".symtab", ".dynsym"):
            offsets = [offset for sym_name, offset, _, _ in _functions(elf, table)
                       if glob_match(sym_name, pattern)]
            if offsets:
                return offsets
    finally:
        stream.close()
    raise NotFoundError(f"no function matching {pattern!r} in {path}", errno=errno_mod.ENOENT)

