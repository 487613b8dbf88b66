"""sigbpf.btf.values: BTF-typed bytes to Python values and back (spec: no kernel).

The types come from tests/progs/events_maps.c as clang compiles it (the
program BTF of its artifact, what the kernel is given), plus hand-built BTF
for what clang does not emit here (kind_flag 0 bitfields, big-endian, floats,
bools, ENUM64).  tests/test_kernel_mapview.py checks the same layouts against
what a BPF program writes and against bpftool's decoding.
"""

from __future__ import annotations

import struct

import pytest

from sigbpf.btf import BTF, BTFBuilder, Kind
from sigbpf.btf import types as T
from sigbpf.btf.kinds import IntEncoding
from sigbpf.btf.values import decode, encode, is_byte_array, type_name
from sigbpf.errors import BTFError

PVAL = {
    "count": 1099, "delta": -5, "kind": 5, "level": 17, "small": -3, "color": -3,
    "un": {"u": 0xFFFFFFFF, "s": -1}, "lo": 0x1234, "hi": 0xABCD, "name": b"hello\0",
    "pts": [{"x": 1, "y": 2}, {"x": -3, "y": -4}], "ptr": 0,
}


@pytest.fixture(scope="module")
def btf(bpf_object) -> BTF:
    from sigbpf.artifact.build import build_artifact

    return BTF.parse(build_artifact(bpf_object("events_maps")).btf)


def tid(btf: BTF, name: str, kind: Kind = Kind.STRUCT) -> int:
    return btf.find_by_name_kind(name, kind)


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and text, text
    return text


def test_struct_round_trip_and_layout(btf) -> None:
    pval = tid(btf, "pval")
    raw = encode(btf, pval, PVAL)
    assert len(raw) == 56
    # The layout clang chose (bpftool map dump shows the same bytes): count, delta, then
    # kind:3|level:5 in one byte (5 | 17 << 3), small:4 (-3 -> 0xd), color, the union, lo/hi.
    assert struct.unpack_from("<QhBB", raw) == (1099, -5, 5 | 17 << 3, 0xD)
    assert struct.unpack_from("<iIHH6s", raw, 12) == (-3, 0xFFFFFFFF, 0x1234, 0xABCD, b"hello\0")
    assert decode(btf, pval, raw) == PVAL


def test_partial_dict_zero_fills_and_base_keeps(btf) -> None:
    pval = tid(btf, "pval")
    assert decode(btf, pval, encode(btf, pval, {"level": 31}))["kind"] == 0
    base = encode(btf, pval, PVAL)
    merged = decode(btf, pval, encode(btf, pval, {"level": 1, "pts": [{"y": 9}]}, base=base))
    assert merged == {**PVAL, "level": 1, "pts": [{"x": 1, "y": 9}, {"x": -3, "y": -4}]}


def test_key_struct_with_byte_array(btf) -> None:
    pkey = tid(btf, "pkey")
    raw = encode(btf, pkey, {"id": 7, "port": 8080, "tag": "xy"})
    assert raw == struct.pack("<IH2s", 7, 8080, b"xy")
    assert decode(btf, pkey, raw) == {"id": 7, "port": 8080, "tag": b"xy"}
    assert encode(btf, pkey, {"id": 7, "tag": b"x"}) == struct.pack("<IH2s", 7, 0, b"x\0")
    assert is_byte_array(btf, btf[btf.find_by_name_kind("pkey", Kind.STRUCT)].members[2].type)


def test_enum_by_name_and_number(btf) -> None:
    pval = tid(btf, "pval")
    assert decode(btf, pval, encode(btf, pval, {"color": "BLUE"}))["color"] == -3
    assert decode(btf, pval, encode(btf, pval, {"color": 2}))["color"] == 2


def test_raw_bytes_pass_through(btf) -> None:
    point = tid(btf, "point")
    assert encode(btf, point, b"\x01\0\0\0\xff\xff\xff\xff") == b"\x01\0\0\0\xff\xff\xff\xff"
    assert decode(btf, point, b"\x01\0\0\0\xff\xff\xff\xff") == {"x": 1, "y": -1}


def test_datasec_by_variable_name(btf) -> None:
    data = tid(btf, ".data", Kind.DATASEC)
    value = {"counter": 6, "neg": -8, "label": b"abc\0\0\0\0\0", "origin": {"x": 1, "y": -2}}
    raw = encode(btf, data, value)
    assert raw == struct.pack("<Qi8s4xii", 6, -8, b"abc", 1, -2)
    assert decode(btf, data, raw) == value
    changed = decode(btf, data, encode(btf, data, {"neg": 3}, base=raw))
    assert changed == {**value, "neg": 3}


@pytest.mark.parametrize("value, needle", [
    ({"nope": 1}, "no field 'nope' in struct pval (count, delta, kind"),
    ({"kind": 8}, "value.kind: value 8 out of range for 3-bit bitfield (0..7)"),
    ({"small": 8}, "value.small: value 8 out of range for 4-bit bitfield (-8..7)"),
    ({"delta": 40000}, "value.delta: value 40000 out of range for signed 16-bit __s16"),
    ({"count": -1}, "value.count: value -1 out of range for unsigned 64-bit __u64"),
    ({"count": "1"}, "value.count: expected an int for __u64, got '1'"),
    ({"name": b"toolong"}, "value.name: 7 bytes do not fit in char[6]"),
    ({"pts": [{}, {}, {}]}, "value.pts: 3 elements do not fit in struct point[2]"),
    ({"pts": [{"z": 1}]}, "value.pts[0].z: no field 'z' in struct point (x, y)"),
    ({"color": "PURPLE"}, "'PURPLE' is not an enumerator of enum color (RED, GREEN, BLUE)"),
    ({"un": 5}, "value.un: expected a dict for union (anon), got 5"),
    (b"\0" * 3, "value: 3 bytes given, struct pval is 56 bytes"),
])
def test_errors_are_one_line_with_path_and_type(btf, value, needle) -> None:
    with pytest.raises(BTFError) as err:
        encode(btf, tid(btf, "pval"), value)
    text = one_line(err)
    assert needle in text, text
    assert err.value.type_id is not None and text.startswith(f"type [{err.value.type_id}]: ")


def test_decode_wrong_size(btf) -> None:
    with pytest.raises(BTFError) as err:
        decode(btf, tid(btf, "pkey"), b"\0" * 7, what="map 'hash' key")
    assert "map 'hash' key: 7 bytes, struct pkey is 8 bytes" in one_line(err)


def test_cannot_decode_a_function(btf) -> None:
    func = btf.find_by_name_kind("fill_maps", Kind.FUNC)
    with pytest.raises(BTFError) as err:
        encode(btf, btf[func].type, 0)
    assert "cannot resolve the size" in one_line(err)


def _hand_btf(order: str) -> tuple[BTF, dict[str, int]]:
    b = BTFBuilder(byte_order=order)
    u8 = b.add(T.Int("unsigned char", 1, IntEncoding.NONE, 0, 8))
    u32 = b.add(T.Int("unsigned int", 4, IntEncoding.NONE, 0, 32))
    s32 = b.add(T.Int("int", 4, IntEncoding.SIGNED, 0, 32))
    boolean = b.add(T.Int("_Bool", 1, IntEncoding.BOOL, 0, 8))
    u3 = b.add(T.Int("u3", 1, IntEncoding.NONE, 0, 3))  # kind_flag 0: the width is the INT's
    s5 = b.add(T.Int("s5", 1, IntEncoding.SIGNED, 0, 5))
    u24 = b.add(T.Int("u24", 4, IntEncoding.NONE, 0, 24))
    dbl = b.add(T.Float("double", 8))
    e64 = b.add(T.Enum64("big", 8, (T.EnumValue("HUGE", 1 << 40),), False))
    ptr = b.add(T.Ptr(u32))
    ids = {"u8": u8, "u32": u32}
    ids["old_bits"] = b.add(T.Struct("old_bits", 4, (
        T.Member("a", u3, 0), T.Member("b", s5, 3), T.Member("c", u24, 8)), False))
    ids["new_bits"] = b.add(T.Struct("new_bits", 4, (
        T.Member("a", u32, 0, 3), T.Member("b", s32, 3, 5), T.Member("c", u32, 8, 24)), True))
    ids["misc"] = b.add(T.Struct("misc", 32, (
        T.Member("flag", boolean, 0), T.Member("d", dbl, 64), T.Member("e", e64, 128),
        T.Member("p", ptr, 192)), False))
    return b.build(), ids


@pytest.mark.parametrize("order", ["little", "big"])
def test_bitfields_both_encodings_both_orders(order) -> None:
    btf, ids = _hand_btf(order)
    for name in ("old_bits", "new_bits"):
        value = {"a": 5, "b": -3, "c": 200}
        raw = encode(btf, ids[name], value)
        assert decode(btf, ids[name], raw) == value
    raw = encode(btf, ids["new_bits"], {"a": 5, "b": -3, "c": 200})
    # a:3 = 5, b:5 = -3 (0b11101), c:24 = 200: little-endian numbers bits from the low end,
    # big-endian from the high end.
    word = 5 | 0b11101 << 3 | 200 << 8
    if order == "little":
        assert raw == word.to_bytes(4, "little")
    else:
        assert raw == (5 << 29 | 0b11101 << 24 | 200).to_bytes(4, "big")
    assert type_name(btf, ids["new_bits"]) == "struct new_bits"


def test_float_bool_enum64_pointer() -> None:
    btf, ids = _hand_btf("little")
    value = {"flag": True, "d": 2.5, "e": 1 << 40, "p": 0xFFFF888812345678}
    raw = encode(btf, ids["misc"], value)
    assert raw == struct.pack("<?7xdQQ", True, 2.5, 1 << 40, 0xFFFF888812345678)
    assert decode(btf, ids["misc"], raw) == value
    assert decode(btf, ids["misc"], encode(btf, ids["misc"], {"e": "HUGE"}))["e"] == 1 << 40
    with pytest.raises(BTFError) as err:
        encode(btf, ids["misc"], {"p": -1})
    assert "value.p: value -1 out of range for pointer" in one_line(err)
    with pytest.raises(BTFError) as err:
        encode(btf, ids["misc"], {"flag": 2})
    assert "value.flag: value 2 out of range" in one_line(err)
