"""Signed artifacts: the signature section, and signing an artifact.

A signed artifact is a portable artifact (docs/FORMAT.md) with one extra
extension section, type :data:`SIGNATURE_SECTION` (0x100), appended last.
Its payload (all integers little-endian, FORMAT.md "Signatures")::

    magic              8 bytes  b"SBPFSIG\\0"
    version            u32      1
    layout             u32      SignatureLayout (1 insns, 2 insns+metadata)
    program_count      u32      = number of programs in the artifact
    metadata_size      u32      size of the metadata blob
    metadata_sig_size  u32      size of the metadata signature (0 for insns+metadata)
    reserved           u32      0
    program_sig_size   u32 x program_count
    metadata blob      metadata_size bytes (sigbpf.sign.payload)
    metadata signature metadata_sig_size bytes (PKCS#7 DER)
    program signatures program_sig_size[i] bytes each, in program order (PKCS#7 DER)

Nothing may follow the last signature.  Every signature is a detached PKCS#7
in the kernel's format (sigbpf.sign.pkcs7).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sigbpf.errors import ArtifactError, FormatError, UsageError
from sigbpf.sign.payload import SignatureLayout, artifact_metadata, signed_bytes

if TYPE_CHECKING:  # pragma: no cover
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    from sigbpf.artifact.format import Artifact, ExtensionSection

#: Extension section type of the signature section (in FORMAT.md's 0x100-0x1FF signature range).
SIGNATURE_SECTION = 0x100
SIGNATURE_MAGIC = b"SBPFSIG\0"
SIGNATURE_VERSION = 1
#: Largest PKCS#7 signature accepted (bpftool's limit; RSA-16384 needs about 2.3 KiB).
MAX_SIGNATURE_SIZE = 4096
_HEAD = struct.Struct("<8sIIIIII")


@dataclass(frozen=True, slots=True)
class SignatureSection:
    """The decoded signature section."""

    layout: SignatureLayout
    metadata_blob: bytes
    metadata_signature: bytes          # empty for insns+metadata
    program_signatures: tuple[bytes, ...]

    def encode(self) -> bytes:
        if self.layout is SignatureLayout.INSNS and not self.metadata_signature:
            raise FormatError("layout insns needs a metadata signature")
        if self.layout is SignatureLayout.INSNS_METADATA and self.metadata_signature:
            raise FormatError("layout insns+metadata has no separate metadata signature")
        head = _HEAD.pack(SIGNATURE_MAGIC, SIGNATURE_VERSION, int(self.layout),
                          len(self.program_signatures), len(self.metadata_blob),
                          len(self.metadata_signature), 0)
        sizes = struct.pack(f"<{len(self.program_signatures)}I",
                            *(len(s) for s in self.program_signatures))
        return b"".join((head, sizes, self.metadata_blob, self.metadata_signature,
                         *self.program_signatures))

    @classmethod
    def decode(cls, data: bytes) -> "SignatureSection":
        """Strict decode; a FormatError names the field and its offset in the section."""
        def bad(message: str, offset: int) -> FormatError:
            return FormatError(f"signature section: {message}", offset=offset)

        if len(data) < _HEAD.size:
            raise bad(f"truncated ({len(data)} bytes, header is {_HEAD.size})", len(data))
        magic, version, layout, nprogs, meta_size, meta_sig_size, reserved = _HEAD.unpack_from(data)
        if magic != SIGNATURE_MAGIC:
            raise bad("bad magic", 0)
        if version != SIGNATURE_VERSION:
            raise bad(f"version {version} is not {SIGNATURE_VERSION}", 8)
        try:
            layout = SignatureLayout(layout)
        except ValueError:
            raise bad(f"unknown layout {layout}", 12) from None
        if reserved:
            raise bad("reserved field is not zero", 28)
        if (layout is SignatureLayout.INSNS) != (meta_sig_size > 0):
            raise bad(f"metadata signature size {meta_sig_size} is wrong for layout "
                      f"{layout.label}", 24)
        if meta_sig_size > MAX_SIGNATURE_SIZE:
            raise bad(f"metadata signature of {meta_sig_size} bytes (limit {MAX_SIGNATURE_SIZE})", 24)
        pos = _HEAD.size
        if nprogs > (len(data) - pos) // 4:
            raise bad(f"{nprogs} program signatures do not fit", 16)
        sizes = struct.unpack_from(f"<{nprogs}I", data, pos)
        for i, size in enumerate(sizes):
            if not 0 < size <= MAX_SIGNATURE_SIZE:
                raise bad(f"program {i} signature size {size} (must be 1..{MAX_SIGNATURE_SIZE})",
                          pos + 4 * i)
        pos += 4 * nprogs
        total = pos + meta_size + meta_sig_size + sum(sizes)
        if total != len(data):
            raise bad(f"sizes add up to {total} bytes, the section has {len(data)}",
                      min(total, len(data)))
        blob = data[pos:pos + meta_size]
        pos += meta_size
        meta_sig = data[pos:pos + meta_sig_size]
        pos += meta_sig_size
        sigs = []
        for size in sizes:
            sigs.append(data[pos:pos + size])
            pos += size
        return cls(layout, blob, meta_sig, tuple(sigs))


def is_signature_section(ext: "ExtensionSection") -> bool:
    """Is this extension section one of the signature range 0x100-0x1FF?"""
    from sigbpf.artifact.format import SIGNATURE_FIRST, SIGNATURE_LAST

    return SIGNATURE_FIRST <= ext.type <= SIGNATURE_LAST


def split_signed(artifact: "Artifact") -> tuple["Artifact", SignatureSection | None]:
    """(the artifact without its signature section, the decoded section or None if unsigned).

    The signature section must be the only section of the signature range and
    the last section of the file.
    """
    from sigbpf.artifact.format import Artifact

    sig_positions = [i for i, ext in enumerate(artifact.extensions) if is_signature_section(ext)]
    if not sig_positions:
        return artifact, None
    if len(sig_positions) > 1:
        raise ArtifactError(f"{len(sig_positions)} signature sections (a signed artifact has one)")
    pos = sig_positions[0]
    ext = artifact.extensions[pos]
    if ext.type != SIGNATURE_SECTION:
        raise ArtifactError(f"unknown signature section type {ext.type:#x} "
                            f"(this reader knows {SIGNATURE_SECTION:#x})")
    if pos != len(artifact.extensions) - 1:
        raise ArtifactError("the signature section is not the last section")
    if ext.entry_size != 0:
        raise ArtifactError(f"signature section entry size {ext.entry_size}, expected 0")
    unsigned = replace(artifact, extensions=artifact.extensions[:pos])
    return unsigned, SignatureSection.decode(ext.data)


@dataclass(frozen=True, slots=True)
class SignedPart:
    """One signature of a signed artifact and the exact bytes it covers (FORMAT.md 5.4)."""

    stem: str            # file stem for ``verify --extract``: "program-<i>" or "metadata"
    what: str            # in words: "program 0 'name'" or "metadata blob"
    payload: bytes       # the signed bytes: insns, insns || metadata blob, or the blob
    signature: bytes     # PKCS#7 DER, detached


def signed_parts(unsigned: "Artifact", section: SignatureSection) -> tuple[SignedPart, ...]:
    """Every signature of *section* with the bytes it covers, in file order: the metadata
    signature (layout ``insns``), then one per program.  What ``openssl cms -verify
    -content PAYLOAD`` or the kernel's check takes."""
    parts = []
    if section.metadata_signature:
        parts.append(SignedPart("metadata", "metadata blob", section.metadata_blob,
                                section.metadata_signature))
    for i, (prog, sig) in enumerate(zip(unsigned.programs, section.program_signatures)):
        parts.append(SignedPart(f"program-{i}", f"program {i} '{prog.name}'",
                                signed_bytes(section.layout, prog.insn_bytes, section.metadata_blob),
                                sig))
    return tuple(parts)


def sign_artifact(data: bytes, key: "rsa.RSAPrivateKey", cert: "x509.Certificate", *, layout: SignatureLayout = SignatureLayout.INSNS,
                  file: str | None = None) -> bytes:
    """Sign the (unsigned) artifact *data* with *key*/*cert*; returns the signed artifact's bytes.

    The key and certificate are checked (sigbpf.sign.keys); the result is
    verified once before it is returned, so a signed artifact that comes out
    of here verifies.
    """
    from sigbpf.artifact.format import Artifact, ExtensionSection
    from sigbpf.sign.keys import check_certificate, check_key_matches_certificate
    from sigbpf.sign.pkcs7 import sign_detached
    from sigbpf.sign.verify import verify_signed

    layout = SignatureLayout(layout)
    check_certificate(cert)
    check_key_matches_certificate(key, cert)
    artifact = Artifact.decode(data, file=file)
    _, existing = split_signed(artifact)
    if existing is not None:
        raise UsageError("artifact is already signed; sign the unsigned artifact", file=file)
    if not artifact.programs:
        raise UsageError("artifact has no programs: nothing to sign", file=file)
    blob = artifact_metadata(layout, artifact).encode()
    meta_sig = sign_detached(blob, key, cert) if layout is SignatureLayout.INSNS else b""
    prog_sigs = tuple(sign_detached(signed_bytes(layout, prog.insn_bytes, blob), key, cert)
                      for prog in artifact.programs)
    section = SignatureSection(layout, blob, meta_sig, prog_sigs)
    signed = artifact.with_extension(ExtensionSection(SIGNATURE_SECTION, section.encode())).encode()
    verify_signed(signed, cert, file=file)
    return signed
