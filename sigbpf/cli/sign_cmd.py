"""``sigbpf sign``: sign a portable artifact (docs/FORMAT.md, "Signatures").

``sigbpf sign ARTIFACT --key KEY --cert CERT [--layout insns|insns+metadata] -o SIGNED``
``sigbpf sign LOADER --key KEY --cert CERT -o SIGNED`` (a loader file: its protocol decides
what the signature covers; :func:`sigbpf.cli.loader_cmd.run_sign_loader`)

Key and certificate may be PEM or DER; the certificate must be valid now and
allowed to sign, and the key must be its key.  The signed artifact is written
atomically, and only after it was verified once.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="ARTIFACT|LOADER",
                        help="an unsigned artifact (sigbpf build) or loader file (sigbpf loader)")
    parser.add_argument("--key", required=True, help="RSA private key, PEM or DER, no passphrase")
    parser.add_argument("--cert", required=True, help="the key's X.509 certificate, PEM or DER")
    parser.add_argument("--layout", choices=("insns", "insns+metadata"), default="insns",
                        help="what each program's signature covers (default insns: what a "
                             "6.18 kernel checks; the metadata has its own signature)")
    parser.add_argument("-o", "--output", required=True, metavar="SIGNED",
                        help="where to write the signed artifact")
    parser.add_argument("--json", action="store_true", help="print what was signed as JSON")


def run(args: argparse.Namespace) -> int:
    from sigbpf.cli.output import emit_json
    from sigbpf.fileio import read_input, write_atomic
    from sigbpf.sign.keys import load_key_pair
    from sigbpf.sign.payload import SignatureLayout
    from sigbpf.sign.signed import sign_artifact
    from sigbpf.sign.verify import verify_signed

    from sigbpf.loadergen.magic import is_loader

    data = read_input(args.input)
    if is_loader(data):  # a loader file (sigbpf.loadergen): signed for its protocol
        from sigbpf.cli.loader_cmd import run_sign_loader

        return run_sign_loader(args, data)
    pair = load_key_pair(read_input(args.key), read_input(args.cert),
                         key_file=args.key, cert_file=args.cert)
    signed = sign_artifact(data, pair.key, pair.cert, layout=SignatureLayout.from_label(args.layout),
                           file=args.input)
    write_atomic(args.output, signed)
    _, verified = verify_signed(signed, pair.cert, file=args.output)
    if args.json:
        emit_json({"output": args.output, "size": len(signed), **verified.as_json()})
    else:
        print(f"signed {args.output}: {verified.describe()}")
    return 0
