"""``python -m testbench.kernel [--config small|extra] [--refresh]``: build or find the seed kernel."""

from __future__ import annotations

import argparse
import sys

from testbench.debian import FetchError
from testbench.kernel.build import FLAVOURS, BuildError, seed_kernel


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m testbench.kernel", description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=sorted(FLAVOURS), default="small")
    p.add_argument("--refresh", action="store_true", help="ask the archive for a newer source upload")
    args = p.parse_args(argv)
    try:
        k = seed_kernel(args.config, refresh=True if args.refresh else None)
    except (BuildError, FetchError) as e:
        print(f"testbench.kernel: {e}", file=sys.stderr)
        return 1
    print(f"kernel:    {k.release} ({k.flavour}, {k.version})")
    print(f"cache:     {k.dir}")
    print(f"bzImage:   {k.vmlinuz}")
    print(f"btf:       {k.btf}")
    if k.build_seconds is not None:
        print(f"built in:  {k.build_seconds / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
