"""sigbpf.kernel.attr: every field offset and size equals the running kernel's BTF.

The reference is the kernel's own ``union bpf_attr`` / ``struct bpf_prog_info`` /
``struct bpf_map_info`` in /sys/kernel/btf/vmlinux, read through libbpf
(``btf__load_vmlinux_btf``, ``btf__find_by_name_kind``, ``btf__type_by_id``)
called with ctypes, not through sigbpf's own BTF code.
"""

from __future__ import annotations

import struct

import pytest

from libbpf_ref import BTF_KIND_STRUCT, BTF_KIND_UNION, LibbpfBTF, vmlinux

from sigbpf.kernel import attr as A


def attr_group(kbtf: LibbpfBTF, first_member: str) -> tuple[int, dict[str, tuple[int, int]]]:
    """The member of union bpf_attr that holds *first_member*: (its type id, flattened)."""
    union = kbtf.find("bpf_attr", BTF_KIND_UNION)
    for name, mtype, _ in kbtf.members(union):
        if name == first_member:
            return mtype, kbtf.flatten(mtype)
        if not name:
            flat = kbtf.flatten(mtype)
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
}


@pytest.mark.parametrize("layout_name", sorted(A.LAYOUTS))
def test_layout_matches_kernel_btf(kbtf: LibbpfBTF, layout_name: str) -> None:
    layout = A.LAYOUTS[layout_name]
    if layout_name in GROUPS:
        tid, flat = attr_group(kbtf, GROUPS[layout_name])
    else:
        tid = kbtf.find(layout_name, BTF_KIND_STRUCT)
        flat = kbtf.flatten(tid)
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
