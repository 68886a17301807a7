"""API tokens with ``read`` and ``admin`` scopes (admin implies read).

A token is configured as its SHA-256 (``sha256``: hex, what ``printf %s TOKEN |
sha256sum`` prints), or in plain (``token``, a ``SecretStr``; kept working, hashed as it is
compared). A presented token is hashed and compared with every configured hash
in constant time (``hmac.compare_digest``); no token or hash is ever logged. With
``anonymous_read`` (the default, for the local demo) requests without a token may read;
a token that is presented must be valid.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field, SecretStr, model_validator

from shopfloor.config import Strict

Scope = Literal["read", "admin"]
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def token_hash(token: str) -> str:
    """The hex SHA-256 a token is configured and compared as (tokens are random, >= 16
    characters: a plain hash is enough, no salt or KDF)."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenConfig(Strict):
    name: str = Field(min_length=1, description="who holds it (for your records)")
    sha256: SecretStr | None = Field(
        None, description="the token's SHA-256, 64 hex digits (`printf %s TOKEN | "
                          "sha256sum`); the server keeps no token in plain")
    token: SecretStr | None = Field(
        None, min_length=16, description="or the bearer token in plain, >= 16 chars "
                                         "(prefer sha256: then no config holds it)")
    scopes: list[Scope] = ["read"]

    @model_validator(mode="after")
    def _one_form(self) -> TokenConfig:
        if (self.sha256 is None) == (self.token is None):
            raise ValueError("give the token's sha256 or the token, not both")
        if self.sha256 is not None and not _HEX64.fullmatch(self.sha256.get_secret_value()):
            raise ValueError("sha256: give the 64 hex digits of the token's SHA-256")
        return self

    def digest(self) -> bytes:
        """The token's hex SHA-256 (lower case), what a presented token's is compared to."""
        if self.sha256 is not None:
            return self.sha256.get_secret_value().lower().encode()
        assert self.token is not None
        return token_hash(self.token.get_secret_value()).encode()


class AuthConfig(Strict):
    anonymous_read: bool = Field(True, description="allow reads without a token (demo)")
    tokens: list[TokenConfig] = []


_bearer = HTTPBearer(auto_error=False)


def scopes_of(cfg: AuthConfig, presented: str) -> set[str]:
    """Scopes of the presented token, its hash checked against every configured one in
    constant time."""
    got: set[str] = set()
    given = token_hash(presented).encode()
    for t in cfg.tokens:
        if hmac.compare_digest(given, t.digest()):
            got |= set(t.scopes)
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
