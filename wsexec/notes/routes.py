"""/wsexec/notes: notes on instances, with alpacon's rules (any authenticated user may write them)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from wsexec import audit, context
from wsexec.auth import current_user
from wsexec.blueprint import Blueprint
from wsexec.notes import service
from wsexec.notes.schemas import NoteFilterSchema, NoteSchema, NoteUpdateSchema
from wsexec.pagination import PageArgs, envelope, page_schema
from wsexec.roles import Role

blp = Blueprint(
    "notes", __name__, write_role=Role.VIEWER,
    description="Notes on instances. Any authenticated user (viewers too) may write one; a private note is shown "
                "to its author only (not even to admins); only the author or an admin may change or delete a public "
                "note, only the author a private one.",
)


@blp.route("")
class Notes(MethodView):
    @blp.arguments(PageArgs, location="query", as_kwargs=True)
    @blp.arguments(NoteFilterSchema, location="query", as_kwargs=True)
    @blp.response(200, page_schema(NoteSchema))
    def get(self, page: int, page_size: int, instance: int | None = None) -> dict[str, Any]:
        """The notes you may see (public ones and your private ones), pinned first, then the last updated."""
        notes = context.store().notes.visible(current_user().name, instance)
        start = (page - 1) * page_size
        return envelope(len(notes), notes[start:start + page_size], page, page_size)

    @blp.arguments(NoteSchema)
    @blp.response(201, NoteSchema)
    def post(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Write a note on an instance: any authenticated user, viewers too (422 if the instance does not exist)."""
        note = context.store().notes.create({**fields, "author": current_user().name})
        audit.record("note.create", f"note:{note['id']}", service.audit_detail(note, fields))
        return note


@blp.route("/<int:note_id>")
class Note(MethodView):
    @blp.response(200, NoteSchema)
    def get(self, note_id: int) -> dict[str, Any]:
        """One note (404 for someone else's private note)."""
        return service.visible(note_id, current_user())

    @blp.arguments(NoteUpdateSchema)
    @blp.response(200, NoteSchema)
    @blp.alt_response(403, response="FORBIDDEN")
    def patch(self, changes: dict[str, Any], note_id: int) -> dict[str, Any]:
        """Change the content, private or pinned (its author, or an admin for a public note)."""
        note = service.changeable(note_id, current_user())
        updated = context.store().notes.update(note_id, changes)
        audit.record("note.update", f"note:{note_id}", service.audit_detail(note, changes))
        return updated

    @blp.response(204)
    @blp.alt_response(403, response="FORBIDDEN")
    def delete(self, note_id: int) -> None:
        """Remove a note (its author, or an admin for a public note)."""
        note = service.changeable(note_id, current_user())
        context.store().notes.delete(note_id)
        audit.record("note.delete", f"note:{note_id}", service.audit_detail(note, {}))
