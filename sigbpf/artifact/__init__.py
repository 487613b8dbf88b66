"""The portable artifact (docs/FORMAT.md): its format, and building one from a BPF object.

Public API::

    from sigbpf.artifact.format import Artifact, Program, Map, Kfunc, KfuncSite
    art = Artifact.decode(data, file="x.sbpf")      # strict; ArtifactError names section + offset
    data = art.encode()                             # canonical, deterministic bytes

    from sigbpf.artifact.build import build_artifact, build_from_file
    art = build_from_file("prog.o")                 # BPF object -> Artifact

Modules, one concept each: :mod:`.format` (model and container),
:mod:`.link` (libbpf-style linking of an entry program with its
subprograms), :mod:`.prog_btf` (libbpf's load-time BTF fixups: the program
BTF the kernel accepts), :mod:`.build` (object -> artifact: relocations in
their kernel-independent form), :mod:`.describe` (what ``sigbpf inspect``
shows).  Submodules are imported on use; this package file imports nothing.
"""
