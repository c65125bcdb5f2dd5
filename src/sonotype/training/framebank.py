"""Training batches in bulk: the cached frames of all training files in one array, a batch by one gather.

:func:`sonotype.training.train.next_frame_batch` slices each window out of its file's memory-mapped cache
in a Python loop and normalises in numpy. A :class:`FrameBank` holds the frames of every file in
one float16 array (files concatenated, ``offsets`` where each begins) when they fit in
``max_bytes``, so that the ``(b, W+1, B)`` blocks of a batch are one fancy index
``frames[starts[:, None] + arange(W+1)]``; larger corpora stay memory-mapped and are gathered one
file at a time (one fancy index per file in the batch, never per window). The blocks cross to the
device as float16 (half the bytes; page-locked on CUDA) and are normalised there.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .dataset import FrameCache, Item

#: corpora whose cached frames (float16) exceed this stay memory-mapped (gathered per file)
DEFAULT_MAX_BYTES = 4 << 30


class FrameBank:
    """The cached ``(F_i, B)`` frames of ``items`` for bulk gathering. Shapes: ``b`` windows, ``W`` frames each."""

    def __init__(self, items: Sequence[Item], cache: FrameCache, *, max_bytes: int = DEFAULT_MAX_BYTES):
        arrays = [cache.frames(it) for it in items]
        lengths = np.array([a.shape[0] for a in arrays], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)  # (n_items,)
        n_bins = arrays[0].shape[1] if arrays else 0
        self.in_memory = int(lengths.sum()) * n_bins * 2 <= max_bytes
        self.arrays = arrays
        self.frames = np.concatenate([np.asarray(a, np.float16) for a in arrays]) if self.in_memory and arrays \
            else None  # (sum F_i, B) float16

    def gather(self, pairs: np.ndarray, length: int) -> np.ndarray:
        """Blocks of ``length`` frames: ``pairs`` ``(b, 2)`` (item, first frame) -> ``(b, length, B)`` float16."""
        ar = np.arange(length, dtype=np.int64)
        if self.frames is not None:
            return self.frames[(self.offsets[pairs[:, 0]] + pairs[:, 1])[:, None] + ar]  # (b, length, B)
        out = np.empty((len(pairs), length, self.arrays[0].shape[1]), np.float16)
        for i in np.unique(pairs[:, 0]):  # one gather per file of the batch
            sel = np.nonzero(pairs[:, 0] == i)[0]
            out[sel] = self.arrays[i][pairs[sel, 1][:, None] + ar]
        return out


def next_frame_tensors(blocks: torch.Tensor, *, window: int, centre_bins: bool = False
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``blocks`` ``(b, W+1, B)`` (any float dtype, any device) -> normalised windows ``(b, W, B)`` and their
    next frames ``(b, B)`` float32, both with the window's statistics (as :func:`sonotype.training.train.next_frame_batch`)."""
    blocks = blocks.float()
    w = blocks[:, :window]  # (b, W, B)
    offset = w.mean(dim=1, keepdim=True) if centre_bins else w.mean(dim=(1, 2), keepdim=True)  # (b, 1, B|1)
    centred = w - offset
    scale = centred.std(dim=(1, 2), keepdim=True, correction=0) + 1.0  # (b, 1, 1)
    return centred / scale, (blocks[:, window] - offset[:, 0]) / scale[:, 0]


def to_device(blocks: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array onto ``device`` (through page-locked memory on CUDA, asynchronously)."""
    t = torch.from_numpy(np.ascontiguousarray(blocks))
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t
