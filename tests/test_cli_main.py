"""The CLI frame (sigbpf/cli/main.py): a missing or too old dependency is one line, exit 2.

Run under a Python whose ``cryptography`` is too old (a fake 38.0.0 package
without the modules sigbpf imports, put first on PYTHONPATH) or absent (a fake
package that refuses to import), ``sigbpf verify`` ends in
``sigbpf: error: missing dependency: ... (pip install ...)``, never a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import assert_one_line_error
from sigbpf.cli.main import DEPENDENCIES

ROOT = Path(__file__).resolve().parent.parent

FAKE_PACKAGES = {
    # cryptography 38: the package imports, the submodules sigbpf needs do not exist.
    "too_old": '__version__ = "38.0.0"\n',
    # not installed at all, as far as Python can tell.
    "absent": 'raise ModuleNotFoundError("No module named \'cryptography\'", name="cryptography")\n',
}


def _sigbpf_with_fake_cryptography(tmp_path: Path, source: str, *args: str):
    fake = tmp_path / "site"
    (fake / "cryptography").mkdir(parents=True)
    (fake / "cryptography" / "__init__.py").write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "sigbpf", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": f"{fake}{os.pathsep}{ROOT}"},
    )


@pytest.mark.parametrize("kind", sorted(FAKE_PACKAGES))
def test_verify_without_a_usable_cryptography_is_one_line(tmp_path, kind) -> None:
    art = tmp_path / "x.sbpf"
    art.write_bytes(b"")
    cert = tmp_path / "cert.pem"
    cert.write_bytes(b"")
    proc = _sigbpf_with_fake_cryptography(tmp_path, FAKE_PACKAGES[kind],
                                          "verify", str(art), "--cert", str(cert))
    assert_one_line_error(proc, 2, "sigbpf: error: missing dependency: cryptography (")
    assert proc.stderr.rstrip().endswith("(pip install 'cryptography>=42')"), proc.stderr
    assert proc.stdout == ""


def test_commands_without_cryptography_still_work(tmp_path) -> None:
    """Only the commands that sign or verify need cryptography (imports stay lazy)."""
    proc = _sigbpf_with_fake_cryptography(tmp_path, FAKE_PACKAGES["absent"], "--help")
    assert proc.returncode == 0, proc.stderr
    assert "verify" in proc.stdout


def test_dependency_table_is_pyprojects() -> None:
    """The install hint names exactly the dependencies pyproject.toml declares."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(DEPENDENCIES.values()) == sorted(declared)
