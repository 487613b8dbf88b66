"""Every code block of README.md, run as written.

* ```` ```sh ````: the two set-up commands.  ``bash scripts/example.sh`` runs the
  main job on the bundled example, end to end, in the real kernel (exit 0, the
  program's return value 47, the expected "6.1 lacks the kfuncs" refusal).
  ``bash scripts/test.sh`` is what CI runs (``.ci/run`` calls it with
  ``SIGBPF_REQUIRE_KERNEL=1``); this suite *is* that command, so it is only
  checked with ``bash -n`` here, not run again.  A command in a ``sh`` block
  that this module does not know how to exercise fails the test.
* ```` ```console ````: each ``$ sigbpf ...`` line runs (``python -m sigbpf``)
  in a directory holding what the README names: ``examples/`` and Debian
  6.1's ``6.1.btf`` / ``6.1.BTF_ids`` (from tests/data/corpus).  Its output is
  checked loosely against the lines shown under it: a JSON line must equal
  the JSON printed, ``[...]`` standing for any list; other lines must be
  lines of the output, in order (others may come between them: ``...``
  says so), any number matching any number.  Exit status 0, or 1 ("what was asked does not hold": the 6.1 check
  fails, as the README says it should), never 2 and never a traceback.
* ```` ```python ````: each block runs as a script in such a directory, plus
  a module BTF ``xfs.btf`` split on the running kernel's BTF; the library
  block ends by loading and running the example, which prints 47.
* The plain block (the layout): every path it names exists.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CORPUS, ROOT

README = (ROOT / "README.md").read_text()


def all_code_blocks() -> list[tuple[str, str]]:
    """(language, body) of every fenced block of the README, in order ("" = no language)."""
    blocks: list[tuple[str, str]] = []
    language: str | None = None
    body: list[str] = []
    for line in README.splitlines():
        if language is None:
            if line.startswith("```"):
                language, body = line[3:].strip(), []
        elif line == "```":
            blocks.append((language, "".join(f"{b}\n" for b in body)))
            language = None
        else:
            body.append(line)
    assert language is None, "a code block is not closed"
    return blocks


def code_blocks(language: str) -> list[str]:
    """The bodies of the README's ```<language> blocks ("" = blocks without a language)."""
    return [body for lang, body in all_code_blocks() if lang == language]


def test_the_readme_has_the_blocks_this_module_runs():
    languages = [lang for lang, _ in all_code_blocks()]
    assert set(languages) <= {"sh", "console", "python", ""}, languages
    assert languages.count("sh") >= 1 and languages.count("console") >= 1
    assert languages.count("python") >= 1 and languages.count("") >= 1


@pytest.fixture
def readme_dir(tmp_path: Path) -> Path:
    """A directory with what the README's commands and examples name."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    import lzma

    for suffix in ("btf", "BTF_ids"):
        data = lzma.decompress((CORPUS / f"6.1.0-56-amd64.{suffix}.xz").read_bytes())
        (tmp_path / f"6.1.{suffix}").write_bytes(data)
    return tmp_path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


# ------------------------------------------------------------------ sh


def _sh_commands() -> list[str]:
    return [line.split("#")[0].strip() for block in code_blocks("sh")
            for line in block.splitlines() if line.split("#")[0].strip()]


def test_every_sh_command_is_exercised():
    commands = _sh_commands()
    assert commands == ["bash scripts/example.sh", "bash scripts/test.sh"]
    for command in commands:
        script = ROOT / command.split()[1]
        assert 'bash "$here/scripts/deps.sh"' in script.read_text(), script  # installs what it needs
        proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    ci = (ROOT / ".ci" / "run").read_text()
    assert "export SIGBPF_REQUIRE_KERNEL=1" in ci and "bash scripts/test.sh" in ci


def test_example_script_runs_the_main_job(kernel, tmp_path):
    """``bash scripts/example.sh``, the README's first command."""
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "example.sh")], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "SIGBPF_EXAMPLE_OUT": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "program task_iter: loaded, ran, retval 47" in out, out[-3000:]
    assert "as expected, Debian 6.1 predates the number iterator kfuncs" in out
    assert "OK, verified in userspace" in out
    assert (tmp_path / "task_iter.sbpf").is_file() and (tmp_path / "task_iter.signed").is_file()


# ------------------------------------------------------------------ console


def console_steps() -> list[tuple[str, list[str]]]:
    """(command, the output lines shown under it) for every ``$ `` line of the console blocks."""
    steps: list[tuple[str, list[str]]] = []
    for block in code_blocks("console"):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                assert steps, f"output before any command: {line!r}"
                steps[-1][1].append(line)
    return steps


_ANY_LIST = "\0any list\0"


def _loose_json(expected: object, actual: object) -> bool:
    if expected == _ANY_LIST:
        return isinstance(actual, list)
    if isinstance(expected, dict):
        return (isinstance(actual, dict) and expected.keys() == actual.keys()
                and all(_loose_json(v, actual[k]) for k, v in expected.items()))
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(expected) == len(actual)
                and all(map(_loose_json, expected, actual)))
    return expected == actual


def output_matches(shown: list[str], out: str) -> bool:
    """The README's loose rule (module docstring) for the lines *shown* under a command."""
    if not shown:
        return True
    if len(shown) == 1 and shown[0].startswith("{"):
        expected = json.loads(shown[0].replace("[...]", json.dumps(_ANY_LIST)))
        return _loose_json(expected, json.loads(out))
    lines = iter(out.splitlines())
    for line in shown:
        if line == "...":
            continue
        want = re.compile(r"\d+".join(re.escape(part) for part in re.split(r"\d+", line)))
        if not any(want.fullmatch(got) for got in lines):  # consumes the lines up to the match
            return False
    return True


def test_loose_output_rule():
    assert output_matches(["a 12 b", "..."], "x\na 345 b\nmore\n")
    assert not output_matches(["a 12 b"], "a b 12\n")
    assert output_matches(["first", "...", "last"], "first\n1\n2\nlast\n")
    assert not output_matches(["second", "first"], "first\nsecond\n")
    assert not output_matches(["a 1"], "a 1 b\n")  # whole lines
    assert output_matches(['{"a": 1, "b": [...]}'], '{"b": [1, 2], "a": 1}')
    assert not output_matches(['{"a": 1, "b": [...]}'], '{"a": 2, "b": []}')


def test_console_block_runs(kernel, readme_dir):
    steps = console_steps()
    assert [shlex.split(c)[:2] for c, _ in steps] == [["sigbpf", "build"], ["sigbpf", "check"],
                                                      ["sigbpf", "load"]]
    for command, shown in steps:
        argv = shlex.split(command)
        assert argv[0] == "sigbpf", f"the README runs {argv[0]!r}: teach this test how"
        proc = subprocess.run([sys.executable, "-m", "sigbpf", *argv[1:]], cwd=readme_dir, env=_env(),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode in (0, 1), (command, proc.returncode, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr, proc.stderr
        assert output_matches(shown, proc.stdout), (command, shown, proc.stdout[-3000:])
    assert (readme_dir / "task_iter.sbpf").is_file()


# ------------------------------------------------------------------ python


def _xfs_btf(path: Path) -> None:
    """A module's split BTF on the running kernel's vmlinux (``xfs.btf`` in the README)."""
    from sigbpf.btf import BTF, BTFBuilder, Kind
    from sigbpf.btf import types as T

    vmlinux = BTF.load_vmlinux()
    b = BTFBuilder(vmlinux)
    b.add(T.Struct("xfs_like", 8, (T.Member("task", b.add(T.Ptr(
        vmlinux.find_by_name_kind("task_struct", Kind.STRUCT))), 0),)))
    path.write_bytes(b.encode())


@pytest.mark.parametrize("index", range(len(code_blocks("python"))))
def test_python_block_runs(kernel, readme_dir, index):
    block = code_blocks("python")[index]
    _xfs_btf(readme_dir / "xfs.btf")
    proc = subprocess.run([sys.executable, "-c", block], cwd=readme_dir, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    if "020000000a000000" in block:  # the library block: the program's text, then the run's 47
        lines = proc.stdout.splitlines()
        assert lines[-1] == "47", proc.stdout[-2000:]
        assert "exit" in lines[-2] and any("call" in line for line in lines)


def test_the_library_block_covers_every_layer():
    block = next(b for b in code_blocks("python") if "020000000a000000" in b)
    for name in ("BTF.load_vmlinux()", "kfuncs(", "dump_c(", "BPFObject.from_file", "compare_func_protos",
                 "disassemble(", "build_artifact(obj)", "BTF.parse(artifact.btf)", "resolve_kfunc_calls(",
                 "sign_artifact(", "verify_signed(", "load_artifact("):
        assert name in block, name


# ------------------------------------------------------------------ layout


def test_layout_block_names_paths_that_exist():
    block = next(b for b in code_blocks("") if "sigbpf/btf/" in b)
    paths = [line.split()[0] for line in block.splitlines() if line and not line[0].isspace()]
    assert len(paths) >= 10
    for path in paths:
        assert (ROOT / path).exists(), path
