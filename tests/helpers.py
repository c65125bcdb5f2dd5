"""Seeded fixtures shared by tests: small audio, and a placeholder model that needs no training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sonotype.checkpoint import save_checkpoint
from sonotype.features import PRESETS, FrontEnd
from sonotype.io import write_audio
from sonotype.model import DetectorHead, Encoder, EncoderConfig


def tone_with_gaps(path: Path, *, seconds: float = 6.0, sr: int = 48000, seed: int = 0,
                   calls: tuple[tuple[float, float], ...] = ((1.0, 2.0), (3.5, 4.2))) -> Path:
    """Noise with FM tones (8-12 kHz) at the given (start, end) seconds."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    x = 0.01 * rng.standard_normal(n)
    for a, b in calls:
        i, j = int(a * sr), min(int(b * sr), n)
        if j <= i:
            continue
        t = np.arange(j - i) / sr
        x[i:j] += 0.3 * np.sin(2 * np.pi * (8000 * t + 2000 * t ** 2 / (b - a)))
    return write_audio(path, x.astype(np.float32), sample_rate=sr)


def placeholder_model(path: Path, *, frontend: FrontEnd = PRESETS["dolphin"], seed: int = 0,
                      threshold: float = 0.5) -> Path:
    """A seeded, untrained encoder + detector head saved as a real detector checkpoint."""
    torch.manual_seed(seed)
    cfg = EncoderConfig(window=frontend.window, n_bins=frontend.n_bins)
    enc, head = Encoder(cfg), DetectorHead(cfg.embedding_dim)
    return save_checkpoint(path, {
        "kind": "detector", "model_version": "placeholder", "encoder_config": cfg.to_dict(),
        "frontend": frontend.to_dict(), "channel": None, "data": {"files": []}, "history": [],
        "encoder": enc.state_dict(), "predictor": {},
        "detector": {"head": head.state_dict(), "dropout": 0.5, "hidden": 0, "threshold": threshold,
                     "config": {}, "train_files": [], "val_files": []}})
