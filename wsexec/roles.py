"""Who may do what, without Flask: the roles, and the access a group of routes declares (wsexec.blueprint)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Role(IntEnum):
    """Ordered: each role may do everything a lower one may."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Access:
    """What a blueprint's routes ask for: reads read_role, writes write_role; public ones no credentials at all;
    registration ones a self-registration token and nothing else (wsexec.registrations)."""

    read_role: Role = Role.VIEWER
    write_role: Role = Role.ADMIN
    public: bool = False
    registration: bool = False

    def role_for(self, method: str) -> Role:
        """Reads need a viewer and writes an admin unless the blueprint says otherwise."""
        return self.read_role if method.upper() in SAFE_METHODS else self.write_role
