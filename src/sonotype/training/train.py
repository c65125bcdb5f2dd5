"""Self-supervised training of the encoder: predict the spectrogram frame that follows each window.

The corpus is any number of files of any length: frames are cached on disk once
(:class:`~sonotype.training.dataset.FrameCache`) and windows are drawn from memory-mapped arrays, so
memory does not grow with the corpus. Seeded and reproducible; resumable from a checkpoint.

Batches are gathered in bulk (:class:`~sonotype.training.framebank.FrameBank`) and normalised on the
device; ``bf16`` trains under bfloat16 autocast; ``lr_scaling`` scales the learning rate with the
batch (relative to :data:`BASE_BATCH`). Under ``torchrun`` (or any initialised process group) each
process trains on its share of every global batch of ``batch_size`` windows with
DistributedDataParallel (NCCL on CUDA, gloo on the CPU); the loss is weighted so that the averaged
gradient is that of the whole global batch, and only rank 0 writes checkpoints::

    torchrun --nproc-per-node 8 -m sonotype train DATA --out enc.pt --device cuda --batch-size 8192 --lr-scaling sqrt
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError
from ..features.frontend import FrontEnd, normalise
from ..models.checkpoint import Checkpoint, TrainingData, load_checkpoint
from ..models.lstm_v3 import Encoder, EncoderConfig, NextFramePredictor, parameter_counts
from ..params import COUNT, FRACTION, RATE, param
from ..runtime import set_threads, tune_allocator
from .dataset import FrameCache, Item
from .framebank import FrameBank, next_frame_tensors, to_device

#: where PyTorch runs (auto: cuda when there is a GPU)
DEVICES = ("auto", "cpu", "cuda")
#: the batch size ``lr`` is given for when ``lr_scaling`` scales it
BASE_BATCH = 32
#: how ``lr`` follows ``batch_size``
LR_SCALINGS = ("none", "linear", "sqrt")


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
    bf16: bool = param(False, help="bfloat16 autocast for forward and loss (GPU speed; slow on CPUs without bf16)")
    lr_scaling: str = param("none", choices=LR_SCALINGS,
                            help="scale --lr by --batch-size/32 (linear) or its square root, for large batches")
    dropout: float = param(0.5, check=FRACTION, help="the next-frame predictor's dropout")

    def __post_init__(self):
        if self.lr_scaling not in LR_SCALINGS:
            raise ConfigError(f"lr_scaling must be one of {LR_SCALINGS}, got {self.lr_scaling!r}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")

    @property
    def effective_lr(self) -> float:
        """``lr`` scaled for ``batch_size`` (the optimiser's learning rate)."""
        ratio = self.batch_size / BASE_BATCH
        return self.lr * {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[self.lr_scaling]

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
                  window: int, batch_size: int, device: torch.device, bank: FrameBank | None = None) -> float:
    """Mean next-frame MSE over all windows of ``index`` (eval mode, no dropout). In a process group each
    process scores its share and the sums are added up."""
    if len(index) == 0:
        return float("nan")
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    bank = bank or FrameBank(index.items, cache)
    encoder.eval(); predictor.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    mine = np.arange(rank, len(index), world)
    with torch.no_grad():
        for a in range(0, len(mine), batch_size * 4):
            blocks = to_device(bank.gather(index.starts[mine[a:a + batch_size * 4]], window + 1), device)
            x, y = next_frame_tensors(blocks, window=window, centre_bins=cache.frontend.centre_bins)
            total += F.mse_loss(predictor(encoder(x)), y, reduction="sum").double() / y.shape[1]
    if world > 1:
        dist.all_reduce(total)
    return float(total) / len(index)


def _process_group(device: torch.device) -> tuple[int, int, torch.device, bool]:
    """(rank, world size, this process's device, whether we started the group): joins the group that
    ``torchrun`` describes in the environment (WORLD_SIZE > 1), or uses one already initialised."""
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), device, False
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, device, False
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), device, True


def train_encoder(items: Sequence[Item], *, frontend: FrontEnd, out: str | Path, cache_dir: str | Path,
                  encoder_config: EncoderConfig = EncoderConfig(), config: TrainConfig = TrainConfig(),
                  resume: str | Path | None = None, channel=None, data_note: dict | None = None,
                  progress: bool = True, log: Callable[[str], None] = print) -> Checkpoint:
    """Train the encoder + next-frame predictor; write a checkpoint to ``out`` after every epoch,
    and the epoch of lowest validation loss to :func:`best_path` (``<out>.best.pt``).

    Returns the final :class:`~sonotype.models.checkpoint.Checkpoint`. ``resume`` continues a checkpoint
    (same data and settings) from the epoch after its last one; the epoch order is a function of (seed, epoch), so a resumed
    run sees the same batches as an uninterrupted one. In a process group (``torchrun``) every
    process runs this with the same arguments; ``config.batch_size`` is the global batch.
    """
    if not items:
        raise DataError("no training files; give audio files or folders")
    if encoder_config.n_bins != frontend.n_bins or encoder_config.window != frontend.window:
        raise ConfigError(f"encoder expects windows of {encoder_config.window}x{encoder_config.n_bins}, front end "
                          f"makes {frontend.window}x{frontend.n_bins}; make them agree")
    tune_allocator()
    set_threads(config.threads)
    torch.manual_seed(config.seed)
    rank, world, device, own_group = _process_group(pick_device(config.device))
    lead = rank == 0
    if not lead:
        log = lambda s: None  # noqa: E731  one process speaks
        progress = False
    cache = FrameCache(Path(cache_dir), frontend)
    if world > 1 and not lead:
        dist.barrier()  # rank 0 fills the frame cache first
    train_idx, val_idx = index_windows(items, cache, window=frontend.window, stride=config.stride or frontend.stride,
                                       val_fraction=config.val_fraction, seed=config.seed)
    if world > 1 and lead:
        dist.barrier()
    if len(train_idx) == 0:
        short = frontend.at_rate(items[0].sample_rate).window_samples
        raise DataError(f"no training windows in {len(items)} file(s): each file needs more than one window "
                        f"(~{short} samples at {items[0].sample_rate} Hz) of audio")
    bank = FrameBank(train_idx.items, cache)
    encoder = Encoder(encoder_config).to(device)
    predictor = NextFramePredictor(encoder_config, dropout=config.dropout).to(device)
    params = list(encoder.parameters()) + list(predictor.parameters())
    opt = torch.optim.Adam(params, lr=config.effective_lr)
    history: list[dict] = []
    first_epoch = 0
    if resume:
        old = load_checkpoint(resume, kind=None)
        encoder.load_state_dict(old.encoder); predictor.load_state_dict(old.predictor)
        if old.optimizer:
            opt.load_state_dict(old.optimizer)
        history = list(old.history)
        first_epoch = (-1 if old.epoch is None else old.epoch) + 1
        if old.rng_torch is not None:
            torch.set_rng_state(old.rng_torch)
        log(f"resuming {resume} at epoch {first_epoch + 1}/{config.epochs}")
    net = torch.nn.Sequential(encoder, predictor)  # x (b, W, B) -> next frame (b, B)
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    log(f"training on {len(items)} file(s): {len(train_idx)} train / {len(val_idx)} validation windows, "
        f"{parameter_counts(encoder)['total']:,} encoder parameters, {device}"
        + (f" x {world} processes" if world > 1 else "") + f", batch {config.batch_size}, lr {config.effective_lr:g}"
        + (", bf16" if config.bf16 else ""))
    ck: Checkpoint | None = None
    w = frontend.window
    for epoch in range(first_epoch, config.epochs):
        encoder.train(); predictor.train()
        rows = _rows_for_epoch(len(train_idx), seed=config.seed, epoch=epoch, limit=config.max_windows_per_epoch)
        t0, seen = time.time(), 0
        run = torch.zeros((), dtype=torch.float64, device=device)
        bar = tqdm(range(0, len(rows), config.batch_size), desc=f"epoch {epoch + 1}/{config.epochs}",
                   disable=not progress, leave=False, unit="batch")
        for step, a in enumerate(bar):
            batch = rows[a:a + config.batch_size]  # the global batch
            if len(batch) < world:
                break  # a tail too short to give every process a window
            mine = batch[rank::world]
            blocks = to_device(bank.gather(train_idx.starts[mine], w + 1), device)  # (b, W+1, B) float16
            x, y = next_frame_tensors(blocks, window=w, centre_bins=frontend.centre_bins)  # (b, W, B), (b, B)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
                pred = net(x)  # (b, B)
            per_window = F.mse_loss(pred.float(), y, reduction="sum") / y.shape[1]  # sum of per-window MSEs
            loss = per_window * (world / len(batch))  # DDP averages over processes: the global batch's mean
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run += per_window.detach().double(); seen += len(batch)
            if progress and step % 20 == 0:
                bar.set_postfix(loss=f"{float(run) * world / seen:.4f}")
        if world > 1:
            dist.all_reduce(run)
        train_loss = float(run) / max(seen, 1)
        val = evaluate_loss(encoder, predictor, val_idx, cache, window=w, batch_size=config.batch_size,
                            device=device, bank=bank)
        secs = time.time() - t0
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val,
                        "seconds": round(secs, 2), "windows": int(seen)})
        log(f"epoch {epoch + 1}/{config.epochs}: train loss {train_loss:.4f}, "
            f"validation loss {val:.4f} ({secs:.1f} s, {seen / max(secs, 1e-9):,.0f} windows/s)")
        ck = Checkpoint(
            kind="encoder", encoder_config=encoder_config, frontend=frontend, channel=channel,
            train_config=config.to_dict(), history=tuple(history), epoch=epoch,
            data=TrainingData(tuple(it.path for it in items), float(np.median([it.sample_rate for it in items])),
                              {"train_windows": len(train_idx), "val_windows": len(val_idx), **(data_note or {})}),
            encoder={k: v.cpu() for k, v in encoder.state_dict().items()},
            predictor={k: v.cpu() for k, v in predictor.state_dict().items()},
            optimizer=opt.state_dict(), rng_torch=torch.get_rng_state())
        if lead:
            ck.save(out)
            vals = [h["val_loss"] for h in history if h["val_loss"] == h["val_loss"]]  # not NaN
            if vals and val == min(vals):
                replace(ck, optimizer=None).save(best_path(out))
    if world > 1:
        dist.barrier()  # the checkpoint is written before any process returns
        if own_group:
            dist.destroy_process_group()
    return ck or load_checkpoint(out)  # no epoch left to run (resumed at the end): the checkpoint as it is


def best_path(out: str | Path) -> Path:
    """Where :func:`train_encoder` keeps the epoch of lowest validation loss (``out`` is the latest, for resuming)."""
    p = Path(out)
    return p.with_name(p.stem + ".best" + p.suffix)
