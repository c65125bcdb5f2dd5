"""Vocalisation-vs-noise detector: a small head trained on the frozen encoder's embeddings.

The encoder is frozen, so every labelled window is embedded once and the head is trained on
those embeddings (the original re-ran the encoder every epoch). With ``finetune`` the encoder is
trained too (see :mod:`sonotype.finetune`). Validation data is held out by
file where each label group has enough files, otherwise as the tail of each file; the decision
threshold is chosen on validation scores, never fixed at 0.5.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import metrics
from .checkpoint import load_model, save_checkpoint
from .dataset import IGNORE, FrameCache, Item, split_by_file
from .embed import file_embeddings, head_scores
from .errors import ConfigError, DataError
from .events import ScoredSpan, choose_event_threshold
from .finetune import LabelledWindows, finetune, label_windows
from .finetune import scores as finetune_scores
from .model import DetectorHead, Encoder
from .regions import RegionRule
from .runtime import set_threads

THRESHOLD_LEVELS = ("auto", "event", "window")


@dataclass(frozen=True)
class DetectorConfig:
    epochs: int = 64
    batch_size: int = 64
    lr: float = 1e-3
    dropout: float = 0.5
    hidden: int = 0  # 0: the seed's linear head; > 0: one hidden ReLU layer of this width
    val_fraction: float = 0.25
    val_split: str = "auto"  # auto | file | time
    min_overlap: float = 0.5  # see dataset.window_labels
    stride: int | None = None  # frames between training windows (None: the front end's); smaller = more windows
    finetune: bool = False  # also train the encoder (initialised from the self-supervised one)
    encoder_lr: float = 1e-4  # learning rate of the encoder when fine-tuning
    negatives_per_positive: int = 4  # noise windows drawn per vocal window each fine-tuning epoch
    balance: bool = True  # weight positives by n_neg / n_pos
    target_precision: float | None = None  # threshold rule; None: max F1 on validation
    threshold_level: str = "auto"  # event: best event F1 of the regions on validation stretches of the annotated
    #                                recordings; window: best window F1; auto: event where there are annotations
    seed: int = 0
    threads: int | None = None

    def __post_init__(self):
        if self.threshold_level not in THRESHOLD_LEVELS:
            raise ConfigError(f"threshold_level {self.threshold_level!r}; expected one of {THRESHOLD_LEVELS}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DetectorConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def embed_items(model, items: Sequence[Item], *, min_overlap: float, stride: int | None = None,
                progress: bool = True) -> LabelledWindows:
    """Embed every window of every item with ``model`` (a LoadedModel); label them; drop IGNORE windows.

    ``stride`` (frames) overrides the front end's window stride, e.g. to draw more training windows.
    """
    fe = replace(model.frontend, stride=stride) if stride else model.frontend
    xs, ys, fs, ws = [], [], [], []
    for i, it in enumerate(tqdm(items, desc="embedding", unit="file", disable=not progress, leave=False)):
        e = file_embeddings(model.encoder, it.path, fe, channel=it.channel, sample_rate=it.sample_rate)
        lab = it.window_labels(len(e), fe.at_rate(it.sample_rate), min_overlap=min_overlap)
        keep = lab != IGNORE
        xs.append(e[keep]); ys.append(lab[keep]); fs.append(np.full(int(keep.sum()), i)); ws.append(np.nonzero(keep)[0])
    if not xs or sum(len(x) for x in xs) == 0:
        raise DataError("no labelled windows: every file was shorter than one window")
    return LabelledWindows(np.concatenate(xs), np.concatenate(ys).astype(np.int64), np.concatenate(fs),
                              np.concatenate(ws))


def split_masks(file: np.ndarray, window: np.ndarray, items: Sequence[Item], *, mode: str, fraction: float,
                gap: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Train/validation masks over labelled windows (given each window's file and window index).

    ``mode='file'``: whole files held out (:func:`split_by_file`). ``mode='time'``: the last ``fraction``
    of each file's windows; the ``gap`` windows before the cut share frames with validation windows
    and go to neither side. Returns (train mask, validation mask, validation file paths).
    """
    if mode == "file":
        _, held = split_by_file(items, fraction=fraction, seed=seed)
        held_idx = [i for i, it in enumerate(items) if it in held]
        val = np.isin(file, held_idx)
        return ~val, val, [it.path for it in held]
    train, val = np.zeros(len(file), bool), np.zeros(len(file), bool)
    for i in np.unique(file):
        rows = np.nonzero(file == i)[0]
        w = window[rows]
        cut = int((w.max() + 1) * (1 - fraction))
        val[rows[w >= cut]] = True
        train[rows[w < cut - gap]] = True
    return train, val, []


def _val_mode(items: Sequence[Item], config: "DetectorConfig") -> str:
    if config.val_split != "auto":
        return config.val_split
    counts: dict = {}
    for it in items:
        key = it.label if it.events is None else bool(it.events)
        counts[key] = counts.get(key, 0) + 1
    return "file" if counts and min(counts.values()) >= 3 else "time"


def train_head(train: LabelledWindows, val: LabelledWindows, *, config: DetectorConfig, embedding_dim: int,
               progress: bool = True) -> tuple[DetectorHead, list[dict]]:
    """Fit the head; keep the epoch with the best validation average precision."""
    torch.manual_seed(config.seed)
    head = DetectorHead(embedding_dim, dropout=config.dropout, hidden=config.hidden)
    opt = torch.optim.Adam(head.parameters(), lr=config.lr)
    x, y = torch.from_numpy(train.data), torch.from_numpy(train.y).float()
    npos = float(y.sum())
    pos_weight = torch.tensor((len(y) - npos) / max(npos, 1.0)) if config.balance else None
    gen = torch.Generator().manual_seed(config.seed)
    best, best_state, history = -1.0, None, []
    for epoch in tqdm(range(config.epochs), desc="detector", disable=not progress, leave=False):
        head.train()
        order = torch.randperm(len(y), generator=gen)
        total = 0.0
        for a in range(0, len(y), config.batch_size):
            idx = order[a:a + config.batch_size]
            loss = F.binary_cross_entropy_with_logits(head(x[idx]), y[idx], pos_weight=pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        ap = metrics.average_precision(head_scores(head, val.data), val.y) if val.y.any() else 0.0
        history.append({"epoch": epoch + 1, "train_loss": total / len(y), "val_average_precision": ap})
        if ap > best:
            best, best_state = ap, {k: v.clone() for k, v in head.state_dict().items()}
    if best_state is not None:
        head.load_state_dict(best_state)
    return head.eval(), history


def validation_spans(encoder: Encoder, head: DetectorHead, frontend, items: Sequence[Item], *, mode: str,
                     val_files: Sequence[str], fraction: float) -> dict[str, ScoredSpan]:
    """Detector scores over the validation stretches of the annotated recordings, windowed as
    ``sonotype detect`` windows them (the checkpoint's front end): whole held-out files (``mode``
    'file'), or the last ``fraction`` of each file ('time'; one window more is left out at the cut)."""
    out = {}
    held = set(val_files)
    for it in items:
        if it.events is None or (mode == "file" and it.path not in held):
            continue
        e = file_embeddings(encoder, it.path, frontend, channel=it.channel, sample_rate=it.sample_rate)
        first = 0 if mode == "file" else int(np.ceil(len(e) * (1 - fraction))) + 1
        if first >= len(e):
            continue
        out[it.path] = ScoredSpan(head_scores(head, e[first:]), frontend.at_rate(it.sample_rate), first, it.frames,
                                  tuple(it.events))
    return out


def train_detector(encoder_path: str | Path, items: Sequence[Item], *, out: str | Path,
                   config: DetectorConfig = DetectorConfig(), data_note: dict | None = None,
                   cache_dir: str | Path | None = None, threshold_items: Sequence[Item] | None = None,
                   progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Train a detector head on a frozen encoder checkpoint; write a detector checkpoint to ``out``.

    The returned (and saved) checkpoint holds the encoder, the head, the threshold chosen on
    validation data and the validation metrics at that threshold. ``threshold_items``: annotated
    long recordings used only to choose the event-level threshold (whole files, never trained on),
    e.g. when the training data are short clips but the detector will run on long recordings.
    """
    set_threads(config.threads)
    model = load_model(encoder_path)
    mode = _val_mode(items, config)
    stride = config.stride or model.frontend.stride
    gap = -(-model.frontend.window // stride)
    if config.finetune:
        cache = FrameCache(Path(cache_dir) if cache_dir else Path(out).parent / ".sonotype-cache", model.frontend)
        data = label_windows(items, cache, model.frontend, stride=stride, min_overlap=config.min_overlap)
    else:
        data = embed_items(model, items, min_overlap=config.min_overlap, stride=config.stride, progress=progress)
    tmask, vmask, val_files = split_masks(data.file, data.window, items, mode=mode, fraction=config.val_fraction,
                                          gap=gap, seed=config.seed)
    tr, va = data.subset(tmask), data.subset(vmask)
    for name, d in (("training", tr), ("validation", va)):
        if not d.y.any() or d.y.all():
            raise DataError(f"the {name} split has windows of one class only ({int(d.y.sum())} vocal of {len(d.y)}); "
                            "give both vocalisation and noise files/events, or more files")
    log(f"detector: {len(tr.y)} training windows ({int(tr.y.sum())} vocal), {len(va.y)} validation windows "
        f"({int(va.y.sum())} vocal), validation split by {mode}{', fine-tuning the encoder' if config.finetune else ''}")
    encoder_state = None
    if config.finetune:
        enc, head, history = finetune(model.encoder, items, tr, va, cache, model.frontend, epochs=config.epochs,
                                      lr=config.lr, encoder_lr=config.encoder_lr, batch_size=config.batch_size,
                                      dropout=config.dropout, hidden=config.hidden,
                                      negatives_per_positive=config.negatives_per_positive, seed=config.seed,
                                      progress=progress)
        val_scores = finetune_scores(enc, head, items, va, cache, model.frontend)
        encoder_state = {k: v.cpu() for k, v in enc.state_dict().items()}
    else:
        head, history = train_head(tr, va, config=config, embedding_dim=model.encoder.config.embedding_dim,
                                   progress=progress)
        val_scores = head_scores(head, va.data)
    threshold = metrics.choose_threshold(val_scores, va.y, target_precision=config.target_precision)
    window_threshold, level, val_events = threshold, "window", None
    if threshold_items and any(it.events is None for it in threshold_items):
        raise DataError("threshold recordings need annotations (events, or none listed) to choose a threshold on")
    annotated = bool(threshold_items) or any(it.events is not None for it in items)
    if config.threshold_level == "event" or (config.threshold_level == "auto" and annotated):
        scorer = enc if config.finetune else model.encoder
        if threshold_items:
            spans = validation_spans(scorer, head, model.frontend, threshold_items, mode="file",
                                     val_files=[it.path for it in threshold_items], fraction=0.0)
        else:
            spans = validation_spans(scorer, head, model.frontend, items, mode=mode, val_files=val_files,
                                     fraction=config.val_fraction) if annotated else {}
        if any(sp.events for sp in spans.values()):
            threshold, ev = choose_event_threshold(spans, rule=RegionRule(), target_precision=config.target_precision)
            level, val_events = "event", ev.to_dict()
            log(f"event-level threshold {threshold:.3f} on {ev.hours * 60:.1f} min of validation recordings: "
                f"{ev.events_found}/{ev.events} events found, event precision {ev.precision:.3f}, "
                f"{ev.false_alarms_per_hour:.1f} false alarms/h (window-level threshold was {window_threshold:.3f})")
        elif config.threshold_level == "event":
            raise DataError("threshold_level 'event' needs annotated events in the validation recordings; "
                            "use --threshold-level window, or give more annotated files")
    val_summary = metrics.summary(val_scores, va.y, threshold=threshold)
    cm = val_summary["confusion"]
    log(f"threshold {threshold:.3f} (chosen on validation, {level} level): window precision {cm['precision']:.3f}, "
        f"recall {cm['recall']:.3f}, F1 {cm['f1']:.3f}, AP {val_summary['average_precision']:.3f}")
    ck = dict(model.checkpoint)
    ck.pop("optimizer", None); ck.pop("rng_torch", None)
    if encoder_state is not None:
        ck["encoder"] = encoder_state  # the fine-tuned encoder scores; the self-supervised one stays at encoder_path
    ck.update({"kind": "detector", "encoder_checkpoint": str(encoder_path), "detector": {
        "head": head.state_dict(), "dropout": config.dropout, "hidden": config.hidden, "threshold": threshold,
        "config": config.to_dict(), "history": history, "validation": val_summary, "val_split": mode,
        "threshold_level": level, "window_threshold": window_threshold, "validation_events": val_events,
        "finetuned": bool(config.finetune),
        "train_files": [it.path for it in items if it.path not in set(val_files)], "val_files": val_files,
        "threshold_files": [it.path for it in threshold_items or ()],
        "data": data_note or {}}})
    for k in ("format", "version", "sonotype_version", "created"):
        ck.pop(k, None)
    save_checkpoint(out, ck)
    return ck
