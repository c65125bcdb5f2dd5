"""The embedding-backend interface: audio span in, a sequence of embeddings out.

A backend declares the sample rate it expects, the seconds of audio behind each embedding and the
hop between them (:class:`BackendInfo`). Clips at any other rate are converted by
:mod:`sonotype.audio.resample` first; ``speedup`` plays them faster before that (for low-frequency
species on models trained on higher sounds). Adding a backend is one module with a subclass of
:class:`Backend` (model-specific front end) or :class:`WaveformBackend` (fixed-length waveform
chunks in, one vector each out) and a line in :data:`sonotype.models.backends.BACKENDS`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ...audio.io import Channel, audio_info, iter_blocks
from ...audio.resample import iter_resampled, read_resampled, resample
from ...errors import ConfigError


@dataclass(frozen=True)
class BackendInfo:
    """What a backend is and what it expects. Times are seconds of the audio as the model hears it
    (after ``speedup``); ``sample_rate`` None = the file's own rate (the model's front end adapts)."""

    name: str            # "lstm-v3", "birdnet"
    version: str         # weights version: checkpoint hash, model release
    sample_rate: float | None  # Hz
    window_s: float      # audio behind one embedding
    hop_s: float         # between consecutive embeddings
    dim: int             # embedding size D
    speedup: float = 1.0
    licence: str = ""

    @property
    def key(self) -> str:
        """Stable name for stored embeddings and runs: ``name@version`` plus the hop and any speed-up."""
        k = f"{self.name}@{self.version}/hop{self.hop_s:g}"
        return k + (f"/x{self.speedup:g}" if self.speedup != 1 else "")

    @property
    def label(self) -> str:
        """A name a person can read, e.g. ``BirdNET 2.4 (x16)``."""
        return f"{self.name} {self.version}" + (f" (x{self.speedup:g})" if self.speedup != 1 else "")

    def to_dict(self) -> dict:
        return {**asdict(self), "key": self.key}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BackendInfo":
        """The info of :meth:`to_dict` (``key`` and unknown keys ignored); ConfigError naming a missing field."""
        names = [f.name for f in fields(cls)]
        missing = [n for n in names[:6] if n not in d]
        if missing:
            raise ConfigError(f"backend record {dict(d)!r} lacks {', '.join(missing)}; expected BackendInfo.to_dict()")
        return cls(**{n: d[n] for n in names if n in d})


def check_speedup(speedup: float) -> float:
    if isinstance(speedup, bool) or not isinstance(speedup, (int, float)) or not math.isfinite(speedup) \
            or not 0 < speedup <= 1000:
        raise ConfigError(f"speedup {speedup!r}; expected a number in (0, 1000] (1 = real speed; 16 plays "
                          "2 kHz audio as 32 kHz)")
    return float(speedup)


class Backend(ABC):
    """Embeds audio. Subclasses set ``info`` and implement :meth:`embed_at_rate`."""

    info: BackendInfo

    @abstractmethod
    def embed_at_rate(self, x: np.ndarray, sample_rate: float) -> np.ndarray:
        """Samples ``(n,)`` already at ``sample_rate`` (= ``info.sample_rate`` when that is set) ->
        embeddings ``(N, D)`` float32, N >= 1 (a span shorter than a window is padded)."""

    def embed(self, x: np.ndarray, sample_rate: float) -> np.ndarray:
        """Samples ``(n,)`` at the recording's ``sample_rate`` Hz -> ``(N, D)``: speed-up and
        conversion to the backend's rate first."""
        src = float(sample_rate) * self.info.speedup
        target = self.info.sample_rate or src
        y = resample(x, orig_rate=sample_rate, target_rate=target, speedup=self.info.speedup)
        return self.embed_at_rate(y, target)

    def embed_span(self, path: str | Path, *, channel: Channel = 0, start: int = 0,
                   stop: int | None = None) -> np.ndarray:
        """Embeddings ``(N, D)`` of samples ``[start, stop)`` (file's own rate) of one channel."""
        y, rate = read_resampled(path, target_rate=self.info.sample_rate, channel=channel, start=start,
                                 stop=stop, speedup=self.info.speedup)
        return self.embed_at_rate(y, rate)

    def iter_embeddings(self, path: str | Path, *, channel: Channel = 0, batch: int = 256,
                        wanted: Callable[[np.ndarray], np.ndarray] | None = None) -> Iterator[np.ndarray]:
        """The embeddings of a whole file in consecutive pieces ``(n_i, D)`` whose concatenation is
        :meth:`embed_span` of the file. Here one piece (the file is read whole); :class:`WaveformBackend`
        streams it in bounded memory. ``wanted``: window indices ``(n,)`` -> which of them to embed (the
        others may come back as NaN rows, unembedded; here every window is embedded)."""
        yield self.embed_span(path, channel=channel)


class WaveformBackend(Backend):
    """A model that maps fixed-length waveform chunks ``(L,)`` at its own rate to one vector each."""

    @abstractmethod
    def embed_chunks(self, chunks: np.ndarray) -> np.ndarray:
        """``(N, L)`` float32 chunks, ``L = window_s * sample_rate`` -> ``(N, D)`` float32."""

    def chunk(self, x: np.ndarray) -> np.ndarray:
        """Samples ``(n,)`` at the backend rate -> ``(N, L)`` chunks ``hop`` apart. A span shorter than
        one window is centred in zeros; the tail past the last whole chunk gets one zero-padded
        chunk when it is at least half a hop long."""
        rate = float(self.info.sample_rate)
        size, hop = int(round(self.info.window_s * rate)), max(1, int(round(self.info.hop_s * rate)))
        x = np.asarray(x, np.float32)
        if x.size <= size:
            lead = (size - x.size) // 2
            return np.pad(x, (lead, size - x.size - lead))[None]
        n = 1 + (x.size - size) // hop
        if x.size - ((n - 1) * hop + size) >= hop / 2:
            n += 1
        x = np.pad(x, (0, max(0, (n - 1) * hop + size - x.size)))
        return np.lib.stride_tricks.sliding_window_view(x, size)[::hop][:n].copy()

    def iter_embeddings(self, path: str | Path, *, channel: Channel = 0, batch: int = 256,
                        wanted: Callable[[np.ndarray], np.ndarray] | None = None) -> Iterator[np.ndarray]:
        """Stream a file through the converter and :meth:`embed_chunks`, ``batch`` chunks at a time: memory
        stays bounded however long the file, and the pieces concatenate to :meth:`embed_span` of the
        whole file (the same resampled stream, cut by the rule of :meth:`chunk`). ``wanted``: chunk indices
        ``(n,)`` -> bool ``(n,)``; the chunks it declines are not embedded and come back as NaN rows (the
        model's cost goes to the chunks asked for; the audio is still read and converted once)."""
        emitted = 0

        def embed(chunks: list[np.ndarray]) -> np.ndarray:
            nonlocal emitted
            idx = np.arange(emitted, emitted + len(chunks))
            emitted += len(chunks)
            if wanted is None:
                return self.embed_chunks(np.stack(chunks))
            keep = np.asarray(wanted(idx), bool)
            out = np.full((len(chunks), self.info.dim), np.nan, np.float32)
            if keep.any():
                out[keep] = self.embed_chunks(np.stack([c for c, k in zip(chunks, keep) if k]))
            return out

        rate = float(self.info.sample_rate)
        size, hop = int(round(self.info.window_s * rate)), max(1, int(round(self.info.hop_s * rate)))
        info = audio_info(path)
        blocks = (b.samples for b in iter_blocks(path, channel=channel, info=info))
        buf, offset, done = np.zeros(0, np.float32), 0, 0  # buf[0] is stream sample `offset`; `done` chunks cut
        ready: list[np.ndarray] = []
        for y in iter_resampled(blocks, orig_rate=info.sample_rate, target_rate=rate, speedup=self.info.speedup):
            buf = np.concatenate([buf, y])
            while done * hop + size <= offset + buf.size:  # a whole chunk: the same in the file-at-once cut
                a = done * hop - offset
                ready.append(buf[a:a + size])
                done += 1
                if len(ready) == batch:
                    yield embed(ready)
                    ready = []
            cut = min(done * hop - offset, buf.size)
            buf, offset = buf[cut:].copy(), offset + cut
        total = offset + buf.size
        if done == 0:  # shorter than one window: one chunk, centred (as :meth:`chunk`)
            ready = list(self.chunk(buf))
        elif total - ((done - 1) * hop + size) >= hop / 2:  # the tail, zero-padded
            rest = buf[min(done * hop - offset, buf.size):]
            ready.append(np.pad(rest, (0, size - rest.size)))
        if ready:
            yield embed(ready)

    def embed_at_rate(self, x: np.ndarray, sample_rate: float) -> np.ndarray:
        if sample_rate != self.info.sample_rate:
            raise ConfigError(f"{self.info.name} expects audio at {self.info.sample_rate:g} Hz, got {sample_rate:g} Hz; "
                              "use Backend.embed, which converts the rate")
        return self.embed_chunks(self.chunk(x))
