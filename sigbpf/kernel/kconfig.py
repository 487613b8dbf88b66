"""The values of ``.kconfig`` externs, filled in from the running kernel as libbpf does.

A BPF program reads kernel configuration through externs in the ``.kconfig``
section (``extern int CONFIG_HZ __kconfig;``).  The object leaves them
unset; the loader writes each value into the ``.kconfig`` map (an array map
with one value, read-only for the program) before the program is loaded.
This module computes those bytes with libbpf's rules (``src/libbpf.c``:
``bpf_object__resolve_externs``, ``bpf_object__read_kconfig_file``,
``bpf_object__process_kconfig_line``, ``set_kcfg_value_tri/_str/_num``):

* ``CONFIG_*`` externs come from the kernel config: ``/boot/config-$(uname -r)``,
  else ``/proc/config.gz`` (libbpf tries them in that order, both through
  zlib, so either may be compressed or not).  Only lines starting with
  ``CONFIG_`` count; ``# CONFIG_X is not set`` is a comment, so such an
  extern stays *unset*.  A ``CONFIG_`` line must have ``=`` and a value
  (else the whole config is refused); the first line of a name wins.  The
  value's first character decides how it is read: ``y``/``n``/``m`` is a
  tristate (BOOL: y=1, n=0, ``m`` is an error; TRISTATE: ``enum
  libbpf_tristate`` n=0, y=1, m=2; CHAR: the letter itself), ``"`` is a
  string (CHAR_ARR only; no escapes; truncated to size-1 bytes with a NUL),
  anything else an integer as C's ``strtoull(s, NULL, 0)`` reads it (hex,
  octal, a minus sign wrapping modulo 2**64) for INT and CHAR externs only,
  range-checked against the extern's size and signedness.
* ``LINUX_KERNEL_VERSION`` is libbpf's ``get_kernel_version()``: the
  version in ``/proc/version_signature`` (Ubuntu), else the ``Debian
  a.b.c`` in ``uname -v``, else ``uname -r``; ``KERNEL_VERSION(a, b, c)``
  with ``c`` capped at 255; 0 (unknown) is an error.
* ``LINUX_HAS_BPF_COOKIE``: a ``BPF_PROG_TYPE_TRACEPOINT`` program calling
  ``bpf_get_attach_cookie`` loads (libbpf's ``probe_kern_bpf_cookie``).
* ``LINUX_HAS_SYSCALL_WRAPPER``: a kprobe on ``__<arch>_sys_bpf``
  (``__x64_sys_bpf``) can be created -- a perf kprobe event when the kprobe
  PMU exists, else a legacy tracefs ``kprobe_events`` entry, added and
  removed (libbpf's ``probe_kern_syscall_wrapper``).  The symbol merely
  being in kallsyms is *not* libbpf's rule: a kernel without kprobes says 0.
* Any other ``LINUX_*`` extern is 0 when weak and an error otherwise; any
  other name is an error ("unrecognized virtual extern").
* An extern still unset at the end is zero when weak and an error when not
  ("extern 'CONFIG_X' (strong): not resolved").

The module is split in two.  The pure part (:class:`KernelConfig`,
:func:`kernel_version_code`, :func:`resolve_kconfig`,
:func:`kconfig_map_data`, :func:`kconfig_value`) reads text and facts and
returns bytes.  The part that asks the running kernel is
:meth:`KernelConfig.running` and :meth:`KernelFacts.running` (with
:func:`probe_bpf_cookie` and :func:`probe_syscall_wrapper`).  Typical use::

    specs = [KconfigSpec.from_extern(e) for e in obj.externs if e.kind == ExternKind.KCONFIG]
    config = KernelConfig.running() if needs_config(specs) else None
    facts = KernelFacts.running() if needs_facts(specs) else KernelFacts.unknown()
    data = kconfig_map_data(specs, map_value_size, config, facts)

Errors name the extern and keep libbpf's wording: missing or unknown values
are :class:`~sigbpf.errors.NotFoundError` (``ESRCH``/``EINVAL``), a value
that does not suit the extern's type is :class:`~sigbpf.errors.CompatError`
(``EINVAL``/``ERANGE``), a config line libbpf cannot parse is
:class:`~sigbpf.errors.FormatError`, a bad spec is
:class:`~sigbpf.errors.ArtifactError`.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import gzip
import os
import platform
import sys
import zlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from sigbpf.elf.externs import KconfigType
from sigbpf.errors import ArtifactError, CompatError, FormatError, KernelError, NotFoundError, SigbpfError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.elf.externs import Extern

__all__ = [
    "Tristate", "KconfigSpec", "ConfigEntry", "ConfigProblem", "KernelConfig", "KernelFacts",
    "KconfigValue", "KconfigResolution", "kernel_version", "kernel_version_code",
    "resolve_kconfig", "kconfig_map_data", "kconfig_value", "needs_config", "needs_facts",
    "probe_bpf_cookie", "probe_syscall_wrapper", "syscall_wrapper_symbol",
    "LINUX_KERNEL_VERSION", "LINUX_HAS_BPF_COOKIE", "LINUX_HAS_SYSCALL_WRAPPER",
]

CONFIG_PREFIX = "CONFIG_"
LINUX_PREFIX = "LINUX_"
LINUX_KERNEL_VERSION = "LINUX_KERNEL_VERSION"
LINUX_HAS_BPF_COOKIE = "LINUX_HAS_BPF_COOKIE"
LINUX_HAS_SYSCALL_WRAPPER = "LINUX_HAS_SYSCALL_WRAPPER"

#: Where libbpf looks for the kernel config, in its order ({release} = ``uname -r``).
BOOT_CONFIG = "/boot/config-{release}"
PROC_CONFIG = "/proc/config.gz"
#: Ubuntu's file with the upstream version its kernel really is.
VERSION_SIGNATURE = "/proc/version_signature"

_U64 = (1 << 64) - 1
_C_SPACE = " \t\n\v\f\r"  # isspace() in the C locale


class Tristate(IntEnum):
    """libbpf's ``enum libbpf_tristate`` (bpf_helpers.h)."""

    NO = 0
    YES = 1
    MODULE = 2


# ---- the input: one extern of the .kconfig map --------------------------------------

@dataclass(frozen=True, slots=True)
class KconfigSpec:
    """One ``.kconfig`` extern: where it lives in the map and how it is encoded.

    ``size`` is the C type's size (a BOOL is 1, a TRISTATE 4, a ``char[N]`` N),
    ``signed`` matters for INT and CHAR range checks.
    """

    name: str
    offset: int
    size: int
    type: KconfigType
    signed: bool
    weak: bool

    def __post_init__(self) -> None:
        where = f"extern (kcfg) '{self.name}'"
        if not self.name:
            raise ArtifactError("kconfig extern without a name")
        if self.offset < 0 or self.size <= 0:
            raise ArtifactError(f"{where}: bad offset {self.offset} or size {self.size}")
        try:
            ktype = KconfigType(self.type)
        except ValueError:
            raise ArtifactError(f"{where}: unknown kconfig type {self.type}") from None
        if ktype == KconfigType.UNKNOWN:
            raise ArtifactError(f"{where}: type is unsupported")
        if ktype in (KconfigType.BOOL, KconfigType.CHAR) and self.size != 1:
            raise ArtifactError(f"{where}: a {ktype.name} must be 1 byte, not {self.size}")
        if ktype == KconfigType.TRISTATE and self.size not in (4, 8):
            raise ArtifactError(f"{where}: a TRISTATE must be 4 or 8 bytes, not {self.size}")
        if ktype == KconfigType.INT and self.size not in (1, 2, 4, 8):
            raise ArtifactError(f"{where}: an INT must be 1, 2, 4 or 8 bytes, not {self.size}")

    @classmethod
    def from_extern(cls, ext: "Extern") -> "KconfigSpec":
        """The spec of a kconfig :class:`~sigbpf.elf.externs.Extern` of a BPF object."""
        return cls(ext.name, ext.kconfig_offset, ext.kconfig_size, ext.kconfig_type,
                   ext.kconfig_signed, ext.weak)

    @property
    def end(self) -> int:
        return self.offset + self.size


# ---- the kernel config ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """A ``CONFIG_NAME=value`` line: the raw value (after ``=``, newline removed) and its line."""

    name: str
    value: str
    line: int


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """A ``CONFIG_`` line libbpf refuses whatever the program needs (no ``=``, no value)."""

    line: int
    text: str
    message: str


def _split_lines(text: str) -> list[str]:
    """Lines as ``fgets`` + ``strlen`` see them: split at ``\\n`` only, cut at a NUL."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.split("\0", 1)[0] for line in lines]


@dataclass(frozen=True)
class KernelConfig:
    """A parsed kernel config (``.config`` text).

    ``entries`` maps each ``CONFIG_`` name to its first well-formed line (the
    one libbpf uses), ``not_set`` holds the names of ``# CONFIG_X is not set``
    comments (informational: for libbpf such an extern is simply unset), and
    ``problems`` the ``CONFIG_`` lines libbpf refuses (any of them fails a load
    that reads the config).
    """

    source: str
    entries: Mapping[str, ConfigEntry] = field(default_factory=dict)
    not_set: frozenset[str] = frozenset()
    problems: tuple[ConfigProblem, ...] = ()

    # -- pure ---------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str | bytes, source: str = "<kconfig>") -> "KernelConfig":
        """Read config text with ``bpf_object__process_kconfig_line``'s rules."""
        if isinstance(text, (bytes, bytearray, memoryview)):
            text = bytes(text).decode("utf-8", "surrogateescape")
        entries: dict[str, ConfigEntry] = {}
        not_set: set[str] = set()
        problems: list[ConfigProblem] = []
        for lineno, line in enumerate(_split_lines(text), 1):
            if not line.startswith(CONFIG_PREFIX):
                words = line.split()
                if (len(words) == 5 and words[0] == "#" and words[1].startswith(CONFIG_PREFIX)
                        and words[2:] == ["is", "not", "set"]):
                    not_set.add(words[1])
                continue
            name, sep, value = line.partition("=")
            if not sep:
                problems.append(ConfigProblem(lineno, line, f"failed to parse '{line}': no separator"))
            elif not value:
                problems.append(ConfigProblem(lineno, line, f"failed to parse '{line}': no value"))
            else:
                entries.setdefault(name, ConfigEntry(name, value, lineno))
        return cls(source, entries, frozenset(not_set), tuple(problems))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "KernelConfig":
        """A config file, gzip-compressed or not (as zlib's ``gzopen`` reads both)."""
        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as err:
            raise NotFoundError(f"cannot read kernel config: {err.strerror or err}",
                                file=path, errno=err.errno) from None
        if raw[:2] == b"\x1f\x8b":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError, zlib.error) as err:
                raise FormatError(f"cannot decompress kernel config: {err}", file=path) from None
        return cls.parse(raw, path)

    def get(self, name: str) -> str | None:
        """The raw value of *name* (``"y"``, ``"250"``, ``'"str"'``), or None."""
        entry = self.entries.get(name)
        return entry.value if entry is not None else None

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def where(self, line: int) -> str:
        return f"{self.source}:{line}"

    # -- the running kernel -----------------------------------------------------------
    @classmethod
    def running(cls, release: str | None = None) -> "KernelConfig":
        """The running kernel's config: ``/boot/config-$(uname -r)``, else ``/proc/config.gz``.

        NotFoundError (one line, naming both places) when neither can be read.
        """
        release = release if release is not None else os.uname().release
        reasons = []
        for path in (BOOT_CONFIG.format(release=release), PROC_CONFIG):
            try:
                return cls.from_file(path)
            except NotFoundError as err:
                reasons.append(f"{path}: {os.strerror(err.errno) if err.errno else err.message}")
        raise NotFoundError("failed to open system Kconfig (" + "; ".join(reasons) + ")",
                            errno=_errno.ENOENT)


# ---- the kernel version -----------------------------------------------------------------

def kernel_version(major: int, minor: int, patch: int) -> int:
    """``KERNEL_VERSION(a, b, c)``: ``(a << 16) + (b << 8) + min(c, 255)``, as a u32."""
    return ((major << 16) + (minor << 8) + min(patch, 255)) & 0xFFFFFFFF


def _scan_uint(text: str, pos: int) -> tuple[int, int] | None:
    """C ``scanf("%u")`` at *pos*: (value as u32, position after), or None."""
    n = len(text)
    while pos < n and text[pos] in _C_SPACE:
        pos += 1
    neg = False
    if pos < n and text[pos] in "+-":
        neg = text[pos] == "-"
        pos += 1
    start = pos
    while pos < n and text[pos].isascii() and text[pos].isdigit():
        pos += 1
    if pos == start:
        return None
    value = int(text[start:pos])
    return ((-value if neg else value) & 0xFFFFFFFF), pos


def _scan_version(text: str, pos: int = 0) -> int:
    """``sscanf(text + pos, "%u.%u.%u")`` as KERNEL_VERSION, or 0 when it does not match."""
    parts = []
    for i in range(3):
        got = _scan_uint(text, pos)
        if got is None:
            return 0
        value, pos = got
        parts.append(value)
        if i < 2:
            if pos >= len(text) or text[pos] != ".":
                return 0
            pos += 1
    return kernel_version(*parts)


def kernel_version_code(release: str, version: str = "", version_signature: str | None = None) -> int:
    """libbpf's ``get_kernel_version()`` from its inputs (0: unknown).

    *release* and *version* are ``uname -r`` and ``uname -v``;
    *version_signature* the content of ``/proc/version_signature`` (None
    when that file is not readable), e.g. ``Ubuntu 5.4.0-12.15-generic 5.4.8``:
    its third word wins.  Then ``Debian a.b.c`` in *version* (Debian's
    ``uname -r`` says ``6.1.0-22`` for 6.1.94), then *release*.
    """
    if version_signature is not None:
        words = version_signature.split(None, 2)
        if len(words) == 3:
            code = _scan_version(words[2])
            if code:
                return code
    at = version.find("Debian ")
    if at >= 0:
        code = _scan_version(version, at + len("Debian "))
        if code:
            return code
    return _scan_version(release)


# ---- what the running kernel is -----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class KernelFacts:
    """The three facts libbpf's virtual ``LINUX_*`` externs report.

    ``version_code`` is ``LINUX_KERNEL_VERSION`` (0 = unknown, an error for an
    extern that needs it).
    """

    version_code: int
    has_bpf_cookie: bool
    has_syscall_wrapper: bool

    @classmethod
    def unknown(cls) -> "KernelFacts":
        """Facts for specs that need none (see :func:`needs_facts`)."""
        return cls(0, False, False)

    @classmethod
    def running(cls) -> "KernelFacts":
        """Ask the running kernel (the two probes are cached for the process, as libbpf's)."""
        uname = os.uname()
        signature = None
        if os.access(VERSION_SIGNATURE, os.R_OK, effective_ids=os.access in os.supports_effective_ids):
            try:
                with open(VERSION_SIGNATURE, encoding="utf-8", errors="surrogateescape") as f:
                    signature = f.read()
            except OSError:
                signature = ""
        return cls(kernel_version_code(uname.release, uname.version, signature),
                   probe_bpf_cookie(), probe_syscall_wrapper())


_probe_cache: dict[str, bool] = {}

#: BPF_FUNC_get_attach_cookie (include/uapi/linux/bpf.h).
BPF_FUNC_GET_ATTACH_COOKIE = 174


def probe_bpf_cookie() -> bool:
    """libbpf's ``probe_kern_bpf_cookie``: does a tracepoint program calling
    ``bpf_get_attach_cookie`` load?  Any refusal (also EPERM) means no."""
    if "cookie" not in _probe_cache:
        from sigbpf.asm import Instruction, call_helper, exit_
        from sigbpf.kernel.program import ProgLoad, ProgType, load_program

        insns = Instruction.encode([call_helper(BPF_FUNC_GET_ATTACH_COOKIE), exit_()])
        try:
            load_program(ProgLoad(ProgType.TRACEPOINT, insns, license="GPL")).close()
            _probe_cache["cookie"] = True
        except KernelError:
            _probe_cache["cookie"] = False
    return _probe_cache["cookie"]


#: libbpf's ``arch_specific_syscall_pfx()`` by ``uname -m``.
_SYSCALL_PREFIX = (
    (("x86_64", "amd64"), "x64"),
    (("i386", "i486", "i586", "i686"), "ia32"),
    (("s390x",), "s390x"),
    (("aarch64", "arm64"), "arm64"),
)
#: __NR_perf_event_open per architecture.
_NR_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "riscv64": 241, "ppc64le": 319,
                       "ppc64": 319, "s390x": 331}
PERF_FLAG_FD_CLOEXEC = 8
KPROBE_PMU_TYPE = "/sys/bus/event_source/devices/kprobe/type"
DEBUGFS_TRACING = "/sys/kernel/debug/tracing"
TRACEFS = "/sys/kernel/tracing"
_PERF_ATTR_SIZE = 136  # PERF_ATTR_SIZE_VER8
_legacy_index = 0


def syscall_wrapper_symbol(machine: str | None = None) -> str | None:
    """``__<pfx>_sys_bpf`` for *machine* (default ``uname -m``), None where libbpf knows no prefix."""
    machine = machine or platform.machine()
    prefix = None
    for names, pfx in _SYSCALL_PREFIX:
        if machine in names:
            prefix = pfx
    if prefix is None:
        if machine.startswith("arm"):
            prefix = "arm"
        elif machine.startswith("mips"):
            prefix = "mips"
        elif machine.startswith("riscv"):
            prefix = "riscv"
        elif machine.startswith(("ppc", "powerpc")):
            prefix = "powerpc"  # libbpf tests __powerpc__ first, also true on ppc64
    return f"__{prefix}_sys_bpf" if prefix else None


def _read_int(path: str) -> int | None:
    """libbpf's ``parse_uint_from_file(path, "%d\\n")``: the number, or None."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            got = _scan_uint(f.read(), 0)
    except OSError:
        return None
    return got[0] if got is not None else None


def _perf_kprobe_opens(pmu_type: int, symbol: str) -> bool:
    """``perf_event_open`` of a kprobe on *symbol* for this process (closed at once)."""
    from sigbpf.kernel.syscall import raw_syscall

    number = _NR_PERF_EVENT_OPEN.get(platform.machine())
    if number is None:
        return False
    name = ctypes.create_string_buffer(symbol.encode())
    attr = ctypes.create_string_buffer(_PERF_ATTR_SIZE)
    # struct perf_event_attr: type (u32) at 0, size (u32) at 4, config1 = kprobe_func at 56
    order = sys.byteorder
    ctypes.memmove(attr, pmu_type.to_bytes(4, order) + _PERF_ATTR_SIZE.to_bytes(4, order), 8)
    ctypes.memmove(ctypes.addressof(attr) + 56, ctypes.addressof(name).to_bytes(8, order), 8)
    fd, _ = raw_syscall(number, attr, ctypes.c_int(os.getpid()), ctypes.c_int(-1), ctypes.c_int(-1),
                        ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        return False
    os.close(fd)
    return True


def _legacy_kprobe_adds(symbol: str) -> bool:
    """libbpf's legacy mode: add a kprobe event through tracefs, then remove it."""
    global _legacy_index
    base = DEBUGFS_TRACING if os.access(DEBUGFS_TRACING, os.F_OK) else TRACEFS
    events = f"{base}/kprobe_events"
    raw = f"libbpf_{os.getpid()}_{_legacy_index}_{symbol}_0x0"
    _legacy_index += 1
    probe = "".join(c if c.isascii() and c.isalnum() else "_" for c in raw)

    def append(line: str) -> bool:
        try:
            fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            os.write(fd, line.encode())
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    if not append(f"p:kprobes/{probe} {symbol}+0x0"):
        return False
    append(f"-:kprobes/{probe}")
    return True


def probe_syscall_wrapper() -> bool:
    """libbpf's ``probe_kern_syscall_wrapper``: can a kprobe be put on ``__<arch>_sys_bpf``?"""
    if "syscall_wrapper" not in _probe_cache:
        symbol = syscall_wrapper_symbol()
        if symbol is None:
            answer = False
        else:
            pmu_type = _read_int(KPROBE_PMU_TYPE)
            answer = (_perf_kprobe_opens(pmu_type, symbol) if pmu_type is not None
                      else _legacy_kprobe_adds(symbol))
        _probe_cache["syscall_wrapper"] = answer
    return _probe_cache["syscall_wrapper"]


# ---- encoding: libbpf's set_kcfg_value_* -------------------------------------------------

class _ValueError(Exception):
    """An encoding refusal: (error class, libbpf's message, errno)."""

    def __init__(self, cls: type[SigbpfError], message: str, errno: int) -> None:
        super().__init__(message)
        self.cls, self.message, self.errno = cls, message, errno

    def error(self, where: str | None = None) -> SigbpfError:
        """The error to raise; *where* is the config line (``/proc/config.gz:123``)."""
        return self.cls(self.message, file=where, errno=self.errno)


def _fits(spec: KconfigSpec, value: int) -> bool:
    """libbpf's ``is_kcfg_value_in_range`` on a u64."""
    if spec.size == 8:
        return True
    bits = spec.size * 8
    if spec.signed:
        return ((value + (1 << (bits - 1))) & _U64) < (1 << bits)
    return value >> bits == 0


def _encode_num(spec: KconfigSpec, value: int) -> bytes:
    """``set_kcfg_value_num``: *value* is a u64."""
    where = f"extern (kcfg) '{spec.name}'"
    if spec.type not in (KconfigType.INT, KconfigType.CHAR, KconfigType.BOOL):
        raise _ValueError(CompatError, f"{where}: value '{value}' implies integer, char, or boolean type",
                          _errno.EINVAL)
    if spec.type == KconfigType.BOOL and value > 1:
        raise _ValueError(CompatError, f"{where}: value '{value}' isn't boolean compatible", _errno.EINVAL)
    if not _fits(spec, value):
        raise _ValueError(CompatError, f"{where}: value '{value}' doesn't fit in {spec.size} bytes",
                          _errno.ERANGE)
    return (value & ((1 << (8 * spec.size)) - 1)).to_bytes(spec.size, sys.byteorder)


def _encode_tri(spec: KconfigSpec, letter: str) -> bytes:
    """``set_kcfg_value_tri``: *letter* is ``y``, ``n`` or ``m``."""
    where = f"extern (kcfg) '{spec.name}'"
    if spec.type == KconfigType.BOOL:
        if letter == "m":
            raise _ValueError(CompatError, f"{where}: value 'm' implies tristate or char type", _errno.EINVAL)
        return bytes([letter == "y"])
    if spec.type == KconfigType.TRISTATE:
        tri = {"y": Tristate.YES, "m": Tristate.MODULE}.get(letter, Tristate.NO)
        return int(tri).to_bytes(4, sys.byteorder) + bytes(spec.size - 4)
    if spec.type == KconfigType.CHAR:
        return letter.encode("ascii")
    raise _ValueError(CompatError, f"{where}: value '{letter}' implies bool, tristate, or char type",
                      _errno.EINVAL)


def _encode_str(spec: KconfigSpec, value: str, warnings: list[str]) -> bytes:
    """``set_kcfg_value_str``: *value* still has its quotes."""
    where = f"extern (kcfg) '{spec.name}'"
    if spec.type != KconfigType.CHAR_ARR:
        raise _ValueError(CompatError, f"{where}: value '{value}' implies char array type", _errno.EINVAL)
    raw = value.encode("utf-8", "surrogateescape")
    if len(raw) < 2 or not raw.endswith(b'"'):
        raise _ValueError(CompatError, f"{where}: invalid string config '{value}'", _errno.EINVAL)
    body = raw[1:-1]
    if len(body) >= spec.size:
        warnings.append(f"{where}: long string '{value}' of ({len(body)} bytes) truncated to "
                        f"{spec.size - 1} bytes")
        body = body[:spec.size - 1]
    return body + bytes(spec.size - len(body))


_DIGITS = {8: frozenset("01234567"), 10: frozenset("0123456789"),
           16: frozenset("0123456789abcdefABCDEF")}


def _strtoull(text: str) -> tuple[int, int, bool]:
    """C ``strtoull(text, &end, 0)``: (value, end index, overflowed)."""
    n, pos = len(text), 0
    while pos < n and text[pos] in _C_SPACE:
        pos += 1
    neg = False
    if pos < n and text[pos] in "+-":
        neg = text[pos] == "-"
        pos += 1
    base = 10
    if text.startswith(("0x", "0X"), pos) and pos + 2 < n and text[pos + 2] in _DIGITS[16]:
        base, pos = 16, pos + 2
    elif text.startswith("0", pos):
        base = 8
    digits = _DIGITS[base]
    start = pos
    while pos < n and text[pos] in digits:
        pos += 1
    if pos == start:
        return 0, 0, False  # no number: end = the start of the text
    value = int(text[start:pos], base)
    if value > _U64:
        return _U64, pos, True
    return ((-value) & _U64 if neg else value), pos, False


def _encode_config_value(spec: KconfigSpec, value: str, warnings: list[str]) -> bytes:
    """``bpf_object__process_kconfig_line`` for a line naming *spec*."""
    first = value[0]
    if first in "ynm":
        return _encode_tri(spec, first)
    if first == '"':
        return _encode_str(spec, value, warnings)
    where = f"extern (kcfg) '{spec.name}'"
    number, end, overflow = _strtoull(value)
    if overflow:
        raise _ValueError(CompatError, f"{where}: value '{value}' isn't a valid integer: failed to parse "
                          f"'{value}': {os.strerror(_errno.ERANGE)}", _errno.ERANGE)
    if end != len(value):
        raise _ValueError(CompatError, f"{where}: value '{value}' isn't a valid integer: failed to parse "
                          f"'{value}' as integer completely", _errno.EINVAL)
    if spec.type not in (KconfigType.INT, KconfigType.CHAR):
        raise _ValueError(CompatError, f"{where}: value '{value}' implies integer type", _errno.EINVAL)
    return _encode_num(spec, number)


# ---- resolution ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class KconfigValue:
    """What one extern got: its bytes (None: unset, so zero -- weak) and where they came from."""

    name: str
    offset: int
    data: bytes | None
    source: str


@dataclass(frozen=True, slots=True)
class KconfigResolution:
    """The ``.kconfig`` map value, each extern's outcome, and libbpf's warnings (truncations)."""

    data: bytes
    values: tuple[KconfigValue, ...]
    warnings: tuple[str, ...]


def needs_config(specs: Iterable[KconfigSpec]) -> bool:
    """Whether the kernel config must be read (some extern is ``CONFIG_*``)."""
    return any(s.name.startswith(CONFIG_PREFIX) for s in specs)


def needs_facts(specs: Iterable[KconfigSpec]) -> bool:
    """Whether :class:`KernelFacts` are used (a ``LINUX_*`` extern libbpf fills in)."""
    return any(s.name in (LINUX_KERNEL_VERSION, LINUX_HAS_BPF_COOKIE, LINUX_HAS_SYSCALL_WRAPPER)
               for s in specs)


def _virtual(spec: KconfigSpec, facts: KernelFacts) -> tuple[bytes, str]:
    """A non-CONFIG_ extern (the first loop of ``bpf_object__resolve_externs``)."""
    where = f"extern (kcfg) '{spec.name}'"
    if spec.name == LINUX_KERNEL_VERSION:
        if not facts.version_code:
            raise NotFoundError(f"{where}: failed to get kernel version", errno=_errno.EINVAL)
        value, source = facts.version_code, "kernel version"
    elif spec.name == LINUX_HAS_BPF_COOKIE:
        value, source = int(facts.has_bpf_cookie), "BPF cookie probe"
    elif spec.name == LINUX_HAS_SYSCALL_WRAPPER:
        value, source = int(facts.has_syscall_wrapper), "syscall wrapper probe"
    elif spec.name.startswith(LINUX_PREFIX) and spec.weak:
        value, source = 0, "unknown weak LINUX_ extern: zero"
    else:
        raise NotFoundError(f"{where}: unrecognized virtual extern", errno=_errno.EINVAL)
    try:
        return _encode_num(spec, value), source
    except _ValueError as err:
        raise err.error() from None


def resolve_kconfig(specs: Sequence[KconfigSpec], size: int, config: KernelConfig | None,
                    facts: KernelFacts) -> KconfigResolution:
    """The ``.kconfig`` map value of *size* bytes for *specs*, by libbpf's rules.

    *config* may be None when no spec is ``CONFIG_*`` (:func:`needs_config`);
    otherwise None means the config could not be read, an error as in libbpf.
    Errors come in libbpf's order: virtual externs (by offset), then the
    config's lines (the first offending line, whether malformed or a bad
    value for an extern), then the first strong extern left unset.
    """
    ordered = sorted(specs, key=lambda s: (s.offset, s.name))
    seen: set[str] = set()
    for s in ordered:
        if s.end > size:
            raise ArtifactError(f"extern (kcfg) '{s.name}': bytes {s.offset}..{s.end} are outside "
                                f"the {size}-byte .kconfig map")
        if s.name in seen:
            raise ArtifactError(f"extern (kcfg) '{s.name}': listed twice")
        seen.add(s.name)
    for a, b in zip(ordered, ordered[1:]):
        if b.offset < a.end:
            raise ArtifactError(f"extern (kcfg) '{b.name}': overlaps '{a.name}' in the .kconfig map")

    data = bytearray(size)
    got: dict[str, tuple[bytes, str]] = {}
    warnings: list[str] = []
    config_specs = []
    for s in ordered:
        if s.name.startswith(CONFIG_PREFIX):
            config_specs.append(s)
        else:
            got[s.name] = _virtual(s, facts)

    if config_specs:
        if config is None:
            raise NotFoundError("failed to open system Kconfig", errno=_errno.ENOENT)
        # the config's lines in order, as libbpf reads them: a malformed line or a
        # value an extern refuses stops there; truncation warnings come in line order
        events: list[tuple[int, ConfigProblem | KconfigSpec]] = [(p.line, p) for p in config.problems]
        for s in config_specs:
            entry = config.entries.get(s.name)
            if entry is not None:
                events.append((entry.line, s))
        for line, event in sorted(events, key=lambda e: e[0]):
            where = config.where(line)
            if isinstance(event, ConfigProblem):
                raise FormatError(event.message, file=where, errno=_errno.EINVAL)
            try:
                got[event.name] = (_encode_config_value(event, config.entries[event.name].value, warnings),
                                   where)
            except _ValueError as err:
                raise err.error(where) from None

    values = []
    for s in ordered:
        if s.name in got:
            raw, source = got[s.name]
            data[s.offset:s.offset + len(raw)] = raw
            values.append(KconfigValue(s.name, s.offset, raw, source))
            continue
        if not s.weak:
            hint = ""
            if config is not None and s.name in config.not_set:
                hint = f" ({config.source}: '# {s.name} is not set'; declare it __weak to read 0)"
            elif config is not None:
                hint = f" (not in {config.source})"
            raise NotFoundError(f"extern '{s.name}' (strong): not resolved{hint}", errno=_errno.ESRCH)
        values.append(KconfigValue(s.name, s.offset, None, "weak, not resolved: zero"))
    return KconfigResolution(bytes(data), tuple(values), tuple(warnings))


def kconfig_map_data(specs: Sequence[KconfigSpec], size: int, config: KernelConfig | None,
                     facts: KernelFacts) -> bytes:
    """The bytes libbpf writes into the ``.kconfig`` map (see :func:`resolve_kconfig`)."""
    return resolve_kconfig(specs, size, config, facts).data


def kconfig_value(spec: KconfigSpec, config: KernelConfig | None, facts: KernelFacts) -> bytes | None:
    """The ``spec.size`` bytes of one extern; None for a weak extern left unset (zero).

    The same rules and errors as :func:`resolve_kconfig` for an object with
    this one extern (a malformed line anywhere in the config is an error).
    """
    shifted = KconfigSpec(spec.name, 0, spec.size, spec.type, spec.signed, spec.weak)
    return resolve_kconfig([shifted], spec.size, config, facts).values[0].data
