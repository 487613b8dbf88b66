#!/usr/bin/env python3
"""libbpf versus sigbpf on the corpus of real BPF objects (bench/corpus/build_corpus.py).

For each object, one row: whether libbpf loads it (``bpftool prog loadall OBJ
/sys/fs/bpf/DIR``, the pins removed afterwards), whether sigbpf loads it
(``python3 -m sigbpf load OBJ --json``, this working tree's sigbpf; with
``--via-artifact`` ``sigbpf build`` first, then ``sigbpf load ARTIFACT``), and
why not: the first error line, or the verifier's last line.  Both run with a
per-object timeout, each in a private mount namespace with a bpffs of its own,
so that maps pinned by name never reach the host's /sys/fs/bpf.  Nothing is
attached; objects with struct_ops maps are loaded one at a time and any
struct_ops map they registered is unregistered (by id) right after.

Then the totals: objects, libbpf loads, sigbpf loads, both, libbpf-only (the
gap, grouped by cause: which sigbpf feature is missing), sigbpf-only.

Usage::

    table.py [--subset N|NAME,...|@FILE] [--jobs N] [--timeout S]
             [--json OUT] [--markdown OUT] [--via-artifact] [--corpus DIR]

Without ``--corpus`` the corpus is built (or reused) first, only the named
objects when ``--subset`` names them.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import platform
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import build_corpus  # noqa: E402

BPFTOOL = shutil.which("bpftool") or "/usr/sbin/bpftool"
UNSHARE = shutil.which("unshare")
DEFAULT_TIMEOUT = 120.0
SUBSET_FILE = HERE / "subset.txt"


# --------------------------------------------------------------------------- ELF

#: Section prefixes whose programs need a kernel attach target at load time
#: (attach_btf_id / attach_prog_fd), as libbpf's section table says.
ATTACH_TARGET_SECTIONS = ("fentry", "fexit", "fmod_ret", "lsm", "tp_btf", "iter", "freplace",
                          "struct_ops", "fentry.s", "fexit.s", "fmod_ret.s", "lsm.s", "lsm_cgroup",
                          "iter.s", "kprobe.multi", "kretprobe.multi", "kprobe.session",
                          "uprobe.multi", "uretprobe.multi")


@dataclass
class ElfInfo:
    sections: dict[str, str] = field(default_factory=dict)  # program name -> section
    struct_ops_maps: list[str] = field(default_factory=list)
    section_names: list[str] = field(default_factory=list)


def elf_info(path: Path) -> ElfInfo:
    """Programs' sections and struct_ops map names, from a little-endian ELF64 BPF object."""
    info = ElfInfo()
    try:
        data = path.read_bytes()
        shoff, = struct.unpack_from("<Q", data, 40)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 58)
        shdrs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
        strtab_off = shdrs[shstrndx][4]

        def cstr(off: int) -> str:
            end = data.index(b"\0", off)
            return data[off:end].decode(errors="replace")

        names = [cstr(strtab_off + sh[0]) for sh in shdrs]
        info.section_names = names
        for sh in shdrs:
            if sh[1] != 2:  # SHT_SYMTAB
                continue
            str_off = shdrs[sh[6]][4]
            for i in range(sh[5] // 24):
                st_name, st_info, _o, st_shndx, _v, _s = struct.unpack_from("<IBBHQQ", data, sh[4] + i * 24)
                if st_shndx == 0 or st_shndx >= len(shdrs):
                    continue
                sec = names[st_shndx]
                sym = cstr(str_off + st_name)
                if st_info & 0xF == 2 and shdrs[st_shndx][2] & 0x4 and sec != ".text":  # FUNC in exec
                    info.sections[sym] = sec
                elif st_info & 0xF == 1 and "struct_ops" in sec:  # OBJECT
                    info.struct_ops_maps.append(sym)
    except (struct.error, ValueError, IndexError, OSError):
        pass
    return info


def section_kind(section: str) -> str:
    """'fentry/foo' -> 'fentry', '?fentry.s/foo' -> 'fentry.s', 'kprobe.multi/x*' -> 'kprobe.multi'."""
    s = section.lstrip("?")
    return s.split("/", 1)[0]


# --------------------------------------------------------------------------- results

@dataclass
class Outcome:
    ok: bool
    reason: str = ""        # first error line, or the verifier's last line
    error: str = ""         # the loader's error line
    verifier: str = ""      # the verifier's last meaningful line, when the kernel refused
    program: str = ""       # the first program that failed
    section: str = ""       # its ELF section
    seconds: float = 0.0
    cause: str = ""         # the group this failure belongs to
    programs: int | None = None  # programs loaded (sigbpf's JSON), when known


_VERIFIER_NOISE = re.compile(
    r"^(processed \d+ insns|verification time|stack depth|max_states_per_insn|"
    r"-- (BEGIN|END) PROG LOAD LOG --|Validating|Func#|func#|\s*$|; |prog '[^']*': relo #|"
    r"CO-RE relocating|found target candidate|func '[^']*' arg\d+ has btf_id)")


def verifier_last_line(log: str) -> str:
    lines = [l.rstrip() for l in log.splitlines()]
    for line in reversed(lines):
        if not _VERIFIER_NOISE.match(line) and not line.startswith("libbpf:"):
            return line.strip()
    return ""


def _run_limited(cmd: list[str], timeout: float, env: dict | None = None,
                 cwd: str | None = None) -> tuple[int | None, str, str, float]:
    """(returncode or None on timeout, stdout, stderr, seconds); the whole process group
    this call started is killed on timeout."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err, time.monotonic() - t0
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        return None, out, err, time.monotonic() - t0


def _private_bpffs(inner: str) -> list[str]:
    """A shell command run in a mount namespace of its own with a fresh bpffs on /sys/fs/bpf."""
    script = f"mount -t bpf bpf /sys/fs/bpf && {inner}"
    if UNSHARE:
        return [UNSHARE, "--mount", "--propagation", "private", "--", "sh", "-c", script]
    return ["sh", "-c", inner]


def _short(text: str, corpus: Path | None) -> str:
    if corpus is not None:
        text = text.replace(str(corpus) + "/", "")
    return " ".join(text.split())


def load_libbpf(obj: Path, timeout: float = DEFAULT_TIMEOUT, corpus: Path | None = None,
                info: ElfInfo | None = None) -> Outcome:
    """``bpftool prog loadall OBJ /sys/fs/bpf/DIR``, then the pins removed."""
    pin = f"/sys/fs/bpf/sigbpf-corpus-{os.getpid()}-{threading.get_ident()}"
    inner = (f"{BPFTOOL} prog loadall '{obj}' {pin}; rc=$?; rm -rf {pin}; exit $rc")
    rc, out, err, dt = _run_limited(_private_bpffs(inner), timeout)
    if rc == 0:
        return Outcome(True, seconds=dt)
    if rc is None:
        return Outcome(False, reason=f"timeout after {timeout:.0f}s", error="timeout", seconds=dt)
    if "can't pin program that wasn't loaded" in err and "BPF program load failed" not in err:
        # bpf_object__load() succeeded; bpftool then tries to pin the programs that are
        # not autoloaded (SEC("?...")) too, and fails on them.  That is a load.
        return Outcome(True, reason="loaded (bpftool could not pin the programs not autoloaded)",
                       seconds=dt)
    lines = [l for l in err.splitlines() if l.strip()]
    verifier = ""
    m = re.search(r"-- BEGIN PROG LOAD LOG --\n(.*?)-- END PROG LOAD LOG --", err, re.S)
    if m:
        verifier = verifier_last_line(m.group(1))
    skip = ("failed to load object", "Error: failed to load object file", "Warning: bpftool is now",
            "If it used to work", "-- BEGIN PROG", "-- END PROG")
    noise = ("elf: skipping", "try raising 'ulimit -l'", "Retrying without BTF", "BTF is optional",
             "BTF loading error", "BTF LOAD LOG", "btf_total_size")
    libbpf_lines = [l for l in lines if l.startswith("libbpf:") and not any(s in l for s in skip + noise)]
    telling = [l for l in libbpf_lines if re.search(
        r"fail|error|not found|invalid|unrecognized|not supported|can't|cannot|unknown|"
        r"not resolved|missing", l, re.I)]
    error = (telling or libbpf_lines or [l for l in lines if not any(s in l for s in skip)]
             or [f"exit {rc}"])[0]
    error = _short(re.sub(r"^libbpf: ", "", error), corpus)
    prog = ""
    pm = re.search(r"prog '([^']+)'", err)
    if pm:
        prog = pm.group(1)
    section = (info.sections.get(prog, "") if info else "")
    reason = f"{error} | verifier: {verifier}" if verifier else error
    return Outcome(False, reason=reason, error=error, verifier=verifier, program=prog,
                   section=section, seconds=dt)


def load_sigbpf(obj: Path, timeout: float = DEFAULT_TIMEOUT, corpus: Path | None = None,
                info: ElfInfo | None = None, via_artifact: bool = False,
                via_loader: bool = False) -> Outcome:
    """``python3 -m sigbpf load OBJ --json`` (this working tree's sigbpf); *via_artifact*:
    ``sigbpf build`` first; *via_loader*: ``sigbpf loader`` first (the running kernel's
    protocol) and load the loader file (the programs come back from the loader program)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    py = sys.executable
    t_build = 0.0
    with tempfile.TemporaryDirectory(prefix="sigbpf-corpus-") as tmp:
        target = obj
        # Each step turns the previous file into the next: `sigbpf build`, `sigbpf loader`.
        for step, wanted, out_name in (("build", via_artifact, "obj.sbpf"),
                                       ("loader", via_loader, "obj.sbpl")):
            if not wanted:
                continue
            made = Path(tmp) / out_name
            rc, out, err, dt = _run_limited([py, "-m", "sigbpf", step, str(target), "-o", str(made)],
                                            timeout, env=env, cwd=str(ROOT))
            t_build += dt
            if rc != 0:
                what = "timeout" if rc is None else _first_error(err, corpus)
                return Outcome(False, reason=f"{step}: {what}", error=f"{step}: {what}",
                               seconds=t_build)
            target = made
        inner = f"exec '{py}' -m sigbpf load '{target}' --json"
        rc, out, err, dt = _run_limited(_private_bpffs(inner), timeout, env=env, cwd=str(ROOT))
    dt += t_build
    if rc == 0:
        try:
            loaded = sum(1 for p in json.loads(out).get("programs", []) if p.get("loaded"))
        except (json.JSONDecodeError, AttributeError):
            loaded = None
        note = "loaded no program (none is autoloaded)" if loaded == 0 else ""
        return Outcome(True, reason=note, seconds=dt, programs=loaded)
    if rc is None:
        return Outcome(False, reason=f"timeout after {timeout:.0f}s", error="timeout", seconds=dt)
    error = _first_error(err, corpus) or f"exit {rc}"
    verifier, prog = "", ""
    try:
        doc = json.loads(out) if out.strip() else None
    except json.JSONDecodeError:
        doc = None
    if doc:
        for p in doc.get("programs", []):
            if not p.get("loaded"):
                prog = p.get("name", "")
                verifier = verifier_last_line(p.get("log", ""))
                break
    m = re.match(r"loading program '([^']+)'", error)
    if not prog and m:
        prog = m.group(1)
    if verifier and (verifier in error or verifier.startswith("loading program")):
        verifier = ""
    section = info.sections.get(prog, "") if info else ""
    reason = f"{error} | verifier: {verifier}" if verifier else error
    return Outcome(False, reason=reason, error=error, verifier=verifier, program=prog,
                   section=section, seconds=dt)


def _first_error(stderr: str, corpus: Path | None) -> str:
    lines = [l for l in stderr.splitlines() if l.strip()]
    if any(l.startswith("Traceback") for l in lines):
        return "crash: " + _short(lines[-1], corpus)
    for l in lines:
        if l.startswith("sigbpf: error:"):
            text = l[len("sigbpf: error:"):].strip()
            return _short(re.sub(r"^\S+\.(o|elf|sbpf): ", "", text), corpus)
    return _short(lines[-1], corpus) if lines else ""


# --------------------------------------------------------------------------- causes

#: (cause, pattern over the loader's error line) -- first match wins.  The causes
#: name the loader feature (or the kernel condition) behind a failure.
CAUSES: tuple[tuple[str, str], ...] = (
    ("timeout", r"^timeout"),
    ("sigbpf crash (Python exception)", r"^crash:|^build: crash"),
    ("BTF: empty DATASEC (vlen == 0, e.g. a '.rodata' of string literals) that libbpf fixes "
     "up before BPF_BTF_LOAD; sigbpf refuses it", r"\.BTF: vlen == 0"),
    ("BTF the kernel refuses too; libbpf then loads without BTF ('BTF is optional, ignoring'), "
     "sigbpf refuses", r"\.BTF: "),
    ("program BTF refused by the kernel (BPF_BTF_LOAD)", r"BPF_BTF_LOAD"),
    ("kconfig externs (.kconfig)", r"kconfig|LINUX_KERNEL_VERSION|LINUX_HAS_|CONFIG_[A-Z]"),
    ("kfunc absent from this kernel (bpf_testmod / module not loaded)",
     r"kfunc call insn \d+: \S+ not found|func ksym\) '[^']*': not found"),
    ("kfunc refused by sigbpf's checks", r"is not a kfunc|kfunc call insn"),
    ("attach target absent from this kernel", r"failed to find kernel BTF type ID"),
    ("program type from section name", r"missing BPF prog type|failed to guess program type|"
                                        r"section name|unknown SEC|sec_def"),
    ("struct_ops", r"struct_ops|struct ops"),
    ("arena", r"arena|addr_space"),
    ("ksym (typed/untyped extern) not resolved", r"ksym|\(strong\): not resolved|kernel symbol"),
    ("map-in-map (inner map)", r"inner map|map.in.map|ARRAY_OF_MAPS|HASH_OF_MAPS|inner_map"),
    ("prog array / tail calls", r"PROG_ARRAY|prog.array|tail.call"),
    ("perf event array", r"PERF_EVENT_ARRAY|perf.event.array"),
    ("map creation refused by the kernel", r"BPF_MAP_CREATE|failed to create"),
    ("relocation (CO-RE, map or data)", r"CO-RE|core_relo|relocat|\brelo\b"),
    ("BTF", r"\bBTF\b"),
)

_ERRNO_WORDS = {
    "Operation not permitted": "EPERM", "Invalid argument": "EINVAL", "Permission denied": "EACCES",
    "Operation not supported": "ENOTSUPP", "strerror_r(524)": "ENOTSUPP",
    "No such file or directory": "ENOENT", "Argument list too long": "E2BIG",
    "No space left on device": "ENOSPC", "Bad address": "EFAULT", "No such process": "ESRCH",
}


def errno_of(text: str) -> str:
    m = re.search(r"\((E[A-Z0-9]+)\)", text)
    if m:
        return m.group(1)
    for words, name in _ERRNO_WORDS.items():
        if words in text:
            return name
    return ""


def classify(o: Outcome) -> str:
    """The group of a failure: which loader feature (or kernel condition) it is about."""
    if o.ok:
        return ""
    text = o.error
    kind = section_kind(o.section) if o.section else ""
    for cause, pat in CAUSES:
        if re.search(pat, text, 0 if cause.startswith("kconfig") else re.I):
            return cause
    if kind == "struct_ops" and not o.verifier:
        return "struct_ops"
    if kind == "freplace" or "attach program FD is not set" in text:
        return "freplace: needs its target program (attach_prog_fd, given at run time)"
    if o.verifier:
        if re.search(r"unknown#195896080|failed to resolve CO-RE relocation", o.verifier):
            # 195896080 = 0xbad2310, the call a failed CO-RE relocation is poisoned with
            return "CO-RE relocation fails: the target type is not in this kernel"
        return "verifier: " + _normalize(o.verifier)
    err = errno_of(text)
    if err == "EPERM" and kind in ATTACH_TARGET_SECTIONS:
        return (f"kernel EPERM before verification, no log ({kind}: this kernel refuses "
                f"fentry/fexit/fmod_ret/lsm/kprobe.multi/some iter loads, libbpf's too)")
    where = f" in {kind} program" if kind else ""
    if err:
        return f"kernel {err}{where}, no verifier log"
    return "other: " + _normalize(text)[:80]


def _normalize(text: str) -> str:
    text = re.sub(r"\bR\d+\b", "R#", text)
    text = re.sub(r"'[^']*'", "'…'", text)
    text = re.sub(r"\b\d+\b|0x[0-9a-f]+", "N", text)
    return text[:120]


# --------------------------------------------------------------------------- rows

@dataclass
class Row:
    name: str
    origin: str
    path: str
    libbpf: Outcome
    sigbpf: Outcome

    @property
    def gap(self) -> bool:
        return self.libbpf.ok and not self.sigbpf.ok


_STRUCT_OPS_LOCK = threading.Lock()


def _struct_ops_ids() -> set[int]:
    out = subprocess.run([BPFTOOL, "-j", "map", "show"], capture_output=True, text=True).stdout
    try:
        return {m["id"] for m in json.loads(out or "[]") if m.get("type") == "struct_ops"}
    except (json.JSONDecodeError, KeyError, TypeError):
        return set()


def _unregister_new(before: set[int]) -> None:
    for mid in sorted(_struct_ops_ids() - before):
        subprocess.run([BPFTOOL, "struct_ops", "unregister", "id", str(mid)], capture_output=True)


def measure(obj: dict, corpus: Path, timeout: float = DEFAULT_TIMEOUT, via_artifact: bool = False) -> Row:
    path = corpus / obj["path"]
    info = elf_info(path)
    has_struct_ops = any("struct_ops" in s for s in info.section_names)

    def both() -> tuple[Outcome, Outcome]:
        before = _struct_ops_ids() if has_struct_ops else set()
        lb = load_libbpf(path, timeout, corpus, info)
        if has_struct_ops:
            _unregister_new(before)
        sb = load_sigbpf(path, timeout, corpus, info, via_artifact)
        if has_struct_ops:
            _unregister_new(before)
        return lb, sb

    if has_struct_ops:
        with _STRUCT_OPS_LOCK:
            lb, sb = both()
    else:
        lb, sb = both()
    lb.cause, sb.cause = classify(lb), classify(sb)
    return Row(obj["name"], obj["origin"], obj["path"], lb, sb)


def select(objects: list[dict], subset: str | None) -> list[dict]:
    if not subset:
        return objects
    if subset.isdigit():
        n = int(subset)
        if n >= len(objects):
            return objects
        step = len(objects) / n
        return [objects[int(i * step)] for i in range(n)]
    patterns = build_corpus.parse_names(subset)
    chosen = [o for o in objects if build_corpus._matches(o["name"], patterns)]
    return chosen


def totals(rows: list[Row]) -> dict:
    return {
        "objects": len(rows),
        "libbpf_loads": sum(r.libbpf.ok for r in rows),
        "sigbpf_loads": sum(r.sigbpf.ok for r in rows),
        "both": sum(r.libbpf.ok and r.sigbpf.ok for r in rows),
        "libbpf_only": sum(r.libbpf.ok and not r.sigbpf.ok for r in rows),
        "sigbpf_only": sum(r.sigbpf.ok and not r.libbpf.ok for r in rows),
        "neither": sum(not r.libbpf.ok and not r.sigbpf.ok for r in rows),
    }


def grouped(rows: list[Row], pick, key) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = {}
    for r in rows:
        if pick(r):
            groups.setdefault(key(r), []).append(r)
    return dict(sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def _mark(o: Outcome) -> str:
    return "ok" if o.ok else "FAIL"


def row_line(r: Row, width: int = 44, reason_width: int = 160) -> str:
    why = ""
    if not r.libbpf.ok and not r.sigbpf.ok:
        why = f"libbpf: {r.libbpf.reason}"
        if r.sigbpf.cause != r.libbpf.cause:
            why += f"  || sigbpf: {r.sigbpf.reason}"
    elif not r.sigbpf.ok:
        why = f"[{r.sigbpf.cause}] {r.sigbpf.reason}"
    elif not r.libbpf.ok:
        why = f"libbpf: {r.libbpf.reason}" + (f"  || sigbpf {r.sigbpf.reason}" if r.sigbpf.reason else "")
    if len(why) > reason_width:
        why = why[:reason_width - 1] + "…"
    return f"{r.name:<{width}} {_mark(r.libbpf):<6} {_mark(r.sigbpf):<6} {why}"


def summary_text(rows: list[Row]) -> str:
    t = totals(rows)
    out = ["", "TOTALS",
           f"  objects       {t['objects']}",
           f"  libbpf loads  {t['libbpf_loads']}",
           f"  sigbpf loads  {t['sigbpf_loads']}",
           f"  both          {t['both']}",
           f"  libbpf-only   {t['libbpf_only']}   (the gap)",
           f"  sigbpf-only   {t['sigbpf_only']}",
           f"  neither       {t['neither']}"]
    gap = grouped(rows, lambda r: r.gap, lambda r: r.sigbpf.cause)
    if gap:
        out += ["", "LIBBPF-ONLY (the gap), grouped by cause of sigbpf's failure:"]
        for cause, rs in gap.items():
            out.append(f"  {cause}: {len(rs)}")
            for r in rs:
                out.append(f"    {r.name}: {r.sigbpf.reason[:200]}")
    only = [r for r in rows if r.sigbpf.ok and not r.libbpf.ok]
    if only:
        out += ["", "SIGBPF-ONLY (libbpf's reason):"]
        for cause, rs in grouped(only, lambda r: True, lambda r: r.libbpf.cause).items():
            out.append(f"  {cause}: {len(rs)}")
            for r in rs:
                note = f"  (sigbpf {r.sigbpf.reason})" if r.sigbpf.reason else ""
                out.append(f"    {r.name}: {r.libbpf.reason[:200]}{note}")
    differ = grouped(rows, lambda r: differs(r), lambda r: r.sigbpf.cause)
    if differ:
        out += ["", "NEITHER loads, and sigbpf fails for another reason than libbpf "
                    "(grouped by sigbpf's cause; libbpf's cause in brackets):"]
        for cause, rs in differ.items():
            out.append(f"  {cause}: {len(rs)}")
            for r in rs:
                out.append(f"    {r.name}: {r.sigbpf.reason[:160]}  [libbpf: {r.libbpf.cause}]")
    neither = grouped(rows, lambda r: not r.libbpf.ok and not r.sigbpf.ok, lambda r: r.libbpf.cause)
    if neither:
        out += ["", "NEITHER loads, grouped by libbpf's cause (count, examples):"]
        for cause, rs in neither.items():
            ex = ", ".join(r.name for r in rs[:4]) + (", …" if len(rs) > 4 else "")
            out.append(f"  {len(rs):4}  {cause}  ({ex})")
    return "\n".join(out)


def differs(r: Row) -> bool:
    """Both fail, for different causes (sigbpf may stop before the kernel does for libbpf)."""
    return not r.libbpf.ok and not r.sigbpf.ok and r.libbpf.cause != r.sigbpf.cause


def markdown(rows: list[Row], meta: dict) -> str:
    t = totals(rows)
    md = [f"# sigbpf vs libbpf on the corpus", "",
          f"Corpus `{meta['corpus']}`, kernel {meta['kernel']}, sigbpf {meta['sigbpf_commit']}, "
          f"{meta['date']}.", "",
          "| objects | libbpf loads | sigbpf loads | both | libbpf-only | sigbpf-only | neither |",
          "|---|---|---|---|---|---|---|",
          f"| {t['objects']} | {t['libbpf_loads']} | {t['sigbpf_loads']} | {t['both']} | "
          f"{t['libbpf_only']} | {t['sigbpf_only']} | {t['neither']} |", ""]
    gap = grouped(rows, lambda r: r.gap, lambda r: r.sigbpf.cause)
    if gap:
        md += ["## libbpf-only, by cause", ""]
        for cause, rs in gap.items():
            md.append(f"### {cause} ({len(rs)})")
            md.append("")
            for r in rs:
                md.append(f"- `{r.name}`: {_md(r.sigbpf.reason)}")
            md.append("")
    differ = grouped(rows, differs, lambda r: r.sigbpf.cause)
    if differ:
        md += ["## Neither loads, for different reasons (by sigbpf's cause)", ""]
        for cause, rs in differ.items():
            md.append(f"### {cause} ({len(rs)})")
            md.append("")
            for r in rs:
                md.append(f"- `{r.name}`: {_md(r.sigbpf.reason)} (libbpf: {_md(r.libbpf.cause)})")
            md.append("")
    md += ["## All objects", "", "| object | libbpf | sigbpf | reason |", "|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r.name):
        why = r.sigbpf.reason if not r.sigbpf.ok else ""
        if not r.libbpf.ok:
            why = f"libbpf: {r.libbpf.reason}" + (f"; sigbpf: {r.sigbpf.reason}" if not r.sigbpf.ok else "")
        md.append(f"| `{r.name}` | {_mark(r.libbpf)} | {_mark(r.sigbpf)} | {_md(why)} |")
    return "\n".join(md) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]


def sigbpf_commit() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "sigbpf"],
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except OSError:
        return "?"


def run_table(objects: list[dict], corpus: Path, jobs: int = 2, timeout: float = DEFAULT_TIMEOUT,
              via_artifact: bool = False, stream=sys.stdout) -> list[Row]:
    rows: list[Row] = []
    width = max([len(o["name"]) for o in objects] + [10]) + 1
    if stream:
        print(f"{'object':<{width}} {'libbpf':<6} {'sigbpf':<6} reason", file=stream, flush=True)
    with cf.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futs = [pool.submit(measure, o, corpus, timeout, via_artifact) for o in objects]
        for fut in cf.as_completed(futs):
            r = fut.result()
            rows.append(r)
            if stream:
                print(row_line(r, width), file=stream, flush=True)
    order = {o["name"]: i for i, o in enumerate(objects)}
    rows.sort(key=lambda r: order[r.name])
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subset", metavar="N|NAMES|@FILE",
                    help="N objects spread over the corpus, or names/globs (comma-separated), or "
                         f"@FILE (e.g. @{SUBSET_FILE.relative_to(ROOT)}, the CI subset)")
    ap.add_argument("--jobs", "-j", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per object and loader")
    ap.add_argument("--json", metavar="OUT", help="write rows and totals as JSON")
    ap.add_argument("--markdown", metavar="OUT", help="write a Markdown report")
    ap.add_argument("--via-artifact", action="store_true",
                    help="sigbpf build OBJ -o ART, then sigbpf load ART (default: sigbpf load OBJ)")
    ap.add_argument("--corpus", metavar="DIR", help="an existing corpus directory (default: build/reuse)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("table: warning: not root; bpf() and bpffs mounts will likely fail", file=sys.stderr)

    if args.corpus:
        corpus = Path(args.corpus)
    else:
        only = None
        if args.subset and not args.subset.isdigit():
            only = build_corpus.parse_names(args.subset)
        corpus = build_corpus.build(only)
    manifest = build_corpus.load_manifest(corpus)
    objects = select(manifest["objects"], args.subset)
    if not objects:
        print("table: error: no object matches", file=sys.stderr)
        return 2
    print(f"table: {len(objects)} objects from {corpus}, {args.jobs} jobs, timeout {args.timeout:.0f}s",
          flush=True)
    t0 = time.monotonic()
    rows = run_table(objects, corpus, args.jobs, args.timeout, args.via_artifact)
    elapsed = time.monotonic() - t0
    print(summary_text(rows))
    print(f"\n({elapsed:.0f}s)")
    meta = {"corpus": corpus.name, "kernel": platform.release(), "sigbpf_commit": sigbpf_commit(),
            "date": time.strftime("%Y-%m-%d %H:%M"), "seconds": round(elapsed, 1),
            "via_artifact": args.via_artifact}
    if args.json:
        gap = grouped(rows, lambda r: r.gap, lambda r: r.sigbpf.cause)
        doc = {**meta, "totals": totals(rows),
               "gap_by_cause": {c: [r.name for r in rs] for c, rs in gap.items()},
               "neither_differs_by_cause": {c: [r.name for r in rs] for c, rs in
                                            grouped(rows, differs, lambda r: r.sigbpf.cause).items()},
               "rows": [{"name": r.name, "origin": r.origin, "path": r.path,
                         "libbpf": asdict(r.libbpf), "sigbpf": asdict(r.sigbpf)} for r in rows]}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
