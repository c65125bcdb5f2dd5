"""What every request handler shares: the open store, the edit token, limits, and the lookups that
turn ids from a request into database rows and registered audio files (never a path from the request)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from fastapi import HTTPException, Request

from ..errors import AudioError, ConfigError
from ..features import FrontEnd
from ..io import AudioInfo, audio_info
from ..render import levels, span_columns
from ..store import RecordingRow, RegionRow, Store


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask for (seconds, pixels, counts, characters)."""

    spectrogram_s: float = 120.0  # longest span of one spectrogram picture
    audio_s: float = 3600.0  # longest span of one audio response (a longer file is served in spans)
    pad_s: float = 2.0  # most padding around a region
    width: int = 4000  # pixels
    height: int = 1024  # pixels
    k: int = 100  # search-by-example results
    page: int = 1000  # rows per listing
    text: int = 4000  # characters of a note
    name: int = 200  # characters of a name or author
    split: int = 10000  # region ids moved by one split


@dataclass
class ServerContext:
    """State of one running application: ``edit_token`` None means read-only."""

    store: Store
    edit_token: str | None = None
    audio_root: Path = field(default_factory=Path.cwd)
    limits: Limits = field(default_factory=Limits)


def ctx_of(request: Request) -> ServerContext:
    return request.app.state.ctx


def not_found(what: str, key) -> HTTPException:
    return HTTPException(status_code=404, detail=f"{what} {key} does not exist in this database")


def bad_request(message: str, status: int = 400) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def recording_or_404(ctx: ServerContext, recording_id: int) -> RecordingRow:
    rec = ctx.store.recording(recording_id)
    if rec is None:
        raise not_found("recording", recording_id)
    return rec


def region_or_404(ctx: ServerContext, region_id: int) -> RegionRow:
    reg = ctx.store.region(region_id)
    if reg is None:
        raise not_found("region", region_id)
    return reg


def run_for(ctx: ServerContext, recording_id: int, run_id: int | None) -> int | None:
    """``run_id`` checked to exist, or the latest run with a finished result for the recording."""
    if run_id is None:
        return ctx.store.latest_run_id(recording_id)
    if ctx.store.run(run_id) is None:
        raise not_found("run", run_id)
    return int(run_id)


def frontend_of_run(ctx: ServerContext, run_id: int | None) -> FrontEnd | None:
    """The front end a detection run used (``runs.settings['frontend']``), or None."""
    run = None if run_id is None else ctx.store.run(run_id)
    d = (run.settings or {}).get("frontend") if run is not None else None
    try:
        return FrontEnd.from_dict(d) if isinstance(d, dict) else None
    except (ConfigError, TypeError):
        return None


@dataclass(frozen=True)
class Audio:
    """A registered recording's file, checked to be there and to match what the database says."""

    path: str
    channel: int
    sample_rate: int  # Hz
    frames: int  # samples per channel
    pcm16: bool  # True: the file holds 16-bit (or smaller) integers, served exactly as 16-bit PCM


def audio_of(ctx: ServerContext, rec: RecordingRow) -> Audio:
    """The file of a registered recording. The path comes from the database only; a relative one is
    taken from the server's audio root. Missing file -> 404; changed or unreadable file -> 409."""
    p = Path(rec.path)
    if not p.is_absolute():
        p = ctx.audio_root / p
    if not p.is_file():
        raise HTTPException(404, f"the audio of recording {rec.id} is not at {p}; start the server where the "
                                 "recordings are, or give --audio-root for relative paths")
    try:
        info: AudioInfo = audio_info(p)
    except AudioError as e:
        raise HTTPException(409, f"recording {rec.id}: {e}") from None
    exact = info.decoder == "soundfile"
    if int(info.sample_rate) != round(rec.sample_rate) or (exact and info.frames != rec.frames):
        raise HTTPException(409, f"recording {rec.id}: {p} now has {info.frames} samples at {info.sample_rate} Hz "
                                 f"but was registered with {rec.frames} at {rec.sample_rate:g} Hz; the file changed "
                                 "since detection: run `sonotype detect` on it again")
    channel = rec.channel_used if rec.channel_used is not None and rec.channel_used < info.channels else 0
    return Audio(str(p), int(channel), int(info.sample_rate), int(info.frames),
                 exact and (info.subtype or "").upper() in ("PCM_16", "PCM_S8", "PCM_U8"))


def span_samples(ctx: ServerContext, audio: Audio, start: float, stop: float | None, *, limit_s: float,
                 what: str) -> tuple[int, int]:
    """Seconds from a request -> samples ``[a, b)`` inside the file. ``stop`` None: ``limit_s`` after start
    or the end. A span past the end is cut at the end; an empty or too long one is refused (400)."""
    if not math.isfinite(start) or start < 0 or (stop is not None and not math.isfinite(stop)):
        raise bad_request(f"start/stop must be finite seconds >= 0, got start={start!r}, stop={stop!r}")
    duration = audio.frames / audio.sample_rate
    if start >= duration:
        raise bad_request(f"start={start:g} s is at or past the end of the recording ({duration:g} s); "
                          f"choose 0 <= start < {duration:g}")
    if stop is None:
        stop = min(duration, start + limit_s)
    if stop <= start:
        raise bad_request(f"stop must be after start, got start={start:g} s, stop={stop:g} s")
    if stop - start > limit_s + 1e-9:
        raise bad_request(f"{what} span {stop - start:g} s is longer than the limit of {limit_s:g} s; "
                          "request shorter spans")
    a = round(start * audio.sample_rate)
    b = min(audio.frames, round(min(stop, duration) * audio.sample_rate))
    return a, max(b, a + 1)


def recording_levels(audio: Audio, frontend: FrontEnd | None) -> tuple[float, float]:
    """(floor, ceiling) dB for every picture of one recording, so tiles side by side match in colour."""
    fe = json.dumps(frontend.to_dict() if frontend else None, sort_keys=True)
    return _levels(audio.path, audio.channel, audio.sample_rate, audio.frames, fe)


@lru_cache(maxsize=256)
def _levels(path: str, channel: int, sample_rate: int, frames: int, frontend_json: str) -> tuple[float, float]:
    d = json.loads(frontend_json)
    fe = FrontEnd.from_dict(d) if d else None
    piece = min(frames, 2 * sample_rate)  # up to 8 excerpts of 2 s spread over the file
    starts = np.unique(np.linspace(0, frames - piece, 8).astype(np.int64)) if frames > piece else [0]
    cols = [span_columns(path, frontend=fe, channel=channel, sample_rate=sample_rate, start=int(a),
                         stop=int(a) + piece, width=256).columns for a in starts]
    return levels(np.concatenate(cols))


def clustering_id(run_id: int, algorithm: str, params: dict | None) -> str:
    """The opaque id of a clustering in URLs: a hash of (run_id, algorithm, canonical params)."""
    doc = json.dumps([int(run_id), str(algorithm), params or {}], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()[:16]


def clustering_or_404(ctx: ServerContext, cid: str) -> dict:
    """The stored clustering (a dict of :meth:`Store.clusterings`) whose id is ``cid``."""
    for c in ctx.store.clusterings():
        if clustering_id(c["run_id"], c["algorithm"], c["params"]) == cid:
            return {**c, "id": cid}
    raise not_found("clustering", repr(cid))
