"""Does a kernel, given only as its BTF, resolve ``src_reg 3`` kfunc calls itself?

The seed's patch adds no type to the kernel: its UAPI constant is a
``#define``, ``bpf_pseudo_kfunc_call_prog_btf()`` is ``static inline`` and
``resolve_loader_kfunc()`` is a ``static`` function with one caller. The only
trace it can leave in vmlinux BTF is a FUNC named ``resolve_loader_kfunc``,
and only when the compiler kept it out of line (pahole encodes functions
that have their own symbol). So:

* a FUNC ``resolve_loader_kfunc`` in the BTF -> True (the kernel has the pass);
* otherwise -> None: unknown. Its absence proves nothing (an inlined copy
  leaves no FUNC), so BTF alone never answers False.

For the running kernel the probe (:mod:`sigbpf.kernel.probe`) answers for
certain. Measured on sigbpf's seed test kernel (testbench/kernel/, gcc -O2,
pahole 1.24): see docs/FINDINGS.md, "The seed test kernel".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sigbpf.btf.kinds import Kind
from sigbpf.errors import NotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf.spec import BTF

#: The seed's resolver function: its FUNC in vmlinux BTF marks a kernel with the pass.
SEED_FUNC = "resolve_loader_kfunc"


def native_prog_btf(btf: "BTF") -> bool | None:
    """True when *btf* (a kernel's vmlinux BTF) shows the seed's pass; None when it cannot tell."""
    try:
        btf.find_by_name_kind(SEED_FUNC, Kind.FUNC)
    except NotFoundError:
        return None
    return True


def describe(native: bool | None, *, source: str) -> str:
    """One line for the CLI: what *native* means, and how it was known (*source*: "BTF", "probe")."""
    if native is None:
        return (f"native PROG_BTF resolution: unknown from the {source} "
                f"(no FUNC {SEED_FUNC}; an inlined pass leaves none)")
    if source == "BTF":
        return f"native PROG_BTF resolution: yes (the {source} has FUNC {SEED_FUNC})"
    return f"native PROG_BTF resolution: {'yes' if native else 'no'} (the {source} says so)"
