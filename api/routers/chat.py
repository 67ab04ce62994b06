"""The citizen web chat page. It talks to the Rasa socket.io channel directly; this API only serves it."""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

router = APIRouter(tags=["chat"])

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
PAGE = WEB_DIR / "chat.html"
# Installed by `npm install` in api/web (make setup): no CDN, the page must work on a government intranet.
SOCKET_IO_JS = WEB_DIR / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
RASA_URL_SLOT = "{{RASA_URL}}"


@router.get("/chat", response_class=HTMLResponse, include_in_schema=False)
def chat_page(request: Request) -> HTMLResponse:
    # read per request: the file is small, and edits show up without a restart
    page = PAGE.read_text(encoding="utf-8")
    rasa_url = escape(request.app.state.settings.rasa_url, quote=True)  # it lands in an HTML attribute
    return HTMLResponse(page.replace(RASA_URL_SLOT, rasa_url), headers={"Cache-Control": "no-cache"})


@router.get("/chat/socket.io.min.js", include_in_schema=False)
def socket_io_client() -> Response:
    if not SOCKET_IO_JS.is_file():
        return JSONResponse({"detail": "网页聊天所需的 socket.io 客户端尚未安装，请在项目根目录运行 make setup。"},
                            status_code=503)
    return FileResponse(SOCKET_IO_JS, media_type="text/javascript; charset=utf-8",
                        headers={"Cache-Control": "public, max-age=86400"})
