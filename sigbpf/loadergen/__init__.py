"""The signed loader generator ("light skeleton"): a portable artifact -> one loader program.

A *loader* is one ``BPF_PROG_TYPE_SYSCALL`` (sleepable) program plus its data
blob.  Run in the kernel (``BPF_PROG_RUN`` with a ``struct bpf_loader_ctx``) it
does what :mod:`sigbpf.kernel.loader` does in userspace: loads the program
BTF, creates and fills the maps, resolves kfuncs and attach targets by name
with ``bpf_btf_find_by_name_kind``, loads the programs, and returns every fd
through the ctx.  libbpf's ``gen_loader.c`` semantics; see docs/FORMAT.md,
chapter "The signed loader file".

* :mod:`.assembler` -- labels, blob references, ld_imm64 forms; offsets computed in one place
* :mod:`.blob`      -- the data blob, laid out by name, 8-aligned
* :mod:`.emit`      -- the emitters (register contract, single cleanup path)
* :mod:`.generate`  -- artifact -> :class:`~.format.Loader`
* :mod:`.format`    -- the loader file (encode/decode)
* :mod:`.run`       -- userspace runner (skel_internal.h's ``bpf_load_and_run``)
"""

from __future__ import annotations

from sigbpf.loadergen.magic import LOADER_MAGIC, is_loader


def __getattr__(name: str):
    # Loader and Protocol on first use: importing the package (e.g. for the magic) stays cheap.
    if name in ("Loader", "Protocol"):
        from sigbpf.loadergen import format as _format

        return getattr(_format, name)
    raise AttributeError(name)


__all__ = ["LOADER_MAGIC", "Loader", "Protocol", "is_loader"]
