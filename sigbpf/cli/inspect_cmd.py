"""``sigbpf inspect FILE [--json]``: show a portable artifact or a BPF object.

The file's first bytes decide: the ELF magic shows a BPF object (programs
with their types, subprograms and the kfuncs they call, maps, externs; see
:mod:`sigbpf.elf.describe`); the artifact magic (docs/FORMAT.md) shows the
artifact: programs with their kfunc call sites, maps, kfuncs with their
prototypes, program BTF size, func/line/CO-RE counts, format version.
Anything else is "not an ELF file (nor a sigbpf artifact)".
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="portable artifact or BPF ELF object")
    parser.add_argument("--json", action="store_true", help="JSON instead of text")


def _inspect_artifact(data: bytes, args: argparse.Namespace) -> int:
    from sigbpf.artifact.describe import describe, render_text
    from sigbpf.artifact.format import Artifact
    from sigbpf.cli.output import emit_json

    info = describe(Artifact.decode(data, file=args.file))
    if args.json:
        emit_json(info)
    else:
        print(render_text(info), end="")
    return 0


def _inspect_object(data: bytes, args: argparse.Namespace) -> int:
    """The ELF half: a BPF object read by :class:`sigbpf.elf.BPFObject`."""
    from sigbpf.cli.output import emit_json
    from sigbpf.elf.describe import describe, render_text
    from sigbpf.elf.object import BPFObject

    info = describe(BPFObject.from_bytes(data, args.file))
    if args.json:
        emit_json(info)
    else:
        print(render_text(info), end="")
    return 0


def run(args: argparse.Namespace) -> int:
    from sigbpf.artifact.format import MAGIC
    from sigbpf.fileio import read_input
    from sigbpf.errors import FormatError

    data = read_input(args.file)
    if data[:4] == b"\x7fELF":
        return _inspect_object(data, args)
    if data and data[:len(MAGIC)] == MAGIC[:len(data)]:
        # The artifact magic, or a truncated prefix of it: the artifact
        # decoder names what is wrong.
        return _inspect_artifact(data, args)
    raise FormatError("not an ELF file (nor a sigbpf artifact)", file=args.file)
