"""``sigbpf gen skeleton``: a C light-skeleton header for a loader file (bpftool ``gen skeleton -L``).

::

    sigbpf gen skeleton LOADER [-o NAME.lskel.h] [--name NAME]

LOADER is a loader file (``sigbpf loader --protocol v2``, signed or not); an
artifact or BPF object is turned into an unsigned protocol v2 loader first.
The header (:mod:`sigbpf.loadergen.skeleton`, docs/FORMAT.md 8.5) runs the loader
with ``skel_internal.h``'s ``bpf_load_and_run``.  NAME defaults to the output
file's name without ``.lskel.h`` (else the loader's name).  A protocol v1 loader
is refused: ``bpf_load_and_run`` does not make the exclusive, hashed blob map its
prologue checks.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="gen_command", metavar="SUBCOMMAND", parser_class=type(parser))
    sub.required = True
    sk = sub.add_parser("skeleton", help="write a C light skeleton (NAME.lskel.h) for a loader",
                        description="write a C light skeleton (NAME.lskel.h) for a loader")
    sk.add_argument("input", metavar="LOADER|ARTIFACT|OBJ",
                    help="a protocol v2 loader file (an artifact or object: one is generated)")
    sk.add_argument("-o", "--output", metavar="NAME.lskel.h", help="where to write (default: stdout)")
    sk.add_argument("--name", help="the skeleton's name (struct NAME, NAME__open_and_load, ...)")


def run(args: argparse.Namespace) -> int:
    import os

    from sigbpf.fileio import read_input, write_atomic
    from sigbpf.loadergen.format import Loader, is_loader
    from sigbpf.loadergen.skeleton import sanitize, skeleton_header

    data = read_input(args.input)
    if is_loader(data):
        loader = Loader.decode(data, file=args.input)
    else:
        from sigbpf.cli.load_cmd import _artifact_from_input
        from sigbpf.loadergen.generate import generate

        loader = generate(_artifact_from_input(data, args.input), 2)
    name = args.name
    if not name:
        base = os.path.basename(args.output) if args.output else ""
        for sfx in (".lskel.h", ".skel.h", ".h"):
            if base.endswith(sfx):
                base = base[:-len(sfx)]
                break
        name = sanitize(base or loader.name)
    text = skeleton_header(loader, name)
    if args.output:
        write_atomic(args.output, text.encode())
    else:
        print(text, end="")
    return 0
