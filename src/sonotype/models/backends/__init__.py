"""Embedding backends: the in-house LSTM-V3 encoder (default) and pretrained models (optional extras).

``load_backend("lstm", model=...)`` or ``load_backend("birdnet", speedup=16)``; each backend
declares its rate, window and hop (:class:`BackendInfo`) and converts any file to its rate.
"""

from __future__ import annotations

from ...errors import ConfigError
from ..checkpoint import LoadedModel
from .base import Backend, BackendInfo, WaveformBackend

#: backend names for the CLI and configs; "lstm" is the default (trained here, small, fast)
BACKENDS = ("lstm", "birdnet")


def load_backend(name: str, *, model: LoadedModel | None = None, stride: int | None = None,
                 hop_s: float | None = None, speedup: float = 1.0) -> Backend:
    """A backend by name. ``lstm`` needs ``model`` and takes ``stride`` (frames between windows);
    ``birdnet`` takes ``hop_s`` (seconds between 3-s windows, default 1 s). Both take ``speedup``."""
    if name == "lstm":
        if model is None:
            raise ConfigError("the lstm backend needs a trained encoder: pass --model MODEL.pt")
        from .lstm import LSTMBackend
        return LSTMBackend(model, stride=stride, speedup=speedup)
    if name == "birdnet":
        from .birdnet import BirdNETBackend
        return BirdNETBackend(hop_s=1.0 if hop_s is None else hop_s, speedup=speedup)
    raise ConfigError(f"unknown backend {name!r}; expected one of {BACKENDS}")


__all__ = ["BACKENDS", "Backend", "BackendInfo", "WaveformBackend", "load_backend"]
