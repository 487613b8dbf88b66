"""``sigbpf verify``: check a signed artifact against a certificate, in userspace.

``sigbpf verify SIGNED --cert CERT [--json]``

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
    if args.json:
        emit_json({"file": args.input, "artifact": artifact.name, **verified.as_json()})
        return 0
    print(f"{args.input}: OK, verified in userspace: {verified.describe()}")
    for prog in verified.programs:
        print(f"  program {prog.index} '{prog.name}': insns sha256 {prog.insns_sha256.hex()}")
    print(f"  metadata sha256 {verified.metadata_sha256.hex()} "
          "(program BTF, maps and initial data, func/line info, CO-RE relocations, license, "
          "kfunc table)")
    return 0
