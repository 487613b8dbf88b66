"""``python -m testbench [options] [--] COMMAND [ARG...]``: run one command in the VM.

Prints the command's stdout and stderr and exits with its status. ``--info``
prints the kernel's cache entry and the boot time instead (it boots ``true``);
``--fetch`` only fetches (and caches) the kernel, busybox and the initramfs.
"""

from __future__ import annotations

import argparse
import sys

from testbench.debian import fetch_busybox, fetch_kernel
from testbench.initramfs import build_initramfs
from testbench.kernel import seed_flavour, seed_kernel
from testbench.vm import VMError, run_in_vm


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m testbench", description=__doc__.splitlines()[0])
    p.add_argument("--kernel", default="7.3", 
                   help="Debian kernel series (default 7.3); seed, seed-extra: the PROG_BTF test kernel")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--refresh", action="store_true", help="ask the archive for a newer upload")
    p.add_argument("--no-overlay", action="store_true", help="read-only root, tmpfs on /tmp only")
    p.add_argument("--append", default="", help="more kernel command line")
    p.add_argument("--kernel-log", action="store_true", help="print the guest's kernel log too")
    p.add_argument("--fetch", action="store_true", help="only fetch and cache")
    p.add_argument("--info", action="store_true", help="boot once; print the kernel and boot time")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command

    flavour = seed_flavour(args.kernel)
    if flavour:   # the patched test kernel, built when not cached
        kernel = seed_kernel(flavour, refresh=True if args.refresh else None)
    else:
        kernel = fetch_kernel(args.kernel, refresh=True if args.refresh else None)
    if args.fetch or args.info:
        initrd = build_initramfs(kernel, fetch_busybox())
        print(f"kernel:    {kernel.release} ({kernel.version}, {kernel.suite})")
        print(f"cache:     {kernel.dir}")
        print(f"vmlinuz:   {kernel.vmlinuz}")
        print(f"initramfs: {initrd}")
        if kernel.downloaded:
            print(f"fetched:   {', '.join(kernel.downloaded)}")
        if args.fetch:
            return 0
        cmd = cmd or ["true"]
    if not cmd:
        p.error("no command")
    try:
        r = run_in_vm(cmd, kernel, args.timeout, overlay=not args.no_overlay, append=args.append)
    except VMError as e:
        print(f"testbench: {e}", file=sys.stderr)
        return 125
    if args.info:
        print(f"boot:      {r.boot_seconds:.2f} s to the command, {r.seconds:.2f} s in all (root: {r.root})")
    if args.kernel_log:
        sys.stdout.write(r.kernel_log)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    return r.returncode if r.returncode is not None else 125


if __name__ == "__main__":
    sys.exit(main())
