"""``sigbpf loader``: generate a signed loader ("light skeleton") from an artifact or object.

::

    sigbpf loader ARTIFACT|OBJ -o LOADER [--protocol auto|v1|v2] [--json]
    sigbpf loader LOADER --disasm
    sigbpf sign LOADER --key KEY --cert CERT -o SIGNED       (run_sign_loader)
    sigbpf load LOADER [--cert CERT] [--keyring KEYRING] [--run --ctx HEX]   (run_loader_file)
                       [--attach [--iface ...]] [--pin DIR] [--duration S]

``--protocol auto`` (the default) probes which protocol the running kernel
implements (:mod:`sigbpf.loadergen.probe`) and says so.

The loader file (docs/FORMAT.md, "The signed loader file") holds one
``BPF_PROG_TYPE_SYSCALL`` loader program and its data blob; ``sigbpf load
LOADER [--run --ctx HEX]`` runs it (:func:`run_loader_file`, reached through
``sigbpf load``'s dispatch on the file's magic).  Generation is deterministic.
``--disasm`` prints a loader readably: labels, the emitters' comments, blob
addresses.

A loader file is signed in the kernel's format for its protocol
(:mod:`sigbpf.loadergen.sign`, docs/FORMAT.md 8.4) by ``sigbpf sign``, which
hands a loader to :func:`run_sign_loader`; ``sigbpf load`` verifies it in
userspace (``--cert``) and/or has the kernel check it (``--keyring``).
"""

from __future__ import annotations

import argparse
import errno
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="ARTIFACT|OBJ|LOADER",
                        help="a portable artifact or BPF object (or, with --disasm, a loader)")
    parser.add_argument("-o", "--output", metavar="LOADER", help="where to write the loader")
    parser.add_argument("--protocol", choices=("auto", "v1", "v2"), default="auto",
                        help="v1 (6.18): the loader checks its blob's hash itself; v2 (7.3): the "
                             "kernel checks insns||blob (fd_array_cnt), no check in the loader; "
                             "auto (default): the running kernel's, probed")
    parser.add_argument("--own-kfuncs", action="store_true",
                        help="the loader calls kfuncs itself, in PROG_BTF form against its own BTF "
                             "(its cleanup is a bpf_iter_num loop): the seed's scenario; a kernel "
                             "without the seed refuses it signed, and sigbpf load resolves its "
                             "calls in userspace when it is not")
    parser.add_argument("--disasm", action="store_true",
                        help="print the loader (the input, or the one just generated) readably")
    parser.add_argument("--json", action="store_true", help="print a JSON summary")


def summary(loader) -> dict[str, object]:
    return {"protocol": f"v{int(loader.protocol)}", "insns": len(loader.insns),
            "own_kfuncs": [n for n, _ in loader.own_btf.kfunc_ids] if loader.own_btf else [],
            "blob_size": len(loader.blob), "ctx_size": loader.ctx_size,
            "loader_sha256": loader.insns_sha256.hex(), "blob_sha256": loader.blob_sha256.hex(),
            "maps": [m.name for m in loader.maps], "programs": [p.name for p in loader.progs]}


def run(args: argparse.Namespace) -> int:
    from sigbpf.cli.output import emit_json
    from sigbpf.errors import UsageError
    from sigbpf.fileio import read_input, write_atomic
    from sigbpf.loadergen.format import Loader, is_loader
    from sigbpf.loadergen.listing import listing

    data = read_input(args.input)
    probed = None
    if is_loader(data):
        if not args.disasm or args.output:
            raise UsageError(f"{args.input} is already a loader (use --disasm to show it)")
        loader = Loader.decode(data, file=args.input)
    else:
        if not args.output:
            raise UsageError("-o LOADER is required to generate a loader")
        from sigbpf.cli.load_cmd import _artifact_from_input
        from sigbpf.loadergen.generate import generate

        artifact = _artifact_from_input(data, args.input)
        if args.protocol == "auto":
            from sigbpf.loadergen.probe import probe_protocol

            probed = probe_protocol()
            if probed.protocol is None:
                raise UsageError(f"--protocol auto: {probed.describe()}; give --protocol v1 "
                                 f"or v2")
        loader = generate(artifact, probed.protocol if probed else int(args.protocol[1:]),
                          own_kfuncs=args.own_kfuncs)
        write_atomic(args.output, loader.encode())
    if args.disasm:
        print(listing(loader), end="")
    elif args.json:
        doc = summary(loader)
        if probed is not None:
            doc["protocol_probe"] = probed.answer
        emit_json(doc)
    else:
        how = f" ({probed.describe()})" if probed is not None else ""
        own = (f", own kfunc calls ({', '.join(n for n, _ in loader.own_btf.kfunc_ids)}: PROG_BTF "
               f"form)" if loader.own_btf is not None else "")
        print(f"{args.output}: loader protocol v{int(loader.protocol)}{how}, {len(loader.insns)} "
              f"insns, blob {len(loader.blob)} bytes, {len(loader.maps)} map(s), "
              f"{len(loader.progs)} program(s){own}")
    return 0


#: errno -> what a kernel's refusal of a signed BPF_PROG_LOAD means (docs/FORMAT.md 8.4).
KERNEL_SIGNATURE_ERRORS: dict[str, str] = {
    "EKEYREJECTED": "the signature does not match the loader's bytes",
    "EBADMSG": "the signature is malformed",
    "ENOKEY": "no key in that keyring made the signature",
    "EINVAL": "the kernel found no such key or keyring",
    "EOPNOTSUPP": "this kernel cannot check signatures (no CONFIG_SYSTEM_DATA_VERIFICATION)",
}


def last_log_line(log: str | None) -> str:
    """The verifier's last word in *log* (its closing statistics line left out), or ""."""
    lines = [line.strip() for line in (log or "").splitlines()
             if line.strip() and not line.startswith("processed ")]
    return lines[-1] if lines else ""


def explain_signed_refusal(err, keyring: str, verified_in_userspace: bool) -> str:
    """One line for a kernel refusal of the signed loader: errno, what it means, who verified."""
    from sigbpf.errors import errno_name

    name = errno_name(err.errno) or f"errno {err.errno}"
    if name == "ENOTSUP":  # the same value (95); the kernel's name for it is EOPNOTSUPP
        name = "EOPNOTSUPP"
    log = (err.log or "").strip()
    last = last_log_line(log)
    if name == "EINVAL" and log:
        meaning = f"the verifier refused the loader: {last}"
    else:
        meaning = KERNEL_SIGNATURE_ERRORS.get(name, err.message)
        if last:
            meaning += f" (kernel log: {last})"
        if "fd_array_cnt" in last:
            meaning += ("; this kernel checks insns || the metadata map: use a protocol v2 loader "
                        "(sigbpf loader --protocol v2)")
    if name == "EINVAL" and not log:
        meaning += f" (--keyring {keyring})"
    if "signature verification passed" in log:  # 7.3 logs it before any later refusal
        meaning += " (after 'signature verification passed': the kernel verified the signature)"
    tail = ("; userspace verified the signature" if verified_in_userspace
            else "; not verified in userspace (no --cert)")
    label = f"{name} (ENOTSUP)" if name == "EOPNOTSUPP" else name
    return f"the kernel refused the signed loader (keyring {keyring}): {label}: {meaning}{tail}"


def run_sign_loader(args: argparse.Namespace, data: bytes) -> int:
    """``sigbpf sign LOADER --key KEY --cert CERT -o SIGNED``: sign a loader file in the kernel's
    format for its protocol (v1: its instructions; v2: insns || blob)."""
    from sigbpf.cli.output import emit_json
    from sigbpf.errors import UsageError
    from sigbpf.fileio import read_input, write_atomic
    from sigbpf.loadergen.format import Loader
    from sigbpf.loadergen.sign import sign_loader, verify_loader
    from sigbpf.sign.keys import load_key_pair

    if getattr(args, "layout", "insns") != "insns":
        raise UsageError("--layout does not apply to a loader file (its protocol decides what "
                         "the signature covers)")
    pair = load_key_pair(read_input(args.key), read_input(args.cert),
                         key_file=args.key, cert_file=args.cert)
    signed = sign_loader(data, pair.key, pair.cert, file=args.input)
    write_atomic(args.output, signed)
    loader = Loader.decode(signed, file=args.output)
    verified = verify_loader(loader, pair.cert, file=args.output)
    if args.json:
        emit_json({"output": args.output, "size": len(signed), "loader": True,
                   "signature_size": len(loader.signature), **verified.as_json()})
    else:
        print(f"signed loader {args.output}: protocol v{int(loader.protocol)}, "
              f"{verified.describe()}; signature {len(loader.signature)} bytes")
    return 0


def run_loader_file(args: argparse.Namespace, data: bytes) -> int:  # noqa: C901
    """``sigbpf load LOADER [--cert CERT] [--keyring KEYRING] [--run --ctx HEX] [--json]``: run
    the loader (skel_internal.h's ``bpf_load_and_run``), then, with ``--run``, each syscall
    program it loaded.

    A signed loader: ``--cert`` verifies it in userspace first (nothing reaches the kernel
    when that fails); ``--keyring`` passes its signature to the loader's ``BPF_PROG_LOAD``
    (``session``: the certificate is added to the session keyring first and unlinked
    after).  The output says who verified it: userspace, the kernel, or both."""
    from sigbpf.cli.output import emit_json
    from sigbpf.errors import KernelError, UsageError
    from sigbpf.elf.progtypes import ProgType
    from sigbpf.fileio import read_input
    from sigbpf.kernel.run import run_program
    from sigbpf.loadergen.format import Loader
    from sigbpf.loadergen.run import LoaderError, SignedLoadRefused, load_and_run

    if getattr(args, "programs", None):
        raise UsageError("--programs does not apply to a loader file (it loads its programs)")
    from sigbpf.cli.load_cmd import parse_ctx

    ctx = parse_ctx(args)
    loader = Loader.decode(data, file=args.input)
    # The artifact path's checks, before anything reaches the kernel: the flags go together,
    # every program has a plan (its section), the --pin directory is usable.
    from sigbpf.cli.load_cmd import _attach_options, _check_before_loading

    attach_options = _attach_options(args)  # None: neither --attach nor --pin
    if attach_options is not None:
        from sigbpf.loadergen.run import attach_view

        _check_before_loading(attach_view(loader), args, attach_options)
    cert_path, keyring = getattr(args, "cert", None), getattr(args, "keyring", None)
    if (cert_path or keyring is not None) and not loader.signature:
        raise UsageError(f"{args.input}: the loader is not signed (sign it with `sigbpf sign`)")
    if keyring == "session" and not cert_path:
        raise UsageError("--keyring session needs --cert (the certificate is added to the "
                         "session keyring)")
    verified_by: list[str] = []
    notes: list[str] = []
    signature_doc: dict[str, object] | None = None
    if loader.signature:
        signature_doc = {"signed": True, "protocol": f"v{int(loader.protocol)}",
                         "signature_size": len(loader.signature)}
    if cert_path:
        from sigbpf.loadergen.sign import verify_loader

        verified = verify_loader(loader, read_input(cert_path), file=args.input,
                                 cert_file=cert_path)
        verified_by.append("userspace")
        notes.append(f"signature verified in userspace with {cert_path} ({verified.describe()})")
        signature_doc.update(verified.as_json())
    elif loader.signature and keyring is None:
        notes.append("the loader is signed, but its signature was NOT verified (give --cert "
                     "CERT and/or --keyring KEYRING)")
    if not args.force:  # after userspace verification: a bad signature is the first news
        _refuse_wrong_protocol(loader, args.input)
    resolve_own = _own_calls_resolution(loader, args, keyring, notes)
    kid = key_serial = None
    if keyring is not None:
        from sigbpf.kernel.keyring import keyring_id

        kid = keyring_id(keyring)
        if keyring == "session":
            from sigbpf.cli.load_cmd import _prepare_keyring

            kid, key_serial = _prepare_keyring(keyring, cert_path)
        signature_doc.update(passed_to_kernel=True, keyring=keyring, keyring_id=kid)
    elif signature_doc is not None:
        signature_doc.update(passed_to_kernel=False, keyring=None, keyring_id=None)
    programs = []
    try:
        try:
            result = load_and_run(loader, signature=loader.signature if kid is not None else None,
                                  keyring_id=kid, resolve_own=resolve_own)
        except SignedLoadRefused as err:
            err.message = explain_signed_refusal(err, keyring, "userspace" in verified_by)
            err.log = ""
            err.message += _protocol_mismatch(loader, err)
            raise
        except LoaderError as err:
            from sigbpf.loadergen.format import Protocol
            from sigbpf.loadergen.sign import embedded_blob_hash

            if (loader.protocol is Protocol.V1 and err.errno == errno.EINVAL
                    and embedded_blob_hash(loader) != loader.blob_sha256):
                err.message += (": refused by the loader's own blob hash check (the blob's "
                                "SHA-256 is not the one built into its instructions)"
                                + ("; the kernel had accepted the signature over the "
                                   "instructions" if kid is not None else ""))
            raise
        except KernelError as err:
            last = last_log_line(err.log)
            if last and last not in err.message:
                err.message += f": {last}"
            err.message += _protocol_mismatch(loader, err)
            raise
    finally:
        if key_serial is not None:
            from sigbpf.kernel.keyring import unlink_key

            unlink_key(key_serial)
    if kid is not None:
        verified_by.append("kernel")
        name = keyring if not keyring.lstrip("-").isdigit() else f"id {kid}"
        notes.append(f"signature verified by the kernel ({name} keyring, keyring_id {kid})"
                     + (f"; the certificate was added to the session keyring as key "
                        f"{key_serial} and unlinked after" if key_serial is not None else ""))
    loaded = result.as_loaded()
    with loaded:
        for p in loader.progs:
            entry: dict[str, object] = {"name": p.name, "loaded": p.name in loaded.prog_fds,
                                        "retval": None, "log": ""}
            if args.run and p.prog_type == ProgType.SYSCALL and p.name in loaded.prog_fds:
                try:
                    entry["retval"] = run_program(loaded.prog_fds[p.name], ctx, name=p.name).retval
                except KernelError as err:
                    entry["error"] = str(err)
            programs.append(entry)
        maps = [m.name for m in loaded.artifact.maps]
        failed = any("error" in e for e in programs)
        attached = pinned = None
        if attach_options is not None and not failed:
            # The artifact path's code (all or nothing; `with loaded` closes every fd).
            from sigbpf.cli.load_cmd import _attach_and_pin

            attached, pinned = _attach_and_pin(loaded, args, attach_options)
        if signature_doc is not None:
            signature_doc.update(verified=bool(verified_by), verified_by=verified_by, notes=notes)
        who = " and ".join("the kernel" if w == "kernel" else w for w in verified_by)
        if args.json:
            doc: dict[str, object] = {"loader": {"protocol": f"v{int(loader.protocol)}",
                                                 "insns": len(loader.insns),
                                                 "blob_size": len(loader.blob), "retval": 0,
                                                 "own_kfuncs_resolved_by":
                                                 None if loader.own_btf is None else
                                                 "userspace" if resolve_own else "kernel"},
                                      "notes": notes,
                                      "maps": maps, "programs": programs}
            if signature_doc is not None:
                doc["signature"] = signature_doc
            from sigbpf.cli.load_cmd import with_attached

            emit_json(with_attached(doc, attached, pinned))
        else:
            print(f"loader {loader.name!r} (protocol v{int(loader.protocol)}, {len(loader.insns)} "
                  f"insns, blob {len(loader.blob)} bytes): ran, returned 0")
            for note in notes:
                print(f"note: {note}")
            if verified_by:
                print(f"signature verified by: {who}")
            for name in maps:
                print(f"map {name}: created")
            for entry in programs:
                ran = f", retval {entry['retval']}" if entry["retval"] is not None else ""
                print(f"program {entry['name']}: loaded{ran}" + (f" ({entry['error']})"
                                                                if "error" in entry else ""))
            from sigbpf.cli.load_cmd import _print_attached

            _print_attached(attached, pinned)
        if failed and attach_options is not None:
            print("sigbpf: error: a program of the loader failed to run; nothing attached or "
                  "pinned", file=sys.stderr)
        if attached is not None and pinned is None:
            from sigbpf.cli.load_cmd import _hold

            _hold(loaded, attached, args)
    return 1 if failed else 0


def _own_calls_resolution(loader, args: argparse.Namespace, keyring: str | None,
                          notes: list[str]) -> bool:
    """Who resolves the loader's own PROG_BTF kfunc calls (format 1.4): True = sigbpf, in
    userspace.  A kernel with the seed (the probe, :mod:`sigbpf.kernel.probe`) resolves them
    itself; on one without, an unsigned loader is resolved here with the kernel's rules and
    a signed one given to the kernel is refused before loading (resolving it here would
    change the signed instructions: the kernel would answer EKEYREJECTED), unless --force,
    which lets that kernel say what it does with src_reg 3.  ``--resolution`` forces a side."""
    if loader.own_btf is None:
        return False
    from sigbpf.errors import UsageError
    from sigbpf.kernel.probe import kernel_resolves_prog_btf

    forced = getattr(args, "resolution", "auto")
    if forced == "kernel":
        notes.append("the loader's own kfunc calls: left to the kernel (--resolution kernel)")
        return False
    probe = kernel_resolves_prog_btf()
    if forced == "auto" and probe.native:
        notes.append(f"the loader's own kfunc calls: resolved by the kernel ({probe.detail})")
        return False
    signed_to_kernel = bool(loader.signature) and keyring is not None
    if signed_to_kernel and forced == "auto":
        if args.force:
            notes.append(f"the loader's own kfunc calls: left to a kernel without PROG_BTF "
                         f"resolution (--force; {probe.detail})")
            return False
        raise UsageError(f"{args.input}: the signed loader calls kfuncs in PROG_BTF form "
                         f"(src_reg 3) and the running kernel does not resolve them "
                         f"({probe.detail}); resolving them here would change the signed "
                         f"instructions (pass --force to let the kernel refuse it)")
    notes.append("the loader's own kfunc calls: resolved in userspace with the seed's rules "
                 + (f"(--resolution userspace)" if forced == "userspace" else f"({probe.detail})"))
    return True


def _other_protocol(loader):
    """The probe's answer (:func:`~sigbpf.loadergen.probe.probe_protocol`, asked once per
    process) when the running kernel implements the *other* loader protocol; None when it
    implements *loader*'s, neither, or the probe cannot run (the kernel's own answer is
    then the one reported)."""
    global _probed
    from sigbpf.errors import KernelError
    from sigbpf.loadergen.probe import probe_protocol

    if _probed is None:
        try:
            _probed = probe_protocol()
        except KernelError:
            return None
    if _probed.protocol is None or _probed.protocol == loader.protocol:
        return None
    return _probed


_probed = None


def _refuse_wrong_protocol(loader, path: str) -> None:
    """UsageError before anything reaches the kernel when the running kernel implements the
    other loader protocol: such a loader cannot load there (measured: v1 on Debian 7.3 is
    EACCES at BPF_PROG_LOAD, signed or not)."""
    from sigbpf.errors import UsageError

    probed = _other_protocol(loader)
    if probed is not None:
        raise UsageError(f"{path}: a protocol v{int(loader.protocol)} loader, and "
                         f"{probed.describe()}; generate it again with `sigbpf loader "
                         f"--protocol v{int(probed.protocol)}` (or pass --force to let the "
                         f"kernel refuse it)")


def _protocol_mismatch(loader, err) -> str:
    """When the kernel refused the loader program (EACCES) and the running kernel implements
    the other protocol (``--force``): a clause naming both."""
    probed = _other_protocol(loader) if err.errno == errno.EACCES else None
    if probed is None:
        return ""
    mine, theirs = int(loader.protocol), int(probed.protocol)
    return (f"; this is a protocol v{mine} loader and the running kernel implements protocol "
            f"v{theirs} (generate it again with sigbpf loader --protocol v{theirs})")
