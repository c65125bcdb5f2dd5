"""Detector fine-tuning: encoder (initialised from self-supervised training) + head, trained jointly.

The seed detector trains a head on a frozen encoder. Where the self-supervised embedding does not
separate the calls from the background (right-whale upcalls under ship tones, say), updating the
encoder too is the usual next step. Windows come from the on-disk frame cache, so memory stays
bounded; each epoch sees every vocal window and a fresh random draw of noise windows
(``negatives_per_positive`` of them per vocal window), which balances the classes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import metrics, units
from .dataset import IGNORE, FrameCache, Item
from .features import FrontEnd, normalise
from .model import DetectorHead, Encoder


@dataclass(frozen=True)
class LabelledWindows:
    """Labelled windows: per window its ``data`` (embeddings ``(N, D)`` for the frozen head, or
    ``(N, 2)`` rows of (item index, first frame) for fine-tuning), label, item and window index."""

    data: np.ndarray
    y: np.ndarray  # (N,) int64 0/1
    file: np.ndarray  # (N,) item index
    window: np.ndarray  # (N,) window index inside the item (at the labelling stride)

    def subset(self, mask: np.ndarray) -> "LabelledWindows":
        return LabelledWindows(self.data[mask], self.y[mask], self.file[mask], self.window[mask])


def label_windows(items: Sequence[Item], cache: FrameCache, frontend: FrontEnd, *, stride: int,
                  min_overlap: float) -> LabelledWindows:
    """Every window (``stride`` frames apart) of every item with its label; IGNORE windows dropped."""
    rows, ys, fs, ws = [], [], [], []
    for i, it in enumerate(items):
        n_frames = cache.frames(it).shape[0]
        n = units.n_windows(n_frames, window=frontend.window, stride=stride)
        framing = FrontEnd.from_dict({**frontend.to_dict(), "stride": stride}).at_rate(it.sample_rate)
        lab = it.window_labels(n, framing, min_overlap=min_overlap)
        keep = np.nonzero(lab != IGNORE)[0]
        rows.append(np.stack([np.full(keep.size, i), keep * stride], axis=1))
        ys.append(lab[keep]); fs.append(np.full(keep.size, i)); ws.append(keep)
    cat = lambda a, dt: np.concatenate(a).astype(dt) if a else np.zeros(0, dt)
    return LabelledWindows(np.concatenate(rows).astype(np.int64).reshape(-1, 2) if rows else np.zeros((0, 2), np.int64),
                        cat(ys, np.int64), cat(fs, np.int64), cat(ws, np.int64))


def window_batch(items: Sequence[Item], rows: np.ndarray, cache: FrameCache, frontend: FrontEnd) -> torch.Tensor:
    """Normalised windows ``(b, W, B)`` for rows ``(b, 2)`` of (item, first frame)."""
    w = frontend.window
    blocks = np.stack([np.asarray(cache.frames(items[i])[s:s + w], np.float32) for i, s in rows])  # (b, W, B)
    return torch.from_numpy(normalise(blocks, centre_bins=frontend.centre_bins)[0])


def scores(encoder: Encoder, head: DetectorHead, items, data: LabelledWindows, cache: FrameCache, frontend: FrontEnd,
           *, batch: int = 256) -> np.ndarray:
    encoder.eval(); head.eval()
    out = []
    with torch.inference_mode():
        for a in range(0, len(data.y), batch):
            out.append(torch.sigmoid(head(encoder(window_batch(items, data.data[a:a + batch], cache, frontend)))).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def finetune(encoder: Encoder, items: Sequence[Item], train: LabelledWindows, val: LabelledWindows, cache: FrameCache,
             frontend: FrontEnd, *, epochs: int, lr: float, encoder_lr: float, batch_size: int, dropout: float,
             hidden: int, negatives_per_positive: int, seed: int, progress: bool = True
             ) -> tuple[Encoder, DetectorHead, list[dict]]:
    """Train a copy of ``encoder`` and a new head; keep the epoch with the best validation average precision."""
    torch.manual_seed(seed)
    enc = copy.deepcopy(encoder)
    head = DetectorHead(enc.config.embedding_dim, dropout=dropout, hidden=hidden)
    opt = torch.optim.Adam([{"params": enc.parameters(), "lr": encoder_lr}, {"params": head.parameters(), "lr": lr}])
    pos, neg = np.nonzero(train.y == 1)[0], np.nonzero(train.y == 0)[0]
    rng = np.random.default_rng(seed)
    best, best_state, history = -1.0, None, []
    for epoch in tqdm(range(epochs), desc="fine-tuning", disable=not progress, leave=False):
        enc.train(); head.train()
        k = min(neg.size, negatives_per_positive * max(pos.size, 1))
        order = rng.permutation(np.concatenate([pos, rng.choice(neg, size=k, replace=False)]))
        total = 0.0
        for a in range(0, order.size, batch_size):
            idx = order[a:a + batch_size]
            x = window_batch(items, train.data[idx], cache, frontend)
            y = torch.from_numpy(train.y[idx]).float()
            pw = torch.tensor(float(negatives_per_positive))  # undo the sampling's class ratio
            loss = F.binary_cross_entropy_with_logits(head(enc(x)), y, pos_weight=pw)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        ap = metrics.average_precision(scores(enc, head, items, val, cache, frontend), val.y) if val.y.any() else 0.0
        history.append({"epoch": epoch + 1, "train_loss": total / max(order.size, 1), "val_average_precision": ap})
        if ap > best:
            best = ap
            best_state = (copy.deepcopy(enc.state_dict()), copy.deepcopy(head.state_dict()))
    if best_state is not None:
        enc.load_state_dict(best_state[0]); head.load_state_dict(best_state[1])
    return enc.eval(), head.eval(), history
