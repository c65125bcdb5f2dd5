"""Inference: windows -> embeddings -> detector scores, streamed over files in bounded memory."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..audio.io import DEFAULT_BLOCK
from ..errors import CheckpointError
from ..features.frontend import FrontEnd, iter_windows
from ..runtime import tune_allocator
from .checkpoint import LoadedModel
from .lstm_v3 import DetectorHead, Encoder


def embed_windows(encoder: Encoder, windows: np.ndarray, *, batch: int = 128,
                  device: torch.device | str = "cpu") -> np.ndarray:
    """Normalised windows ``(N, W, B)`` -> embeddings ``(N, D)`` float32 (eval mode, no grad)."""
    encoder.eval()
    out = []
    with torch.inference_mode():
        for a in range(0, len(windows), batch):
            x = torch.from_numpy(np.ascontiguousarray(windows[a:a + batch], np.float32)).to(device)
            out.append(encoder(x).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, encoder.config.embedding_dim), np.float32)


def iter_file_embeddings(encoder: Encoder, path: str | Path, frontend: FrontEnd, *, channel: int,
                         sample_rate: float, batch: int = 64, device: torch.device | str = "cpu",
                         block_frames: int = DEFAULT_BLOCK) -> Iterator[tuple[int, np.ndarray]]:
    """Stream a file: yields ``(first_window_index, embeddings (n, D))`` per batch of windows."""
    tune_allocator()
    for wb in iter_windows(path, frontend, channel=channel, sample_rate=sample_rate, batch=batch,
                           block_frames=block_frames):
        yield wb.first, embed_windows(encoder, wb.windows, batch=batch, device=device)


def file_embeddings(encoder: Encoder, path: str | Path, frontend: FrontEnd, *, channel: int,
                    sample_rate: float, batch: int = 64) -> np.ndarray:
    """All window embeddings of a file, ``(N, D)``."""
    parts = [e for _, e in iter_file_embeddings(encoder, path, frontend, channel=channel,
                                                 sample_rate=sample_rate, batch=batch)]
    return np.concatenate(parts) if parts else np.zeros((0, encoder.config.embedding_dim), np.float32)


def head_scores(head: DetectorHead, embeddings: np.ndarray) -> np.ndarray:
    """P(vocalisation) ``(N,)`` for embeddings ``(N, D)``."""
    head.eval()
    with torch.inference_mode():
        return torch.sigmoid(head(torch.from_numpy(np.asarray(embeddings, np.float32)))).numpy()


def file_scores(model: LoadedModel, path: str | Path, *, channel: int, sample_rate: float, batch: int = 64,
                block_frames: int = DEFAULT_BLOCK) -> np.ndarray:
    """Detector score of every window of a file, ``(N,)`` in [0, 1], streamed; a seed ensemble's scores are
    averaged over its members (each distinct encoder streams the file once)."""
    if model.head is None:
        raise CheckpointError(f"{model.path}: holds an encoder only; scoring needs a detector checkpoint "
                              "(sonotype train-detector)")
    members = [(model.encoder, model.head), *model.members]
    if len(members) == 1:
        parts = [head_scores(model.head, e) for _, e in iter_file_embeddings(
            model.encoder, path, model.frontend, channel=channel, sample_rate=sample_rate, batch=batch,
            block_frames=block_frames)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)
    total = None
    for enc in {id(e): e for e, _ in members}.values():
        heads = [h for e, h in members if e is enc]
        parts = [np.sum([head_scores(h, z).astype(np.float64) for h in heads], axis=0) for _, z in iter_file_embeddings(
            enc, path, model.frontend, channel=channel, sample_rate=sample_rate, batch=batch, block_frames=block_frames)]
        sc = np.concatenate(parts) if parts else np.zeros(0)
        total = sc if total is None else total + sc
    return (total / len(members)).astype(np.float32)
