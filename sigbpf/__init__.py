"""sigbpf: kernel-independent, signed BPF programs.

The package is layered like the BPF stack it models:

* ``sigbpf.btf``      BTF: parse, encode, validate, look up, compare, dump.
* ``sigbpf.asm``      BPF instructions: decode, encode, disassemble.
* ``sigbpf.elf``      clang-compiled BPF objects (the *spec*: never touches /sys).
* ``sigbpf.artifact`` portable artifacts: kfunc calls in PROG_BTF form.
* ``sigbpf.resolve``  the verifier's PROG_BTF resolution pass, and the checks beyond it.
* ``sigbpf.sign``     PKCS#7 signatures over everything that decides what runs.
* ``sigbpf.kernel``   the running kernel: bpf() through ctypes, probes, loading.
* ``sigbpf.cli``      the ``sigbpf`` command.

Shared by all of them: ``sigbpf.errors`` (the exception hierarchy, errno names) and
``sigbpf.fileio`` (reading inputs, writing outputs atomically).

Importing ``sigbpf`` is cheap on purpose: sub-packages are imported on use.
"""

from sigbpf.errors import SigbpfError

__version__ = "0.1.0"
__all__ = ["SigbpfError", "__version__"]
