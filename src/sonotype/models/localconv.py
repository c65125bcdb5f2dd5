"""The encoder's local Conv2D followed by the max over frequency, with a backward pass that
only looks at the maxima.

The LSTM-V3 encoder convolves each window ``(W, B)`` with ``C`` 8x8 filters and keeps, for every
filter and frame, the largest response over the ``B`` frequency bins. Plain autograd computes the
weight gradient of the whole ``(N, C, W, B)`` response map (the transposed convolution, ~85 % of a
CPU training step) and then throws away every bin but the maximum. Here the forward pass keeps the
index of each maximum, and the backward pass gathers only the ``N * C * W`` input patches that
produced them::

    dL/dw[c, i, j] = sum_{n,t} g[n, c, t] * xp[n, t + i, argmax[n, c, t] + j]      (one gather per tap)
    dL/db[c]       = sum_{n,t} g[n, c, t]

which is the gradient ``max_pool2d`` would pass back (the same subgradient: the first maximum
when bins tie) at a fraction of the cost. The input gradient is not computed: the input is a
spectrogram. When the input does require a gradient, :func:`local_max` takes the plain path.
Tested against the plain path in ``tests/test_localconv.py``; ``bench/bench_train.py`` times both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _LocalMax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(xp.unsqueeze(1), weight, bias)  # (N, C, W, B)
        # max_pool2d finds the maxima and their indices ~3x faster than Tensor.max(dim) on the CPU
        m, flat_idx = F.max_pool2d(y, (1, y.shape[3]), return_indices=True)  # (N, C, W, 1): t * B + bin
        ctx.save_for_backward(xp, flat_idx.squeeze(3))
        ctx.n_bins = y.shape[3]
        ctx.kernel = tuple(weight.shape)
        ctx.dtypes = (weight.dtype, bias.dtype)
        return m.squeeze(3)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        xp, flat_idx = ctx.saved_tensors  # (N, W + kt - 1, B + kf - 1), (N, C, W) = t * B + bin of each maximum
        c, _, kt, kf = ctx.kernel
        n, _, w = flat_idx.shape
        bp = xp.shape[2]
        flat = xp.reshape(n, -1)  # (N, (W + kt - 1) * (B + kf - 1))
        rows = torch.arange(w, device=xp.device) * (bp - ctx.n_bins)  # (W,) t * (kf - 1): padded row length
        base = (flat_idx + rows[None, None, :]).reshape(n, -1)  # (N, C*W): patch top-left t * bp + bin
        gf = g.reshape(n, -1).to(flat.dtype)  # (N, C*W)
        gw = torch.empty((kt * kf, c), dtype=flat.dtype, device=xp.device)
        for i in range(kt):
            for j in range(kf):
                tap = flat.gather(1, base + (i * bp + j))  # (N, C*W): the input under tap (i, j) at each maximum
                gw[i * kf + j] = (tap * gf).reshape(n, c, w).sum(dim=(0, 2))
        grad_w = gw.t().reshape(c, 1, kt, kf).to(ctx.dtypes[0])
        grad_b = g.sum(dim=(0, 2)).to(ctx.dtypes[1])
        return None, grad_w, grad_b


def local_max(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *,
              pad: tuple[int, int, int, int]) -> torch.Tensor:
    """Max over frequency of the 1-channel conv of ``x`` ``(N, W, B)``: ``(N, C, W)``, before the ReLU.

    ``weight`` ``(C, 1, kt, kf)``, ``bias`` ``(C,)``; ``pad`` is ``F.pad``'s (freq before, after, time
    before, after) for 'same' output. Values equal ``conv2d`` + ``amax``; under autograd the weight
    gradient is computed from the maxima only (see the module docstring).
    """
    xp = F.pad(x, pad)  # (N, W + kt - 1, B + kf - 1)
    if not torch.is_grad_enabled() or not (weight.requires_grad or bias.requires_grad):
        return F.conv2d(xp.unsqueeze(1), weight, bias).amax(dim=3)  # (N, C, W)
    if x.requires_grad:  # an input gradient is wanted: plain autograd (max_pool2d's backward is the fast one)
        y = F.conv2d(xp.unsqueeze(1), weight, bias)  # (N, C, W, B)
        return F.max_pool2d(y, (1, y.shape[3])).squeeze(3)
    return _LocalMax.apply(xp, weight, bias)
