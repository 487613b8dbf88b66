"""The machine's possible CPUs (``/sys/devices/system/cpu/possible``), as libbpf counts them.

Per-CPU map values and perf event arrays are sized by the number of *possible*
CPUs (libbpf's ``libbpf_num_possible_cpus``), not the online ones.
"""

from __future__ import annotations

from functools import lru_cache

from sigbpf.errors import KernelError

POSSIBLE = "/sys/devices/system/cpu/possible"


def parse_cpu_list(text: str, *, source: str = POSSIBLE) -> tuple[int, ...]:
    """The CPUs of a kernel CPU list (``0-3,5,7-8``), in order; KernelError when malformed."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, dash, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if dash else int(lo)
        except ValueError:
            raise KernelError(f"{source}: malformed CPU list {text.strip()!r}") from None
        if last < first:
            raise KernelError(f"{source}: malformed CPU range {part!r}")
        cpus.extend(range(first, last + 1))
    if not cpus:
        raise KernelError(f"{source}: empty CPU list")
    return tuple(cpus)


@lru_cache(maxsize=1)
def possible_cpus() -> int:
    """How many CPUs this machine may ever have: the CPUs in the possible list (libbpf's
    ``libbpf_num_possible_cpus`` counts the mask's set bits)."""
    try:
        with open(POSSIBLE, encoding="ascii") as f:
            text = f.read()
    except OSError as err:
        raise KernelError(f"{POSSIBLE}: {err.strerror or err}") from None
    return len(set(parse_cpu_list(text)))


__all__ = ["possible_cpus", "parse_cpu_list", "POSSIBLE"]
