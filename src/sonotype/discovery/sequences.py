"""Embedding sequences: a region or clip as the ordered window embeddings of its span.

Sound-type discovery compares these sequences by DTW. For stored regions they are computed
once per (region, encoder) and kept in the store (``sequences`` table), so that re-clustering
never re-runs the encoder. A region's windows are the detector's own windows (same sample
grid), re-read from its span only, so the cost is proportional to the vocal time, not to the
recording length.

Also here: the two baseline representations that ``cluster-eval`` compares against (the raw
normalised spectrogram frames, and an untrained encoder) and spectrogram thumbnails for maps and
galleries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from tqdm import tqdm

from ..audio.io import audio_info, read_audio
from ..audio.resample import read_resampled
from ..audio.span import Span
from ..errors import ConfigError, SonotypeError
from ..features.frontend import (
    Framing,
    FrontEnd,
    framing_for,
    normalise,
    span_windows,
    spectrogram,
)
from ..features.pooling import max_over_time, pool_time
from ..models.backends import Backend
from ..models.checkpoint import LoadedModel, model_version
from ..models.embed import embed_windows
from ..models.lstm_v3 import Encoder, EncoderConfig
from ..store import RegionRow, Store


def span_frames(span: Span, frontend: FrontEnd, *, sample_rate: float | None = None) -> tuple[np.ndarray, Framing]:
    """Band spectrogram ``(F, B)`` (dB for the log scale) of the span and its framing; with
    ``sample_rate`` the span is first converted to that rate (Hz), whatever the file's."""
    info = audio_info(span.path)
    if sample_rate and sample_rate != info.sample_rate:
        x, rate = read_resampled(span.path, target_rate=sample_rate, channel=span.channel, start=span.start,
                                 stop=span.stop)
    else:
        x, rate = read_audio(span.path, channel=span.channel, start=span.start, stop=span.stop)
    framing = framing_for(frontend, rate, span.path)
    if x.shape[0] < framing.n_fft:  # shorter than one frame: zero-pad to one
        x = np.pad(x, (0, framing.n_fft - x.shape[0]))
    return spectrogram(np.ascontiguousarray(x, np.float32), framing), framing


def frame_sequence(frames: np.ndarray) -> np.ndarray:
    """Baseline representation: the span's frames ``(F, B)`` normalised as one window,
    ``(x - mean) / (std + 1)`` over the whole span, float32."""
    return normalise(frames[None].astype(np.float32))[0][0]


def untrained_encoder(config: EncoderConfig, *, seed: int = 0) -> Encoder:
    """A randomly initialised encoder (baseline): same architecture, PyTorch's default init, seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        enc = Encoder(config)
    return enc.eval()


@dataclass(frozen=True)
class ClipSequences:
    """The three representations of a list of clips, aligned with ``clips``."""

    clips: tuple[Span, ...]
    encoder: list[np.ndarray]       # (n_windows, D) per clip
    untrained: list[np.ndarray]     # (n_windows, D) per clip, random-init encoder
    frames: list[np.ndarray]        # (F, B) normalised spectrogram frames per clip
    thumbnails: list[np.ndarray]    # (F', B) dB spectrograms for pictures


#: frames between the windows of a clustering sequence: an eighth of a window (23 ms at 44.1 kHz, hop 256),
#: finer in time than the detector's half-window stride, so DTW can align the parts of a call; on the orca
#: catalog 4 gave the best nearest-neighbour accuracy of 4, 8 and 16 (issue-4 note). Cost: DTW time ~ stride^-2.
SEQUENCE_STRIDE = 4


def sequence_frontend(frontend: FrontEnd, stride: int | None = SEQUENCE_STRIDE) -> FrontEnd:
    """``frontend`` with the window stride used for clustering sequences (None: keep the front end's)."""
    if stride is None:
        return frontend
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= frontend.window:
        raise ConfigError(f"sequence stride {stride!r}; expected an int in 1..{frontend.window} (frames)")
    return replace(frontend, stride=stride)


def sequence_key(model: LoadedModel, stride: int | None = SEQUENCE_STRIDE) -> str:
    """The name sequences are stored under: the encoder version and the window stride."""
    return f"{model_version(model)}/stride{sequence_frontend(model.frontend, stride).stride}"


def clip_sequences(clips: Sequence[Span], model: LoadedModel, *, stride: int | None = SEQUENCE_STRIDE,
                   untrained_seed: int = 0, thumbnail_frames: int = 128, sample_rate: float | None = None,
                   on_error: Callable[[Span, Exception], None] | None = None) -> ClipSequences:
    """Embed each clip with the trained encoder and with an untrained one (windows ``stride`` frames
    apart), and keep its frames; with ``sample_rate`` every clip is first converted to that rate.
    Clips that cannot be read are passed to ``on_error`` and left out (or raise when it is None).
    """
    fe = sequence_frontend(model.frontend, stride)
    base = untrained_encoder(model.encoder.config, seed=untrained_seed)
    kept, enc, unt, frm, th = [], [], [], [], []
    for clip in clips:
        try:
            frames, framing = span_frames(clip, fe, sample_rate=sample_rate)
        except (SonotypeError, OSError) as e:  # unreadable audio (AudioError) or an unusable span (ConfigError)
            if on_error is None:
                raise
            on_error(clip, e)
            continue
        windows = span_windows(frames, framing)
        kept.append(clip)
        enc.append(embed_windows(model.encoder, windows))
        unt.append(embed_windows(base, windows))
        frm.append(frame_sequence(frames))
        th.append(thumbnail(frames, max_frames=thumbnail_frames))
    return ClipSequences(tuple(kept), enc, unt, frm, th)


def thumbnail(frames: np.ndarray, *, max_frames: int = 128) -> np.ndarray:
    """A small picture of a spectrogram ``(F, B)``: at most ``max_frames`` frames (max-pooled in time,
    so short clicks survive), float32 dB. Frequency stays on axis 1, low bins first."""
    if max_frames < 1:
        raise ConfigError(f"max_frames must be >= 1, got {max_frames}")
    return pool_time(np.asarray(frames, np.float32), max_frames, even=True)[0]


# ---------------------------------------------------------------------------- stored regions


def region_sequences(store: Store, run_id: int, model: LoadedModel, *, stride: int | None = SEQUENCE_STRIDE,
                     backend: Backend | None = None, region_ids: Iterable[int] | None = None,
                     progress: bool = False, log: Callable[[str], None] = print) -> dict[int, np.ndarray]:
    """Embedding sequences of a run's regions under ``model``'s encoder (or under ``backend``, e.g.
    BirdNET, stored under its :attr:`BackendInfo.key`): computed for the regions that have none
    stored yet, saved in the store (per recording, so an interrupted call keeps what it did), and
    returned for all, keyed by region id. With ``stride`` None the windows are the detector's own
    (same sample grid); stored under :func:`sequence_key`."""
    version = backend.info.key if backend is not None else sequence_key(model, stride)
    fe = sequence_frontend(model.frontend, stride)
    rows = store.regions(run_id=run_id)
    if region_ids is not None:
        wanted = {int(i) for i in region_ids}
        rows = [r for r in rows if r.id in wanted]
    have = store.sequences(version, [r.id for r in rows])
    todo: dict[int, list[RegionRow]] = {}
    for r in rows:
        if r.id not in have:
            todo.setdefault(r.recording_id, []).append(r)
    same_frontend = store.run_frontend(run_id) == fe
    bar = tqdm(total=sum(len(v) for v in todo.values()), desc="embedding regions", unit="region",
               disable=not progress)
    for rec_id, regs in todo.items():
        rec = store.recording(rec_id)
        channel = int(rec.channel_used or 0)
        try:
            framing = framing_for(fe, rec.sample_rate, rec.path) if same_frontend else None
            done = {}
            for r in regs:
                span = r.region.span(rec.path, channel=channel, framing=framing)
                if backend is not None:
                    done[r.id] = backend.embed_span(span.path, channel=span.channel, start=span.start, stop=span.stop)
                else:
                    frames, fr = span_frames(span, fe)
                    done[r.id] = embed_windows(model.encoder, span_windows(frames, fr))
                bar.update(1)
        except (SonotypeError, OSError, RuntimeError) as e:  # one unreadable recording (or one a backend
            # refuses: its runtime errors) must not stop the rest; programming errors still surface
            log(f"skipped the regions of {rec.path}: {e}")
            continue
        store.put_sequences(version, done)
        have.update(done)
    bar.close()
    return have


#: how embedding sequences are scaled before DTW (the same for every representation compared)
SCALINGS = ("none", "zscore", "zscore-l2")


def scale_sequences(seqs: Sequence[np.ndarray], *, mode: str = "zscore-l2") -> list[np.ndarray]:
    """Scale a set of sequences ``(n_i, D)`` as one corpus before DTW.

    ``zscore``: every dimension to zero mean and unit variance over all windows of the set (no
    dimension dominates the Euclidean local cost by its range alone); ``zscore-l2``: then each
    window to unit length, so the local cost depends on the direction of the embedding only.
    Statistics come from the sequences themselves (no labels). Returns float32 copies.
    """
    if mode not in SCALINGS:
        raise ConfigError(f"unknown scaling {mode!r}; expected one of {SCALINGS}")
    out = [np.asarray(s, np.float32) for s in seqs]
    if mode == "none" or not out:
        return [s.copy() for s in out]
    x = np.concatenate(out)
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
    out = [(s - mu) / sd for s in out]
    if mode == "zscore-l2":
        out = [s / (np.linalg.norm(s, axis=1, keepdims=True) + 1e-6) for s in out]
    return [s.astype(np.float32) for s in out]


def overview_spectrogram(path: str, frontend: FrontEnd, *, channel: int = 0, max_columns: int = 4000
                         ) -> tuple[np.ndarray, float, np.ndarray]:
    """A whole recording's band spectrogram, streamed and max-pooled in time to at most ``max_columns``
    columns (hours of audio in bounded memory).

    Returns ``(spec (C, B) float32 dB, seconds per column, band centre frequencies (B,) Hz)``.
    """
    from ..features.frontend import iter_frames
    info = audio_info(path)
    framing = framing_for(frontend, info.sample_rate, path)
    total = framing.n_frames(info.frames)
    if total < 1:
        raise ConfigError(f"{path}: shorter than one STFT frame ({framing.n_fft} samples)")
    pool = max(1, -(-total // max_columns))
    cols, carry = [], np.zeros((0, framing.n_bins), np.float32)
    for _, frames in iter_frames(path, frontend, channel=channel, sample_rate=info.sample_rate):
        buf = np.concatenate([carry, frames]) if carry.size else frames
        whole = buf.shape[0] // pool * pool
        if whole:
            cols.append(max_over_time(buf[:whole], np.arange(0, whole, pool)))  # (whole / pool, B)
        carry = buf[whole:]
    if carry.shape[0]:
        cols.append(max_over_time(carry, [0]))
    freqs = np.linspace(framing.fmin, framing.fmax, framing.n_bins)
    return np.concatenate(cols).astype(np.float32), pool * framing.hop / info.sample_rate, freqs
