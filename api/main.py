"""The core API: one FastAPI app per process; the search index lives in `app.state.search`."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.bootstrap import search_service
from api.domain.intake import default_classifier
from api.routers import admin, gaps, handoffs, intake, kb, reports, search, workorders
from api.routers.chat import router as chat_router
from api.settings import Settings, get_settings
from kb.db import make_engine, session_factory
from kb.errors import KbError

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, clock: Callable[[], datetime] | None = None,
               watch: bool = True) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.db_url)
        app.state.session_factory = session_factory(engine)
        app.state.search = search_service(app.state.session_factory, settings)
        app.state.search.rebuild()
        if watch:
            app.state.search.start_watcher(settings.index_poll_seconds)
            # The intake models train in ~30 s; warm them now so the first citizen's complaint does not wait
            # (the bot gives the API 4 s per call).
            threading.Thread(target=default_classifier, name="intake-warmup", daemon=True).start()
        yield
        app.state.search.stop()
        engine.dispose()

    app = FastAPI(title="热线智能助手 core API", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.clock = clock

    @app.exception_handler(KbError)
    async def _kb_error(request: Request, exc: KbError) -> JSONResponse:
        return JSONResponse({"detail": exc.message, **exc.detail}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]}
                  for e in exc.errors()]
        first = errors[0] if errors else {"field": "", "message": ""}
        return JSONResponse({"detail": f"请求有误：{first['field']} {first['message']}".strip(), "errors": errors},
                            status_code=422)

    for r in (admin.router, search.router, kb.router, gaps.router, workorders.router, reports.router,
              intake.router, handoffs.router):
        app.include_router(r)
    app.include_router(chat_router)
    return app
