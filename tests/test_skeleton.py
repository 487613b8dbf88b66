"""``sigbpf gen skeleton``: a C light skeleton (``NAME.lskel.h``, bpftool ``gen skeleton -L``'s
layout) for a loader file, compiled with gcc against Debian's libbpf-dev 1.1
``skel_internal.h`` and run as root (docs/FORMAT.md 8.5).

Measured here: skel_internal.h 1.1's ``bpf_load_and_run`` runs an unsigned protocol v2
loader; a protocol v1 loader loads but its prologue returns -EINVAL (the blob map is
neither exclusive nor hashed), so ``gen skeleton`` refuses v1.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from conftest import BPFTOOL
from test_loadergen import _c_string

NAME, PROG, RETVAL = "kfunc_rcu_maps", "rcu_maps", 40 + 2 + 100 + 1000
MAPS = ("counters", "data", "rodata", "data_custom", "bss")
GCC = shutil.which("gcc")

pytest_plugins = ["sign_fixtures"]  # key pairs


def main_c(name: str, prog: str, maps: tuple[str, ...], header: str) -> str:
    """A C program: NAME__open_and_load(), fds >= 0, BPF_PROG_RUN with the tests' ctx
    ({pid, n = 10}), prints the retval and the load time, NAME__destroy()."""
    checks = "".join(f'\tif (skel->maps.{m}.map_fd < 0) {{ fprintf(stderr, "map {m}: fd %d\\n", '
                     f'skel->maps.{m}.map_fd); return 3; }}\n' for m in maps)
    return f'''#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include "{header}"

int main(void)
{{
	struct {{ int pid; int n; }} args = {{ getpid(), 10 }};
	struct {name} *skel;
	union bpf_attr attr;
	struct timespec t0, t1;
	int err;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	skel = {name}__open_and_load();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!skel) {{
		fprintf(stderr, "open_and_load: %s\\n", strerror(errno));
		return 2;
	}}
	if (skel->progs.{prog}.prog_fd < 0) {{
		fprintf(stderr, "prog {prog}: fd %d\\n", skel->progs.{prog}.prog_fd);
		return 3;
	}}
{checks}	memset(&attr, 0, sizeof(attr));
	attr.test.prog_fd = skel->progs.{prog}.prog_fd;
	attr.test.ctx_in = (long)&args;
	attr.test.ctx_size_in = sizeof(args);
	err = syscall(__NR_bpf, BPF_PROG_RUN, &attr, sizeof(attr));
	if (err < 0) {{
		fprintf(stderr, "BPF_PROG_RUN: %s\\n", strerror(errno));
		return 4;
	}}
	printf("retval %d\\n", (int)attr.test.retval);
	printf("load_ns %lld\\n", (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL
	       + (t1.tv_nsec - t0.tv_nsec));
	{name}__destroy(skel);
	return 0;
}}
'''


def compile_main(tmp_path, header: str, *cflags: str, name: str = NAME, prog: str = PROG,
                 maps: tuple[str, ...] = MAPS) -> subprocess.CompletedProcess:
    if GCC is None:
        pytest.skip("gcc is not installed")
    src = tmp_path / f"{name}_main.c"
    src.write_text(main_c(name, prog, maps, header))
    return subprocess.run([GCC, "-O2", "-Wall", "-Werror", *cflags, "-I", str(tmp_path), "-o",
                           str(tmp_path / f"{name}_main"), str(src)],
                          capture_output=True, text=True)


def run_main(tmp_path, name: str = NAME) -> subprocess.CompletedProcess:
    return subprocess.run([str(tmp_path / f"{name}_main")], capture_output=True, text=True,
                          timeout=60)


def retval(proc: subprocess.CompletedProcess) -> int:
    assert proc.returncode == 0, proc.stderr
    return int(re.search(r"^retval (-?\d+)$", proc.stdout, re.M).group(1))


@pytest.fixture()
def loader_v2(cli, bpf_object, tmp_path):
    out = tmp_path / "rcu_v2.sbpl"
    proc = cli("loader", bpf_object(NAME), "-o", out, "--protocol", "v2")
    assert proc.returncode == 0, proc.stderr
    return out


# ---------------------------------------------------------------- no kernel
def test_map_idents_are_bpftools() -> None:
    from sigbpf.loadergen.skeleton import map_ident

    assert [map_ident(n) for n in ("counters", "kfunc_rc.data", "kfunc_rc.rodata",
                                   ".data.custom", "kfunc_rc.bss", ".rodata.str1.1",
                                   "kfunc_ob.kconfig")] == \
        ["counters", "data", "rodata", "data_custom", "bss", "rodata_str1_1", "kconfig"]


def test_gen_skeleton_refuses_a_v1_loader_in_one_line(cli, bpf_object, tmp_path) -> None:
    from conftest import assert_one_line_error

    v1 = tmp_path / "v1.sbpl"
    assert cli("loader", bpf_object(NAME), "-o", v1).returncode == 0
    proc = cli("gen", "skeleton", v1, "-o", tmp_path / "x.lskel.h")
    assert_one_line_error(proc, 2, "protocol v1 loader")
    assert not (tmp_path / "x.lskel.h").exists()


def test_gen_skeleton_is_deterministic_and_names_from_output(cli, loader_v2, tmp_path) -> None:
    a, b = tmp_path / "kfunc_rcu_maps.lskel.h", tmp_path / "b.lskel.h"
    assert cli("gen", "skeleton", loader_v2, "-o", a).returncode == 0
    assert cli("gen", "skeleton", loader_v2, "-o", b, "--name", NAME).returncode == 0
    assert a.read_text() == b.read_text()
    text = a.read_text()
    for needle in ("struct kfunc_rcu_maps {", "kfunc_rcu_maps__open_and_load(void)",
                   "opts.insns = (void *)opts_insn;", "opts.data = (void *)opts_data;",
                   "opts.ctx = (struct bpf_loader_ctx *)skel;", "#include <bpf/skel_internal.h>",
                   "offsetof(struct kfunc_rcu_maps, links) == 108"):
        assert needle in text, needle
    proc = cli("gen", "skeleton", loader_v2, "--name", NAME)
    assert proc.returncode == 0 and proc.stdout == text


# ---------------------------------------------------------------- bpftool's layout
def _skel_struct(text: str, name: str) -> list[str]:
    """The member lines of ``struct NAME {`` up to the end of ``links``."""
    body = text[text.index(f"struct {name} {{"):]
    body = body[:body.index("} links;") + len("} links;")]
    return [line.strip() for line in body.splitlines()[1:] if line.strip()]


@pytest.mark.usefixtures("kernel")
def test_struct_layout_and_hex_same_as_bpftool_gen_skeleton_L(cli, bpf_object, loader_v2,
                                                               tmp_path) -> None:
    from sigbpf.loadergen.skeleton import c_string

    proc = subprocess.run([BPFTOOL, "gen", "skeleton", "-L", str(bpf_object(NAME)), "name", NAME],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / f"{NAME}.lskel.h"
    assert cli("gen", "skeleton", loader_v2, "-o", out).returncode == 0
    ours = out.read_text()
    # the same ctx / maps / progs / links members, names and types
    assert _skel_struct(ours, NAME) == _skel_struct(proc.stdout, NAME)
    assert f"{NAME}__open(void)" in proc.stdout and f"{NAME}__destroy(struct {NAME} *skel)" in ours
    # the same C string encoding of bytes as bpftool's print_hex
    theirs = re.search(r'opts\.data = \(void \*\)"(\\\n.*?)";', proc.stdout, re.S).group(1)
    assert c_string(_c_string(proc.stdout, "data")) == theirs


# ---------------------------------------------------------------- compiled and run
@pytest.mark.usefixtures("kernel")
def test_unsigned_v2_skeleton_runs_with_skel_internal_1_1(cli, loader_v2, tmp_path) -> None:
    assert cli("gen", "skeleton", loader_v2, "-o", tmp_path / f"{NAME}.lskel.h").returncode == 0
    built = compile_main(tmp_path, f"{NAME}.lskel.h")  # header-only: no -lbpf
    assert built.returncode == 0, built.stderr
    assert retval(run_main(tmp_path)) == RETVAL


@pytest.mark.usefixtures("kernel")
def test_v1_loader_under_skel_internal_1_1_is_refused_by_its_prologue(bpf_object, tmp_path) -> None:
    """Measured: 1.1's bpf_load_and_run loads the v1 loader and runs it, and the prologue's
    exclusivity/hash check returns -EINVAL -- why ``gen skeleton`` refuses v1."""
    from sigbpf.artifact.build import build_from_file
    from sigbpf.loadergen.generate import generate
    from sigbpf.loadergen.skeleton import skeleton_header

    v1 = generate(build_from_file(bpf_object(NAME)), 1)
    (tmp_path / f"{NAME}.lskel.h").write_text(skeleton_header(v1, NAME, check=False))
    built = compile_main(tmp_path, f"{NAME}.lskel.h")
    assert built.returncode == 0, built.stderr
    proc = run_main(tmp_path)
    assert proc.returncode == 2 and "open_and_load: Invalid argument" in proc.stderr


@pytest.mark.usefixtures("kernel")
def test_signed_skeleton_needs_libbpf_1_7_or_loads_unsigned_when_allowed(
        cli, loader_v2, tmp_path, key_files) -> None:
    signed = tmp_path / "rcu_v2.signed"
    proc = cli("sign", loader_v2, "--key", key_files["key"], "--cert", key_files["cert"],
               "-o", signed)
    assert proc.returncode == 0, proc.stderr
    header = tmp_path / f"{NAME}.lskel.h"
    assert cli("gen", "skeleton", signed, "-o", header).returncode == 0
    text = header.read_text()
    for needle in ("opts.signature = (void *)opts_sig;", "opts.keyring_id = skel->keyring_id;",
                   "opts.excl_prog_hash_sz = sizeof(opts_excl_hash) - 1;", "__s32 keyring_id;",
                   "LIBBPF_MINOR_VERSION >= 7"):
        assert needle in text, needle
    built = compile_main(tmp_path, header.name)
    assert built.returncode != 0 and "needs libbpf >= 1.7" in built.stderr
    built = compile_main(tmp_path, header.name, "-DSIGBPF_SKEL_ALLOW_UNSIGNED")
    assert built.returncode == 0, built.stderr
    assert retval(run_main(tmp_path)) == RETVAL
