"""``sigbpf check``: one artifact against a fleet of kernels, before deployment.

::

    sigbpf check ARTIFACT|SIGNED|OBJ KERNEL... [--json] [--html FILE] [--no-cache] [--jobs N]
    sigbpf check ARTIFACT --btf K1 [--module M ...] [--btf-ids F] [--btf K2 ...]

Each KERNEL is ``running``, a BTF file (with ``.BTF_ids`` and module BTF
siblings by name), a BTFHub ``.btf.tar.xz``, a kernel ``.deb`` (with its
``linux-modules-*``), or a directory tree of those (docs/FLEET.md,
:mod:`sigbpf.fleet.sources`).  ``--btf`` is the older spelling of one BTF
file; the ``--module`` / ``--btf-ids`` options that follow it belong to it.
``--no-proto-check``, ``--no-kfunc-check``, ``--no-module-check`` switch
sigbpf's checks beyond the seed off, as for ``sigbpf resolve``.

Output: the matrix (kernels grouped by identical answers) and the reasons of
every failing kernel on stdout; ``--json`` the report as JSON instead
(docs/FLEET.md documents it); ``--html FILE`` also writes a self-contained
page.  A progress bar goes to stderr when it is a terminal (never with
``--json``).  Results are cached by content under ``~/.cache/sigbpf/fleet``
(``--no-cache``: neither read nor written).

Exit status: 0 every kernel accepts, 1 some kernel refuses, 2 bad input
(an unreadable artifact, or any kernel that could not be read: its row says
"could not read: ..." and the others are still checked).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


class _KernelSpec:
    """One ``--btf`` with the ``--module`` / ``--btf-ids`` options that follow it."""

    def __init__(self, btf: str) -> None:
        self.btf = btf
        self.modules: list[str] = []
        self.btf_ids: list[str] = []


class _AddKernel(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        kernels = getattr(ns, "btf_kernels", None) or []
        kernels.append(_KernelSpec(values))
        ns.btf_kernels = kernels


class _AddToKernel(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        kernels = getattr(ns, "btf_kernels", None)
        if not kernels:
            parser.error(f"{option_string} must follow the --btf it belongs to")
        getattr(kernels[-1], self.dest).append(values)


def configure(parser: argparse.ArgumentParser) -> None:
    from sigbpf.cli.resolve_cmd import add_check_flags

    parser.add_argument("artifact", metavar="ARTIFACT", help="a portable artifact, signed or not, or a BPF object")
    parser.add_argument("kernels", metavar="KERNEL", nargs="*",
                        help="running, a BTF file, a .btf.tar.xz, a kernel .deb, or a directory of them")
    parser.add_argument("--btf", metavar="VMLINUX", action=_AddKernel, dest="btf_kernels",
                        default=[], help="a kernel's vmlinux BTF (repeatable)")
    parser.add_argument("--module", metavar="FILE", action=_AddToKernel, dest="modules",
                        help="module BTF split on the preceding --btf (repeatable)")
    parser.add_argument("--btf-ids", metavar="FILE", action=_AddToKernel, dest="btf_ids",
                        help="the preceding --btf kernel's .BTF_ids section (untagged kernels)")
    add_check_flags(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--html", metavar="FILE", help="also write the report as one HTML page")
    parser.add_argument("--no-cache", dest="cache", action="store_false",
                        help="neither read nor write the result cache (~/.cache/sigbpf/fleet)")
    parser.add_argument("--jobs", "-j", metavar="N", type=int, default=0,
                        help="worker processes (default: one per CPU)")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour the matrix (auto: on a terminal, unless NO_COLOR is set)")


def run(args: argparse.Namespace) -> int:
    import os

    from sigbpf.errors import UsageError
    from sigbpf.fileio import read_input
    from sigbpf.fleet.needs import ArtifactNeeds
    from sigbpf.fleet.run import FleetRun, default_jobs
    from sigbpf.fleet.sources import expand, explicit
    from sigbpf.fleet.worker import FleetOptions

    if not args.kernels and not args.btf_kernels:
        raise UsageError("give at least one KERNEL (running, a BTF file, a .deb, a directory) "
                         "or --btf VMLINUX")
    if args.jobs < 0:
        raise UsageError("--jobs must be at least 1")
    needs = ArtifactNeeds.from_input(read_input(args.artifact), args.artifact)
    sources = expand(args.kernels)
    sources += [explicit(k.btf, k.modules, k.btf_ids) for k in args.btf_kernels]
    if not sources:
        raise UsageError(f"no kernels found in {' '.join(args.kernels)} (BTF files, .btf.tar.xz, "
                         ".deb, vmlinux/vmlinuz)")
    options = FleetOptions(prototype=args.proto_check, kfunc=args.kfunc_check, module=args.module_check)
    cache_dir = None
    if args.cache:
        from sigbpf.fleet.cache import cache_dir as default_cache_dir

        cache_dir = default_cache_dir()
    progress = None
    if not args.json:
        from sigbpf.fleet.progress import Progress

        progress = Progress(len(sources), stream=sys.stderr)
    fleet = FleetRun(needs, sources, options, cache_dir, args.jobs or default_jobs(),
                     on_progress=progress.update if progress is not None else None)
    try:
        report = fleet.run()
    finally:
        if progress is not None:
            progress.close()
    if args.html:
        from sigbpf.fileio import write_atomic
        from sigbpf.fleet.render_html import render_html

        write_atomic(args.html, render_html(report).encode())
    if args.json:
        from sigbpf.cli.output import emit_json

        emit_json(report.as_json())
    else:
        from sigbpf.fleet.render_text import render_text

        color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty()
                                           and not os.environ.get("NO_COLOR"))
        render_text(report, sys.stdout, color=color)
    unreadable = sum(k.error is not None for k in report.kernels)
    if unreadable:
        print(f"sigbpf: error: {unreadable} of {len(report.kernels)} kernel(s) could not be read "
              f"(see their rows)", file=sys.stderr)
    return report.exit_code
