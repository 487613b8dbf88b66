"""Kernel keyrings for signed loads: ``add_key("asymmetric", ...)`` and friends, via ctypes.

``BPF_PROG_LOAD`` (6.18) takes a ``keyring_id``: 0, 1 and 2 are the builtin,
secondary and platform system keyrings; any other value is a key serial such
as :data:`KEY_SPEC_SESSION_KEYRING` (-3).  To check a signature against a
certificate of our own, sigbpf adds the X.509 certificate (DER) as an
``asymmetric`` key to the session keyring first.
"""

from __future__ import annotations

import ctypes
import os
import platform

from sigbpf.errors import KernelError
from sigbpf.kernel.syscall import raw_syscall

#: Special keyring serials (include/uapi/linux/keyctl.h).
KEY_SPEC_THREAD_KEYRING = -1
KEY_SPEC_PROCESS_KEYRING = -2
KEY_SPEC_SESSION_KEYRING = -3
KEY_SPEC_USER_KEYRING = -4

#: The system keyrings as BPF_PROG_LOAD's keyring_id names them (include/linux/verification.h).
BUILTIN_KEYRING = 0
SECONDARY_KEYRING = 1
PLATFORM_KEYRING = 2

KEYCTL_UNLINK = 9

_NR = {"x86_64": (248, 250), "aarch64": (217, 219), "riscv64": (217, 219)}


def _numbers() -> tuple[int, int]:
    try:
        return _NR[platform.machine()]
    except KeyError:
        raise KernelError(f"add_key() syscall number unknown for {platform.machine()}") from None


def add_asymmetric_key(description: str, cert_der: bytes,
                       keyring: int = KEY_SPEC_SESSION_KEYRING) -> int:
    """``add_key("asymmetric", description, cert_der, keyring)``: the new key's serial."""
    nr_add_key, _ = _numbers()
    payload = ctypes.create_string_buffer(bytes(cert_der), len(cert_der))
    serial, err = raw_syscall(nr_add_key, ctypes.c_char_p(b"asymmetric"),
                              ctypes.c_char_p(description.encode()), payload,
                              ctypes.c_size_t(len(cert_der)), ctypes.c_int(keyring))
    if serial < 0:
        raise KernelError(f"adding certificate to keyring {keyring} (add_key asymmetric): "
                          f"{os.strerror(err)}", errno=err)
    return serial


def unlink_key(serial: int, keyring: int = KEY_SPEC_SESSION_KEYRING) -> None:
    """``keyctl(KEYCTL_UNLINK, serial, keyring)``; a key already gone is not an error."""
    _, nr_keyctl = _numbers()
    result, err = raw_syscall(nr_keyctl, ctypes.c_int(KEYCTL_UNLINK), ctypes.c_int(serial),
                              ctypes.c_int(keyring))
    if result < 0 and err not in (2, 126):  # ENOENT, ENOKEY
        raise KernelError(f"unlinking key {serial}: {os.strerror(err)}", errno=err)


def keyring_id(spec: str) -> int:
    """``--keyring`` text → keyring_id: ``session`` (-3), ``builtin`` (0), ``secondary`` (1),
    ``platform`` (2), or a decimal/hex serial."""
    named = {"session": KEY_SPEC_SESSION_KEYRING, "builtin": BUILTIN_KEYRING,
             "secondary": SECONDARY_KEYRING, "platform": PLATFORM_KEYRING,
             "user": KEY_SPEC_USER_KEYRING, "process": KEY_SPEC_PROCESS_KEYRING,
             "thread": KEY_SPEC_THREAD_KEYRING}
    if spec in named:
        return named[spec]
    try:
        return int(spec, 0)
    except ValueError:
        from sigbpf.errors import UsageError
        raise UsageError(f"--keyring {spec!r}: expected session, builtin, secondary, platform "
                         f"or a numeric key serial") from None
