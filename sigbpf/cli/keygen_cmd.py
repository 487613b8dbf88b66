"""``sigbpf keygen``: make an RSA signing key and a self-signed certificate.

Writes into ``--out DIR``: ``signing_key.pem`` and ``signing_key.der`` (the
private key, PKCS#8, mode 0600) and ``signing_cert.pem`` and
``signing_cert.der`` (the certificate).  Each file is written atomically; the
key files are written first, so a failure never leaves a certificate without
its key.
"""

from __future__ import annotations

import argparse
import os


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="directory to write the key and certificate into (made if missing)")
    parser.add_argument("--bits", type=int, default=4096, help="RSA key size (default 4096)")
    parser.add_argument("--days", type=int, default=36500,
                        help="certificate validity in days (default 36500, like the kernel's)")
    parser.add_argument("--subject", default="sigbpf signing key", metavar="CN",
                        help="the certificate's common name")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")


def run(args: argparse.Namespace) -> int:
    from sigbpf.cli.output import emit_json
    from sigbpf.fileio import write_atomic
    from sigbpf.errors import FormatError, UsageError
    from sigbpf.sign import keys

    out = args.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise FormatError("exists and is not a directory", file=out)
    names = (keys.KEY_PEM, keys.KEY_DER, keys.CERT_PEM, keys.CERT_DER)
    paths = [os.path.join(out, name) for name in names]
    existing = [p for p in paths if os.path.exists(p)]
    if existing and not args.force:
        raise UsageError(f"{existing[0]} exists; pass --force to overwrite it")
    pair = keys.generate_key_pair(args.subject, bits=args.bits, days=args.days)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as err:
        raise FormatError(f"cannot make directory: {err.strerror or err}", file=out) from None
    contents = (
        (keys.encode_private_key(pair.key, pem=True), 0o600),
        (keys.encode_private_key(pair.key, pem=False), 0o600),
        (keys.encode_certificate(pair.cert, pem=True), 0o644),
        (keys.encode_certificate(pair.cert, pem=False), 0o644),
    )
    for path, (data, mode) in zip(paths, contents):
        write_atomic(path, data, mode=mode)
    ski = keys.subject_key_identifier(pair.cert)
    if args.json:
        emit_json({"key": paths[0], "key_der": paths[1], "cert": paths[2], "cert_der": paths[3],
                   "subject": pair.cert.subject.rfc4514_string(),
                   "key_id": ski.hex() if ski else None, "bits": args.bits,
                   "not_after": pair.cert.not_valid_after_utc.isoformat()})
    else:
        print(f"key:  {paths[0]} (and {names[1]}), mode 0600")
        print(f"cert: {paths[2]} (and {names[3]}), {pair.cert.subject.rfc4514_string()}, "
              f"key id {ski.hex() if ski else '-'}")
    return 0
