"""Row types the store returns (frozen dataclasses) and the small value helpers it shares.

Nothing here touches the database; :mod:`sonotype.store.store` does.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from ..detection.regions import Region
from ..errors import ConfigError, SonotypeError


class StoreError(SonotypeError):
    """The result database refused or failed an operation (constraint, connection, schema)."""


@dataclass(frozen=True)
class RecordingRow:
    id: int
    path: str
    content_hash: str
    sample_rate: float
    channels: int
    frames: int
    duration_s: float
    channel_used: int | None
    format: str | None
    metadata: dict = field(default_factory=dict)
    encounter: str | None = None
    site: str | None = None
    date: str | None = None
    added_at: str = ""
    paths: tuple[str, ...] = ()  # every path these bytes were read from (``path`` first)


@dataclass(frozen=True)
class ModelRow:
    id: int
    version: str
    path: str | None
    kind: str | None
    config: dict
    training_data: dict
    metrics: dict
    created_at: str


@dataclass(frozen=True)
class RunRow:
    id: int
    model_id: int
    settings: dict
    settings_hash: str
    created_at: str


@dataclass(frozen=True)
class ProcessedRow:
    recording_id: int
    run_id: int
    status: str  # 'done' | 'failed'
    n_windows: int | None
    n_regions: int | None
    seconds: float | None
    error: str | None
    finished_at: str


@dataclass(frozen=True)
class FailureRow:
    id: int
    run_id: int | None
    recording_id: int | None
    path: str
    error: str
    at: str


@dataclass(frozen=True)
class RegionRow:
    """One stored region; ``run_id`` names the model and settings that produced it."""

    id: int
    recording_id: int
    run_id: int
    region: Region


@dataclass(frozen=True)
class ClusterRow:
    id: int
    region_id: int
    run_id: int
    algorithm: str
    params: dict
    cluster: int
    created_at: str


@dataclass(frozen=True)
class EditRow:
    id: int
    target: str
    target_id: int | None
    field: str
    old_value: Any
    new_value: Any
    author: str | None
    at: str
    note: str | None


# ---------------------------------------------------------------------------- value helpers


def now_iso() -> str:
    """Current UTC time, ISO-8601 with microseconds (sorts as text)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (_dt.datetime, _dt.date, _dt.time)):
        return obj.isoformat()
    if isinstance(obj, PurePath):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return obj.item()
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy array
        return obj.tolist()
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return obj.to_dict()
    raise TypeError(f"cannot store {type(obj).__name__} value {obj!r} as JSON")


def dumps(obj: Any) -> str:
    """Canonical JSON text (sorted keys, no spaces); ``None`` -> ``{}``."""
    try:
        return json.dumps({} if obj is None else obj, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"value is not JSON-serialisable ({e}); pass dicts of str/number/bool/list/None, "
                          "dates or paths") from None


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(dumps(obj).encode("utf-8")).hexdigest()


def meta_text(value: Any) -> str | None:
    """A metadata value as the text kept in a filterable column (dates as ISO-8601)."""
    if value is None:
        return None
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    return str(value)


def opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def like_pattern(fragment: str) -> str:
    """``%fragment%`` for ``LIKE ... ESCAPE '!'`` with the wildcards in ``fragment`` escaped."""
    esc = str(fragment).replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%{esc}%"


# ---------------------------------------------------------------------------- curation rows

#: the labels a person may give a region (``None`` = not reviewed / label withdrawn)
REGION_LABELS = ("vocalisation", "noise")


@dataclass(frozen=True)
class RegionLabelRow:
    """A person's verdict on one region: ``label`` in :data:`REGION_LABELS` or None, a free-text note."""

    region_id: int
    label: str | None
    note: str | None
    author: str | None
    at: str  # ISO-8601 UTC of the latest change


@dataclass(frozen=True)
class ClusterNameRow:
    """A person's name and note for cluster ``cluster`` of the clustering (run_id, algorithm, params)."""

    run_id: int
    algorithm: str
    params: dict
    cluster: int
    name: str | None
    note: str | None
    author: str | None
    at: str
