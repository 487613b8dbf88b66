"""Entry point of the ``sigbpf`` command.

Each command lives in its own module under ``sigbpf.cli`` and exposes two
functions::

    def configure(parser: argparse.ArgumentParser) -> None   # add arguments
    def run(args: argparse.Namespace) -> int                  # do the work, return exit code

Commands are listed in :data:`COMMANDS`; only the module of the command that
runs is imported, so ``sigbpf --help`` and every command start fast.

Exit codes: 0 success, 1 what was asked does not hold, 2 bad input or usage.
Library errors (:class:`sigbpf.errors.SigbpfError`) become one line on stderr,
and so does a missing or too old third-party package (:data:`DEPENDENCIES`,
exit 2); nothing else is allowed to escape as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from sigbpf.errors import SigbpfError

# name -> (module under sigbpf.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "btf": ("btf_cmd", "dump BTF (raw, C or JSON)"),
    "disasm": ("disasm_cmd", "disassemble a BPF object or artifact"),
    "kfuncs": ("kfuncs_cmd", "list the kfuncs of a kernel's BTF"),
    "inspect": ("inspect_cmd", "show programs, maps, externs and kfuncs of an object or artifact"),
    "build": ("build_cmd", "turn a BPF object into a portable artifact"),
    "resolve": ("resolve_cmd", "run the verifier's PROG_BTF kfunc resolution pass"),
    "check": ("check_cmd", "check an artifact against one or many kernels' BTF"),
    "load": ("load_cmd", "load (and run) an artifact or object in the running kernel"),
    "unload": ("unload_cmd", "detach and unpin what `load --pin DIR` left pinned"),
    "keygen": ("keygen_cmd", "make a signing key and self-signed certificate"),
    "sign": ("sign_cmd", "sign a portable artifact"),
    "verify": ("verify_cmd", "verify a signed artifact"),
    "loader": ("loader_cmd", "generate a signed loader program (light skeleton) from an artifact"),
    "gen": ("gen_cmd", "gen skeleton: write a C light skeleton header (NAME.lskel.h) for a loader"),
}


# import name -> what to install (pyproject.toml's [project] dependencies; a test keeps them equal)
DEPENDENCIES: dict[str, str] = {
    "elftools": "pyelftools>=0.29",
    "cryptography": "cryptography>=42",
    "asn1crypto": "asn1crypto>=1.5",
}


def missing_dependency(err: ImportError) -> str:
    """The one-line account of an ImportError: which package is missing or too old, and the
    ``pip install`` that fixes it (every dependency when the module is not one of ours)."""
    top = (err.name or "").split(".")[0]
    if top in DEPENDENCIES:
        return f"missing dependency: {top} ({err}) (pip install '{DEPENDENCIES[top]}')"
    wanted = " ".join(f"'{spec}'" for spec in DEPENDENCIES.values())
    return f"missing dependency: {err} (pip install {wanted})"


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"sigbpf: usage: {self.prog}: {message}\n")


def _command_module(name: str):
    module, _ = COMMANDS[name]
    return importlib.import_module(f"sigbpf.cli.{module}")


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = _Parser(prog="sigbpf", description="Kernel-independent, signed BPF programs.")
    parser.add_argument("--version", action="version", version="sigbpf 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    # Only the chosen command's module is imported to configure its parser.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _command_module(name).configure(cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        return int(_command_module(args.command).run(args) or 0)
    except SigbpfError as err:
        print(f"sigbpf: error: {err}", file=sys.stderr)
        return err.exit_code
    except ImportError as err:  # a third-party package missing or too old (e.g. cryptography 38)
        print(f"sigbpf: error: {missing_dependency(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sigbpf: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as err:  # a file that cannot be read or written
        where = f"{err.filename}: " if err.filename else ""
        print(f"sigbpf: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
