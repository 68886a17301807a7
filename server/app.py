"""The metrics server: ``create_app`` (the REST API of ``api/`` and the built-in
dashboard) and ``run()``."""

from __future__ import annotations

import logging
import signal
import time
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from shopfloor import __version__
from shopfloor.config import load_config
from shopfloor.server import auth, kernels
from shopfloor.server.api import ROUTERS
from shopfloor.server.api.deps import ServerState
from shopfloor.server.config import ServerConfig
from shopfloor.server.federation.aggregates import enterprise_of
from shopfloor.server.federation.enterprise import open_uplink
from shopfloor.server.operations.service import open_operations
from shopfloor.server.registry import Registry
from shopfloor.server.rollup import open_rollups
from shopfloor.storage import open_reader

log = logging.getLogger("shopfloor.server")
STATIC = Path(__file__).parent / "static"


def create_app(cfg: ServerConfig, base_dir: Path = Path(".")) -> FastAPI:
    """The app on ``cfg`` (the registry path relative to ``base_dir``); the store is
    opened by its lifespan, after every kernel is compiled."""
    registry_path = cfg.registry if cfg.registry.is_absolute() else base_dir / cfg.registry
    state = ServerState(cfg, Registry.load(registry_path), registry_path)
    if cfg.federation is not None:
        enterprise_of(state.registry, cfg.federation)  # a wrong id fails at start

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        t = time.perf_counter()
        kernels.warm_up()
        log.info("kernels ready in %.2fs", time.perf_counter() - t)
        outer = state.reader, state.rollups, state.operations  # lifespans may nest (tests)
        reader = state.reader = open_reader(cfg.store)
        state.rollups, maintainer = open_rollups(cfg, reader, state.registry)
        if maintainer is not None:
            maintainer.start()
        state.operations = open_operations(cfg, base_dir, reader, state.rollups,
                                           state.registry)
        uplink = state.uplink = open_uplink(cfg, base_dir, state.registry, state.source)
        if uplink is not None:
            uplink.start()
        try:
            yield
        finally:
            if uplink is not None:
                uplink.stop()
                state.uplink = None
            state.operations.close()
            if maintainer is not None:
                maintainer.stop()
            if state.rollups is not None:
                state.rollups.buckets.close()
            state.reader, state.rollups, state.operations = outer
            close = getattr(reader, "close", None)
            if close:
                close()

    app = FastAPI(title="shopfloor", version=__version__, lifespan=lifespan,
                  description="OEE and digitalization metrics from shop-floor data.")
    app.state.shopfloor = state
    require = auth.requirer(cfg.auth)
    for router, scope in ROUTERS:
        app.include_router(router, dependencies=[] if scope is None else [require(scope)])
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # `shopfloor server` exits 0


def run(config_path: Path | str) -> None:
    import uvicorn

    # uvicorn stops gracefully on SIGTERM, then raises it again under the handler it found:
    # the default one would end the process with 143; as for SIGINT, exit 0
    signal.signal(signal.SIGTERM, _stop)
    config_path = Path(config_path)
    cfg = load_config(config_path, ServerConfig)
    app = create_app(cfg, config_path.parent)
    log.info("serving on http://%s:%d", cfg.http.host, cfg.http.port)
    uvicorn.run(app, host=cfg.http.host, port=cfg.http.port, log_level="warning")
