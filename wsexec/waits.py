"""?wait=SECONDS on the routes that create or show tasks: answer once they have finished (or the time is up).

The store wakes a wait with the tasks' 'finished' events (wsexec.store.waits), so nothing polls; each wait holds
one of the user's WSEXEC_USER_WAITS_MAX slots (wsexec.quotas) while it blocks.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from wsexec import context, validators


def _at_most_wait_max(value: int) -> None:
    limit = context.settings().wait_max
    if value > limit:
        raise ValidationError(f"at most {limit} s (WSEXEC_WAIT_MAX)")


def wait_field(**options: Any) -> fields.Field:
    """?wait=SECONDS, 1 to WSEXEC_WAIT_MAX (300 by default): how long a request may stay open waiting for tasks."""
    return validators.Integer(validate=[validate.Range(min=1), _at_most_wait_max], **options)


class WaitArgs(Schema):
    wait = wait_field(metadata={"description": "seconds to wait for the task(s) to finish, at most WSEXEC_WAIT_MAX "
                                               "(300 by default); the answer shows them as they are then"})



WAIT_ARGS = WaitArgs()  # one instance: webargs would build one from the class on every request
