"""The encoder's local Conv2D computed once per frame and shared by the overlapping windows.

Windows of ``W`` frames every ``S`` frames overlap (``S = W/2`` by default), and the 8x8 local
conv (:class:`sonotype.models.lstm_v3.Encoder`), ~3/4 of the encoder's CPU time, is linear. For window
``i`` (first frame ``i*S``, normalised as ``(x - o_i) / s_i``) and a row ``t`` whose taps all lie
inside the window (``pt0 <= t < W - pt1``, with ``pt0, pt1`` the kernel's 'same' padding)::

    conv(window_i)[t] = (G[i*S + t] - O_i) / s_i + bias,    G = conv over the raw frames (no bias),
                                                              O_i = conv of the constant offset o_i

so ``G`` is computed once per frame (one conv row per frame instead of one per frame per window)
and only the ``pt0 + pt1`` rows at each window's edges, where the window's own zero padding cuts
the kernel, are convolved per window. ``s_i > 0``, so the max over frequency is taken before the
division. The result equals the plain forward up to float32 rounding (tested in
``tests/test_sharedconv.py``); the frames are centred on their mean first to keep the
cancellation in ``G - O_i`` small.

Shapes: ``F`` frames, ``B`` bins, ``N`` windows, ``C`` local filters, ``W`` frames per window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..audio.io import DEFAULT_BLOCK
from ..features.frontend import FrontEnd, framing_for, iter_frame_chunks, normalise
from .lstm_v3 import Encoder


def shared_local(encoder: Encoder, frames: torch.Tensor, offset: torch.Tensor, scale: torch.Tensor, *,
                 stride: int) -> torch.Tensor:
    """Local features ``(N, C, W)`` (max over frequency, ReLU) of the ``N`` windows of raw ``frames`` ``(F, B)``.

    ``offset`` ``(N, 1, 1)`` or ``(N, 1, B)`` and ``scale`` ``(N, 1, 1)``: each window's normalisation
    (:func:`sonotype.features.frontend.normalise`); window ``i`` is frames ``i*stride .. i*stride + W - 1``.
    """
    w_ = encoder.config.window
    kt, _ = encoder.config.local_kernel
    pf0, pf1, pt0, pt1 = encoder._pad2d
    weight, bias = encoder.local_conv.weight, encoder.local_conv.bias  # (C, 1, kt, kf), (C,)
    n = int(offset.shape[0])
    c = frames.mean()
    x = frames - c  # (F, B) centred: smaller values, smaller cancellation below
    o = offset - c  # (N, 1, 1|B)
    g = F.conv2d(F.pad(x[None, None], (pf0, pf1, 0, 0)), weight)[0]  # (C, F-kt+1, B): row r <-> frame r+pt0
    n_in = w_ - kt + 1  # interior rows per window
    wsum = weight.sum(dim=2)  # (C, 1, kf): every time tap valid
    b = x.shape[1]
    if o.shape[2] == 1:
        # one offset per window: O_i = o_i * conv(ones), which is the same for every bin whose kernel is
        # not cut by the frequency padding; so the max over those bins is taken once per frame, unnormalised
        ones = torch.ones((1, 1, b), dtype=x.dtype, device=x.device)
        c1 = F.conv1d(F.pad(ones, (pf0, pf1)), wsum)[0]  # (C, B)
        m = g[:, :, pf0:b - pf1].amax(dim=2).unfold(1, n_in, stride)[:, :n]  # (C, N, n_in) interior bins
        inner = m - o.reshape(1, n, 1) * c1[:, pf0, None, None]
        edge = torch.cat([g[:, :, :pf0], g[:, :, b - pf1:]], dim=2).unfold(1, n_in, stride)[:, :n]  # (C, N, e, n_in)
        c1e = torch.cat([c1[:, :pf0], c1[:, b - pf1:]], dim=1)  # (C, e)
        inner = torch.maximum(inner, (edge - o.reshape(1, n, 1, 1) * c1e[:, None, :, None]).amax(dim=2))
    else:  # one offset per bin (centre_bins): subtract row by row (contiguous bins)
        oc = F.conv1d(F.pad(o.reshape(n, 1, -1), (pf0, pf1)), wsum).transpose(0, 1)  # (C, N, B)
        last = stride * (n - 1) + 1
        inner = torch.stack([(g[:, t:t + last:stride] - oc).amax(dim=2) for t in range(n_in)], dim=2)  # (C, N, n_in)
    inner = inner.transpose(0, 1) / scale.reshape(n, 1, 1) + bias[None, :, None]  # (N, C, n_in)
    # edge rows: the window's zero padding cuts the kernel; convolve the normalised edge frames directly
    starts = torch.arange(n, device=x.device) * stride
    xn_top = (x[starts[:, None] + torch.arange(kt - 1, device=x.device)] - o) / scale  # (N, kt-1, B)
    xn_bot = (x[starts[:, None] + torch.arange(w_ - kt + 1, w_, device=x.device)] - o) / scale  # (N, kt-1, B)
    top = F.conv2d(F.pad(xn_top[:, None], (pf0, pf1, pt0, 0)), weight, bias).amax(dim=3)  # (N, C, pt0)
    bot = F.conv2d(F.pad(xn_bot[:, None], (pf0, pf1, 0, pt1)), weight, bias).amax(dim=3)  # (N, C, pt1)
    return F.relu(torch.cat([top, inner, bot], dim=2))  # (N, C, W)


def shared_forward(encoder: Encoder, frames: torch.Tensor, windows: torch.Tensor, offset: torch.Tensor,
                   scale: torch.Tensor, *, stride: int) -> torch.Tensor:
    """Embeddings ``(N, D)`` of the normalised ``windows`` ``(N, W, B)`` cut from raw ``frames`` ``(F, B)``:
    the encoder's forward with its local conv shared between overlapping windows."""
    local = shared_local(encoder, frames, offset, scale, stride=stride)  # (N, C, W)
    return encoder.lstm(encoder.sequence(windows, local=local))[:, -1]  # (N, D)


def iter_window_frames(path: str | Path, frontend: FrontEnd, *, channel: int = 0, sample_rate: float,
                       batch: int = 64, block_frames: int = DEFAULT_BLOCK
                       ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """As :func:`sonotype.features.frontend.iter_windows`, with each batch's raw frames and normalisation:
    yields ``(first, frames (f, B), windows (n, W, B), offset (n, 1, 1|B), scale (n, 1, 1))``."""
    framing = framing_for(frontend, sample_rate, path)
    w, s = framing.window, framing.stride
    for first, chunk in iter_frame_chunks(path, frontend, channel=channel, sample_rate=sample_rate, batch=batch,
                                          block_frames=block_frames):  # chunk (f, B)
        view = np.lib.stride_tricks.sliding_window_view(chunk, w, axis=0)[::s]  # (n, B, W)
        wins, off, sc = normalise(view.transpose(0, 2, 1), centre_bins=framing.centre_bins)
        yield first, chunk, wins, off, sc
