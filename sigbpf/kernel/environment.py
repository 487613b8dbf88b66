"""The values a portable artifact's *names* are bound to in one kernel, at load time.

A signed artifact carries no kernel-specific value: kconfig externs and ksyms
are recorded by name (docs/FORMAT.md 2.5-2.6).  :class:`KernelEnvironment` is
where a loader gets their values: the kernel's config (``/proc/config.gz`` or
``/boot/config-$(uname -r)``), facts libbpf probes (``LINUX_KERNEL_VERSION``,
``LINUX_HAS_BPF_COOKIE``, ``LINUX_HAS_SYSCALL_WRAPPER``), ``/proc/kallsyms`` for
typeless ksyms, and the kernel BTF for typed ones.  Each part is read on
first use, so an artifact without kconfig externs never reads the config.

The rules are libbpf's, implemented in :mod:`sigbpf.kernel.kconfig` and
:mod:`sigbpf.kernel.kallsyms`; this class only holds one kernel's inputs,
so tests can bind an artifact against a config or symbol table of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.artifact.format import KconfigExtern
    from sigbpf.btf import BTF
    from sigbpf.kernel.kallsyms import Kallsyms
    from sigbpf.kernel.kconfig import KernelConfig, KernelFacts
    from sigbpf.kernel.kernel_btf import KernelBTFs

__all__ = ["KernelEnvironment"]


class KernelEnvironment:
    """One kernel's config, facts and symbols; None parts are read from the running kernel."""

    def __init__(self, config: "KernelConfig | None" = None, facts: "KernelFacts | None" = None,
                 kallsyms: "Kallsyms | None" = None) -> None:
        self._config = config
        self._facts = facts
        self._kallsyms = kallsyms

    @classmethod
    def running(cls) -> "KernelEnvironment":
        """The running kernel's (each part read when first needed)."""
        return cls()

    @property
    def config(self) -> "KernelConfig":
        if self._config is None:
            from sigbpf.kernel.kconfig import KernelConfig

            self._config = KernelConfig.running()
        return self._config

    @property
    def facts(self) -> "KernelFacts":
        if self._facts is None:
            from sigbpf.kernel.kconfig import KernelFacts

            self._facts = KernelFacts.running()
        return self._facts

    @property
    def kallsyms(self) -> "Kallsyms":
        if self._kallsyms is None:
            from sigbpf.kernel.kallsyms import Kallsyms

            self._kallsyms = Kallsyms.running()
        return self._kallsyms

    def kconfig_map_data(self, externs: "Sequence[KconfigExtern]", size: int) -> bytes:
        """The ``.kconfig`` map's value for *externs* (libbpf's rules; missing strong ones raise)."""
        from sigbpf.elf.externs import KconfigType
        from sigbpf.kernel.kconfig import KconfigSpec, kconfig_map_data

        specs = [KconfigSpec(e.name, e.offset, e.size, KconfigType(e.type), e.signed, e.weak)
                 for e in externs]
        # Only externs that are not CONFIG_* values need the probed facts (LINUX_*).
        needs_facts = any(not e.name.startswith("CONFIG_") for e in externs)
        needs_config = any(e.name.startswith("CONFIG_") for e in externs)
        return kconfig_map_data(specs, size, self.config if needs_config else None,
                                self.facts if needs_facts else None)

    def kallsyms_address(self, name: str, *, weak: bool = False) -> int:
        """A typeless ksym's address (0 for a missing weak one)."""
        return self.kallsyms.address(name, weak=weak)

    def resolve_ksym_var(self, name: str, prog_btf: "BTF", local_id: int,
                         kernel: "KernelBTFs", *, weak: bool = False) -> tuple[int, int] | None:
        """A typed ksym: (kernel VAR id, BTF object fd: 0 for vmlinux), None for a missing weak one."""
        from sigbpf.kernel.kallsyms import resolve_ksym_var

        found = resolve_ksym_var(name, prog_btf, local_id, kernel.vmlinux, kernel.modules,
                                 weak=weak)
        if found is None:
            return None
        btf_id, module = found
        if module in (None, "vmlinux"):
            return btf_id, 0
        return btf_id, kernel.module_fd(module).fileno()
