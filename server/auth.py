"""API tokens with ``read`` and ``admin`` scopes (admin implies read), and the role and
lines of each (``roles``: who may write what).

Tokens come from the server config as ``SecretStr``; a presented token is compared
with every configured one in constant time, and neither is ever logged. With
``anonymous_read`` (the default, for the local demo) requests without a token may
read; a token that is presented must be valid.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field, SecretStr

from shopfloor.config import Strict
from shopfloor.server.roles import Role

Scope = Literal["read", "admin"]


class TokenConfig(Strict):
    name: str = Field(min_length=1, description="who holds it (for your records)")
    token: SecretStr = Field(min_length=16, description="the bearer token, >= 16 chars")
    scopes: list[Scope] = ["read"]
    role: Role | None = Field(None, description="viewer, operator, engineer or admin "
                                                "(default: admin with the admin scope, "
                                                "else viewer); see server/roles.py")
    lines: list[str] = Field([], description="an operator's lines (asset ids): the stops "
                                             "it may classify")


class AuthConfig(Strict):
    anonymous_read: bool = Field(True, description="allow reads without a token (demo)")
    tokens: list[TokenConfig] = []


_bearer = HTTPBearer(auto_error=False)


def holders(cfg: AuthConfig, presented: str) -> list[TokenConfig]:
    """The configured tokens equal to the presented one, each compared in constant time."""
    given = presented.encode()
    return [t for t in cfg.tokens
            if hmac.compare_digest(given, t.token.get_secret_value().encode())]


def scopes_of(cfg: AuthConfig, presented: str) -> set[str]:
    """Scopes of the presented token."""
    got: set[str] = set()
    for t in holders(cfg, presented):
        got |= set(t.scopes) | ({"admin"} if t.role == "admin" else set())
    if "admin" in got:
        got.add("read")
    return got


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def requirer(cfg: AuthConfig) -> Callable[[Scope], Any]:
    """``require(scope)`` -> a FastAPI dependency enforcing it."""
    def require(scope: Scope) -> Any:
        def check(cred: Credentials) -> None:
            if cred is None:
                if scope == "read" and cfg.anonymous_read:
                    return
                raise HTTPException(401, f"this needs a token with the {scope!r} scope: "
                                         "send Authorization: Bearer <token>",
                                    headers={"WWW-Authenticate": "Bearer"})
            have = scopes_of(cfg, cred.credentials)
            if not have:
                raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
            if scope not in have:
                raise HTTPException(403, f"this token lacks the {scope!r} scope")
        return Depends(check)
    return require
