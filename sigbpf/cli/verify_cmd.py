"""``sigbpf verify``: check a signed artifact against a certificate, in userspace.

``sigbpf verify SIGNED --cert CERT [--json] [--extract DIR]``

``--extract DIR`` (only after the artifact verified) writes each signature and
the exact bytes it covers, ``program-<i>.p7s``/``program-<i>.payload`` and, for
layout ``insns``, ``metadata.p7s``/``metadata.payload``, so that other tools can
check them: ``openssl cms -verify -binary -inform DER -noverify -in
program-0.p7s -content program-0.payload -certfile CERT``.

Exit 0 only for an intact artifact signed by the certificate's key; exit 1
with a message naming what does not match (which program's signature, the
metadata signature, which item: program BTF, map N initial data, ...); exit 2
for unreadable or malformed input and unusable certificates.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="SIGNED", help="a signed artifact (sigbpf sign)")
    parser.add_argument("--cert", required=True, help="the signer's X.509 certificate, PEM or DER")
    parser.add_argument("--json", action="store_true",
                        help="print the result as JSON (also on failure, before the error line)")
    parser.add_argument("--extract", metavar="DIR",
                        help="once verified, write each signature (.p7s) and the bytes it covers "
                             "(.payload) into DIR, for openssl cms -verify or other tools")


def run(args: argparse.Namespace) -> int:
    from sigbpf.cli.output import emit_json
    from sigbpf.fileio import read_input
    from sigbpf.errors import SigbpfError
    from sigbpf.sign.verify import verify_signed

    try:
        cert = read_input(args.cert)
        data = read_input(args.input)
        artifact, verified = verify_signed(data, cert, file=args.input, cert_file=args.cert)
    except SigbpfError as err:
        if args.json:
            emit_json({"verified": False, "error": str(err), "exit_code": err.exit_code})
        raise
    extracted = _extract(args.extract, data) if args.extract is not None else []
    if args.json:
        emit_json({"file": args.input, "artifact": artifact.name, **verified.as_json(),
                   **({"extracted": extracted} if args.extract is not None else {})})
        return 0
    print(f"{args.input}: OK, verified in userspace: {verified.describe()}")
    for entry in extracted:
        print(f"  wrote {entry['signature']} and {entry['payload']} ({entry['what']})")
    for prog in verified.programs:
        print(f"  program {prog.index} '{prog.name}': insns sha256 {prog.insns_sha256.hex()}")
    print(f"  metadata sha256 {verified.metadata_sha256.hex()} "
          "(program BTF, maps and initial data, func/line info, CO-RE relocations, license, "
          "kfunc table)")
    return 0


def _extract(directory: str, data: bytes) -> list[dict[str, str]]:
    """Write the signatures of the (verified) signed artifact *data* and what each covers."""
    import os

    from sigbpf.artifact.format import Artifact
    from sigbpf.errors import FormatError
    from sigbpf.fileio import write_atomic
    from sigbpf.sign.signed import signed_parts, split_signed

    if os.path.exists(directory) and not os.path.isdir(directory):
        raise FormatError("--extract: exists and is not a directory", file=directory)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as err:
        raise FormatError(f"--extract: cannot make directory: {err.strerror or err}",
                          file=directory) from None
    unsigned, section = split_signed(Artifact.decode(data))
    written = []
    for part in signed_parts(unsigned, section):
        sig = os.path.join(directory, f"{part.stem}.p7s")
        payload = os.path.join(directory, f"{part.stem}.payload")
        write_atomic(sig, part.signature)
        write_atomic(payload, part.payload)
        written.append({"what": part.what, "signature": sig, "payload": payload})
    return written
