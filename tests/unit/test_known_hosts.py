"""known_hosts read line by line as OpenSSH does: a broken line, for any host, costs that line only."""

from __future__ import annotations

import logging
from pathlib import Path

import paramiko
import pytest

from workers.ssh.trust import known_keys

NAME = "[127.0.1.1]:2222"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB"
BAD_LINES = [
    "this is not a known_hosts line at all",
    f"{NAME} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAA",  # truncated: undecodable base64
    f"{NAME} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA",  # truncated on a base64 boundary: no key inside
    "other.example ssh-ed25519 !!!not-base64!!!",
    "|1|bm90LWJhc2U2NA|garbage ssh-ed25519 " + KEY.split()[1],  # a hashed name with a broken salt
]


def blobs(keys: list[paramiko.PKey]) -> list[str]:
    return [f"{key.get_name()} {key.get_base64()}" for key in keys]


@pytest.mark.parametrize("bad", BAD_LINES)
def test_a_bad_line_before_the_real_one_is_skipped_with_a_warning(tmp_path: Path, bad: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"# comment\n\n{bad}\n{NAME} {KEY}\n")
    with caplog.at_level(logging.WARNING, logger="workers.ssh.trust"):
        assert blobs(known_keys(str(path), NAME)) == [KEY]
    if not bad.startswith("|1|"):  # a broken salt only means the name cannot match
        assert f"{path}:3: not a host key line" in caplog.text


def test_only_the_host_asked_for_plain_or_hashed(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    hashed = paramiko.HostKeys.hash_host(NAME)
    path.write_text(f"other.example {OTHER}\n127.0.1.1,{hashed} {KEY}\n")
    assert blobs(known_keys(str(path), NAME)) == [KEY]
    assert blobs(known_keys(str(path), "127.0.1.1")) == [KEY]
    assert blobs(known_keys(str(path), "[127.0.1.1]:2223")) == []


def test_revoked_keys_are_never_trusted_and_markers_do_not_break_the_file(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"@revoked * {KEY}\n@cert-authority *.example {OTHER}\n{NAME} {KEY}\n{NAME} {OTHER}\n")
    assert blobs(known_keys(str(path), NAME)) == [OTHER]


def test_no_file_means_no_known_keys(tmp_path: Path) -> None:
    assert known_keys(str(tmp_path / "missing"), NAME) == []
