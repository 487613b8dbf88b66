"""Kernel symbol addresses for ``__ksym`` externs, resolved as libbpf does.

Typeless ksyms (``extern const void sym __ksym;``) get their address from
``/proc/kallsyms`` (libbpf's ``libbpf_kallsyms_parse`` + ``kallsyms_cb``):

* each line is ``ADDR TYPE NAME [MODULE]``, read as ``fscanf("%llx %c %499s%*[^\\n]\\n")``:
  names longer than 499 bytes are cut, a line that does not scan is an error
  ("failed to read kallsyms entry");
* every symbol type counts (text ``T``/``t`` as well as data); a local data
  symbol (type ``d``) named ``x.llvm.123`` (an LLVM-promoted static) counts
  as ``x``;
* the first line of a name gives the address; a later line of the same name
  with a *different* address is an error: "extern (ksym) 'x': resolution is
  ambiguous: 0x... or 0x..." (the same address again is fine);
* a name found nowhere is 0 for a weak extern and "extern 'x' (strong): not
  resolved" otherwise.

libbpf compares the lines against every ksym *variable* of the object (typed
ones too) once some typeless ksym makes it read kallsyms, so pass all of them
to :meth:`Kallsyms.resolve_all` for libbpf's ambiguity errors; only the
typeless ones' addresses are used.  Addresses read as 0 unless the reader may
see them (``CAP_SYSLOG`` and ``kernel.kptr_restrict`` < 2); sigbpf runs as
root.

Typed ksyms resolve against BTF, not kallsyms: :func:`resolve_ksym_var` (pure,
from :mod:`sigbpf.btf.ksyms`) and :func:`resolve_ksym_var_running` (the
running kernel's vmlinux and module BTF).
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from sigbpf.btf.ksyms import KsymVar, NamedBTF, resolve_ksym_var
from sigbpf.errors import FormatError, NotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf import BTF

__all__ = ["KallsymsEntry", "KsymSpec", "Kallsyms", "KsymVar", "resolve_ksym_var",
           "resolve_ksym_var_running", "KALLSYMS"]

KALLSYMS = "/proc/kallsyms"
_NAME_MAX = 499  # the %499s of libbpf's fscanf
_LLVM_SUFFIX = ".llvm."
_C_SPACE = " \t\n\v\f\r"


@dataclass(frozen=True, slots=True)
class KallsymsEntry:
    """One kallsyms line: address, type letter, name, module (None for vmlinux), line number."""

    address: int
    type: str
    name: str
    module: str | None
    line: int

    @property
    def key(self) -> str:
        """The extern name this symbol answers to (``x`` for a ``d`` symbol ``x.llvm.N``)."""
        if self.type == "d":
            cut = self.name.find(_LLVM_SUFFIX)
            if cut >= 0:
                return self.name[:cut]
        return self.name


@dataclass(frozen=True, slots=True)
class KsymSpec:
    """A ksym variable extern to resolve: its name, whether weak, and whether typed."""

    name: str
    weak: bool = False
    typed: bool = False


def _parse_hex(word: str) -> int | None:
    """``%llx``: optional sign and ``0x``; None when there are no hex digits."""
    text = word
    neg = text[:1] == "-"
    if text[:1] in ("+", "-"):
        text = text[1:]
    if text[:2].lower() == "0x" and len(text) > 2:
        text = text[2:]
    digits = 0
    while digits < len(text) and text[digits] in "0123456789abcdefABCDEF":
        digits += 1
    if not digits:
        return None
    value = int(text[:digits], 16) & ((1 << 64) - 1)
    return (-value) & ((1 << 64) - 1) if neg else value


class Kallsyms:
    """A parsed ``/proc/kallsyms``: entries in file order, indexed by extern name."""

    def __init__(self, entries: Sequence[KallsymsEntry], source: str = KALLSYMS) -> None:
        self.entries = tuple(entries)
        self.source = source
        index: dict[str, list[KallsymsEntry]] = {}
        for e in self.entries:
            index.setdefault(e.key, []).append(e)
        self._index = index

    # -- pure ---------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str | bytes, source: str = "<kallsyms>") -> "Kallsyms":
        """Read kallsyms text with libbpf's ``fscanf`` rules; FormatError on a bad line."""
        if isinstance(text, (bytes, bytearray, memoryview)):
            text = bytes(text).decode("utf-8", "surrogateescape")
        entries = []
        for lineno, line in enumerate(text.split("\n"), 1):
            if not line.strip(_C_SPACE):
                continue
            words = line.split(None, 3)
            address = _parse_hex(words[0])
            if address is None or len(words) < 3 or len(words[1]) != 1:
                raise FormatError(f"failed to read kallsyms entry: {line!r}", file=f"{source}:{lineno}",
                                  errno=_errno.EINVAL)
            # %499s cuts a longer name (the rest of the line is skipped)
            name = words[2][:_NAME_MAX]
            module = None
            if len(words) == 4:
                rest = words[3].strip(_C_SPACE)
                if rest.startswith("[") and rest.endswith("]"):
                    module = rest[1:-1]
            entries.append(KallsymsEntry(address, words[1], name, module, lineno))
        return cls(entries, source)

    def lookup(self, name: str) -> list[KallsymsEntry]:
        """Every entry that answers to the extern *name*, in file order."""
        return list(self._index.get(name, ()))

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def _scan(self, name: str) -> tuple[int | None, tuple[int, NotFoundError] | None]:
        """(address of the first entry or None, (line, ambiguity error) or None)."""
        found = self._index.get(name)
        if not found:
            return None, None
        first = found[0]
        for e in found[1:]:
            if e.address != first.address:
                return first.address, (e.line, NotFoundError(
                    f"extern (ksym) '{e.name}': resolution is ambiguous: 0x{first.address:x} or "
                    f"0x{e.address:x}", file=f"{self.source}:{e.line}", errno=_errno.EINVAL))
        return first.address, None

    def resolve(self, name: str, *, weak: bool = False) -> int:
        """The address of the typeless ksym *name* (0 for a weak one not found)."""
        return self.resolve_all([KsymSpec(name, weak)])[name]

    def resolve_all(self, specs: Iterable[KsymSpec]) -> dict[str, int]:
        """Addresses of the typeless *specs* (weak and missing: 0), by libbpf's rules.

        Typed specs take part in the ambiguity check only (as in libbpf) and
        are left out of the answer.  Errors in libbpf's order: the first
        ambiguous line of the file, then the first strong typeless extern
        not found.
        """
        specs = list(specs)
        out: dict[str, int] = {}
        ambiguous: list[tuple[int, NotFoundError]] = []
        missing: list[KsymSpec] = []
        for spec in specs:
            address, err = self._scan(spec.name)
            if err is not None:
                ambiguous.append(err)
            if spec.typed:
                continue
            if address is None:
                if not spec.weak:
                    missing.append(spec)
                address = 0
            out[spec.name] = address
        if ambiguous:
            raise min(ambiguous, key=lambda a: a[0])[1]
        if missing:
            raise NotFoundError(f"extern '{missing[0].name}' (strong): not resolved (not in {self.source})",
                                errno=_errno.ESRCH)
        return out

    # -- the running kernel -----------------------------------------------------------
    @classmethod
    def running(cls, path: str = KALLSYMS) -> "Kallsyms":
        """``/proc/kallsyms`` of the running kernel (addresses are 0 without CAP_SYSLOG)."""
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as err:
            raise NotFoundError(f"failed to open {path}: {err.strerror or err}", file=path,
                                errno=err.errno) from None
        return cls.parse(raw, path)

    def addresses_visible(self) -> bool:
        """False when every address reads 0 (kptr_restrict, or no CAP_SYSLOG)."""
        return any(e.address for e in self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"Kallsyms({self.source!r}, {len(self.entries)} symbols)"


def resolve_ksym_var_running(name: str, local_btf: "BTF", local_type_id: int, *, weak: bool = False,
                             vmlinux: "BTF | None" = None,
                             modules: "Sequence[NamedBTF] | Callable[[], Sequence[NamedBTF]] | None"
                             = None) -> KsymVar | None:
    """:func:`resolve_ksym_var` against the running kernel's vmlinux and module BTF.

    Module BTFs (``/sys/kernel/btf/*``, or *modules*: the BTFs, or a function that
    reads them) are read only when vmlinux lacks the VAR, as libbpf loads them only
    then; they are tried in name order (libbpf: BTF object id order -- the same
    unless two modules define the VAR).
    """
    from sigbpf.btf import BTF

    if vmlinux is None:
        vmlinux = BTF.load_vmlinux()
    if modules is None or callable(modules):
        from sigbpf.btf.kinds import Kind

        try:
            vmlinux.find_by_name_kind(name, Kind.VAR)
            modules = ()
        except NotFoundError:
            if modules is None:
                from sigbpf.kernel.btf import running_module_btfs

                modules, _ = running_module_btfs(vmlinux)
            else:
                modules = modules()
    return resolve_ksym_var(name, local_btf, local_type_id, vmlinux, modules, weak=weak)
