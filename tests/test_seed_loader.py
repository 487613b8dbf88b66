"""The seed's own scenario, end to end: a signed loader whose own instructions call kfuncs.

One loader (``sigbpf loader --own-kfuncs --protocol v2``: its cleanup is a
``bpf_iter_num`` loop, three kfunc calls in PROG_BTF form against the
loader's own BTF) is signed once with the test certificate that the seed
test kernels carry in their builtin keyring (tests/data/keys).  Then:

* in the patched kernel, both configurations ("small" and "extra", whose
  vmlinux ids of those kfuncs differ): the kernel verifies the signature
  (session keyring and builtin keyring) and resolves the calls itself; the
  loader runs and its program returns what it returns everywhere;
* in Debian's stock 7.3 kernel the very same bytes are refused: sigbpf says so
  before loading, and with ``--force`` the kernel verifies the signature and
  then refuses ``src_reg 3``: ``EINVAL``, "BPF_CALL uses reserved fields";
* what the signature does not cover, measured: the names.  A program signed
  once, calling ``src_reg 3`` FUNCs 6 and 7 of its program BTF, loads with the
  same signature whether that BTF names them ``bpf_rcu_read_lock/unlock`` or
  ``bpf_preempt_disable/enable``, and the kernel binds the signed calls to
  whichever the unsigned BTF names (the xlated calls equal those of a plain
  ``src_reg 2`` load of that pair).
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEYS = ROOT / "tests" / "data" / "keys"
RCU_CTX = "020000000a000000"
OWN_KFUNCS = ("bpf_iter_num_destroy", "bpf_iter_num_new", "bpf_iter_num_next")


@pytest.fixture(scope="module")
def signed_loader(bpf_object, tmp_path_factory) -> dict[str, Path]:
    """The v2 loader of kfunc_rcu_maps with its own kfunc calls, signed with the seed test key
    (and the plain signed v2 loader, for the program's expected return value)."""
    from sigbpf.artifact.build import build_from_file
    from sigbpf.loadergen.generate import generate
    from sigbpf.loadergen.sign import sign_loader
    from sigbpf.sign.keys import load_key_pair

    out = tmp_path_factory.mktemp("seed_loader")
    pair = load_key_pair((KEYS / "seed-test.key.pem").read_bytes(),
                         (KEYS / "seed-test.cert.pem").read_bytes())
    art = build_from_file(bpf_object("kfunc_rcu_maps"))
    data = generate(art, 2, own_kfuncs=True).encode()
    files = {"signed": out / "own.signed", "plain": out / "plain.sbpl",
             "cert": KEYS / "seed-test.cert.pem"}
    files["signed"].write_bytes(sign_loader(data, pair.key, pair.cert))
    # 7.3 binds an unsigned load's fd_array_cnt maps before it hashes the program, so an
    # unsigned v2 loader is refused there (EACCES): the plain loader is signed as well.
    files["plain"].write_bytes(sign_loader(generate(art, 2).encode(), pair.key, pair.cert))
    return files


GUEST = textwrap.dedent('''\
    """Runs in a guest: each case through the CLI (exit code, JSON or stderr), the vmlinux ids
    of the loader's kfuncs, and the names-not-signed measurement."""
    import json, subprocess, sys
    cases, kfuncs, cert, measure = json.loads(sys.argv[1])
    out = {"cases": {}}
    for name, argv in cases:
        p = subprocess.run([sys.executable, "-m", "sigbpf", *argv], capture_output=True, text=True)
        out["cases"][name] = {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr.strip()}
    from sigbpf.btf import BTF
    vmlinux = BTF.load_vmlinux()
    out["ids"] = {n: vmlinux.find_by_name_kind(n, 12) for n in kfuncs}
    if measure:
        sys.path.insert(0, "tests")
        from test_seed_loader import names_are_not_signed
        out["names"] = names_are_not_signed(cert)
    print(json.dumps(out))
''')


def names_are_not_signed(cert_path: str) -> dict[str, object]:
    """In the running (patched) kernel: one signed instruction stream, two program BTFs.  For
    each BTF: did the signed load pass (keyring session), and do its xlated calls equal a
    plain ``src_reg 2`` load of the pair that BTF names?"""
    from sigbpf.asm import Instruction, PseudoCall, call_kfunc, exit_, mov64_imm
    from sigbpf.btf import BTF
    from sigbpf.elf.progtypes import ProgFlags, ProgType
    from sigbpf.errors import KernelError
    from sigbpf.kernel.btf import load_btf
    from sigbpf.kernel.info import prog_info
    from sigbpf.kernel.keyring import KEY_SPEC_SESSION_KEYRING, add_asymmetric_key, unlink_key
    from sigbpf.kernel.program import ProgLoad, load_program
    from sigbpf.loadergen.own_btf import own_btf
    from sigbpf.sign.keys import encode_certificate, load_key_pair
    from sigbpf.sign.pkcs7 import sign_detached

    key_path = cert_path.replace("cert", "key")
    pair = load_key_pair(open(key_path, "rb").read(), open(cert_path, "rb").read())
    pairs = {"rcu": ("bpf_rcu_read_lock", "bpf_rcu_read_unlock"),
             "preempt": ("bpf_preempt_disable", "bpf_preempt_enable")}
    btfs = {k: own_btf(v) for k, v in pairs.items()}
    ids = [[i for _, i in b.kfunc_ids] for b in btfs.values()]
    assert ids[0] == ids[1], ids  # the same FUNC ids: the same signed instructions
    insns = Instruction.encode([call_kfunc(ids[0][0], PseudoCall.KFUNC_CALL_PROG_BTF),
                                call_kfunc(ids[0][1], PseudoCall.KFUNC_CALL_PROG_BTF),
                                mov64_imm(0, 0), exit_()])
    signature = sign_detached(insns, pair.key, pair.cert)
    vmlinux = BTF.load_vmlinux()
    serial = add_asymmetric_key("sigbpf seed test", encode_certificate(pair.cert, pem=False),
                                KEY_SPEC_SESSION_KEYRING)
    result: dict[str, object] = {"signed_insns": insns.hex()}
    try:
        for label, own in btfs.items():
            plain = Instruction.encode([call_kfunc(vmlinux.find_by_name_kind(n, 12))
                                        for n in pairs[label]] + [mov64_imm(0, 0), exit_()])
            with load_program(ProgLoad(ProgType.SYSCALL, plain, name="plain",
                                       flags=ProgFlags.SLEEPABLE)) as fd:
                want = prog_info(fd).xlated_insns
            with load_btf(own.raw) as btf_fd:
                req = ProgLoad(ProgType.SYSCALL, insns, name="signed", flags=ProgFlags.SLEEPABLE,
                               prog_btf_fd=btf_fd.fileno(), func_info=own.func_info,
                               signature=signature, keyring_id=KEY_SPEC_SESSION_KEYRING)
                try:
                    with load_program(req) as fd:
                        got = prog_info(fd).xlated_insns
                    result[label] = {"loaded": True, "binds_like_plain": got == want,
                                     "xlated": got.hex()}
                except KernelError as err:
                    result[label] = {"loaded": False, "errno": err.errno,
                                     "log": (err.log or "")[-400:]}
    finally:
        unlink_key(serial, KEY_SPEC_SESSION_KEYRING)
    return result


def _run_guest(kernel, cases, tmp_path: Path, cert: Path, measure: bool) -> dict:
    from testbench.vm import run_in_vm

    tmp_path.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "guest.py"
    script.write_text(GUEST)
    r = run_in_vm([sys.executable, str(script), json.dumps([cases, OWN_KFUNCS, str(cert), measure])],
                  kernel=kernel, cwd=ROOT, timeout=1500, env={"PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:], r.log_tail())
    return json.loads(r.stdout.strip().splitlines()[-1])


def _ran(case: dict) -> dict:
    assert case["rc"] == 0, case
    return json.loads(case["stdout"])


def _patched_cases(files: dict[str, Path]) -> list:
    s, c = str(files["signed"]), str(files["cert"])
    run = ["--run", "--ctx", RCU_CTX, "--json"]
    return [("session", ["load", s, "--cert", c, "--keyring", "session", *run]),
            ("builtin", ["load", s, "--keyring", "builtin", *run]),
            ("plain", ["load", str(files["plain"]), "--keyring", "builtin", *run])]


def test_signed_loader_with_own_kfuncs_loads_in_both_patched_kernels(
        seed_vm, seed_vm_extra, signed_loader, tmp_path, record_property) -> None:
    """Signed once; each patched kernel verifies it (session and builtin keyrings), resolves
    the loader's own PROG_BTF calls itself, and the loaded program returns what the plain
    loader's does; the two kernels' ids of those kfuncs differ."""
    seen = {}
    for label, kernel in (("small", seed_vm), ("extra", seed_vm_extra)):
        out = _run_guest(kernel, _patched_cases(signed_loader), tmp_path / label,
                         signed_loader["cert"], measure=label == "small")
        plain = _ran(out["cases"]["plain"])
        want = [(p["name"], p["retval"]) for p in plain["programs"]]
        for case, who in (("session", ["userspace", "kernel"]), ("builtin", ["kernel"])):
            doc = _ran(out["cases"][case])
            assert doc["signature"]["verified_by"] == who, (label, case, doc["signature"])
            assert doc["loader"]["own_kfuncs_resolved_by"] == "kernel", (label, doc)
            assert [(p["name"], p["retval"]) for p in doc["programs"]] == want, (label, doc)
        seen[label] = out
    ids = {label: out["ids"] for label, out in seen.items()}
    record_property("own_kfunc_ids", json.dumps(ids))
    print(f"\n[seed loader] vmlinux ids of the loader's kfuncs: {ids}")
    assert all(ids["small"][n] != ids["extra"][n] for n in OWN_KFUNCS), ids
    names = seen["small"]["names"]
    record_property("names_not_signed", json.dumps(names))
    print(f"[seed loader] one signature, two program BTFs: {json.dumps(names)}")
    # The same signed instructions load with either BTF and bind to the pair it names.
    for label in ("rcu", "preempt"):
        assert names[label]["loaded"] and names[label]["binds_like_plain"], names
    assert names["rcu"]["xlated"] != names["preempt"]["xlated"]


def test_stock_73_refuses_the_same_signed_bytes(vm, signed_loader, tmp_path) -> None:
    """Debian's 7.3 (no seed): sigbpf refuses the signed loader before loading (exit 2);
    handed over with --force, the kernel verifies the signature, then refuses src_reg 3:
    EINVAL, "BPF_CALL uses reserved fields" -- the measured reason the seed exists."""
    s, c = str(signed_loader["signed"]), str(signed_loader["cert"])
    cases = [("refused", ["load", s, "--cert", c, "--keyring", "session", "--run"]),
             ("forced", ["load", s, "--cert", c, "--keyring", "session", "--run", "--force"])]
    out = _run_guest(vm, cases, tmp_path, signed_loader["cert"], measure=False)
    refused, forced = out["cases"]["refused"], out["cases"]["forced"]
    assert refused["rc"] == 2 and len(refused["stderr"].splitlines()) == 1, refused
    assert "the signed loader calls kfuncs in PROG_BTF form" in refused["stderr"], refused
    assert forced["rc"] == 1 and len(forced["stderr"].splitlines()) == 1, forced
    assert "EINVAL" in forced["stderr"] and "BPF_CALL uses reserved fields" in forced["stderr"]
    assert "signature verification passed" in forced["stderr"], forced
