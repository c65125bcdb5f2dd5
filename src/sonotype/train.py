"""Self-supervised training of the encoder: predict the spectrogram frame that follows each window.

The corpus is any number of files of any length: frames are cached on disk once
(:class:`~sonotype.dataset.FrameCache`) and windows are drawn from memory-mapped arrays, so
memory does not grow with the corpus. Seeded and reproducible; resumable from a checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .dataset import FrameCache, Item
from .errors import ConfigError, DataError
from .features import FrontEnd, normalise
from .model import Encoder, EncoderConfig, NextFramePredictor, parameter_counts
from .params import COUNT, FRACTION, RATE, param
from .runtime import set_threads, tune_allocator

#: where PyTorch runs (auto: cuda when there is a GPU)
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = param(10, check=COUNT, help="passes over the training windows")
    batch_size: int = param(32, check=COUNT, help="windows per step")
    lr: float = param(1e-3, check=RATE, help="learning rate")
    val_fraction: float = param(0.1, check=FRACTION,
                                help="held out for validation: whole files (>= 10 files) or each file's tail")
    seed: int = param(0, help="random seed")
    stride: int | None = param(None, check=COUNT, flag="--train-stride",
                               help="frames between training windows (default: the front end's window stride); "
                                    "smaller draws more, overlapping, windows")
    max_windows_per_epoch: int | None = param(None, check=COUNT, flag="--max-windows",
                                              help="random windows per epoch (large corpora)")
    threads: int | None = param(None, check=COUNT, help="CPU threads (default: PyTorch's)")
    device: str = param("auto", choices=DEVICES, help="where to train (auto: cuda when there is a GPU)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for but PyTorch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


@dataclass(frozen=True)
class WindowIndex:
    """Training windows as (item, first frame) pairs: ``(n, 2)`` int64."""

    items: tuple[Item, ...]
    starts: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)


def index_windows(items: Sequence[Item], cache: FrameCache, *, window: int, stride: int, val_fraction: float,
                  seed: int) -> tuple[WindowIndex, WindowIndex]:
    """Split next-frame training windows into train/validation, never sharing a frame between the two."""
    by_file = len(items) >= 10 and val_fraction > 0
    rng = np.random.default_rng(seed)
    val_files = set(rng.choice(len(items), size=max(1, int(round(val_fraction * len(items)))), replace=False)) \
        if by_file else set()
    tr, va = [], []  # one (n, 2) int64 array of (item, first frame) per file: 16 bytes a window
    for i, it in enumerate(items):
        n_frames = cache.frames(it).shape[0]
        starts = np.arange(0, max(0, n_frames - window), stride, dtype=np.int64)  # each needs window + 1 frames
        if i in val_files:
            va.append(starts)
            tr.append(starts[:0])
        elif by_file or val_fraction <= 0:
            tr.append(starts)
            va.append(starts[:0])
        else:  # tail of each file, with no frame shared across the cut
            cut = int(n_frames * (1 - val_fraction))
            tr.append(starts[starts + window < cut])
            va.append(starts[starts >= cut])

    def mk(parts: list[np.ndarray]) -> WindowIndex:
        rows = [np.stack([np.full(p.size, i, np.int64), p], axis=1) for i, p in enumerate(parts)]
        return WindowIndex(tuple(items), np.concatenate(rows) if rows else np.zeros((0, 2), np.int64))
    return mk(tr), mk(va)


def next_frame_batch(index: WindowIndex, rows: np.ndarray, cache: FrameCache, *, window: int,
                     centre_bins: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows ``(b, W, B)`` and their next frames ``(b, B)``, both normalised with the window's statistics."""
    blocks = np.stack([np.asarray(cache.frames(index.items[i])[s:s + window + 1], np.float32)
                       for i, s in index.starts[rows]])  # (b, W+1, B)
    x, offset, scale = normalise(blocks[:, :window], centre_bins=centre_bins)
    y = (blocks[:, window] - offset[:, 0]) / scale[:, 0]  # (b, B)
    return torch.from_numpy(x), torch.from_numpy(y)


def _rows_for_epoch(n: int, *, seed: int, epoch: int, limit: int | None) -> np.ndarray:
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    return order[:limit] if limit else order


def evaluate_loss(encoder: Encoder, predictor: NextFramePredictor, index: WindowIndex, cache: FrameCache, *,
                  window: int, batch_size: int, device: torch.device) -> float:
    """Mean next-frame MSE over all windows of ``index`` (eval mode, no dropout)."""
    if len(index) == 0:
        return float("nan")
    encoder.eval(); predictor.eval()
    total = 0.0
    with torch.no_grad():
        for a in range(0, len(index), batch_size * 4):
            rows = np.arange(a, min(len(index), a + batch_size * 4))
            x, y = next_frame_batch(index, rows, cache, window=window, centre_bins=cache.frontend.centre_bins)
            total += F.mse_loss(predictor(encoder(x.to(device))), y.to(device), reduction="sum").item() / y.shape[1]
    return total / len(index)


def train_encoder(items: Sequence[Item], *, frontend: FrontEnd, out: str | Path, cache_dir: str | Path,
                  encoder_config: EncoderConfig = EncoderConfig(), config: TrainConfig = TrainConfig(),
                  resume: str | Path | None = None, channel=None, data_note: dict | None = None,
                  progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Train the encoder + next-frame predictor; write a checkpoint to ``out`` after every epoch,
    and the epoch of lowest validation loss to :func:`best_path` (``<out>.best.pt``).

    Returns the final checkpoint dict. ``resume`` continues a checkpoint (same data and settings)
    from the epoch after its last one; the epoch order is a function of (seed, epoch), so a resumed
    run sees the same batches as an uninterrupted one.
    """
    if not items:
        raise DataError("no training files; give audio files or folders")
    if encoder_config.n_bins != frontend.n_bins or encoder_config.window != frontend.window:
        raise ConfigError(f"encoder expects windows of {encoder_config.window}x{encoder_config.n_bins}, front end "
                          f"makes {frontend.window}x{frontend.n_bins}; make them agree")
    tune_allocator()
    set_threads(config.threads)
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    cache = FrameCache(Path(cache_dir), frontend)
    train_idx, val_idx = index_windows(items, cache, window=frontend.window, stride=config.stride or frontend.stride,
                                       val_fraction=config.val_fraction, seed=config.seed)
    if len(train_idx) == 0:
        short = frontend.at_rate(items[0].sample_rate).window_samples
        raise DataError(f"no training windows in {len(items)} file(s): each file needs more than one window "
                        f"(~{short} samples at {items[0].sample_rate} Hz) of audio")
    encoder = Encoder(encoder_config).to(device)
    predictor = NextFramePredictor(encoder_config).to(device)
    params = list(encoder.parameters()) + list(predictor.parameters())
    opt = torch.optim.Adam(params, lr=config.lr)
    history: list[dict] = []
    first_epoch = 0
    if resume:
        ck = load_checkpoint(resume, kind=None)
        encoder.load_state_dict(ck["encoder"]); predictor.load_state_dict(ck["predictor"])
        if ck.get("optimizer"):
            opt.load_state_dict(ck["optimizer"])
        history = list(ck.get("history", []))
        first_epoch = int(ck.get("epoch", -1)) + 1
        if ck.get("rng_torch") is not None:
            torch.set_rng_state(ck["rng_torch"])
        log(f"resuming {resume} at epoch {first_epoch + 1}/{config.epochs}")
    log(f"training on {len(items)} file(s): {len(train_idx)} train / {len(val_idx)} validation windows, "
        f"{parameter_counts(encoder)['total']:,} encoder parameters, {device}")
    ck: dict = {}
    for epoch in range(first_epoch, config.epochs):
        encoder.train(); predictor.train()
        rows = _rows_for_epoch(len(train_idx), seed=config.seed, epoch=epoch, limit=config.max_windows_per_epoch)
        t0, run, seen = time.time(), 0.0, 0
        bar = tqdm(range(0, len(rows), config.batch_size), desc=f"epoch {epoch + 1}/{config.epochs}",
                   disable=not progress, leave=False, unit="batch")
        for a in bar:
            x, y = next_frame_batch(train_idx, rows[a:a + config.batch_size], cache, window=frontend.window,
                                    centre_bins=frontend.centre_bins)
            x, y = x.to(device), y.to(device)
            loss = F.mse_loss(predictor(encoder(x)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run += loss.item() * len(x); seen += len(x)
            bar.set_postfix(loss=f"{run / seen:.4f}")
        val = evaluate_loss(encoder, predictor, val_idx, cache, window=frontend.window,
                            batch_size=config.batch_size, device=device)
        history.append({"epoch": epoch + 1, "train_loss": run / max(seen, 1), "val_loss": val,
                        "seconds": round(time.time() - t0, 2), "windows": int(seen)})
        log(f"epoch {epoch + 1}/{config.epochs}: train loss {run / max(seen, 1):.4f}, "
            f"validation loss {val:.4f} ({time.time() - t0:.1f} s)")
        ck = {
            "kind": "encoder", "encoder_config": encoder_config.to_dict(), "frontend": frontend.to_dict(),
            "channel": channel, "train_config": config.to_dict(), "history": history, "epoch": epoch,
            "data": {"files": [it.path for it in items], "train_windows": len(train_idx),
                     "sample_rate": float(np.median([it.sample_rate for it in items])),
                     "val_windows": len(val_idx), **(data_note or {})},
            "encoder": {k: v.cpu() for k, v in encoder.state_dict().items()},
            "predictor": {k: v.cpu() for k, v in predictor.state_dict().items()},
            "optimizer": opt.state_dict(), "rng_torch": torch.get_rng_state(),
        }
        save_checkpoint(out, ck)
        vals = [h["val_loss"] for h in history if h["val_loss"] == h["val_loss"]]  # not NaN
        if vals and val == min(vals):
            save_checkpoint(best_path(out), {**ck, "optimizer": None})
    return ck or load_checkpoint(out)


def best_path(out: str | Path) -> Path:
    """Where :func:`train_encoder` keeps the epoch of lowest validation loss (``out`` is the latest, for resuming)."""
    p = Path(out)
    return p.with_name(p.stem + ".best" + p.suffix)
