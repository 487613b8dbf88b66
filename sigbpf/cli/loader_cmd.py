"""``sigbpf loader``: generate a signed loader ("light skeleton") from an artifact or object.

::

    sigbpf loader ARTIFACT|OBJ -o LOADER [--protocol v1|v2] [--json]
    sigbpf loader LOADER --disasm

The loader file (docs/FORMAT.md, "The signed loader file") holds one
``BPF_PROG_TYPE_SYSCALL`` loader program and its data blob; ``sigbpf load
LOADER [--run --ctx HEX]`` runs it (:func:`run_loader_file`, reached through
``sigbpf load``'s dispatch on the file's magic).  Generation is deterministic.
``--disasm`` prints a loader readably: labels, the emitters' comments, blob
addresses.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="ARTIFACT|OBJ|LOADER",
                        help="a portable artifact or BPF object (or, with --disasm, a loader)")
    parser.add_argument("-o", "--output", metavar="LOADER", help="where to write the loader")
    parser.add_argument("--protocol", choices=("v1", "v2"), default="v1",
                        help="v1 (6.18): the loader checks its blob's hash itself; v2: the kernel "
                             "checks insns||blob (fd_array_cnt), no check in the loader")
    parser.add_argument("--disasm", action="store_true",
                        help="print the loader (the input, or the one just generated) readably")
    parser.add_argument("--json", action="store_true", help="print a JSON summary")


def summary(loader) -> dict[str, object]:
    return {"protocol": f"v{int(loader.protocol)}", "insns": len(loader.insns),
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
        loader = generate(artifact, int(args.protocol[1:]))
        write_atomic(args.output, loader.encode())
    if args.disasm:
        print(listing(loader), end="")
    elif args.json:
        emit_json(summary(loader))
    else:
        print(f"{args.output}: loader protocol v{int(loader.protocol)}, {len(loader.insns)} insns, "
              f"blob {len(loader.blob)} bytes, {len(loader.maps)} map(s), "
              f"{len(loader.progs)} program(s)")
    return 0


def run_loader_file(args: argparse.Namespace, data: bytes) -> int:
    """``sigbpf load LOADER [--run --ctx HEX] [--json]``: run the loader (skel_internal.h's
    ``bpf_load_and_run``), then, with ``--run``, each syscall program it loaded."""
    from sigbpf.cli.output import emit_json
    from sigbpf.errors import KernelError, UsageError
    from sigbpf.elf.progtypes import ProgType
    from sigbpf.kernel.run import run_program
    from sigbpf.loadergen.format import Loader
    from sigbpf.loadergen.run import load_and_run

    for option in ("cert", "keyring", "attach", "pin", "programs"):
        if getattr(args, option, None):
            raise UsageError(f"--{option} does not apply to a loader file")
    try:
        ctx = bytes.fromhex(args.ctx)
    except ValueError:
        raise UsageError(f"--ctx {args.ctx!r} is not hex bytes") from None
    if args.ctx and not args.run:
        raise UsageError("--ctx goes with --run (the context is for BPF_PROG_RUN)")
    loader = Loader.decode(data, file=args.input)
    programs = []
    with load_and_run(loader) as result:
        for p in loader.progs:
            entry: dict[str, object] = {"name": p.name, "loaded": p.name in result.prog_fds,
                                        "retval": None, "log": ""}
            if args.run and p.prog_type == ProgType.SYSCALL and p.name in result.prog_fds:
                try:
                    entry["retval"] = run_program(result.prog_fds[p.name], ctx, name=p.name).retval
                except KernelError as err:
                    entry["error"] = str(err)
            programs.append(entry)
        maps = [m.name for m in loader.maps if m.name in result.map_fds]
    if args.json:
        emit_json({"loader": {"protocol": f"v{int(loader.protocol)}", "insns": len(loader.insns),
                              "blob_size": len(loader.blob), "retval": 0},
                   "maps": maps, "programs": programs})
    else:
        print(f"loader {loader.name!r} (protocol v{int(loader.protocol)}, {len(loader.insns)} "
              f"insns, blob {len(loader.blob)} bytes): ran, returned 0")
        for name in maps:
            print(f"map {name}: created")
        for entry in programs:
            ran = f", retval {entry['retval']}" if entry["retval"] is not None else ""
            print(f"program {entry['name']}: loaded{ran}" + (f" ({entry['error']})"
                                                            if "error" in entry else ""))
    return 1 if any("error" in e for e in programs) else 0
