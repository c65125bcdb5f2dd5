"""Sound and pictures of registered recordings: WAV spans (with HTTP range requests) and spectrogram PNGs.

Every endpoint takes database ids and times only; the file comes from the database row. Audio
responses are one channel (the one detection used): 16-bit PCM when the file holds 16-bit (or
smaller) integers, so the bytes are exactly the file's samples, else 32-bit float WAV, which is
exact for 24-bit and float files. A response is a WAV file of the requested span; a ``Range``
request decodes only the samples behind the requested bytes, so long recordings stream.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from ..audio.io import iter_blocks
from ..features.render import render_span
from .context import (
    Audio,
    Slot,
    audio_of,
    bad_request,
    ctx_of,
    frontend_of_run,
    recording_levels,
    recording_or_404,
    region_or_404,
    render_slot,
    run_for,
    span_samples,
    take_slot,
    within,
)

router = APIRouter(prefix="/api", tags=["media"])
Id = Annotated[int, Path(ge=0, le=2 ** 62)]
Seconds = Annotated[float, Query(ge=0, allow_inf_nan=False, description="seconds from the start of the recording")]
OptSeconds = Annotated[float | None, Query(ge=0, allow_inf_nan=False, description="seconds; default: see summary")]
Db = Annotated[float | None, Query(ge=-400, le=400, allow_inf_nan=False, description="dB; default: the recording's")]
_BLOCK = 1 << 17  # samples decoded per chunk of a streamed response
_CACHE = {"Cache-Control": "private, max-age=3600"}


# ---------------------------------------------------------------------------- WAV bytes


def wav_header(n_samples: int, *, sample_rate: int, pcm16: bool) -> bytes:
    """RIFF/WAVE header of a mono file of ``n_samples`` samples: PCM 16-bit (44 bytes) or IEEE float
    32-bit (58 bytes, with the ``fact`` chunk non-PCM data calls for)."""
    width = 2 if pcm16 else 4
    data = n_samples * width
    if data > 0xFFFFFFFF - 64:
        raise bad_request(f"{n_samples} samples do not fit in one WAV file (4 GiB); request a shorter span")
    if pcm16:
        fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
        chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    else:
        fmt = struct.pack("<HHIIHHH", 3, 1, sample_rate, sample_rate * 4, 4, 32, 0)
        chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<II", 4, n_samples)
    body = b"WAVE" + chunks + b"data" + struct.pack("<I", data)
    return b"RIFF" + struct.pack("<I", len(body) + data) + body


def wav_samples(x: np.ndarray, *, pcm16: bool) -> bytes:
    """Little-endian sample bytes of float samples in [-1, 1]: 16-bit integers (scaled by 32768, so
    samples read from 16-bit files come back exactly) or 32-bit floats."""
    x = np.asarray(x, np.float32)
    if pcm16:
        return np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2").tobytes()
    return x.astype("<f4").tobytes()


def parse_range(header: str | None, total: int) -> tuple[int, int] | None | str:
    """One ``bytes=a-b`` range (inclusive) within ``total`` bytes; None: serve everything (no header, or
    several ranges); "unsatisfiable" when it starts past the end. Malformed headers are ignored (RFC 9110)."""
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    a, b = m.group(1), m.group(2)
    if not a:  # suffix: the last b bytes
        n = int(b)
        return "unsatisfiable" if n == 0 else (max(0, total - n), total - 1)
    first = int(a)
    last = total - 1 if not b else min(int(b), total - 1)
    if first >= total:
        return "unsatisfiable"
    if last < first:
        return None
    return first, last


def _span_bytes(audio: Audio, a: int, b: int, first: int, last: int, header: bytes) -> Iterator[bytes]:
    """Bytes ``first..last`` (inclusive) of the WAV of samples ``[a, b)``, decoding only what they cover.
    Samples the decoder cannot deliver (a file shorter than its header said) are sent as silence."""
    hl, width = len(header), 2 if audio.pcm16 else 4
    if first < hl:
        yield header[first:min(last + 1, hl)]
    lo, hi = max(first, hl) - hl, last + 1 - hl  # byte offsets into the sample data
    if hi <= lo:
        return
    s0, s1 = lo // width, -(-hi // width)  # samples covering them
    pos, skip, sent = s0, lo - s0 * width, 0
    for block in iter_blocks(audio.path, channel=audio.channel, block_frames=_BLOCK, start=a + s0, stop=a + s1):
        chunk = wav_samples(block.samples, pcm16=audio.pcm16)
        pos += block.samples.size
        if pos >= s1:
            chunk = chunk[:len(chunk) - (s1 * width - hi)]
        if skip:
            chunk, skip = chunk[skip:], 0
        sent += len(chunk)
        yield chunk
    if sent < hi - lo:  # the decoder ended early: keep the promised length
        yield bytes(hi - lo - sent)


def wav_response(request: Request, audio: Audio, a: int, b: int, *, filename: str) -> Response:
    """A WAV of samples ``[a, b)``: 200 with everything, 206 for a satisfiable ``Range``, 416 otherwise."""
    header = wav_header(b - a, sample_rate=audio.sample_rate, pcm16=audio.pcm16)
    total = len(header) + (b - a) * (2 if audio.pcm16 else 4)
    base = {"Accept-Ranges": "bytes", "Content-Disposition": f'inline; filename="{filename}"', **_CACHE}
    rng = parse_range(request.headers.get("range"), total)
    if rng == "unsatisfiable":
        return Response(status_code=416, headers={**base, "Content-Range": f"bytes */{total}"})
    first, last = (0, total - 1) if rng is None else rng
    headers = {**base, "Content-Length": str(last - first + 1)}
    if rng is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{total}"
    if request.method == "HEAD":
        return Response(status_code=206 if rng else 200, headers=headers, media_type="audio/wav")
    body = _span_bytes(audio, a, b, first, last, header)
    ctx = ctx_of(request)
    seconds = (last - first + 1) / (audio.sample_rate * (2 if audio.pcm16 else 4))
    if seconds > ctx.limits.heavy_audio_s:  # a long span holds a render slot while it streams
        body = _holding(take_slot(ctx, "audio span"), body)
    return StreamingResponse(body, status_code=206 if rng else 200, headers=headers, media_type="audio/wav")


def _holding(slot: Slot, chunks: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        slot.release()


@router.head("/regions/{region_id}/audio.wav", include_in_schema=False)
@router.get("/regions/{region_id}/audio.wav", response_class=Response,
                  summary="A region's sound as WAV (one channel; optional padding; range requests)",
                  responses={200: {"content": {"audio/wav": {}}}, 206: {"description": "partial content"}})
def region_audio(request: Request, region_id: Id,
                 pad: Annotated[float, Query(ge=0, allow_inf_nan=False, description="seconds added on each side, "
                                             "cut at the ends of the recording (at most the pad_s limit)")] = 0.0):
    ctx = ctx_of(request)
    within(ctx, "pad_s", pad=pad)
    g = region_or_404(ctx, region_id)
    audio = audio_of(ctx, recording_or_404(ctx, g.recording_id))
    p = round(pad * audio.sample_rate)
    a, b = max(0, g.region.start - p), min(audio.frames, g.region.stop + p)
    if b <= a:
        raise bad_request(f"region {g.id} is empty (samples {g.region.start}..{g.region.stop})", 409)
    return wav_response(request, audio, a, b, filename=f"region-{g.id}.wav")


@router.head("/recordings/{recording_id}/audio.wav", include_in_schema=False)
@router.get("/recordings/{recording_id}/audio.wav", response_class=Response,
                  summary="A span of a recording as WAV (default: from start, at most the audio limit); "
                          "range requests decode only the bytes asked for",
                  responses={200: {"content": {"audio/wav": {}}}, 206: {"description": "partial content"}})
def recording_audio(request: Request, recording_id: Id, start: Seconds = 0.0, stop: OptSeconds = None):
    ctx = ctx_of(request)
    rec = recording_or_404(ctx, recording_id)
    audio = audio_of(ctx, rec)
    a, b = span_samples(ctx, audio, start, stop, limit_s=ctx.limits.audio_s, what="audio")
    return wav_response(request, audio, a, b, filename=f"recording-{rec.id}-{a}-{b}.wav")


def _png(request: Request, rec, run_id: int | None, a: int, b: int, width: int, height: int,
         floor: float | None, ceiling: float | None, audio: Audio) -> Response:
    ctx = ctx_of(request)
    fe = frontend_of_run(ctx, run_for(ctx, rec.id, run_id))
    if floor is not None and ceiling is not None and ceiling <= floor:
        raise bad_request(f"need floor < ceiling (dB), got floor={floor:g}, ceiling={ceiling:g}", 422)
    with render_slot(ctx, "spectrogram"):
        if floor is None or ceiling is None:
            lo, hi = recording_levels(audio, fe)
            floor, ceiling = (lo if floor is None else floor), (hi if ceiling is None else ceiling)
        if ceiling <= floor:
            raise bad_request(f"need floor < ceiling (dB), got floor={floor:g}, ceiling={ceiling:g}", 422)
        body, pic = render_span(audio.path, frontend=fe, channel=audio.channel, sample_rate=audio.sample_rate,
                                start=a, stop=b, width=width, height=height, floor=floor, ceiling=ceiling)
    return Response(body, media_type="image/png", headers={
        **_CACHE, "X-Sonotype-Band-Hz": f"{pic.fmin:g}-{pic.fmax:g}",
        "X-Sonotype-Span-S": f"{a / audio.sample_rate:.6f}-{b / audio.sample_rate:.6f}"})


Px = Annotated[int | None, Query(ge=1, description="pixels (at most the width limit)")]
Height = Annotated[int, Query(ge=1, description="pixels (at most the height limit)")]


@router.get("/recordings/{recording_id}/spectrogram.png", response_class=Response,
            summary="Spectrogram picture of a span (time on x, frequency low to high upwards; the run's band)",
            responses={200: {"content": {"image/png": {}}}})
def recording_spectrogram(request: Request, recording_id: Id, start: Seconds = 0.0, stop: OptSeconds = None,
                          width: Px = None, height: Height = 256,
                          run_id: Annotated[int | None, Query(ge=0, le=2 ** 62)] = None,
                          floor: Db = None, ceiling: Db = None):
    ctx = ctx_of(request)
    within(ctx, "width", width=width)
    within(ctx, "height", height=height)
    rec = recording_or_404(ctx, recording_id)
    audio = audio_of(ctx, rec)
    a, b = span_samples(ctx, audio, start, stop, limit_s=ctx.limits.spectrogram_s, what="spectrogram")
    width = width or max(1, min(int(ctx.limits.width), round(50 * (b - a) / audio.sample_rate)))
    return _png(request, rec, run_id, a, b, width, height, floor, ceiling, audio)


@router.get("/regions/{region_id}/spectrogram.png", response_class=Response,
            summary="Thumbnail spectrogram of a region (padded; spans longer than the limit are cut)",
            responses={200: {"content": {"image/png": {}}}})
def region_spectrogram(request: Request, region_id: Id, width: Px = 160, height: Height = 96,
                       pad: Annotated[float, Query(ge=0, allow_inf_nan=False, description="seconds (at most the "
                                                   "pad_s limit)")] = 0.1):
    ctx = ctx_of(request)
    within(ctx, "width", width=width)
    within(ctx, "height", height=height)
    within(ctx, "pad_s", pad=pad)
    g = region_or_404(ctx, region_id)
    rec = recording_or_404(ctx, g.recording_id)
    audio = audio_of(ctx, rec)
    p = round(pad * audio.sample_rate)
    a = max(0, g.region.start - p)
    b = min(audio.frames, g.region.stop + p, a + int(ctx.limits.spectrogram_s * audio.sample_rate))
    if b <= a:
        raise bad_request(f"region {g.id} is empty (samples {g.region.start}..{g.region.stop})", 409)
    return _png(request, rec, g.run_id, a, b, width, height, None, None, audio)
