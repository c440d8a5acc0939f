"""The field validators as pure functions: which addresses and host keys an instance may name."""

from __future__ import annotations

import base64
import struct

import pytest
from marshmallow import ValidationError

from wsexec import validators

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP74pObGtLagmD+Dthr3pQoGmgYAFNXTF/vaX54a6b/u"
RSA = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDdx9pDnm3k9i18+MqoQqVKUScCGftGOIXWjQ2Ri5gkINtfU8QaQZoCPKUBgZ5uN4xbk2N46S5t"
    "3eOJZvmDlfDHrydVKAZpTTkFMEiVooEsCcP8VaPFjFfR0U92PP5H8mDAXUK1s7W93e/SwyrPX4qbwqczDyk48THaNRj834Q8s/Ps5wwLqiOO929Vl"
    "osxiRecNar/d9sPe8/nEzOxNXAf1zpjUq0jbb8/wZ0wbQQRIPWrJTpVY33NV3EM2+DyPiuJ+FVZGZm/QaReXxf4ZJXw+2WHFNU2jEpOBuVblvCGQe"
    "coXtn0dW9my1NuReVNRf7ar3UV+Zz98Lm0ss7JD1h3"
)
ECDSA_384 = (
    "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBLh5IsIiyc/DaC36EF2pOpyhnHB5ZGkQiTkY3aGd"
    "vhUZNg/+bRgF2oO5I09c9TNzyNBkloKrp2ckEmZLyRo+pp9PY9GG332bjDC/BexsI1hCmLMmBL3trnd99YvVTzwV3Q=="
)


def blob_line(key_type: str, *fields: bytes) -> str:
    """A key line whose base64 is exactly these wire-format strings."""
    data = b"".join(struct.pack(">I", len(f)) + f for f in (key_type.encode(), *fields))
    return f"{key_type} {base64.b64encode(data).decode()}"


def truncated(line: str, keep: int) -> str:
    """The line with its key data cut to `keep` bytes, re-encoded as valid base64 (what a bad copy-paste gives)."""
    key_type, data = line.split()[:2]
    return f"{key_type} {base64.b64encode(base64.b64decode(data)[:keep]).decode()}"


@pytest.mark.parametrize("value", ["127.0.0.1", "10.1.2.3", "192.168.1.255", "::1", "2001:db8::42", "fe80::1",
                                   "localhost", "web-1.example.com", "example.com.", "1password.com", "x.0a"])
def test_host_accepts_addresses_of_one_server_and_names(value: str) -> None:
    validators.host(value)


@pytest.mark.parametrize(("value", "why"), [
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("::ffff:0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("::ffff:224.0.0.1", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("0x7f.0.0.1", "dotted decimal"),
    ("0x7f000001", "dotted decimal"),
    ("0177.0.0.1", "not an IPv4"),
    ("127.1", "dotted decimal"),
    ("2130706433", "dotted decimal"),
    ("1.2.3", "dotted decimal"),
    ("web.123", "dotted decimal"),
    ("web.0x1f", "dotted decimal"),
])
def test_host_refuses_what_is_not_one_server_or_not_canonical(value: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        validators.host(value)


@pytest.mark.parametrize("value", [ED25519, RSA, ECDSA_384, ED25519 + " root@web-1",
                                   "SHA256:kTMs03z2ic3R8ZYMxjl/7x/xcyv4a0/vmDWsyrLwTV4"])
def test_host_key_accepts_whole_keys_and_fingerprints(value: str) -> None:
    validators.host_key(value)


@pytest.mark.parametrize(("value", "why"), [
    (truncated(ED25519, 40), "truncated or malformed"),
    (truncated(ED25519, 20), "truncated or malformed"),
    ("ssh-ed25519 AAAA*AAA", "not valid base64"),
    (truncated(RSA, 200), "truncated or malformed"),
    (truncated(ECDSA_384, 100), "truncated or malformed"),
    (blob_line("ssh-ed25519", b"k" * 32, b"extra"), "truncated or malformed"),
    (blob_line("ssh-rsa", b"\x01\x00\x01", b"\x00" + b"n" * 64), "truncated or malformed"),
    (blob_line("ecdsa-sha2-nistp256", b"nistp384", b"\x04" + b"p" * 64), "truncated or malformed"),
    (blob_line("ecdsa-sha2-nistp256", b"nistp256", b"\x02" + b"p" * 64), "truncated or malformed"),
    (ED25519 + " " + "c" * 5000, "longer than 4096"),
    ("ssh-rsa " + "A" * 200_000, "longer than 4096"),
])
def test_host_key_refuses_partial_malformed_and_huge_keys(value: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        validators.host_key(value)


@pytest.mark.parametrize("value", ["\0", "echo a\0b", "true\n\0"])
def test_a_script_with_a_nul_byte_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="NUL"):
        validators.script(value)


def test_a_script_without_nul_passes() -> None:
    validators.script("printf '\\000'; echo \x01\x7f 日本")
