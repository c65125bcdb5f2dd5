"""Detectors on a pretrained embedding backend (e.g. BirdNET): a logistic head on the backend's windows.

The LSTM-V3 path (:mod:`sonotype.detection.detector`) embeds spectrogram windows with the checkpoint's own
encoder. Here every file is embedded on the backend's grid: a window of ``window_s`` seconds every
``hop_s`` seconds as the model hears the audio, i.e. ``window_s * speedup`` and ``hop_s * speedup``
seconds of the recording (:func:`backend_grid`, a :class:`~sonotype.features.frontend.WindowGrid`). The
windows are labelled from the annotations by the library's one rule
(:func:`~sonotype.training.dataset.window_labels`), and a standardised, L2-regularised, class-balanced
logistic regression (scikit-learn) is fitted on the training windows; the scaler is folded into a
linear :class:`~sonotype.models.lstm_v3.DetectorHead`, so the checkpoint holds an ordinary head.

Validation and threshold are the LSTM path's: validation windows held out by file or as the tail of
each file (:func:`~sonotype.detection.detector.split_masks`), a window-level threshold of max F1 (or the
target precision), then the event-level threshold (:func:`~sonotype.detection.events.choose_event_threshold`)
on the validation stretches of the annotated recordings, or on separate threshold recordings, with the
region rule ``sonotype detect`` uses on the same grid. The checkpoint records the backend
(``DetectorPart.backend`` = ``BackendInfo.to_dict()``); ``detect`` rebuilds it by name and refuses a
different version.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import CheckpointError, ConfigError, DataError
from ..features.frontend import WindowGrid
from ..models.backends import Backend, BackendInfo, load_backend
from ..models.checkpoint import Checkpoint, DetectorPart, LoadedModel, TrainingData, load_checkpoint, load_model
from ..models.embed import head_scores
from ..models.lstm_v3 import DetectorHead
from ..runtime import set_threads
from ..training.dataset import IGNORE, Item
from ..training.finetune import LabelledWindows
from .crossval import fold_of_files
from .detector import DetectorConfig, _val_mode, choose_detector_threshold, kept_spans, split_windows, validation_start
from .events import ScoredSpan


def backend_grid(info: BackendInfo, sample_rate: float) -> WindowGrid:
    """Where ``info``'s windows fall in a recording at ``sample_rate`` Hz: window ``i`` starts at ``i`` hops.
    A backend with its own rate cuts its hop and window in whole samples of that rate
    (:meth:`~sonotype.models.backends.WaveformBackend.chunk`); that is the grid, in the recording's samples."""
    r = float(sample_rate) * info.speedup  # the recording's samples per second as the model hears it
    if info.sample_rate:
        rate = float(info.sample_rate)
        hop = max(1, int(round(info.hop_s * rate))) / rate
        window = int(round(info.window_s * rate)) / rate
    else:
        hop, window = info.hop_s, info.window_s
    return WindowGrid(float(sample_rate), window * r, hop * r)


def fit_logistic_head(x: np.ndarray, y: np.ndarray, *, c: float, balance: bool = True, seed: int = 0) -> DetectorHead:
    """A logistic regression on embeddings ``x`` ``(N, D)`` with labels ``y`` ``(N,)`` 0/1: features
    standardised, L2 penalty ``1 / c``, classes weighted to balance when ``balance`` (scikit-learn). Returned
    as a linear :class:`DetectorHead` (no dropout) with the standardisation folded into its weights, so that
    ``sigmoid(head(x))`` is the regression's P(vocalisation)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    x = np.asarray(x, np.float64)
    scaler = StandardScaler().fit(x)
    clf = LogisticRegression(C=float(c), class_weight="balanced" if balance else None, max_iter=5000,
                             random_state=seed).fit(scaler.transform(x), np.asarray(y))
    w = clf.coef_[0] / scaler.scale_  # (D,)
    b = float(clf.intercept_[0] - np.sum(clf.coef_[0] * scaler.mean_ / scaler.scale_))
    head = DetectorHead(x.shape[1], dropout=0.0, hidden=0)
    with torch.no_grad():
        head.net[-1].weight.copy_(torch.from_numpy(w[None].astype(np.float32)))  # (1, D)
        head.net[-1].bias.fill_(b)
    return head.eval()


@dataclass(frozen=True)
class EmbeddedFile:
    """One recording embedded on a backend's grid: its embeddings ``(N, D)`` and window labels ``(N,)``."""

    item: Item
    embeddings: np.ndarray
    grid: WindowGrid
    labels: np.ndarray


def embed_file(backend: Backend, item: Item, *, min_overlap: float) -> EmbeddedFile:
    """``item`` streamed through ``backend`` (:meth:`~sonotype.models.backends.Backend.iter_embeddings`)
    and its windows labelled."""
    parts = list(backend.iter_embeddings(item.path, channel=item.channel))
    e = np.concatenate(parts) if parts else np.zeros((0, backend.info.dim), np.float32)
    grid = backend_grid(backend.info, item.sample_rate)
    return EmbeddedFile(item, e, grid, item.window_labels(len(e), grid, min_overlap=min_overlap))


def _labelled(files: Sequence[EmbeddedFile]) -> LabelledWindows:
    xs, ys, fs, ws = [], [], [], []
    for i, f in enumerate(files):
        keep = f.labels != IGNORE
        xs.append(f.embeddings[keep]); ys.append(f.labels[keep]); fs.append(np.full(int(keep.sum()), i))
        ws.append(np.nonzero(keep)[0])
    if sum(len(x) for x in xs) == 0:
        raise DataError("no labelled windows: every window only grazes an event, or the files are empty")
    return LabelledWindows(np.concatenate(xs), np.concatenate(ys).astype(np.int64), np.concatenate(fs),
                           np.concatenate(ws))


def train_backend_detector(backend: Backend, items: Sequence[Item], *, out: str | Path,
                           config: DetectorConfig = DetectorConfig(), data_note: dict | None = None,
                           threshold_items: Sequence[Item] | None = None, folds: int | None = None,
                           progress: bool = True, log: Callable[[str], None] = print) -> Checkpoint:
    """Train a logistic head on ``backend``'s embeddings of ``items``; write a detector checkpoint to ``out``.

    As :func:`~sonotype.detection.detector.train_detector` (validation split, window- then event-level
    threshold, ``threshold_items``: annotated recordings used only to choose the event threshold), with the
    head of :func:`fit_logistic_head` (``config.head_c``). Options of the LSTM path are refused. ``folds``:
    choose the event threshold on every annotated recording scored by a head fitted without its fold (as
    :mod:`~sonotype.detection.crossval`; the embeddings are made once, so each fold costs one logistic fit).
    """
    config.check_backend_options(backend.info.name)
    set_threads(config.threads)
    if threshold_items and any(it.events is None for it in threshold_items):
        raise DataError("threshold recordings need annotations (events, or none listed) to choose a threshold on")
    info = backend.info
    log(f"embedding {len(items)} file(s) with {info.label}: {info.window_s * info.speedup:g}-s windows of the "
        f"recording every {info.hop_s * info.speedup:g} s")
    files = [embed_file(backend, it, min_overlap=config.min_overlap)
             for it in tqdm(items, desc="embedding", unit="file", disable=not progress, leave=False)]
    data = _labelled(files)
    mode = _val_mode(items, config)
    gap = math.ceil(info.window_s / info.hop_s)  # windows before a cut that share audio with the first after it
    tr, va, val_files = split_windows(data, items, mode=mode, gap=gap, config=config)
    log(f"detector on {info.key}: {len(tr.y)} training windows ({int(tr.y.sum())} vocal), {len(va.y)} validation "
        f"windows ({int(va.y.sum())} vocal), validation split by {mode}; logistic head, C={config.head_c:g}")
    head = fit_logistic_head(tr.data, tr.y, c=config.head_c, balance=config.balance, seed=config.seed)
    val_scores = head_scores(head, va.data)
    annotated = bool(threshold_items) or any(it.events is not None for it in items)
    wants_events = config.threshold_level == "event" or (config.threshold_level == "auto" and annotated)
    spans = {}
    if folds and threshold_items:
        raise ConfigError("give --threshold-folds or --threshold-file, not both: the threshold is chosen on one "
                          "of them")
    if folds:
        fold = fold_of_files(items, folds=folds, seed=config.seed)
        for k in range(folds):
            rest = [f for f in files if fold.get(f.item.path) != k]
            fit = _labelled(rest)
            fold_head = fit_logistic_head(fit.data, fit.y, c=config.head_c, balance=config.balance, seed=config.seed)
            for f in files:
                if fold.get(f.item.path) == k:
                    spans[f.item.path] = ScoredSpan(head_scores(fold_head, f.embeddings), f.grid, 0, f.item.frames,
                                                    tuple(f.item.events))
        log(f"threshold folds: {len(spans)} annotated recording(s) scored by heads fitted without their fold")
        wants_events = True
    elif wants_events and threshold_items:
        for it in threshold_items:
            f = embed_file(backend, it, min_overlap=config.min_overlap)
            spans[it.path] = ScoredSpan(head_scores(head, f.embeddings), f.grid, 0, it.frames, tuple(it.events))
    elif wants_events:
        held = set(val_files)
        for f in files:
            it = f.item
            if it.events is None or (mode == "file" and it.path not in held):
                continue
            first = validation_start(len(f.embeddings), mode=mode, fraction=config.val_fraction)
            if first < len(f.embeddings):
                spans[it.path] = ScoredSpan(head_scores(head, f.embeddings[first:]), f.grid, first, it.frames,
                                            tuple(it.events))
    choice = choose_detector_threshold(val_scores, va.y, spans if wants_events else None, config=config, log=log)
    threshold, level, window_threshold, val_events, val_summary = choice
    part = DetectorPart(
        head=head.state_dict(), threshold=threshold, dropout=0.0, hidden=0, config=config.to_dict(),
        validation=val_summary, val_split=mode, threshold_level=level, window_threshold=window_threshold,
        validation_events=val_events, train_files=tuple(it.path for it in items if it.path not in set(val_files)),
        val_files=tuple(val_files), threshold_files=tuple(it.path for it in threshold_items or ()),
        data=data_note or {}, backend=info.to_dict(),
        threshold_source="folds" if folds else "files" if threshold_items else "validation",
        threshold_spans=kept_spans(spans, level))
    rates = [it.sample_rate for it in items]
    ck = Checkpoint(kind="detector", encoder_config=None, frontend=None, encoder={},
                    channel=items[0].channel if len({it.channel for it in items}) == 1 else None,
                    data=TrainingData(tuple(it.path for it in items), float(np.median(rates)),
                                      {"train_windows": len(tr.y), "val_windows": len(va.y)}),
                    model_version=f"{Path(out).stem}-{info.name}", detector=part)
    ck.save(out)
    return ck


@dataclass
class BackendDetector:
    """A detector checkpoint on a pretrained backend, ready to score: the backend, the head, the threshold."""

    path: str
    checkpoint: Checkpoint
    backend: Backend
    head: DetectorHead
    threshold: float

    @property
    def version(self) -> str:
        return str(self.checkpoint.model_version or Path(self.path).stem)

    @property
    def info(self) -> BackendInfo:
        return self.backend.info

    def grid(self, sample_rate: float) -> WindowGrid:
        return backend_grid(self.backend.info, sample_rate)

    def file_scores(self, path: str | Path, *, channel: int = 0, batch: int = 256,
                    wanted: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """P(vocalisation) ``(N,)`` of every window of the file, streamed ``batch`` windows at a time.
        ``wanted``: window indices -> which to score (:meth:`~sonotype.models.backends.Backend.iter_embeddings`);
        the windows it declines may be NaN."""
        parts = []
        for e in self.backend.iter_embeddings(path, channel=channel, batch=batch, wanted=wanted):
            s = np.full(len(e), np.nan, np.float32)
            ok = np.isfinite(e).all(axis=1)
            if ok.any():
                s[ok] = head_scores(self.head, e[ok])
            parts.append(s)
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def load_backend_detector(path: str | Path, *, backend: Backend | None = None,
                          checkpoint: Checkpoint | None = None) -> BackendDetector:
    """A detector checkpoint written by :func:`train_backend_detector`, with its backend rebuilt by name from
    the record (``backend``: one already made, e.g. a backend this package does not name); a backend whose
    key (name, version, hop, speed-up) differs from the recorded one is refused."""
    ck = checkpoint or load_checkpoint(path, kind="detector")
    if not ck.on_backend:
        raise CheckpointError(f"{path}: an LSTM-V3 detector (no embedding backend recorded); load it with load_model")
    rec = BackendInfo.from_dict(ck.detector.backend)
    b = backend if backend is not None else load_backend(rec.name, hop_s=rec.hop_s, speedup=rec.speedup)
    if b.info.key != rec.key or b.info.dim != rec.dim:
        raise CheckpointError(f"{path}: trained on embeddings of {rec.key} ({rec.dim}-d), but the backend at hand is "
                              f"{b.info.key} ({b.info.dim}-d); install the recorded version or retrain the detector")
    head = DetectorHead(rec.dim, dropout=0.0, hidden=ck.detector.hidden)
    try:
        head.load_state_dict(ck.detector.head)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: field 'detector.head' does not match the {rec.dim}-d backend ({e}); "
                              "retrain, or restore the file") from e
    return BackendDetector(str(path), ck, b, head.eval(), ck.detector.threshold)


def load_detector(path: str | Path, *, backend: Backend | None = None) -> LoadedModel | BackendDetector:
    """Any detector checkpoint: an LSTM-V3 one (:func:`~sonotype.models.checkpoint.load_model`) or one on a
    pretrained backend (:func:`load_backend_detector`)."""
    ck = load_checkpoint(path, kind="detector")
    if ck.on_backend:
        return load_backend_detector(path, backend=backend, checkpoint=ck)
    if backend is not None:
        raise ConfigError(f"{path}: an LSTM-V3 detector; a backend ({backend.info.key}) applies only to detectors "
                          "trained on one")
    return load_model(path, kind="detector")
