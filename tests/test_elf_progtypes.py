"""Program/attach/map type enums and libbpf's section table (sigbpf.elf.progtypes)."""

from __future__ import annotations

import pytest

from elf_libbpf import prog_type_by_name
from sigbpf.elf.btf_ext import CoreReloKind
from sigbpf.elf.maps import MapType
from sigbpf.elf.progtypes import SECTION_DEFS, AttachType, ProgFlags, ProgType, section_def


def _kernel_enum(name: str, prefix: str) -> dict[str, int]:
    from sigbpf.btf import BTF, Kind

    btf = BTF.load_vmlinux()
    enum = btf[btf.find_by_name_kind(name, Kind.ENUM)]
    return {v.name[len(prefix):]: v.value for v in enum.values
            if v.name.startswith(prefix) and not v.name.startswith("__")}


@pytest.mark.parametrize("enum, c_name, prefix", [
    (ProgType, "bpf_prog_type", "BPF_PROG_TYPE_"),
    (AttachType, "bpf_attach_type", "BPF_"),
    (MapType, "bpf_map_type", "BPF_MAP_TYPE_"),
    (CoreReloKind, "bpf_core_relo_kind", "BPF_CORE_"),
])
def test_enums_match_the_kernels_btf(kernel, enum, c_name, prefix):
    """Every member has the kernel's number (the running kernel's BTF is the UAPI here)."""
    numbers = _kernel_enum(c_name, prefix)
    for member in enum:
        assert numbers.get(member.name) == member.value, (c_name, member.name)
    # and nothing the kernel (6.18) has is missing, except deprecated aliases
    missing = {k for k in numbers if k not in enum.__members__ and not k.endswith("_DEPRECATED")}
    assert not missing, missing


def test_prog_flags_are_the_uapi_bits():
    # include/uapi/linux/bpf.h: BPF_F_SLEEPABLE (1U << 4), BPF_F_XDP_HAS_FRAGS (1U << 5)
    assert ProgFlags.SLEEPABLE == 16 and ProgFlags.XDP_HAS_FRAGS == 32


@pytest.mark.parametrize("section, ptype, atype, flags, attach_btf", [
    ("syscall", ProgType.SYSCALL, None, ProgFlags.SLEEPABLE, False),
    ("?syscall", ProgType.SYSCALL, None, ProgFlags.SLEEPABLE, False),
    ("tc", ProgType.SCHED_CLS, None, ProgFlags.NONE, False),
    ("classifier", ProgType.SCHED_CLS, None, ProgFlags.NONE, False),
    ("tc/ingress", ProgType.SCHED_CLS, AttachType.TCX_INGRESS, ProgFlags.NONE, False),
    ("xdp", ProgType.XDP, AttachType.XDP, ProgFlags.NONE, False),
    ("xdp.frags", ProgType.XDP, AttachType.XDP, ProgFlags.XDP_HAS_FRAGS, False),
    ("kprobe/do_unlinkat", ProgType.KPROBE, None, ProgFlags.NONE, False),
    ("kprobe", ProgType.KPROBE, None, ProgFlags.NONE, False),
    ("tracepoint/syscalls/sys_enter_openat", ProgType.TRACEPOINT, None, ProgFlags.NONE, False),
    ("raw_tp/sched_switch", ProgType.RAW_TRACEPOINT, None, ProgFlags.NONE, False),
    ("fentry/do_unlinkat", ProgType.TRACING, AttachType.TRACE_FENTRY, ProgFlags.NONE, True),
    ("fexit.s/do_unlinkat", ProgType.TRACING, AttachType.TRACE_FEXIT, ProgFlags.SLEEPABLE, True),
    ("lsm/file_open", ProgType.LSM, AttachType.LSM_MAC, ProgFlags.NONE, True),
    ("socket", ProgType.SOCKET_FILTER, None, ProgFlags.NONE, False),
    ("cgroup_skb/ingress", ProgType.CGROUP_SKB, AttachType.CGROUP_INET_INGRESS, ProgFlags.NONE, False),
    ("struct_ops/dummy", ProgType.STRUCT_OPS, None, ProgFlags.NONE, False),
    ("struct_ops.s/dummy", ProgType.STRUCT_OPS, None, ProgFlags.SLEEPABLE, False),
])
def test_section_def_rows(section, ptype, atype, flags, attach_btf):
    row = section_def(section)
    assert row is not None
    assert (row.prog_type, row.attach_type, row.prog_flags, row.needs_attach_btf) == \
        (ptype, atype, flags, attach_btf)


@pytest.mark.parametrize("section", ["kprobex", "syscall/x", "xdp_foo", ".text", "", "maps", "tcx"])
def test_section_def_matching_rules(section):
    """libbpf's sec_def_matches: "x+" needs exactly "x" or "x/...", plain rows match exactly."""
    assert section_def(section) is None


def _libbpf_samples() -> list[str]:
    """A section name for every row: the row itself, or row + "/target" for "+" and "/" rows."""
    out = []
    for row in SECTION_DEFS:
        pat = row.pattern
        if pat.endswith("+"):
            out += [pat[:-1], pat[:-1] + "/target"]
        elif pat.endswith("/"):
            out.append(pat + "target")
        else:
            out.append(pat)
    return out


def test_section_table_agrees_with_libbpf():
    """The installed libbpf (1.1) as reference: wherever it knows a section name, it agrees.

    libbpf 1.1 predates some rows (tcx/, netkit/, kprobe.session, the
    sleepable tracepoints, ...) and does not know those names at all.
    """
    checked = []
    for section in _libbpf_samples():
        ref = prog_type_by_name(section)
        if ref is None:
            continue
        row = section_def(section)
        assert row is not None, section
        assert (int(row.prog_type), int(row.attach_type or 0)) == ref, section
        checked.append(section)
    assert len(checked) >= 100, len(checked)
