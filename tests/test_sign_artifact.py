"""Signed artifacts: sign, verify, and every tamper case of issue 4 rejected.

The library API runs the exhaustive loops (speed); test_sign_cli.py runs the
representative cases through the CLI (`verify` and `load`).
"""

from __future__ import annotations

import dataclasses

import pytest

from sigbpf.artifact.build import build_from_file
from sigbpf.artifact.format import Artifact, ExtensionSection
from sigbpf.errors import (
    ArtifactError, FormatError, KeyMaterialError, SigbpfError, SignatureError, UsageError,
)
from sigbpf.kernel.loader import signed_insns_note
from sigbpf.sign import keys
from sigbpf.sign.payload import ItemKind, Metadata, SignatureLayout
from sigbpf.sign.pkcs7 import parse_signature
from sigbpf.sign.signed import SIGNATURE_SECTION, SignatureSection, sign_artifact, split_signed
from sigbpf.sign.verify import verify_signed
from sign_support import openssl, swap_func_names

pytest_plugins = ["sign_fixtures"]  # key pairs and key files

LAYOUTS = list(SignatureLayout)


@pytest.fixture(scope="session")
def artifacts(bpf_object) -> dict[str, bytes]:
    """Unsigned artifacts: small (two programs, maps, global data) and large (vmlinux CO-RE)."""
    return {name: build_from_file(bpf_object(name)).encode()
            for name in ("sign_two_progs", "kfunc_rcu_maps", "kfunc_task", "kfunc_weak")}


@pytest.fixture(scope="session")
def signed(artifacts, key_pair) -> dict[tuple[str, SignatureLayout], bytes]:
    return {(name, layout): sign_artifact(data, key_pair.key, key_pair.cert, layout=layout)
            for name, data in artifacts.items() for layout in LAYOUTS}


def resign_with(signed_bytes: bytes, change) -> bytes:
    """Apply *change* (Artifact -> Artifact) to the signed artifact, keeping its signature section."""
    art = Artifact.decode(signed_bytes)
    sig = art.extensions[-1]
    unsigned, _ = split_signed(art)
    return change(unsigned).with_extension(sig).encode()


def replace_section(signed_bytes: bytes, section: SignatureSection) -> bytes:
    art = Artifact.decode(signed_bytes)
    unsigned, _ = split_signed(art)
    return unsigned.with_extension(ExtensionSection(SIGNATURE_SECTION, section.encode())).encode()


def section_of(signed_bytes: bytes) -> SignatureSection:
    return split_signed(Artifact.decode(signed_bytes))[1]


def rejected(data: bytes, cert, match: str | None = None) -> SigbpfError:
    with pytest.raises((SignatureError, FormatError)) as info:
        verify_signed(data, cert)
    if match is not None:
        assert match in str(info.value), str(info.value)
    return info.value


# ------------------------------------------------------------------ sign + verify


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: l.label)
def test_sign_then_verify(artifacts, signed, key_pair, layout):
    for name, data in artifacts.items():
        art, sigs = verify_signed(signed[name, layout], key_pair.cert)
        assert art == Artifact.decode(data)          # the artifact that was signed
        assert art.encode() == data
        assert sigs.layout is layout
        assert sigs.key_id == keys.subject_key_identifier(key_pair.cert)
        assert [p.name for p in sigs.programs] == [p.name for p in art.programs]
        section = section_of(signed[name, layout])
        assert len(section.program_signatures) == len(art.programs)
        assert (len(section.metadata_signature) > 0) == (layout is SignatureLayout.INSNS)
        meta = Metadata.decode(section.metadata_blob)
        kinds = {item.kind for item in meta.items}
        # The metadata binds everything besides the instructions (issue 4).
        for kind in (ItemKind.PROGRAM_INSNS, ItemKind.PROGRAM_BTF, ItemKind.KFUNC_TABLE,
                     ItemKind.PROGRAM_FUNC_INFO, ItemKind.PROGRAM_LINE_INFO,
                     ItemKind.PROGRAM_CORE_RELOS, ItemKind.PROGRAM_LICENSE,
                     ItemKind.PROGRAM_ATTRS, ItemKind.ARTIFACT):
            assert kind in kinds, kind
        if art.maps:
            assert ItemKind.MAP_DATA in kinds and ItemKind.MAP_DEFINITION in kinds


def test_program_signatures_are_over_exactly_the_instructions(tmp_path, signed, key_pair, key_files):
    """Layout insns: what 6.18's BPF_PROG_LOAD checks, insn_cnt * 8 bytes; openssl agrees."""
    data = signed["sign_two_progs", SignatureLayout.INSNS]
    art, sigs = verify_signed(data, key_pair.cert)
    section = section_of(data)
    for i, prog in enumerate(art.programs):
        insns = prog.insn_bytes
        assert len(insns) == len(prog.insns) * 8
        (tmp_path / "insns").write_bytes(insns)
        (tmp_path / "sig").write_bytes(section.program_signatures[i])
        proc = openssl("cms", "-verify", "-binary", "-inform", "DER", "-noverify",
                       "-in", tmp_path / "sig", "-content", tmp_path / "insns",
                       "-certfile", key_files["cert"], "-out", "/dev/null")
        assert proc.returncode == 0, proc.stderr
        # The signature for the kernel is the one over the instructions as signed; when the
        # instructions as loaded differ, the loader passes it anyway and says so.
        assert sigs.program_signatures[prog.name] == section.program_signatures[i]
        assert signed_insns_note(prog.name, insns, insns, "weak kfunc binding") is None
        changed = bytearray(insns)
        changed[4] ^= 1
        note = signed_insns_note(prog.name, insns, bytes(changed), "userspace resolution")
        assert note == (f"program {prog.name!r}: the instructions as loaded differ from the "
                        f"signed ones (1 slots rewritten by userspace resolution); a kernel that "
                        f"checks signatures over the loaded instructions refuses it")
    # The metadata signature is over the metadata blob, as stored.
    (tmp_path / "meta").write_bytes(section.metadata_blob)
    (tmp_path / "msig").write_bytes(section.metadata_signature)
    proc = openssl("cms", "-verify", "-binary", "-inform", "DER", "-noverify",
                   "-in", tmp_path / "msig", "-content", tmp_path / "meta",
                   "-certfile", key_files["cert"], "-out", "/dev/null")
    assert proc.returncode == 0, proc.stderr


def test_insns_metadata_layout_signs_insns_followed_by_metadata(tmp_path, signed, key_pair, key_files):
    data = signed["sign_two_progs", SignatureLayout.INSNS_METADATA]
    art, sigs = verify_signed(data, key_pair.cert)
    section = section_of(data)
    for i, prog in enumerate(art.programs):
        (tmp_path / "payload").write_bytes(prog.insn_bytes + section.metadata_blob)
        (tmp_path / "sig").write_bytes(section.program_signatures[i])
        proc = openssl("cms", "-verify", "-binary", "-inform", "DER", "-noverify",
                       "-in", tmp_path / "sig", "-content", tmp_path / "payload",
                       "-certfile", key_files["cert"], "-out", "/dev/null")
        assert proc.returncode == 0, proc.stderr
    # A 6.18 kernel checks the instructions only: nothing to hand it in this layout.
    assert sigs.program_signatures == {}


@pytest.mark.parametrize("keyid", [False, True], ids=["issuer-serial", "keyid"])
def test_signatures_made_by_openssl_are_accepted(tmp_path, signed, key_pair, key_files, keyid):
    """openssl cms -sign -nocerts -noattr -binary over the same payload verifies."""
    data = signed["sign_two_progs", SignatureLayout.INSNS]
    art, _ = verify_signed(data, key_pair.cert)
    section = section_of(data)

    def openssl_sign(payload: bytes) -> bytes:
        (tmp_path / "payload").write_bytes(payload)
        proc = openssl("cms", "-sign", "-binary", "-nocerts", "-noattr", "-outform", "DER",
                       "-md", "sha256", "-signer", key_files["cert"], "-inkey", key_files["key"],
                       "-in", tmp_path / "payload", "-out", tmp_path / "sig",
                       *(["-keyid"] if keyid else []))
        assert proc.returncode == 0, proc.stderr
        return (tmp_path / "sig").read_bytes()

    theirs = SignatureSection(
        SignatureLayout.INSNS, section.metadata_blob, openssl_sign(section.metadata_blob),
        tuple(openssl_sign(p.insn_bytes) for p in art.programs))
    verify_signed(replace_section(data, theirs), key_pair.cert)


# ---------------------------------------------------------------------- tampering


#: What a refusal of a tampered artifact says: the item, signature or place that does not match.
NAMED = ("changed since signing", "does not match", "made by another key", "not covered by the",
         "missing from the artifact", "not a signature in the kernel's PKCS#7 format",
         "signature section", "not signed", "offset 0x")


def assert_names_what(err: SigbpfError) -> None:
    """One line, naming what does not match (an item, a signature, or a byte offset)."""
    text = str(err)
    assert "\n" not in text, text
    assert any(words in text for words in NAMED), text


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: l.label)
def test_every_single_byte_flip_of_a_small_signed_artifact_is_rejected(signed, key_pair, layout):
    data = signed["sign_two_progs", layout]
    verify_signed(data, key_pair.cert)
    masks = (0xFF, 0x01) if layout is SignatureLayout.INSNS else (0xFF,)
    seen = set()
    for mask in masks:
        for i in range(len(data)):
            bad = bytearray(data)
            bad[i] ^= mask
            with pytest.raises((SignatureError, FormatError)) as info:
                verify_signed(bytes(bad), key_pair.cert)
            assert_names_what(info.value)
            seen.add(type(info.value))
    # Both kinds occur: signatures that do not hold (exit 1) and malformed files (exit 2).
    assert SignatureError in seen and any(issubclass(t, FormatError) for t in seen), seen


def test_dense_sample_of_byte_flips_of_a_large_signed_artifact(signed, key_pair):
    data = signed["kfunc_task", SignatureLayout.INSNS]
    assert len(data) > 20000
    verify_signed(data, key_pair.cert)
    # Every 7th byte, and each of the last 2048 (the signature section and the metadata).
    positions = sorted(set(range(0, len(data), 7)) | set(range(len(data) - 2048, len(data))))
    for i in positions:
        bad = bytearray(data)
        bad[i] ^= 0x5A
        with pytest.raises((SignatureError, FormatError)) as info:
            verify_signed(bytes(bad), key_pair.cert)
        assert_names_what(info.value)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: l.label)
def test_a_changed_metadata_blob_is_named(signed, key_pair, layout):
    """A digest changed inside the signed metadata blob (the artifact itself intact): the
    signature over the blob fails, and the message says it is the blob that changed."""
    data = signed["sign_two_progs", layout]
    section = section_of(data)
    meta = Metadata.decode(section.metadata_blob)
    target = meta.find(ItemKind.MAP_DATA, 0) or meta.find(ItemKind.PROGRAM_BTF)
    blob = bytearray(section.metadata_blob)
    pos = bytes(blob).index(target.digest)
    blob[pos] ^= 0x01
    changed = dataclasses.replace(section, metadata_blob=bytes(blob))
    rejected(replace_section(data, changed), key_pair.cert,
             "metadata blob (signature section): changed since signing")
    # Only the metadata signature changed (another payload, the right key): named as such.
    from sigbpf.sign.pkcs7 import sign_detached

    other = sign_detached(b"another payload", key_pair.key, key_pair.cert)
    if layout is SignatureLayout.INSNS:
        resigned = dataclasses.replace(section, metadata_signature=other)
        rejected(replace_section(data, resigned), key_pair.cert,
                 "metadata signature does not match the signed bytes")
    else:
        resigned = dataclasses.replace(section, program_signatures=(other,) + section.program_signatures[1:])
        rejected(replace_section(data, resigned), key_pair.cert,
                 "program 0 'first' signature does not match the signed bytes")


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: l.label)
def test_renaming_a_func_in_the_program_btf_to_another_kfunc(signed, key_pair, layout):
    """bpf_rcu_read_lock <-> bpf_rcu_read_unlock: the signed calls would resolve to the
    other kfunc, and the artifact is still well-formed: only the signature stops it."""
    data = signed["kfunc_rcu_maps", layout]
    tampered = resign_with(data, lambda a: dataclasses.replace(
        a, btf=swap_func_names(a.btf, "bpf_rcu_read_lock", "bpf_rcu_read_unlock")))
    assert Artifact.decode(tampered)  # a valid artifact
    rejected(tampered, key_pair.cert, "program BTF: changed since signing")


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: l.label)
def test_changed_map_initial_data_and_definition(signed, key_pair, layout):
    data = signed["sign_two_progs", layout]
    art, _ = verify_signed(data, key_pair.cert)
    index = next(i for i, m in enumerate(art.maps) if m.initial_data)
    name = art.maps[index].name

    def new_data(a):
        maps = list(a.maps)
        maps[index] = dataclasses.replace(maps[index], initial_data=b"\x06" + maps[index].initial_data[1:])
        return dataclasses.replace(a, maps=tuple(maps))

    rejected(resign_with(data, new_data), key_pair.cert,
             f"map {index} '{name}' initial data: changed since signing")

    def bigger(a):
        maps = list(a.maps)
        maps[0] = dataclasses.replace(maps[0], max_entries=maps[0].max_entries + 1)
        return dataclasses.replace(a, maps=tuple(maps))

    rejected(resign_with(data, bigger), key_pair.cert,
             f"map 0 '{art.maps[0].name}' definition: changed since signing")


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: l.label)
def test_changed_instructions_name_the_program(signed, key_pair, layout):
    data = signed["sign_two_progs", layout]

    def patch(a):
        progs = list(a.programs)
        insns = list(progs[1].insns)
        last = len(insns) - 2
        insns[last] = insns[last].replace(imm=insns[last].imm + 1)
        progs[1] = dataclasses.replace(progs[1], insns=tuple(insns))
        return dataclasses.replace(a, programs=tuple(progs))

    rejected(resign_with(data, patch), key_pair.cert,
             "program 1 'second' instructions: changed since signing")


def test_other_changes_that_alter_what_runs(signed, key_pair):
    data = signed["kfunc_weak", SignatureLayout.INSNS]
    art, _ = verify_signed(data, key_pair.cert)

    def not_weak(a):
        return dataclasses.replace(a, kfuncs=tuple(dataclasses.replace(k, weak=False)
                                                   for k in a.kfuncs))

    rejected(resign_with(data, not_weak), key_pair.cert, "kfunc calls: changed since signing")

    def relicense(a):
        return dataclasses.replace(a, programs=tuple(dataclasses.replace(p, license="Proprietary")
                                                     for p in a.programs))

    rejected(resign_with(data, relicense), key_pair.cert, "license: changed since signing")

    def not_sleepable(a):
        return dataclasses.replace(a, programs=tuple(dataclasses.replace(p, prog_flags=0)
                                                     for p in a.programs))

    rejected(resign_with(data, not_sleepable), key_pair.cert, "attributes")

    task = signed["kfunc_task", SignatureLayout.INSNS_METADATA]

    def no_core(a):
        return dataclasses.replace(a, programs=tuple(dataclasses.replace(p, core_relos=())
                                                     for p in a.programs))

    rejected(resign_with(task, no_core), key_pair.cert, "CO-RE relocations: changed since signing")

    def no_lines(a):
        return dataclasses.replace(a, programs=tuple(dataclasses.replace(p, line_info=())
                                                     for p in a.programs))

    rejected(resign_with(task, no_lines), key_pair.cert, "line_info: changed since signing")

    def extra_section(a):
        return a.with_extension(ExtensionSection(0x200, b"extra"))

    rejected(resign_with(task, extra_section), key_pair.cert, "not covered by the signature")


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: l.label)
def test_truncating_and_appending(signed, key_pair, layout):
    data = signed["sign_two_progs", layout]
    for cut in sorted({0, 1, 8, 31, 32, 100, len(data) // 2, len(data) - 200, len(data) - 8,
                       len(data) - 1}):
        with pytest.raises(FormatError):
            verify_signed(data[:cut], key_pair.cert)
    for tail in (b"\0", b"\0" * 8, b"x" * 100, data):
        with pytest.raises(FormatError):
            verify_signed(data + tail, key_pair.cert)
    # Appending a section after the signature, or a second signature section.
    art = Artifact.decode(data)
    rejected(art.with_extension(ExtensionSection(0x200, b"after")).encode(), key_pair.cert,
             "not the last section")
    rejected(art.with_extension(art.extensions[-1]).encode(), key_pair.cert,
             "2 signature sections")


def test_signature_sections_moved_or_removed(signed, key_pair):
    two = signed["sign_two_progs", SignatureLayout.INSNS]
    rcu = signed["kfunc_rcu_maps", SignatureLayout.INSNS]
    unsigned, _ = split_signed(Artifact.decode(two))
    rejected(unsigned.encode(), key_pair.cert, "artifact is not signed")
    # The signature section of another artifact (signed by the same key).
    rcu_sig = Artifact.decode(rcu).extensions[-1]
    rejected(unsigned.with_extension(rcu_sig).encode(), key_pair.cert, "program signatures")
    # Same program count, other artifact: the metadata names the first difference.
    one, _ = split_signed(Artifact.decode(signed["kfunc_weak", SignatureLayout.INSNS]))
    rejected(one.with_extension(rcu_sig).encode(), key_pair.cert, "changed since signing")
    # Program signatures swapped between the two programs.
    section = section_of(two)
    swapped = dataclasses.replace(section, program_signatures=section.program_signatures[::-1])
    rejected(replace_section(two, swapped), key_pair.cert, "program 0 'first' signature does not match")
    # A signature over another payload, by the right key.
    from sigbpf.sign.pkcs7 import sign_detached

    other = dataclasses.replace(section, metadata_signature=sign_detached(
        b"another payload", key_pair.key, key_pair.cert))
    rejected(replace_section(two, other), key_pair.cert,
             "metadata signature does not match the signed bytes")


# -------------------------------------------------------------------- keys


def test_wrong_key_and_unusable_certificates(signed, key_pair, other_key_pair, bad_cert_files):
    data = signed["sign_two_progs", SignatureLayout.INSNS]
    err = rejected(data, other_key_pair.cert, "metadata signature was made by another key")
    assert err.exit_code == 1
    err = rejected(signed["sign_two_progs", SignatureLayout.INSNS_METADATA], other_key_pair.cert,
                   "program 0 'first' signature was made by another key")
    for name, message in (("expired", "expired"), ("future", "not valid yet"),
                          ("nonsigning", "not a signing certificate")):
        cert = bad_cert_files[name]["cert"].read_bytes()
        with pytest.raises(KeyMaterialError, match=message):
            verify_signed(data, cert, cert_file="c.pem")


def test_signing_refuses_unusable_keys_and_inputs(artifacts, key_pair, other_key_pair,
                                                  bad_cert_files, signed):
    data = artifacts["sign_two_progs"]
    with pytest.raises(KeyMaterialError, match="does not belong"):
        sign_artifact(data, other_key_pair.key, key_pair.cert)
    for name in ("expired", "future", "nonsigning"):
        files = bad_cert_files[name]
        pair = keys.KeyPair(keys.load_private_key(files["key"].read_bytes()),
                            keys.load_certificate(files["cert"].read_bytes()))
        with pytest.raises(KeyMaterialError):
            sign_artifact(data, pair.key, pair.cert)
    with pytest.raises(UsageError, match="already signed"):
        sign_artifact(signed["sign_two_progs", SignatureLayout.INSNS], key_pair.key, key_pair.cert)
    with pytest.raises(ArtifactError):
        sign_artifact(b"garbage", key_pair.key, key_pair.cert)


def test_signatures_are_in_the_kernel_format(signed):
    for (_, layout), data in signed.items():
        section = section_of(data)
        for sig in section.program_signatures:
            parsed = parse_signature(sig)
            assert parsed.key_id is not None        # named by subject key id, like bpftool
            assert len(sig) <= 4096                 # bpftool's limit
