"""sigbpf's seed test kernel: Debian's 7.3 source with the PROG_BTF patch, built and cached.

>>> from testbench.kernel import seed_kernel
>>> k = seed_kernel("small")          # builds on first use (~8 min on 2 cores), then cached
>>> from testbench.vm import run_in_vm
>>> run_in_vm(["uname", "-r"], kernel=k).stdout
'7.3.4-sigbpf-seed\\n'

``python -m testbench.kernel [--config small|extra]`` builds (or finds) the
kernel and prints its cache entry. ``python -m testbench --kernel seed[-extra]``
runs a command in it. See ``testbench/kernel/build.py`` for the recipe and
``docs/FINDINGS.md`` for the patch and what the kernel measured.
"""

from testbench.kernel.build import (  # noqa: F401
    FLAVOURS,
    PATCH,
    TEST_CERT,
    TEST_KEY,
    BuildError,
    SeedKernel,
    cached_seed_kernels,
    seed_flavour,
    seed_kernel,
)
