"""The bounded read every configuration file goes through (:func:`imggate._files.read_config_file`),
and each loader that uses it: a missing file, a FIFO, a directory and a file over the limit are
configuration errors (exit 2) that name the file and what it is, and nothing blocks or reads
past the limit."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from imggate._files import read_config_file
from imggate.errors import ConfigError
from imggate.evidence.signing_keys import load_signing_key
from imggate.policy.kev import load_kev
from imggate.registry.pull_secrets import load_auth_file
from imggate.signatures.interface import load_certificate_authority
from imggate.signatures.keys import load_public_key
from imggate.signatures.trustroot import load_trusted_root

#: loader, what its messages call the file, its limit, how its messages start.
LOADERS: list[tuple[Callable[[Path], object], str, int, str]] = [
    (lambda p: load_signing_key(p, password=None), "the signing key", 64 * 1024, ""),
    (load_public_key, "key file", 64 * 1024, ""),
    (load_certificate_authority, "certificate chain", 256 * 1024, ""),
    (load_trusted_root, "trusted root", 4 * 1024 * 1024, ""),
    (load_auth_file, "the auth file", 1024 * 1024, "--registry-auth-file "),
    (lambda p: load_kev(p), "KEV catalog", 64 * 1024 * 1024, ""),
]
IDS = ["signing-key", "public-key", "certificate-chain", "trusted-root", "auth-file", "kev"]


def test_read_config_file_reads_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 10)
    assert read_config_file(tmp_path / "f", 10, what="thing") == b"x" * 10
    with pytest.raises(ConfigError, match=r"f: thing is larger than 9 bytes$"):
        read_config_file(tmp_path / "f", 9, what="thing")
    with pytest.raises(ConfigError, match=r"^--flag \S+: cannot read thing \(No such file"):
        read_config_file(tmp_path / "nope", 9, what="thing", label=f"--flag {tmp_path}/nope")


@pytest.mark.parametrize(("load", "what", "limit", "prefix"), LOADERS, ids=IDS)
def test_each_loader_names_the_file_and_what_it_is(
        load: Callable[[Path], object], what: str, limit: int, prefix: str,
        tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(ConfigError) as e:
        load(missing)
    assert e.value.message == f"{prefix}{missing}: cannot read {what} (No such file or directory)"

    with pytest.raises(ConfigError) as e:
        load(tmp_path)
    assert e.value.message == (f"{prefix}{tmp_path}: cannot read {what} (a directory: only "
                               "regular files are read)")

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: a blocking read would hang the test
    with pytest.raises(ConfigError) as e:
        load(fifo)
    assert e.value.message == (f"{prefix}{fifo}: cannot read {what} (a FIFO (named pipe): "
                               "only regular files are read)")

    big = tmp_path / "big"
    with big.open("wb") as f:
        f.truncate(limit + 1)  # sparse: nothing is written, and nothing must be read
    with pytest.raises(ConfigError) as e:
        load(big)
    assert e.value.message == f"{prefix}{big}: {what} is larger than {limit} bytes"
