"""The application factory and ``serve``: a FastAPI app over one open store."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from .. import __version__
from ..errors import AudioError, ConfigError, NotFound, SonotypeError
from ..store import Store, StoreError, open_store
from . import api, edit, media, pages
from .context import Limits, ServerContext, truncate

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
    if allowed_hosts:  # answers 400 to any other Host header
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

    ctx: ServerContext = app.state.ctx
    echo = int(ctx.limits.echo)

    def message(request: Request, text: str) -> str:  # no server paths for anonymous clients, no huge echoes
        return truncate(ctx.scrub(request, text), 4 * echo)

    @app.exception_handler(SonotypeError)
    def sonotype_error(request: Request, exc: SonotypeError):
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, AudioError) else \
            400 if isinstance(exc, ConfigError) else 500 if isinstance(exc, StoreError) else 400
        return JSONResponse({"detail": message(request, str(exc))}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException):
        detail = message(request, exc.detail) if isinstance(exc.detail, str) else exc.detail
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, exc: RequestValidationError):
        """422 naming each bad field; a value is repeated only up to ``limits.echo`` characters."""
        errors = []
        for e in exc.errors()[:20]:
            e = {k: v for k, v in e.items() if k in ("type", "loc", "msg", "input", "ctx")}
            e["msg"] = truncate(e.get("msg", ""), echo)
            if "input" in e:
                e["input"] = e["input"] if isinstance(e["input"], (int, float, bool)) or e["input"] is None \
                    else truncate(e["input"], echo)
            if "ctx" in e:
                e["ctx"] = {k: truncate(v, echo) for k, v in dict(e["ctx"]).items()}
            e["loc"] = [x if isinstance(x, int) else truncate(x, echo) for x in e.get("loc", ())]
            errors.append(e)
        return JSONResponse({"detail": errors}, status_code=422)

    return app


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def allowed_hosts_for(host: str, allowed: Iterable[str] | None = None, *, any_host: bool = False) -> list[str] | None:
    """The ``Host`` headers a server bound to ``host`` accepts (None: any, only with ``any_host``).

    Loopback bind: the local names (a guard against DNS rebinding) plus ``allowed``. Other binds: the
    local names, this machine's host name and the bound address (when it is one address), plus
    ``allowed``; every other Host is refused (400) unless ``any_host`` says so explicitly.
    """
    if any_host:
        return None
    hosts = list(LOCAL_HOSTS)
    if not _loopback(host):
        name = socket.gethostname()
        hosts += [n for n in {name, name.split(".")[0], socket.getfqdn()} if n]
        if not _wildcard(host):
            hosts += [host, f"[{host}]"] if ":" in host else [host]
    for h in allowed or ():
        h = str(h).strip()
        if not h or any(c in h for c in "/ @"):
            raise ConfigError(f"--allowed-host must be a host name or address (no scheme, port or path), got {h!r}")
        hosts.append(h)
    return list(dict.fromkeys(hosts))


def _wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return host in ("", "*")


def exposure_warning(host: str, port: int, *, token: str | None, hosts: list[str] | None) -> str:
    """The warning printed when the server listens beyond this machine."""
    where = "every network interface" if _wildcard(host) else f"address {host}"
    lines = [f"sonotype: WARNING: listening on {where} (port {port}), not only on this machine.",
             ("  Anyone who can reach this port can list every recording and region, read their metadata, "
              "see the spectrograms and download the audio: reads need no token."),
             ("  Protect it: keep it on 127.0.0.1 and use an SSH tunnel (ssh -L 8000:127.0.0.1:8000 HOST), or put "
              "it behind a reverse proxy (nginx, Caddy) that adds HTTPS and a login.")]
    lines.append("  Edits: allowed only with the edit token, which travels in plain HTTP here; use HTTPS (the proxy)."
                 if token else "  Edits: off (read-only); --edit-token TOKEN allows them, and shows full server paths "
                               "only to requests carrying it.")
    lines.append("  Host check: any Host header is accepted (--allow-any-host)." if hosts is None else
                 f"  Host check: only requests for {', '.join(hosts)} are answered; add names with "
                 "--allowed-host NAME (or --allow-any-host).")
    return "\n".join(lines)


def serve(db: str, *, host: str = "127.0.0.1", port: int = 8000, edit_token: str | None = None,
          audio_root: str | Path | None = None, allowed_hosts: Iterable[str] | None = None,
          any_host: bool = False, limits: Limits | None = None, log: Callable[[str], None] = print,
          warn: Callable[[str], None] | None = None) -> None:
    """Run the web application over database ``db`` until interrupted.

    The edit token is ``edit_token``, else the ``SONOTYPE_EDIT_TOKEN`` environment variable; without
    one the server is read-only. Only the ``Host`` names of :func:`allowed_hosts_for` are answered
    (a guard against DNS rebinding), on any address. Listening beyond this machine prints a warning
    (``warn``, default: standard error) saying what is exposed and how to protect it.
    """
    import uvicorn

    if not 0 < int(port) < 65536:
        raise ConfigError(f"port must be 1..65535, got {port!r}")
    token = edit_token or os.environ.get(TOKEN_ENV) or None
    hosts = allowed_hosts_for(host, allowed_hosts, any_host=any_host)
    store = open_store(db, must_exist=True)
    app = create_app(store, edit_token=token, audio_root=audio_root, allowed_hosts=hosts, limits=limits)
    shown = f"[{host}]" if ":" in host else host
    log(f"sonotype: {store.label} at http://{shown}:{port}/  (API: http://{shown}:{port}/api-docs, "
        f"/openapi.json); " + ("edits allowed with the token" if token else
                              f"read-only: give --edit-token or {TOKEN_ENV} to allow edits"))
    if not _loopback(host):
        (warn or (lambda m: print(m, file=sys.stderr, flush=True)))(
            exposure_warning(host, int(port), token=token, hosts=hosts))
    try:
        uvicorn.run(app, host=host, port=int(port), log_level="warning")
    finally:
        store.close()
