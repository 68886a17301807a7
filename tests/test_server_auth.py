"""API tokens: read and admin scopes, anonymous read switchable, tokens never logged."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from shopfloor.server.app import create_app
from shopfloor.server.config import ServerConfig
from tests.test_server_api import SAMPLES

READER, ADMIN = "r" * 8 + "-reader-token", "a" * 8 + "-admin-token-x"


def make(tmp_path, anonymous: bool) -> TestClient:
    (tmp_path / "registry.yaml").write_text((SAMPLES / "registry.sample.yaml").read_text())
    cfg = ServerConfig.model_validate({
        "registry": "registry.yaml", "store": {"embedded": {"path": str(tmp_path / "s.db")}},
        "auth": {"anonymous_read": anonymous, "tokens": [
            {"name": "dashboard", "token": READER},
            {"name": "ops", "token": ADMIN, "scopes": ["admin"]}]}})
    assert READER not in repr(cfg) and ADMIN not in str(cfg.model_dump())
    return TestClient(create_app(cfg, tmp_path))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_tokens_and_scopes(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with make(tmp_path, anonymous=False) as c:
        r = c.get("/api/v1/assets")
        assert r.status_code == 401 and "Bearer" in r.text
        assert c.get("/api/v1/assets", headers=bearer("x" * 20)).status_code == 401
        assert c.get("/api/v1/assets", headers=bearer(READER)).status_code == 200
        assert c.get("/api/v1/assets", headers=bearer(ADMIN)).status_code == 200  # implies read
        r = c.post("/api/v1/registry/reload", headers=bearer(READER))
        assert r.status_code == 403 and "admin" in r.text
        r = c.post("/api/v1/registry/reload", headers=bearer(ADMIN))
        assert r.status_code == 200 and r.json() == {"equipment": 2}
        assert c.get("/healthz").status_code == 200  # probes need no token
    assert READER not in caplog.text and ADMIN not in caplog.text


def test_anonymous_read_for_the_demo(tmp_path):
    with make(tmp_path, anonymous=True) as c:
        assert c.get("/api/v1/assets").status_code == 200
        assert c.get("/api/v1/assets", headers=bearer("wrong-token-xxxxxxx")).status_code == 401
        assert c.post("/api/v1/registry/reload").status_code == 401


def test_default_config_allows_anonymous_read():
    assert ServerConfig.model_validate(
        {"registry": "r.yaml", "store": {"embedded": {"path": "x.db"}}}).auth.anonymous_read


def test_short_tokens_are_refused():
    with pytest.raises(ValueError, match="16"):
        ServerConfig.model_validate({"registry": "r.yaml", "store": {"embedded": {
            "path": "x.db"}}, "auth": {"tokens": [{"name": "n", "token": "short"}]}})


def test_tokens_stored_as_sha256_work_beside_plain_ones(tmp_path):
    """Issue 17: a config can hold only the token's SHA-256; plain tokens keep working."""
    import hashlib

    from shopfloor.server import auth

    digest = hashlib.sha256(ADMIN.encode()).hexdigest()
    assert auth.token_hash(ADMIN) == digest
    (tmp_path / "registry.yaml").write_text((SAMPLES / "registry.sample.yaml").read_text())
    cfg = ServerConfig.model_validate({
        "registry": "registry.yaml", "store": {"embedded": {"path": str(tmp_path / "s.db")}},
        "auth": {"anonymous_read": False, "tokens": [
            {"name": "dashboard", "token": READER},
            {"name": "ops", "sha256": digest.upper(), "scopes": ["admin"]}]}})
    assert digest not in repr(cfg) and digest.upper() not in str(cfg.model_dump())
    with TestClient(create_app(cfg, tmp_path)) as c:
        assert c.post("/api/v1/registry/reload", headers=bearer(ADMIN)).status_code == 200
        assert c.get("/api/v1/assets", headers=bearer(READER)).status_code == 200
        # the hash itself is not a token
        assert c.get("/api/v1/assets", headers=bearer(digest)).status_code == 401
    for bad, msg in [({"name": "x"}, "not both"),
                     ({"name": "x", "token": READER, "sha256": digest}, "not both"),
                     ({"name": "x", "sha256": "ab" * 31}, "64 hex")]:
        with pytest.raises(ValueError, match=msg):
            ServerConfig.model_validate({"registry": "r.yaml", "store": {"embedded": {
                "path": "x.db"}}, "auth": {"tokens": [bad]}})


def test_tokens_are_compared_in_constant_time(monkeypatch):
    """Every configured token's hash goes through hmac.compare_digest, none by ==."""
    from shopfloor.server import auth

    seen = []
    real = auth.hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest",
                        lambda a, b: seen.append((a, b)) or real(a, b))
    cfg = auth.AuthConfig.model_validate({"tokens": [
        {"name": "a", "token": READER}, {"name": "b", "token": ADMIN, "scopes": ["admin"]}]})
    assert auth.scopes_of(cfg, ADMIN) == {"admin", "read"}
    assert len(seen) == 2 and all(a == auth.token_hash(ADMIN).encode() for a, _ in seen)
