"""Who a request is (``PrincipalDep``: the token's name, role and lines, see
``server/roles.py``) and the operations database it writes to (``OperationsDep``);
``must`` turns a refused permission into 401 (no token) or 403 (a token without it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException

from shopfloor.server import auth
from shopfloor.server.api.deps import ConfigDep, StateDep
from shopfloor.server.operations.service import Operations
from shopfloor.server.roles import ANONYMOUS, Principal


async def _principal(cred: auth.Credentials, config: ConfigDep) -> Principal:
    if cred is None:
        return ANONYMOUS
    found = auth.holders(config.auth, cred.credentials)
    if not found:
        raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
    t = found[0]
    role = t.role or ("admin" if "admin" in t.scopes else "viewer")
    return Principal(t.name, role, tuple(t.lines))


async def _operations(state: StateDep) -> Operations:
    assert state.operations is not None, "open while the app's lifespan runs"
    return state.operations


PrincipalDep = Annotated[Principal, Depends(_principal)]
OperationsDep = Annotated[Operations, Depends(_operations)]


def must(who: Principal, allowed: bool, what: str) -> None:
    """Refuse the request unless ``allowed``."""
    if allowed:
        return
    if who is ANONYMOUS:
        raise HTTPException(401, f"{what} needs a token: send Authorization: Bearer <token>",
                            headers={"WWW-Authenticate": "Bearer"})
    raise HTTPException(403, f"{who.role} {who.name!r} may not {what}")
