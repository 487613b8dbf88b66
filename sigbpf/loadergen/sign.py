"""Signing a loader file in the kernel's format, and verifying it in userspace.

What the signature covers is what the kernel checks for the loader's
``BPF_PROG_LOAD`` (docs/FORMAT.md 8.4):

* **v1** (6.18, libbpf 1.7, ``bpftool prog load -S`` / ``gen skeleton -L -S``): the
  loader's instructions exactly, ``insn_cnt * 8`` bytes.  The blob is bound by the
  SHA-256 built into those instructions, which the loader itself compares with the
  frozen exclusive blob map's ``map->sha`` when it runs.
* **v2** (bpf-next, "bpf: Verify signed loader metadata at load time"): the
  instructions followed by the frozen contents of each exclusive map in
  ``fd_array`` order -- for a sigbpf loader, its one blob map: ``insns || blob``.

One piece of code makes every signature of sigbpf: :func:`sigbpf.sign.pkcs7.sign_detached`
(detached, SHA-256, no attributes, no certificates, signer by key id); one checks it:
:func:`sigbpf.sign.pkcs7.verify_detached`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sigbpf.errors import FormatError, SignatureError
from sigbpf.loadergen.format import MAX_SIGNATURE_SIZE, Loader, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True, slots=True)
class VerifiedLoader:
    """What userspace verification of a signed loader established."""

    protocol: Protocol
    signer: str               # the certificate: subject and key id
    key_id: bytes | None      # the signature's signer (subject key identifier)
    covers: str               # "insns" (v1) or "insns+blob" (v2)
    payload_size: int         # bytes the signature covers
    payload_sha256: bytes
    blob_sha256: bytes        # v1: also the hash built into the signed instructions

    def describe(self) -> str:
        if self.protocol is Protocol.V2:
            what = f"the loader's instructions || its blob ({self.payload_size} bytes)"
        else:
            what = (f"the loader's {self.payload_size // 8} instructions (the blob through the "
                    f"SHA-256 built into them)")
        return f"signed by {self.signer}; covers {what}"

    def as_json(self) -> dict[str, Any]:
        return {"protocol": f"v{int(self.protocol)}", "signer": self.signer,
                "key_id": self.key_id.hex() if self.key_id else None, "covers": self.covers,
                "payload_size": self.payload_size, "payload_sha256": self.payload_sha256.hex(),
                "blob_sha256": self.blob_sha256.hex()}


def covers(protocol: Protocol) -> str:
    """What a loader signature of *protocol* covers, as a label."""
    return "insns+blob" if protocol is Protocol.V2 else "insns"


def embedded_blob_hash(loader: Loader) -> bytes | None:
    """Protocol v1: the SHA-256 the loader's prologue compares ``map->sha`` with (the four
    ``ld_imm64`` constants of ``signature_match``); None when there is none."""
    from sigbpf.loadergen.emit import MAP_SHA_OFFSET

    insns = loader.insns
    words: list[int] = []
    i = 0
    # signature_match: per word, ld_imm64 r1 map; ldx r2 [r1 + sha + 8k]; ld_imm64 r3 sha_k; jne
    while i + 1 < len(insns) and len(words) < 4:
        ins = insns[i]
        if (ins.code == 0x79 and ins.off == MAP_SHA_OFFSET + 8 * len(words)
                and i + 2 < len(insns) and insns[i + 1].code == 0x18 and insns[i + 1].src == 0):
            lo, hi = insns[i + 1].imm & 0xFFFFFFFF, insns[i + 2].imm & 0xFFFFFFFF
            words.append(lo | hi << 32)
            i += 3
            continue
        i += 1
    if len(words) != 4:
        return None
    return b"".join(w.to_bytes(8, "little") for w in words)


def sign_loader(data: bytes, key: "rsa.RSAPrivateKey", cert: "x509.Certificate", *,
                file: str | None = None) -> bytes:
    """The signed loader file: *data* (an unsigned loader file) with its signature.

    Deterministic (PKCS#1 v1.5): the same loader and key give the same bytes.  Refuses a
    signed loader, and a signature over :data:`MAX_SIGNATURE_SIZE` bytes."""
    from sigbpf.sign.keys import check_key_matches_certificate
    from sigbpf.sign.pkcs7 import sign_detached

    loader = Loader.decode(data, file=file)
    if loader.signature:
        raise FormatError("the loader is already signed", file=file)
    if loader.protocol is Protocol.V1 and embedded_blob_hash(loader) != loader.blob_sha256:
        raise FormatError("protocol v1 loader without its blob's SHA-256 in its instructions "
                          "(the signature would not bind the blob)", file=file)
    check_key_matches_certificate(key, cert)
    sig = sign_detached(loader.signed_payload, key, cert)
    if len(sig) > MAX_SIGNATURE_SIZE:
        raise SignatureError(f"the signature is {len(sig)} bytes, over the {MAX_SIGNATURE_SIZE} "
                             f"bytes BPF_PROG_LOAD takes from bpftool (use a smaller key)",
                             file=file)
    signed = dataclasses.replace(loader, signature=sig).encode()
    verify_loader(Loader.decode(signed), cert, file=file)
    return signed


def verify_loader(loader: Loader, cert: "x509.Certificate | bytes", *, file: str | None = None,
                  cert_file: str | None = None) -> VerifiedLoader:
    """Check *loader*'s signature with *cert* over what the kernel would check, and (v1) that
    its blob is the one the signed instructions name.  SignatureError (exit 1) otherwise;
    FormatError for a malformed signature; KeyMaterialError for an unusable certificate."""
    from sigbpf.sign.keys import (
        check_certificate, describe_certificate, load_certificate, subject_key_identifier,
    )
    from sigbpf.sign.pkcs7 import verify_detached

    if not isinstance(cert, (bytes, bytearray)):
        certificate = cert
    else:
        certificate = load_certificate(bytes(cert), file=cert_file)
    check_certificate(certificate)
    if not loader.signature:
        raise SignatureError("the loader is not signed (sign it with `sigbpf sign`)", file=file)
    payload = loader.signed_payload
    what = (f"loader signature (protocol v{int(loader.protocol)}, over "
            f"{'its instructions' if loader.protocol is Protocol.V1 else 'insns || blob'})")
    try:
        verify_detached(loader.signature, payload, certificate, what=what)
    except (SignatureError, FormatError) as err:
        raise err.at(file=file)
    if loader.protocol is Protocol.V1:
        built_in = embedded_blob_hash(loader)
        if built_in != loader.blob_sha256:
            raise SignatureError(
                f"the loader's blob changed since signing: its SHA-256 {loader.blob_sha256.hex()} "
                f"is not the one its signed instructions name "
                f"({built_in.hex() if built_in else 'none'}); the loader's own hash check "
                f"would refuse it", file=file)
    return VerifiedLoader(loader.protocol, describe_certificate(certificate),
                          subject_key_identifier(certificate), covers(loader.protocol),
                          len(payload), hashlib.sha256(payload).digest(), loader.blob_sha256)


__all__ = ["VerifiedLoader", "covers", "embedded_blob_hash", "sign_loader", "verify_loader"]
