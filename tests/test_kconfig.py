"""sigbpf.kernel.kconfig: the kernel config, the kcfg encodings, and libbpf's bytes.

* parsing: every value form, comments, ``is not set``, malformed lines;
* encoding: every kcfg type, ranges, strings, missing/weak, the virtual
  ``LINUX_*`` externs, the order of errors -- with libbpf's messages;
* the running kernel: its config and version;
* libbpf 1.1 (through ctypes, ``tests/elf_libbpf.py``) as the reference:
  the ``.kconfig`` map it fills for ``tests/progs/kconfig_*.c`` -- from the
  system config and from extra config text (``bpf_object_open_opts.kconfig``)
  -- equals :func:`kconfig_map_data`'s bytes, and its refusals are ours.
"""

from __future__ import annotations

import ctypes
import gzip
import os
import re
from dataclasses import dataclass, field

import pytest

from sigbpf.artifact.format import MapKind
from sigbpf.btf import BTF
from sigbpf.elf import BPFObject
from sigbpf.elf.externs import ExternKind, KconfigType, kconfig_size
from sigbpf.errors import ArtifactError, CompatError, FormatError, NotFoundError, SigbpfError
from sigbpf.kernel import kconfig as K
from sigbpf.kernel.kconfig import (
    KconfigSpec,
    KernelConfig,
    KernelFacts,
    Tristate,
    kconfig_map_data,
    kconfig_value,
    kernel_version,
    kernel_version_code,
    resolve_kconfig,
)

T = KconfigType
FACTS = KernelFacts(kernel_version(6, 18, 44), True, False)


def spec(name: str, ktype: KconfigType, size: int, *, signed: bool = False, weak: bool = False,
         offset: int = 0) -> KconfigSpec:
    return KconfigSpec(name, offset, size, ktype, signed, weak)


def value(text: str, s: KconfigSpec, facts: KernelFacts = FACTS) -> bytes | None:
    return kconfig_value(s, KernelConfig.parse(text), facts)


def le(v: int, n: int) -> bytes:
    return (v % (1 << (8 * n))).to_bytes(n, "little")


# ---- parsing ----------------------------------------------------------------------------

CONFIG_TEXT = """\
#
# Automatically generated file; DO NOT EDIT.
#
CONFIG_BPF=y
CONFIG_MOD=m
CONFIG_NO=n
# CONFIG_KPROBES is not set
CONFIG_STR="hello world"
CONFIG_EMPTY=""
CONFIG_HZ=250
CONFIG_HEX=0x1f
CONFIG_NEG=-5
CONFIG_HZ=1000
  CONFIG_INDENTED=y
CONFIG_CR=y\r
# comment CONFIG_X=y
"""


def test_parse_value_forms_and_comments():
    c = KernelConfig.parse(CONFIG_TEXT, "test.config")
    assert c.source == "test.config"
    assert {n: c.get(n) for n in c.entries} == {
        "CONFIG_BPF": "y", "CONFIG_MOD": "m", "CONFIG_NO": "n", "CONFIG_STR": '"hello world"',
        "CONFIG_EMPTY": '""', "CONFIG_HZ": "250", "CONFIG_HEX": "0x1f", "CONFIG_NEG": "-5",
        "CONFIG_CR": "y\r",
    }
    assert c.entries["CONFIG_HZ"].line == 10  # the first line of a name wins
    assert c.not_set == frozenset({"CONFIG_KPROBES"})
    assert "CONFIG_KPROBES" not in c  # a comment: unset, not "n"
    assert "CONFIG_INDENTED" not in c  # libbpf: only lines starting with CONFIG_
    assert c.problems == ()


def test_parse_malformed_lines():
    c = KernelConfig.parse("CONFIG_A=y\nCONFIG_NOSEP\nCONFIG_NOVAL=\nnot a config line\n")
    assert [(p.line, p.message) for p in c.problems] == [
        (2, "failed to parse 'CONFIG_NOSEP': no separator"),
        (3, "failed to parse 'CONFIG_NOVAL=': no value"),
    ]
    assert c.get("CONFIG_A") == "y" and "CONFIG_NOVAL" not in c


def test_parse_bytes_nul_and_no_final_newline():
    c = KernelConfig.parse(b'CONFIG_A="x\xffy"\nCONFIG_B=1\x00junk\nCONFIG_C=3')
    assert c.get("CONFIG_B") == "1" and c.get("CONFIG_C") == "3"
    s = spec("CONFIG_A", T.CHAR_ARR, 4)
    assert kconfig_value(s, c, FACTS) == b"x\xffy\0"


def test_from_file_plain_and_gzip(tmp_path):
    (tmp_path / "plain").write_text("CONFIG_HZ=100\n")
    (tmp_path / "packed.gz").write_bytes(gzip.compress(b"CONFIG_HZ=300\n"))
    assert KernelConfig.from_file(tmp_path / "plain").get("CONFIG_HZ") == "100"
    assert KernelConfig.from_file(tmp_path / "packed.gz").get("CONFIG_HZ") == "300"
    (tmp_path / "broken.gz").write_bytes(b"\x1f\x8bnot gzip")
    with pytest.raises(FormatError, match="cannot decompress"):
        KernelConfig.from_file(tmp_path / "broken.gz")


def test_running_prefers_boot_then_proc(tmp_path, monkeypatch):
    boot = tmp_path / "config-{release}"
    proc = tmp_path / "config.gz"
    proc.write_bytes(gzip.compress(b"CONFIG_HZ=300\n"))
    monkeypatch.setattr(K, "BOOT_CONFIG", str(boot))
    monkeypatch.setattr(K, "PROC_CONFIG", str(proc))
    assert KernelConfig.running("1.2.3").source == str(proc)
    (tmp_path / "config-1.2.3").write_text("CONFIG_HZ=100\n")
    got = KernelConfig.running("1.2.3")
    assert got.source == str(tmp_path / "config-1.2.3") and got.get("CONFIG_HZ") == "100"


def test_running_neither_file_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(K, "BOOT_CONFIG", str(tmp_path / "config-{release}"))
    monkeypatch.setattr(K, "PROC_CONFIG", str(tmp_path / "config.gz"))
    with pytest.raises(NotFoundError) as err:
        KernelConfig.running("9.9.9")
    text = str(err.value)
    assert text.startswith("failed to open system Kconfig") and "\n" not in text
    assert "config-9.9.9" in text and "config.gz" in text


# ---- encoding -----------------------------------------------------------------------------

@pytest.mark.parametrize("text,ktype,size,expected", [
    ("y", T.BOOL, 1, b"\x01"),
    ("n", T.BOOL, 1, b"\x00"),
    ("yes", T.BOOL, 1, b"\x01"),  # only the first letter counts
    ("y", T.TRISTATE, 4, le(Tristate.YES, 4)),
    ("m", T.TRISTATE, 4, le(Tristate.MODULE, 4)),
    ("n", T.TRISTATE, 4, le(Tristate.NO, 4)),
    ("m", T.TRISTATE, 8, le(2, 8)),
    ("m", T.CHAR, 1, b"m"),
    ("65", T.CHAR, 1, b"A"),
    ('"abc"', T.CHAR_ARR, 8, b"abc" + bytes(5)),
    ('""', T.CHAR_ARR, 2, b"\0\0"),
    ('"a\\"b"', T.CHAR_ARR, 8, b'a\\"b' + bytes(4)),  # no escapes: bytes as written
])
def test_encode_letters_numbers_strings(text, ktype, size, expected):
    assert value(f"CONFIG_X={text}\n", spec("CONFIG_X", ktype, size)) == expected


@pytest.mark.parametrize("size,signed", [(1, False), (1, True), (2, False), (2, True), (4, False),
                                         (4, True), (8, False), (8, True)])
def test_encode_int_ranges(size, signed):
    ktype = T.CHAR if size == 1 else T.INT
    s = spec("CONFIG_N", ktype, size, signed=signed)
    bits = 8 * size
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    for v in (lo, hi, 0):
        assert value(f"CONFIG_N={v}", s) == le(v, size)
    assert value(f"CONFIG_N={hex(hi)}", s) == le(hi, size)
    if size == 8:  # every u64 fits an 8-byte extern, as libbpf's check says
        assert value("CONFIG_N=-1", s) == b"\xff" * 8
        return
    for bad in (hi + 1, lo - 1):
        with pytest.raises(CompatError) as err:
            value(f"CONFIG_N={bad}", s)
        shown = bad % (1 << 64)  # libbpf prints the u64 (%llu)
        assert f"extern (kcfg) 'CONFIG_N': value '{shown}' doesn't fit in {size} bytes" in str(err.value)
        assert err.value.errno == 34


@pytest.mark.parametrize("text,expected", [
    ("0x1f", 31), ("0X1F", 31), ("010", 8), ("0", 0), ("-5", -5), ("+7", 7), (" 12", 12),
    ("\t0x10", 16), ("-0x10", -16),
])
def test_encode_strtoull_forms(text, expected):
    assert value(f"CONFIG_N={text}", spec("CONFIG_N", T.INT, 4, signed=True)) == le(expected, 4)


@pytest.mark.parametrize("text,message", [
    ("y", "extern (kcfg) 'CONFIG_X': value 'y' implies bool, tristate, or char type"),
    ('"s"', "extern (kcfg) 'CONFIG_X': value '\"s\"' implies char array type"),
    ("abc", "extern (kcfg) 'CONFIG_X': value 'abc' isn't a valid integer"),
    ("abc", "failed to parse 'abc' as integer completely"),
    ("08", "failed to parse '08' as integer completely"),  # octal
    ("0x", "failed to parse '0x' as integer completely"),
    ("12\r", "failed to parse '12\r' as integer completely"),
    ("99999999999999999999", "value '99999999999999999999' isn't a valid integer"),
    ("99999999999999999999", "Numerical result out of range"),
])
def test_encode_int_refusals(text, message):
    with pytest.raises(CompatError) as err:
        value(f"CONFIG_X={text}\n", spec("CONFIG_X", T.INT, 4, signed=True))
    assert message in str(err.value)
    assert "\n" not in str(err.value).replace("\r", "") or "\r" in text


@pytest.mark.parametrize("text,ktype,size,message", [
    ("m", T.BOOL, 1, "value 'm' implies tristate or char type"),
    ("1", T.BOOL, 1, "value '1' implies integer type"),
    ("1", T.TRISTATE, 4, "value '1' implies integer type"),
    ('"x"', T.BOOL, 1, "value '\"x\"' implies char array type"),
    ("y", T.CHAR_ARR, 4, "value 'y' implies bool, tristate, or char type"),
    ("5", T.CHAR_ARR, 4, "value '5' implies integer type"),
    ('"', T.CHAR_ARR, 4, "invalid string config '\"'"),
    ('"abc', T.CHAR_ARR, 4, "invalid string config '\"abc'"),
    ("200", T.CHAR, 1, "value '200' doesn't fit in 1 bytes"),  # plain char is signed in BPF
])
def test_encode_type_refusals(text, ktype, size, message):
    s = spec("CONFIG_X", ktype, size, signed=ktype == T.CHAR)
    with pytest.raises(CompatError) as err:
        value(f"CONFIG_X={text}\n", s)
    assert f"extern (kcfg) 'CONFIG_X': {message}" in str(err.value)


def test_string_truncation_warns():
    s = spec("CONFIG_S", T.CHAR_ARR, 4)
    res = resolve_kconfig([s], 4, KernelConfig.parse('CONFIG_S="(none)"'), FACTS)
    assert res.data == b"(no\0"
    assert res.warnings == ("extern (kcfg) 'CONFIG_S': long string '\"(none)\"' of (6 bytes) "
                            "truncated to 3 bytes",)
    assert value('CONFIG_S="abcd"', spec("CONFIG_S", T.CHAR_ARR, 1)) == b"\0"


def test_missing_weak_is_zero_strong_is_error():
    c = KernelConfig.parse("# CONFIG_KPROBES is not set\n")
    assert kconfig_value(spec("CONFIG_KPROBES", T.BOOL, 1, weak=True), c, FACTS) is None
    res = resolve_kconfig([spec("CONFIG_KPROBES", T.TRISTATE, 4, weak=True)], 4, c, FACTS)
    assert res.data == bytes(4) and res.values[0].data is None
    with pytest.raises(NotFoundError) as err:
        kconfig_value(spec("CONFIG_KPROBES", T.BOOL, 1), c, FACTS)
    assert str(err.value).startswith("extern 'CONFIG_KPROBES' (strong): not resolved")
    assert "is not set" in str(err.value) and err.value.errno == 3
    with pytest.raises(NotFoundError, match=r"extern 'CONFIG_NOWHERE' \(strong\): not resolved"):
        kconfig_value(spec("CONFIG_NOWHERE", T.INT, 4), c, FACTS)


def test_config_needed_but_absent():
    with pytest.raises(NotFoundError, match="failed to open system Kconfig"):
        kconfig_value(spec("CONFIG_HZ", T.INT, 4, weak=True), None, FACTS)
    # virtual externs alone never read the config
    assert kconfig_value(spec("LINUX_HAS_BPF_COOKIE", T.BOOL, 1), None, FACTS) == b"\x01"


def test_virtual_externs():
    facts = KernelFacts(kernel_version(5, 15, 300), False, True)
    assert kconfig_value(spec("LINUX_KERNEL_VERSION", T.INT, 4), None, facts) == le(0x050FFF, 4)
    assert kconfig_value(spec("LINUX_KERNEL_VERSION", T.INT, 8, signed=True), None, facts) == le(0x050FFF, 8)
    assert kconfig_value(spec("LINUX_HAS_BPF_COOKIE", T.BOOL, 1), None, facts) == b"\x00"
    assert kconfig_value(spec("LINUX_HAS_SYSCALL_WRAPPER", T.INT, 4), None, facts) == le(1, 4)
    assert kconfig_value(spec("LINUX_FUTURE_THING", T.INT, 4, weak=True), None, facts) == bytes(4)
    cases = [
        (spec("LINUX_KERNEL_VERSION", T.INT, 4), KernelFacts.unknown(), NotFoundError,
         "extern (kcfg) 'LINUX_KERNEL_VERSION': failed to get kernel version"),
        (spec("LINUX_FUTURE_THING", T.INT, 4), facts, NotFoundError,
         "extern (kcfg) 'LINUX_FUTURE_THING': unrecognized virtual extern"),
        (spec("OTHER_NAME", T.INT, 4, weak=True), facts, NotFoundError,
         "extern (kcfg) 'OTHER_NAME': unrecognized virtual extern"),
        (spec("LINUX_KERNEL_VERSION", T.CHAR, 1, signed=True), facts, CompatError,
         f"extern (kcfg) 'LINUX_KERNEL_VERSION': value '{0x050FFF}' doesn't fit in 1 bytes"),
        (spec("LINUX_HAS_SYSCALL_WRAPPER", T.TRISTATE, 4), facts, CompatError,
         "extern (kcfg) 'LINUX_HAS_SYSCALL_WRAPPER': value '1' implies integer, char, or boolean type"),
        (spec("LINUX_FUTURE_THING", T.CHAR_ARR, 4, weak=True), facts, CompatError,
         "extern (kcfg) 'LINUX_FUTURE_THING': value '0' implies integer, char, or boolean type"),
        (spec("LINUX_KERNEL_VERSION", T.BOOL, 1), facts, CompatError,
         f"value '{0x050FFF}' isn't boolean compatible"),
    ]
    for s, f, cls, message in cases:
        with pytest.raises(cls) as err:
            kconfig_value(s, None, f)
        assert message in str(err.value), (s, str(err.value))


def test_error_order_follows_libbpf():
    a = spec("CONFIG_A", T.BOOL, 1, offset=0)
    b = spec("CONFIG_B", T.INT, 4, offset=4)
    # the first offending line wins, malformed or not, needed or not
    with pytest.raises(CompatError, match="CONFIG_A"):
        resolve_kconfig([a, b], 8, KernelConfig.parse("CONFIG_A=m\nCONFIG_JUNK\nCONFIG_B=x\n"), FACTS)
    with pytest.raises(FormatError, match="no separator") as err:
        resolve_kconfig([a, b], 8, KernelConfig.parse("CONFIG_JUNK\nCONFIG_A=m\n"), FACTS)
    assert err.value.file == "<kconfig>:1"
    with pytest.raises(CompatError, match="CONFIG_B"):
        resolve_kconfig([a, b], 8, KernelConfig.parse("CONFIG_B=x\nCONFIG_A=m\n"), FACTS)
    # a malformed line fails even when every extern is fine
    with pytest.raises(FormatError, match="CONFIG_UNRELATED="):
        resolve_kconfig([a], 1, KernelConfig.parse("CONFIG_A=y\nCONFIG_UNRELATED=\n"), FACTS)
    # virtual externs are checked before the config is read
    v = spec("LINUX_NOPE", T.INT, 4, offset=8)
    with pytest.raises(NotFoundError, match="unrecognized virtual extern"):
        resolve_kconfig([a, b, v], 12, KernelConfig.parse("CONFIG_JUNK\n"), FACTS)
    # strong-but-unset comes last, in offset order
    with pytest.raises(NotFoundError, match="'CONFIG_A' \\(strong\\)"):
        resolve_kconfig([b, a], 8, KernelConfig.parse(""), FACTS)


def test_map_layout():
    specs = [spec("CONFIG_A", T.INT, 8, offset=0), spec("CONFIG_B", T.BOOL, 1, offset=8),
             spec("LINUX_KERNEL_VERSION", T.INT, 4, offset=12)]
    data = kconfig_map_data(specs, 16, KernelConfig.parse("CONFIG_A=0x0102\nCONFIG_B=y\n"), FACTS)
    assert data == le(0x0102, 8) + b"\x01" + bytes(3) + le(FACTS.version_code, 4)
    with pytest.raises(ArtifactError, match="outside"):
        kconfig_map_data(specs, 15, None, FACTS)
    with pytest.raises(ArtifactError, match="overlaps"):
        kconfig_map_data([spec("CONFIG_A", T.INT, 8), spec("CONFIG_B", T.BOOL, 1, offset=7)], 8,
                         KernelConfig.parse(""), FACTS)


@pytest.mark.parametrize("args", [
    ("", 0, 4, T.INT, False, False),
    ("CONFIG_X", -1, 4, T.INT, False, False),
    ("CONFIG_X", 0, 0, T.INT, False, False),
    ("CONFIG_X", 0, 4, T.UNKNOWN, False, False),
    ("CONFIG_X", 0, 2, T.BOOL, False, False),
    ("CONFIG_X", 0, 3, T.INT, False, False),
    ("CONFIG_X", 0, 2, T.TRISTATE, False, False),
    ("CONFIG_X", 0, 4, 9, False, False),
])
def test_spec_validation(args):
    with pytest.raises(ArtifactError):
        KconfigSpec(*args)


def test_spec_from_extern(bpf_object):
    obj = BPFObject.from_file(bpf_object("kconfig_types"))
    specs = {e.name: KconfigSpec.from_extern(e) for e in obj.externs if e.kind == ExternKind.KCONFIG}
    assert specs["CONFIG_SIGBPF_TRI"].type == T.TRISTATE and specs["CONFIG_SIGBPF_TRI"].size == 4
    assert specs["CONFIG_SIGBPF_S16"].signed and not specs["CONFIG_SIGBPF_U16"].signed
    assert specs["CONFIG_SIGBPF_STR"].type == T.CHAR_ARR and specs["CONFIG_SIGBPF_STR"].size == 8
    assert all(s.weak for s in specs.values())


# ---- the kernel version ---------------------------------------------------------------------

@pytest.mark.parametrize("release,version,signature,expected", [
    ("6.18.44-fc-v1147", "#1 SMP PREEMPT_DYNAMIC @0", None, (6, 18, 44)),
    ("4.19.300", "", None, (4, 19, 255)),  # c capped at 255
    ("6.1.0-22-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.94-1 (2024-06-21)", None, (6, 1, 94)),
    ("5.4.0-12-generic", "#15-Ubuntu SMP", "Ubuntu 5.4.0-12.15-generic 5.4.8\n", (5, 4, 8)),
    ("5.4.0-12-generic", "", "garbage", (5, 4, 0)),  # unreadable signature: fall through
    ("6.2", "", None, None),
    ("x.y.z", "", None, None),
])
def test_kernel_version_code(release, version, signature, expected):
    got = kernel_version_code(release, version, signature)
    assert got == (kernel_version(*expected) if expected else 0)


def test_kernel_version_macro():
    assert kernel_version(6, 18, 44) == 0x06122C
    assert kernel_version(5, 4, 1000) == 0x0504FF


# ---- the running kernel ---------------------------------------------------------------------

def _running_config_or_skip() -> KernelConfig:
    try:
        return KernelConfig.running()
    except NotFoundError as err:
        if os.environ.get("SIGBPF_REQUIRE_KERNEL") == "1":
            raise
        pytest.skip(str(err))


def test_running_config_has_bpf():
    config = _running_config_or_skip()
    assert config.get("CONFIG_BPF") == "y"
    assert kconfig_value(spec("CONFIG_BPF", T.BOOL, 1), config, FACTS) == b"\x01"
    assert config.problems == ()


def test_running_kernel_version_matches_uname(kernel):
    u = os.uname()
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", u.release)
    assert m
    facts = KernelFacts.running()
    if "Debian " not in u.version and not os.path.exists(K.VERSION_SIGNATURE):
        assert facts.version_code == kernel_version(*map(int, m.groups()))
    s = spec("LINUX_KERNEL_VERSION", T.INT, 4)
    assert kconfig_value(s, None, facts) == le(facts.version_code, 4)


def test_syscall_wrapper_symbol():
    assert K.syscall_wrapper_symbol("x86_64") == "__x64_sys_bpf"
    assert K.syscall_wrapper_symbol("aarch64") == "__arm64_sys_bpf"
    assert K.syscall_wrapper_symbol("ppc64le") == "__powerpc_sys_bpf"
    assert K.syscall_wrapper_symbol("sparc64") is None


def test_perf_event_attr_marshalling(kernel):
    # PERF_TYPE_SOFTWARE (1), config 0 (cpu-clock) for this process: accepted only when the
    # attr's type, size and layout are right; a PMU type that does not exist is refused
    assert K._perf_kprobe_opens(1, "__x64_sys_bpf")
    assert not K._perf_kprobe_opens(0x7FFFFFF0, "__x64_sys_bpf")


def test_legacy_kprobe_probe(tmp_path, monkeypatch):
    monkeypatch.setattr(K, "DEBUGFS_TRACING", str(tmp_path / "no-debugfs"))
    monkeypatch.setattr(K, "TRACEFS", str(tmp_path))
    assert not K._legacy_kprobe_adds("__x64_sys_bpf")  # no kprobe_events: no kprobes
    events = tmp_path / "kprobe_events"
    events.write_text("")
    assert K._legacy_kprobe_adds("__x64_sys_bpf")
    added, removed = events.read_text().split("-:")
    assert re.fullmatch(rf"p:kprobes/(libbpf_{os.getpid()}_\d+___x64_sys_bpf_0x0) __x64_sys_bpf\+0x0", added)
    assert removed == "kprobes/" + added.split("/")[1].split()[0]


# ---- libbpf as the reference ------------------------------------------------------------------

@dataclass
class LibbpfLoad:
    """What libbpf 1.1 did with an object: its load result, log, .kconfig bytes, relocated insns."""

    rc: int
    log: list[str]
    kconfig_initial: bytes | None = None
    kconfig_map: bytes | None = None
    insns: dict[str, bytes] = field(default_factory=dict)

    def warnings(self) -> list[str]:
        """libbpf's messages about externs and config lines, 'libbpf: ' and newlines removed."""
        text = "".join(self.log)
        out = []
        for line in re.split(r"\nlibbpf: |^libbpf: ", text):
            line = line.replace("\n", "").strip()
            if re.match(r"(extern|failed to parse)", line) and not re.search(r"as integer: -\d+$", line):
                if not re.search(r"set to |defaulting to zero|^extern \(\w+\) #\d+:", line):
                    out.append(line)
        return out


_OPTS_SIZE, _OPTS_KCONFIG = 80, 40  # struct bpf_object_open_opts (libbpf 1.1): sz, ..., kconfig at 40


def libbpf_load(path, kconfig: str | None = None) -> LibbpfLoad:
    """Open and load *path* with libbpf (extra *kconfig* text as bpf_object_open_opts.kconfig)."""
    import elf_libbpf

    lb = elf_libbpf.lib()
    lb.bpf_map__fd.restype = ctypes.c_int
    lb.bpf_map__fd.argtypes = [ctypes.c_void_p]
    lb.bpf_map_lookup_elem.restype = ctypes.c_int
    lb.bpf_map_lookup_elem.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    lb.bpf_program__insns.restype = ctypes.c_void_p
    lb.bpf_program__insns.argtypes = [ctypes.c_void_p]
    opts = ctypes.create_string_buffer(_OPTS_SIZE)
    ctypes.memmove(opts, _OPTS_SIZE.to_bytes(8, "little"), 8)
    text = None
    if kconfig is not None:
        text = ctypes.create_string_buffer(kconfig.encode())
        pointer = ctypes.addressof(text).to_bytes(8, "little")
        ctypes.memmove(ctypes.addressof(opts) + _OPTS_KCONFIG, pointer, 8)
    elf_libbpf._LOG.clear()
    obj = lb.bpf_object__open_file(str(path).encode(), ctypes.addressof(opts))
    assert not lb.libbpf_get_error(obj), "".join(elf_libbpf._LOG)
    try:
        rc = lb.bpf_object__load(obj)
        out = LibbpfLoad(rc, list(elf_libbpf._LOG))
        m = None
        while True:
            m = lb.bpf_object__next_map(obj, m)
            if not m:
                break
            if lb.bpf_map__name(m).decode().endswith(".kconfig"):
                size = ctypes.c_size_t(0)
                ptr = lb.bpf_map__initial_value(m, ctypes.byref(size))
                out.kconfig_initial = ctypes.string_at(ptr, size.value)
                if rc == 0:
                    buf, key = ctypes.create_string_buffer(size.value), ctypes.c_int(0)
                    assert lb.bpf_map_lookup_elem(lb.bpf_map__fd(m), ctypes.byref(key), buf) == 0
                    out.kconfig_map = buf.raw
        p = None
        while True:
            p = lb.bpf_object__next_program(obj, p)
            if not p:
                break
            n = lb.bpf_program__insn_cnt(p)
            out.insns[lb.bpf_program__name(p).decode()] = ctypes.string_at(lb.bpf_program__insns(p), 8 * n)
        return out
    finally:
        lb.bpf_object__close(obj)
        del text


def _specs(path) -> tuple[list[KconfigSpec], int]:
    obj = BPFObject.from_file(path)
    specs = [KconfigSpec.from_extern(e) for e in obj.externs if e.kind == ExternKind.KCONFIG]
    return specs, kconfig_size(list(obj.externs))


def _system_text() -> str:
    """The text of the config file libbpf reads (the same one KernelConfig.running picks)."""
    source = _running_config_or_skip().source
    raw = open(source, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8", "surrogateescape")


@pytest.fixture(scope="module")
def facts(kernel) -> KernelFacts:
    return KernelFacts.running()


def test_libbpf_system_config_bytes(kernel, bpf_object, facts):
    path = bpf_object("kconfig_system")
    ref = libbpf_load(path)
    assert ref.rc == 0, "".join(ref.log)[-3000:]
    specs, size = _specs(path)
    assert len(ref.kconfig_initial) == size
    ours = resolve_kconfig(specs, size, _running_config_or_skip(), facts)
    assert ours.data == ref.kconfig_initial == ref.kconfig_map
    # the virtual externs individually, as libbpf logged them
    for name in ("LINUX_KERNEL_VERSION", "LINUX_HAS_BPF_COOKIE", "LINUX_HAS_SYSCALL_WRAPPER"):
        m = re.search(rf"extern \(kcfg\) '{name}': set to (0x[0-9a-f]+)", "".join(ref.log))
        assert m, name
        got = next(v for v in ours.values if v.name == name).data
        assert int.from_bytes(got, "little") == int(m.group(1), 16), name
    assert ours.warnings == tuple(w for w in ref.warnings() if "truncated" in w)


VALID_TEXTS = [
    # every type, and the edges of each range
    'CONFIG_SIGBPF_BOOL=y\nCONFIG_SIGBPF_TRI=m\nCONFIG_SIGBPF_CHAR=m\nCONFIG_SIGBPF_U8=255\n'
    'CONFIG_SIGBPF_S16=-32768\nCONFIG_SIGBPF_U16=0xffff\nCONFIG_SIGBPF_S32=-1\n'
    'CONFIG_SIGBPF_U32=0x7fffffff\nCONFIG_SIGBPF_S64=-9223372036854775808\n'
    'CONFIG_SIGBPF_U64=0xdead000000000000\nCONFIG_SIGBPF_STR="hello world"\nCONFIG_SIGBPF_STR1="x"\n',
    # other letters, octal, signs, whitespace, an empty string
    'CONFIG_SIGBPF_BOOL=n\nCONFIG_SIGBPF_TRI=y\nCONFIG_SIGBPF_CHAR=65\nCONFIG_SIGBPF_U8=0\n'
    'CONFIG_SIGBPF_S16=077\nCONFIG_SIGBPF_U16= 12\nCONFIG_SIGBPF_S32=+2147483647\n'
    'CONFIG_SIGBPF_U32=4294967295\nCONFIG_SIGBPF_S64=0x7fffffffffffffff\nCONFIG_SIGBPF_U64=-1\n'
    'CONFIG_SIGBPF_STR=""\nCONFIG_SIGBPF_STR1=""\n',
    # tristate n, CHAR from a letter, the first line wins, "is not set" leaves weak externs zero
    '# CONFIG_SIGBPF_BOOL is not set\nCONFIG_SIGBPF_TRI=n\nCONFIG_SIGBPF_CHAR=y\n'
    'CONFIG_SIGBPF_S32=1\nCONFIG_SIGBPF_S32=2\nCONFIG_SIGBPF_STR="1234567"\nCONFIG_SIGBPF_U8=yes\n'
    'CONFIG_SIGBPF_S64=-0x10\n',
    # nothing: every weak extern zero
    '',
]


@pytest.mark.parametrize("text", VALID_TEXTS, ids=range(len(VALID_TEXTS)))
def test_libbpf_extra_config_bytes(kernel, bpf_object, facts, text):
    path = bpf_object("kconfig_types")
    ref = libbpf_load(path, text)
    assert ref.rc == 0, "".join(ref.log)[-3000:]
    specs, size = _specs(path)
    # libbpf reads the extra text first, then the system config for what is still unset
    config = KernelConfig.parse(text + _system_text(), "extra+system")
    ours = resolve_kconfig(specs, size, config, facts)
    assert ours.data == ref.kconfig_initial == ref.kconfig_map
    assert list(ours.warnings) == [w for w in ref.warnings() if "truncated" in w]


BAD_TEXTS = [
    "CONFIG_SIGBPF_BOOL=m\n",
    "CONFIG_SIGBPF_BOOL=1\n",
    "CONFIG_SIGBPF_BOOL=\"y\"\n",
    "CONFIG_SIGBPF_TRI=2\n",
    "CONFIG_SIGBPF_U8=256\n",
    "CONFIG_SIGBPF_CHAR=200\n",
    "CONFIG_SIGBPF_S16=32768\n",
    "CONFIG_SIGBPF_U16=-1\n",
    "CONFIG_SIGBPF_U32=-1\n",
    "CONFIG_SIGBPF_S32=-2147483649\n",
    "CONFIG_SIGBPF_S32=abc\n",
    "CONFIG_SIGBPF_S32=08\n",
    "CONFIG_SIGBPF_U64=99999999999999999999\n",
    "CONFIG_SIGBPF_S32=y\n",
    "CONFIG_SIGBPF_S32=\"1\"\n",
    "CONFIG_SIGBPF_STR=abc\n",
    "CONFIG_SIGBPF_STR=5\n",
    "CONFIG_SIGBPF_STR=\"abc\n",
    "CONFIG_SIGBPF_STR=y\n",
    "CONFIG_SIGBPF_UNRELATED\nCONFIG_SIGBPF_BOOL=y\n",
    "CONFIG_SIGBPF_BOOL=y\nCONFIG_SIGBPF_UNRELATED=\nCONFIG_SIGBPF_S32=1\n",
    "CONFIG_SIGBPF_BOOL=m\nCONFIG_SIGBPF_S32=x\n",
]


@pytest.mark.parametrize("text", BAD_TEXTS, ids=range(len(BAD_TEXTS)))
def test_libbpf_extra_config_refusals(kernel, bpf_object, facts, text):
    path = bpf_object("kconfig_types")
    ref = libbpf_load(path, text)
    assert ref.rc != 0
    expected = ref.warnings()
    assert expected, "".join(ref.log)[-2000:]
    specs, size = _specs(path)
    with pytest.raises(SigbpfError) as err:
        resolve_kconfig(specs, size, KernelConfig.parse(text + _system_text()), facts)
    assert all(e in str(err.value) for e in expected), (expected, str(err.value))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("case", ["STRONG", "VIRTUAL", "NO_PREFIX", "VERSION_CHAR", "COOKIE_TRI"])
def test_libbpf_object_refusals(kernel, bpf_object, facts, case):
    path = bpf_object("kconfig_types", f"-DSIGBPF_BAD_{case}")
    ref = libbpf_load(path)
    assert ref.rc != 0
    expected = ref.warnings()
    assert expected, "".join(ref.log)[-2000:]
    specs, size = _specs(path)
    with pytest.raises(SigbpfError) as err:
        resolve_kconfig(specs, size, _running_config_or_skip(), facts)
    assert all(e in str(err.value) for e in expected), (expected, str(err.value))


def test_loaded_artifact_has_libbpfs_kconfig_map(kernel, bpf_object):
    """End to end: `sigbpf build` + `load_artifact` write into the artifact's .kconfig map the
    bytes libbpf writes into its own, and the program runs and reads them (format 1.1: the
    artifact carries the names and types, the loader the running kernel's values)."""
    from sigbpf.artifact.build import build_artifact
    from sigbpf.kernel.loader import load_artifact

    path = bpf_object("kconfig_system")
    ref = libbpf_load(path)
    assert ref.rc == 0 and ref.kconfig_map is not None
    art = build_artifact(path)
    assert [k.name for k in art.kconfig] == [s.name for s in _specs(path)[0]]
    with load_artifact(art, run=True) as loaded:
        assert loaded.report.ok, loaded.report.programs
        (kconfig_map,) = [v for v in loaded.maps.values() if v.spec.kind == MapKind.KCONFIG]
        assert kconfig_map.lookup_bytes(0) == ref.kconfig_map


def test_loaded_artifact_binds_ksyms_like_libbpf(kernel, bpf_object):
    """The ld_imm64 of each ksym, as the loader hands it to the kernel, is what libbpf
    relocates it to (typeless: the kallsyms address; typed: BPF_PSEUDO_BTF_ID + vmlinux id)."""
    from sigbpf.artifact.build import build_artifact
    from sigbpf.asm import Instruction
    from sigbpf.kernel import loader as L
    from sigbpf.kernel.environment import KernelEnvironment
    from sigbpf.kernel.kernel_btf import KernelBTFs

    path = bpf_object("ksym_vars")
    ref = libbpf_load(path)
    art = build_artifact(path)
    assert art.ksyms and any(p.ksym_sites for p in art.programs)
    loaded = L.LoadedArtifact(L.LoadReport(L.Resolution.USERSPACE, ""), artifact=art,
                              kernel_btfs=KernelBTFs(BTF.load_vmlinux()))
    try:
        values = L._bind_ksyms(loaded, art, BTF.parse(art.btf), KernelEnvironment.running())
        for prog in art.programs:
            if not prog.ksym_sites:
                continue
            ours = L._apply_ksyms(prog, list(prog.insns), values)
            theirs = Instruction.decode(ref.insns[prog.name])
            for site in prog.ksym_sites:
                a, b = ours[site.insn:site.insn + 2], theirs[site.insn:site.insn + 2]
                assert (a[0].src, a[0].imm, a[1].imm) == (b[0].src, b[0].imm, b[1].imm), \
                    (prog.name, art.ksyms[site.ksym].name)
    finally:
        loaded.close()
