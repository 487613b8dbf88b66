"""Validation of malformed BTF: sigbpf's checks against the kernel's own (BPF_BTF_LOAD).

Each case is a small hand-made BTF blob with one defect.  sigbpf must reject
it with a one-line BTFError naming the type id and byte offset, and with the
kernel's wording (the phrase is checked in the kernel's own BTF log from
BPF_BTF_LOAD on this machine, so the rule and message follow the kernel).
Valid shapes next to the defects (a self-referencing list, a pointer to a
forward declaration) must be accepted by both.  A fuzz test then feeds
thousands of mutated real BTF blobs and allows nothing but BTFError.
"""

from __future__ import annotations

import random
import struct

import pytest

from sigbpf.btf import BTF, BTFBuilder, IntEncoding, Kind
from sigbpf.btf import types as T
from sigbpf.btf.marshal import assemble
from sigbpf.errors import BTFError, KernelError, SigbpfError

INT_INFO = Kind.INT << 24
INT32 = [0, 0, INT_INFO, 4, 32]  # placeholder shape (name_off patched below)


def info(kind: Kind, vlen: int = 0, kflag: int = 0) -> int:
    return (kflag << 31) | (int(kind) << 24) | vlen


def raw(words: list[int], strings: bytes = b"\0int\0a\0b\0") -> bytes:
    """Raw BTF from record words; string offsets: int=1, a=5, b=7."""
    from array import array

    return assemble(array("I", words), strings)


def int_rec(name: int = 1, size: int = 4, data: int = 32) -> list[int]:
    return [name, info(Kind.INT), size, data]


def patch_header(data: bytes, **fields: int) -> bytes:
    names = ["magic", "version", "flags", "hdr_len", "type_off", "type_len", "str_off", "str_len"]
    values = dict(zip(names, struct.unpack_from("<HBBIIIII", data)))
    values.update(fields)
    return struct.pack("<HBBIIIII", *(values[n] for n in names)) + data[24:]


GOOD = raw(int_rec())


def _chain(kind: Kind, n: int) -> list[int]:
    """Types 1..n of *kind*, each referring to the next (a forward reference), then an int."""
    words: list[int] = []
    for t in range(1, n + 1):
        if kind == Kind.ARRAY:
            words += [0, info(kind), 0, t + 1, n + 1, 1]
        elif kind == Kind.STRUCT:
            words += [5, info(kind, 1), 4, 7, t + 1, 0]
        else:
            words += [5 if kind == Kind.TYPEDEF else 0, info(kind), t + 1]
    return words + int_rec()

# (id, blob, phrase in both logs, type id sigbpf must name or None)
CASES = [
    ("bad-magic", b"\x9f\xea" + GOOD[2:], "Invalid magic", None),
    ("version", patch_header(GOOD, version=2), "Unsupported version", None),
    ("flags", patch_header(GOOD, flags=1), "Unsupported flags", None),
    ("hdr-too-long", patch_header(GOOD, hdr_len=64), "btf_header not found", None),
    ("hdr-unknown-fields", patch_header(GOOD[:24] + b"\1\0\0\0" + GOOD[24:], hdr_len=28),
     "Unsupported btf_header", None),
    ("section-overlap", patch_header(GOOD, str_off=12, str_len=len(GOOD) - 24 - 12), "Section overlap found",
     None),
    ("section-gap", patch_header(GOOD + b"\0" * 4, str_off=20), "Unsupported section found", None),
    ("section-too-long", patch_header(GOOD, str_len=100), "Total section length too long", None),
    ("strings-not-at-end",
     patch_header(GOOD[:24] + GOOD[40:] + GOOD[24:40], type_off=len(GOOD) - 40, str_off=0),
     "String section is not at the end", None),
    ("strings-no-nul-end", raw(int_rec(), b"\0int\0a\0b"), "Invalid string section", None),
    ("strings-no-nul-start", raw(int_rec(name=0), b"xint\0"), "Invalid string section", None),
    ("truncated-header", raw(int_rec() + [0, info(Kind.PTR)]), "meta_left:8 meta_needed:12", 2),
    ("truncated-struct", raw(int_rec() + [5, info(Kind.STRUCT, 2), 8, 7, 1, 0]), "meta_left:12 meta_needed:24",
     2),
    ("kind-zero", raw(int_rec() + [0, 0, 0]), "Invalid kind:0", 2),
    ("kind-20", raw(int_rec() + [0, 20 << 24, 0]), "Invalid kind:20", 2),
    ("info-reserved-bits", raw(int_rec() + [0, info(Kind.PTR) | 0x10000, 1]), "Invalid btf_info:2010000", 2),
    ("name-offset", raw(int_rec(name=99)), "Invalid name_offset:99", 1),
    ("int-vlen", raw([1, info(Kind.INT, 1), 4, 32]), "vlen != 0", 1),
    ("int-bits", raw(int_rec(data=33)), "nr_bits exceeds type_size", 1),
    ("ptr-kind-flag", raw(int_rec() + [0, info(Kind.PTR, 0, 1), 1]), "Invalid btf_info kind_flag", 2),
    ("ptr-named", raw(int_rec() + [5, info(Kind.PTR), 1]), "Invalid name", 2),
    ("typedef-unnamed", raw(int_rec() + [0, info(Kind.TYPEDEF), 1]), "Invalid name", 2),
    ("ptr-type-out-of-range", raw(int_rec() + [0, info(Kind.PTR), 9]), "Invalid type_id", 2),
    ("typedef-loop", raw([5, info(Kind.TYPEDEF), 2, 0, info(Kind.CONST), 1]), "Loop detected", 1),
    ("ptr-loop", raw([0, info(Kind.PTR), 2, 0, info(Kind.VOLATILE), 1]), "Loop detected", 1),
    ("struct-by-value-loop",
     raw(int_rec() + [5, info(Kind.STRUCT, 1), 8, 7, 3, 0, 0, info(Kind.ARRAY), 0, 2, 1, 1]), "Loop detected",
     2),
    ("func-not-proto", raw(int_rec() + [5, info(Kind.FUNC), 1]), "Invalid type_id", 2),
    ("proto-void-arg", raw(int_rec() + [0, info(Kind.FUNC_PROTO, 2), 1, 5, 0, 7, 1]), "Invalid arg#1", 2),
    ("union-member-offset", raw(int_rec() + [5, info(Kind.UNION, 1), 4, 7, 1, 8]), "Invalid member bits_offset",
     2),
    ("enum-size", raw([5, info(Kind.ENUM, 1), 3, 7, 1]), "Unexpected size", 1),
    ("array-index-not-int",
     raw(int_rec() + [5, info(Kind.STRUCT), 0, 0, info(Kind.ARRAY), 0, 1, 2, 4]), "Invalid index", 3),
    ("bad-identifier", raw(int_rec() + [5, info(Kind.STRUCT), 4], b"\0int\0a-b\0"), "Invalid name", 2),
    ("fwd-unnamed", raw([0, info(Kind.FWD), 0]), "Invalid name", 1),
    # The resolver's stack holds 32 types: 33 forward references in a row are one too many.
    ("depth-33-consts", raw(_chain(Kind.CONST, 33)), "Exceeded max resolving depth:32", 1),
    ("depth-33-pointers", raw(_chain(Kind.PTR, 33)), "Exceeded max resolving depth:32", 1),
    ("depth-33-arrays", raw(_chain(Kind.ARRAY, 33)), "Exceeded max resolving depth:32", 1),
    ("depth-3000-structs", raw(_chain(Kind.STRUCT, 3000)), "Exceeded max resolving depth:32", 1),
    # A loop is reported at the type the walk started from, not where it closes.
    ("loop-named-at-walk-root", raw([0, info(Kind.PTR), 2, 0, info(Kind.CONST), 3, 0, info(Kind.CONST), 2]),
     "Loop detected", 1),
]

VALID = [
    ("list-via-pointer",  # struct a { struct a *b; int x; }
     raw(int_rec() + [5, info(Kind.STRUCT, 2), 12, 7, 3, 0, 1, 1, 64, 0, info(Kind.PTR), 2])),
    ("pointer-to-fwd", raw([5, info(Kind.FWD), 0, 0, info(Kind.PTR), 1])),
    ("const-void", raw([0, info(Kind.CONST), 0])),
    ("signed-enum", raw([5, info(Kind.ENUM, 1, 1), 4, 7, 0xFFFFFFFF])),
    ("depth-32-consts", raw(_chain(Kind.CONST, 32))),
    ("depth-32-structs", raw(_chain(Kind.STRUCT, 32))),
    ("depth-3000-backward-arrays",  # references to resolved (lower) ids never deepen the walk
     raw(int_rec() + [w for t in range(2, 3002) for w in (0, info(Kind.ARRAY), 0, t - 1, 1, 1)])),
    # An empty DATASEC (clang's .rodata holding only string literals): older kernels said
    # "vlen == 0", 6.18 accepts it, and libbpf loads such objects.
    ("empty-datasec", raw([5, info(Kind.DATASEC), 8], b"\0int\0.rodata\0")),
]


@pytest.mark.parametrize("case, blob, phrase, type_id", CASES, ids=[c[0] for c in CASES])
def test_malformed_btf_is_rejected_like_the_kernel(kernel, case, blob, phrase, type_id):
    from sigbpf.kernel.btf import load_btf

    with pytest.raises(BTFError) as caught:
        BTF.parse(blob)
    err = caught.value
    assert phrase in err.message, (case, str(err))
    assert err.offset is not None, str(err)
    if type_id is not None:
        assert err.type_id == type_id, str(err)
    assert "\n" not in str(err)
    # The kernel refuses the same bytes, and says so in the same words.
    with pytest.raises(KernelError) as refused:
        load_btf(blob)
    assert phrase in refused.value.log, (case, refused.value.log)
    # ... about the same type: the kernel's line is "[id] KIND ... phrase"
    line = next(line for line in refused.value.log.splitlines() if phrase in line)
    if type_id is not None and line.startswith("["):
        assert line.startswith(f"[{type_id}] "), (case, line)


@pytest.mark.parametrize("case, blob", VALID, ids=[c[0] for c in VALID])
def test_valid_shapes_accepted_by_both(kernel, case, blob):
    from sigbpf.kernel.btf import load_btf

    btf = BTF.parse(blob)
    assert btf.encode() == blob
    fd = load_btf(blob)
    assert int(fd) >= 0


def test_error_names_type_and_byte_offset():
    blob = raw(int_rec() + [0, info(Kind.PTR), 1, 0, info(Kind.PTR), 7])
    with pytest.raises(BTFError) as caught:
        BTF.parse(blob, file="x.btf")
    err = caught.value
    assert err.type_id == 3 and err.offset == 24 + 16 + 12
    assert str(err).startswith("x.btf: offset 0x34: type [3]: Invalid type_id")


def test_lazy_parse_still_checks_framing_and_validate_later():
    bad_ref = raw(int_rec() + [0, info(Kind.PTR), 9])
    btf = BTF.parse(bad_ref, validate=False)  # structure is fine
    assert btf[2] == T.Ptr(9)
    with pytest.raises(BTFError, match="Invalid type_id"):
        btf.validate()
    with pytest.raises(BTFError, match="meta_left"):
        BTF.parse(raw(int_rec() + [0, info(Kind.PTR)]), validate=False)


def test_cli_one_line_error_for_malformed_btf(cli, tmp_path):
    from conftest import assert_one_line_error

    path = tmp_path / "loop.btf"
    path.write_bytes(raw([5, info(Kind.TYPEDEF), 2, 0, info(Kind.CONST), 1]))
    proc = cli("kfuncs", "--btf", path)
    assert_one_line_error(proc, 2, "type [1]: Loop detected")
    assert str(path) in proc.stderr
    (tmp_path / "empty.btf").write_bytes(b"")
    assert_one_line_error(cli("kfuncs", "--btf", tmp_path / "empty.btf"), 2, "magic")
    # 3000 arrays, each of the next: once a RecursionError traceback, now the kernel's answer
    deep = tmp_path / "deep.btf"
    deep.write_bytes(raw(_chain(Kind.ARRAY, 3000)))
    for fmt in ("raw", "c"):
        assert_one_line_error(cli("btf", "dump", deep, "--format", fmt), 2,
                              "offset 0x18: type [1]: Exceeded max resolving depth:32")


def _small_real_btf() -> bytes:
    b = BTFBuilder()
    i = b.add(T.Int("int", 4, IntEncoding.SIGNED, 0, 32))
    c = b.add(T.Int("char", 1, IntEncoding.CHAR, 0, 8))
    s = b.add(T.Struct("s", 16, (T.Member("a", i, 0), T.Member("b", c, 32, 0),
                                 T.Member("n", i, 64, 3)), kind_flag=True))
    p = b.add(T.Ptr(s))
    arr = b.add(T.Array(c, i, 4))
    e = b.add(T.Enum("e", 4, (T.EnumValue("X", -1), T.EnumValue("Y", 2)), signed=True))
    e64 = b.add(T.Enum64("e64", 8, (T.EnumValue("BIG", 1 << 40),)))
    fp = b.add(T.FuncProto(i, (T.Param("x", p), T.Param("y", arr))))
    f = b.add(T.Func("f", fp, T.FuncLinkage.GLOBAL))
    b.add(T.DeclTag("bpf_kfunc", f, -1))
    td = b.add(T.Typedef("t", e))
    v = b.add(T.Var("v", td, T.VarLinkage.GLOBAL_ALLOCATED))
    b.add(T.Datasec(".data", 4, (T.VarSecinfo(v, 0, 4),)))
    b.add(T.Float("double", 8))
    b.add(T.TypeTag("user", p))
    b.add(T.Const(e64))
    b.add(T.Union("u", 8, (T.Member("q", e64, 0),)))
    b.add(T.Fwd("fw", union=True))
    b.add(T.Volatile(i))
    b.add(T.Restrict(p))
    return b.encode()


def _exercise(data: bytes) -> None:
    try:
        btf = BTF.parse(data)
    except BTFError:
        return
    for _ in btf.types():
        pass
    assert BTF.parse(btf.encode()).encode() == btf.encode()
    for name in ("f", "s", "int", ""):
        try:
            btf.find_by_name_kind(name, Kind.FUNC)
        except SigbpfError:
            pass
    btf.resolved_size(1) if btf.kind_of(1) in (Kind.INT, Kind.STRUCT) else None


def test_fuzz_mutations_raise_only_btferror():
    """Random byte flips, word overwrites, truncations and header edits of a small real BTF (fixed seed)."""
    seed = _small_real_btf()
    BTF.parse(seed)  # the seed itself is valid
    rng = random.Random(20260522)
    interesting = [0, 1, 0xFF, 0x7F, 0x80, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x0C000002, 0x04000003,
                   0x84000001, 0x13000001, 0x14000000, len(seed), 24]
    cases = 0
    for _ in range(3000):
        data = bytearray(seed)
        what = rng.randrange(6)
        if what == 0:  # flip some bytes
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif what == 1:  # overwrite an aligned word with an interesting value
            pos = rng.randrange(0, len(data) - 3, 4)
            data[pos:pos + 4] = struct.pack("<I", rng.choice(interesting))
        elif what == 2:  # truncate
            data = data[:rng.randrange(len(data))]
        elif what == 3:  # header field
            pos = rng.choice([2, 3, 4, 8, 12, 16, 20])
            data[pos:pos + 4] = struct.pack("<I", rng.choice(interesting))[: 4 if pos >= 4 else 1]
            data = data[:len(seed)]
        elif what == 4:  # random bytes spliced in
            pos = rng.randrange(len(data))
            data[pos:pos] = rng.randbytes(rng.randint(1, 16))
        else:  # random garbage with a valid-looking header
            data = bytearray(seed[:24]) + rng.randbytes(rng.randint(0, 200))
        _exercise(bytes(data))
        cases += 1
    assert cases == 3000


# What sigbpf accepts on purpose although BPF_BTF_LOAD refuses it: the forms a clang object
# holds before libbpf fixes it up (sigbpf.btf.validate's docstring).
OBJECT_FORMS = ("Linkage not supported", "size == 0", "Invalid func linkage", "Not a VAR kind member")


def test_differential_fuzz_against_the_kernel(kernel):
    """Mutated BTF: sigbpf and BPF_BTF_LOAD must give the same verdict (fixed seed, 4000 cases)."""
    from sigbpf.kernel.btf import load_btf

    seed = _small_real_btf()
    rng = random.Random(4242)
    disagreements = []
    for _ in range(4000):
        data = bytearray(seed)
        for _ in range(rng.randint(1, 3)):
            if rng.randrange(2):
                data[rng.randrange(24, len(data))] ^= 1 << rng.randrange(8)
            else:
                pos = rng.randrange(24, len(data) - 3, 4)
                data[pos:pos + 4] = struct.pack("<I", rng.choice(
                    [0, 1, 2, 3, 0xFFFFFFFF, 0x80000000, rng.randrange(64), rng.randrange(1 << 32)]))
        blob = bytes(data)
        try:
            BTF.parse(blob)
            ours = None
        except BTFError as err:
            ours = err.message
        try:
            load_btf(blob)
            theirs = None
        except KernelError as err:
            theirs = (err.log.strip().splitlines() or [str(err)])[-1]
        if (ours is None) != (theirs is None):
            if ours is None and any(form in theirs for form in OBJECT_FORMS):
                continue
            disagreements.append((ours, theirs))
    assert not disagreements, disagreements[:5]


def _random_type_graph(rng: random.Random) -> bytes:
    """Pointers, qualifiers, typedefs, type tags, structs, unions and arrays referring to
    each other at random, mostly forward (what builds deep walks) and sometimes back."""
    if rng.random() < 0.15:  # a chain around the stack's limit, of one kind
        return raw(_chain(rng.choice((Kind.CONST, Kind.PTR, Kind.TYPEDEF, Kind.ARRAY, Kind.STRUCT)),
                          rng.randint(28, 36)))
    n = rng.randint(2, 45)
    forward = rng.choice((0.55, 0.8, 0.97))
    words = int_rec()
    for t in range(2, n + 1):
        def ref() -> int:
            r = rng.random()
            if r < forward:
                return min(n, t + 1)
            return 1 if r < forward + 0.1 else rng.randint(1, n)
        kind = rng.choice(("ptr", "const", "volatile", "typedef", "type_tag", "struct", "union", "array",
                           "int", "ptr", "const", "struct", "array"))
        if kind == "int":
            words += int_rec()
        elif kind in ("struct", "union"):
            members = rng.randint(1, 3)
            k = Kind.STRUCT if kind == "struct" else Kind.UNION
            words += [5, info(k, members), 8 * members]
            for j in range(members):
                words += [7, ref() if rng.random() < 0.6 else 1, 64 * j if k == Kind.STRUCT else 0]
        elif kind == "array":
            words += [0, info(Kind.ARRAY), 0, ref(), 1, 1]
        else:
            k = {"ptr": Kind.PTR, "const": Kind.CONST, "volatile": Kind.VOLATILE,
                 "typedef": Kind.TYPEDEF, "type_tag": Kind.TYPE_TAG}[kind]
            words += [5 if k in (Kind.TYPEDEF, Kind.TYPE_TAG) else 0, info(k), ref()]
    return raw(words)


def test_differential_type_graphs_against_the_kernel(kernel):
    """Random type graphs (fixed seed): the same verdict as BPF_BTF_LOAD, and for the
    resolver's own errors ("Loop detected", "Exceeded max resolving depth:32") the same
    message about the same type id.

    Before the resolver's walk was modelled, sigbpf accepted chains the kernel
    finds too deep, named loops at another type than the kernel, and a chain of
    arrays could exhaust Python's stack (a traceback from ``sigbpf btf dump``)."""
    from sigbpf.kernel.btf import load_btf

    rng = random.Random(2026)
    seen: dict[str, int] = {}
    disagreements = []
    quirk: list = []
    for _ in range(2500):
        blob = _random_type_graph(rng)
        try:
            BTF.parse(blob)
            ours = None
        except BTFError as err:
            ours = (err.message, err.type_id)
        try:
            load_btf(blob)
            theirs = None
        except KernelError as err:
            theirs = (err.log.strip().splitlines() or [str(err)])[-1]
        if (ours is None) != (theirs is None):
            if theirs is None and ours[0].startswith("Member exceeds struct_size"):
                quirk.append(ours)  # sigbpf.btf.validate's docstring: sizes "so far" not tracked
            else:
                disagreements.append((ours, theirs))
            continue
        for phrase in ("Loop detected", "Exceeded max resolving depth:32"):
            if theirs is not None and theirs.endswith(phrase):
                seen[phrase] = seen.get(phrase, 0) + 1
                if ours != (phrase, int(theirs[1:theirs.index("]")])):
                    disagreements.append((ours, theirs))
        seen["accepted"] = seen.get("accepted", 0) + (theirs is None)
    assert not disagreements, disagreements[:5]
    assert len(quirk) <= 2, quirk  # the one documented difference stays rare (1 in 2500 here)
    assert seen["Loop detected"] > 300 and seen["Exceeded max resolving depth:32"] > 10 \
        and seen["accepted"] > 200, seen


def test_fuzz_split_btf_truncations(corpus_btf):
    base = BTF.from_file(corpus_btf("6.12.95+deb12-amd64.btf"), validate=False)
    mod = corpus_btf("6.12.95+deb12-amd64.nf_conntrack.btf").read_bytes()
    rng = random.Random(7)
    for cut in sorted(rng.sample(range(len(mod)), 60)):
        with pytest.raises(BTFError):
            BTF.parse(mod[:cut], base, validate=False)
    for _ in range(60):
        data = bytearray(mod)
        pos = rng.randrange(24, len(data) - 3, 4)
        data[pos:pos + 4] = struct.pack("<I", rng.choice([0xFFFFFFFF, 0x7FFFF, 1 << 24, 0x13000005]))
        try:
            btf = BTF.parse(bytes(data), base, validate=True)
        except BTFError:
            continue
        assert btf.own_count > 0
