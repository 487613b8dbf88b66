"""``sigbpf btf dump FILE [--base FILE] [--format raw|c] [--json] [--kfunc-prototypes] [-o OUT]``.

FILE is raw BTF (``/sys/kernel/btf/vmlinux``, a module's BTF) or an ELF object
(its ``.BTF`` section).  ``--base`` makes FILE split BTF on top of that base,
like ``bpftool -B``.

* ``--format raw`` (the default): bpftool's ``btf dump file`` text, one type a
  line (:mod:`sigbpf.btf.rawdump`); for split BTF only the split types.
* ``--format c``: a ``vmlinux.h``-style header (:mod:`sigbpf.btf.cdump`);
  ``--kfunc-prototypes`` adds ``extern`` declarations of the kernel's kfuncs
  the way bpftool >= 7.5 does (bpftool 7.1, the reference here, does not).
* ``--json``: the raw dump as a JSON list (schema: :mod:`sigbpf.btf.rawdump`).

The whole output is built before anything is written, so an error never
leaves half a dump behind; ``-o`` writes the file atomically.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from sigbpf.errors import UsageError

if TYPE_CHECKING:
    from sigbpf.btf import BTF


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="btf_command", metavar="SUBCOMMAND",
                                parser_class=type(parser))
    sub.required = True
    dump = sub.add_parser("dump", help="print the types of a BTF file (raw, C or JSON)",
                          description="Print the types of raw BTF or of an ELF object's .BTF.")
    dump.add_argument("file", metavar="FILE", help="raw BTF file or ELF object")
    dump.add_argument("--base", metavar="FILE",
                      help="base BTF (FILE is then split BTF, e.g. a kernel module's)")
    dump.add_argument("--format", choices=("raw", "c"), default="raw",
                      help="raw: bpftool's text (default); c: a C header like vmlinux.h")
    dump.add_argument("--json", action="store_true", help="the raw dump as JSON")
    dump.add_argument("--kfunc-prototypes", action="store_true",
                      help="with --format c: also declare every kfunc (bpf_kfunc tag) "
                           "as `extern ... __weak __ksym;`, as bpftool >= 7.5 does")
    dump.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of stdout")


def _load(args: argparse.Namespace) -> "BTF":
    from sigbpf.btf import BTF
    from sigbpf.errors import BTFError

    base = BTF.from_file(args.base) if args.base else None
    try:
        return BTF.from_file(args.file, base=base)
    except BTFError as err:
        # split BTF read without its base fails on its string section first
        if base is None and err.message.startswith("Invalid string section"):
            err.message += " (split BTF, e.g. a module's? pass its base with --base)"
        raise


def _render(args: argparse.Namespace) -> bytes:
    from sigbpf.errors import SigbpfError

    btf = _load(args)
    try:
        return _text(args, btf).encode("utf-8", "surrogateescape")
    except SigbpfError as err:
        raise err.at(file=args.file) from None


def _text(args: argparse.Namespace, btf: "BTF") -> str:
    if args.json:
        import json

        from sigbpf.btf.rawdump import dump_json

        text = json.dumps(dump_json(btf), indent=2) + "\n"
    elif args.format == "c":
        from sigbpf.btf.cdump import dump_c

        text = dump_c(btf, kfunc_prototypes=args.kfunc_prototypes)
    else:
        from sigbpf.btf.rawdump import dump_raw

        text = dump_raw(btf)
    return text  # names may hold any bytes: _render gives them back unchanged


def _write_stdout(data: bytes) -> None:
    try:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        # the reader went away (`| head`): not an error; keep Python quiet at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def run(args: argparse.Namespace) -> int:
    if args.json and args.format == "c":
        raise UsageError("--json and --format c cannot be combined")
    if args.kfunc_prototypes and args.format != "c":
        raise UsageError("--kfunc-prototypes needs --format c")
    data = _render(args)
    if args.output:
        from sigbpf.fileio import write_atomic

        write_atomic(args.output, data)
    else:
        _write_stdout(data)
    return 0
