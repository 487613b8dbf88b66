"""The six kfunc test programs (tests/progs/kfunc_*.c) and what each returns when run.

Shared by the tests that run them directly (test_load_progs.py) and through the signed
loader (test_loadergen.py, test_loader_signed.py): ctx = {pid: this process, n: N}.
"""

from __future__ import annotations

import os
import struct

N = 10
# source file -> (program, expected return value given ctx = {pid: our pid, n: N})
PROGRAMS = {
    "kfunc_task": ("task_lookup", lambda: os.getpid()),
    "kfunc_rcu_maps": ("rcu_maps", lambda: 40 + 2 + 100 + 1000),
    "kfunc_iter": ("iter_sum", lambda: sum(range(N))),
    "kfunc_cpumask": ("cpumask_roundtrip", lambda: 1),
    "kfunc_obj_new": ("obj_new_local", lambda: 42),
    "kfunc_weak": ("weak_kfuncs", lambda: 1),
}


def ctx_bytes() -> bytes:
    """The context every kfunc test program reads: struct test_args {int pid; int n;}."""
    return struct.pack("<ii", os.getpid(), N)
