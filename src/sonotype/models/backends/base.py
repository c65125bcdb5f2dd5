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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...audio.io import Channel
from ...audio.resample import read_resampled, resample
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

    def embed_at_rate(self, x: np.ndarray, sample_rate: float) -> np.ndarray:
        if sample_rate != self.info.sample_rate:
            raise ConfigError(f"{self.info.name} expects audio at {self.info.sample_rate:g} Hz, got {sample_rate:g} Hz; "
                              "use Backend.embed, which converts the rate")
        return self.embed_chunks(self.chunk(x))
