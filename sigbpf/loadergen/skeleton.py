"""A loader file -> a C light-skeleton header (``NAME.lskel.h``), ``bpftool gen skeleton -L``'s layout.

:func:`skeleton_header` writes what bpftool's ``gen_trace()`` (src/gen.c) writes for
``-L`` (and ``-S``), for a sigbpf loader instead of libbpf's: ``struct NAME`` with the
loader ctx first, then ``maps`` (one ``struct bpf_map_desc`` per map, named as
bpftool's ``get_map_ident`` names them: ``.data`` -> ``data``, ``.data.custom`` ->
``data_custom``), ``progs`` (``struct bpf_prog_desc``) and ``links`` (``int
PROG_fd``); ``NAME__open``, ``__load``, ``__open_and_load``, ``__attach``,
``__detach``, ``__destroy``; the loader's instructions and blob as C string
literals handed to ``bpf_load_and_run()`` (``opts.insns``, ``opts.data``,
``opts.ctx``).  docs/FORMAT.md 8.5 says what differs and why.

What ``bpf_load_and_run`` does depends on the ``skel_internal.h`` the header is
compiled against:

* libbpf < 1.7 (Debian 12's 1.1): a plain blob map, not frozen, not exclusive, no
  signature.  A protocol v1 loader's prologue checks ``map->excl`` and ``map->sha``
  and returns ``-EINVAL`` there (measured, tests/test_skeleton.py), so only an
  unsigned protocol v2 loader (no check in the loader) runs; :func:`skeleton_header`
  refuses a v1 loader.
* libbpf >= 1.7: ``opts.excl_prog_hash`` makes the blob map exclusive to the loader,
  the map is frozen, and ``opts.signature`` / ``opts.keyring_id`` go to
  ``BPF_PROG_LOAD`` with ``fd_array_cnt = 1``: that is sigbpf's protocol v2
  sequence, so a signed v2 loader's signature (over ``insns || blob``) is what
  the kernel checks.  The header passes it only when ``libbpf_version.h`` says
  >= 1.7; on an older libbpf a signed header is a compile-time ``#error``, unless
  ``SIGBPF_SKEL_ALLOW_UNSIGNED`` is defined, which loads the same loader without its
  signature (nothing checks it then).
"""

from __future__ import annotations

import re

from sigbpf.errors import UsageError
from sigbpf.loadergen.format import Loader, LoaderMapFlags, Protocol

#: bpftool's ``get_map_ident`` suffixes for internal maps, in its order.
_INTERNAL_SUFFIXES = (".data", ".rodata", ".bss", ".kconfig")
#: libbpf's first skel_internal.h with the signing fields in ``bpf_load_and_run_opts``.
SIGNING_LIBBPF = (1, 7)


def map_ident(name: str) -> str:
    """bpftool's ``get_map_ident``: a BTF-defined map keeps its name; an internal one
    (``kfunc_rc.rodata``, ``.data.custom``) is what follows its section prefix's dot,
    sanitized."""
    if "." not in name:
        return name
    for sfx in _INTERNAL_SUFFIXES:
        at = name.find(sfx)
        if at >= 0:
            return sanitize(name[at + 1:])
    return sanitize(name)


def sanitize(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def c_string(data: bytes) -> str:
    """bpftool's ``print_hex``: ``\\xNN`` (``\\0`` for zero), lines of at most 78 columns."""
    out, width = ["\\\n"], 0
    for byte in data:
        w = 4 if byte else 2
        width += w
        if width > 78:
            out.append("\\\n")
            width = w
        out.append(f"\\x{byte:02x}" if byte else "\\0")
    return "".join(out)


def check_usable(loader: Loader) -> None:
    """UsageError unless some skel_internal.h's ``bpf_load_and_run`` can run *loader*."""
    if loader.protocol is Protocol.V1:
        raise UsageError(
            "protocol v1 loader: its prologue checks that the blob map is exclusive to it and "
            "hashed, which bpf_load_and_run (skel_internal.h, libbpf 1.1 and >= 1.7 alike) "
            "does not arrange; generate it with `sigbpf loader --protocol v2`")
    if not loader.progs:
        raise UsageError("the loader loads no program: nothing to put in a skeleton")
    if loader.kconfig is not None:
        raise UsageError(
            "the loader has .kconfig externs: it needs the running kernel's kconfig values as "
            "its KCONFIG map's initial_value, which this light skeleton does not compute "
            "(run it with `sigbpf load`)")
    from sigbpf.loadergen.run import struct_ops_members

    if struct_ops_members(loader):
        raise UsageError(
            "the loader has struct_ops programs: each needs its member's index in the running "
            "kernel's struct in its program descriptor, which this light skeleton does not "
            "compute (run it with `sigbpf load`)")


def skeleton_header(loader: Loader, name: str, *, check: bool = True) -> str:  # noqa: C901
    """The ``NAME.lskel.h`` text for *loader* (module docstring).  ``check=False`` writes it
    for a protocol v1 loader too (to measure what bpf_load_and_run does with one)."""
    if check:
        check_usable(loader)
    elif not loader.progs:
        raise UsageError("the loader loads no program: nothing to put in a skeleton")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise UsageError(f"skeleton name {name!r} is not a C identifier")
    idents = [map_ident(m.name) for m in loader.maps]
    progs = [p.name for p in loader.progs]
    for ident in [*idents, *progs]:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ident):
            raise UsageError(f"map or program name {ident!r} is not a C identifier")
    if len(set(idents)) != len(idents):
        raise UsageError(f"two maps have the same skeleton name: {idents}")
    signed = bool(loader.signature)
    guard = f"__{name.upper()}_SKEL_H__"
    per_cpu = [ident for ident, m in zip(idents, loader.maps)
               if m.flags & LoaderMapFlags.MAX_ENTRIES_FROM_CTX]
    maj, mnr = SIGNING_LIBBPF
    o: list[str] = []
    w = o.append
    w("/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */\n")
    w("/* THIS FILE IS AUTOGENERATED BY SIGBPF (sigbpf gen skeleton)! */\n")
    w(f"/* Light skeleton of sigbpf loader '{loader.name}': protocol v{int(loader.protocol)}, "
      f"{len(loader.insns)} insns, blob {len(loader.blob)} bytes,\n"
      f" * {'SIGNED (PKCS#7, ' + str(len(loader.signature)) + ' bytes, over insns || blob)' if signed else 'unsigned'}.\n"
      f" * loader sha256 {loader.insns_sha256.hex()}\n"
      f" * blob   sha256 {loader.blob_sha256.hex()}\n"
      " *\n"
      " * Layout of `bpftool gen skeleton -L`: struct bpf_loader_ctx, maps, progs, links.\n"
      " * The maps' initial data is in the (signed) blob, not in the ctx: there are no\n"
      " * NAME->data/rodata/bss pointers and initial_value stays 0.\n"
      " * libbpf < 1.7's skel_internal.h (Debian 12: 1.1) has no signing fields in\n"
      " * struct bpf_load_and_run_opts and makes a plain, unfrozen blob map: it runs\n"
      " * an unsigned protocol v2 loader only."
      + (" This header is signed: on libbpf < 1.7 it is\n"
         " * an #error unless SIGBPF_SKEL_ALLOW_UNSIGNED is defined (then the signature is\n"
         " * NOT passed, and nothing checks it)." if signed else "")
      + "\n * See sigbpf's docs/FORMAT.md, 8.5.\n */\n")
    w(f"#ifndef {guard}\n#define {guard}\n\n")
    w("#include <errno.h>\n#include <stddef.h>\n" + ("#include <fcntl.h>\n" if per_cpu else "")
      + "#include <bpf/skel_internal.h>\n")
    if signed:
        w("#include <bpf/libbpf_version.h>\n\n")
        w(f"#if LIBBPF_MAJOR_VERSION > {maj} || (LIBBPF_MAJOR_VERSION == {maj} && "
          f"LIBBPF_MINOR_VERSION >= {mnr})\n#define {name.upper()}__SIGNED 1\n")
        w("#elif !defined(SIGBPF_SKEL_ALLOW_UNSIGNED)\n")
        w(f'#error "{name}.lskel.h is a signed light skeleton: it needs libbpf >= {maj}.{mnr}\'s '
          f'skel_internal.h (bpf_load_and_run_opts.signature); define SIGBPF_SKEL_ALLOW_UNSIGNED '
          f'to load it unsigned"\n#endif\n')
    w(f"\nstruct {name} {{\n\tstruct bpf_loader_ctx ctx;\n")
    if idents:
        w("\tstruct {\n")
        for ident in idents:
            w(f"\t\tstruct bpf_map_desc {ident};\n")
        w("\t} maps;\n")
    w("\tstruct {\n")
    for p in progs:
        w(f"\t\tstruct bpf_prog_desc {p};\n")
    w("\t} progs;\n\tstruct {\n")
    for p in progs:
        w(f"\t\tint {p}_fd;\n")
    w("\t} links;\n")
    if signed:
        w("\t__s32 keyring_id;\n")
    w("};\n\n")
    w(f"_Static_assert(offsetof(struct {name}, links) == {loader.ctx_size}, "
      f"\"the loader's ctx is {loader.ctx_size} bytes\");\n\n")
    # attach / detach: sigbpf's loader file does not record attach types (docs/FORMAT.md 8.5)
    for p in progs:
        w(f"static inline int\n{name}__{p}__attach(struct {name} *skel)\n{{\n"
          f"\tint prog_fd = skel->progs.{p}.prog_fd;\n"
          f"\tint fd = ((void)prog_fd, 0); /* auto-attach not supported */\n\n"
          f"\tif (fd > 0)\n\t\tskel->links.{p}_fd = fd;\n\treturn fd;\n}}\n\n")
    w(f"static inline int\n{name}__attach(struct {name} *skel)\n{{\n\tint ret = 0;\n\n")
    for p in progs:
        w(f"\tret = ret < 0 ? ret : {name}__{p}__attach(skel);\n")
    w("\treturn ret < 0 ? ret : 0;\n}\n\n")
    w(f"static inline void\n{name}__detach(struct {name} *skel)\n{{\n")
    for p in progs:
        w(f"\tskel_closenz(skel->links.{p}_fd);\n")
    w("}\n")
    w(f"static void\n{name}__destroy(struct {name} *skel)\n{{\n\tif (!skel)\n\t\treturn;\n"
      f"\t{name}__detach(skel);\n")
    for p in progs:
        w(f"\tskel_closenz(skel->progs.{p}.prog_fd);\n")
    for ident in idents:
        w(f"\tskel_closenz(skel->maps.{ident}.map_fd);\n")
    w("\tskel_free(skel);\n}\n")
    if per_cpu:
        # the loader takes these maps' max_entries from the ctx: libbpf_num_possible_cpus()
        w(f"\nstatic inline int\n{name}__possible_cpus(void)\n{{\n"
          "\tchar buf[128];\n\tint fd, n, cpus = 0, a, b, i = 0;\n\n"
          "\tfd = open(\"/sys/devices/system/cpu/possible\", O_RDONLY | O_CLOEXEC);\n"
          "\tif (fd < 0)\n\t\treturn -errno;\n"
          "\tn = read(fd, buf, sizeof(buf) - 1);\n\tclose(fd);\n"
          "\tif (n <= 0)\n\t\treturn -EINVAL;\n\tbuf[n] = 0;\n"
          "\twhile (i < n && buf[i] >= '0' && buf[i] <= '9') {\n"
          "\t\tfor (a = 0; buf[i] >= '0' && buf[i] <= '9'; i++)\n\t\t\ta = a * 10 + buf[i] - '0';\n"
          "\t\tb = a;\n\t\tif (buf[i] == '-')\n"
          "\t\t\tfor (b = 0, i++; buf[i] >= '0' && buf[i] <= '9'; i++)\n\t\t\t\tb = b * 10 + buf[i] - '0';\n"
          "\t\tcpus += b - a + 1;\n\t\tif (buf[i] == ',')\n\t\t\ti++;\n\t}\n"
          "\treturn cpus > 0 ? cpus : -EINVAL;\n}\n")
    w(f"static inline struct {name} *\n{name}__open(void)\n{{\n\tstruct {name} *skel;\n")
    if per_cpu:
        w("\tint cpus;\n")
    w(f"\n\tskel = (struct {name} *)skel_alloc(sizeof(*skel));\n\tif (!skel)\n\t\tgoto cleanup;\n"
      "\tskel->ctx.sz = (char *)&skel->links - (char *)skel;\n")
    if per_cpu:
        w(f"\tcpus = {name}__possible_cpus();\n\tif (cpus < 0)\n\t\tgoto cleanup;\n")
        for ident in per_cpu:
            w(f"\tskel->maps.{ident}.max_entries = cpus;\n")
    w(f"\treturn skel;\ncleanup:\n\t{name}__destroy(skel);\n\treturn NULL;\n}}\n\n")
    w(f"static inline int\n{name}__load(struct {name} *skel)\n{{\n"
      "\tstruct bpf_load_and_run_opts opts = {};\n\tint err;\n"
      "\tstatic const char opts_data[] __attribute__((__aligned__(8))) = \"")
    w(c_string(loader.blob))
    w("\";\n\tstatic const char opts_insn[] __attribute__((__aligned__(8))) = \"")
    w(c_string(loader.insn_bytes))
    w("\";\n")
    if signed:
        w(f"#ifdef {name.upper()}__SIGNED\n"
          "\tstatic const char opts_sig[] __attribute__((__aligned__(8))) = \"")
        w(c_string(loader.signature))
        w("\";\n\tstatic const char opts_excl_hash[] __attribute__((__aligned__(8))) = \"")
        w(c_string(loader.insns_sha256))
        w("\";\n\n\topts.signature = (void *)opts_sig;\n"
          "\topts.signature_sz = sizeof(opts_sig) - 1;\n"
          "\topts.excl_prog_hash = (void *)opts_excl_hash;\n"
          "\topts.excl_prog_hash_sz = sizeof(opts_excl_hash) - 1;\n"
          "\topts.keyring_id = skel->keyring_id;\n#endif\n")
    w("\topts.ctx = (struct bpf_loader_ctx *)skel;\n"
      "\topts.data_sz = sizeof(opts_data) - 1;\n"
      "\topts.data = (void *)opts_data;\n"
      "\topts.insns_sz = sizeof(opts_insn) - 1;\n"
      "\topts.insns = (void *)opts_insn;\n\n"
      "\terr = bpf_load_and_run(&opts);\n\tif (err < 0)\n\t\treturn err;\n\treturn 0;\n}\n\n")
    w(f"static inline struct {name} *\n{name}__open_and_load(void)\n{{\n\tstruct {name} *skel;\n\n"
      f"\tskel = {name}__open();\n\tif (!skel)\n\t\treturn NULL;\n"
      f"\tif ({name}__load(skel)) {{\n\t\t{name}__destroy(skel);\n\t\treturn NULL;\n\t}}\n"
      "\treturn skel;\n}\n\n")
    w(f"#endif /* {guard} */\n")
    return "".join(o)


__all__ = ["SIGNING_LIBBPF", "c_string", "check_usable", "map_ident", "skeleton_header"]
