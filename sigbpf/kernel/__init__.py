"""The running kernel: ``bpf()`` through ctypes, probes, loading artifacts.

Everything in this package talks to the kernel this process runs on; nothing
else in sigbpf does.  The layers, bottom up:

* :mod:`.syscall`  the ``bpf()`` system call, its command numbers and :class:`Fd`.
* :mod:`.attr`     ``union bpf_attr`` and the info structs as fixed x86-64 layouts.
* :mod:`.btf`      ``BPF_BTF_LOAD``.
* :mod:`.maps`     ``BPF_MAP_CREATE`` / ``UPDATE_ELEM`` / ``LOOKUP_ELEM`` / ``FREEZE``.
* :mod:`.program`  ``BPF_PROG_LOAD`` with the verifier log.
* :mod:`.run`      ``BPF_PROG_RUN``.
* :mod:`.info`     ``BPF_OBJ_GET_INFO_BY_FD`` for programs (tag) and maps (hash).
* :mod:`.bpffs`    ``BPF_OBJ_PIN`` / ``BPF_OBJ_GET``.
* :mod:`.log`      the log-buffer protocol (no log first, full log on refusal).
* :mod:`.keyring`  ``add_key("asymmetric", ...)`` for signed loads.
* :mod:`.probe`    does this kernel resolve ``BPF_PSEUDO_KFUNC_CALL_PROG_BTF`` itself?
* :mod:`.loader`   a portable artifact into the kernel, end to end (kfunc sites bound
                   by :mod:`sigbpf.resolve.binding`)::

      from sigbpf.kernel.loader import load_artifact
      with load_artifact(artifact, run=True, ctx=bytes(8)) as loaded:
          print(loaded.report.as_json())   # resolution, programs, kfuncs

Importing this package is cheap: modules load libc only when first called.
"""
