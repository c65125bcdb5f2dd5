"""The spectrogram front end in PyTorch, on any device: the same numbers as :mod:`sonotype.features.frontend`.

Hann STFT (uncentred, periodic window) -> ``(K, B)`` band matrix -> dB -> windows of ``W`` frames
every ``S`` frames -> per-window ``(x - mean) / (std + 1)`` (optionally per-bin centring), exactly
the numpy front end's steps, so that a GPU can make its own windows instead of waiting for the
CPU. Shapes as in :mod:`sonotype.features.frontend`: ``F`` frames, ``K`` FFT bins, ``B`` band bins,
``W`` frames per window, ``N`` windows. Tested against the numpy front end on real clips
(``tests/test_features_torch.py``: max |difference| of normalised windows below 2e-3 in float32).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .. import units
from ..audio.io import DEFAULT_BLOCK, iter_blocks
from ..errors import ConfigError
from .frontend import AMIN, Framing, FrontEnd, framing_for


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when PyTorch sees a GPU, else CPU; ``"cuda"`` without a GPU is a clear error."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not str(name).startswith("cuda:"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for but PyTorch sees no CUDA GPU "
                          f"(torch {torch.__version__}); use --device cpu or auto")
    return torch.device(name)


class TorchFraming:
    """A :class:`~sonotype.features.frontend.Framing` with its Hann window and band matrix as tensors on ``device``."""

    def __init__(self, framing: Framing, *, device: torch.device | str = "cpu"):
        self.framing = framing
        self.device = torch.device(device)
        self.window = torch.hann_window(framing.n_fft, periodic=True, dtype=torch.float32, device=self.device)
        self.band = torch.from_numpy(np.array(framing.band, np.float32)).to(self.device)  # (K, B)

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """Band spectrogram ``(F, B)`` float32 of samples ``x`` ``(n,)`` on this device (dB for ``scale='log'``)."""
        fr = self.framing
        f = units.n_frames(int(x.shape[0]), n_fft=fr.n_fft, hop=fr.hop)
        if f == 0:
            return x.new_zeros((0, fr.n_bins))
        spec = torch.stft(x[: (f - 1) * fr.hop + fr.n_fft].float(), fr.n_fft, hop_length=fr.hop,
                          win_length=fr.n_fft, window=self.window, center=False, return_complex=True)  # (K, F)
        mag = spec.abs().transpose(0, 1) @ self.band  # (F, B)
        if fr.scale == "log":
            return 20.0 * torch.log10(torch.clamp(mag, min=AMIN))
        return mag

    def windows(self, frames: torch.Tensor) -> torch.Tensor:
        """All whole windows of frames ``(F, B)``, normalised: ``(N, W, B)`` float32."""
        fr = self.framing
        n = units.n_windows(int(frames.shape[0]), window=fr.window, stride=fr.stride)
        if n == 0:
            return frames.new_zeros((0, fr.window, frames.shape[1]))
        view = frames.unfold(0, fr.window, fr.stride)[:n].transpose(1, 2)  # (N, W, B)
        return normalise(view, centre_bins=fr.centre_bins)


def normalise(windows: torch.Tensor, *, centre_bins: bool = False) -> torch.Tensor:
    """``(x - mean) / (std + 1)`` per window, as :func:`sonotype.features.frontend.normalise`. ``(N, W, B)`` -> same."""
    offset = windows.mean(dim=1, keepdim=True) if centre_bins else windows.mean(dim=(1, 2), keepdim=True)
    centred = windows - offset  # (N, W, B)
    scale = centred.std(dim=(1, 2), keepdim=True, correction=0) + 1.0  # (N, 1, 1) population std as numpy
    return centred / scale


@dataclass(frozen=True)
class TorchWindowBatch:
    """Consecutive normalised windows ``first .. first+len-1`` of one file, as a tensor on the front end's device."""

    first: int
    windows: torch.Tensor  # (N, W, B) float32

    def __len__(self) -> int:
        return int(self.windows.shape[0])


def _to_device(x: np.ndarray, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(x)
    if device.type == "cuda":  # page-locked staging buffer: the copy runs asynchronously
        return t.pin_memory().to(device, non_blocking=True)
    return t


def iter_windows_torch(path: str | Path, frontend: FrontEnd, *, channel: int = 0, sample_rate: float,
                       batch: int = 4096, block_frames: int = DEFAULT_BLOCK,
                       device: torch.device | str = "cpu") -> Iterator[TorchWindowBatch]:
    """Stream a file as batches of at most ``batch`` normalised windows on ``device``.

    Decoding stays on the CPU (block by block, as :func:`sonotype.features.frontend.iter_windows`); the
    STFT, band, dB, windowing and normalisation run on ``device``. The samples of a frame that
    straddles two blocks and the frames of a window that straddles two spectrogram chunks are
    carried over, so the windows equal those of the whole file at once.
    """
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    dev = resolve_device(device)
    tf = TorchFraming(framing_for(frontend, sample_rate, path), device=dev)
    fr = tf.framing
    w, s = fr.window, fr.stride
    carry = np.zeros(0, np.float32)  # samples not yet in a whole frame
    pending = torch.zeros((0, fr.n_bins), device=dev)  # frames not yet used by a whole window
    next_window = 0
    for block in iter_blocks(path, channel=channel, block_frames=block_frames):
        buf = np.concatenate([carry, block.samples]) if carry.size else block.samples
        f = fr.n_frames(buf.shape[0])
        if f:
            frames = tf.spectrogram(_to_device(np.ascontiguousarray(buf[: (f - 1) * fr.hop + fr.n_fft]), dev))
            pending = torch.cat([pending, frames]) if pending.shape[0] else frames  # (f', B)
            buf = buf[f * fr.hop:]
            n = units.n_windows(int(pending.shape[0]), window=w, stride=s)
            for i in range(0, n, batch):
                j = min(n, i + batch)
                yield TorchWindowBatch(next_window + i, tf.windows(pending[i * s:(j - 1) * s + w]))
            next_window += n
            pending = pending[n * s:]
        carry = buf
