"""Curation endpoints: relabel a region, notes, rename, merge and split clusters. Each change is stored
with who and when, and logged in the ``edits`` table.

Read-only unless the server was started with an edit token; then every request that changes the
database must carry it in the ``X-Sonotype-Token`` header (compared in constant time). A custom
header cannot be sent by another web site's page (no CORS is allowed), so the token also guards
against cross-site requests.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Request

from ..errors import ConfigError, NotFound
from ..store import StoreError
from . import schemas as S
from .api import region_json
from .context import clustering_or_404, ctx_of, region_or_404, within

TOKEN_HEADER = "X-Sonotype-Token"


def require_token(request: Request,
                  x_sonotype_token: Annotated[str | None, Header(max_length=1000,
                                                                 description="the server's edit token")] = None):
    """403 unless editing is enabled and the request carries the right token."""
    expected = ctx_of(request).edit_token
    if expected is None:
        raise HTTPException(403, "this server is read-only; restart it with --edit-token TOKEN (or the "
                                 "SONOTYPE_EDIT_TOKEN environment variable) to allow edits")
    given = (x_sonotype_token or "").encode("utf-8")
    if not hmac.compare_digest(given, expected.encode("utf-8")):
        raise HTTPException(403, f"missing or wrong edit token; send the token the server was started with in "
                                 f"the {TOKEN_HEADER} header")


router = APIRouter(prefix="/api", tags=["curation"], dependencies=[Depends(require_token)],
                   responses={403: {"description": "read-only server, or missing/wrong edit token"}})
Id = Annotated[int, Path(ge=0, le=2 ** 62)]
Cid = Annotated[str, Path(max_length=64)]
Cluster = Annotated[int, Path(ge=-(2 ** 31), le=2 ** 31 - 1)]


#: which of the server's limits bounds each field of a request body
_FIELD_LIMITS = {"author": "name", "name": "name", "note": "text", "region_ids": "split"}


def _within_limits(request: Request, body: S.BaseModel) -> None:
    """422 when a field of ``body`` is longer than the server's limits allow (see :class:`Limits`)."""
    ctx = ctx_of(request)
    for name, limit in _FIELD_LIMITS.items():
        if name in type(body).model_fields:
            within(ctx, limit, **{name: getattr(body, name)})


def _author(value: str | None) -> str | None:
    return None if value is None or not value.strip() else value.strip()


@contextmanager
def _refusals() -> Iterator[None]:
    """The store's refusals of an edit as HTTP answers: no such region or cluster 404, a bad value or a
    database that cannot take the change (read-only, constraint) 400."""
    try:
        yield
    except NotFound as e:
        raise HTTPException(404, str(e)) from None
    except (ConfigError, StoreError) as e:
        raise HTTPException(400, str(e)) from None


@router.post("/token", status_code=204, summary="Check an edit token (204 when it is right)")
def check_token():
    return None


def _set_region_text(request: Request, region_id: int, body, setter: str, value) -> dict:
    """Label (``setter`` 'set_region_label') or annotate ('set_region_note') one region; its JSON after."""
    _within_limits(request, body)
    ctx = ctx_of(request)
    g = region_or_404(ctx, region_id)
    with _refusals():
        row = getattr(ctx.store, setter)(g.id, value, author=_author(body.author))
    return region_json(g, row)


@router.put("/regions/{region_id}/label", response_model=S.Region,
            summary="Label a region vocalisation or noise (null withdraws the label)")
def put_label(request: Request, region_id: Id, body: S.LabelIn):
    return _set_region_text(request, region_id, body, "set_region_label", body.label)


@router.put("/regions/{region_id}/note", response_model=S.Region, summary="Attach a free-text note to a region")
def put_region_note(request: Request, region_id: Id, body: S.NoteIn):
    return _set_region_text(request, region_id, body, "set_region_note", body.note)


def _set_cluster_text(request: Request, cid: str, cluster: int, field: str, value: str | None,
                      author: str | None) -> dict:
    """Name (``field`` 'name') or annotate ('note') one cluster of a clustering."""
    ctx = ctx_of(request)
    c = clustering_or_404(ctx, cid)
    setter = ctx.store.set_cluster_name if field == "name" else ctx.store.set_cluster_note
    with _refusals():
        row = setter(c["run_id"], c["algorithm"], c["params"], cluster, value, author=_author(author))
    return {"cluster": row.cluster, "name": row.name, "note": row.note, "author": row.author, "at": row.at}


@router.put("/clusterings/{cid}/clusters/{cluster}/name", summary="Name a cluster (a sound type)")
def put_cluster_name(request: Request, cid: Cid, cluster: Cluster, body: S.NameIn) -> dict:
    _within_limits(request, body)
    return _set_cluster_text(request, cid, cluster, "name", body.name, body.author)


@router.put("/clusterings/{cid}/clusters/{cluster}/note", summary="Attach a free-text note to a cluster")
def put_cluster_note(request: Request, cid: Cid, cluster: Cluster, body: S.NoteIn) -> dict:
    _within_limits(request, body)
    return _set_cluster_text(request, cid, cluster, "note", body.note, body.author)


@router.post("/clusterings/{cid}/merge", response_model=S.MergeOut,
             summary="Merge cluster `other` into cluster `into` (all its regions move)")
def merge(request: Request, cid: Cid, body: S.MergeIn):
    _within_limits(request, body)
    ctx = ctx_of(request)
    c = clustering_or_404(ctx, cid)
    with _refusals():
        moved = ctx.store.merge_clusters(c["run_id"], c["algorithm"], c["params"], into=body.into, other=body.other,
                                         author=_author(body.author), note=body.note)
    return {"into": body.into, "moved": moved}


@router.post("/clusterings/{cid}/clusters/{cluster}/split", response_model=S.SplitOut,
             summary="Split a cluster: the given member regions move to a new cluster")
def split(request: Request, cid: Cid, cluster: Cluster, body: S.SplitIn):
    _within_limits(request, body)
    ctx = ctx_of(request)
    c = clustering_or_404(ctx, cid)
    with _refusals():
        new = ctx.store.split_cluster(c["run_id"], c["algorithm"], c["params"], cluster, body.region_ids,
                                      author=_author(body.author), note=body.note)
    return {"new_cluster": new, "moved": len(set(body.region_ids))}
