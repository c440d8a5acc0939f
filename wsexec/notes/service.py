"""Who may see and change a note (alpacon's rules): private ones are their author's alone, public ones anyone's to
read and their author's or an admin's to change."""

from __future__ import annotations

from typing import Any

from wsexec import context
from wsexec.auth import Principal
from wsexec.exceptions import Forbidden, NotFound
from wsexec.roles import Role


def visible(note_id: int, user: Principal) -> dict[str, Any]:
    """The note, or 404 for someone else's private note (admins included): its existence is private too."""
    note = context.store().notes.get(note_id)
    if note["private"] and note["author"] != user.name:
        raise NotFound(f"note {note_id} not found")
    return note


def changeable(note_id: int, user: Principal) -> dict[str, Any]:
    """The note, if user may edit or delete it: its author, or an admin for a public note (403 otherwise)."""
    note = visible(note_id, user)
    if note["author"] != user.name and user.role < Role.ADMIN:
        raise Forbidden(f"only its author ({note['author']}) or an admin may change note {note_id}",
                        {"author": note["author"]})
    return note


def audit_detail(note: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """What the audit log keeps: the fields given, without the content of a private note (before or after)."""
    private = note["private"] or changes.get("private", False)
    return {k: v for k, v in changes.items() if not (private and k == "content")} | {"instance": note["instance"]}
