"""The seed in a real kernel: native PROG_BTF resolution in the patched 7.3 test kernel.

``testbench/kernel/`` builds Debian's linux-source-7.3 with the seed's patch
(``0001-bpf-resolve-loader-style-kfunc-CALLs-against-prog-BTF.patch``) in two
configurations, "small" and "extra" (the ``seed_vm``/``seed_vm_extra``
fixtures build them on first use, ~8-15 min each, then reuse the cache). The
guest-side measurements are in tests/seed_guest.py; each configuration boots
once per session (:func:`small` / :func:`extra`) and the tests below assert on
what the kernel answered. The facts are printed (``pytest -s``) and recorded
as properties (``--junitxml``); docs/FINDINGS.md §3-§5 and "The seed test
kernel" quote them.

Host-only tests (no VM): the patch touches exactly the seed's four files, the
build's cache key follows its inputs, the probe answers "not native" here.
"""

from __future__ import annotations

import errno
import hashlib
import json
import re
from pathlib import Path

import pytest

from conftest import ROOT
from kfunc_programs import PROGRAMS

#: What the guest measurements print (tests/seed_guest.py).
SEED_FIRST_CHECK = "PROG_BTF resolution requires prog BTF and insn->off == 0"
EXCL_MISMATCH = "program's hash doesn't match map's excl_prog_hash"


def _report(record_property, name: str, value) -> None:
    record_property(name, json.dumps(value) if not isinstance(value, str) else value)
    print(f"\n[seed-kernel] {name}: {json.dumps(value, indent=1) if not isinstance(value, str) else value}")


@pytest.fixture(scope="module")
def kfunc_objects(bpf_object) -> dict[str, str]:
    """tests/progs/kfunc_*.c compiled on the host (clang under TCG would take minutes)."""
    return {name: str(bpf_object(name)) for name in PROGRAMS}


def _guest(kernel, spec: dict) -> tuple[dict, object]:
    """Run tests/seed_guest.py's measurements named in *spec* in *kernel*; (JSON, VMResult)."""
    from testbench.vm import run_python

    code = f"import seed_guest; seed_guest.main({json.dumps(spec)})"
    r = run_python(code, kernel=kernel, timeout=1800, cwd=ROOT,
                   env={"PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"})
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:], r.log_tail())
    assert not r.kernel_warnings, r.kernel_warnings
    return json.loads(r.stdout.strip().splitlines()[-1]), r


@pytest.fixture(scope="module")
def small(seed_vm, kfunc_objects) -> dict:
    """Every measurement, in one boot of the "small" seed kernel."""
    out, r = _guest(seed_vm, {
        "facts": [], "cli_loads": [kfunc_objects], "kernel_choices": [kfunc_objects],
        "digest": [], "weak_dead_path": [kfunc_objects["kfunc_weak"]], "seed_failures": [],
        "cli_resolve": [kfunc_objects["kfunc_rcu_maps"]]})
    out["boot_seconds"] = r.boot_seconds
    out["kernel_log"] = r.kernel_log
    return out


@pytest.fixture(scope="module")
def extra(seed_vm_extra, kfunc_objects) -> dict:
    """The same artifacts in the "extra" seed kernel (other vmlinux ids), native path only."""
    out, r = _guest(seed_vm_extra, {"facts": [], "cli_loads": [kfunc_objects, ["kernel"]],
                                    "kernel_choices": [kfunc_objects]})
    out["boot_seconds"] = r.boot_seconds
    return out


def _expected(name: str, guest_pid: int):
    """What program *name* returns in the guest (ctx = {guest pid, N})."""
    return guest_pid if name == "kfunc_task" else PROGRAMS[name][1]()


# ------------------------------------------------------------------ host only

def test_patch_touches_only_the_seeds_files() -> None:
    """The patch changes the UAPI header (both copies), bpf_verifier.h and verifier.c, nothing else,
    and carries resolve_loader_kfunc()'s four log lines as the seed has them."""
    from testbench.kernel import PATCH

    text = PATCH.read_text()
    files = re.findall(r"^\+\+\+ b/(\S+)", text, re.M)
    assert sorted(files) == ["include/linux/bpf_verifier.h", "include/uapi/linux/bpf.h",
                             "kernel/bpf/verifier.c", "tools/include/uapi/linux/bpf.h"]
    added = "\n".join(line[1:] for line in text.splitlines() if line.startswith("+"))
    assert added.count("#define BPF_PSEUDO_KFUNC_CALL_PROG_BTF 3") == 2
    for fmt in ("kfunc call insn %d: PROG_BTF resolution requires prog BTF and insn->off == 0\\n",
                "kfunc call insn %d: imm %d is not a FUNC in prog BTF\\n",
                "kfunc call insn %d: prog-BTF FUNC has no name\\n",
                "kfunc call insn %d: %s not found in vmlinux BTF\\n"):
        assert fmt in added, fmt
    assert "static inline bool bpf_pseudo_kfunc_call_prog_btf(" in added
    assert "ret = resolve_loader_kfunc(env, insn, i);" in added      # the hook in add_kfuncs()
    # What sigbpf's model says about the log lines is what the patch prints.
    from sigbpf.resolve import resolver

    for msg in (resolver.MSG_REQUIRES, resolver.MSG_NOT_FUNC, resolver.MSG_NO_NAME,
                resolver.MSG_NOT_FOUND):
        c_fmt = msg.replace("{insn}", "%d").replace("{imm}", "%d").replace("{name}", "%s")
        assert c_fmt + "\\n" in added, msg


def test_cache_key_follows_every_input(tmp_path) -> None:
    from testbench.kernel.build import FLAVOURS, TEST_CERT, cache_key

    base = cache_key("7.3.4-1~bpo13+1", "small")
    assert cache_key("7.3.4-1~bpo13+1", "small") == base
    assert cache_key("7.3.5-1~bpo13+1", "small") != base
    assert cache_key("7.3.4-1~bpo13+1", "extra") != base
    other = tmp_path / "cert.pem"
    other.write_bytes(TEST_CERT.read_bytes() + b"\n")
    assert cache_key("7.3.4-1~bpo13+1", "small", other) != base
    assert set(FLAVOURS) == {"small", "extra"}


def test_cache_key_ignores_the_patch_message() -> None:
    from testbench.kernel import PATCH
    from testbench.kernel.build import patch_diff

    text = PATCH.read_text()
    assert patch_diff("Subject: other words\n\nmore\n---\n" + text[text.index("\n--- a/") + 1:]) \
        == patch_diff(text)
    assert patch_diff(text).startswith("--- a/include/uapi/linux/bpf.h")


def test_fragment_check_names_what_kconfig_dropped() -> None:
    from testbench.kernel.build import config_mismatches

    frag = "CONFIG_BPF=y\n# CONFIG_INET is not set\nCONFIG_SYSTEM_TRUSTED_KEYS=\"/k.pem\"\n"
    assert config_mismatches(frag, "CONFIG_BPF=y\nCONFIG_SYSTEM_TRUSTED_KEYS=\"/k.pem\"\n") == []
    bad = config_mismatches(frag, "CONFIG_INET=y\n")
    assert bad == ["CONFIG_BPF: wanted y, got unset", "CONFIG_INET: wanted unset, got y",
                   "CONFIG_SYSTEM_TRUSTED_KEYS: wanted \"/k.pem\", got unset"]


def test_probe_is_not_native_on_this_host(kernel) -> None:
    from sigbpf.kernel.probe import RESERVED_FIELDS, run_probe
    from sigbpf.btf.spec import BTF
    from sigbpf.resolve.native import native_prog_btf

    probe = run_probe()
    assert probe.native is False and RESERVED_FIELDS in probe.detail
    assert native_prog_btf(BTF.load_vmlinux()) is None      # the BTF cannot say "no"


def test_resolve_says_not_native_on_this_host(kernel, cli, bpf_object, tmp_path) -> None:
    art = tmp_path / "rcu.sbpf"
    assert cli("build", bpf_object("kfunc_rcu_maps"), "-o", art).returncode == 0
    doc = json.loads(cli("resolve", art, "--json").stdout)
    assert doc["native_prog_btf"]["native"] is False and doc["native_prog_btf"]["source"] == "probe"
    assert doc["excl_prog_hash"]["compares"] == "after"


def test_dead_src3_call_loads_on_this_host(kernel, bpf_object) -> None:
    """6.18 checks a CALL's fields only where it verifies: a src_reg 3 call on a dead path loads
    (stock 7.3 refuses it up front: test_probe_is_not_native_in_stock_debian_73)."""
    import seed_guest

    hand = seed_guest.weak_dead_path(str(bpf_object("kfunc_weak")))["hand"]
    assert hand["errno"] == 0 and hand["retval"] == 7, hand


def _stock_kernel_answers(weak_object: str) -> dict:
    import os

    import seed_guest
    from sigbpf.kernel.probe import run_probe

    p = run_probe()
    hand = seed_guest.weak_dead_path(weak_object)["hand"]
    return {"release": os.uname().release, "native": p.native, "detail": p.detail,
            "dead_src3_call": {"errno": hand["errno"], "log_tail": hand["log_tail"]}}


def test_probe_is_not_native_in_stock_debian_73(vm, bpf_object, record_property) -> None:
    """Debian's own 7.3: the probe says "not native" ("BPF_CALL uses reserved fields"), and a
    src_reg 3 call is refused even on a dead path (7.3 checks every instruction's fields first)."""
    from testbench.vm import run_python

    out = run_python(_stock_kernel_answers, args=(str(bpf_object("kfunc_weak")),), kernel=vm,
                     cwd=ROOT, timeout=600, env={"PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"})
    _report(record_property, "stock_debian_73", out)
    assert out["release"] == vm.release
    assert out["native"] is False and "BPF_CALL uses reserved fields" in out["detail"]
    assert out["dead_src3_call"]["errno"] == errno.EINVAL
    assert "BPF_CALL uses reserved fields" in out["dead_src3_call"]["log_tail"]


# ------------------------------------------------------------------ the kernel itself

def test_the_kernel_is_the_patched_build(small, seed_vm, record_property) -> None:
    """The guest runs the cached build: its release, the fragment's every line in its config,
    the test certificate in the builtin keyring, and /sys/kernel/btf/vmlinux = the cached BTF."""
    from cryptography import x509

    from testbench.kernel import TEST_CERT
    from testbench.kernel.build import config_mismatches, fragment_settings, fragment_text

    facts = small["facts"]
    assert facts["release"] == seed_vm.release
    config = seed_vm.config.read_text()
    # The build names the certificate by the path of the checkout that built it (another
    # clone reuses the cache: its key covers the certificate's bytes, not its path); that it
    # is *this* certificate, the boot log shows below.
    built_cert = Path((fragment_settings(config)["CONFIG_SYSTEM_TRUSTED_KEYS"] or "").strip('"'))
    assert config_mismatches(fragment_text("small", built_cert), config) == []
    cert = x509.load_pem_x509_certificate(TEST_CERT.read_bytes())
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()
    cn = cert.subject.rfc4514_string().removeprefix("CN=")
    assert f"Loaded X.509 cert '{cn}: {ski}'" in small["kernel_log"]
    assert facts["vmlinux_sha256"] == hashlib.sha256(seed_vm.btf.read_bytes()).hexdigest()
    _report(record_property, "seed_small_boot_seconds", round(small["boot_seconds"], 2))
    if seed_vm.build_seconds:
        _report(record_property, "seed_small_build_minutes", round(seed_vm.build_seconds / 60, 1))


def test_probe_answers_native_in_the_patched_kernel(small, record_property) -> None:
    """Native, and through the seed's *first* check: the probe passes prog_btf_fd without
    func_info, so the verifier never attaches the prog BTF (measured: the issue's fact)."""
    facts = small["facts"]
    _report(record_property, "probe_seed_small", facts["probe_detail"])
    assert facts["probe_native"] is True
    assert f"kfunc call insn 0: {SEED_FIRST_CHECK}" in facts["probe_detail"]


def test_btf_rule_agrees_with_the_symbol_table(small, seed_vm) -> None:
    """native_prog_btf() answers True exactly when resolve_loader_kfunc() has its own symbol
    (pahole encodes only out-of-line functions); else "unknown" (None), never False."""
    from sigbpf.btf.spec import BTF
    from sigbpf.resolve.native import SEED_FUNC, native_prog_btf

    symbols = {line.split()[2] for line in seed_vm.system_map.read_text().splitlines()}
    expected = True if SEED_FUNC in symbols else None
    assert native_prog_btf(BTF.parse(seed_vm.btf.read_bytes(), validate=False)) is expected
    assert small["facts"]["btf_rule"] is expected


def test_resolve_says_native_for_the_running_kernel(small) -> None:
    """``sigbpf resolve`` in the guest: the probe says native, so excl_prog_hash compares the
    digest before resolution; the ids are the ones the kernel chose."""
    got = small["cli_resolve"]
    assert got["rc"] == 0
    assert got["native_prog_btf"]["native"] is True and got["native_prog_btf"]["source"] == "probe"
    assert got["excl_prog_hash"]["compares"] == "before"
    chosen = {tuple(c) for c in small["kernel_choices"]["kfunc_rcu_maps"]["kernel"]["log_calls"]}
    assert {(c["name"], c["btf_id"]) for c in got["calls"]} == chosen


def test_resolve_with_a_kernels_btf_file(cli, bpf_object, seed_vm, tmp_path) -> None:
    """``sigbpf resolve --btf FILE``: the BTF rule (the seed kernel's BTF: unknown unless the
    resolver kept its own symbol); the running kernel's default path: the probe."""
    from sigbpf.resolve.native import SEED_FUNC

    art = tmp_path / "rcu.sbpf"
    assert cli("build", bpf_object("kfunc_rcu_maps"), "-o", art).returncode == 0
    proc = cli("resolve", art, "--btf", seed_vm.btf, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    symbols = {line.split()[2] for line in seed_vm.system_map.read_text().splitlines()}
    assert doc["native_prog_btf"]["source"] == "BTF"
    assert doc["native_prog_btf"]["native"] is (True if SEED_FUNC in symbols else None)
    text = cli("resolve", art, "--btf", seed_vm.btf).stdout
    assert doc["native_prog_btf"]["detail"] in text


# ------------------------------------------------------------------ point 1: native resolution

@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_load_kernel_and_auto_match_userspace(small, name) -> None:
    """``sigbpf load --resolution kernel|auto`` load and run each kfunc program with the result
    and the kfunc ids of ``--resolution userspace``; auto chooses the kernel."""
    loads, pid = small["cli_loads"]["loads"], small["cli_loads"]["pid"]
    prog = PROGRAMS[name][0]
    docs = {}
    for mode in ("kernel", "auto", "userspace"):
        got = loads[f"{name}/{mode}"]
        assert got["rc"] == 0, (mode, got["stderr"])
        docs[mode] = got["doc"]
        assert docs[mode]["programs"] == [{"name": prog, "loaded": True,
                                           "retval": _expected(name, pid), "log": ""}], mode
    assert docs["kernel"]["resolution"] == docs["auto"]["resolution"] == "kernel"
    assert docs["userspace"]["resolution"] == "userspace"
    assert docs["kernel"]["kfuncs"] == docs["auto"]["kfuncs"] == docs["userspace"]["kfuncs"]


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_kernel_chose_the_ids_sigbpf_predicts(small, seed_vm, name, record_property) -> None:
    """The ids the kernel's pass chose (its verifier log: ``call NAME#ID``) are the ids
    resolve_kfunc_calls() predicts against the guest's vmlinux BTF; the xlated program (kfunc
    addresses) is the same byte for byte whether the kernel or sigbpf resolved the calls."""
    got = small["kernel_choices"][name]
    assert got["ok"] and got["predicted"], got
    predicted = {tuple(p) for p in got["predicted"]}
    for path in ("kernel", "userspace"):
        assert got[path]["loaded"], (path, got[path]["error"])
        assert {tuple(c) for c in got[path]["log_calls"]} == predicted, path
        assert set(got[path]["xlated_names"]) <= {n for n, _ in predicted}, path
    assert got["kernel"]["xlated"] == got["userspace"]["xlated"]
    # The prediction used the guest's BTF, which is the build's cached vmlinux.btf:
    from sigbpf.btf import Kind
    from sigbpf.btf.spec import BTF

    btf = BTF.parse(seed_vm.btf.read_bytes(), validate=False)
    assert all(btf.find_by_name_kind(n, Kind.FUNC) == i for n, i in predicted)
    _report(record_property, f"ids_small_{name}", sorted(predicted))


# ------------------------------------------------------------------ point 3: measurements

def test_excl_prog_hash_and_tag_are_over_the_instructions_as_sent(small, record_property) -> None:
    """Measured: bpf_prog_calc_tag() runs before add_kfuncs() rewrites the calls. A map whose
    excl_prog_hash is the digest of the src_reg 3 instructions accepts the program (it runs and
    reads the map); the digest of the rewritten instructions (src_reg 2, vmlinux ids) is refused.
    prog->tag is the same digest's first 8 bytes."""
    d = small["digest"]
    _report(record_property, "digest_native", {k: d[k] for k in ("sent", "resolved", "tag_sent",
                                                                 "tag_resolved")})
    assert d["sent"]["errno"] == 0 and d["sent"]["retval"] == 4242
    assert d["sent"]["tag"] == d["tag_sent"] != d["tag_resolved"]
    assert {tuple(c) for c in d["sent"]["log_calls"]} == {tuple(c) for c in d["predicted_calls"]}
    assert d["resolved"]["errno"] == errno.EACCES
    assert EXCL_MISMATCH in d["resolved"]["log_tail"]


def test_prog_tag_of_artifacts(small, kfunc_objects) -> None:
    """The same for the compiled programs: natively loaded, their tag is that of the instructions
    sigbpf sent (src_reg 3); resolved in userspace, that of the resolved ones. (Programs with
    CO-RE relocations are left out: the kernel applies those before it computes the tag.)"""
    from sigbpf.artifact.build import build_from_file

    checked = 0
    for name, obj in kfunc_objects.items():
        (prog,) = build_from_file(obj).programs
        got = small["kernel_choices"][name]
        assert got["tag_sent"] != got["tag_resolved"]
        assert got["kernel"]["tag"] != got["userspace"]["tag"]
        if prog.core_relo_bytes:
            continue
        assert got["kernel"]["tag"] == got["tag_sent"], name
        assert got["userspace"]["tag"] == got["tag_resolved"], name
        checked += 1
    assert checked >= 4


def test_weak_missing_kfunc_on_a_dead_path_fails_with_enoent(small, record_property) -> None:
    """The seed resolves before dead code is removed: a src_reg 3 call of a kfunc the kernel
    lacks fails with ENOENT even where the verifier proves it dead (hand-made, and
    tests/progs/kfunc_weak.c with bpf_ksym_exists() bound to 0 and the call left to the kernel).
    libbpf's poisoned call in its place loads, as sigbpf's loader sends it."""
    w = small["weak_dead_path"]
    _report(record_property, "weak_dead_path", {k: {a: b for a, b in v.items() if a != "predicted"}
                                                for k, v in w.items() if isinstance(v, dict)})
    for case in ("hand", "artifact"):
        assert w[case]["errno"] == errno.ENOENT, (case, w[case])
        (line,) = w[case]["predicted"]["log"]
        assert line.endswith("bpf_sigbpf_no_such_kfunc not found in vmlinux BTF")
        assert line in w[case]["log_tail"], (case, w[case])
        assert w[case]["predicted"]["errno"] == errno.ENOENT
    assert w["poisoned"]["errno"] == 0 and w["poisoned"]["retval"] == 7
    assert w["artifact_bound"]["errno"] == 0 and w["artifact_bound"]["retval"] == 1


#: Each seed refusal the guest provokes: (errno, the seed's own line or None when another check
#: of the verifier answers first, a text of the log when it is not the seed's).
FAILURES = {
    "prog_btf_fd_without_func_info": (errno.EINVAL, True, None),
    "no_prog_btf": (errno.EINVAL, True, None),
    "off_nonzero": (errno.EINVAL, True, None),
    "imm_zero": (errno.EINVAL, True, None),
    "imm_negative": (errno.EINVAL, True, None),
    "imm_past_last_type": (errno.EINVAL, True, None),
    "imm_func_proto": (errno.EINVAL, True, None),
    "name_not_in_vmlinux": (errno.ENOENT, True, None),
    "second_call_fails": (errno.ENOENT, True, None),
    "not_a_kfunc": (errno.EACCES, False, "calling kernel function kallsyms_lookup_name is not allowed"),
    "jmp32_call_src3": (errno.EINVAL, False, "unknown opcode 86"),
    "dst_reg_nonzero": (errno.EINVAL, False, "BPF_CALL uses reserved fields"),
}


def test_seed_refusals_as_the_kernel_logs_them(small, record_property) -> None:
    """Each of the seed's checks, provoked: the kernel's errno and its log line are the ones
    resolve_kfunc_calls() predicts; the neighbours (not a kfunc, JMP32, dst_reg) are refused by
    other checks, with the pass silent. A nameless FUNC (check 3) never reaches the pass:
    BPF_BTF_LOAD refuses it."""
    f = small["seed_failures"]
    _report(record_property, "seed_refusals",
            {case: [f[case]["errno_name"], f[case]["seed_lines"] or
                    [line for line in f[case]["log"] if text and text in line]]
             for case, (_, _, text) in FAILURES.items()})
    assert f["ok"]["errno"] == 0 and f["ok"]["predicted"]["ok"]
    for case, (err, seed_says, text) in FAILURES.items():
        got = f[case]
        assert got["errno"] == err, (case, got)
        if seed_says:
            assert got["seed_lines"] == got["predicted"]["log"], (case, got)
            assert got["predicted"]["errno"] == err, case
        else:
            assert got["seed_lines"] == [], (case, got)
            assert any(text in line for line in got["log"]), (case, got)
    assert f["prog_btf_fd_without_func_info"]["seed_lines"] == [f"kfunc call insn 0: {SEED_FIRST_CHECK}"]
    assert f["second_call_fails"]["seed_lines"][0].startswith("kfunc call insn 1: ")
    assert f["imm_negative"]["seed_lines"] == ["kfunc call insn 0: imm -5 is not a FUNC in prog BTF"]
    nameless = f["nameless_func_btf_load"]
    assert nameless["errno"] == errno.EINVAL and "Invalid name" in nameless["log_tail"][-1]


# ------------------------------------------------------------------ point 5: two configurations

def test_second_configuration_loads_the_same_artifacts_with_other_ids(small, extra, seed_vm,
                                                                      seed_vm_extra,
                                                                      record_property) -> None:
    """The same objects load natively in "extra" with the same results, and every kfunc they
    call has another vmlinux id there than in "small" (from each guest's verifier log)."""
    loads, pid = extra["cli_loads"]["loads"], extra["cli_loads"]["pid"]
    assert extra["facts"]["probe_native"] is True
    assert extra["facts"]["release"] == seed_vm_extra.release
    assert extra["facts"]["vmlinux_sha256"] != small["facts"]["vmlinux_sha256"]
    ids: dict[str, tuple[int, int]] = {}
    for name in PROGRAMS:
        got = loads[f"{name}/kernel"]
        assert got["rc"] == 0, got["stderr"]
        assert got["doc"]["resolution"] == "kernel"
        assert [p["retval"] for p in got["doc"]["programs"]] == [_expected(name, pid)]
        ch = extra["kernel_choices"][name]
        assert {tuple(c) for c in ch["kernel"]["log_calls"]} == {tuple(p) for p in ch["predicted"]}
        small_ids = dict(map(tuple, small["kernel_choices"][name]["predicted"]))
        for kname, kid in map(tuple, ch["predicted"]):
            ids[kname] = (small_ids[kname], kid)
    _report(record_property, "kfunc_ids_small_vs_extra", ids)
    assert ids and all(a != b for a, b in ids.values()), ids
