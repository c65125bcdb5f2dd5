"""Training that uses the hardware: bulk batches equal the per-window ones, DistributedDataParallel on
2 gloo processes equals one process on the same global batch, lr scaling and bf16 options."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sonotype.audio.io import write_audio
from sonotype.errors import ConfigError
from sonotype.features.frontend import PRESETS
from sonotype.models.checkpoint import load_checkpoint
from sonotype.models.lstm_v3 import Encoder, EncoderConfig
from sonotype.training.dataset import FrameCache, make_items
from sonotype.training.framebank import FrameBank, next_frame_tensors
from sonotype.training.train import BASE_BATCH, TrainConfig, index_windows, next_frame_batch, train_encoder


def _clip(path, *, seconds=2.0, seed=0, sr=48000):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * (6000 + 2000 * seed + 3000 * t) * t) + 0.02 * rng.standard_normal(t.size)
    return write_audio(path, x.astype(np.float32), sample_rate=sr)


@pytest.mark.parametrize("preset", ["dolphin", "narw"])
@pytest.mark.parametrize("max_bytes", [None, 0])  # 0: the memory-mapped, gathered-per-file fallback
def test_bulk_batches_equal_the_per_window_batches(tmp_path, preset, max_bytes):
    sr = 48000 if preset == "dolphin" else 2000
    items = make_items([_clip(tmp_path / f"{i}.wav", seconds=s, seed=i, sr=sr) for i, s in enumerate((2.0, 3.0))]
                       if preset == "dolphin" else
                       [_clip(tmp_path / f"{i}.wav", seconds=60, seed=i, sr=sr) for i in range(2)])
    fe = PRESETS[preset]
    cache = FrameCache(tmp_path / "c", fe)
    idx, _ = index_windows(items, cache, window=fe.window, stride=5, val_fraction=0.0, seed=0)
    rows = np.random.default_rng(0).permutation(len(idx))[:23]
    bank = FrameBank(idx.items, cache, **({} if max_bytes is None else {"max_bytes": max_bytes}))
    assert bank.in_memory == (max_bytes is None)
    x, y = next_frame_tensors(torch.from_numpy(bank.gather(idx.starts[rows], fe.window + 1)), window=fe.window,
                              centre_bins=fe.centre_bins)
    rx, ry = next_frame_batch(idx, rows, cache, window=fe.window, centre_bins=fe.centre_bins)
    assert x.shape == rx.shape == (23, fe.window, fe.n_bins) and y.shape == ry.shape == (23, fe.n_bins)
    torch.testing.assert_close(x, rx, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y, ry, atol=1e-5, rtol=1e-5)


def test_lr_scaling_and_bad_settings():
    assert TrainConfig(batch_size=BASE_BATCH * 16, lr=1e-3).effective_lr == pytest.approx(1e-3)
    assert TrainConfig(batch_size=BASE_BATCH * 16, lr=1e-3, lr_scaling="linear").effective_lr == pytest.approx(16e-3)
    assert TrainConfig(batch_size=BASE_BATCH * 16, lr=1e-3, lr_scaling="sqrt").effective_lr == pytest.approx(4e-3)
    with pytest.raises(ConfigError, match="lr_scaling must be"):
        TrainConfig(lr_scaling="cubic")
    with pytest.raises(ConfigError, match="batch_size must be"):
        TrainConfig(batch_size=0)


def test_bf16_training_runs_and_lowers_the_loss(tmp_path):
    items = make_items([_clip(tmp_path / "a.wav", seconds=1.0)])
    cfg = TrainConfig(epochs=3, batch_size=8, lr=3e-3, val_fraction=0.0, stride=12, seed=0, bf16=True, threads=1)
    ck = train_encoder(items, frontend=PRESETS["dolphin"], out=tmp_path / "e.pt", cache_dir=tmp_path / "c",
                       config=cfg, progress=False, log=lambda s: None)
    losses = [h["train_loss"] for h in ck.history]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
    assert ck.train_config["bf16"] is True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, paths: list[str], out: str, cache: str, cfg: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        train_encoder(make_items(paths), frontend=PRESETS["dolphin"], out=out, cache_dir=cache,
                      config=TrainConfig(**cfg), progress=False, log=lambda s: None)
    finally:
        dist.destroy_process_group()


def test_ddp_on_two_gloo_processes_matches_one_process(tmp_path):
    paths = [str(_clip(tmp_path / f"{i}.wav", seconds=1.5, seed=i)) for i in range(2)]
    # dropout 0: each process would draw its own dropout masks, so only then are the two runs the same function
    cfg = dict(epochs=2, batch_size=12, lr=2e-3, val_fraction=0.0, stride=8, seed=5, dropout=0.0, threads=1,
               device="cpu")
    single = train_encoder(make_items(paths), frontend=PRESETS["dolphin"], out=tmp_path / "one.pt",
                           cache_dir=tmp_path / "c", config=TrainConfig(**cfg), progress=False, log=lambda s: None)
    n = single.data.notes["train_windows"]
    assert n % 12 not in (0, 1) and n > 36  # several steps, and a last batch split 2 ways unevenly
    mp.spawn(_ddp_worker, args=(2, _free_port(), paths, str(tmp_path / "ddp.pt"), str(tmp_path / "c"), cfg),
             nprocs=2, join=True)
    ddp = load_checkpoint(tmp_path / "ddp.pt")
    for part in ("encoder", "predictor"):
        for k, v in getattr(single, part).items():
            torch.testing.assert_close(getattr(ddp, part)[k], v, atol=2e-5, rtol=1e-4, msg=f"{part}.{k}")
    assert [h["windows"] for h in ddp.history] == [h["windows"] for h in single.history]
    np.testing.assert_allclose([h["train_loss"] for h in ddp.history],
                               [h["train_loss"] for h in single.history], rtol=1e-5)
    # and training moved the weights (the comparison is not between two untouched initialisations)
    torch.manual_seed(5)
    fresh = Encoder(EncoderConfig()).state_dict()
    assert (single.encoder["local_conv.weight"] - fresh["local_conv.weight"]).abs().max() > 1e-3
