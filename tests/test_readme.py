"""The README's promises: its two set-up commands and its library example.

* ``bash scripts/example.sh`` (the README's first command) runs the main job on
  the bundled example, end to end, in the real kernel: exit 0, the program's
  return value 47, and the expected "6.1 lacks the kfuncs" refusal.
* ``bash scripts/test.sh`` (the second) is what CI runs: ``.ci/run`` calls it
  with ``SIGBPF_REQUIRE_KERNEL=1``.  (This suite *is* that command, so it is
  not run again from here.)
* The README's Python block, up to the artifact part (the btf, elf, compat
  and asm entry points), runs as written from a directory holding the bundled
  example and a module BTF ``xfs.btf`` split on the running kernel's BTF.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_readme_names_the_two_setup_commands_and_ci_runs_the_second():
    block = re.search(r"## Set-up: two commands\n.*?```sh\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["bash scripts/example.sh", "bash scripts/test.sh"]
    for script in ("example.sh", "test.sh"):
        text = (ROOT / "scripts" / script).read_text()
        assert 'bash "$here/scripts/deps.sh"' in text, script  # each installs what it needs
    ci = (ROOT / ".ci" / "run").read_text()
    assert "export SIGBPF_REQUIRE_KERNEL=1" in ci and "bash scripts/test.sh" in ci


def test_example_script_runs_the_main_job(kernel, tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "example.sh")], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "SIGBPF_EXAMPLE_OUT": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "program task_iter: loaded, ran, retval 47" in out, out[-3000:]
    assert "as expected, Debian 6.1 predates the number iterator kfuncs" in out
    assert "OK, verified in userspace" in out
    assert (tmp_path / "task_iter.sbpf").is_file() and (tmp_path / "task_iter.signed").is_file()


def test_readme_library_example_runs(kernel, tmp_path):
    """The btf/elf/compat/asm part of the README's Python block, executed as written."""
    from sigbpf.btf import BTF, BTFBuilder, Kind
    from sigbpf.btf import types as T

    block = re.search(r"## Library\n.*?```python\n(.*?)```", README, re.S).group(1)
    part = block.split("from sigbpf.artifact")[0]
    assert "BTF.load_vmlinux()" in part and "compare_func_protos" in part and "disassemble" in part
    # the files the example names: a module's split BTF, and the bundled example object
    vmlinux = BTF.load_vmlinux()
    b = BTFBuilder(vmlinux)
    b.add(T.Struct("xfs_like", 8, (T.Member("task", b.add(T.Ptr(
        vmlinux.find_by_name_kind("task_struct", Kind.STRUCT))), 0),)))
    (tmp_path / "xfs.btf").write_bytes(b.encode())
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "task_iter.bpf.o").symlink_to(ROOT / "examples" / "task_iter.bpf.o")
    proc = subprocess.run([sys.executable, "-c", part], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the program's text, as printed by the example's last line
    assert "call" in proc.stdout and "exit" in proc.stdout.splitlines()[-1]
