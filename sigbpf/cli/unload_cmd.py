"""``sigbpf unload``: take down what ``sigbpf load --pin DIR`` left pinned.

::

    sigbpf unload DIR [--json]

Each link under ``DIR/links`` is detached (``BPF_LINK_DETACH`` where the
link type has it: XDP, tcx, cgroup, netns, ...; tracing, raw-tracepoint
and perf-event links detach when their last reference, the pin, goes) and
unpinned; then the programs under ``DIR/progs`` and the maps under
``DIR/maps`` are unpinned, and the directories ``load --pin`` made are
removed.  A DIR that is not on bpffs, or holds anything but ``maps/``,
``progs/`` and ``links/``, is refused (exit 2) and left untouched.

JSON (``--json``)::

    {"dir": str, "ok": bool,
     "unpinned": [{"kind": "link"|"prog"|"map", "path": str,
                   "detached": bool|null, "type": str|null (links), "error": str (if any)}],
     "removed_dirs": [str]}

Exit status: 0 everything unpinned, 1 something could not be (the rest
still is; one error line), 2 bad input.
"""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", help="the directory given to `sigbpf load --pin`")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from sigbpf.cli.output import emit_json
    from sigbpf.kernel.bpffs import unload_dir

    result = unload_dir(args.dir)
    if args.json:
        emit_json(result.as_json())
    else:
        for obj in result.objects:
            if obj.error:
                print(f"{obj.kind} {obj.path}: FAILED: {obj.error}")
            elif obj.kind == "link":
                how = "detached and unpinned" if obj.detached else "unpinned (detached on release)"
                print(f"link {obj.path} ({obj.link_type}): {how}")
            else:
                print(f"{obj.kind} {obj.path}: unpinned")
        for path in result.removed_dirs:
            print(f"removed {path}")
    failed = [o for o in result.objects if o.error]
    if failed:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        print(f"sigbpf: error: unload {result.directory}: {failed[0].error}{more}", file=sys.stderr)
        return 1
    return 0
