"""Field validators shared by the schemas: host names, POSIX users, tags, SSH host keys."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import struct

from marshmallow import ValidationError, fields

LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){LABEL}(\.{LABEL})*\.?$")
POSIX_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,30}\$?$")
TAG = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}=?$")
KEY_TYPES = {
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
}


class Integer(fields.Integer):
    """An integer field that refuses 22.5 (marshmallow's own would silently truncate it to 22)."""

    def _validated(self, value: object) -> int:
        if isinstance(value, float) and not value.is_integer():
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


def host(value: str) -> None:
    """An IPv4 or IPv6 address, or a DNS name."""
    try:
        ipaddress.ip_address(value)
        return
    except ValueError:
        pass
    if not HOSTNAME.fullmatch(value) or value.replace(".", "").isdigit():
        raise ValidationError("not an IPv4/IPv6 address or a DNS name")


def posix_user(value: str) -> None:
    if not POSIX_USER.fullmatch(value):
        raise ValidationError("not a valid POSIX user name (lower case letters, digits, _ and -, at most 32)")


def tag(value: str) -> None:
    if not TAG.fullmatch(value):
        raise ValidationError("1 to 64 characters among letters, digits and _ . @ -")


def host_key(value: str) -> None:
    """An OpenSSH public-key line ('ssh-ed25519 AAAA...') or a 'SHA256:...' fingerprint."""
    if FINGERPRINT.fullmatch(value):
        return
    parts = value.split()
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise ValidationError(f"expected '<type> <base64>' with type one of {sorted(KEY_TYPES)}, or 'SHA256:...'")
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        embedded = blob[4 : 4 + length].decode()
    except (binascii.Error, struct.error, UnicodeDecodeError) as exc:
        raise ValidationError("the key is not valid base64 of an SSH public key") from exc
    if embedded != parts[0]:
        raise ValidationError(f"the key data is a {embedded!r} key, not {parts[0]!r}")
