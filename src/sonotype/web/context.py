"""What every request handler shares: the open store, the edit token, limits, and the lookups that
turn ids from a request into database rows and registered audio files (never a path from the request)."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePath

import numpy as np
from fastapi import HTTPException, Request

from ..audio.io import AudioInfo, audio_info
from ..errors import AudioError, ConfigError, NotFound
from ..features.frontend import FrontEnd
from ..features.render import levels, span_columns
from ..store import RecordingRow, RegionRow, Store


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask for (seconds, pixels, counts, characters): a server's own
    (``create_app(limits=...)``, shown at ``/api/info``), checked per request by :func:`within`."""

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
    renders: int = 4  # heavy responses (spectrogram pictures, long audio spans) at once; more get 503
    render_wait_s: float = 2.0  # how long a heavy request waits for a free slot before its 503
    heavy_audio_s: float = 60.0  # an audio span longer than this counts as a heavy response
    echo: int = 200  # characters of a request value an error message repeats


TOKEN_HEADER = "X-Sonotype-Token"
RETRY_AFTER_S = 2  # the Retry-After of a 503 when every render slot is taken


@dataclass
class ServerContext:
    """State of one running application: ``edit_token`` None means read-only."""

    store: Store
    edit_token: str | None = None
    audio_root: Path = field(default_factory=Path.cwd)
    limits: Limits = field(default_factory=Limits)
    renders: threading.BoundedSemaphore = field(init=False, repr=False)

    def __post_init__(self):
        if int(self.limits.renders) < 1:
            raise ConfigError(f"renders must be >= 1 (heavy responses at once), got {self.limits.renders!r}")
        self.renders = threading.BoundedSemaphore(int(self.limits.renders))

    def privileged(self, request: Request) -> bool:
        """Whether ``request`` carries the edit token (such clients see full server paths)."""
        if self.edit_token is None:
            return False
        given = (request.headers.get(TOKEN_HEADER) or "").encode("utf-8")
        return hmac.compare_digest(given, self.edit_token.encode("utf-8"))

    def display_path(self, path: str | Path) -> str:
        """What an anonymous client sees of a server path: relative to the audio root when under it,
        else the file name only (no absolute path)."""
        p = PurePath(path)
        if not p.is_absolute():
            return str(p)
        try:
            return str(p.relative_to(self.audio_root.resolve()))
        except ValueError:
            try:
                return str(p.relative_to(self.audio_root))
            except ValueError:
                return p.name

    def shown_path(self, request: Request, path: str | Path) -> str:
        return str(path) if self.privileged(request) else self.display_path(path)

    def database_label(self, request: Request | None = None) -> str:
        """The database as shown: its URL with the edit token, else only the file (or database) name."""
        label = self.store.label
        if request is not None and self.privileged(request):
            return label
        return PurePath(label.split("?", 1)[0].rsplit("/", 1)[-1] or "database").name

    def scrub(self, request: Request | None, text: str) -> str:
        """``text`` with the server's own paths (database, audio root) cut down for anonymous clients."""
        if request is not None and self.privileged(request):
            return text
        text = text.replace(self.store.label, self.database_label())
        for root in {str(self.audio_root.resolve()), str(self.audio_root)}:
            if len(root) > 1:
                text = text.replace(root.rstrip("/") + "/", "")
        return text


class Slot:
    """One held render slot; :meth:`release` is idempotent and also runs when the holder is dropped
    (a streamed response whose body never started still gives its slot back)."""

    def __init__(self, semaphore: threading.BoundedSemaphore):
        self._sem, self._lock, self._held = semaphore, threading.Lock(), True

    def release(self) -> None:
        with self._lock:
            if self._held:
                self._held = False
                self._sem.release()

    def __del__(self):
        self.release()


def take_slot(ctx: ServerContext, what: str) -> Slot:
    """One of the server's ``limits.renders`` slots for a heavy response, waiting at most
    ``limits.render_wait_s``; when all stay taken: 503 with Retry-After, rather than queueing unbounded
    work. Each render's memory is bounded (decoder block + picture), so the server's total is too."""
    wait = float(ctx.limits.render_wait_s)
    got = ctx.renders.acquire(timeout=wait) if wait > 0 else ctx.renders.acquire(blocking=False)
    if not got:
        raise HTTPException(503, f"the server is busy: {ctx.limits.renders} heavy responses (spectrograms, long "
                                 f"audio spans) are being made; try this {what} again in {RETRY_AFTER_S} s",
                            headers={"Retry-After": str(RETRY_AFTER_S)})
    return Slot(ctx.renders)


@contextmanager
def render_slot(ctx: ServerContext, what: str) -> Iterator[None]:
    """``with render_slot(ctx, "spectrogram"):`` holds a slot (see :func:`take_slot`) for the block."""
    slot = take_slot(ctx, what)
    try:
        yield
    finally:
        slot.release()


def truncate(value, limit: int = 200) -> str:
    """``value`` as text of at most about ``limit`` characters (for error messages that repeat input)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str) \
        if isinstance(value, (dict, list, tuple)) else str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def ctx_of(request: Request) -> ServerContext:
    return request.app.state.ctx


def not_found(what: str, key) -> HTTPException:
    return HTTPException(status_code=404, detail=f"{what} {key} does not exist in this database")


def bad_request(message: str, status: int = 400) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def within(ctx: ServerContext, which: str, /, **values) -> None:
    """422 unless every value is within this server's ``limits.<which>``: a number by its value, a text
    by its characters, a list by its items (None passes); the keywords name the request's fields."""
    bound = getattr(ctx.limits, which)
    for field_name, value in values.items():
        if value is None:
            continue
        size = len(value) if isinstance(value, (str, list, tuple)) else value
        if size > bound:
            unit = " characters" if isinstance(value, str) else " items" if isinstance(value, (list, tuple)) else ""
            raise HTTPException(422, f"{field_name}: {size:,}{unit} is more than this server allows ({bound:,}, "
                                     f"its {which} limit, see /api/info); ask for less")


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
    """``run_id`` checked to exist (404 otherwise), or the latest run with a finished result for the recording
    (None when it has none): :meth:`~sonotype.store.DetectionStore.run_or_latest`."""
    try:
        return ctx.store.run_or_latest(run_id, recording_id=recording_id, required=False)
    except NotFound:
        raise not_found("run", run_id) from None


def frontend_of_run(ctx: ServerContext, run_id: int | None) -> FrontEnd | None:
    """The front end a detection run used (:meth:`~sonotype.store.DetectionStore.run_frontend`), or None
    for no run or when it cannot be read (pictures then use the default front end)."""
    if run_id is None:
        return None
    try:
        return ctx.store.run_frontend(run_id)
    except (NotFound, ConfigError):
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
    shown = ctx.display_path(p)
    if not p.is_file():
        raise HTTPException(404, f"the audio of recording {rec.id} is not at {shown}; start the server where the "
                                 "recordings are, or give --audio-root for relative paths")
    try:
        info: AudioInfo = audio_info(p)
    except AudioError as e:
        raise HTTPException(409, f"recording {rec.id}: {str(e).replace(str(p), shown)}") from None
    exact = info.decoder == "soundfile"
    if int(info.sample_rate) != round(rec.sample_rate) or (exact and info.frames != rec.frames):
        raise HTTPException(409, f"recording {rec.id}: {shown} now has {info.frames} samples at {info.sample_rate} Hz "
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


def encoder_title(key: str | None) -> str:
    """A stored sequence key as a person reads it: ``placeholder@5dc1.../stride4`` -> ``LSTM-V3 placeholder,
    stride 4``; ``birdnet@2.4/hop1/x16`` -> ``BirdNET 2.4, hop 1 s, x16``."""
    if not key:
        return "unknown encoder"
    head, _, rest = str(key).partition("/")
    name, _, version = head.partition("@")
    bits = []
    for part in rest.split("/") if rest else []:
        if part.startswith("stride"):
            bits.append(f"stride {part[6:]}")
        elif part.startswith("hop"):
            bits.append(f"hop {part[3:]} s")
        elif part.startswith("x"):
            bits.append(f"played {part}")
        else:
            bits.append(part)
    title = f"BirdNET {version}" if name == "birdnet" else f"LSTM-V3 {name}"
    return ", ".join([title, *bits])


def clustering_title(c: dict) -> str:
    """``run 1 · agglomerative · 45th percentile · 4 clusters of 30 regions · LSTM-V3 enc, stride 4``: the
    choices that tell clusterings apart, without braces (the full parameters are in the API)."""
    p = c.get("params") or {}
    parts = [f"run {c['run_id']}", str(c["algorithm"])]
    if p.get("cut") == "silhouette":
        parts.append("silhouette cut")
    elif p.get("percentile") is not None:
        parts.append(f"{p['percentile']:g}th percentile")
    elif p.get("n_clusters") is not None:
        parts.append(f"cut at {p['n_clusters']}")
    if p.get("k") is not None:
        parts.append(f"k {p['k']}")
    if p.get("min_cluster_size") is not None:
        parts.append(f"min size {p['min_cluster_size']}")
    if p.get("graph"):
        parts.append(f"{p['graph']} graph")
    if "n_clusters" in c and "n_regions" in c:
        parts.append(f"{c['n_clusters']} clusters of {c['n_regions']} regions")
    parts.append(encoder_title(p.get("encoder")))
    return " · ".join(parts)


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
