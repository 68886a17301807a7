"""The cluster server: ``create_cluster_app`` (receiving endpoint and the cluster views of
``cluster_routes``) and ``run()`` (`shopfloor cluster --config FILE`).

``POST /api/v1/federation/aggregates`` takes one ``Aggregate`` from an enterprise with its
own bearer token (compared as SHA-256 in constant time, ``auth.HashedSecret``): no or an
unknown token is 401, another enterprise's is 403, each logged with the client address
and never the token. It answers with what the upsert did (new, replaced, duplicate,
stale), so a resend is harmless.
"""

from __future__ import annotations

import logging
import signal
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shopfloor import __version__
from shopfloor.config import load_config
from shopfloor.server import auth

from .aggregates import Aggregate
from .config import ClusterConfig, EnterpriseAccount
from .store import ClusterStore

log = logging.getLogger("shopfloor.cluster")
_bearer = HTTPBearer(auto_error=False)


@dataclass
class ClusterState:
    config: ClusterConfig
    database: Path
    store: ClusterStore | None = None
    names: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def of(request: Request) -> ClusterState:
        return request.app.state.cluster


def _account(cfg: ClusterConfig, presented: str) -> EnterpriseAccount | None:
    """The enterprise whose credential this is; every account compared (constant time)."""
    found = None
    for acc in cfg.enterprises:
        if acc.matches(presented) and found is None:
            found = acc
    return found


def create_cluster_app(cfg: ClusterConfig, base_dir: Path = Path(".")) -> FastAPI:
    from .cluster_routes import router

    db = cfg.database if cfg.database.is_absolute() else base_dir / cfg.database
    state = ClusterState(cfg, db, names={a.id: a.name or a.id for a in cfg.enterprises})

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        outer = state.store  # lifespans may nest (test clients)
        store = state.store = ClusterStore(db)
        try:
            yield
        finally:
            store.close()
            state.store = outer

    app = FastAPI(title="shopfloor cluster", version=__version__, lifespan=lifespan,
                  description="Aggregates federated by enterprises; the cluster's "
                              "indicators over time and reports.")
    app.state.cluster = state

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v1/federation/aggregates", tags=["federation"])
    def receive(agg: Aggregate, request: Request, cred: Annotated[
            HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> dict[str, Any]:
        """Store one enterprise's aggregate of one period (an upsert by enterprise, period
        and label; an older revision than the one held is ignored)."""
        who = request.client.host if request.client else "?"
        if cred is None:
            log.warning("refused a push from %s: no credential", who)
            raise HTTPException(401, "send Authorization: Bearer <enterprise token>",
                                headers={"WWW-Authenticate": "Bearer"})
        acc = _account(cfg, cred.credentials)
        if acc is None:
            log.warning("refused a push from %s for enterprise %r: unknown credential",
                        who, agg.enterprise)
            raise HTTPException(401, "unknown enterprise credential",
                                headers={"WWW-Authenticate": "Bearer"})
        if acc.id != agg.enterprise:
            log.warning("refused a push from %s: enterprise %r's credential used for %r",
                        who, acc.id, agg.enterprise)
            raise HTTPException(403, f"this credential is enterprise {acc.id!r}'s")
        assert state.store is not None
        outcome = state.store.put(agg)
        # the running periods are replaced every round: only news at info
        log.log(logging.INFO if outcome in ("new", "stale") else logging.DEBUG,
                "%s %s %s revision %d: %s", agg.enterprise, agg.period, agg.label,
                agg.revision, outcome)
        return {"enterprise": agg.enterprise, "period": agg.period, "label": agg.label,
                "revision": agg.revision, "outcome": outcome}

    app.include_router(router, dependencies=[auth.requirer(cfg.auth)("read")])
    return app


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # exit 0 on SIGTERM, as `shopfloor server`


def run(config_path: Path | str) -> None:
    import uvicorn

    signal.signal(signal.SIGTERM, _stop)
    config_path = Path(config_path)
    cfg = load_config(config_path, ClusterConfig)
    app = create_cluster_app(cfg, config_path.parent)
    log.info("cluster %r serving on http://%s:%d", cfg.name, cfg.http.host, cfg.http.port)
    uvicorn.run(app, host=cfg.http.host, port=cfg.http.port, log_level="warning")
