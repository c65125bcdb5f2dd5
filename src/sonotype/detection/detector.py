"""Vocalisation-vs-noise detector: a small head trained on the frozen encoder's embeddings.

The encoder is frozen, so every labelled window is embedded once and the head is trained on
those embeddings (the original re-ran the encoder every epoch). With ``finetune`` the encoder is
trained too (see :mod:`sonotype.training.finetune`). Validation data is held out by
file where each label group has enough files, otherwise as the tail of each file; the decision
threshold is chosen on validation scores, never fixed at 0.5.

Generalisation aids (all off by default, all seeded; see :class:`DetectorConfig`): calls cut from
the training annotations mixed into other training backgrounds (:mod:`sonotype.training.augment`),
SpecAugment masks, mixup, a PCEN front end (``scale='pcen'``), hard-negative mining (a second
pass with the first pass's highest-scoring noise windows weighted up) and an ensemble of seeds
whose window scores are averaged (carried in the checkpoint, used by ``detect``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError
from ..features.frontend import SCALES, FrontEnd
from ..models.backends import BACKENDS
from ..models.backends.base import check_speedup
from ..models.checkpoint import Checkpoint, DetectorPart, EnsembleMember, ThresholdSpan, load_model
from ..models.embed import embed_windows, file_embeddings, head_scores
from ..models.lstm_v3 import DetectorHead, Encoder
from ..runtime import set_threads
from ..training import metrics
from ..training.augment import cut_calls, mix_examples, mixup_pairs, spec_masks
from ..training.dataset import IGNORE, FrameCache, Item, split_by_file
from ..training.finetune import Augmentation, LabelledWindows, finetune, label_windows
from ..training.finetune import scores as finetune_scores
from ..training.train import pick_device
from .events import ScoredSpan, choose_event_threshold
from .regions import RegionRule

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
    augment: float = 0.0  # mixed-in call windows per vocal training window: calls cut from the training annotations
    #                       mixed into training backgrounds clear of events (sonotype.training.augment); 0: off
    snr_low: float = 0.0  # dB: mixed-in calls' SNR uniform in [snr_low, snr_high], band power in the front end's band
    snr_high: float = 15.0
    gain_db: float = 6.0  # dB: random gain of a mixed window, uniform in +-gain_db
    time_mask: int = 0  # SpecAugment: one time mask up to this many frames (fine-tuning: every batch; frozen: mixed windows)
    freq_mask: int = 0  # SpecAugment: one frequency mask up to this many bins
    mixup: float = 0.0  # mixup of training batches (and their labels), Beta(mixup, mixup); 0: off
    hard_negatives: int = 0  # second pass with this many of the first pass's highest-scoring training noise windows
    hard_negative_weight: float = 4.0  # loss weight of those hard negatives in the second pass
    ensemble: int = 1  # detectors of seeds seed, seed+1, ...; their window scores are averaged
    scale: str | None = None  # front-end scale for the detector (e.g. 'pcen'; with --finetune); None: the encoder's
    pcen_time: float | None = None  # PCEN time constant, s (None: the encoder's front end's)
    device: str = "auto"  # auto (cuda when present) | cpu | cuda
    backend: str = "lstm"  # embeddings the head reads: lstm (the encoder checkpoint's) or a pretrained backend
    speedup: float = 1.0  # pretrained backends: play the audio this many times faster first
    hop: float | None = None  # pretrained backends: seconds between windows as the model hears them (None: its own)
    head_c: float = 0.1  # pretrained backends: inverse L2 strength of the logistic head (scikit-learn's C)

    def __post_init__(self):
        if self.threshold_level not in THRESHOLD_LEVELS:
            raise ConfigError(f"threshold_level {self.threshold_level!r}; expected one of {THRESHOLD_LEVELS}")
        if self.ensemble < 1 or self.augment < 0 or self.hard_negatives < 0 or self.mixup < 0:
            raise ConfigError(f"need ensemble >= 1 and augment, hard_negatives, mixup >= 0; got ensemble={self.ensemble}, "
                              f"augment={self.augment}, hard_negatives={self.hard_negatives}, mixup={self.mixup}")
        if self.snr_low > self.snr_high or self.gain_db < 0 or self.time_mask < 0 or self.freq_mask < 0:
            raise ConfigError(f"need snr_low <= snr_high and gain_db, time_mask, freq_mask >= 0; got {self.snr_low}, "
                              f"{self.snr_high}, {self.gain_db}, {self.time_mask}, {self.freq_mask}")
        if self.scale is not None and self.scale not in SCALES:
            raise ConfigError(f"scale {self.scale!r}; expected one of {SCALES}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; expected one of {BACKENDS}")
        check_speedup(self.speedup)
        if self.hop is not None and not (isinstance(self.hop, (int, float)) and self.hop > 0):
            raise ConfigError(f"hop {self.hop!r}; expected seconds > 0 (or None: the backend's own)")
        if not (isinstance(self.head_c, (int, float)) and self.head_c > 0):
            raise ConfigError(f"head_c {self.head_c!r}; expected a number > 0 (scikit-learn's C)")
        if self.backend == "lstm":
            bad = [f"{k}={getattr(self, k)!r}" for k in BACKEND_ONLY if getattr(self, k) != _DEFAULTS[k]]
            if bad:
                raise ConfigError(f"{', '.join(bad)}: for detectors on a pretrained backend (--backend "
                                  f"{'/'.join(b for b in BACKENDS if b != 'lstm')}); the lstm path does not use them")
        else:
            self.check_backend_options(self.backend)

    def check_backend_options(self, backend: str) -> None:
        """ConfigError naming the options set away from their defaults that a detector on ``backend`` (a
        pretrained embedding backend) does not use."""
        bad = [f"{k}={getattr(self, k)!r}" for k in LSTM_ONLY if getattr(self, k) != _DEFAULTS[k]]
        if bad:
            raise ConfigError(f"{', '.join(bad)}: not used by a detector on the {backend} backend (a logistic head "
                              "on its embeddings; --head-c sets its regularisation); leave them at their defaults, "
                              "or use --backend lstm")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DetectorConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


_DEFAULTS = {f.name: f.default for f in fields(DetectorConfig)}
#: DetectorConfig fields that set how a pretrained backend hears the audio (the lstm path refuses them;
#: ``head_c`` it leaves unused)
BACKEND_ONLY = ("speedup", "hop")
#: fields only the LSTM-V3 path uses (encoder training, spectrogram augmentation, the torch head)
LSTM_ONLY = ("epochs", "batch_size", "lr", "dropout", "hidden", "stride", "finetune", "encoder_lr",
             "negatives_per_positive", "augment", "snr_low", "snr_high", "gain_db", "time_mask", "freq_mask", "mixup",
             "hard_negatives", "hard_negative_weight", "ensemble", "scale", "pcen_time")


def embed_items(model, items: Sequence[Item], *, min_overlap: float, stride: int | None = None,
                progress: bool = True, frontend: FrontEnd | None = None) -> LabelledWindows:
    """Embed every window of every item with ``model`` (a LoadedModel); label them; drop IGNORE windows.

    ``stride`` (frames) overrides the front end's window stride, e.g. to draw more training windows;
    ``frontend``: another front end than the model's (e.g. its PCEN variant).
    """
    fe = frontend or model.frontend
    fe = replace(fe, stride=stride) if stride else fe
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
               weights: np.ndarray | None = None, seed: int | None = None, device: torch.device | str = "cpu",
               progress: bool = True) -> tuple[DetectorHead, list[dict]]:
    """Fit the head on embeddings (per-window loss ``weights`` ``(N,)``, default 1; mixup if the config says);
    keep the epoch with the best validation average precision. ``seed``: default the config's."""
    seed = config.seed if seed is None else seed
    torch.manual_seed(seed)
    head = DetectorHead(embedding_dim, dropout=config.dropout, hidden=config.hidden).to(device)
    opt = torch.optim.Adam(head.parameters(), lr=config.lr)
    x, y = torch.from_numpy(train.data).to(device), torch.from_numpy(train.y).float().to(device)  # (N, D), (N,)
    w = torch.from_numpy(np.ones(len(train.y), np.float32) if weights is None else weights.astype(np.float32)).to(device)
    npos = float(y.sum())
    pos_weight = torch.tensor((len(y) - npos) / max(npos, 1.0), device=device) if config.balance else None
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    best, best_state, history = -1.0, None, []
    for epoch in tqdm(range(config.epochs), desc="detector", disable=not progress, leave=False):
        head.train()
        order = torch.randperm(len(y), generator=gen).to(device)
        total = 0.0
        for a in range(0, len(y), config.batch_size):
            idx = order[a:a + config.batch_size]
            xb, yb, wb = x[idx], y[idx], w[idx]  # (b, D), (b,), (b,)
            if config.mixup > 0:
                perm, lam = mixup_pairs(len(idx), rng, alpha=config.mixup)
                lt, pt = torch.from_numpy(lam.astype(np.float32)).to(device), torch.from_numpy(perm).to(device)
                xb, yb, wb = lt[:, None] * xb + (1 - lt[:, None]) * xb[pt], lt * yb + (1 - lt) * yb[pt], torch.maximum(wb, wb[pt])
            loss = F.binary_cross_entropy_with_logits(head(xb), yb, weight=wb, pos_weight=pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        head.eval()
        with torch.inference_mode():
            vs = torch.sigmoid(head(torch.from_numpy(val.data).to(device))).float().cpu().numpy()
        ap = metrics.average_precision(vs, val.y) if val.y.any() else 0.0
        history.append({"epoch": epoch + 1, "train_loss": total / len(y), "val_average_precision": ap})
        if ap > best:
            best, best_state = ap, {k: v.detach().cpu().clone() for k, v in head.state_dict().items()}
    head = head.cpu()
    if best_state is not None:
        head.load_state_dict(best_state)
    return head.eval(), history


def members_file_scores(members: Sequence[tuple[Encoder, DetectorHead]], frontend: FrontEnd, item: Item
                        ) -> np.ndarray:
    """Window scores ``(N,)`` of a whole file averaged over an ensemble's (encoder, head) members (each distinct
    encoder embeds the file once)."""
    total, done = None, {}
    for enc, head in members:
        if id(enc) not in done:
            done[id(enc)] = file_embeddings(enc, item.path, frontend, channel=item.channel, sample_rate=item.sample_rate)
        sc = head_scores(head, done[id(enc)]).astype(np.float64)
        total = sc if total is None else total + sc
    return (total / len(members)).astype(np.float32)


def validation_start(n_windows: int, *, mode: str, fraction: float) -> int:
    """The first window of a recording's validation stretch: 0 for a held-out file (``mode`` 'file'), else
    the window after the cut at ``1 - fraction`` of its ``n_windows`` windows ('time'; one more left out)."""
    return 0 if mode == "file" else int(np.ceil(n_windows * (1 - fraction))) + 1


def validation_spans(members: Sequence[tuple[Encoder, DetectorHead]], frontend, items: Sequence[Item], *, mode: str,
                     val_files: Sequence[str], fraction: float) -> dict[str, ScoredSpan]:
    """Detector scores (averaged over ``members``) over the validation stretches of the annotated recordings,
    windowed as ``sonotype detect`` windows them (the checkpoint's front end): whole held-out files (``mode``
    'file'), or the last ``fraction`` of each file ('time'; one window more is left out at the cut)."""
    out = {}
    held = set(val_files)
    for it in items:
        if it.events is None or (mode == "file" and it.path not in held):
            continue
        sc = members_file_scores(members, frontend, it)
        first = validation_start(len(sc), mode=mode, fraction=fraction)
        if first >= len(sc):
            continue
        out[it.path] = ScoredSpan(sc[first:], frontend.at_rate(it.sample_rate), first, it.frames, tuple(it.events))
    return out


def training_parts(items: Sequence[Item], *, mode: str, val_files: Sequence[str], fraction: float,
                   frontend: FrontEnd) -> list[Item]:
    """The training side of each recording as an :class:`Item`: whole files not held out (``mode`` 'file'), or
    each file cut one window before its validation tail ('time'), keeping only the events that end before the cut."""
    if mode == "file":
        return [it for it in items if it.path not in set(val_files)]
    out = []
    for it in items:
        span = frontend.at_rate(it.sample_rate).window_samples
        cut = int(it.frames * (1 - fraction)) - span
        if cut <= span:
            continue
        evs = None if it.events is None else tuple(e for e in it.events if e.end * it.sample_rate < cut)
        out.append(replace(it, frames=cut, events=evs))
    return out


def mixed_windows(items: Sequence[Item], frontend: FrontEnd, *, count: int, config: DetectorConfig,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` augmented vocal windows ``(count, W, B)`` and their labels: the items' annotated calls mixed into
    their event-free stretches (:func:`sonotype.training.augment.mix_examples`), then masked as the config says."""
    rng = np.random.default_rng(seed)
    calls = cut_calls([it for it in items if it.events])
    if not calls:
        raise DataError("augment needs annotated calls in the training recordings (an annotation table with events)")
    rate = calls[0].sample_rate
    fr = frontend.at_rate(rate)
    pre = 2.0 * frontend.pcen_time if frontend.scale == "pcen" else 0.0  # PCEN settles
    ex = mix_examples(calls, [it for it in items if it.events is not None or it.label == 0], fr, count=count, rng=rng,
                      snr_range=(config.snr_low, config.snr_high), gain_db=config.gain_db,
                      min_overlap=config.min_overlap, preroll_s=pre)
    w = ex.windows
    if config.time_mask or config.freq_mask:
        w = spec_masks(w, rng, time=config.time_mask, freq=config.freq_mask)
    return w, ex.y


def split_windows(data, items, *, mode: str, gap: int, config: DetectorConfig):
    """Labelled windows split into training and validation (:func:`split_masks`, ``gap`` windows dropped at
    each cut); both must hold both classes. Returns ``(training, validation, validation file paths)``."""
    tmask, vmask, val_files = split_masks(data.file, data.window, items, mode=mode, fraction=config.val_fraction,
                                          gap=gap, seed=config.seed)
    tr, va = data.subset(tmask), data.subset(vmask)
    for name, d in (("training", tr), ("validation", va)):
        if not d.y.any() or d.y.all():
            raise DataError(f"the {name} split has windows of one class only ({int(d.y.sum())} vocal of {len(d.y)}); "
                            "give both vocalisation and noise files/events, or more files")
    return tr, va, val_files


def choose_detector_threshold(val_scores: np.ndarray, labels: np.ndarray, spans: dict | None, *,
                              config: DetectorConfig, log: Callable[[str], None] = print):
    """The detector's threshold, for every head: chosen at window level on the validation windows'
    ``val_scores`` ``(N,)`` and ``labels`` ``(N,)``, then at event level on ``spans`` (validation
    stretches, :class:`~sonotype.detection.events.ScoredSpan` by name) when given and annotated.

    Returns ``(threshold, level, window_threshold, validation_events, validation_summary)``."""
    threshold = metrics.choose_threshold(val_scores, labels, target_precision=config.target_precision)
    window_threshold, level, val_events = threshold, "window", None
    if spans is not None:
        if any(sp.events for sp in spans.values()):
            threshold, ev = choose_event_threshold(spans, rule=RegionRule(), target_precision=config.target_precision)
            level, val_events = "event", ev.to_dict()
            log(f"event-level threshold {threshold:.3f} on {ev.hours * 60:.1f} min of validation recordings: "
                f"{ev.events_found}/{ev.events} events found, event precision {ev.precision:.3f}, "
                f"{ev.false_alarms_per_hour:.1f} false alarms/h (window-level threshold was {window_threshold:.3f})")
        elif config.threshold_level == "event":
            raise DataError("threshold_level 'event' needs annotated events in the validation recordings; "
                            "use --threshold-level window, or give more annotated files")
    val_summary = metrics.summary(val_scores, labels, threshold=threshold)
    cm = val_summary["confusion"]
    log(f"threshold {threshold:.3f} (chosen on validation, {level} level): window precision {cm['precision']:.3f}, "
        f"recall {cm['recall']:.3f}, F1 {cm['f1']:.3f}, AP {val_summary['average_precision']:.3f}")
    return threshold, level, window_threshold, val_events, val_summary


def kept_spans(spans: dict[str, ScoredSpan] | None, level: str) -> tuple[ThresholdSpan, ...]:
    """The scored stretches an event-level threshold was chosen on, as the checkpoint keeps them (none for a
    window-level threshold)."""
    if level != "event" or not spans:
        return ()
    return tuple(ThresholdSpan(path=str(p), sample_rate=float(sp.framing.sample_rate),
                               first_window=int(sp.first_window), n_samples=int(sp.n_samples),
                               scores=torch.as_tensor(np.asarray(sp.scores, np.float32)),
                               events=tuple((float(e.start), float(e.end)) for e in sp.events))
                 for p, sp in spans.items())


def train_detector(encoder_path: str | Path, items: Sequence[Item], *, out: str | Path,
                   config: DetectorConfig = DetectorConfig(), data_note: dict | None = None,
                   cache_dir: str | Path | None = None, threshold_items: Sequence[Item] | None = None,
                   event_spans: dict[str, ScoredSpan] | None = None,
                   progress: bool = True, log: Callable[[str], None] = print) -> Checkpoint:
    """Train a detector head on a frozen encoder checkpoint; write a detector checkpoint to ``out``.

    The returned (and saved) checkpoint holds the encoder, the head, the threshold chosen on
    validation data and the validation metrics at that threshold. ``threshold_items``: annotated
    long recordings used only to choose the event-level threshold (whole files, never trained on),
    e.g. when the training data are short clips but the detector will run on long recordings.
    ``event_spans``: recordings already scored by other detectors (the folds of
    :mod:`sonotype.detection.crossval`) on which the event-level threshold is chosen instead.
    """
    set_threads(config.threads)
    device = pick_device(config.device)
    model = load_model(encoder_path)
    fe = replace(model.frontend, **{k: v for k, v in (("scale", config.scale), ("pcen_time", config.pcen_time))
                                    if v is not None})
    if fe != model.frontend and not config.finetune:
        log(f"note: the frozen encoder was trained on the '{model.frontend.scale}' front end and now hears "
            f"'{fe.scale}' frames")
    model = replace(model, frontend=fe)
    mode = _val_mode(items, config)
    stride = config.stride or model.frontend.stride
    gap = -(-model.frontend.window // stride)
    if config.finetune:
        cache = FrameCache(Path(cache_dir) if cache_dir else Path(out).parent / ".sonotype-cache", model.frontend)
        data = label_windows(items, cache, model.frontend, stride=stride, min_overlap=config.min_overlap)
    else:
        data = embed_items(model, items, min_overlap=config.min_overlap, stride=config.stride, progress=progress)
    tr, va, val_files = split_windows(data, items, mode=mode, gap=gap, config=config)
    log(f"detector: {len(tr.y)} training windows ({int(tr.y.sum())} vocal), {len(va.y)} validation windows "
        f"({int(va.y.sum())} vocal), validation split by {mode}{', fine-tuning the encoder' if config.finetune else ''}"
        f" on {device}")
    extra = extra_y = None
    if config.augment > 0:
        parts = training_parts(items, mode=mode, val_files=val_files, fraction=config.val_fraction,
                               frontend=model.frontend)
        extra, extra_y = mixed_windows(parts, model.frontend, count=int(round(config.augment * tr.y.sum())),
                                       config=config, seed=config.seed)
        log(f"augmentation: {len(extra_y)} windows of training calls mixed into training backgrounds at "
            f"{config.snr_low:g}..{config.snr_high:g} dB")
    members, histories = [], []
    for m in range(config.ensemble):
        seed = config.seed + m
        if config.finetune:
            aug = Augmentation(extra, extra_y, None, 1.0, config.time_mask, config.freq_mask, config.mixup)
            run = lambda aug: finetune(model.encoder, items, tr, va, cache, model.frontend, epochs=config.epochs,  # noqa: E731
                                       lr=config.lr, encoder_lr=config.encoder_lr, batch_size=config.batch_size,
                                       dropout=config.dropout, hidden=config.hidden,
                                       negatives_per_positive=config.negatives_per_positive, seed=seed,
                                       augmentation=aug, device=device, progress=progress)
            enc, head, history = run(aug)
            if config.hard_negatives:
                neg = np.nonzero(tr.y == 0)[0]
                sc = finetune_scores(enc, head, items, tr.subset(tr.y == 0), cache, model.frontend, device=device)
                hard = neg[np.argsort(-sc, kind="stable")[:config.hard_negatives]]
                enc, head, history = run(replace(aug, hard=hard, hard_weight=config.hard_negative_weight))
        else:
            enc = model.encoder
            trx = tr
            if extra is not None:
                e = embed_windows(model.encoder, extra, device="cpu")  # (E, D)
                trx = LabelledWindows(np.concatenate([tr.data, e]), np.concatenate([tr.y, extra_y]),
                                      np.concatenate([tr.file, np.full(len(e), -1)]),
                                      np.concatenate([tr.window, np.full(len(e), -1)]))
            dim = model.encoder.config.embedding_dim
            head, history = train_head(trx, va, config=config, embedding_dim=dim, seed=seed, device=device,
                                       progress=progress)
            if config.hard_negatives:
                neg = np.nonzero(trx.y == 0)[0]
                hard = neg[np.argsort(-head_scores(head, trx.data[neg]), kind="stable")[:config.hard_negatives]]
                w = np.ones(len(trx.y), np.float32)
                w[hard] = config.hard_negative_weight
                head, history = train_head(trx, va, config=config, embedding_dim=dim, weights=w, seed=seed,
                                           device=device, progress=progress)
        members.append((enc, head)); histories.append(history)
    if config.finetune:
        val_scores = np.mean([finetune_scores(e, h, items, va, cache, model.frontend, device=device)
                              for e, h in members], axis=0)
    else:
        val_scores = np.mean([head_scores(h, va.data) for _, h in members], axis=0)
    enc, head = members[0]
    history = histories[0]
    if threshold_items and any(it.events is None for it in threshold_items):
        raise DataError("threshold recordings need annotations (events, or none listed) to choose a threshold on")
    annotated = bool(threshold_items) or any(it.events is not None for it in items)
    wants_events = config.threshold_level == "event" or (config.threshold_level == "auto" and annotated)
    spans = {}
    if event_spans is not None:
        spans, wants_events = dict(event_spans), True
    elif wants_events and threshold_items:
        spans = validation_spans(members, model.frontend, threshold_items, mode="file",
                                 val_files=[it.path for it in threshold_items], fraction=0.0)
    elif wants_events and annotated:
        spans = validation_spans(members, model.frontend, items, mode=mode, val_files=val_files,
                                 fraction=config.val_fraction)
    choice = choose_detector_threshold(val_scores, va.y, spans if wants_events else None, config=config, log=log)
    threshold, level, window_threshold, val_events, val_summary = choice
    ensemble = tuple(EnsembleMember(h.state_dict(), {k: v.cpu() for k, v in e.state_dict().items()}
                                    if config.finetune else None) for e, h in members[1:])
    part = DetectorPart(
        head=head.state_dict(), dropout=config.dropout, hidden=config.hidden, threshold=threshold,
        config=config.to_dict(), history=tuple(history), validation=val_summary, val_split=mode,
        threshold_level=level, window_threshold=window_threshold, validation_events=val_events,
        finetuned=bool(config.finetune), ensemble=ensemble,
        train_files=tuple(it.path for it in items if it.path not in set(val_files)), val_files=tuple(val_files),
        threshold_files=tuple(it.path for it in threshold_items or ()), data=data_note or {},
        threshold_source="folds" if event_spans is not None else "files" if threshold_items else "validation",
        threshold_spans=kept_spans(spans, level))
    ck = model.checkpoint.renewed(
        kind="detector", encoder_checkpoint=str(encoder_path), detector=part, optimizer=None, rng_torch=None,
        frontend=model.frontend,  # the scale the detector was trained on (detect uses the same)
        # fine-tuned: the fine-tuned encoder scores; the self-supervised one stays at encoder_path
        encoder={k: v.cpu() for k, v in enc.state_dict().items()} if config.finetune else model.checkpoint.encoder)
    ck.save(out)
    return ck
