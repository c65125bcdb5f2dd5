"""JSON shapes of the HTTP API (pydantic models: they validate requests and document the API in
OpenAPI at ``/openapi.json``). Times are seconds from the start of the recording; samples count
per channel at the recording's own rate.

A region's shape is built from the domain types, not written again: the ids of
:class:`~sonotype.store.rows.RegionRow`, the seconds of :class:`~sonotype.detection.regions.Region`
(``start_s``, ``stop_s``) and every field of ``Region`` (``start``/``stop`` named ``start_sample``/
``stop_sample``), then a person's label. :func:`region_values` fills it from the same lists.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model

from ..detection import regions as _domain
from ..store import EditRow, RegionRow

Author = Field(None, description="who makes the change (free text, stored with it; at most the name limit)")


class Info(BaseModel):
    version: str
    database: str = Field(description="the database's name (its full URL only with the edit token)")
    editing: bool = Field(description="whether this server accepts edits (started with an edit token)")
    limits: dict[str, float]


class Run(BaseModel):
    id: int
    model_id: int
    created_at: str
    settings: dict[str, Any]


class Recording(BaseModel):
    id: int
    path: str = Field(description="the file, relative to the server's audio root (the full server path only "
                                  "for requests carrying the edit token; outside the root: the file name)")
    name: str = Field(description="file name without folders")
    sample_rate: float
    channels: int
    channel_used: int | None
    frames: int
    duration_s: float
    format: str | None
    encounter: str | None
    site: str | None
    date: str | None
    metadata: dict[str, Any]
    latest_run_id: int | None = None
    n_regions: int | None = Field(None, description="regions of the latest run")


#: the API's names of the fields of :class:`~sonotype.detection.regions.Region` that differ from the domain's
#: (the API says which numbers are samples; its times are seconds)
REGION_NAMES = {"start": "start_sample", "stop": "stop_sample"}
#: properties of ``Region`` the API sends as well
REGION_SECONDS = ("start_s", "stop_s")


def region_fields(region_type: type = _domain.Region, row_type: type = RegionRow) -> dict[str, type]:
    """The API's region fields and their types, in order: the row's ids (every field of ``row_type``
    but the region itself), the seconds (:data:`REGION_SECONDS`), then every dataclass field of
    ``region_type`` under its API name (:data:`REGION_NAMES`)."""
    row, own = get_type_hints(row_type), get_type_hints(region_type)
    out = {f.name: row[f.name] for f in fields(row_type) if f.name != "region"}
    out.update({n: get_type_hints(getattr(region_type, n).fget)["return"] for n in REGION_SECONDS})
    out.update({REGION_NAMES.get(f.name, f.name): own[f.name] for f in fields(region_type)})
    return out


def region_values(row: RegionRow) -> dict[str, Any]:
    """The values of :func:`region_fields` for one stored region (the JSON of a region, less its label)."""
    g = row.region
    out = {f.name: getattr(row, f.name) for f in fields(row) if f.name != "region"}
    out.update({n: getattr(g, n) for n in REGION_SECONDS})
    out.update({REGION_NAMES.get(f.name, f.name): getattr(g, f.name) for f in fields(g)})
    return out


#: a person's verdict on a region, sent with it (None: not reviewed)
REGION_LABEL_FIELDS = {"label": (Literal["vocalisation", "noise"] | None, None), "note": (str | None, None),
                       "labelled_by": (str | None, None), "labelled_at": (str | None, None)}

#: a detected region as the API sends it: :func:`region_fields`, then :data:`REGION_LABEL_FIELDS`
Region = create_model("Region", __module__=__name__, **{n: (kind, ...) for n, kind in region_fields().items()},
                      **REGION_LABEL_FIELDS)


class RegionDetail(Region):
    recording: Recording
    clusters: list[dict[str, Any]] = Field(description="this region's cluster in every stored clustering")


class RecordingRegions(BaseModel):
    recording_id: int
    run_id: int | None
    band_hz: tuple[float, float] | None = Field(description="frequency band the detector looked at")
    regions: list[Region]


class Clustering(BaseModel):
    id: str = Field(description="opaque id of (run_id, algorithm, params) used in URLs")
    title: str = Field("", description="the clustering as a person reads it (run, algorithm, cut, sizes, encoder)")
    run_id: int
    algorithm: str
    params: dict[str, Any]
    n_regions: int
    n_clusters: int
    created_at: str | None


class Cluster(BaseModel):
    cluster: int
    name: str | None
    note: str | None
    size: int
    members: list[Region] = Field(description="the first members (see limit/offset)")


class ClusteringDetail(Clustering):
    clusters: list[Cluster]


class MapPoint(BaseModel):
    region_id: int
    x: float
    y: float
    recording_id: int
    start_s: float
    stop_s: float
    cluster: int | None = None


class RegionMap(BaseModel):
    run_id: int
    method: str
    points: list[MapPoint]


class SimilarHit(BaseModel):
    distance: float
    region: Region


class Similar(BaseModel):
    query: Region
    hits: list[SimilarHit]


#: one entry of the edit log, as stored (:class:`~sonotype.store.EditRow`): its fields written once, there
Edit = create_model("Edit", __module__=__name__,
                    **{f.name: (get_type_hints(EditRow)[f.name], ...) for f in fields(EditRow)})


# ---------------------------------------------------------------------------- request bodies

class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelIn(_In):
    label: Literal["vocalisation", "noise"] | None = Field(description="null withdraws the label")
    author: str | None = Author


class NoteIn(_In):
    note: str | None = Field(description="free text (at most the text limit); null clears it")
    author: str | None = Author


class NameIn(_In):
    name: str | None = Field(description="at most the name limit; null clears the name")
    author: str | None = Author


class MergeIn(_In):
    into: int = Field(description="the cluster that stays")
    other: int = Field(description="the cluster whose regions move into `into`")
    author: str | None = Author
    note: str | None = Field(None, description="free text (at most the text limit)")


class SplitIn(_In):
    region_ids: list[int] = Field(min_length=1, description="members moved to a new cluster (at most the split limit)")
    author: str | None = Author
    note: str | None = Field(None, description="free text (at most the text limit)")


class SplitOut(BaseModel):
    new_cluster: int
    moved: int


class MergeOut(BaseModel):
    into: int
    moved: int
