"""Verifying a signed artifact in userspace: ``verify_signed`` (used by ``verify`` and ``load``).

``verify_signed(data, cert)`` accepts only an intact artifact signed by the
key of *cert*, and says what does not match otherwise:

* the file is not a well-formed artifact, or its signature section or a
  signature is malformed: :class:`~sigbpf.errors.FormatError` (exit 2);
* the certificate cannot be used (expired, not yet valid, not for signing):
  :class:`~sigbpf.errors.KeyMaterialError` (exit 2);
* the artifact is unsigned, a signature was made by another key, or covers
  other bytes, or an item of the artifact (program instructions, program BTF,
  map N initial data, ...) differs from the signed metadata:
  :class:`~sigbpf.errors.SignatureError` (exit 1) naming it.

Order of the checks, layout ``insns``: the metadata signature over the stored
metadata blob; the blob's items against the artifact (naming the first item
that differs); each program's signature over its instructions.  Layout
``insns+metadata``: each program's signature over ``insns || blob`` (when it
fails and the program's instructions differ from the blob's digest of them,
the message says so); then the blob's items against the artifact.  When a
signature that covers the metadata blob fails and the stored blob is no longer
the artifact's own metadata (the artifact's other items are intact, so the blob
in the signature section was changed), the message names the metadata blob.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from sigbpf.errors import FormatError, KeyMaterialError, SigbpfError, SignatureError
from sigbpf.sign.payload import (
    ItemKind, Metadata, SignatureLayout, artifact_metadata, compare_metadata, signed_bytes,
)

if TYPE_CHECKING:  # pragma: no cover
    import datetime

    from cryptography import x509

    from sigbpf.artifact.format import Artifact


@dataclass(frozen=True, slots=True)
class ProgramSignature:
    """One program's verified signature and what it covers."""

    index: int
    name: str
    signature: bytes          # PKCS#7 DER, as BPF_PROG_LOAD's `signature` takes it
    insns_sha256: bytes       # SHA-256 of the program's instructions as signed
    signed_sha256: bytes      # SHA-256 of the bytes the signature covers (layout-dependent)


@dataclass(frozen=True, slots=True)
class VerifiedSignatures:
    """What ``verify_signed`` established: the layout, the signer, each program's signature."""

    layout: SignatureLayout
    signer: str                         # subject and key id of the certificate
    key_id: bytes | None                # the certificate's subject key identifier
    metadata_sha256: bytes              # SHA-256 of the signed metadata blob
    artifact_sha256: bytes              # SHA-256 of the artifact without its signature section
    programs: tuple[ProgramSignature, ...]

    def program(self, index: int) -> ProgramSignature:
        return self.programs[index]

    @property
    def program_signatures(self) -> dict[str, bytes]:
        """Program name -> signature that a 6.18 kernel can check over the instructions as
        signed (layout ``insns``); empty for ``insns+metadata``, which no 6.18 kernel checks.

        ``load --keyring`` passes these to ``BPF_PROG_LOAD`` as they are; when the
        instructions as loaded differ from the signed ones the loader says so
        (:func:`sigbpf.kernel.loader.signed_insns_note`, docs/FORMAT.md 5.5)."""
        if self.layout is not SignatureLayout.INSNS:
            return {}
        return {p.name: p.signature for p in self.programs}

    def describe(self) -> str:
        return (f"layout {self.layout.label}, {len(self.programs)} program"
                f"{'s' if len(self.programs) != 1 else ''}, signed by {self.signer}")

    def as_json(self) -> dict[str, Any]:
        return {
            "verified": True,
            "verified_by": "userspace",
            "layout": self.layout.label,
            "signer": self.signer,
            "key_id": self.key_id.hex() if self.key_id else None,
            "metadata_sha256": self.metadata_sha256.hex(),
            "artifact_sha256": self.artifact_sha256.hex(),
            "programs": [{
                "index": p.index, "name": p.name, "signature_size": len(p.signature),
                "insns_sha256": p.insns_sha256.hex(), "signed_sha256": p.signed_sha256.hex(),
                "kernel_checkable": self.layout is SignatureLayout.INSNS,
            } for p in self.programs],
        }


class VerifiedArtifact(NamedTuple):
    """``(artifact, signatures)``; unpacks as a tuple, or use the attributes."""

    artifact: "Artifact"                # the artifact that was signed, without its signatures
    signatures: VerifiedSignatures

    @property
    def program_signatures(self) -> dict[str, bytes]:
        return self.signatures.program_signatures

    def describe(self) -> str:
        return self.signatures.describe()


def _certificate(cert: "x509.Certificate | bytes", cert_file: str | None) -> "x509.Certificate":
    from cryptography import x509

    from sigbpf.sign.keys import load_certificate

    if isinstance(cert, x509.Certificate):
        return cert
    if isinstance(cert, (bytes, bytearray, memoryview)):
        return load_certificate(bytes(cert), file=cert_file)
    raise TypeError(f"cert must be an x509.Certificate or bytes, not {type(cert).__name__}")


def verify_signed(data: bytes, cert: "x509.Certificate | bytes", *, file: str | None = None,
                  cert_file: str | None = None,
                  now: "datetime.datetime | None" = None) -> VerifiedArtifact:
    """Verify a signed artifact against *cert* (x509.Certificate, or PEM/DER bytes).

    Returns ``(artifact, VerifiedSignatures)``; the artifact is the one that was
    signed (without its signature section).  Raises as the module docstring says.
    """
    try:
        return _verify(bytes(data), cert, cert_file, now)
    except KeyMaterialError:
        raise  # about the certificate, located by cert_file
    except SigbpfError as err:
        raise err.at(file=file)


def _verify(data: bytes, cert_in: "x509.Certificate | bytes", cert_file: str | None,
            now: "datetime.datetime | None") -> VerifiedArtifact:
    from sigbpf.artifact.format import Artifact
    from sigbpf.sign.keys import check_certificate, describe_certificate, subject_key_identifier
    from sigbpf.sign.pkcs7 import verify_detached
    from sigbpf.sign.signed import split_signed

    cert = _certificate(cert_in, cert_file)
    check_certificate(cert, now=now, file=cert_file)
    artifact = Artifact.decode(data)
    unsigned, section = split_signed(artifact)
    if section is None:
        raise SignatureError("artifact is not signed (no signature section)")
    if len(section.program_signatures) != len(unsigned.programs):
        raise SignatureError(f"signature section has {len(section.program_signatures)} program "
                             f"signatures, the artifact has {len(unsigned.programs)} programs")
    try:
        stored = Metadata.decode(section.metadata_blob)
    except FormatError as err:
        at = f" (byte {err.offset} of the metadata blob)" if err.offset is not None else ""
        raise FormatError(f"signature section: {err.message}{at}") from None
    if stored.layout != section.layout:
        raise SignatureError(f"metadata layout {stored.layout.label} does not match the "
                             f"signature section's {section.layout.label}")
    blob = section.metadata_blob
    actual = artifact_metadata(section.layout, unsigned)

    def insns_changed(index: int, insns: bytes) -> bool:
        signed_item = stored.find(ItemKind.PROGRAM_INSNS, index)
        return signed_item is None or signed_item.digest != hashlib.sha256(insns).digest()

    def blob_changed(err: SignatureError) -> SignatureError:
        """A signature that covers the blob failed: when the stored blob is no longer the
        artifact's own metadata, say that the blob was changed (else keep *err*)."""
        if "another key" in err.message or blob == actual.encode():
            return err
        return SignatureError("metadata blob (signature section): changed since signing "
                              "(its signature does not match it)")

    programs: list[ProgramSignature] = []
    if section.layout is SignatureLayout.INSNS:
        try:
            verify_detached(section.metadata_signature, blob, cert, what="metadata signature")
        except SignatureError as err:
            raise blob_changed(err) from None
        compare_metadata(stored, actual)
    for i, (prog, sig) in enumerate(zip(unsigned.programs, section.program_signatures)):
        insns = prog.insn_bytes
        covered = signed_bytes(section.layout, insns, blob)
        what = f"program {i} '{prog.name}' signature"
        try:
            verify_detached(sig, covered, cert, what=what)
        except SignatureError as err:
            if "another key" not in err.message and insns_changed(i, insns):
                raise SignatureError(f"program {i} '{prog.name}' instructions: changed since "
                                     "signing (its signature does not match them)") from None
            if section.layout is SignatureLayout.INSNS_METADATA:
                raise blob_changed(err) from None
            raise
        programs.append(ProgramSignature(i, prog.name, sig, hashlib.sha256(insns).digest(),
                                         hashlib.sha256(covered).digest()))
    if section.layout is SignatureLayout.INSNS_METADATA:
        compare_metadata(stored, actual)
    signatures = VerifiedSignatures(
        layout=section.layout, signer=describe_certificate(cert),
        key_id=subject_key_identifier(cert),
        metadata_sha256=hashlib.sha256(blob).digest(),
        artifact_sha256=hashlib.sha256(unsigned.encode()).digest(),
        programs=tuple(programs))
    return VerifiedArtifact(unsigned, signatures)
