#!/usr/bin/env bash
# The main job on the bundled example, end to end: build a portable artifact
# from a clang-compiled BPF object, check it against three kernels' BTF, sign
# it, verify it, then load and run it in the running kernel.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/deps.sh"
cd "$here"
out=${SIGBPF_EXAMPLE_OUT:-out/example}
mkdir -p "$out"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step sigbpf build examples/task_iter.bpf.o -o "$out/task_iter.sbpf"
step sigbpf inspect "$out/task_iter.sbpf"

# Real kernels' BTF (Debian 6.1 and 6.12) next to the running kernel's.
for k in 6.1.0-56-amd64 6.12.95+deb12-amd64; do
    for f in btf BTF_ids; do
        [ -e "$out/$k.$f" ] || xz -dc "tests/data/corpus/$k.$f.xz" > "$out/$k.$f"
    done
done
step sigbpf check "$out/task_iter.sbpf" \
    --btf /sys/kernel/btf/vmlinux \
    --btf "$out/6.12.95+deb12-amd64.btf" --btf-ids "$out/6.12.95+deb12-amd64.BTF_ids" \
    --btf "$out/6.1.0-56-amd64.btf" --btf-ids "$out/6.1.0-56-amd64.BTF_ids" \
    || echo "(exit $?: as expected, Debian 6.1 predates the number iterator kfuncs)"

step sigbpf resolve "$out/task_iter.sbpf"
step sigbpf keygen --out "$out/keys"
step sigbpf sign "$out/task_iter.sbpf" --key "$out/keys/signing_key.pem" --cert "$out/keys/signing_cert.pem" -o "$out/task_iter.signed"
step sigbpf verify "$out/task_iter.signed" --cert "$out/keys/signing_cert.pem"
# ctx = {pid = 2 (kthreadd), n = 10}: returns 2 + (0 + 1 + ... + 9) = 47
step sigbpf load "$out/task_iter.signed" --cert "$out/keys/signing_cert.pem" --run --ctx 020000000a000000
