"""The verifier's PROG_BTF kfunc resolution pass, and the checks sigbpf adds to it.

Public API::

    from sigbpf.resolve.resolver import resolve_kfunc_calls      # the seed's pass, exactly
    res = resolve_kfunc_calls(insns, prog_btf, vmlinux)
    res.ok, res.errno, res.errno_name, res.log, res.calls, res.insns

    from sigbpf.resolve.report import analyze, CheckOptions       # pass + extra checks + digests
    report = analyze(insns, prog_btf, vmlinux, modules=[...], kfunc_set=KfuncSet.for_kernel(vmlinux))
    report.ok, report.errno, report.log, report.findings, report.before, report.after

    from sigbpf.resolve.matrix import check_matrix              # many kernels (sigbpf check)
    from sigbpf.resolve.digest import prog_tag, prog_sha256      # the kernel's prog digest

Modules: :mod:`.resolver` (the seed), :mod:`.findings` (what a check
reports), :mod:`.prototype`, :mod:`.kfunc_check`, :mod:`.modules` (the checks
beyond the seed), :mod:`.binding` (an artifact's kfunc sites bound to one kernel's BTF: weak
kfuncs, ``&kfunc``; used by the loader too), :mod:`.subject` (what is resolved:
artifact or raw input, bound to a kernel), :mod:`.target` (a kernel: vmlinux, modules, kfunc list),
:mod:`.report` (one program), :mod:`.matrix` (``sigbpf check``),
:mod:`.digest`.  Nothing here calls the running kernel.
"""
