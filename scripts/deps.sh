#!/usr/bin/env bash
# Installs what sigbpf's example and tests need on a fresh Debian 12 machine
# (run as root): clang-19/llvm-19 (compile test programs, llvm-objdump reference),
# bpftool and libbpf (references for tests and benchmarks), then sigbpf itself.
# Idempotent: what is already there is not installed again.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

need_apt=()
command -v clang-19 >/dev/null 2>&1 || need_apt+=(clang-19)
command -v llvm-objdump-19 >/dev/null 2>&1 || need_apt+=(llvm-19)
command -v bpftool >/dev/null 2>&1 || need_apt+=(bpftool)
[ -e /usr/include/bpf/bpf_helpers.h ] || need_apt+=(libbpf-dev)
ls /usr/lib/x86_64-linux-gnu/libbpf.so* >/dev/null 2>&1 || need_apt+=(libbpf1)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v xz >/dev/null 2>&1 || need_apt+=(xz-utils)
command -v keyctl >/dev/null 2>&1 || need_apt+=(keyutils)
# sigbpf check's tests: the zstd and lz4 tools make and check compressed kernel payloads.
command -v zstd >/dev/null 2>&1 || need_apt+=(zstd)
command -v lz4 >/dev/null 2>&1 || need_apt+=(lz4)
# The corpus (bench/corpus, tests/test_corpus.py): a private bpffs per load (unshare),
# apt-get download + dpkg-deb for the sources and Debian's BPF objects.
command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
# The kernel's own module-signing tool, scripts/sign-file (a reference for the signing tests).
ls /usr/lib/linux-kbuild-*/scripts/sign-file >/dev/null 2>&1 || need_apt+=(linux-kbuild-6.1)
# The VM test bench (testbench/): qemu (TCG) boots Debian kernels; busybox for its initramfs.
command -v qemu-system-x86_64 >/dev/null 2>&1 || need_apt+=(qemu-system-x86)
[ -x /bin/busybox ] || need_apt+=(busybox-static)
# The fleet check's HTML report is opened in headless Chromium (tests/test_fleet_html.py).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# The seed test kernel (testbench/kernel/): Debian's linux-source-7.3 built with the PROG_BTF
# patch (tinyconfig + fragments; pahole from dwarves makes its BTF).
for tool in make:make gcc:gcc flex:flex bison:bison bc:bc pahole:dwarves patch:patch \
            objcopy:binutils perl:perl cpio:cpio; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need_apt+=("${tool#*:}")
done
[ -e /usr/include/libelf.h ] || need_apt+=(libelf-dev)
[ -e /usr/include/openssl/ssl.h ] || need_apt+=(libssl-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "deps: apt-get install ${need_apt[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "${need_apt[@]}" >&2
fi

# [fleet]: zstandard and lz4, to read zstd/lz4 kernel images in .deb packages (sigbpf check)
python3 -m pip install -q --disable-pip-version-check -e "$here[test,fleet]" >&2
