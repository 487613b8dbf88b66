"""sigbpf.kernel.attr: every field offset and size equals the running kernel's BTF.

The reference is the kernel's own ``union bpf_attr`` / ``struct bpf_prog_info`` /
``struct bpf_map_info`` in /sys/kernel/btf/vmlinux, read through libbpf
(``btf__load_vmlinux_btf``, ``btf__find_by_name_kind``, ``btf__type_by_id``)
called with ctypes, not through sigbpf's own BTF code.
"""

from __future__ import annotations

import ctypes
import struct

import pytest

from libbpf_ref import BTF_KIND_STRUCT, BTF_KIND_UNION, LibbpfBTF, vmlinux

from sigbpf.kernel import attr as A


def _kind(kbtf: LibbpfBTF, tid: int) -> int:
    ptr = kbtf.lib.btf__type_by_id(kbtf.btf, tid)
    _, info, _ = struct.unpack("<III", ctypes.string_at(ptr, 12))
    return (info >> 24) & 0x1F


def flatten(kbtf: LibbpfBTF, tid: int, base_bits: int = 0, prefix: str = ""
            ) -> dict[str, tuple[int, int]]:
    """name -> (byte offset, byte size), anonymous structs/unions flattened and the fields of
    named ones as ``member.field`` (``kprobe_multi.syms`` in link_create), as attr.py names them."""
    out: dict[str, tuple[int, int]] = {}
    for name, mtype, bits in kbtf.members(tid):
        if not name:
            out.update(flatten(kbtf, mtype, base_bits + bits, prefix))
        elif _kind(kbtf, mtype) in (BTF_KIND_STRUCT, BTF_KIND_UNION):
            out.update(flatten(kbtf, mtype, base_bits + bits, f"{prefix}{name}."))
        else:
            out[prefix + name] = ((base_bits + bits) // 8, kbtf.size(mtype))
    return out


def attr_group(kbtf: LibbpfBTF, first_member: str) -> tuple[int, dict[str, tuple[int, int]]]:
    """The member of union bpf_attr that holds *first_member*: (its type id, flattened)."""
    union = kbtf.find("bpf_attr", BTF_KIND_UNION)
    for name, mtype, _ in kbtf.members(union):
        if name == first_member:
            return mtype, flatten(kbtf, mtype)
        if not name:
            flat = flatten(kbtf, mtype)
            if next(iter(flat)) == first_member:
                return mtype, flat
    raise AssertionError(f"no bpf_attr group starting with {first_member}")


@pytest.fixture(scope="module")
def kbtf(kernel) -> LibbpfBTF:
    return vmlinux()


GROUPS = {
    "map_create": "map_type",
    "map_elem": "map_fd",
    "prog_load": "prog_type",
    "test": "test",
    "info": "info",
    "btf_load": "btf",
    "obj_pin": "pathname",
    "raw_tracepoint": "raw_tracepoint",
    "link_create": "link_create",
    "link_update": "link_update",
    "link_detach": "link_detach",
    "get_id": "start_id",
}


@pytest.mark.parametrize("layout_name", sorted(A.LAYOUTS))
def test_layout_matches_kernel_btf(kbtf: LibbpfBTF, layout_name: str) -> None:
    layout = A.LAYOUTS[layout_name]
    if layout_name in GROUPS:
        tid, flat = attr_group(kbtf, GROUPS[layout_name])
    else:
        tid = kbtf.find(layout_name, BTF_KIND_STRUCT)
        flat = flatten(kbtf, tid)
    struct_size = kbtf.size(tid)
    # Every field sigbpf writes is where the kernel has it, with the kernel's size.
    for fname, field in layout.fields.items():
        assert fname in flat, f"{layout_name}.{fname} not in kernel BTF"
        assert (field.offset, field.size) == flat[fname], (layout_name, fname, flat[fname])
    # And sigbpf knows every field of the kernel's struct (none silently missing).
    missing = set(flat) - set(layout.fields)
    if layout_name == "map_elem":
        missing -= {"next_key"}       # union with value
    if layout_name == "prog_load":
        missing -= {"attach_btf_obj_fd"}  # union with attach_prog_fd
    assert not missing, f"{layout_name}: kernel fields sigbpf lacks: {sorted(missing)}"
    # The size passed to bpf() covers the struct (rounded to its 8-byte alignment).
    assert layout.size == (struct_size + 7) // 8 * 8, (layout.size, struct_size)


def test_prog_load_size_is_168(kbtf: LibbpfBTF) -> None:
    """KERNEL-FACTS.md: BPF_PROG_LOAD's attr ends at 168 with keyring_id (6.18)."""
    assert A.PROG_LOAD.size == 168
    assert A.PROG_LOAD.fields["keyring_id"].offset == 164


def test_pack_and_get_roundtrip() -> None:
    buf = A.PROG_LOAD.pack(prog_type=31, insn_cnt=2, prog_name=b"abc", keyring_id=-3)
    assert len(bytes(buf)) == 168
    assert A.PROG_LOAD.get(buf, "prog_type") == 31
    assert A.PROG_LOAD.get(buf, "keyring_id") == -3
    assert A.PROG_LOAD.get(buf, "prog_name") == b"abc" + bytes(13)
    assert bytes(buf)[164:168] == struct.pack("<i", -3)


def test_link_info_head_matches_kernel_btf(kbtf: LibbpfBTF) -> None:
    """struct bpf_link_info: sigbpf reads only its head (type, id, prog_id), before the union."""
    flat = flatten(kbtf, kbtf.find("bpf_link_info", BTF_KIND_STRUCT))
    for fname, field in A.LINK_INFO_HEAD.fields.items():
        assert (field.offset, field.size) == flat[fname], fname
    assert min(off for name, (off, _) in flat.items() if "." in name) >= A.LINK_INFO_HEAD.size

