"""kfunc lists: DECL_TAG ``bpf_kfunc`` on this kernel, ``.BTF_ids`` sets on the corpus, the CLI.

The running kernel's count is checked against an independent reading with
bpftool (``bpftool btf dump`` lists every DECL_TAG with its target), and the
sets found in the corpus ``.BTF_ids`` sections against facts of those kernels
(well-known kfuncs present, their KF_* flags, only FUNCs).
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from conftest import BPFTOOL, assert_one_line_error

from sigbpf.btf import BTF, Kind
from sigbpf.btf import kfuncs as kf
from sigbpf.errors import NotFoundError

KF_ACQUIRE, KF_RELEASE, KF_RET_NULL = 1, 2, 4


def _bpftool_kfuncs() -> set[str]:
    """Names of FUNCs with DECL_TAG 'bpf_kfunc' (component_idx -1), as bpftool prints the raw dump."""
    text = subprocess.run([BPFTOOL, "btf", "dump", "file", "/sys/kernel/btf/vmlinux"],
                          check=True, capture_output=True, text=True).stdout
    funcs: dict[str, str] = {}
    tagged: set[str] = set()
    for line in text.splitlines():
        m = re.match(r"\[(\d+)\] FUNC '([^']*)'", line)
        if m:
            funcs[m.group(1)] = m.group(2)
        m = re.match(r"\[\d+\] DECL_TAG 'bpf_kfunc' type_id=(\d+) component_idx=-1", line)
        if m:
            tagged.add(m.group(1))
    return {funcs[t] for t in tagged if t in funcs}


def test_running_kernel_kfuncs_match_bpftool(kernel):
    vmlinux = BTF.load_vmlinux()
    assert kf.has_kfunc_tags(vmlinux)
    found = kf.kfuncs(vmlinux)
    assert {k.name for k in found} == _bpftool_kfuncs()
    assert len(found) == 203  # KERNEL-FACTS: 203 kfuncs on this 6.18 kernel
    assert [k.id for k in found] == sorted(k.id for k in found)
    assert all(vmlinux.kind_of(k.id) == Kind.FUNC and vmlinux.name_of(k.id) == k.name for k in found)
    assert kf.tagged_kfunc_ids(vmlinux) == {k.id for k in found}


@pytest.mark.parametrize("kernel_name", ["6.1.0-56-amd64", "6.12.95+deb12-amd64"])
def test_untagged_corpus_kernels_say_so(corpus_btf, kernel_name):
    btf = BTF.from_file(corpus_btf(f"{kernel_name}.btf"), validate=False)
    assert not kf.has_kfunc_tags(btf)
    assert kf.tagged_kfunc_ids(btf) == set()
    with pytest.raises(NotFoundError, match="no DECL_TAG 'bpf_kfunc'"):
        kf.kfuncs(btf)


def test_btf_ids_sets_of_6_12(corpus_btf):
    btf = BTF.from_file(corpus_btf("6.12.95+deb12-amd64.btf"), validate=False)
    data = corpus_btf("6.12.95+deb12-amd64.BTF_ids").read_bytes()
    sets = kf.find_set8s(btf, data)
    assert sets and all(s.flags & kf.BTF_SET8_KFUNCS for s in sets)  # 6.12 marks kfunc sets
    assert all(s.offset % 4 == 0 for s in sets)
    found = {k.name: k for k in kf.kfuncs_from_btf_ids(btf, data)}
    assert len(found) == 132
    assert all(btf.kind_of(k.id) == Kind.FUNC for k in found.values())
    for name in ("bpf_obj_new_impl", "bpf_task_acquire", "bpf_task_release", "bpf_dynptr_adjust",
                 "bpf_lookup_user_key", "bpf_verify_pkcs7_signature", "bpf_rcu_read_lock", "bpf_iter_num_new"):
        assert name in found, name
    assert found["bpf_task_acquire"].flags & (KF_ACQUIRE | KF_RET_NULL) == KF_ACQUIRE | KF_RET_NULL
    assert found["bpf_task_release"].flags & KF_RELEASE
    # the id list used by the resolver's kfunc check
    path = corpus_btf("6.12.95+deb12-amd64.BTF_ids")
    assert kf.btf_ids_kfunc_ids(path, btf) == sorted(k.id for k in found.values())


def test_btf_ids_sets_of_6_1(corpus_btf):
    btf = BTF.from_file(corpus_btf("6.1.0-56-amd64.btf"), validate=False)
    data = corpus_btf("6.1.0-56-amd64.BTF_ids").read_bytes()
    sets = kf.find_set8s(btf, data)
    assert sets and all(s.flags == 0 for s in sets)  # 6.1 has no BTF_SET8_KFUNCS flag
    found = {k.name: k for k in kf.kfuncs_from_btf_ids(btf, data)}
    assert len(found) == 42
    for name in ("bpf_lookup_user_key", "bpf_verify_pkcs7_signature", "crash_kexec", "cgroup_rstat_flush"):
        assert name in found, name
    assert found["bpf_lookup_user_key"].flags & (KF_ACQUIRE | KF_RET_NULL) == KF_ACQUIRE | KF_RET_NULL


def test_btf_ids_of_another_kernel_is_refused(corpus_btf):
    """The 6.1 sets read against 6.12's BTF: ids are not 6.12 FUNCs in ascending sets, or nothing at all."""
    btf = BTF.from_file(corpus_btf("6.12.95+deb12-amd64.btf"), validate=False)
    with pytest.raises(NotFoundError):
        kf.kfuncs_from_btf_ids(btf, b"\0" * 64)


def test_cli_kfuncs_running_kernel(kernel, cli):
    proc = cli("kfuncs")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 203
    ids = [int(line.split()[0]) for line in lines]
    assert ids == sorted(ids)
    proc = cli("kfuncs", "--json")
    entries = json.loads(proc.stdout)
    assert len(entries) == 203 and set(entries[0]) == {"id", "name", "flags"}
    assert entries[0]["flags"] is None


def test_cli_kfuncs_corpus(cli, corpus_btf):
    vm = corpus_btf("6.12.95+deb12-amd64.btf")
    # untagged and no --btf-ids: exit 1, one line, says what to do
    assert_one_line_error(cli("kfuncs", "--btf", vm), 1, "--btf-ids")
    proc = cli("kfuncs", "--btf", vm, "--btf-ids", corpus_btf("6.12.95+deb12-amd64.BTF_ids"), "--json")
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)
    assert len(entries) == 132 and all(isinstance(e["flags"], int) for e in entries)
    # module BTF on its base: untagged too
    mod = corpus_btf("6.12.95+deb12-amd64.nf_conntrack.btf")
    assert_one_line_error(cli("kfuncs", "--btf", mod, "--base", vm), 1, "bpf_kfunc")
    assert_one_line_error(cli("kfuncs", "--base", vm), 2, "--base needs --btf")
    assert_one_line_error(cli("kfuncs", "--btf", vm, "--btf-ids", "/nonexistent/ids"), 2, "/nonexistent/ids")


def test_cli_kfuncs_from_a_vmlinux_like_elf(cli, corpus_btf, tmp_path):
    """--btf and --btf-ids also take an ELF file that is not a BPF object (a vmlinux: its
    .BTF and .BTF_ids sections), with the same answer as the raw sections."""
    import shutil

    from conftest import CLANG

    objcopy = shutil.which("llvm-objcopy-19")
    assert objcopy, "llvm-objcopy-19 is missing (llvm-19 provides it)"
    btf, ids = corpus_btf("6.12.95+deb12-amd64.btf"), corpus_btf("6.12.95+deb12-amd64.BTF_ids")
    src = tmp_path / "v.c"
    src.write_text("int vmlinux_like;\n")
    host = tmp_path / "host.o"
    subprocess.run([CLANG, "--target=x86_64-linux-gnu", "-c", str(src), "-o", str(host)], check=True)
    elf = tmp_path / "vmlinux"
    subprocess.run([objcopy, f"--add-section=.BTF={btf}", f"--add-section=.BTF_ids={ids}",
                    str(host), str(elf)], check=True)
    raw = cli("kfuncs", "--btf", btf, "--btf-ids", ids, "--json")
    proc = cli("kfuncs", "--btf", elf, "--btf-ids", elf, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads(raw.stdout) and len(json.loads(raw.stdout)) == 132
    # an ELF without the section says which one is missing
    assert_one_line_error(cli("kfuncs", "--btf", btf, "--btf-ids", host), 1, "no .BTF_ids section")
    assert_one_line_error(cli("kfuncs", "--btf", host), 2, "no .BTF section")
