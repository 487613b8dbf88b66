"""A thousand kernels derived from the corpus, each with the answer ``sigbpf check`` must give.

The fleet check's tests and bench/fleet.py check ``tests/progs/fleet_all.c``
(two programs: kfuncs, a typed ksym, fentry and tp_btf targets, a ring
buffer, helpers, three CO-RE relocations) against kernels made here from the
two Debian kernels of tests/data/corpus (6.1: no kfuncs yet; 6.12: has them,
untagged, with its ``.BTF_ids``).  Each kernel is a corpus kernel with **one
mutation** (:data:`MUTATIONS`), made by editing the raw BTF bytes (a record's
words, appended records and strings, an enum cut short: no full re-encode,
so a thousand take seconds), plus:

* a **kfunc-ness source**: the ``.BTF_ids`` sibling, ``DECL_TAG bpf_kfunc``
  records added for the kfuncs of that ``.BTF_ids`` (a "tagged" kernel), or
  neither;
* a **layout**: a raw ``.btf`` (most), an ``.btf.xz``, or BTFHub's
  ``<distro>/<version>/<arch>/<kernel>.btf.tar.xz`` (BTFHub has no
  ``.BTF_ids``: those kernels are tagged or have no source);
* a unique string, so that no two kernels have the same content.

Every kernel's expected cells (check -> (verdict, code)) follow from its
construction alone (:func:`expected`): the corpus facts (6.1 lacks
``bpf_task_from_pid``/``bpf_task_release``, added in 6.2) and what each
mutation breaks.  CO-RE checks are named by what they relocate (``core:pid``,
``core:tgid``, ``core:pidtype``); :func:`core_keys` maps those to the
artifact's ``core:PROG/insn N`` keys.

The set is written once under ``$SIGBPF_CACHE/fleet-testdata/<count>-<key>/``
(default ``~/.cache/sigbpf``), *key* covering the code that makes it and the
corpus files; a ``manifest.json`` written last marks it complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import shutil
import struct
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from sigbpf.btf import BTF, Kind
from sigbpf.fleet.model import Verdict

TESTS = Path(__file__).resolve().parent
CORPUS = TESTS / "data" / "corpus"
K61, K612 = "6.1.0-56-amd64", "6.12.95+deb12-amd64"
KFUNCS = ("bpf_task_from_pid", "bpf_task_release")

#: The checks of tests/progs/fleet_all.c, CO-RE ones by what they relocate.
CHECKS = (
    "program:on_unlink", "program:on_exec",
    "kfunc:bpf_task_from_pid", "kfunc:bpf_task_release",
    "attach:do_unlinkat", "attach:btf_trace_sched_process_exec",
    "ksym:bpf_prog_active",
    "prog_type:BPF_PROG_TYPE_TRACING", "map_type:BPF_MAP_TYPE_RINGBUF",
    "attach_type:BPF_TRACE_FENTRY", "attach_type:BPF_TRACE_RAW_TP",
    "helper:BPF_FUNC_get_current_pid_tgid", "helper:BPF_FUNC_probe_read_kernel",
    "helper:BPF_FUNC_this_cpu_ptr", "helper:BPF_FUNC_ringbuf_output",
    "core:pid", "core:tgid", "core:pidtype",
)
OK_CODES = {"program": "accepts", "kfunc": "resolves", "attach": "resolves", "ksym": "resolves",
            "prog_type": "known", "map_type": "known", "attach_type": "known", "helper": "known",
            "core": "relocated"}

#: The mutations, by name (see :func:`_mutate` for what each does to the bytes).
MUTATIONS = (
    "none", "kfunc-removed", "proto-incompatible", "proto-drift", "not-kfunc",
    "field-renamed", "field-gone-exists", "enumval-renamed", "core-ambiguous",
    "map-type-unknown", "helper-unknown", "attach-type-unknown", "prog-type-unknown",
    "enum-missing", "fentry-target-missing", "tp-target-missing", "ksym-missing",
    "ksym-incompatible", "module-shadow", "module-only",
)
#: Mutations that need the kernel to have the kfuncs (6.12 only).
_NEEDS_KFUNCS = {"kfunc-removed", "proto-incompatible", "proto-drift", "not-kfunc", "module-shadow",
                 "module-only"}
GENERATOR_VERSION = "fleet-kernels/1"


@dataclass(frozen=True)
class Spec:
    """One generated kernel: its name, how it was made, where it is."""

    index: int
    base: str  # K61 or K612
    mutation: str
    source: str  # "ids", "tags" or "none": where kfunc-ness comes from
    layout: str  # "raw", "xz" or "btfhub"

    @property
    def name(self) -> str:
        return f"{self.base}-fleet{self.index:04d}-{self.mutation}"


def specs(count: int = 1000) -> list[Spec]:
    """The kernels, deterministically: mutations round-robin, sources and layouts varied."""
    out = []
    sources = ("ids", "none", "tags")
    for i in range(count):
        mutation = MUTATIONS[i % len(MUTATIONS)]
        base = K612
        if mutation not in _NEEDS_KFUNCS and (i // len(MUTATIONS)) % 5 == 1:
            base = K61
        source = sources[(i // len(MUTATIONS)) % 3]
        if mutation == "not-kfunc":
            source = "tags"  # a kernel whose tags leave bpf_task_release out
        layout = "raw"
        if i % 23 == 7:
            layout = "xz"
        elif i % 23 == 13 and not mutation.startswith("module-"):  # BTFHub has no modules
            layout = "btfhub"
            if source == "ids":
                source = "tags"
        out.append(Spec(i, base, mutation, source, layout))
    return out


# ------------------------------------------------------------------ expectations

def _kfunc_cell(findings: list[tuple[Verdict, str]]) -> tuple[Verdict, str]:
    """The cell of a kfunc that resolves: its worst finding (the fleet's precedence), or OK."""
    if not findings:
        return Verdict.OK, "resolves"
    order = ("incompatible", "not-kfunc", "drift", "kfunc-unknown", "shadowed")
    findings.sort(key=lambda f: (-int(f[0]), order.index(f[1])))
    return findings[0]


def expected(spec: Spec) -> dict[str, tuple[Verdict, str]]:
    """check -> (verdict, code) for every check of fleet_all.c on this kernel."""
    out = {c: (Verdict.OK, OK_CODES[c.split(":")[0]]) for c in CHECKS}
    m = spec.mutation

    def fail(check: str, code: str) -> None:
        out[check] = (Verdict.FAIL, code)

    def warn(check: str, code: str) -> None:
        out[check] = (Verdict.WARN, code)

    has_kfuncs = spec.base == K612
    for k in KFUNCS:
        missing = not has_kfuncs or (k == "bpf_task_release" and m in ("kfunc-removed", "module-only"))
        if missing:
            fail(f"kfunc:{k}", "missing")
            continue
        findings: list[tuple[Verdict, str]] = []
        if k == "bpf_task_from_pid" and m == "proto-incompatible":
            findings.append((Verdict.FAIL, "incompatible"))
        if k == "bpf_task_from_pid" and m == "proto-drift":
            findings.append((Verdict.WARN, "drift"))
        if k == "bpf_task_release" and m == "not-kfunc":
            findings.append((Verdict.FAIL, "not-kfunc"))
        if spec.source == "none":
            findings.append((Verdict.WARN, "kfunc-unknown"))
        if k == "bpf_task_from_pid" and m == "module-shadow":
            findings.append((Verdict.WARN, "shadowed"))
        out[f"kfunc:{k}"] = _kfunc_cell(findings)
    if any(out[f"kfunc:{k}"][0] is Verdict.FAIL for k in KFUNCS):
        fail("program:on_unlink", "rejected")
    simple = {
        "field-renamed": ("core:pid", Verdict.WARN, "fails-if-reached"),
        "enumval-renamed": ("core:pidtype", Verdict.WARN, "fails-if-reached"),
        "core-ambiguous": ("core:pid", Verdict.FAIL, "refused"),
        "map-type-unknown": ("map_type:BPF_MAP_TYPE_RINGBUF", Verdict.FAIL, "unknown"),
        "attach-type-unknown": ("attach_type:BPF_TRACE_FENTRY", Verdict.FAIL, "unknown"),
        "prog-type-unknown": ("prog_type:BPF_PROG_TYPE_TRACING", Verdict.FAIL, "unknown"),
        "enum-missing": ("map_type:BPF_MAP_TYPE_RINGBUF", Verdict.WARN, "enum-missing"),
        "fentry-target-missing": ("attach:do_unlinkat", Verdict.FAIL, "missing"),
        "tp-target-missing": ("attach:btf_trace_sched_process_exec", Verdict.FAIL, "missing"),
        "ksym-missing": ("ksym:bpf_prog_active", Verdict.FAIL, "missing"),
        "ksym-incompatible": ("ksym:bpf_prog_active", Verdict.FAIL, "incompatible"),
    }
    if m in simple:
        check, verdict, code = simple[m]
        out[check] = (verdict, code)
    if m == "helper-unknown":  # bpf_func_id cut at 130: ringbuf_output (130), this_cpu_ptr (154)
        fail("helper:BPF_FUNC_ringbuf_output", "unknown")
        fail("helper:BPF_FUNC_this_cpu_ptr", "unknown")
    return out


def verdict_of(expect: dict[str, tuple[Verdict, str]]) -> Verdict:
    return max(v for v, _ in expect.values())


def core_keys(checks: list[dict]) -> dict[str, str]:
    """``core:pid``/``core:tgid``/``core:pidtype`` -> the report's ``core:PROG/insn N`` key
    (from each CO-RE check's detail: its kind, root type and access string)."""
    out = {}
    for c in checks:
        if c["kind"] != "core":
            continue
        detail = c["detail"]
        if detail.startswith("field_byte_offset struct task_struct"):
            out["core:pid"] = c["key"]
        elif detail.startswith("field_exists struct task_struct"):
            out["core:tgid"] = c["key"]
        elif detail.startswith("enumval_value enum pid_type"):
            out["core:pidtype"] = c["key"]
    return out


# ------------------------------------------------------------------ raw BTF editing

_HDR = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type_off, type_len, str_off, str_len


class RawEdit:
    """Edits of one raw BTF blob, positions taken from the parsed original (:attr:`btf`)."""

    def __init__(self, data: bytes, btf: BTF) -> None:
        self.btf = btf
        (_m, _v, _f, self.hdr_len, self.type_off, self.type_len, self.str_off,
         self.str_len) = _HDR.unpack_from(data, 0)
        self.blob = bytearray(data)
        self.new_types = bytearray()
        self.new_strings = bytearray()
        self.count = 0  # types appended
        self.cut: tuple[int, int] | None = None  # (byte offset in blob, length) to remove
        self._strings: dict[str, int] = {}

    def string(self, text: str) -> int:
        if text not in self._strings:
            self._strings[text] = self.str_len + len(self.new_strings)
            self.new_strings += text.encode() + b"\0"
        return self._strings[text]

    def _at(self, type_id: int, word: int) -> int:
        return self.btf.record_offset(type_id) + 4 * word

    def set_word(self, type_id: int, word: int, value: int) -> None:
        struct.pack_into("<I", self.blob, self._at(type_id, word), value & 0xFFFFFFFF)

    def word(self, type_id: int, word: int) -> int:
        return struct.unpack_from("<I", self.blob, self._at(type_id, word))[0]

    def rename(self, type_id: int, new: str) -> None:
        self.set_word(type_id, 0, self.string(new))

    def add_type(self, *words: int) -> int:
        self.new_types += struct.pack(f"<{len(words)}I", *(w & 0xFFFFFFFF for w in words))
        self.count += 1
        return self.btf.type_count + self.count

    def member_index(self, struct_id: int, member: str) -> int:
        return next(i for i, mm in enumerate(self.btf[struct_id].members) if mm.name == member)

    def cut_enum(self, enum_id: int, cutoff: int) -> None:
        """Keep the enumerators below *cutoff*, then the ``__MAX`` one (if any) set to *cutoff*."""
        values = self.btf[enum_id].values
        n = 0
        while n < len(values) and values[n].value < cutoff and not values[n].name.startswith("__"):
            n += 1
        sentinel = next((i for i, v in enumerate(values) if v.name.startswith("__")), None)
        vlen = n
        if sentinel is not None:
            self.set_word(enum_id, 3 + 2 * n, self.word(enum_id, 3 + 2 * sentinel))  # its name
            self.set_word(enum_id, 4 + 2 * n, cutoff)
            vlen = n + 1
        info = self.word(enum_id, 1)
        self.set_word(enum_id, 1, (info & ~0xFFFF) | vlen)
        self.cut = (self._at(enum_id, 3 + 2 * vlen), 8 * (len(values) - vlen))

    def encode(self) -> bytes:
        blob = self.blob
        type_len = self.type_len
        if self.cut is not None:
            at, length = self.cut
            del blob[at:at + length]
            type_len -= length
        end = self.hdr_len + self.type_off + type_len
        blob[end:end] = self.new_types
        type_len += len(self.new_types)
        blob += self.new_strings
        str_off = self.type_off + type_len
        struct.pack_into("<IIII", blob, 8, self.type_off, type_len, str_off,
                         self.str_len + len(self.new_strings))
        return bytes(blob)


# ------------------------------------------------------------------ the mutations

def _find(btf: BTF, name: str, kind: Kind) -> int:
    return btf.find_by_name_kind(name, kind)


def _mutate(e: RawEdit, spec: Spec, kfunc_ids: list[int]) -> None:
    btf, m, tag = e.btf, spec.mutation, f"fleet{spec.index:04d}"
    if spec.source == "tags":
        decl = e.string("bpf_kfunc")
        skip = _find(btf, "bpf_task_release", Kind.FUNC) if m == "not-kfunc" and spec.base == K612 else None
        for fid in kfunc_ids:
            if fid != skip:
                e.add_type(decl, 17 << 24, fid, -1)
    if m == "kfunc-removed" or m == "module-only":
        e.rename(_find(btf, "bpf_task_release", Kind.FUNC), f"bpf_task_release_{tag}")
    elif m in ("proto-incompatible", "proto-drift"):
        fid = _find(btf, "bpf_task_from_pid", Kind.FUNC)
        old = btf[btf[fid].type]
        if m == "proto-incompatible":  # a second parameter
            proto = e.add_type(0, (13 << 24) | 2, old.return_type, e.string("pid"), old.params[0].type,
                               e.string("extra"), old.params[0].type)
        else:  # pid becomes an unsigned 64-bit int: compatible by libbpf's rule, strict drift
            u64 = e.add_type(e.string(f"u64_{tag}"), 1 << 24, 8, 64)
            proto = e.add_type(0, (13 << 24) | 1, old.return_type, e.string("pid"), u64)
        e.set_word(fid, 2, proto)
    elif m == "field-renamed" or m == "field-gone-exists":
        ts = _find(btf, "task_struct", Kind.STRUCT)
        member = "pid" if m == "field-renamed" else "tgid"
        e.set_word(ts, 3 + 3 * e.member_index(ts, member), e.string(f"{member}_{tag}"))
    elif m == "enumval-renamed":
        en = _find(btf, "pid_type", Kind.ENUM)
        i = next(i for i, v in enumerate(btf[en].values) if v.name == "PIDTYPE_TGID")
        e.set_word(en, 3 + 2 * i, e.string(f"PIDTYPE_TGID_{tag}"))
    elif m == "core-ambiguous":  # a flavor of task_struct whose pid is at another offset
        ts = _find(btf, "task_struct", Kind.STRUCT)
        pid = btf[ts].members[e.member_index(ts, "pid")]
        e.add_type(e.string(f"task_struct___{tag}"), (4 << 24) | 1, 64, e.string("pid"), pid.type, 0)
    elif m == "map-type-unknown":
        e.cut_enum(_find(btf, "bpf_map_type", Kind.ENUM), 27)
    elif m == "helper-unknown":
        e.cut_enum(_find(btf, "bpf_func_id", Kind.ENUM), 130)
    elif m == "attach-type-unknown":
        e.cut_enum(_find(btf, "bpf_attach_type", Kind.ENUM), 24)
    elif m == "prog-type-unknown":
        e.cut_enum(_find(btf, "bpf_prog_type", Kind.ENUM), 26)
    elif m == "enum-missing":
        e.rename(_find(btf, "bpf_map_type", Kind.ENUM), f"bpf_map_type_{tag}")
    elif m == "fentry-target-missing":
        e.rename(_find(btf, "do_unlinkat", Kind.FUNC), f"do_unlinkat_{tag}")
    elif m == "tp-target-missing":
        e.rename(_find(btf, "btf_trace_sched_process_exec", Kind.TYPEDEF), f"btf_trace_{tag}")
    elif m == "ksym-missing":
        e.rename(_find(btf, "bpf_prog_active", Kind.VAR), f"bpf_prog_active_{tag}")
    elif m == "ksym-incompatible":
        e.set_word(_find(btf, "bpf_prog_active", Kind.VAR), 2, _find(btf, "task_struct", Kind.STRUCT))
    e.string(f"sigbpf-fleet-variant-{spec.index}")  # every kernel's content differs


def _module(vmlinux: bytes, name: str) -> bytes:
    """Split BTF of a made-up module defining FUNC *name* (on this very vmlinux)."""
    from sigbpf.btf import BTFBuilder, Func, FuncLinkage, FuncProto

    b = BTFBuilder(BTF.parse(vmlinux, validate=False))
    proto = b.add(FuncProto(0, ()))
    b.add(Func(name, proto, FuncLinkage.GLOBAL))
    return b.encode()


# ------------------------------------------------------------------ the set on disk

@dataclass
class FleetKernels:
    """A generated set: its directory, and each kernel's spec and expected cells by name."""

    root: Path
    kernels: dict[str, Spec] = field(default_factory=dict)

    def expected(self, name: str) -> dict[str, tuple[Verdict, str]]:
        return expected(self.kernels[name])


def _key(count: int) -> str:
    """What the set's content depends on: the code that makes it, the corpus, the count."""
    import inspect

    code = "".join(inspect.getsource(f) for f in (specs, RawEdit, _mutate, _module, _write, _generate))
    h = hashlib.sha256(GENERATOR_VERSION.encode() + code.encode() + str(count).encode())
    for k in (K61, K612):
        for suffix in ("btf", "BTF_ids"):
            h.update((CORPUS / f"{k}.{suffix}.xz").read_bytes())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    """Beside the fleet check's own cache (``$SIGBPF_CACHE`` or ``~/.cache/sigbpf``)."""
    from sigbpf.fleet.cache import cache_dir

    return cache_dir().parent / "fleet-testdata"


def fleet_kernels(count: int = 1000) -> FleetKernels:
    """The generated set of *count* kernels (made on first use, then read from the cache)."""
    root = cache_root() / f"{count}-{_key(count)}"
    manifest = root / "manifest.json"
    if not manifest.exists():
        _generate(root, count)
        for old in root.parent.glob(f"{count}-*"):  # sets of an older generator: gigabytes
            if old != root:
                shutil.rmtree(old, ignore_errors=True)
    doc = json.loads(manifest.read_text())
    return FleetKernels(root, {k["name"]: Spec(k["index"], k["base"], k["mutation"], k["source"],
                                               k["layout"]) for k in doc["kernels"]})


def _generate(root: Path, count: int) -> None:
    from sigbpf.btf import kfuncs
    from testbench.debian import staged

    root.parent.mkdir(parents=True, exist_ok=True)
    with staged(root) as staging:
        bases: dict[str, tuple[bytes, BTF, bytes, list[int]]] = {}
        for k in (K61, K612):
            data = lzma.decompress((CORPUS / f"{k}.btf.xz").read_bytes())
            ids = lzma.decompress((CORPUS / f"{k}.BTF_ids.xz").read_bytes())
            btf = BTF.parse(data, validate=False)
            bases[k] = (data, btf, ids, [x.id for x in kfuncs.kfuncs_from_btf_ids(btf, ids)])
        (staging / "raw").mkdir()
        all_specs = specs(count)
        for spec in all_specs:
            data, btf, ids, kfunc_ids = bases[spec.base]
            edit = RawEdit(data, btf)
            _mutate(edit, spec, kfunc_ids)
            _write(staging, spec, edit.encode(), ids)
        (staging / "manifest.json").write_text(json.dumps({
            "generator": GENERATOR_VERSION,
            "kernels": [{"name": s.name, "index": s.index, "base": s.base, "mutation": s.mutation,
                         "source": s.source, "layout": s.layout} for s in all_specs]}, indent=0))


def _write(staging: Path, spec: Spec, btf: bytes, ids: bytes) -> None:
    name = spec.name
    if spec.layout == "btfhub":  # <distro>/<version>/<arch>/<kernel>.btf.tar.xz
        d = staging / "btfhub" / "debian" / "bookworm" / "x86_64"
        d.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:xz", preset=0) as tar:
            info = tarfile.TarInfo(f"{name}.btf")
            info.size = len(btf)
            tar.addfile(info, io.BytesIO(btf))
        (d / f"{name}.btf.tar.xz").write_bytes(buf.getvalue())
        return
    d = staging / "raw"
    if spec.layout == "xz":
        (d / f"{name}.btf.xz").write_bytes(lzma.compress(btf, preset=0))
    else:
        (d / f"{name}.btf").write_bytes(btf)
    if spec.source == "ids":
        (d / f"{name}.BTF_ids").write_bytes(ids)
    if spec.mutation == "module-shadow":
        (d / f"{name}.fleetmod.btf").write_bytes(_module(btf, "bpf_task_from_pid"))
    elif spec.mutation == "module-only":
        (d / f"{name}.fleetmod.btf").write_bytes(_module(btf, "bpf_task_release"))
