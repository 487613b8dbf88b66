"""``sigbpf load LOADER --attach --pin DIR``: a loader's programs attached and pinned with the
artifact path's code (sigbpf.kernel.attach, sigbpf.kernel.bpffs), from the attach names the
loader file records (format 1.2, docs/FORMAT.md 8.1)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from attach_support import bpffs_dir, bpffs_root  # noqa: F401
from conftest import assert_one_line_error


@pytest.fixture(scope="module")
def trace_loader(bpf_object, tmp_path_factory) -> Path:
    """attach_trace.c's unsigned v1 loader (tracepoint, raw tracepoint, uprobes)."""
    from sigbpf.artifact.build import build_from_file
    from sigbpf.loadergen.generate import generate

    out = tmp_path_factory.mktemp("loader_attach") / "attach_trace.sbpl"
    out.write_bytes(generate(build_from_file(bpf_object("attach_trace")), 1).encode())
    return out


def test_attach_names_are_recorded_and_round_trip(trace_loader) -> None:
    from sigbpf.elf.progtypes import ProgType
    from sigbpf.loadergen.format import Loader

    data = trace_loader.read_bytes()
    assert data[8:12] == b"\x01\x00\x02\x00" and data[20] == 2     # format 1.2, ATTACH
    loader = Loader.decode(data)
    assert loader.encode() == data
    tp = {p.name: p for p in loader.progs}["tp_getppid"]
    assert (tp.prog_type, tp.section) == (ProgType.TRACEPOINT, "tp/syscalls/sys_enter_getppid")


def test_loader_without_attach_names_is_written_as_before(bpf_object) -> None:
    """Syscall programs only: no ATTACH part, format 1.0 (the bytes of before)."""
    from sigbpf.artifact.build import build_from_file
    from sigbpf.loadergen.generate import generate

    data = generate(build_from_file(bpf_object("kfunc_rcu_maps")), 1).encode()
    assert data[8:12] == b"\x01\x00\x00\x00" and data[20] == 0


@pytest.mark.usefixtures("kernel")
def test_load_loader_attach_pin_then_unload(cli, trace_loader, bpffs_dir) -> None:
    from sigbpf.kernel.bpffs import obj_get
    from sigbpf.kernel.maps import lookup_elem

    proc = cli("load", trace_loader, "--attach", "--pin", bpffs_dir, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    kinds = {a["program"]: a["kind"] for a in doc["attached"]}
    assert kinds["tp_getppid"] == "tracepoint" and kinds["raw_sys_enter"] == "raw_tracepoint"
    assert set(doc["pinned"]["maps"]) == {"counts"}
    assert set(doc["pinned"]["progs"]) == {p["name"] for p in doc["programs"]}
    assert doc["pinned"]["links"]["tp_getppid"]
    # the programs stay attached after sigbpf exits: the pinned map counts getppid() calls
    with obj_get(doc["pinned"]["maps"]["counts"]) as counts:
        def count(slot: int) -> int:
            return struct.unpack("<Q", lookup_elem(counts, struct.pack("<I", slot), 8))[0]

        before = count(0)
        for _ in range(3):
            os.getppid()
        assert count(0) >= before + 3                      # tracepoint sys_enter_getppid
        assert count(1) >= 3                               # raw tracepoint sys_enter
    down = cli("unload", bpffs_dir)
    assert down.returncode == 0, down.stderr
    assert not bpffs_dir.exists()


@pytest.mark.usefixtures("kernel")
def test_load_loader_attach_duration_detaches(cli, trace_loader) -> None:
    proc = cli("load", trace_loader, "--attach", "--duration", "0.2")
    assert proc.returncode == 0, proc.stderr
    assert "attached: " in proc.stdout and "detached " in proc.stdout


def test_attach_checks_come_before_loading(cli, trace_loader, tmp_path) -> None:
    assert_one_line_error(cli("load", trace_loader, "--iface", "lo"), 2, "--iface goes with --attach")
    assert_one_line_error(cli("load", trace_loader, "--programs", "tp_getppid"), 2,
                          "--programs does not apply to a loader file")
    bad = cli("load", trace_loader, "--pin", tmp_path / "not-bpffs")
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1 and bad.stdout == ""


def test_old_loader_file_without_sections_cannot_attach(cli, trace_loader, tmp_path) -> None:
    """A loader file written before format 1.2 (no attach names): a one-line error."""
    import dataclasses

    from sigbpf.loadergen.format import Loader, LoaderProg

    loader = Loader.decode(trace_loader.read_bytes())
    old = dataclasses.replace(loader, progs=tuple(LoaderProg(p.name, p.prog_type)
                                                  for p in loader.progs))
    path = tmp_path / "old.sbpl"
    path.write_bytes(old.encode())
    assert path.read_bytes()[8:12] == b"\x01\x00\x00\x00"
    assert_one_line_error(cli("load", path, "--attach"), 2, "has no section name")
