"""The seed's LSTM-V3 encoder as a backend: its own spectrogram front end, one embedding per window.

The front end adapts to the file's rate (band in Hz; with ``reference_rate`` frames of fixed
duration), so the model takes each file at its own rate unless it declares one: ``sample_rate``
given here, else the front end's ``reference_rate``, else the (median) rate of its training files,
which checkpoints record since this version. With a declared rate every file is converted to it,
so that frames last the same time in a mixed-rate collection and a file whose Nyquist frequency
lies under the model's band is embedded instead of skipped; without one, such a file is an error
that says so.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ...errors import ConfigError
from ...features.frontend import framing_for, span_windows, spectrogram
from ..checkpoint import LoadedModel, model_version
from ..embed import embed_windows
from .base import Backend, BackendInfo, check_speedup


class LSTMBackend(Backend):
    """``model``'s encoder; ``stride`` frames between windows (None: the front end's)."""

    def __init__(self, model: LoadedModel, *, stride: int | None = None, sample_rate: float | None = None,
                 speedup: float = 1.0):
        fe = model.frontend if stride is None else replace(model.frontend, stride=stride)
        self.model, self.frontend = model, fe
        trained_at = model.checkpoint.data.sample_rate
        rate = sample_rate or fe.reference_rate or trained_at
        # hop and window in seconds at the declared rate (at the file's own rate when none is declared
        # and no reference rate fixes the frame length: then they are nominal, at 48 kHz)
        r = rate or 48000.0
        framing = fe.at_rate(r) if (fe.fmax or 0) <= r / 2 else None
        hop = framing.hop if framing else fe.hop
        self.info = BackendInfo(
            name="lstm-v3", version=model_version(model).split("@")[-1], sample_rate=rate,
            window_s=((fe.window - 1) * hop + (framing.n_fft if framing else fe.n_fft)) / r,
            hop_s=fe.stride * hop / r, dim=model.encoder.config.embedding_dim, speedup=check_speedup(speedup))

    def embed_at_rate(self, x: np.ndarray, sample_rate: float) -> np.ndarray:
        fe = self.frontend
        if fe.fmax is not None and fe.fmax > sample_rate / 2 and not self.info.sample_rate:
            raise ConfigError(f"audio at {sample_rate:g} Hz does not reach the model's band (up to {fe.fmax:g} Hz) "
                              "and the model declares no rate to convert it to; pass sample_rate= (e.g. the "
                              "rate the model was trained at)")
        framing = framing_for(fe, sample_rate, "<span>")
        x = np.asarray(x, np.float32)
        if x.shape[0] < framing.n_fft:
            x = np.pad(x, (0, framing.n_fft - x.shape[0]))
        return embed_windows(self.model.encoder, span_windows(spectrogram(x, framing), framing))
