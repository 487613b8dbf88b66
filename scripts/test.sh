#!/usr/bin/env bash
# Runs sigbpf's whole test suite, after installing what it needs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/deps.sh"
cd "$here"
exec python3 -m pytest -q "$@"
