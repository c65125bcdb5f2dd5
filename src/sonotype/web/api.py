"""Read-only JSON endpoints: recordings, regions with scores and labels, runs, clusterings and their
clusters, embedding-map points, search by example and the edit log."""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request

from .. import __version__
from ..discovery.search import similar_regions
from ..errors import SonotypeError
from ..store import RecordingRow, RegionRow
from ..store.rows import RegionLabelRow
from . import schemas as S
from .context import (
    clustering_id,
    clustering_or_404,
    clustering_title,
    ctx_of,
    frontend_of_run,
    not_found,
    recording_or_404,
    region_or_404,
    run_for,
    within,
)

router = APIRouter(prefix="/api", tags=["read"])
_MAX_ID = 2 ** 62
Id = Annotated[int, Path(ge=0, le=_MAX_ID)]
Text = Annotated[str | None, Query(max_length=500)]
Page = Annotated[int, Query(ge=1, description="rows (at most the page limit)")]


def recording_json(rec: RecordingRow, *, latest_run_id: int | None = None, n_regions: int | None = None,
                   path: str | None = None) -> dict:
    """``path``: the path shown (default: the stored one; the server shows anonymous clients a relative one)."""
    return {"id": rec.id, "path": rec.path if path is None else path, "name": PurePath(rec.path).name, "sample_rate": rec.sample_rate,
            "channels": rec.channels, "channel_used": rec.channel_used, "frames": rec.frames,
            "duration_s": rec.duration_s, "format": rec.format, "encounter": rec.encounter, "site": rec.site,
            "date": rec.date, "metadata": rec.metadata or {}, "latest_run_id": latest_run_id, "n_regions": n_regions}


def region_json(row: RegionRow, label: RegionLabelRow | None = None) -> dict:
    """A region as :class:`~sonotype.web.schemas.Region` describes it (fields from the domain types)."""
    return {**S.region_values(row), "label": label.label if label else None, "note": label.note if label else None,
            "labelled_by": label.author if label else None, "labelled_at": label.at if label else None}


def recording_summary(request: Request, rec: RecordingRow) -> dict:
    ctx = ctx_of(request)
    store = ctx.store
    run = store.latest_run_id(rec.id)
    return recording_json(rec, latest_run_id=run, n_regions=None if run is None else store.count_regions(rec.id, run),
                          path=ctx.shown_path(request, rec.path))


@router.get("/info", response_model=S.Info, summary="Server version, database and whether edits are accepted")
def info(request: Request):
    ctx = ctx_of(request)
    return {"version": __version__, "database": ctx.database_label(request), "editing": ctx.edit_token is not None,
            "limits": {k: float(v) for k, v in vars(ctx.limits).items()}}


@router.get("/runs", response_model=list[S.Run], summary="Detection runs (model + settings)")
def runs(request: Request):
    return [{"id": r.id, "model_id": r.model_id, "created_at": r.created_at, "settings": r.settings}
            for r in ctx_of(request).store.runs()]


@router.get("/recordings", response_model=list[S.Recording], summary="Recordings, filtered by metadata")
def recordings(request: Request, encounter: Text = None, site: Text = None,
               date_from: Annotated[str | None, Query(max_length=40, description="ISO date or time, inclusive")] = None,
               date_to: Annotated[str | None, Query(max_length=40, description="ISO date (whole day) or time")] = None,
               q: Annotated[str | None, Query(max_length=500, description="substring of the file path")] = None,
               limit: Page = 100, offset: Annotated[int, Query(ge=0, le=_MAX_ID)] = 0):
    within(ctx_of(request), "page", limit=limit)
    store = ctx_of(request).store
    rows = store.recordings(encounter=encounter or None, site=site or None, date_from=date_from or None,
                            date_to=date_to or None, path_contains=q or None, limit=limit, offset=offset)
    return [recording_summary(request, r) for r in rows]


@router.get("/recordings/{recording_id}", response_model=S.Recording, summary="One recording")
def recording(request: Request, recording_id: Id):
    return recording_summary(request, recording_or_404(ctx_of(request), recording_id))


@router.get("/recordings/{recording_id}/regions", response_model=S.RecordingRegions,
            summary="A recording's detected regions with scores and labels (default: its latest run)")
def recording_regions(request: Request, recording_id: Id,
                      run_id: Annotated[int | None, Query(ge=0, le=_MAX_ID)] = None):
    ctx = ctx_of(request)
    rec = recording_or_404(ctx, recording_id)
    run = run_for(ctx, rec.id, run_id)
    if run is None:
        return {"recording_id": rec.id, "run_id": None, "band_hz": None, "regions": []}
    labels = ctx.store.region_labels(run_id=run, recording_id=rec.id)
    fe = frontend_of_run(ctx, run)
    band = None if fe is None else (fe.fmin, fe.fmax if fe.fmax is not None else rec.sample_rate / 2)
    return {"recording_id": rec.id, "run_id": run, "band_hz": band,
            "regions": [region_json(g, labels.get(g.id)) for g in ctx.store.regions(recording_id=rec.id, run_id=run)]}


@router.get("/regions/{region_id}", response_model=S.RegionDetail,
            summary="One region with its recording, label, note and cluster memberships")
def region(request: Request, region_id: Id):
    ctx = ctx_of(request)
    g = region_or_404(ctx, region_id)
    rec = recording_or_404(ctx, g.recording_id)
    clusters = [{"clustering_id": clustering_id(c.run_id, c.algorithm, c.params), "algorithm": c.algorithm,
                 "params": c.params, "cluster": c.cluster} for c in ctx.store.cluster_assignments(region_id=g.id)]
    return {**region_json(g, ctx.store.region_label(g.id)), "recording": recording_summary(request, rec),
            "clusters": clusters}


@router.get("/clusterings", response_model=list[S.Clustering], summary="Stored clusterings (sound types)")
def clusterings(request: Request, run_id: Annotated[int | None, Query(ge=0, le=_MAX_ID)] = None):
    return [{**c, "id": clustering_id(c["run_id"], c["algorithm"], c["params"]), "title": clustering_title(c)}
            for c in ctx_of(request).store.clusterings(run_id)]


@router.get("/clusterings/{cid}", response_model=S.ClusteringDetail,
            summary="One clustering: every cluster with its name, note, size and first members")
def clustering(request: Request, cid: Annotated[str, Path(max_length=64)],
               limit: Annotated[int, Query(ge=0, description="members listed per cluster (at most the page "
                                                        "limit)")] = 60,
               offset: Annotated[int, Query(ge=0, le=_MAX_ID)] = 0):
    ctx = ctx_of(request)
    within(ctx, "page", limit=limit)
    c = clustering_or_404(ctx, cid)
    members = ctx.store.cluster_members(c["run_id"], c["algorithm"], c["params"])
    names = ctx.store.cluster_names(c["run_id"], c["algorithm"], c["params"])
    regions = {g.id: g for g in ctx.store.regions(run_id=c["run_id"])}
    labels = ctx.store.region_labels(run_id=c["run_id"])
    out = []
    for cl in sorted(members, key=lambda k: (-len(members[k]), k)):
        shown = [regions[r] for r in members[cl][offset:offset + limit] if r in regions]
        nm = names.get(cl)
        out.append({"cluster": cl, "name": nm.name if nm else None, "note": nm.note if nm else None,
                    "size": len(members[cl]), "members": [region_json(g, labels.get(g.id)) for g in shown]})
    return {**c, "clusters": out}


@router.get("/runs/{run_id}/map", response_model=S.RegionMap,
            summary="Embedding-map points of a run's regions (with each one's cluster when a clustering is given)")
def region_map(request: Request, run_id: Id,
               method: Annotated[str, Query(pattern="^(tsne|umap)$", description="tsne or umap")] = "tsne",
               clustering: Annotated[str | None, Query(max_length=64, description="clustering id")] = None):
    ctx = ctx_of(request)
    if ctx.store.run(run_id) is None:
        raise not_found("run", run_id)
    of: dict[int, int] = {}
    if clustering:
        c = clustering_or_404(ctx, clustering)
        of = {r: cl for cl, rs in ctx.store.cluster_members(c["run_id"], c["algorithm"], c["params"]).items()
              for r in rs}
    pts = ctx.store.map_points(run_id=run_id, method=method)
    regions = {g.id: g for g in ctx.store.regions(run_id=run_id)} if pts else {}
    return {"run_id": run_id, "method": method,
            "points": [{"region_id": rid, "x": x, "y": y, "recording_id": regions[rid].recording_id,
                        "start_s": regions[rid].region.start_s, "stop_s": regions[rid].region.stop_s,
                        "cluster": of.get(rid)} for rid, (x, y) in pts.items() if rid in regions]}


@router.get("/regions/{region_id}/similar", response_model=S.Similar,
            summary="Search by example: the regions most like this one (DTW over embedding sequences)",
            responses={409: {"description": "the region has no stored embedding sequence (run `sonotype cluster`)"}})
def similar(request: Request, region_id: Id,
            k: Annotated[int, Query(ge=1, description="hits (at most the k limit)")] = 10):
    ctx = ctx_of(request)
    within(ctx, "k", k=k)
    g = region_or_404(ctx, region_id)
    try:
        hits = similar_regions(ctx.store, g.id, k=k)  # the index is cached per encoder between queries
    except SonotypeError as e:
        raise HTTPException(409, f"search by example for region {g.id}: {e}") from None
    out = []
    for rid, dist in hits:
        h = ctx.store.region(int(rid))
        if h is not None:
            out.append({"distance": float(dist), "region": region_json(h, ctx.store.region_label(h.id))})
    return {"query": region_json(g, ctx.store.region_label(g.id)), "hits": out}


@router.get("/edits", response_model=list[S.Edit], summary="The edit log (who changed what, when), newest first")
def edits(request: Request, target: Annotated[str | None, Query(pattern="^(region|cluster)$")] = None,
          target_id: Annotated[int | None, Query(ge=0, le=_MAX_ID)] = None,
          limit: Page = 100):
    within(ctx_of(request), "page", limit=limit)
    rows = ctx_of(request).store.edits(target=target, target_id=target_id)
    return [vars(e) for e in reversed(rows[-limit:])]
