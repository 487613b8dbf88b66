"""Fixtures of the signing tests: key pairs and their files (``pytest_plugins = ["sign_fixtures"]``).

Keys are 2048-bit RSA to keep the suite fast; the format and the checks do not
depend on the size.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from sigbpf.sign import keys
from sign_support import write_pair


@pytest.fixture(scope="session")
def key_pair() -> keys.KeyPair:
    return keys.generate_key_pair("sigbpf test key", bits=2048)


@pytest.fixture(scope="session")
def other_key_pair() -> keys.KeyPair:
    return keys.generate_key_pair("sigbpf other key", bits=2048)


@pytest.fixture(scope="session")
def key_files(tmp_path_factory: pytest.TempPathFactory, key_pair: keys.KeyPair) -> dict[str, Path]:
    return write_pair(tmp_path_factory.mktemp("keys"), key_pair, "signer")


@pytest.fixture(scope="session")
def other_key_files(tmp_path_factory: pytest.TempPathFactory,
                    other_key_pair: keys.KeyPair) -> dict[str, Path]:
    return write_pair(tmp_path_factory.mktemp("other-keys"), other_key_pair, "other")


@pytest.fixture(scope="session")
def bad_cert_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """Key files of an expired, a not-yet-valid and a non-signing certificate."""
    now = dt.datetime.now(dt.timezone.utc)
    base = tmp_path_factory.mktemp("bad-certs")
    pairs = {
        "expired": keys.generate_key_pair("expired", bits=2048, days=1,
                                          not_before=now - dt.timedelta(days=10)),
        "future": keys.generate_key_pair("future", bits=2048, days=30,
                                         not_before=now + dt.timedelta(days=10)),
        "nonsigning": keys.generate_key_pair("nonsigning", bits=2048, digital_signature=False),
    }
    return {name: write_pair(base, pair, name) for name, pair in pairs.items()}
