"""sigbpf's VM test bench: run commands under other kernels in qemu (TCG).

Independent of the ``sigbpf`` package. The pieces:

* :mod:`testbench.debian`     fetches a Debian kernel (vmlinuz + modules) and
  busybox-static with a private apt state, cached outside the repository.
* :mod:`testbench.initramfs`  builds the small initramfs whose ``/init`` mounts
  the host root over 9p and runs one command.
* :mod:`testbench.vm`         boots qemu and returns the command's result.

See ``testbench/README.md``.
"""

from testbench.vm import (  # noqa: F401
    VMError,
    VMPanic,
    VMResult,
    VMTimeout,
    qemu_binary,
    run_in_vm,
    run_pytest,
    run_python,
)
