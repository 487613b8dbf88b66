"""``sigbpf loader --protocol auto`` (the probe, sigbpf.loadergen.probe), the protocol named
when the kernel refuses a loader of the other one, and bad input through the loader path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import assert_one_line_error

pytest_plugins = ["sign_fixtures"]  # key pairs


@pytest.fixture(scope="module")
def rcu(bpf_object, tmp_path_factory, key_pair) -> dict[str, Path]:
    from sigbpf.artifact.build import build_from_file
    from sigbpf.loadergen.generate import generate
    from sigbpf.loadergen.sign import sign_loader

    out = tmp_path_factory.mktemp("loader_protocol")
    art = build_from_file(bpf_object("kfunc_rcu_maps"))
    files = {"obj": bpf_object("kfunc_rcu_maps")}
    for p in (1, 2):
        data = generate(art, p).encode()
        files[f"v{p}"] = out / f"v{p}.sbpl"
        files[f"v{p}"].write_bytes(data)
        files[f"v{p}.signed"] = out / f"v{p}.signed"
        files[f"v{p}.signed"].write_bytes(sign_loader(data, key_pair.key, key_pair.cert))
    return files


@pytest.mark.usefixtures("kernel")
def test_probe_says_v1_on_this_host() -> None:
    """6.18: the v1 prologue's reads of struct bpf_map (excl at 32, sha at 0) verify."""
    from sigbpf.loadergen.format import Protocol
    from sigbpf.loadergen.probe import probe_protocol

    probed = probe_protocol()
    assert probed.protocol is Protocol.V1, probed
    assert "verifies" in probed.answer


def _probe_in_guest():
    from sigbpf.loadergen.probe import probe_protocol

    r = probe_protocol()
    return {"protocol": None if r.protocol is None else int(r.protocol), "answer": r.answer}


def test_probe_says_v2_on_debian_7_3(vm) -> None:
    """7.3 (measured): the verifier refuses the v1 prologue's read of struct bpf_map."""
    from testbench.vm import run_python

    got = run_python(_probe_in_guest, kernel=vm, cwd=str(Path(__file__).parent.parent),
                     env={"PYTHONPATH": str(Path(__file__).parent.parent)})
    assert got["protocol"] == 2, got
    assert "cannot access ptr member ops with moff 32 in struct bpf_map" in got["answer"]


@pytest.mark.usefixtures("kernel")
def test_loader_protocol_auto_is_the_default_and_says_so(cli, rcu, tmp_path) -> None:
    from sigbpf.loadergen.format import Loader, Protocol

    out = tmp_path / "auto.sbpl"
    proc = cli("loader", rcu["obj"], "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "loader protocol v1 (the running kernel implements protocol v1 (probed:" in proc.stdout
    assert Loader.decode(out.read_bytes()).protocol is Protocol.V1
    assert out.read_bytes() == rcu["v1"].read_bytes()
    doc = json.loads(cli("loader", rcu["obj"], "-o", out, "--json").stdout)
    assert doc["protocol"] == "v1" and "struct bpf_map" in doc["protocol_probe"]
    explicit = json.loads(cli("loader", rcu["obj"], "-o", out, "--protocol", "v2", "--json").stdout)
    assert explicit["protocol"] == "v2" and "protocol_probe" not in explicit


@pytest.mark.usefixtures("kernel")
def test_the_other_protocol_is_refused_before_loading(cli, rcu) -> None:
    """6.18 implements v1: a v2 loader is refused by sigbpf (exit 2) before the kernel sees
    it, naming both protocols and the fix; with --force the kernel's own refusal (EACCES)
    is reported, naming both as well."""
    proc = cli("load", rcu["v2"], "--run", "--ctx", "00")
    assert_one_line_error(proc, 2, "a protocol v2 loader, and the running kernel implements "
                                   "protocol v1")
    assert "sigbpf loader --protocol v1" in proc.stderr and "--force" in proc.stderr
    assert proc.stdout == ""
    forced = cli("load", rcu["v2"], "--run", "--ctx", "00", "--force")
    assert_one_line_error(forced, 1, "this is a protocol v2 loader and the running kernel "
                                     "implements protocol v1")
    assert "EACCES" in forced.stderr and forced.stdout == ""


@pytest.mark.usefixtures("kernel")
def test_keyring_the_kernel_cannot_find(cli, rcu) -> None:
    """``--keyring 123456789``: EINVAL without a log -- the kernel found no such key."""
    proc = cli("load", rcu["v1.signed"], "--keyring", "123456789")
    assert_one_line_error(proc, 1, "EINVAL: the kernel found no such key or keyring "
                                   "(--keyring 123456789)")
    assert proc.stdout == ""


def test_truncated_loader_file(cli, rcu, tmp_path) -> None:
    data = rcu["v1"].read_bytes()
    for size, text in ((40, "shorter than the 64-byte header"), (len(data) // 2, "truncated"),
                       (len(data) - 8, "truncated")):
        path = tmp_path / f"cut{size}.sbpl"
        path.write_bytes(data[:size])
        proc = cli("load", path)
        assert_one_line_error(proc, 2, text)
        assert proc.stdout == ""


def test_loader_file_with_bad_magic(cli, rcu, tmp_path) -> None:
    """A changed magic byte: not a loader file, and not an artifact or object either."""
    from sigbpf.errors import FormatError
    from sigbpf.loadergen.format import Loader

    data = bytearray(rcu["v1"].read_bytes())
    data[3] ^= 0xFF
    path = tmp_path / "badmagic.sbpl"
    path.write_bytes(bytes(data))
    proc = cli("load", path)
    assert_one_line_error(proc, 2, "neither a sigbpf artifact nor a BPF object")
    assert proc.stdout == ""
    assert_one_line_error(cli("loader", path, "--disasm"), 2)
    with pytest.raises(FormatError, match="bad magic"):
        Loader.decode(bytes(data))
