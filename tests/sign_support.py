"""Helpers of the signing tests (tests/test_sign*.py): key files, openssl, BTF surgery.

The fixtures that use them are in tests/sign_fixtures.py (``pytest_plugins``).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

from sigbpf.sign import keys

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def write_pair(directory: Path, pair: keys.KeyPair, stem: str = "k") -> dict[str, Path]:
    """Write *pair* as PEM and DER files; returns {'key': .., 'key_der': .., 'cert': .., 'cert_der': ..}."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "key": (directory / f"{stem}.key.pem", keys.encode_private_key(pair.key)),
        "key_der": (directory / f"{stem}.key.der", keys.encode_private_key(pair.key, pem=False)),
        "cert": (directory / f"{stem}.cert.pem", keys.encode_certificate(pair.cert)),
        "cert_der": (directory / f"{stem}.cert.der", keys.encode_certificate(pair.cert, pem=False)),
    }
    for path, data in files.values():
        path.write_bytes(data)
    return {name: path for name, (path, _) in files.items()}


def openssl(*args: str | Path, input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run the reference tool, openssl, in binary mode."""
    return subprocess.run([OPENSSL, *map(str, args)], capture_output=True, input=input, timeout=60)


def swap_func_names(btf: bytes, a: str, b: str) -> bytes:
    """Swap the names of the FUNCs *a* and *b* in raw BTF (both stay real kfunc names).

    Only the two FUNC records' name offsets change: the BTF stays valid, and a
    call signed as *a* would resolve to *b*.
    """
    _, _, _, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", btf)
    strings = btf[hdr_len + str_off:hdr_len + str_off + str_len]
    off_a, off_b = strings.index(a.encode() + b"\0"), strings.index(b.encode() + b"\0")
    types = bytearray(btf[hdr_len + type_off:hdr_len + type_off + type_len])

    def func_at(name_off: int) -> int:
        hits = [p for p in range(0, len(types) - 8, 4)
                if struct.unpack_from("<I", types, p)[0] == name_off
                and (struct.unpack_from("<I", types, p + 4)[0] >> 24) & 0x1F == 12]  # BTF_KIND_FUNC
        assert len(hits) == 1, (name_off, hits)
        return hits[0]

    pos_a, pos_b = func_at(off_a), func_at(off_b)
    struct.pack_into("<I", types, pos_a, off_b)
    struct.pack_into("<I", types, pos_b, off_a)
    return btf[:hdr_len + type_off] + bytes(types) + btf[hdr_len + type_off + type_len:]


def sign_both_layouts(cli, unsigned: Path, key: Path, cert: Path) -> dict[str, Path]:
    """*unsigned* signed by ``sigbpf sign`` in each layout, next to it:
    ``{"unsigned": .., "insns": .., "insns+metadata": ..}`` (each sign must succeed)."""
    paths = {"unsigned": unsigned}
    for layout in ("insns", "insns+metadata"):
        path = unsigned.with_name(f"{unsigned.stem}.{layout}.signed")
        proc = cli("sign", unsigned, "--key", key, "--cert", cert, "--layout", layout, "-o", path)
        assert proc.returncode == 0, proc.stderr
        assert f"layout {layout}" in proc.stdout
        paths[layout] = path
    return paths


def sign_file_path() -> Path:
    """The kernel's module-signing tool, scripts/sign-file (Debian: linux-kbuild-*), or a failure
    saying how to install it (scripts/deps.sh does)."""
    import glob

    import pytest

    found = sorted(glob.glob("/usr/lib/linux-kbuild-*/scripts/sign-file"))
    if not found:
        pytest.fail("the kernel's sign-file is not installed (scripts/deps.sh installs "
                    "linux-kbuild-6.1)")
    return Path(found[-1])


def sign_file(payload: bytes, key_pem: Path, cert: Path, work: Path, *, keyid: bool) -> bytes:
    """A detached signature of *payload* by the kernel's ``sign-file -d sha256`` (``-k``: name
    the signer by subject key identifier).  sign-file wants a PEM key; the cert may be PEM or DER."""
    work.mkdir(parents=True, exist_ok=True)
    data = work / "payload"
    data.write_bytes(payload)
    sig = work / "payload.p7s"
    sig.unlink(missing_ok=True)
    proc = subprocess.run([str(sign_file_path()), *(["-k"] if keyid else []), "-d", "sha256",
                           str(key_pem), str(cert), str(data)],
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert data.read_bytes() == payload  # -d: signature only, the file is left alone
    return sig.read_bytes()
