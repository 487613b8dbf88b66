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
    from sigbpf.artifact.format import KconfigExtern, Ksym
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
        """The ``.kconfig`` map's value for *externs* (libbpf's rules; missing strong ones raise).

        The config is read only when a ``CONFIG_*`` extern needs it, the facts only when a
        ``LINUX_*`` one does, as libbpf does."""
        from sigbpf.elf.externs import KconfigType
        from sigbpf.kernel.kconfig import (KconfigSpec, KernelFacts, kconfig_map_data,
                                           needs_config, needs_facts)

        specs = [KconfigSpec(e.name, e.offset, e.size, KconfigType(e.type), e.signed, e.weak)
                 for e in externs]
        config = self.config if needs_config(specs) else None
        facts = self.facts if needs_facts(specs) else KernelFacts.unknown()
        return kconfig_map_data(specs, size, config, facts)

    def kallsyms_addresses(self, ksyms: "Sequence[Ksym]") -> dict[str, int]:
        """The typeless ksyms' addresses (0 for missing weak ones), by libbpf's rules: every
        ksym variable takes part in the ambiguity check, only typeless ones get an address."""
        from sigbpf.kernel.kallsyms import KsymSpec

        return self.kallsyms.resolve_all(KsymSpec(y.name, y.weak, y.typed) for y in ksyms)

    def resolve_ksym_var(self, name: str, prog_btf: "BTF", type_id: int,
                         kernel: "KernelBTFs", *, weak: bool = False) -> tuple[int, int] | None:
        """A typed ksym declared with type *type_id* of the program BTF: (kernel VAR id, BTF
        object fd: 0 for vmlinux), or None for a missing weak one; libbpf's compatibility rule."""
        from sigbpf.kernel.kallsyms import resolve_ksym_var_running

        # the module BTFs only when vmlinux lacks the VAR, as libbpf (KernelBTFs keeps them)
        found = resolve_ksym_var_running(name, prog_btf, type_id, weak=weak,
                                         vmlinux=kernel.vmlinux, modules=lambda: kernel.modules)
        if found is None:
            return None
        btf_id, module = found
        if module in (None, "vmlinux"):
            return btf_id, 0
        return btf_id, kernel.module_fd(module).fileno()
