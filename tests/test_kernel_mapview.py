"""MapView on real maps: what a BPF program wrote, read in Python, and written back.

tests/progs/events_maps.c is loaded with sigbpf's loader and its syscall
program run with BPF_PROG_RUN: it fills a hash map (struct key, struct value
with bitfields, an enum, a union, an anonymous struct, char and struct arrays,
a pointer), an array map, a per-CPU array and the global data sections.  The
values read back through BTF are the ones the C code wrote; bpftool's own
BTF-decoded dump of the same maps agrees; updates, deletes and iteration work
on the kernel's maps; mistakes are one-line sigbpf errors.
"""

from __future__ import annotations

import errno
import json
import struct
import subprocess

import pytest

from conftest import BPFTOOL

from sigbpf.errors import BTFError, KernelError, SigbpfError
from sigbpf.kernel.mapview import EXIST, NOEXIST, MapKeyError, MapView

pytestmark = pytest.mark.usefixtures("kernel")

KEY = {"id": 7, "port": 8080, "tag": b"xy"}
WRITTEN = {
    "count": 1099, "delta": -5, "kind": 5, "level": 17, "small": -3, "color": -3,
    "un": {"u": 0xFFFFFFFF, "s": -1}, "lo": 0x1234, "hi": 0xABCD, "name": b"hello\0",
    "pts": [{"x": 1, "y": 2}, {"x": -3, "y": -4}], "ptr": 0,
}


def map_views(loaded) -> dict[str, MapView]:
    """name -> MapView: ``LoadedArtifact.maps`` when the loader has it, else built here the
    same way (fd i of artifact.maps[i], program BTF)."""
    maps = getattr(loaded, "maps", None)
    if maps:
        return dict(maps)
    from sigbpf.btf import BTF

    btf = BTF.parse(loaded.artifact.btf) if loaded.artifact.btf else None
    return {m.name: MapView(loaded.map_fds[i], m, btf) for i, m in enumerate(loaded.artifact.maps)}


@pytest.fixture
def loaded(bpf_object):
    from sigbpf.artifact.build import build_artifact
    from sigbpf.kernel.loader import load_artifact
    from sigbpf.kernel.run import run_program

    with load_artifact(build_artifact(bpf_object("events_maps"))) as la:
        assert la.report.ok, la.report.programs
        assert run_program(la.prog_fds["fill_maps"]).retval == 0
        yield la


@pytest.fixture
def maps(loaded) -> dict[str, MapView]:
    return map_views(loaded)


def by_section(maps: dict[str, MapView], section: str) -> MapView:
    (view,) = [v for v in maps.values() if v.spec.section == section]
    return view


def test_hash_with_struct_key_and_value(maps) -> None:
    h = maps["hash"]
    assert h[KEY] == WRITTEN
    assert list(h.keys()) == [KEY]
    assert list(h.items()) == [(KEY, WRITTEN)]
    assert len(h) == 1 and KEY in h
    assert h.get({**KEY, "id": 8}, "absent") == "absent"
    raw_key = struct.pack("<IH2s", 7, 8080, b"xy")
    assert h.lookup(raw_key) == WRITTEN  # a key can be given as bytes too
    assert h.lookup_bytes(KEY)[:8] == struct.pack("<Q", 1099)


def test_hash_update_delete_iterate(maps) -> None:
    h = maps["hash"]
    for i in range(5):
        h[{"id": i, "port": 1}] = {"count": i * 10, "name": f"n{i}", "color": "GREEN"}
    assert len(h) == 6
    got = {k["id"]: v for k, v in h.items() if k["port"] == 1}
    assert sorted(got) == list(range(5))
    assert got[3]["count"] == 30 and got[3]["name"] == b"n3\0\0\0\0" and got[3]["color"] == 2
    with pytest.raises(KernelError) as err:
        h.update({"id": 0, "port": 1}, {}, NOEXIST)
    assert err.value.errno == errno.EEXIST
    h.update({"id": 0, "port": 1}, {"count": 1}, EXIST)
    assert h[{"id": 0, "port": 1}]["count"] == 1
    for key in h:  # deleting the key iteration stands on is safe
        if key["port"] == 1:
            del h[key]
    assert list(h) == [KEY]
    with pytest.raises(MapKeyError) as miss:
        del h[{"id": 0, "port": 1}]
    assert isinstance(miss.value, KeyError) and "map 'hash': no key" in str(miss.value)
    with pytest.raises(KeyError):
        h[{"id": 99}]


def test_array(maps) -> None:
    a = maps["array"]
    assert len(a) == 4
    assert list(a.keys()) == [0, 1, 2, 3]
    assert a[1] == WRITTEN
    assert a[0]["count"] == 0 and a[0]["name"] == b"\0" * 6
    a[2] = {**WRITTEN, "count": 5, "level": 31}
    assert a[2] == {**WRITTEN, "count": 5, "level": 31}
    with pytest.raises(KernelError):  # array elements cannot be deleted
        del a[2]


def test_percpu_array(maps) -> None:
    from sigbpf.kernel.cpus import possible_cpus

    p = maps["pcpu"]
    n = possible_cpus()
    values = p[0]
    assert len(values) == n and sum(values) == 1  # the program ran once, on one CPU
    p[1] = list(range(100, 100 + n))
    assert p[1] == list(range(100, 100 + n))
    assert len(p.lookup_bytes(1)) == 8 * n
    with pytest.raises(BTFError) as err:
        p[1] = 5
    assert f"a per-CPU map takes a list of {n} values" in str(err.value)


def test_global_data(maps) -> None:
    data, rodata, bss = (by_section(maps, s) for s in (".data", ".rodata", ".bss"))
    assert data[0] == {"counter": 6, "neg": -8, "label": b"abc" + b"\0" * 5,
                       "origin": {"x": 1, "y": -2}}
    assert bss[0] == {"hits": 12, "last": {"x": 1, "y": -2}}
    assert rodata[0] == {"limit": 99}
    assert list(data.items()) == [(0, data[0])]
    data[0] = {"counter": 41}  # a dict naming some variables changes only those
    assert data[0] == {"counter": 41, "neg": -8, "label": b"abc" + b"\0" * 5,
                       "origin": {"x": 1, "y": -2}}
    with pytest.raises(KernelError) as err:  # .rodata is frozen
        rodata[0] = {"limit": 1}
    assert err.value.errno == errno.EPERM and "map '" in str(err.value)


def test_program_sees_python_writes(loaded, maps) -> None:
    """What Python writes is what the program reads: counter += 1, hits = counter * 2."""
    from sigbpf.kernel.run import run_program

    data, bss = by_section(maps, ".data"), by_section(maps, ".bss")
    data[0] = {"counter": 1000, "origin": {"x": 7, "y": 8}}
    run_program(loaded.prog_fds["fill_maps"])
    assert data[0]["counter"] == 1001
    assert bss[0] == {"hits": 2002, "last": {"x": 7, "y": 8}}


def test_map_without_btf(maps) -> None:
    m = maps["nobtf"]
    m[5] = 0x1122334455667788  # ints fill key_size / value_size bytes, little-endian
    m[b"\x06\0\0\0"] = b"abcdefgh"
    assert dict(m.items()) == {b"\x05\0\0\0": struct.pack("<Q", 0x1122334455667788),
                               b"\x06\0\0\0": b"abcdefgh"}
    assert m[6] == b"abcdefgh"


@pytest.mark.parametrize("call, needle", [
    (lambda m: m["hash"].lookup(b"\0" * 3),
     "map 'hash' key: 3 bytes given, the map's key_size is 8"),
    (lambda m: m["hash"].update(KEY, {"nope": 1}),
     "map 'hash' value.nope: no field 'nope' in struct pval"),
    (lambda m: m["hash"].update(KEY, {"kind": 9}),
     "map 'hash' value.kind: value 9 out of range for 3-bit bitfield (0..7)"),
    (lambda m: m["hash"].update({"id": -1}, {}),
     "map 'hash' key.id: value -1 out of range for unsigned 32-bit __u32"),
    (lambda m: m["array"].update(2**32, {}),
     "map 'array' key: value 4294967296 out of range for unsigned 32-bit __u32"),
    (lambda m: m["nobtf"].update(1, "text"),
     "map 'nobtf' value: expected bytes of 8 or an int"),
])
def test_errors_are_one_line_sigbpf_errors(maps, call, needle) -> None:
    with pytest.raises(SigbpfError) as err:
        call(maps)
    text = str(err.value)
    assert "\n" not in text and needle in text, text


def _normalize_bpftool(value, ours):
    """bpftool's formatted JSON into MapView's terms: char arrays are strings there, enums
    names, bitfields unsigned hex strings, anonymous members nested under ""."""
    if isinstance(ours, dict) and isinstance(value, dict):
        flat = {}
        for k, v in value.items():
            if k == "":
                flat.update(v)
            else:
                flat[k] = v
        return {k: _normalize_bpftool(flat[k], ours[k]) for k in ours}
    if isinstance(ours, bytes):
        if isinstance(value, str):
            return value.encode().ljust(len(ours), b"\0")
        return bytes(value)
    if isinstance(ours, list):
        return [_normalize_bpftool(v, o) for v, o in zip(value, ours)]
    if isinstance(value, str) and value.startswith("0x"):  # a bitfield, shown unsigned
        bits = int(value, 16)  # a negative field's top bit is set: bit_length is its width
        return ours if ours == bits or ours & ((1 << bits.bit_length()) - 1) == bits else bits
    if isinstance(value, str):  # an enumerator's name
        return {"RED": 1, "GREEN": 2, "BLUE": -3}[value]
    return value


def test_same_values_as_bpftool(maps) -> None:
    """bpftool decodes the maps with the same BTF (from the kernel): the same values."""
    from sigbpf.kernel.info import map_info

    for name in ("hash", "array"):
        view = maps[name]
        dump = json.loads(subprocess.run(
            [BPFTOOL, "-j", "map", "dump", "id", str(map_info(view.fd).id)],
            check=True, capture_output=True, text=True).stdout)
        ours = list(view.items())
        assert len(dump) == len(ours)
        for entry, (key, value) in zip(dump, ours):
            assert bytes(int(b, 16) for b in entry["key"]) == view.encode_key(key)
            assert bytes(int(b, 16) for b in entry["value"]) == view.encode_value(value)
            assert _normalize_bpftool(entry["formatted"]["value"], value) == value
    data = by_section(maps, ".data")
    dump = json.loads(subprocess.run(
        [BPFTOOL, "-j", "map", "dump", "id", str(map_info(data.fd).id)],
        check=True, capture_output=True, text=True).stdout)
    (section,) = dump[0]["formatted"]["value"].values()
    merged = {k: v for item in section for k, v in item.items()}
    assert _normalize_bpftool(merged, data[0]) == data[0]
