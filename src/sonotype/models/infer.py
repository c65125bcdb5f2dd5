"""Window scoring on any device: one :class:`Scorer` per detection run holds the model on its device.

On the CPU the windows come from the numpy front end (:func:`sonotype.features.frontend.iter_windows`),
exactly as :func:`sonotype.models.embed.file_scores` makes them, so the scores and regions are those of
the plain path. On a GPU the front end runs there too (:mod:`sonotype.features.torch_frontend`): only the
decoded samples cross the bus (from page-locked memory), a background thread decodes the next
blocks while the GPU works, and :meth:`Scorer.score_many` packs the windows of several files into
each encoder batch (thousands of windows), so short files do not leave the GPU idle.

``bf16`` runs the encoder under ``torch.autocast(dtype=bfloat16)``; the head stays float32. Its
error against float32 is bounded in ``tests/test_infer.py``.
"""

from __future__ import annotations

import copy
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Hashable, Iterable, Iterator

import numpy as np
import torch

from ..audio.io import DEFAULT_BLOCK
from ..errors import CheckpointError, ConfigError
from ..features.frontend import iter_windows
from ..features.torch_frontend import iter_windows_torch, resolve_device
from ..runtime import tune_allocator
from .checkpoint import LoadedModel
from .sharedconv import iter_window_frames, shared_forward

#: windows per encoder batch when ``batch`` is None. CPU: 64 (the plain path's; bigger batches spill the
#: (N, 64, 32, 256) conv activation out of cache); CUDA: 8192 (the H200 encoder saturates at 4k-16k).
DEFAULT_BATCH = {"cpu": 64, "cuda": 8192}


@dataclass(frozen=True)
class InferConfig:
    """How windows are scored. ``device``: auto | cpu | cuda (auto = CUDA when PyTorch sees one);
    ``bf16``: bfloat16 autocast on the encoder; ``batch``: windows per encoder batch (None: per-device default)."""

    device: str = "auto"
    bf16: bool = False
    batch: int | None = None

    def __post_init__(self):
        if self.batch is not None and self.batch < 1:
            raise ConfigError(f"batch must be >= 1 window, got {self.batch}")


def default_batch(device: torch.device) -> int:
    return DEFAULT_BATCH.get(device.type, DEFAULT_BATCH["cpu"])


@dataclass(frozen=True)
class ScoreJob:
    """One file to score: ``key`` is handed back with its scores."""

    key: Hashable
    path: str | Path
    channel: int
    sample_rate: float


class Scorer:
    """A detector (encoder + head) on one device, scoring windows in batches of ``batch``.

    ``torch_frontend``: make windows with :mod:`sonotype.features.torch_frontend` on the device (None: on a GPU only).
    ``shared_conv``: :mod:`sonotype.models.sharedconv` in :meth:`file_scores` (None: on the CPU only).

    The model's own modules are left on the CPU: the scorer works on a copy when the device is not the CPU.
    """

    def __init__(self, model: LoadedModel, *, device: str | torch.device = "auto", bf16: bool = False,
                 batch: int | None = None, block_frames: int = DEFAULT_BLOCK, torch_frontend: bool | None = None,
                 shared_conv: bool | None = None):
        if model.head is None:
            raise CheckpointError(f"{model.path}: holds an encoder only; scoring needs a detector checkpoint "
                                  "(sonotype train-detector)")
        InferConfig(batch=batch)  # validates
        self.model = model
        self.device = resolve_device(device)
        self.bf16 = bool(bf16)
        self.batch = int(batch or default_batch(self.device))
        self.block_frames = block_frames
        #: front end in torch on the device (default: everywhere but the CPU, where the numpy one is the reference)
        self.torch_frontend = self.device.type != "cpu" if torch_frontend is None else bool(torch_frontend)
        on_cpu = self.device.type == "cpu"
        #: the local conv once per frame, shared by overlapping windows (CPU, numpy front end; ~1.4x, equal to
        #: float32 rounding: tests/test_sharedconv.py). Default: on, on the CPU
        self.shared_conv = (on_cpu and not self.torch_frontend and not self.bf16) if shared_conv is None \
            else bool(shared_conv)
        if self.shared_conv and self.torch_frontend:
            raise ConfigError("shared_conv works on the numpy front end's frames; use torch_frontend=False")
        self.encoder = (model.encoder if on_cpu else copy.deepcopy(model.encoder).to(self.device)).eval()
        self.head = (model.head if on_cpu else copy.deepcopy(model.head).to(self.device)).eval()
        tune_allocator()

    # ------------------------------------------------------------------ windows -> scores

    def embed(self, windows: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Normalised windows ``(N, W, B)`` -> embeddings ``(N, D)`` float32 on the device, in batches."""
        x = torch.from_numpy(np.ascontiguousarray(windows, np.float32)) if isinstance(windows, np.ndarray) else windows
        out = []
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            for a in range(0, x.shape[0], self.batch):
                out.append(self.encoder(x[a:a + self.batch].to(self.device, non_blocking=True)).float())  # (b, D)
        if not out:
            return torch.zeros((0, self.encoder.config.embedding_dim), device=self.device)
        return torch.cat(out)

    def scores(self, windows: np.ndarray | torch.Tensor) -> np.ndarray:
        """P(vocalisation) ``(N,)`` float32 of normalised windows ``(N, W, B)``."""
        z = self.embed(windows)  # (N, D)
        with torch.inference_mode():
            return torch.sigmoid(self.head(z)).cpu().numpy()  # (N,)

    # ------------------------------------------------------------------ files -> scores

    def file_scores(self, path: str | Path, *, channel: int, sample_rate: float) -> np.ndarray:
        """Score of every window of a file, ``(N,)`` in [0, 1], streamed in bounded memory."""
        if self.shared_conv:
            parts = []
            with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                for _, frames, wins, off, sc in iter_window_frames(
                        path, self.model.frontend, channel=channel, sample_rate=sample_rate, batch=self.batch,
                        block_frames=self.block_frames):
                    z = shared_forward(self.encoder, *(torch.from_numpy(a).to(self.device) for a in
                                                       (frames, wins, off, sc)), stride=self.model.frontend.stride)
                    parts.append(torch.sigmoid(self.head(z.float())).cpu().numpy())  # (n,)
            return np.concatenate(parts) if parts else np.zeros(0, np.float32)
        if not self.torch_frontend and self.device.type == "cpu":
            parts = [self.scores(wb.windows) for wb in iter_windows(
                path, self.model.frontend, channel=channel, sample_rate=sample_rate, batch=self.batch,
                block_frames=self.block_frames)]
            return np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return next(iter(self.score_many([ScoreJob(None, path, channel, sample_rate)])))[1]

    def _windows(self, job: ScoreJob) -> Iterator[torch.Tensor]:
        if not self.torch_frontend:
            for wb in iter_windows(job.path, self.model.frontend, channel=job.channel, sample_rate=job.sample_rate,
                                   batch=self.batch, block_frames=self.block_frames):
                yield torch.from_numpy(wb.windows)
        else:
            for wb in iter_windows_torch(job.path, self.model.frontend, channel=job.channel,
                                         sample_rate=job.sample_rate, batch=self.batch,
                                         block_frames=self.block_frames, device=self.device):
                yield wb.windows

    def score_many(self, jobs: Iterable[ScoreJob], *, prefetch: int | None = None
                   ) -> Iterator[tuple[Hashable, np.ndarray]]:
        """Score files in order, yielding ``(job.key, scores (N,))`` per file as soon as its last window is scored.

        Windows of consecutive files share encoder batches of ``batch`` windows. ``prefetch``: window
        chunks decoded ahead by a background thread (default 4 on a GPU, 0 = none, on the CPU).
        An error reading a file is raised here, after the files before it were yielded.
        """
        depth = (4 if self.device.type != "cpu" else 0) if prefetch is None else prefetch
        source = _prefetched(self._chunks(jobs), depth) if depth else self._chunks(jobs)
        pending: list[tuple[ScoreJob, list[torch.Tensor], int]] = []  # per file: its windows not yet scored
        buffered = 0
        done: dict[int, list[np.ndarray]] = {}
        order: list[tuple[int, ScoreJob]] = []

        def flush():
            nonlocal buffered
            if not buffered:
                return
            x = torch.cat([w for _, ws, _ in pending for w in ws])  # (b, W, B)
            s = self.scores(x)  # (b,)
            a = 0
            for job, ws, ident in pending:
                n = sum(int(w.shape[0]) for w in ws)
                done.setdefault(ident, []).append(s[a:a + n])
                a += n
                ws.clear()
            pending.clear()
            buffered = 0

        def ready():  # the oldest files whose every window is scored, in order
            while order and order[0][0] in finished and not any(ident == order[0][0] for _, _, ident in pending):
                ident, job = order.pop(0)
                parts = done.pop(ident, [])
                yield job.key, (np.concatenate(parts) if parts else np.zeros(0, np.float32))

        finished: set[int] = set()
        last = -1
        it = iter(source)
        while True:
            try:
                ident, job, chunk = next(it)
            except StopIteration:
                break
            except Exception:  # a file that cannot be read: hand out the files before it, then raise
                if order and order[-1][0] not in finished:  # it failed part-way: its windows so far are dropped
                    broken = order.pop()[0]
                    buffered -= sum(int(w.shape[0]) for _, ws, i in pending if i == broken for w in ws)
                    pending[:] = [p for p in pending if p[2] != broken]
                    done.pop(broken, None)
                flush()
                yield from ready()
                raise
            if ident != last:  # a new file (idents increase)
                order.append((ident, job))
                last = ident
            if chunk is None:  # end of file `ident`
                finished.add(ident)
                yield from ready()
                continue
            while chunk.shape[0]:
                take = chunk[: self.batch - buffered]
                chunk = chunk[take.shape[0]:]
                if pending and pending[-1][2] == ident:
                    pending[-1][1].append(take)
                else:
                    pending.append((job, [take], ident))
                buffered += int(take.shape[0])
                if buffered >= self.batch:
                    flush()
                    yield from ready()
        flush()
        yield from ready()

    def _chunks(self, jobs: Iterable[ScoreJob]) -> Iterator[tuple[int, ScoreJob, torch.Tensor | None]]:
        for ident, job in enumerate(jobs):
            for w in self._windows(job):
                yield ident, job, w
            yield ident, job, None


def _prefetched(source: Iterator, depth: int) -> Iterator:
    """Run ``source`` in a daemon thread, ``depth`` items ahead; its exceptions are re-raised here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def work():
        try:
            for item in source:
                if stop.is_set():
                    return
                q.put(item)
            q.put(end)
        except BaseException as e:  # handed to the consumer
            q.put(e)

    t = threading.Thread(target=work, name="sonotype-prefetch", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(timeout=0.05)
