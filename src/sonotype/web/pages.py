"""HTML pages (server-rendered with Jinja2, autoescaped) and the static JS/CSS they use.

Pages carry their data ids in ``data-`` attributes; the scripts fetch everything else from the JSON
API. No inline script and nothing from another site, so the Content-Security-Policy can be strict.
"""

from __future__ import annotations

from importlib import resources
from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from .. import __version__
from .api import recording_summary
from .context import (
    clustering_id,
    clustering_or_404,
    clustering_title,
    ctx_of,
    recording_or_404,
    region_or_404,
)

router = APIRouter(include_in_schema=False)
_env = Environment(loader=PackageLoader("sonotype.web", "templates"), autoescape=select_autoescape(default=True),
                   trim_blocks=True, lstrip_blocks=True)
Id = Annotated[int, Path(ge=0, le=2 ** 62)]
PAGE = 100

#: the only files under /static/, with their media types (a fixed list: no request path reaches the disk)
STATIC = {"common.js": "text/javascript", "recording.js": "text/javascript", "clusters.js": "text/javascript",
          "region.js": "text/javascript", "style.css": "text/css"}


def _render(request: Request, template: str, **values) -> HTMLResponse:
    ctx = ctx_of(request)
    html = _env.get_template(template).render(editing=ctx.edit_token is not None, version=__version__,
                                              database=ctx.database_label(request), **values)
    return HTMLResponse(html)


@router.get("/", response_class=HTMLResponse)
def recordings_page(request: Request, q: Annotated[str, Query(max_length=500)] = "",
                    encounter: Annotated[str, Query(max_length=500)] = "",
                    site: Annotated[str, Query(max_length=500)] = "",
                    date_from: Annotated[str, Query(max_length=40)] = "",
                    date_to: Annotated[str, Query(max_length=40)] = "",
                    page: Annotated[int, Query(ge=0, le=10 ** 6)] = 0):
    store = ctx_of(request).store
    rows = store.recordings(path_contains=q or None, encounter=encounter or None, site=site or None,
                            date_from=date_from or None, date_to=date_to or None, limit=PAGE + 1,
                            offset=page * PAGE)
    form = {"q": q, "encounter": encounter, "site": site, "date_from": date_from, "date_to": date_to}
    return _render(request, "recordings.html", title="Recordings", form=form, page=page,
                   more=len(rows) > PAGE, recordings=[recording_summary(request, r) for r in rows[:PAGE]])


@router.get("/recordings/{recording_id}", response_class=HTMLResponse)
def recording_page(request: Request, recording_id: Id,
                   run_id: Annotated[int | None, Query(ge=0, le=2 ** 62)] = None):
    ctx = ctx_of(request)
    rec = recording_summary(request, recording_or_404(ctx, recording_id))
    runs = sorted({p.run_id for p in ctx.store.processed(status="done") if p.recording_id == recording_id})
    run = run_id if run_id is not None else rec["latest_run_id"]
    return _render(request, "recording.html", title=rec["name"], rec=rec, runs=runs, run_id=run)


@router.get("/clusters", response_class=HTMLResponse)
def clusters_page(request: Request, c: Annotated[str, Query(max_length=64)] = "",
                  method: Annotated[str, Query(pattern="^(tsne|umap)$")] = "tsne"):
    ctx = ctx_of(request)
    all_ = [{**x, "id": clustering_id(x["run_id"], x["algorithm"], x["params"]), "title": clustering_title(x)}
            for x in ctx.store.clusterings()]
    chosen = clustering_or_404(ctx, c) if c else (all_[-1] if all_ else None)
    return _render(request, "clusters.html", title="Sound types", clusterings=all_, chosen=chosen, method=method)


@router.get("/regions/{region_id}", response_class=HTMLResponse)
def region_page(request: Request, region_id: Id):
    ctx = ctx_of(request)
    g = region_or_404(ctx, region_id)
    rec = recording_or_404(ctx, g.recording_id)
    return _render(request, "region.html", title=f"Region {g.id}", region=g, rec_name=PurePath(rec.path).name)


@router.get("/api-docs", response_class=HTMLResponse)
def api_page(request: Request):
    """The API reference, rendered here from the OpenAPI document (works offline, unlike /docs)."""
    spec = request.app.openapi()
    ops = []
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            params = [(p["name"], p["in"], p.get("required", False), p.get("description", ""))
                      for p in op.get("parameters", [])]
            ops.append({"method": method.upper(), "path": path, "summary": op.get("summary", ""),
                        "tag": (op.get("tags") or [""])[0], "params": params,
                        "body": "requestBody" in op})
    return _render(request, "api.html", title="API", ops=ops)


@router.get("/static/{name}")
def static(name: Annotated[str, Path(max_length=40)]):
    if name not in STATIC:
        raise HTTPException(404, f"no static file {name!r}")
    return Response(_static_bytes(name), media_type=STATIC[name], headers={"Cache-Control": "no-cache"})


_CACHE: dict[str, bytes] = {}


def _static_bytes(name: str) -> bytes:
    if name not in _CACHE:
        _CACHE[name] = resources.files("sonotype.web").joinpath("static", name).read_bytes()
    return _CACHE[name]
