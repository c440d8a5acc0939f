"""Field validators shared by the schemas: host names, scripts, POSIX users, tags, SSH host keys."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
import struct

from marshmallow import ValidationError, fields

LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){LABEL}(\.{LABEL})*\.?$")
POSIX_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,30}\$?$")
TAG = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}=?$")
HOST_KEY_MAX = 4096  # characters: an RSA 16384-bit key line is about 2,800
ECDSA_POINT_BYTES = {"nistp256": 65, "nistp384": 97, "nistp521": 133}  # uncompressed: 0x04 || X || Y
KEY_TYPES = {"ssh-ed25519", "ssh-rsa", *(f"ecdsa-sha2-{curve}" for curve in ECDSA_POINT_BYTES)}
RSA_MIN_MODULUS_BYTES = 128  # 1024 bits; OpenSSH itself refuses less
IPV4_RESERVED = ipaddress.IPv4Network("240.0.0.0/4")  # "future use" and the broadcast address: nothing to log in to


class Integer(fields.Integer):
    """An integer field that refuses 22.5 (marshmallow's own would silently truncate it to 22)."""

    def _validated(self, value: object) -> int:
        if isinstance(value, float) and not value.is_integer():
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


def host(value: str) -> None:
    """An IPv4 or IPv6 address in its usual form that one machine can answer on, or a DNS name."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        address = None
    if address is not None:
        unusable = address_problem(address)
        if unusable:
            raise ValidationError(f"{value} is {unusable}, not the address of one server")
        return
    if not HOSTNAME.fullmatch(value) or _numeric_form(value):
        raise ValidationError("not an IPv4/IPv6 address (dotted decimal for IPv4) or a DNS name")


def address_problem(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address cannot be an SSH target (unspecified, multicast, broadcast/reserved), or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in IPV4_RESERVED:
        return "the broadcast address" if address.packed == b"\xff" * 4 else "a reserved address"
    return None


def _numeric_form(value: str) -> bool:
    """True for what resolvers read as a number (0x7f.0.0.1, 0177.1, 2130706433), and all-numeric last labels."""
    try:
        socket.inet_aton(value.rstrip("."))
        return True
    except OSError:
        pass
    last = value.rstrip(".").rsplit(".", 1)[-1]
    return last.isdigit() or re.fullmatch(r"0[xX][0-9a-fA-F]*", last) is not None


def script(value: str) -> None:
    """No shell variable or argument can hold a NUL byte, so no shell could run such a script as written."""
    if "\0" in value:
        raise ValidationError("contains a NUL byte (\\u0000), which no shell can run as written")


def posix_user(value: str) -> None:
    if not POSIX_USER.fullmatch(value):
        raise ValidationError("not a valid POSIX user name (lower case letters, digits, _ and -, at most 32)")


def tag(value: str) -> None:
    if not TAG.fullmatch(value):
        raise ValidationError("1 to 64 characters among letters, digits and _ . @ -")


def host_key(value: str) -> None:
    """An OpenSSH public-key line ('ssh-ed25519 AAAA...') whose key data is whole, or a 'SHA256:...' fingerprint."""
    if len(value) > HOST_KEY_MAX:
        raise ValidationError(f"longer than {HOST_KEY_MAX} characters")
    if FINGERPRINT.fullmatch(value):  # 43 base64 characters: 32 bytes
        return
    parts = value.split()
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise ValidationError(f"expected '<type> <base64>' with type one of {sorted(KEY_TYPES)}, or 'SHA256:...'")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except binascii.Error as exc:
        raise ValidationError("the key is not valid base64 of an SSH public key") from exc
    try:
        strings = _ssh_strings(blob)
        embedded = strings[0].decode()
    except (ValueError, IndexError) as exc:  # UnicodeDecodeError is a ValueError
        raise ValidationError(f"the {parts[0]} key data is truncated or malformed") from exc
    if embedded != parts[0]:
        raise ValidationError(f"the key data is a {embedded!r} key, not {parts[0]!r}")
    if not _key_fields_whole(embedded, strings[1:]):
        raise ValidationError(f"the {embedded} key data is truncated or malformed")


def _ssh_strings(blob: bytes) -> list[bytes]:
    """The length-prefixed strings of SSH's wire format (RFC 4251), all of the blob or ValueError."""
    strings, offset = [], 0
    while offset < len(blob):
        try:
            (length,) = struct.unpack_from(">I", blob, offset)
        except struct.error as exc:
            raise ValueError("truncated length") from exc
        offset += 4
        if offset + length > len(blob):
            raise ValueError("truncated string")
        strings.append(blob[offset : offset + length])
        offset += length
    return strings


def _key_fields_whole(key_type: str, fields: list[bytes]) -> bool:
    """The fields RFC 4253 / 5656 / 8709 give each key type, with plausible sizes."""
    if key_type == "ssh-ed25519":
        return len(fields) == 1 and len(fields[0]) == 32
    if key_type == "ssh-rsa":
        return len(fields) == 2 and bool(fields[0]) and len(fields[1].lstrip(b"\0")) >= RSA_MIN_MODULUS_BYTES
    curve = key_type.removeprefix("ecdsa-sha2-")
    return (len(fields) == 2 and fields[0] == curve.encode() and len(fields[1]) == ECDSA_POINT_BYTES[curve]
            and fields[1][:1] == b"\x04")
