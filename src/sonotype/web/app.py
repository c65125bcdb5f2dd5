"""The application factory and ``serve``: a FastAPI app over one open store."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware

from .. import __version__
from ..errors import AudioError, ConfigError, SonotypeError
from ..store import Store, StoreError, open_store
from . import api, edit, media, pages
from .context import Limits, ServerContext

TOKEN_ENV = "SONOTYPE_EDIT_TOKEN"
_CSP = ("default-src 'self'; img-src 'self' data:; media-src 'self'; script-src 'self'; style-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_CDN_PAGES = ("/docs", "/redoc")  # FastAPI's own API pages load Swagger UI / ReDoc from a CDN


def create_app(store: Store | str, *, edit_token: str | None = None, audio_root: str | Path | None = None,
               limits: Limits | None = None, allowed_hosts: list[str] | None = None) -> FastAPI:
    """The web application over ``store`` (an open :class:`~sonotype.store.Store` or a database URL).

    ``edit_token`` None (or empty) -> read-only. ``audio_root``: where relative recording paths are
    found (default: the current directory). ``allowed_hosts``: accepted ``Host`` headers (None: any).
    """
    if isinstance(store, str):
        store = open_store(store)
    app = FastAPI(title="sonotype", version=__version__,
                  description="Recordings, detected regions, sound types and curation of a sonotype database. "
                              "Audio and pictures are addressed by database ids only. Edits need the "
                              "server's token in the X-Sonotype-Token header.")
    app.state.ctx = ServerContext(store=store, edit_token=edit_token or None,
                                  audio_root=Path(audio_root) if audio_root else Path.cwd(),
                                  limits=limits or Limits())
    for r in (api.router, media.router, edit.router, pages.router):
        app.include_router(r)
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if not request.url.path.startswith(_CDN_PAGES):
            response.headers.setdefault("Content-Security-Policy", _CSP)
        return response

    @app.exception_handler(SonotypeError)
    def sonotype_error(request: Request, exc: SonotypeError):
        status = 409 if isinstance(exc, AudioError) else 400 if isinstance(exc, ConfigError) else \
            500 if isinstance(exc, StoreError) else 400
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return app


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(db: str, *, host: str = "127.0.0.1", port: int = 8000, edit_token: str | None = None,
          audio_root: str | Path | None = None, log: Callable[[str], None] = print) -> None:
    """Run the web application over database ``db`` until interrupted.

    The edit token is ``edit_token``, else the ``SONOTYPE_EDIT_TOKEN`` environment variable; without
    one the server is read-only. On a loopback address only local ``Host`` names are accepted
    (a guard against DNS rebinding).
    """
    import uvicorn

    if not 0 < int(port) < 65536:
        raise ConfigError(f"port must be 1..65535, got {port!r}")
    token = edit_token or os.environ.get(TOKEN_ENV) or None
    store = open_store(db, must_exist=True)
    hosts = ["127.0.0.1", "localhost", "::1", "[::1]"] if _loopback(host) else None
    app = create_app(store, edit_token=token, audio_root=audio_root, allowed_hosts=hosts)
    shown = f"[{host}]" if ":" in host else host
    log(f"sonotype: {store.label} at http://{shown}:{port}/  (API: http://{shown}:{port}/api-docs, "
        f"/openapi.json); " + ("edits allowed with the token" if token else
                              f"read-only: give --edit-token or {TOKEN_ENV} to allow edits"))
    if token and not _loopback(host):
        log("sonotype: warning: the edit token travels in plain HTTP; put the server behind HTTPS "
            "when it listens beyond this machine")
    try:
        uvicorn.run(app, host=host, port=int(port), log_level="warning")
    finally:
        store.close()
