"""``sigbpf build OBJ -o ARTIFACT``: turn a clang-compiled BPF object into a portable artifact.

The artifact (docs/FORMAT.md) holds the linked programs with kfunc calls in
the kernel-independent ``src_reg 3`` form, the program BTF, maps with their
initial contents, func/line info and CO-RE relocations.  The output file is
written atomically and is byte-identical for the same object on every run.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("obj", metavar="OBJ", help="BPF ELF object (clang -target bpf -g)")
    parser.add_argument("-o", "--output", metavar="ARTIFACT", required=True,
                        help="where to write the artifact")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON summary of the artifact (as `sigbpf inspect --json`)")


def run(args: argparse.Namespace) -> int:
    from sigbpf.artifact.build import build_from_file
    from sigbpf.cli.output import emit_json
    from sigbpf.fileio import write_atomic

    artifact = build_from_file(args.obj)
    data = artifact.encode()
    write_atomic(args.output, data)
    if args.json:
        from sigbpf.artifact.describe import describe

        emit_json(describe(artifact))
    else:
        kfuncs = len(artifact.kfuncs)
        print(f"{args.output}: {len(artifact.programs)} program(s), {len(artifact.maps)} map(s), "
              f"{kfuncs} kfunc(s), {len(data)} bytes")
    return 0
