"""Roles: who may change what people write (stops, counts, plans, targets, rules,
reasons).

- ``viewer``: reads (anonymous requests too, with ``auth.anonymous_read``);
- ``operator``: classifies, splits and comments the stops, and enters counts, of the
  machines under the lines (or any assets) in its token's ``lines``, and nothing else;
- ``engineer``: every stop and count, and the plans (orders), targets, alert rules and reasons;
- ``admin``: all of it, and the ``admin`` scope (``/registry/reload``).

A token's role is its ``role``, else ``admin`` for a token with the ``admin`` scope and
``viewer`` for the others (the tokens before roles). Tokens are checked by ``auth``
(constant time, never logged); every write route asks a ``Principal`` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["viewer", "operator", "engineer", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "engineer", "admin")


def _under(asset: str, scope: str) -> bool:
    return asset == scope or asset.startswith(scope.rstrip("/") + "/")


@dataclass(frozen=True)
class Principal:
    """Who a request is: the token's name (kept in audit trails), role and lines."""

    name: str
    role: Role
    lines: tuple[str, ...] = ()

    def at_least(self, role: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    def may_work_on(self, machine: str) -> bool:
        """May change the machine's stops and counts. Operators: machines under their
        lines; engineers and admins: any."""
        if self.at_least("engineer"):
            return True
        return self.role == "operator" and any(_under(machine, ln) for ln in self.lines)

    @property
    def may_plan(self) -> bool:
        """Orders, targets, alert rules and reasons."""
        return self.at_least("engineer")

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "role": self.role, "lines": list(self.lines)}


ANONYMOUS = Principal("anonymous", "viewer")
