"""``sigbpf load``: load (and run) an artifact or a BPF object in the running kernel.

::

    sigbpf load ARTIFACT|OBJ [--run] [--ctx HEX] [--json]
                [--cert CERT [--keyring session|builtin|ID]]
                [--resolution auto|kernel|userspace] [--no-*-check]
                [--attach [--iface NAME] [--cgroup PATH] ...] [--pin DIR] [--duration S]

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

Attaching (``--attach``) and pinning (``--pin DIR``)::

    sigbpf load OBJ --attach [--iface NAME] [--cgroup PATH] [--netns PATH] [--sockmap MAP]
                             [--perf-event EVENT] [--duration SECONDS | --pin DIR]

Each loaded program is attached as libbpf's section-name auto-attach does
(:mod:`sigbpf.kernel.attach`: ``kprobe/FUNC``, ``uprobe/BIN:FUNC``,
``tp/CAT/NAME``, ``raw_tp/NAME``, ``tp_btf/``, ``fentry/``, ``lsm/``,
``iter/``, ...); ``xdp`` and ``tc``/``tcx`` programs need ``--iface``,
``cgroup/*`` ones ``--cgroup``, and so on: a program whose target was not
given is a one-line error naming the program and the option, before
anything is loaded.  Programs libbpf does not auto-attach either (a bare
``SEC("kprobe")``, ``syscall``, ``socket``, ...) are reported as not
attached, with the reason; ``struct_ops`` is refused.  Without ``--pin`` the
command stays attached in the foreground until SIGINT or SIGTERM (or
``--duration`` seconds), then detaches and exits 0.  With ``--pin DIR`` (on
bpffs; a new or empty directory) the maps, programs and links are pinned at
``DIR/maps/NAME``, ``DIR/progs/NAME``, ``DIR/links/NAME`` (a ``.`` in a name
becomes ``_``, as libbpf does: bpffs refuses dots) and the command exits,
leaving them loaded and attached; ``sigbpf unload DIR`` takes them down.
``--pin`` without ``--attach`` pins maps and programs only.  All or nothing:
when an attach or pin step fails, what was attached is detached, what was
pinned unpinned, and the error (one line) names the program, the target and
the errno.  JSON adds::

     "attached": [{"program": str, "section": str, "kind": str, "target": str,
                   "links": [{"id": int, "type": str, "pinned": str|null}]}],
     "not_attached": [{"program": str, "section": str, "reason": str}],
     "pinned": {"dir": str, "maps": {name: path}, "progs": {name: path},
                "links": {program: [path]}}          (with --pin)

Exit status: 0 every program loaded (and ran, and attached), 1 the kernel
(or a check, or a signature) refused, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.artifact.format import Artifact
    from sigbpf.kernel.attach import AttachOptions, AttachResult
    from sigbpf.kernel.bpffs import Pinned
    from sigbpf.kernel.loader import LoadedArtifact, LoadReport

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
    parser.add_argument("--programs", metavar="NAME,...",
                        help="load only these programs (default: every program whose section "
                             "does not start with '?', as libbpf)")
    parser.add_argument("--skip-missing", action="store_true",
                        help="skip (and report) programs whose attach target this kernel lacks, "
                             "instead of failing")
    parser.add_argument("--force", action="store_true",
                        help="a loader file: hand it to the kernel even when the running kernel "
                             "implements the other loader protocol (to see the kernel's refusal)")
    add_check_flags(parser)
    _configure_attach(parser)


def _configure_attach(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "attaching", "attach the loaded programs as libbpf's auto-attach does, from each "
                     "program's section name (kprobe/FUNC, tp/CAT/NAME, fentry/FUNC, lsm/HOOK, "
                     "xdp, cgroup/connect4, ...)")
    group.add_argument("--attach", action="store_true",
                       help="attach every loaded program; without --pin stay in the foreground "
                            "until SIGINT/SIGTERM (or --duration), then detach")
    group.add_argument("--pin", metavar="DIR",
                       help="pin maps, programs and links under DIR (on bpffs; new or empty): "
                            "DIR/maps/NAME, DIR/progs/NAME, DIR/links/NAME; then exit, leaving "
                            "them loaded and attached (`sigbpf unload DIR` takes them down)")
    group.add_argument("--iface", metavar="NAME",
                       help="network interface for xdp, tc/tcx and netkit programs")
    group.add_argument("--cgroup", metavar="PATH",
                       help="cgroup v2 directory for cgroup/*, cgroup_skb/*, sockops and "
                            "lsm_cgroup programs")
    group.add_argument("--netns", metavar="PATH",
                       help="network namespace file (/proc/self/ns/net, /run/netns/NAME) for "
                            "sk_lookup and flow_dissector programs")
    group.add_argument("--sockmap", metavar="MAP",
                       help="name of the object's sockmap/sockhash for sk_msg and sk_skb programs")
    group.add_argument("--perf-event", metavar="EVENT",
                       help="event sampled by perf_event programs, on every online CPU: a name "
                            "(cpu-clock, cycles, ...) or TYPE:CONFIG, with :freq=HZ (default 99) "
                            "or :period=N")
    group.add_argument("--duration", metavar="SECONDS", type=float,
                       help="with --attach and no --pin: detach and exit after SECONDS")


def run(args: argparse.Namespace) -> int:
    from sigbpf.cli.output import emit_json
    from sigbpf.fileio import read_input
    from sigbpf.errors import KernelError, UsageError
    from sigbpf.kernel.loader import load_artifact
    from sigbpf.resolve.report import CheckOptions

    data = read_input(args.input)
    from sigbpf.loadergen.magic import is_loader

    if is_loader(data):  # a signed loader file (sigbpf.loadergen): its own runner
        from sigbpf.cli.loader_cmd import run_loader_file

        return run_loader_file(args, data)
    ctx = parse_ctx(args)
    if args.keyring is not None and args.cert is None:
        raise UsageError("--keyring needs --cert (the signature is verified in userspace first)")
    attach_options = _attach_options(args)
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
    if args.attach or args.pin:
        _check_before_loading(artifact, args, attach_options)

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
    # load reports no digests (resolve does): digest=False spares hashing every program
    options = CheckOptions(prototype=args.proto_check, kfunc=args.kfunc_check,
                           module=args.module_check, digest=False)
    try:
        try:
            loaded = load_artifact(artifact, run=args.run, ctx=ctx,
                                   resolution=None if args.resolution == "auto" else args.resolution,
                                   signatures=signatures, keyring_id=keyring_id, checks=options,
                                   file=args.input, skip_missing=args.skip_missing,
                                   programs=([n for n in args.programs.split(",") if n]
                                             if args.programs else None))
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
        failures = [p for p in report.programs if not p.loaded or p.error]
        attached = pinned = None
        if not failures and (args.attach or args.pin):
            # All or nothing: an error here detaches and unpins what was made, and
            # `with loaded` closes every fd; nothing stays attached or pinned.
            attached, pinned = _attach_and_pin(loaded, args, attach_options)
        if args.json:
            doc = report.as_json()
            if signature_doc is not None:
                signature_doc["notes"] = [n for n in report.notes if n == verified_note
                                          or "differ from the signed ones" in n]
                doc["signature"] = signature_doc
            emit_json(with_attached(doc, attached, pinned))
        else:
            _print_text(report, args.run)
            _print_attached(attached, pinned)
        if failures:
            first = failures[0]
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            if args.attach or args.pin:
                more += "; nothing attached or pinned"
            print(f"sigbpf: error: {first.error or first.name + ' refused'}{more}", file=sys.stderr)
            return 1
        if attached is not None and pinned is None:
            _hold(loaded, attached, args)
    return 0


def with_attached(doc: dict, attached, pinned) -> dict:
    """*doc* (a ``load --json`` object) with what ``--attach`` / ``--pin`` did."""
    if attached is not None:
        doc.update(attached.as_json())
    if pinned is not None:
        doc["pinned"] = pinned.as_json()
    return doc


def parse_ctx(args: argparse.Namespace) -> bytes:
    """``--ctx HEX`` as bytes; a usage error when it is no hex or comes without ``--run``."""
    from sigbpf.errors import UsageError

    try:
        ctx = bytes.fromhex(args.ctx)
    except ValueError:
        raise UsageError(f"--ctx {args.ctx!r} is not hex bytes") from None
    if args.ctx and not args.run:
        raise UsageError("--ctx goes with --run (the context is for BPF_PROG_RUN)")
    return ctx


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
    for name, why in report.skipped:
        print(f"program {name}: skipped: {why}")
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
            target = f" (attach target {p.attach_btf})" if p.attach_btf else ""
            print(f"program {p.name}: loaded{target}" + (" (not run)" if run else ""))


# --- attaching and pinning (--attach, --pin) ---------------------------------------------------

def _attach_options(args: argparse.Namespace) -> "AttachOptions | None":
    """The attach targets given, after checking that the attach flags go together (None
    when nothing is attached or pinned: a plain load never imports the attach code)."""
    from sigbpf.errors import UsageError

    targets = {"--iface": args.iface, "--cgroup": args.cgroup, "--netns": args.netns,
               "--sockmap": args.sockmap, "--perf-event": args.perf_event,
               "--duration": args.duration}
    if not args.attach:
        given = [flag for flag, value in targets.items() if value is not None]
        if given:
            raise UsageError(f"{given[0]} goes with --attach")
    if args.duration is not None:
        if args.pin:
            raise UsageError("--duration and --pin exclude each other (with --pin the programs "
                             "stay attached after sigbpf exits)")
        if not args.duration > 0:
            raise UsageError(f"--duration {args.duration:g}: must be a positive number of seconds")
    if not (args.attach or args.pin):
        return None
    from sigbpf.kernel.attach import AttachOptions

    return AttachOptions(iface=args.iface, cgroup=args.cgroup, netns=args.netns,
                         sockmap=args.sockmap, perf_event=args.perf_event)


def _check_before_loading(artifact: "Artifact", args: argparse.Namespace,
                          options: "AttachOptions") -> None:
    """Fail before anything reaches the kernel when a program needs a target option that
    was not given (or names one that does not exist), or the --pin directory is unusable."""
    from sigbpf.kernel.attach import plan_attach
    from sigbpf.kernel.bpffs import check_pin_dir

    if args.pin:
        check_pin_dir(args.pin)
    if args.attach:
        wanted = set(n for n in args.programs.split(",") if n) if args.programs else None
        for program in artifact.programs:
            if (program.name in wanted) if wanted is not None else program.autoload:
                plan_attach(program, options)


def _attach_and_pin(loaded: "LoadedArtifact", args: argparse.Namespace,
                    options: "AttachOptions") -> "tuple[AttachResult | None, Pinned | None]":
    from sigbpf.kernel.attach import attach_loaded
    from sigbpf.kernel.bpffs import pin_loaded

    attached = attach_loaded(loaded, options) if args.attach else None
    pinned = pin_loaded(loaded, args.pin) if args.pin else None
    return attached, pinned


def _print_attached(attached: "AttachResult | None", pinned: "Pinned | None") -> None:
    if attached is not None:
        for a in attached.attachments:
            print(f"attached: {a.describe()}")
        for plan in attached.skipped:
            print(f"not attached: program {plan.program} ({plan.section}): {plan.reason}")
    if pinned is not None:
        print(f"pinned under {pinned.directory}: {len(pinned.maps)} maps, {len(pinned.progs)} "
              f"programs, {sum(len(p) for p in pinned.links.values())} links "
              f"(sigbpf unload {pinned.directory} takes them down)")
    sys.stdout.flush()


def _hold(loaded: "LoadedArtifact", attached: "AttachResult", args: argparse.Namespace) -> None:
    """Stay attached until SIGINT/SIGTERM or --duration, then detach everything."""
    from sigbpf.kernel.attach import wait_for_signal

    if not args.json:
        until = f"for {args.duration:g} s" if args.duration else "until SIGINT or SIGTERM"
        print(f"holding {len(attached.attachments)} attachments {until}", flush=True)
    else:
        sys.stdout.flush()
    why = wait_for_signal(args.duration)
    count = len(attached.attachments)
    for attachment in attached.attachments:
        attachment.detach()
        if attachment in loaded.links:
            loaded.links.remove(attachment)
    if not args.json:
        print(f"detached {count} attachments ({why})", flush=True)
