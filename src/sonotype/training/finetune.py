"""Detector fine-tuning: encoder (initialised from self-supervised training) + head, trained jointly.

The seed detector trains a head on a frozen encoder. Where the self-supervised embedding does not
separate the calls from the background (right-whale upcalls under ship tones, say), updating the
encoder too is the usual next step. Windows come from the on-disk frame cache, so memory stays
bounded; each epoch sees every vocal window and a fresh random draw of noise windows
(``negatives_per_positive`` of them per vocal window), which balances the classes. Optional
:class:`Augmentation`: extra (e.g. mixed-in call) windows, hard negatives seen every epoch with
a weight, SpecAugment masks and mixup on every batch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import units
from ..features.frontend import FrontEnd, normalise
from ..models.lstm_v3 import DetectorHead, Encoder
from . import metrics
from .augment import mixup_pairs, spec_masks
from .dataset import IGNORE, FrameCache, Item


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
           *, batch: int = 256, device: torch.device | str = "cpu") -> np.ndarray:
    encoder.eval(); head.eval()
    out = []
    with torch.inference_mode():
        for a in range(0, len(data.y), batch):
            x = window_batch(items, data.data[a:a + batch], cache, frontend).to(device)  # (b, W, B)
            out.append(torch.sigmoid(head(encoder(x))).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


@dataclass(frozen=True)
class Augmentation:
    """What fine-tuning adds to each epoch: ``extra`` windows ``(E, W, B)`` (normalised) with labels ``(E,)``,
    all seen every epoch; ``hard`` training-row indices (hard negatives) seen every epoch with weight
    ``hard_weight``; SpecAugment masks up to ``time_mask`` frames / ``freq_mask`` bins and mixup
    (Beta(``mixup``, ``mixup``); 0: off) on every training batch."""

    extra: np.ndarray | None = None
    extra_y: np.ndarray | None = None
    hard: np.ndarray | None = None
    hard_weight: float = 1.0
    time_mask: int = 0
    freq_mask: int = 0
    mixup: float = 0.0


def finetune(encoder: Encoder, items: Sequence[Item], train: LabelledWindows, val: LabelledWindows, cache: FrameCache,
             frontend: FrontEnd, *, epochs: int, lr: float, encoder_lr: float, batch_size: int, dropout: float,
             hidden: int, negatives_per_positive: int, seed: int, augmentation: Augmentation = Augmentation(),
             device: torch.device | str = "cpu", progress: bool = True
             ) -> tuple[Encoder, DetectorHead, list[dict]]:
    """Train a copy of ``encoder`` and a new head; keep the epoch with the best validation average precision."""
    torch.manual_seed(seed)
    aug = augmentation
    enc = copy.deepcopy(encoder).to(device)
    head = DetectorHead(enc.config.embedding_dim, dropout=dropout, hidden=hidden).to(device)
    opt = torch.optim.Adam([{"params": enc.parameters(), "lr": encoder_lr}, {"params": head.parameters(), "lr": lr}])
    hard = np.asarray(aug.hard if aug.hard is not None else [], np.int64)
    pos, neg = np.nonzero(train.y == 1)[0], np.setdiff1d(np.nonzero(train.y == 0)[0], hard)
    n_real, extra = len(train.y), aug.extra if aug.extra is not None else np.zeros((0,), np.float32)
    weight = np.ones(n_real + len(extra), np.float32)
    weight[hard] = aug.hard_weight
    labels = np.concatenate([train.y, aug.extra_y if aug.extra is not None else np.zeros(0, np.int64)]).astype(np.float32)
    rng = np.random.default_rng(seed)
    best, best_state, history = -1.0, None, []
    for epoch in tqdm(range(epochs), desc="fine-tuning", disable=not progress, leave=False):
        enc.train(); head.train()
        k = min(neg.size, negatives_per_positive * max(pos.size, 1))
        order = rng.permutation(np.concatenate([pos, hard, np.arange(n_real, n_real + len(extra)),
                                                rng.choice(neg, size=k, replace=False)]))
        total = 0.0
        for a in range(0, order.size, batch_size):
            idx = order[a:a + batch_size]
            real, ext = idx[idx < n_real], idx[idx >= n_real] - n_real
            parts = ([window_batch(items, train.data[real], cache, frontend).numpy()] if real.size else []) + \
                    ([extra[ext]] if ext.size else [])
            xb = np.concatenate(parts)  # (b, W, B) normalised windows
            yb = np.concatenate([labels[real], labels[n_real + ext]])  # (b,)
            wb = np.concatenate([weight[real], weight[n_real + ext]])  # (b,)
            if aug.time_mask or aug.freq_mask:
                xb = spec_masks(xb, rng, time=aug.time_mask, freq=aug.freq_mask)
            x, y, w = (torch.from_numpy(np.ascontiguousarray(v, np.float32)).to(device) for v in (xb, yb, wb))
            if aug.mixup > 0:
                perm, lam = mixup_pairs(len(yb), rng, alpha=aug.mixup)
                lt, pt = torch.from_numpy(lam.astype(np.float32)).to(device), torch.from_numpy(perm).to(device)
                x = lt[:, None, None] * x + (1 - lt[:, None, None]) * x[pt]  # (b, W, B)
                y, w = lt * y + (1 - lt) * y[pt], torch.maximum(w, w[pt])
            pw = torch.tensor(float(negatives_per_positive), device=device)  # undo the sampling's class ratio
            loss = F.binary_cross_entropy_with_logits(head(enc(x)), y, weight=w, pos_weight=pw)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        ap = metrics.average_precision(scores(enc, head, items, val, cache, frontend, device=device), val.y) \
            if val.y.any() else 0.0
        history.append({"epoch": epoch + 1, "train_loss": total / max(order.size, 1), "val_average_precision": ap})
        if ap > best:
            best = ap
            best_state = (copy.deepcopy(enc.state_dict()), copy.deepcopy(head.state_dict()))
    if best_state is not None:
        enc.load_state_dict(best_state[0]); head.load_state_dict(best_state[1])
    return enc.cpu().eval(), head.cpu().eval(), history
