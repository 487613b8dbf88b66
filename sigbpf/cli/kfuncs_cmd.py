"""``sigbpf kfuncs``: list the kfuncs of a kernel's BTF.

Default: the running kernel (``/sys/kernel/btf/vmlinux``), from its DECL_TAG
``bpf_kfunc`` marks.  ``--btf FILE`` reads another BTF (raw or an ELF's
``.BTF``; ``--base FILE`` for module BTF), ``--btf-ids FILE`` takes the
kfunc sets from a raw ``.BTF_ids`` section (or a vmlinux ELF) instead, which
is the only way for kernels whose BTF has no kfunc tags.  Such a BTF without
``--btf-ids`` is exit 1 with a one-line message.

Text output: one ``ID NAME`` line per kfunc (``ID NAME FLAGS`` with
``--btf-ids``), in id order.  ``--json``: a list of ``{"id", "name", "flags"}``.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--btf", metavar="FILE", help="BTF to read (default: /sys/kernel/btf/vmlinux)")
    parser.add_argument("--base", metavar="FILE", help="base BTF when --btf is split (module) BTF")
    parser.add_argument("--btf-ids", metavar="FILE", dest="btf_ids",
                        help="raw .BTF_ids section (or vmlinux ELF) of the same kernel: read kfunc sets from it")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from sigbpf.btf import BTF, VMLINUX_PATH
    from sigbpf.btf import kfuncs as kf
    from sigbpf.cli.output import emit_json
    from sigbpf.errors import UsageError

    if args.base and not args.btf:
        raise UsageError("--base needs --btf")
    base = BTF.from_file(args.base) if args.base else None
    if args.btf:
        btf = BTF.from_file(args.btf, base=base)
    else:
        btf = BTF.load_vmlinux(VMLINUX_PATH)
    if args.btf_ids:
        data, name = kf.read_btf_ids(args.btf_ids)
        found = kf.kfuncs_from_btf_ids(btf, data, file=name)
    else:
        found = kf.kfuncs(btf)
    if args.json:
        emit_json([{"id": k.id, "name": k.name, "flags": k.flags} for k in found])
    else:
        for k in found:
            print(f"{k.id} {k.name}" if k.flags is None else f"{k.id} {k.name} {k.flags:#x}")
    return 0
