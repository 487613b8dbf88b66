"""The differential test: sigbpf's model of the seed's verifier pass against a patched kernel.

The seed ("bpf: resolve loader-style kfunc CALLs against prog BTF") exists in
sigbpf as a Python model, :func:`sigbpf.resolve.resolver.resolve_kfunc_calls`.
This package measures whether the model says what a kernel carrying the patch
does, program by program:

* :mod:`.programs`  a seeded, kernel-independent generator of
  ``BPF_PROG_TYPE_SYSCALL`` programs with PROG_BTF calls (src_reg 3), valid
  and invalid, sharing a few program BTF objects;
* :mod:`.expect`    the prediction for one program: the earlier passes
  (``sigbpf.asm.check``), the seed's pass (``resolve_kfunc_calls``) and the
  one later refusal the programs are built to meet;
* :mod:`.harness`   loads every program through sigbpf's own ``bpf()`` layer
  and records accept/reject, errno and the seed's log line (runs in the
  patched kernel's VM, or on the host);
* :mod:`.compare`   prediction against observation, the named explained
  disagreements, and the agreement table.

The flow: the host generates the corpus (seed, count), the guest generates the
same corpus (the digest proves it), loads it and returns its observations and
its vmlinux BTF; the host predicts with that BTF and compares.
"""
