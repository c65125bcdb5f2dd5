"""Distillation: teach the small LSTM-V3 encoder to carry a large pretrained backend's embeddings.

On unlabelled audio the teacher (e.g. BirdNET, 1,024-d per 3-s window) embeds spans of each file;
the student encoder embeds the same span as its own windows (``stride`` frames apart), mean-pools
them over time and maps the result through a linear head to the teacher's size. The loss is
``1 - cosine`` between the head's output and the teacher's embedding (z-scored over the corpus, so
that every dimension counts, not the few with the largest values). Only the encoder is kept for
use: its window embeddings then feed detection and DTW clustering as before, at the student's speed.

Validation holds out the last ``val_fraction`` of each file's spans (by time, no span shared); the
epoch of lowest validation loss is written to ``<out>.best.pt``. The checkpoint is an ordinary
encoder checkpoint with a ``distill`` entry (teacher, settings, head).
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

from ..errors import ConfigError, DataError
from ..features.frontend import frames_to_windows, framing_for
from ..models.backends import Backend
from ..models.checkpoint import Checkpoint, DistillPart, LoadedModel, TrainingData
from ..models.lstm_v3 import Encoder, EncoderConfig
from ..params import COUNT, FRACTION, RATE, param
from ..runtime import set_threads, tune_allocator
from .dataset import FrameCache, Item
from .train import DEVICES, best_path, pick_device


@dataclass(frozen=True)
class DistillConfig:
    epochs: int = param(10, check=COUNT, help="passes over the teacher's spans")
    batch_spans: int = param(8, check=COUNT, help="teacher windows per step (each is tens of student windows)")
    lr: float = param(1e-3, check=RATE, help="learning rate")
    stride: int = param(16, check=COUNT, flag="--student-stride", aliases=("--stride",),
                        help="frames between the student's windows inside a teacher's span")
    val_fraction: float = param(0.15, check=FRACTION, help="the last part of each file's spans held out")
    seed: int = param(0, help="random seed")
    threads: int | None = param(None, check=COUNT, help="CPU threads (default: PyTorch's)")
    device: str = param("auto", choices=DEVICES, help="where to train (auto: cuda when there is a GPU)")

    def __post_init__(self):
        if self.epochs < 1 or self.batch_spans < 1 or self.stride < 1 or not 0 <= self.val_fraction < 1 or self.lr <= 0:
            raise ConfigError(f"distillation settings out of range: {self}; expected epochs, batch_spans, stride >= 1, "
                              "0 <= val_fraction < 1, lr > 0")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TeacherWindow:
    """One teacher window: item index, the student frames it covers ``[first, last)`` and the target's row."""

    item: int
    first: int
    last: int
    row: int


def teacher_spans(items: Sequence[Item], teacher: Backend, cache: FrameCache, *, progress: bool = True
                  ) -> tuple[list[TeacherWindow], np.ndarray]:
    """Every file's teacher embeddings ``(S, Dt)`` and, for each, the student frames it covers."""
    spans, targets = [], []
    for i, it in enumerate(tqdm(items, desc="teacher", disable=not progress, leave=False, unit="file")):
        emb = teacher.embed_span(it.path, channel=it.channel)  # (n, Dt)
        framing = framing_for(cache.frontend, it.sample_rate, it.path)
        n_frames = cache.frames(it).shape[0]
        win = teacher.info.window_s * teacher.info.speedup * it.sample_rate  # samples of recording
        hop = teacher.info.hop_s * teacher.info.speedup * it.sample_rate
        for k in range(emb.shape[0]):
            a = int(np.ceil(k * hop / framing.hop))
            b = min(n_frames, int((k * hop + win - framing.n_fft) // framing.hop) + 1)
            if b - a >= framing.window:
                spans.append(TeacherWindow(i, a, b, len(targets)))
                targets.append(emb[k])
    if not spans:
        raise DataError(f"no teacher window of {teacher.info.window_s:g} s fits a student window in {len(items)} file(s)")
    return spans, np.stack(targets).astype(np.float32)


def span_batch(spans: Sequence[TeacherWindow], items: Sequence[Item], cache: FrameCache, *, stride: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Student windows of several spans stacked ``(sum n_i, W, B)`` and the span of each window ``(sum n_i,)``."""
    fe = cache.frontend
    xs, owner = [], []
    for j, s in enumerate(spans):
        fr = np.asarray(cache.frames(items[s.item])[s.first:s.last], np.float32)
        w = frames_to_windows(fr, window=fe.window, stride=stride, centre_bins=fe.centre_bins)
        xs.append(w)
        owner.append(np.full(len(w), j))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(owner))


def pooled(encoder: Encoder, head: torch.nn.Linear, x: torch.Tensor, owner: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of each span's window embeddings through the head: ``(n, Dt)``."""
    e = encoder(x)                                                    # (sum n_i, D)
    sums = torch.zeros(n, e.shape[1], device=e.device).index_add_(0, owner, e)
    counts = torch.bincount(owner, minlength=n).clamp(min=1).unsqueeze(1)
    return head(sums / counts)                                        # (n, Dt)


def distill(items: Sequence[Item], teacher: Backend, *, student: LoadedModel | None, out: str | Path,
            cache_dir: str | Path, frontend=None, config: DistillConfig = DistillConfig(), channel=None,
            progress: bool = True, log: Callable[[str], None] = print) -> Checkpoint:
    """Train the student encoder (initialised from ``student``, else random with ``frontend``) to
    reproduce ``teacher`` on ``items``; writes ``out`` each epoch and ``<out>.best.pt``."""
    if not items:
        raise DataError("no audio files to distil on; give folders or files of (unlabelled) recordings")
    tune_allocator()
    set_threads(config.threads)
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    fe = student.frontend if student is not None else frontend
    if fe is None:
        raise ConfigError("give a student checkpoint (--init) or a front end (--preset) to distil into")
    enc_cfg = student.encoder.config if student is not None else EncoderConfig(window=fe.window, n_bins=fe.n_bins)
    encoder = Encoder(enc_cfg)
    if student is not None:
        encoder.load_state_dict(student.encoder.state_dict())
    encoder.to(device)
    cache = FrameCache(Path(cache_dir), fe)
    spans, targets = teacher_spans(items, teacher, cache, progress=progress)
    mu, sd = targets.mean(0), targets.std(0) + 1e-6
    tgt = torch.from_numpy((targets - mu) / sd)
    # hold out the last val_fraction of each file's spans, dropping the spans that overlap the cut
    train, val = [], []
    for i in range(len(items)):
        mine = [s for s in spans if s.item == i]
        cut = int(round(len(mine) * (1 - config.val_fraction)))
        if config.val_fraction and len(mine) >= 4:
            held = mine[cut:]
            start = held[0].first if held else None
            train += [s for s in mine[:cut] if start is None or s.last <= start]
            val += held
        else:
            train += mine
    head = torch.nn.Linear(enc_cfg.embedding_dim, targets.shape[1]).to(device)
    opt = torch.optim.Adam(list(encoder.parameters()) + list(head.parameters()), lr=config.lr)
    log(f"distilling {teacher.info.label} ({targets.shape[1]}-d) into LSTM-V3 ({enc_cfg.embedding_dim}-d) on "
        f"{len(items)} file(s): {len(train)} train / {len(val)} validation spans, {device}")

    def run(rows: Sequence[TeacherWindow], *, training: bool, epoch: int) -> float:
        encoder.train(training); head.train(training)
        order = np.random.default_rng([config.seed, epoch]).permutation(len(rows)) if training else np.arange(len(rows))
        total = 0.0
        for a in range(0, len(rows), config.batch_spans):
            batch = [rows[k] for k in order[a:a + config.batch_spans]]
            x, owner = span_batch(batch, items, cache, stride=config.stride)
            y = tgt[[s.row for s in batch]].to(device)
            with torch.set_grad_enabled(training):
                loss = (1 - F.cosine_similarity(pooled(encoder, head, x.to(device), owner.to(device), len(batch)),
                                                y, dim=1)).mean()
            if training:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            total += loss.item() * len(batch)
        return total / max(1, len(rows))

    history, ck, best = [], None, float("inf")
    for epoch in range(config.epochs):
        t0 = time.time()
        tr = run(train, training=True, epoch=epoch)
        va = run(val, training=False, epoch=epoch) if val else float("nan")
        history.append({"epoch": epoch + 1, "train_loss": tr, "val_loss": va, "seconds": round(time.time() - t0, 2)})
        log(f"epoch {epoch + 1}/{config.epochs}: train 1-cos {tr:.4f}, validation 1-cos {va:.4f} "
            f"({time.time() - t0:.1f} s)")
        ck = Checkpoint(
            kind="encoder", model_version=Path(out).stem, encoder_config=enc_cfg, frontend=fe, channel=channel,
            history=tuple(history), epoch=epoch,
            data=TrainingData(tuple(it.path for it in items), notes={"train_spans": len(train), "val_spans": len(val)}),
            encoder={k: v.cpu() for k, v in encoder.state_dict().items()}, predictor={},
            distill=DistillPart(teacher=teacher.info.to_dict(), config=config.to_dict(),
                                student_init=student.path if student is not None else None,
                                head={k: v.cpu() for k, v in head.state_dict().items()},
                                target_mean=torch.from_numpy(mu), target_std=torch.from_numpy(sd)))
        ck.save(out)
        score = va if va == va else tr
        if score <= best:
            best = score
            ck.save(best_path(out))
    return ck
