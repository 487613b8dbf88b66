"""What ``sigbpf check`` takes as a kernel: BTF files and their siblings, BTFHub archives,
Debian packages, ``running``, directories -- and bad input of each kind.

References: libbpf (through ctypes) for the ids a kernel's BTF gives, the
``zstd`` tool and pyelftools for what a Debian ``vmlinuz`` holds, Debian's
own packages (the 7.3 kernel the VM bench uses, fetched into the cache with
a private apt state by testbench/debian.py).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import assert_one_line_error
from resolve_support import Libbpf

from sigbpf.fleet.sources import SourceKind, expand

K61, K612 = "6.1.0-56-amd64", "6.12.95+deb12-amd64"
CORPUS = Path(__file__).resolve().parent / "data" / "corpus"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGBPF_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def artifact(bpf_object):
    return bpf_object("fleet_all")


@pytest.fixture(scope="module")
def module_artifact(bpf_object):
    return bpf_object("fleet_module_kfunc")


@pytest.fixture(scope="module")
def debian_kernel():
    """Debian's 7.3 kernel packages (linux-binary, linux-modules), fetched once into the cache."""
    from testbench.debian import FetchError, fetch_kernel

    try:
        kernel = fetch_kernel("7.3", refresh=False)
    except (FetchError, OSError, subprocess.CalledProcessError) as e:
        if os.environ.get("SIGBPF_REQUIRE_KERNEL") == "1":
            pytest.fail(f"cannot fetch Debian's 7.3 kernel packages: {e}")
        pytest.skip(f"cannot fetch Debian's 7.3 kernel packages: {e}")
    debs = sorted(d for d in (kernel.dir / "debs").glob("*.deb")
                  if d.name.startswith(("linux-binary-", "linux-image-", "linux-modules-")))
    assert any(d.name.startswith(("linux-binary-", "linux-image-")) for d in debs), debs
    return kernel, debs


def run_json(cli, *args):
    proc = cli("check", *args, "--json")
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc, json.loads(proc.stdout)


def cells(kernel: dict) -> dict[str, dict]:
    return {c["check"]: c for c in kernel["cells"]}


def corpus_tree(root: Path, *kernels: str) -> None:
    """The corpus files of *kernels* (BTF, .BTF_ids, modules; .xz as they are) copied into *root*."""
    root.mkdir(parents=True, exist_ok=True)
    for k in kernels:
        for f in CORPUS.glob(f"{k}.*.xz"):
            shutil.copy(f, root / f.name)


# ------------------------------------------------------------------ files and directories

def test_a_directory_of_corpus_files_finds_kernels_and_their_siblings(tmp_path):
    corpus_tree(tmp_path / "fleet" / "debian", K61, K612)
    (tmp_path / "fleet" / "README.md").write_text("not a kernel")
    sources = expand([str(tmp_path / "fleet")])
    assert [s.label for s in sources] == [K61, K612]  # name order; modules and ids are siblings
    for s, k in zip(sources, (K61, K612)):
        assert s.kind is SourceKind.BTF_FILE and s.path.endswith(f"{k}.btf.xz")
        assert [Path(p).name for p in s.btf_ids] == [f"{k}.BTF_ids.xz"]
        assert [Path(p).name for p in s.modules] == [f"{k}.nf_conntrack.btf.xz", f"{k}.xfs.btf.xz"]


def test_siblings_decide_kfuncness_and_modules(cli, module_artifact, tmp_path, corpus_btf):
    """With its .BTF_ids the 6.12 kernel's kfuncs are definite; its nf_conntrack module
    defines bpf_skb_ct_lookup, which vmlinux lacks: missing, also module-only."""
    corpus_tree(tmp_path / "k", K612)
    proc, out = run_json(cli, module_artifact, tmp_path / "k")
    assert proc.returncode == 1, proc.stderr
    (kernel,) = out["kernels"]
    assert kernel["name"] == K612
    c = cells(kernel)
    assert c["kfunc:bpf_rcu_read_lock"]["code"] == "resolves"
    ct = c["kfunc:bpf_skb_ct_lookup"]
    assert (ct["code"], ct["also"]) == ("missing", ["module-only"]) and "nf_conntrack" in ct["detail"]
    lib = Libbpf(str(corpus_btf(f"{K612}.btf")))
    mod = Libbpf(str(corpus_btf(f"{K612}.nf_conntrack.btf")), lib)
    try:
        assert c["kfunc:bpf_rcu_read_lock"]["value"] == lib.find_func("bpf_rcu_read_lock")
        assert lib.find_func("bpf_skb_ct_lookup") < 0 < mod.find_func("bpf_skb_ct_lookup")
    finally:
        mod.close()
        lib.close()


def test_btfhub_layout_is_read_from_the_archive(cli, artifact, tmp_path, corpus_btf):
    """<distro>/<version>/<arch>/<kernel>.btf.tar.xz, read in memory; nothing unpacked."""
    d = tmp_path / "btfhub" / "debian" / "12" / "x86_64"
    d.mkdir(parents=True)
    for k in (K61, K612):
        data = corpus_btf(f"{k}.btf").read_bytes()
        with tarfile.open(d / f"{k}.btf.tar.xz", "w:xz", preset=0) as tar:
            info = tarfile.TarInfo(f"{k}.btf")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    before = sorted(p.name for p in d.iterdir())
    proc, out = run_json(cli, artifact, tmp_path / "btfhub")
    assert proc.returncode == 1, proc.stderr
    assert [k["name"] for k in out["kernels"]] == [K61, K612]
    assert [k["accepts"] for k in out["kernels"]] == [False, True]
    assert sorted(p.name for p in d.iterdir()) == before
    lib = Libbpf(str(corpus_btf(f"{K612}.btf")))
    try:
        assert cells(out["kernels"][1])["kfunc:bpf_task_from_pid"]["value"] == lib.find_func("bpf_task_from_pid")
    finally:
        lib.close()


def test_running_is_this_kernel_with_the_probe(cli, artifact, kernel, tmp_path):
    copy = tmp_path / "copy.btf"
    copy.write_bytes(Path("/sys/kernel/btf/vmlinux").read_bytes())
    proc, out = run_json(cli, artifact, "running", copy)
    assert proc.returncode in (0, 1), proc.stderr
    running, file = out["kernels"]
    assert running["name"] == os.uname().release and running["source"] == "/sys/kernel/btf/vmlinux"
    assert running["native_prog_btf"] is False  # 6.18 without the seed: the probe says so
    assert file["native_prog_btf"] is None  # from BTF alone: unknown
    assert running["cells"] == file["cells"]


def test_kernels_with_the_same_name_are_told_apart(cli, artifact, tmp_path, corpus_btf):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        shutil.copy(corpus_btf(f"{K61}.btf"), tmp_path / d / f"{K61}.btf")
    proc, out = run_json(cli, artifact, tmp_path / "a", tmp_path / "b")
    assert [k["name"] for k in out["kernels"]] == [f"{K61} ({tmp_path / d / K61}.btf)" for d in "ab"]


# ------------------------------------------------------------------ bad input


def test_bad_kernels_are_rows_and_the_run_goes_on(cli, artifact, tmp_path, corpus_btf):
    """Each bad kernel is a 'could not read' row with the reason; exit 2; the good one checked."""
    d = tmp_path / "fleet"
    d.mkdir()
    good = corpus_btf(f"{K612}.btf").read_bytes()
    (d / "a-truncated.btf").write_bytes(good[:len(good) // 2])
    (d / "b-not.btf").write_bytes(b"this is not BTF at all" * 10)
    (d / "c-corrupt.btf.tar.xz").write_bytes(b"\xfd7zXZ\x00" + os.urandom(200))
    (d / "d-dangling.btf").symlink_to(tmp_path / "nowhere")
    os.mkfifo(d / "e-fifo.btf")
    (d / "f-truncated.deb").write_bytes(b"!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n")
    (d / f"z-{K612}.btf").write_bytes(good)
    proc, out = run_json(cli, artifact, d)
    assert proc.returncode == 2
    assert_one_line_error(proc, 2, "6 of 7 kernel(s) could not be read")
    rows = {Path(k["source"]).name: k for k in out["kernels"]}
    assert rows[f"z-{K612}.btf"]["accepts"] is True
    reasons = {name: k["error"] for name, k in rows.items() if k["error"]}
    assert "truncated" in reasons["a-truncated.btf"] or "ends" in reasons["a-truncated.btf"]
    assert "no BTF magic" in reasons["b-not.btf"]
    assert "corrupt" in reasons["c-corrupt.btf.tar.xz"]
    assert "no such file" in reasons["d-dangling.btf"].lower() or "exist" in reasons["d-dangling.btf"]
    assert "not a regular file" in reasons["e-fifo.btf"]
    assert "f-truncated.deb" in reasons and reasons["f-truncated.deb"]
    for k in out["kernels"]:
        if k["error"]:
            assert k["verdict"] == "unreadable" and k["accepts"] is False and k["cells"] == []
    assert out["ok"] is False and out["exit"] == 2


def test_a_bad_artifact_or_no_kernel_is_one_line(cli, artifact, tmp_path):
    junk = tmp_path / "junk.o"
    junk.write_bytes(b"\x00" * 40)
    assert_one_line_error(cli("check", junk, "running"), 2, str(junk))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(cli("check", artifact, empty), 2, "no kernels found")


# ------------------------------------------------------------------ Debian packages

def _reference_btf(vmlinuz: Path, tmp_path: Path) -> bytes:
    """.BTF of a vmlinuz by other means: the zstd tool on the payload, pyelftools on the ELF."""
    import struct

    from elftools.elf.elffile import ELFFile

    data = vmlinuz.read_bytes()
    setup_sects = data[0x1F1] or 4
    offset, length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + offset
    payload = tmp_path / "payload.zst"
    payload.write_bytes(data[start:start + length - 4])  # less the kernel's appended size
    elf = subprocess.run(["zstd", "-dc", str(payload)], check=True, capture_output=True).stdout
    return ELFFile(io.BytesIO(elf)).get_section_by_name(".BTF").data()


def test_debian_packages_are_read_as_debs(cli, module_artifact, debian_kernel, tmp_path):
    """linux-binary-* (zstd vmlinuz -> ELF -> .BTF) and linux-modules-* (nf_conntrack.ko.xz's
    split BTF) of Debian's 7.3 kernel, as one kernel named by its release."""
    kernel, debs = debian_kernel
    if shutil.which("zstd") is None:
        pytest.fail("the zstd tool is not installed (the reference for this test)")
    from sigbpf.fleet.deb import data_members
    from sigbpf.fleet.kernel_input import KernelReader
    from sigbpf.fleet.vmlinux_image import image_btf

    (source,) = expand([str(d) for d in debs])
    assert source.kind is SourceKind.DEB and source.label == kernel.release
    assert [Path(p).name.split("_")[0] for p in source.modules] == [f"linux-modules-{kernel.release}"]
    reader = KernelReader(source)
    reader.digest()
    data = reader.read(["bpf_skb_ct_lookup"])
    assert data.version == kernel.release
    assert [m.name for m in data.modules] == ["nf_conntrack"]  # the one module defining the name
    assert data.modules_seen > 1000

    reference = _reference_btf(kernel.vmlinuz, tmp_path)
    (name, vmlinuz), = data_members(str(source.path), lambda n: Path(n).name == "vmlinuz")
    image = image_btf(vmlinuz, name)
    assert image.btf == reference and image.version == kernel.release and image.how == "zstd payload"
    ref_file = tmp_path / "vmlinux.btf"
    ref_file.write_bytes(reference)
    proc, out = run_json(cli, module_artifact, *debs)
    assert proc.returncode == 1, proc.stderr
    (k,) = out["kernels"]
    assert k["name"] == kernel.release
    c = cells(k)
    lib = Libbpf(str(ref_file))
    try:
        assert c["kfunc:bpf_rcu_read_lock"]["value"] == lib.find_func("bpf_rcu_read_lock") > 0
        assert lib.find_func("bpf_skb_ct_lookup") < 0
    finally:
        lib.close()
    ct = c["kfunc:bpf_skb_ct_lookup"]
    assert (ct["code"], ct["also"]) == ("missing", ["module-only"]) and "nf_conntrack" in ct["detail"]


def test_a_truncated_or_lone_package_is_a_row(cli, artifact, debian_kernel, tmp_path):
    _kernel, debs = debian_kernel
    image = next(d for d in debs if d.name.startswith(("linux-binary-", "linux-image-")))
    modules = next(d for d in debs if d.name.startswith("linux-modules-"))
    cut = tmp_path / image.name
    cut.write_bytes(image.read_bytes()[: image.stat().st_size // 3])
    proc, out = run_json(cli, artifact, cut)
    assert proc.returncode == 2
    (row,) = out["kernels"]
    assert row["verdict"] == "unreadable" and str(cut) in row["source"] and row["error"]
    proc, out = run_json(cli, artifact, modules)
    (row,) = out["kernels"]
    assert proc.returncode == 2 and "modules package without its kernel image" in row["error"]
