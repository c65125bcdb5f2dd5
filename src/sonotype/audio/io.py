"""Audio in and out. The only module that decodes or encodes audio.

Decoders
    Everything libsndfile reads (WAV, FLAC, OGG/Vorbis, AIFF, RF64, and MP3 with libsndfile
    >= 1.1) goes through ``soundfile``, at any sample rate, 8/16/24/32-bit int or 32/64-bit
    float. If libsndfile rejects a file whose suffix is in :data:`FFMPEG_SUFFIXES` (m4a, aac,
    mp4, opus, wma, ...) it is decoded by an ``ffmpeg`` subprocess streaming raw float32 to a
    pipe, with ``ffprobe`` for its header. Without ffmpeg such files raise
    :class:`~sonotype.errors.DecoderMissingError`.

Shapes and units
    Samples are float32; integer formats are scaled to [-1, 1), float files are returned as
    stored. Sample indices (``start``, ``stop``, ``frames``) count samples per channel;
    times are seconds. Everything is read block by block, so a file of hours never sits in
    memory whole (except in :func:`read_audio`, which returns the requested range).

Bad input (every error names the file)
    missing / directory / 0-byte / not audio -> :class:`AudioError`; valid header but 0 frames
    -> ``AudioError("... contains no audio samples ...")``; NaN or inf in the samples read ->
    ``AudioError`` naming the first bad sample and its time in seconds; silent (all-zero) audio
    is valid. A truncated WAV (header promises more data than the file holds) is read up to
    where the data ends: libsndfile reports the frames actually present, and reading stops
    cleanly there. A truncated or corrupt compressed file (FLAC, MP3, m4a, ...) raises
    ``AudioError`` at the first block its decoder reports an error for (blocks before it have
    been yielded); if the decoder itself just ends early (ffmpeg often does), reading stops there.

ffmpeg-decoded files
    ``frames`` is *estimated* from the duration ffprobe reports (``round(duration * rate)``);
    the decoded stream can differ from it by a few milliseconds (encoder padding), so do not
    rely on ``frames`` being exact for them. ``start``/``stop`` are exact with respect to the
    decoded stream (ffmpeg decodes from the beginning and drops samples before ``start``);
    only the cheap loudness estimate of :func:`select_channel` uses fast approximate seeking.

(Over 400 lines on purpose: every decoder path, channel choice and block reader in the one module that
touches encoded audio.)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Union

import numpy as np
import soundfile as sf

from ..errors import AudioError, ConfigError, DecoderMissingError

#: default block length for streaming, in samples per channel
DEFAULT_BLOCK = 1 << 20
#: suffixes decoded with ffmpeg when libsndfile cannot read the file
FFMPEG_SUFFIXES = frozenset({".m4a", ".m4b", ".mp4", ".aac", ".opus", ".ogg", ".oga", ".wma",
                             ".mp3", ".mp2", ".webm", ".mka", ".3gp", ".amr", ".ac3", ".caf"})
#: the loudness estimate behind ``channel=None`` reads at most this many chunks ...
AUTO_CHANNEL_CHUNKS = 10
#: ... totalling at most this many seconds, spread evenly over the file
AUTO_CHANNEL_SECONDS = 60.0

#: an explicit channel index, or ``None`` / ``"auto"`` for the loudest channel
Channel = Union[int, None, Literal["auto"]]

_INSTALL_HINT = ("install ffmpeg, e.g. `apt-get install ffmpeg` (Debian/Ubuntu), `brew install ffmpeg` "
                 "or `conda install -c conda-forge ffmpeg`, or convert the file to WAV/FLAC")


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, read from its header. ``frames`` = samples per channel (estimated
    for ``decoder == "ffmpeg"``); ``format`` is libsndfile's name ("WAV", "FLAC") or, for
    ffmpeg, the upper-case suffix ("M4A"); ``subtype`` is e.g. "PCM_24" or ffmpeg's codec."""

    path: str
    sample_rate: int  # Hz
    channels: int
    frames: int  # samples per channel
    format: str
    subtype: str | None = None
    decoder: str = "soundfile"  # "soundfile" or "ffmpeg"

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class AudioBlock:
    """A contiguous run of mono samples starting at sample ``start`` of the file (absolute index)."""

    start: int
    samples: np.ndarray  # (n,) float32


@dataclass(frozen=True)
class Recording:
    """A file plus the one channel used from it (resolved once by :func:`open_recording`)."""

    path: str
    sample_rate: int  # Hz
    channels: int
    frames: int  # samples per channel
    channel: int  # the channel used
    format: str
    subtype: str | None = None
    decoder: str = "soundfile"

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    @property
    def info(self) -> AudioInfo:
        return AudioInfo(self.path, self.sample_rate, self.channels, self.frames, self.format,
                         self.subtype, self.decoder)


def audio_info(path: str | Path) -> AudioInfo:
    """Read a file's header. Raises :class:`AudioError` naming the file if it is not usable audio."""
    p = _existing_file(path)
    try:
        i = sf.info(str(p))
    except (RuntimeError, OSError) as e:  # soundfile.LibsndfileError is a RuntimeError; name the file in the message
        if p.suffix.lower() not in FFMPEG_SUFFIXES:
            raise AudioError(p, f"not readable as audio ({_sf_reason(e)}); expected a WAV/FLAC/OGG/MP3 file "
                                f"or one of {' '.join(sorted(FFMPEG_SUFFIXES))} (via ffmpeg); check that it "
                                "is really audio, not truncated or renamed") from None
        info = _ffprobe_info(p)
    else:
        info = AudioInfo(str(p), int(i.samplerate), int(i.channels), int(i.frames), i.format, i.subtype)
    if info.sample_rate <= 0 or info.channels <= 0:
        raise AudioError(p, f"header says sample_rate={info.sample_rate} Hz, channels={info.channels}; "
                            "expected both > 0; the file is corrupt, re-export it")
    if info.frames <= 0:
        raise AudioError(p, "contains no audio samples (0 frames); expected at least one sample; "
                            "re-export the recording or remove the file")
    return info


def select_channel(path: str | Path, channel: Channel = None, *, info: AudioInfo | None = None) -> int:
    """Resolve ``channel`` to an index: an int is validated, ``None``/``"auto"`` picks the channel
    with the highest RMS, estimated from at most :data:`AUTO_CHANNEL_CHUNKS` chunks totalling
    :data:`AUTO_CHANNEL_SECONDS` s spread over the file (whole file if shorter). Mono -> 0;
    ties (e.g. all silent) -> the lowest index; NaN/inf samples are ignored in the estimate."""
    info = info or audio_info(path)
    if channel is None or (isinstance(channel, str) and channel == "auto"):
        return 0 if info.channels == 1 else int(np.argmax(_channel_rms(path, info)))
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)):
        raise ConfigError(f"{path}: channel must be an int, None or 'auto', got {channel!r}")
    if not 0 <= channel < info.channels:
        raise AudioError(path, f"channel {channel} requested but the file has {info.channels} channel(s); "
                               f"expected 0..{info.channels - 1}, or None/'auto' for the loudest")
    return int(channel)


def open_recording(path: str | Path, *, channel: Channel = None) -> Recording:
    """Read the header and resolve the channel once (see :func:`select_channel`)."""
    info = audio_info(path)
    ch = select_channel(path, channel, info=info)
    return Recording(info.path, info.sample_rate, info.channels, info.frames, ch, info.format,
                     info.subtype, info.decoder)


def iter_blocks(path: str | Path, *, channel: Channel = 0, block_frames: int = DEFAULT_BLOCK,
                info: AudioInfo | None = None, start: int = 0, stop: int | None = None) -> Iterator[AudioBlock]:
    """Yield consecutive non-overlapping mono blocks of samples ``[start, stop)`` of one channel.

    Each block holds ``block_frames`` samples ``(n,)`` float32 (the last may be shorter);
    ``AudioBlock.start`` is the absolute sample index in the file. ``stop=None`` or past the end
    reads to the end; ``start`` past the end yields nothing. Only one block is in memory at a
    time; closing the generator early closes the file / ends the ffmpeg process.
    """
    info = info or audio_info(path)
    ch = select_channel(path, channel, info=info)
    start, stop = _check_range(path, start, stop)
    if not isinstance(block_frames, (int, np.integer)) or block_frames <= 0:
        raise ConfigError(f"{path}: block_frames must be a positive int, got {block_frames!r}")
    got = False
    for pos, data in _raw_blocks(path, info, start, stop, int(block_frames)):
        x = np.ascontiguousarray(data[:, ch])
        if not x.flags.writeable:  # ffmpeg blocks are views of the pipe's bytes
            x = x.copy()
        if not np.isfinite(x).all():
            i = int(np.argmax(~np.isfinite(x)))
            raise AudioError(path, f"sample {pos + i} (t = {(pos + i) / info.sample_rate:.6f} s, channel {ch}) "
                                   f"is {x[i]}; expected finite samples; the file is corrupt: repair it or "
                                   "replace non-finite values (e.g. numpy.nan_to_num) and save it again")
        got = True
        yield AudioBlock(pos, x)
    if not got and start == 0 and stop != 0:
        raise AudioError(path, "contains no audio samples (nothing could be decoded); expected at least one "
                               "sample; re-export the recording or remove the file")


def read_audio(path: str | Path, *, channel: Channel = 0, start: int = 0,
               stop: int | None = None) -> tuple[np.ndarray, int]:
    """Samples ``[start, stop)`` of one channel as float32 ``(n,)`` and the sample rate in Hz.
    Meant for clips and regions; use :func:`iter_blocks` to stream long files."""
    info = audio_info(path)
    blocks = [b.samples for b in iter_blocks(path, channel=channel, info=info, start=start, stop=stop)]
    x = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return x, info.sample_rate


def write_audio(path: str | Path, samples: np.ndarray, *, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write ``samples`` ``(n,)`` or ``(n, channels)`` as WAV/FLAC/... (format from the suffix).

    Float samples are in [-1, 1] and are clipped to it for integer subtypes ("PCM_16",
    "PCM_24", "PCM_32"); "FLOAT"/"DOUBLE" store them as they are. Integer arrays are written
    as raw sample values. Returns the path written.
    """
    p = Path(path)
    x = np.asarray(samples)
    if x.ndim not in (1, 2) or x.shape[0] == 0 or x.size == 0 or not np.issubdtype(x.dtype, np.number):
        raise ConfigError(f"{p}: samples must be a non-empty numeric array (n,) or (n, channels), "
                          f"got shape {x.shape} dtype {x.dtype}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ConfigError(f"{p}: sample_rate must be a positive int (Hz), got {sample_rate!r}")
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            i = int(np.argmax(~np.isfinite(x).reshape(x.shape[0], -1).all(axis=1)))
            raise AudioError(p, f"refusing to write non-finite samples (first at sample {i}, "
                                f"t = {i / sample_rate:.6f} s); replace NaN/inf before writing")
        if not subtype.upper().startswith(("FLOAT", "DOUBLE")):
            x = np.clip(x, -1.0, 1.0)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        sf.write(str(p), x, int(sample_rate), subtype=subtype)
    except (TypeError, ValueError, RuntimeError) as e:
        raise AudioError(p, f"cannot write subtype {subtype!r} to a {p.suffix or 'suffix-less'} file ({e}); "
                            "use .wav/.flac with a subtype from soundfile.available_subtypes()") from None
    return p


class AudioWriter:
    """Write a mono file block by block (``with AudioWriter(path, sample_rate=...) as w: w.write(x)``).

    Blocks are float in [-1, 1], clipped for integer subtypes. The file is written under a temporary
    name and renamed on a clean close, so an interrupted export never leaves a truncated file.
    """

    def __init__(self, path: str | Path, *, sample_rate: int, subtype: str = "PCM_16"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.name + ".part" + self.path.suffix)
        self.frames = 0
        try:
            self._f = sf.SoundFile(str(self._tmp), "w", samplerate=int(sample_rate), channels=1, subtype=subtype)
        except (TypeError, ValueError, RuntimeError) as e:
            raise AudioError(self.path, f"cannot write subtype {subtype!r} here ({e})") from None

    def write(self, samples: np.ndarray) -> None:
        x = np.asarray(samples, np.float32).reshape(-1)
        if not np.isfinite(x).all():
            raise AudioError(self.path, f"refusing to write non-finite samples (block at sample {self.frames})")
        self._f.write(np.clip(x, -1.0, 1.0))
        self.frames += x.size

    def __enter__(self) -> "AudioWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._f.close()
        if exc_type is None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


def file_hash(path: str | Path, *, chunk: int = 1 << 22) -> str:
    """SHA-256 of the file's bytes, hex, read in chunks of ``chunk`` bytes."""
    p = _existing_file(path, allow_empty=True)
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


# ---------------------------------------------------------------------------- internals


def _existing_file(path: str | Path, *, allow_empty: bool = False) -> Path:
    p = Path(path)
    if p.is_dir():
        raise AudioError(p, "is a directory; expected an audio file")
    if not p.is_file():
        raise AudioError(p, "no such file; check the path (and the data folder setting)")
    if not allow_empty and p.stat().st_size == 0:
        raise AudioError(p, "file is empty (0 bytes); expected an audio file; re-copy or re-export it")
    return p


def _sf_reason(e: Exception) -> str:
    return str(getattr(e, "error_string", None) or e).strip().rstrip(".")


def _check_range(path: str | Path, start: int, stop: int | None) -> tuple[int, int | None]:
    def ok(v) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0

    if not ok(start) or not (stop is None or ok(stop)):
        raise ConfigError(f"{path}: start/stop must be sample indices >= 0 (stop may be None), "
                          f"got start={start!r}, stop={stop!r}")
    if stop is not None and stop < start:
        raise ConfigError(f"{path}: stop ({stop}) must be >= start ({start})")
    return int(start), None if stop is None else int(stop)


def _raw_blocks(path, info: AudioInfo, start: int, stop: int | None, block_frames: int,
                fast_seek: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """(absolute start, float32 (n, channels)) blocks of samples [start, stop) from either decoder."""
    if info.decoder == "ffmpeg":
        yield from _ffmpeg_blocks(path, info, start, stop, block_frames, fast_seek)
        return
    stop = info.frames if stop is None else min(stop, info.frames)
    if start >= stop:
        return
    pos = start
    try:
        with sf.SoundFile(str(path)) as f:
            if start:
                f.seek(start)
            while pos < stop:
                data = f.read(min(block_frames, stop - pos), dtype="float32", always_2d=True)
                if data.shape[0] == 0:  # truncated WAV: libsndfile ends early; stop cleanly
                    return
                yield pos, data
                pos += data.shape[0]
    except (RuntimeError, ValueError, OSError) as e:  # sf.LibsndfileError is a RuntimeError
        raise AudioError(path, f"decoding failed at sample {pos} (t = {pos / info.sample_rate:.3f} s): "
                               f"{_sf_reason(e)}; the file is truncated or corrupt, re-export it") from None


def _channel_rms(path, info: AudioInfo) -> np.ndarray:
    """RMS per channel ``(channels,)`` over a bounded, evenly spread sample of the file."""
    budget = int(AUTO_CHANNEL_SECONDS * info.sample_rate)
    if info.frames <= budget:
        spans = [(0, info.frames)]
    else:
        n = budget // AUTO_CHANNEL_CHUNKS
        spans = [(int(s), int(s) + n) for s in np.linspace(0, info.frames - n, AUTO_CHANNEL_CHUNKS)]
    energy, count = np.zeros(info.channels), 0
    for a, b in spans:
        for _, d in _raw_blocks(path, info, a, b, min(DEFAULT_BLOCK, b - a), fast_seek=True):
            d = np.nan_to_num(d.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
            energy += np.einsum("ij,ij->j", d, d)
            count += d.shape[0]
    return np.sqrt(energy / max(count, 1))


def _ffmpeg_tool(name: str, path, info_format: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise DecoderMissingError(path, f"{info_format} audio needs '{name}' (part of ffmpeg) to decode, "
                                        f"but it is not on PATH; {_INSTALL_HINT}")
    return exe


def _ffprobe_info(p: Path) -> AudioInfo:
    fmt = p.suffix.lstrip(".").upper() or "unknown"
    cmd = [_ffmpeg_tool("ffprobe", p, fmt), "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=codec_name,sample_rate,channels,duration:format=duration", "-of", "json", f"file:{p}"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        meta = json.loads(r.stdout or "{}") if r.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError) as e:
        raise AudioError(p, f"ffprobe failed ({e}); check the file and the ffmpeg installation") from None
    if meta is None:
        why = (r.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise AudioError(p, f"not readable as audio by ffprobe ({why}); expected a {fmt} audio file; "
                            "check that it is really audio, not truncated or renamed")
    if not meta.get("streams"):
        raise AudioError(p, f"{fmt} file has no audio stream; expected one audio stream")
    s = meta["streams"][0]
    sr, ch = int(s.get("sample_rate") or 0), int(s.get("channels") or 0)
    info = AudioInfo(str(p), sr, ch, 0, fmt, s.get("codec_name"), "ffmpeg")
    dur = next((float(d) for d in (s.get("duration"), meta.get("format", {}).get("duration"))
                if d not in (None, "N/A")), None)
    if dur is None and sr > 0 and ch > 0:  # no duration in the container: count by decoding (streamed)
        frames = sum(d.shape[0] for _, d in _ffmpeg_blocks(p, info, 0, None, DEFAULT_BLOCK, False))
    else:
        frames = int(round((dur or 0.0) * sr))
    return AudioInfo(str(p), sr, ch, frames, fmt, s.get("codec_name"), "ffmpeg")


def _ffmpeg_blocks(path, info: AudioInfo, start: int, stop: int | None, block_frames: int,
                   fast_seek: bool) -> Iterator[tuple[int, np.ndarray]]:
    """Decode with an ffmpeg subprocess to raw f32le on a pipe. Exact ``start`` via the atrim
    filter (decodes from the beginning); ``fast_seek`` seeks the input instead (approximate)."""
    sr, ch = info.sample_rate, info.channels
    cmd = [_ffmpeg_tool("ffmpeg", path, info.format), "-nostdin", "-hide_banner", "-loglevel", "error"]
    if fast_seek and start:
        cmd += ["-ss", f"{start / sr:.6f}"]
    cmd += ["-i", f"file:{path}", "-map", "0:a:0", "-vn", "-sn", "-dn"]
    if not fast_seek and (start or stop is not None):
        cmd += ["-af", f"atrim=start_sample={start}" + ("" if stop is None else f":end_sample={stop}")]
    cmd += ["-ar", str(sr), "-ac", str(ch), "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
    frame_bytes, pos, eof = 4 * ch, start, False
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        except OSError as e:
            raise AudioError(path, f"could not start ffmpeg ({e}); {_INSTALL_HINT}") from None
        try:
            while stop is None or pos < stop:
                want = block_frames if stop is None else min(block_frames, stop - pos)
                buf = proc.stdout.read(want * frame_bytes)
                n = len(buf) // frame_bytes
                if n == 0:
                    eof = True
                    break
                yield pos, np.frombuffer(buf, np.float32, count=n * ch).reshape(n, ch)
                pos += n
        finally:  # also runs when the consumer closes the generator early
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            rc = proc.wait()
        if eof and rc != 0:
            err.seek(0)
            why = (err.read().decode(errors="replace").strip().splitlines() or [f"exit status {rc}"])[-1]
            raise AudioError(path, f"ffmpeg could not decode past sample {pos} (t = {pos / sr:.3f} s): {why}; "
                                   "the file is truncated or corrupt, re-export it")
