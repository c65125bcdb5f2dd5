"""Distillation: teach the small LSTM-V3 encoder to carry a large pretrained backend's embeddings.

On unlabelled audio the teacher (e.g. BirdNET, 1,024-d per 3-s window) embeds each file in windows
``hop`` apart (overlapping when the hop is shorter than the window: more targets per second of audio).
The student encoder embeds a stretch of a file once, as its own windows ``stride`` frames apart; each
teacher window inside the stretch is matched by the mean of the student windows that lie inside it,
mapped through a linear head to the teacher's size. So a finer teacher hop adds targets without adding
student work. The loss is ``1 - cosine`` between the head's output and the teacher's embedding
(z-scored over the corpus, so that every dimension counts, not the few with the largest values). Only
the encoder is kept for use: its window embeddings then feed detection and DTW clustering as before,
at the student's speed.

Teacher embeddings are cached on disk (``<cache_dir>/teacher``), keyed by the file (path, size, time
of change, channel) and the backend's key (name, version, hop, speed-up), so reruns skip the teacher.

Augmentation (training steps only; the teacher's targets stay those of the clean audio): ``shift``
moves the student's window grid by a random number of frames below ``stride`` each step (every window
still lies inside its teacher windows), and SpecAugment-style time and frequency masks.

Validation holds out whole files (``holdout="files"``: a seeded ``val_fraction`` of them) or the last
``val_fraction`` of each file's teacher windows (``"tail"``, dropping the training windows that overlap
them); the epoch of lowest validation loss is written to ``<out>.best.pt``. The checkpoint is an
ordinary encoder checkpoint with a ``distill`` entry (teacher, settings, head).
"""

from __future__ import annotations

import hashlib
import json
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
from ..params import COUNT, FRACTION, RATE, SIZE, param
from ..runtime import set_threads, tune_allocator
from .augment import spec_masks
from .dataset import FrameCache, Item
from .train import DEVICES, best_path, pick_device

#: how the validation part is held out: whole files, or the last part of each file
HOLDOUTS = ("files", "tail")


@dataclass(frozen=True)
class DistillConfig:
    epochs: int = param(10, check=COUNT, help="passes over the audio")
    batch_s: float = param(24.0, check=RATE, flag="--batch-seconds",
                           help="seconds of audio per step (the student embeds each stretch once; every teacher "
                                "window inside it is a target)")
    lr: float = param(1e-3, check=RATE, help="learning rate")
    stride: int = param(16, check=COUNT, flag="--student-stride", aliases=("--stride",),
                        help="frames between the student's windows")
    val_fraction: float = param(0.15, check=FRACTION, help="the share of files (or of each file's end) held out")
    holdout: str = param("files", choices=HOLDOUTS,
                         help="validation: whole files (files) or the last part of each file (tail)")
    shift: bool = param(False, help="augment: move the student's window grid by a random offset below the stride")
    time_mask: int = param(0, check=SIZE, help="augment: one time mask up to this many frames per student window")
    freq_mask: int = param(0, check=SIZE, help="augment: one frequency mask up to this many bins per student window")
    seed: int = param(0, help="random seed")
    threads: int | None = param(None, check=COUNT, help="CPU threads (default: PyTorch's)")
    device: str = param("auto", choices=DEVICES, help="where to train (auto: cuda when there is a GPU)")

    def __post_init__(self):
        if self.epochs < 1 or not self.batch_s > 0 or self.stride < 1 or not 0 <= self.val_fraction < 1 \
                or self.lr <= 0 or self.holdout not in HOLDOUTS or self.time_mask < 0 or self.freq_mask < 0:
            raise ConfigError(f"distillation settings out of range: {self}; expected epochs, stride >= 1, batch_s > 0, "
                              f"0 <= val_fraction < 1, lr > 0, holdout in {HOLDOUTS}, masks >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TeacherWindow:
    """One teacher window: item index, the student frames it covers ``[first, last)`` and the target's row."""

    item: int
    first: int
    last: int
    row: int


def teacher_key(item: Item, teacher: Backend) -> str:
    """Cache name of a file's teacher embeddings: the file (path, size, time of change, channel) and the
    backend's key (name, version, hop, speed-up)."""
    st = Path(item.path).stat()
    ident = json.dumps([str(Path(item.path).resolve()), st.st_size, st.st_mtime_ns, item.channel, teacher.info.key])
    return hashlib.sha1(ident.encode()).hexdigest()[:20]


def teacher_embeddings(item: Item, teacher: Backend, *, store: str | Path | None = None) -> np.ndarray:
    """The teacher's embeddings ``(n, Dt)`` float32 of one file, read from ``store`` when there (else
    computed, and written there when ``store`` is given)."""
    path = Path(store) / f"{teacher_key(item, teacher)}.npy" if store is not None else None
    if path is not None and path.is_file():
        return np.load(path)
    emb = np.asarray(teacher.embed_span(item.path, channel=item.channel), np.float32)  # (n, Dt)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, emb)
        tmp.replace(path)
    return emb


def teacher_spans(items: Sequence[Item], teacher: Backend, cache: FrameCache, *, store: str | Path | None = None,
                  progress: bool = True) -> tuple[list[TeacherWindow], np.ndarray]:
    """Every file's teacher embeddings ``(S, Dt)`` and, for each, the student frames it covers
    (teacher windows that hold no whole student window are left out). ``store``: the teacher cache folder."""
    spans, targets = [], []
    for i, it in enumerate(tqdm(items, desc="teacher", disable=not progress, leave=False, unit="file")):
        emb = teacher_embeddings(it, teacher, store=store)  # (n, Dt)
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


@dataclass(frozen=True)
class Stretch:
    """Frames ``[first, last)`` of one item, embedded by the student at once, and the teacher windows in it."""

    item: int
    first: int
    last: int
    spans: tuple[TeacherWindow, ...]


def stretches(spans: Sequence[TeacherWindow], items: Sequence[Item], frontend, *, max_s: float) -> list[Stretch]:
    """Each file's teacher windows grouped, in time order, into stretches of at most ``max_s`` seconds
    (a single teacher window longer than that is a stretch of its own)."""
    out = []
    by_item: dict[int, list[TeacherWindow]] = {}
    for s in spans:
        by_item.setdefault(s.item, []).append(s)
    for i, mine in sorted(by_item.items()):
        it = items[i]
        framing = framing_for(frontend, it.sample_rate, it.path)
        limit = max_s * it.sample_rate / framing.hop  # frames
        cur: list[TeacherWindow] = []
        for s in sorted(mine, key=lambda s: (s.first, s.last)):
            if cur and max(s.last, *(c.last for c in cur)) - cur[0].first > limit:
                out.append(Stretch(i, cur[0].first, max(c.last for c in cur), tuple(cur)))
                cur = []
            cur.append(s)
        if cur:
            out.append(Stretch(i, cur[0].first, max(c.last for c in cur), tuple(cur)))
    return out


def stretch_batch(batch: Sequence[Stretch], items: Sequence[Item], cache: FrameCache, *, stride: int,
                  offsets: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Student windows of several stretches stacked ``(N, W, B)``, the averaging matrix ``(S, N)`` (row
    ``j``: weight ``1/n`` on each of the ``n`` windows inside teacher window ``j``) and the target rows ``(S,)``.

    Windows start ``offsets[k]`` frames after stretch ``k``'s first frame, ``stride`` apart; a teacher
    window that holds none of them gets one window at its own start."""
    fe = cache.frontend
    w = fe.window
    xs, cells, rows = [], [], []
    n = 0
    for k, st in enumerate(batch):
        frames = cache.frames(items[st.item])
        off = int(offsets[k]) if offsets is not None else 0
        x = frames_to_windows(np.asarray(frames[st.first + off:st.last], np.float32), window=w, stride=stride,
                              centre_bins=fe.centre_bins)                  # (n_k, W, B)
        starts = st.first + off + stride * np.arange(len(x))
        xs.append(x)
        base, n = n, n + len(x)
        for s in st.spans:
            inside = np.flatnonzero((starts >= s.first) & (starts + w <= s.last))
            if inside.size:
                cols = base + inside
            else:
                xs.append(frames_to_windows(np.asarray(frames[s.first:s.first + w], np.float32), window=w, stride=1,
                                            centre_bins=fe.centre_bins))   # (1, W, B)
                cols, n = np.array([n]), n + 1
            cells.append(cols)
            rows.append(s.row)
    member = torch.zeros(len(rows), n)
    for j, cols in enumerate(cells):
        member[j, torch.from_numpy(cols)] = 1.0 / len(cols)
    return torch.from_numpy(np.concatenate(xs)), member, rows


def pooled(encoder: Encoder, head: torch.nn.Module, x: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
    """Each teacher window's mean student window embedding through the head: windows ``(N, W, B)``,
    averaging matrix ``(S, N)`` -> ``(S, Dt)``."""
    e = encoder(x)                                                    # (N, D)
    return head(member @ e)                                           # (S, Dt)


def split(spans: Sequence[TeacherWindow], n_items: int, config: DistillConfig
          ) -> tuple[list[TeacherWindow], list[TeacherWindow], str]:
    """Training and validation teacher windows by ``config.holdout`` (one file: its tail), and how."""
    if not config.val_fraction:
        return list(spans), [], "no validation"
    if config.holdout == "files" and n_items >= 2:
        n_val = min(n_items - 1, max(1, int(round(n_items * config.val_fraction))))
        held = set(np.random.default_rng(config.seed).permutation(n_items)[:n_val].tolist())
        return ([s for s in spans if s.item not in held], [s for s in spans if s.item in held],
                f"{n_val} of {n_items} files held out")
    train, val = [], []
    for i in range(n_items):
        mine = [s for s in spans if s.item == i]
        cut = int(round(len(mine) * (1 - config.val_fraction)))
        if len(mine) >= 4:
            held = mine[cut:]
            start = held[0].first if held else None
            train += [s for s in mine[:cut] if start is None or s.last <= start]
            val += held
        else:
            train += mine
    return train, val, f"the last {config.val_fraction:g} of each file held out"


def distill(items: Sequence[Item], teacher: Backend, *, student: LoadedModel | None, out: str | Path,
            cache_dir: str | Path, frontend=None, config: DistillConfig = DistillConfig(), channel=None,
            progress: bool = True, log: Callable[[str], None] = print,
            on_epoch: Callable[[int, Checkpoint], None] | None = None) -> Checkpoint:
    """Train the student encoder (initialised from ``student``, else random with ``frontend``) to
    reproduce ``teacher`` on ``items``; writes ``out`` each epoch and ``<out>.best.pt``. ``on_epoch(epoch,
    checkpoint)`` (epochs counted from 1) is called after each epoch's checkpoint is written."""
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
    if (config.time_mask > fe.window) or (config.freq_mask > fe.n_bins):
        raise ConfigError(f"masks of {config.time_mask} frames / {config.freq_mask} bins do not fit the student's "
                          f"{fe.window} x {fe.n_bins} windows; use smaller --time-mask / --freq-mask")
    encoder = Encoder(enc_cfg)
    if student is not None:
        encoder.load_state_dict(student.encoder.state_dict())
    encoder.to(device)
    cache = FrameCache(Path(cache_dir), fe)
    spans, targets = teacher_spans(items, teacher, cache, store=Path(cache_dir) / "teacher", progress=progress)
    mu, sd = targets.mean(0), targets.std(0) + 1e-6
    tgt = torch.from_numpy((targets - mu) / sd)
    train, val, how = split(spans, len(items), config)
    train_st = stretches(train, items, fe, max_s=config.batch_s)
    val_st = stretches(val, items, fe, max_s=config.batch_s)
    head = torch.nn.Linear(enc_cfg.embedding_dim, targets.shape[1]).to(device)
    opt = torch.optim.Adam(list(encoder.parameters()) + list(head.parameters()), lr=config.lr)
    log(f"distilling {teacher.info.label} ({targets.shape[1]}-d, windows {teacher.info.window_s:g} s every "
        f"{teacher.info.hop_s:g} s) into LSTM-V3 ({enc_cfg.embedding_dim}-d) on {len(items)} file(s): "
        f"{len(train)} train / {len(val)} validation teacher windows ({how}), {device}")

    def seconds(st: Stretch) -> float:
        it = items[st.item]
        return (st.last - st.first) * framing_for(fe, it.sample_rate, it.path).hop / it.sample_rate

    def batches(rows: Sequence[Stretch], order: np.ndarray) -> list[list[Stretch]]:
        out, cur, total = [], [], 0.0
        for k in order:
            s = seconds(rows[k])
            if cur and total + s > config.batch_s:
                out.append(cur)
                cur, total = [], 0.0
            cur.append(rows[k])
            total += s
        return out + ([cur] if cur else [])

    def run(rows: Sequence[Stretch], *, training: bool, epoch: int) -> float:
        encoder.train(training); head.train(training)
        rng = np.random.default_rng([config.seed, epoch])
        order = rng.permutation(len(rows)) if training else np.arange(len(rows))
        total, count = 0.0, 0
        for batch in batches(rows, order):
            offsets = rng.integers(0, config.stride, len(batch)) if training and config.shift else None
            x, member, idx = stretch_batch(batch, items, cache, stride=config.stride, offsets=offsets)
            if training and (config.time_mask or config.freq_mask):
                x = torch.from_numpy(spec_masks(x.numpy(), rng, time=config.time_mask, freq=config.freq_mask))
            y = tgt[idx].to(device)
            with torch.set_grad_enabled(training):
                loss = (1 - F.cosine_similarity(pooled(encoder, head, x.to(device), member.to(device)), y, dim=1)).mean()
            if training:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            total += loss.item() * len(idx)
            count += len(idx)
        return total / max(1, count)

    history, ck, best = [], None, float("inf")
    for epoch in range(config.epochs):
        t0 = time.time()
        tr = run(train_st, training=True, epoch=epoch)
        va = run(val_st, training=False, epoch=epoch) if val_st else float("nan")
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
        if on_epoch is not None:
            on_epoch(epoch + 1, ck)
    return ck
