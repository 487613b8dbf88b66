"""``sigbpf load``: load (and run) an artifact or a BPF object in the running kernel.

::

    sigbpf load ARTIFACT|OBJ [--run] [--ctx HEX] [--json]
                [--cert CERT [--keyring session|builtin|ID]]
                [--resolution auto|kernel|userspace] [--no-*-check]

An object (ELF) is first built into an artifact in memory, as ``sigbpf
build`` would.  The loader probes whether the kernel resolves ``src_reg 3``
kfunc calls itself and says which path ran (``resolution``).
``--resolution kernel|userspace`` forces a path.  Forcing ``kernel`` on a
kernel without the seed's pass (6.18 here) hands it the ``src_reg 3`` calls
anyway: the text output shows the probe's answer next to the forced path,
and each program with such a call is refused with the verifier's "BPF_CALL
uses reserved fields" and an error line saying that this kernel does not
resolve them itself (exit 1); programs without kfunc calls load unchanged.

Before the kernel sees a program, the seed's pass and sigbpf's checks run
as in ``sigbpf resolve`` (``--no-proto-check``, ``--no-kfunc-check``,
``--no-module-check``; the module check reads the loaded modules' BTF from
/sys/kernel/btf); warnings are printed as notes, errors refuse the program.

Signed artifacts: with ``--cert`` the signature is verified in userspace
*before anything reaches the kernel*; a bad signature stops here (exit 1).
With ``--keyring`` the per-program signatures are also passed to
``BPF_PROG_LOAD`` (``signature``, ``signature_size``, ``keyring_id``;
``session`` adds the certificate to the session keyring first and removes
it afterwards), and the kernel's answer is reported.  They are passed even
when the instructions as loaded differ from the signed ones (userspace
resolution, weak kfunc binding); the output then says so in a note
(docs/FORMAT.md 5.5).  A kernel that cannot
check signatures (6.18 here: EOPNOTSUPP) is a refusal with a message saying
so and that userspace verified the signature, never a silent success (exit
1); so is a ``keyring_id`` that names no key or keyring (EINVAL, no log).

JSON (``--json``)::

    {"resolution": "kernel"|"userspace",
     "programs": [{"name": str, "loaded": bool, "retval": int|null, "log": str}],
     "kfuncs": [{"name": str, "btf_id": int}]}

``retval`` is the 32-bit return value as a signed C int (null unless run);
``log`` is the full verifier log of a refused program ("" when loaded; the
resolution pass's and sigbpf's check lines when refused before the kernel);
a kfunc's ``btf_id`` is its id in the running kernel's BTF, 0 when the kernel
lacks it (a weak kfunc is then bound away; a strong one refuses the program).
A signed artifact adds ``"signature"``: with ``--cert``, what ``verify --json``
says (``"verified": true, "verified_by": "userspace"``, layout, signer, ...)
plus ``"passed_to_kernel"``, ``"keyring_id"`` and ``"notes"``; without it,
``{"verified": false, "notes": [...]}``.  (When the signature does not verify,
nothing is loaded and no JSON is printed: one error line, exit 1.)

Exit status: 0 every program loaded (and ran), 1 the kernel (or a check, or
a signature) refused, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.artifact.format import Artifact
    from sigbpf.kernel.loader import LoadReport

ELF_MAGIC = b"\x7fELF"


def configure(parser: argparse.ArgumentParser) -> None:
    from sigbpf.cli.resolve_cmd import add_check_flags

    parser.add_argument("input", metavar="ARTIFACT|OBJ", help="a portable artifact or a BPF object")
    parser.add_argument("--run", action="store_true",
                        help="run each syscall program once (BPF_PROG_RUN) after loading")
    parser.add_argument("--ctx", metavar="HEX", default="",
                        help="context bytes for --run, in hex (e.g. 01000000 0a000000)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--cert", metavar="CERT",
                        help="verify the artifact's signature with this certificate (PEM or DER) "
                             "before loading")
    parser.add_argument("--keyring", metavar="session|builtin|ID",
                        help="also pass the signatures to BPF_PROG_LOAD, for the kernel to check "
                             "against this keyring (session: the certificate is added to the "
                             "session keyring first); a kernel that cannot check signatures "
                             "(EOPNOTSUPP) or finds no such keyring (EINVAL) is exit 1, saying "
                             "that userspace verified the signature")
    parser.add_argument("--resolution", choices=("auto", "kernel", "userspace"), default="auto",
                        help="who resolves src_reg 3 kfunc calls (default: probe the kernel)")
    add_check_flags(parser)


def run(args: argparse.Namespace) -> int:
    from sigbpf.cli.output import emit_json
    from sigbpf.fileio import read_input
    from sigbpf.errors import KernelError, UsageError
    from sigbpf.kernel.loader import load_artifact
    from sigbpf.resolve.report import CheckOptions

    try:
        ctx = bytes.fromhex(args.ctx)
    except ValueError:
        raise UsageError(f"--ctx {args.ctx!r} is not hex bytes") from None
    if args.ctx and not args.run:
        raise UsageError("--ctx goes with --run (the context is for BPF_PROG_RUN)")
    if args.keyring is not None and args.cert is None:
        raise UsageError("--keyring needs --cert (the signature is verified in userspace first)")
    data = read_input(args.input)
    signatures: dict[str, bytes] | None = None
    verified_note = None
    signature_doc: dict[str, object] | None = None  # the JSON "signature" object
    if args.cert is not None:
        artifact, signatures, verified_note, signature_doc = _verify_signed(
            data, args.input, args.cert, args.keyring is not None)
    else:
        artifact = _artifact_from_input(data, args.input)
        if _is_signed(artifact):
            verified_note = ("the artifact is signed, but its signature was NOT verified "
                             "(give --cert CERT to verify it before loading)")
            signature_doc = {"verified": False}

    keyring_id = None
    key_serial = None
    if args.keyring is not None:
        keyring_id, key_serial = _prepare_keyring(args.keyring, args.cert)
        verified_note += f"; passed to BPF_PROG_LOAD with keyring_id {keyring_id}"
        signature_doc.update(passed_to_kernel=True, keyring_id=keyring_id)
        if key_serial is not None:
            verified_note += (f" (the certificate added to the session keyring as asymmetric "
                              f"key {key_serial}, removed after loading)")
    elif signatures is not None:
        signatures = None  # verified in userspace only; nothing signed goes to the kernel
        verified_note += "; not passed to the kernel (no --keyring)"
        signature_doc.update(passed_to_kernel=False, keyring_id=None)
    options = CheckOptions(prototype=args.proto_check, kfunc=args.kfunc_check,
                           module=args.module_check)
    try:
        try:
            loaded = load_artifact(artifact, run=args.run, ctx=ctx,
                                   resolution=None if args.resolution == "auto" else args.resolution,
                                   signatures=signatures, keyring_id=keyring_id, checks=options,
                                   file=args.input)
        except KernelError as err:
            if err.log and not args.json:
                print(f"kernel log:\n{err.log.rstrip()}")
            raise
    finally:
        if key_serial is not None:
            from sigbpf.kernel.keyring import unlink_key

            unlink_key(key_serial)
    with loaded:
        report = loaded.report
        if verified_note:
            report.notes.insert(0, verified_note)
        if args.json:
            doc = report.as_json()
            if signature_doc is not None:
                signature_doc["notes"] = [n for n in report.notes if n == verified_note
                                          or "differ from the signed ones" in n]
                doc["signature"] = signature_doc
            emit_json(doc)
        else:
            _print_text(report, args.run)
        failures = [p for p in report.programs if not p.loaded or p.error]
        if failures:
            first = failures[0]
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            print(f"sigbpf: error: {first.error or first.name + ' refused'}{more}", file=sys.stderr)
            return 1
    return 0


def _artifact_from_input(data: bytes, path: str) -> "Artifact":
    """An artifact from its bytes, or built in memory from a BPF object."""
    from sigbpf.artifact.format import Artifact, is_artifact
    from sigbpf.errors import FormatError

    if is_artifact(data):
        return Artifact.decode(data, file=path)
    if data[:4] == ELF_MAGIC:
        from sigbpf.artifact.build import build_artifact

        return build_artifact(data, path)
    raise FormatError("neither a sigbpf artifact nor a BPF object (ELF)", file=path, offset=0)


def _is_signed(artifact: "Artifact") -> bool:
    from sigbpf.artifact.format import SIGNATURE_FIRST, SIGNATURE_LAST

    return any(SIGNATURE_FIRST <= ext.type <= SIGNATURE_LAST for ext in artifact.extensions)


def _verify_signed(data: bytes, path: str, cert_path: str, to_kernel: bool
                   ) -> tuple["Artifact", dict[str, bytes], str, dict[str, object]]:
    """Verify a signed artifact in userspace: (artifact, per-program signatures, note, the
    JSON "signature" object: what ``verify --json`` says).

    With *to_kernel* (``--keyring``) the signatures must be of a layout the
    kernel checks (``insns``); ``insns+metadata`` is refused as a usage error.
    """
    from sigbpf.artifact.format import is_artifact
    from sigbpf.fileio import read_input
    from sigbpf.errors import UsageError
    from sigbpf.sign.verify import verify_signed

    if not is_artifact(data):
        raise UsageError(f"{path}: --cert needs a signed artifact (sign it with `sigbpf sign`)")
    verified = verify_signed(data, read_input(cert_path), file=path, cert_file=cert_path)
    signatures = verified.program_signatures
    if to_kernel and not signatures and verified.artifact.programs:
        raise UsageError(f"{path}: --keyring: signature layout {verified.signatures.layout.label} "
                         f"is not one a kernel checks (6.18 checks the instructions only); "
                         f"load without --keyring (verified in userspace) or sign with --layout insns")
    return (verified.artifact, signatures,
            f"signature verified in userspace with {cert_path} ({verified.describe()})",
            verified.signatures.as_json())


def _prepare_keyring(spec: str, cert_path: str) -> tuple[int, int | None]:
    """keyring_id for BPF_PROG_LOAD; with ``session`` the certificate is added first."""
    from sigbpf.fileio import read_input
    from sigbpf.kernel.keyring import KEY_SPEC_SESSION_KEYRING, add_asymmetric_key, keyring_id
    from sigbpf.sign.keys import encode_certificate, load_certificate

    kid = keyring_id(spec)
    if kid != KEY_SPEC_SESSION_KEYRING:
        return kid, None
    cert = load_certificate(read_input(cert_path), file=cert_path)
    serial = add_asymmetric_key("sigbpf: " + cert.subject.rfc4514_string(),
                                encode_certificate(cert, pem=False))
    return kid, serial


def _print_text(report: "LoadReport", run: bool) -> None:
    print(f"resolution: {report.resolution.value} ({report.probe_detail})")
    for note in report.notes:
        print(f"note: {note}")
    if report.kfuncs:
        print("kfuncs:")
        width = max(len(k.name) for k in report.kfuncs)
        for k in report.kfuncs:
            if k.present:
                where = f"btf_id {k.btf_id}"
            else:
                where = "absent from this kernel" + (" (weak: its uses are bound away)" if k.weak else "")
            print(f"  {k.name:<{width}}  {where}")
    for p in report.programs:
        if not p.loaded:
            print(f"program {p.name}: REFUSED: {p.error}")
            if p.log:
                print("verifier log:" if p.refused_by == "kernel" else
                      "log (resolution pass and checks, in userspace, before the kernel):")
                for line in p.log.rstrip("\n").splitlines():
                    print(f"  {line}")
        elif p.error:
            print(f"program {p.name}: loaded, run FAILED: {p.error}")
        elif p.ran:
            print(f"program {p.name}: loaded, ran, retval {p.retval}")
        else:
            print(f"program {p.name}: loaded" + (" (not run)" if run else ""))
