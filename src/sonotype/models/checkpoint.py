"""Checkpoints that carry their own config, front end, data provenance and version.

:class:`Checkpoint` is the typed form every reader uses (attributes, never string keys); on disk it is
a ``torch.save`` of a plain dict (tensors, numbers, strings, lists, dicts), loaded with
``weights_only=True`` so that opening a checkpoint never runs code from it. The layout (version
``CHECKPOINT_VERSION``; optional entries are left out when empty)::

    format: "sonotype"   version: 1   kind: "encoder" | "detector" | "fusion"   sonotype_version, created (ISO, UTC)
    encoder_config (EncoderConfig), frontend (FrontEnd), channel, data (files, sample_rate, notes...)
    encoder, predictor (state dicts), [train_config], history, [epoch], [optimizer], [rng_torch]
    [model_version], [encoder_checkpoint], [distill: teacher, config, student_init, head, target_mean/std]
    [detector: head, dropout, hidden, threshold, config, history, validation, val_split, threshold_level,
               window_threshold, validation_events, finetuned, ensemble [{head, encoder}], train_files,
               val_files, threshold_files, data, [backend], threshold_source,
               threshold_spans [{path, sample_rate, first_window, n_samples, scores, events}]]
    [fusion: members [whole detector checkpoints], weights, threshold, member_paths, threshold_source,
             validation_events, threshold_files]

A fused detector (kind "fusion", :mod:`sonotype.detection.fusion`) holds its member detectors' whole
checkpoints and no encoder of its own.

A detector on a pretrained embedding backend (``detector.backend``: the backend's ``BackendInfo.to_dict()``)
holds no LSTM encoder: its ``encoder_config`` and ``frontend`` are left out and ``encoder`` is empty; its
head reads the backend's embeddings (:mod:`sonotype.detection.backend`).

The configs of later pipeline stages (``TrainConfig``, ``DetectorConfig``, ``DistillConfig``, the teacher's
``BackendInfo``) are kept as their ``to_dict()`` here, since this module comes before them; read them
back with their own ``from_dict``. Metrics, histories and notes are free-form dicts: their keys are
those of the code that wrote them and grow over time.

Over 400 lines because the layout, its field-by-field checks and the loaders are one unit: a field
added to a part is written, read and checked in the same class.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import CheckpointError, ConfigError
from ..features.frontend import FrontEnd
from .lstm_v3 import DetectorHead, Encoder, EncoderConfig, NextFramePredictor

CHECKPOINT_FORMAT = "sonotype"
CHECKPOINT_VERSION = 1
KINDS = ("encoder", "detector", "fusion")

StateDict = Mapping[str, torch.Tensor]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _same(a: Any, b: Any) -> bool:
    """Deep equality of checkpoint layouts: tensors by value and dtype, NaN equal to NaN."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and bool(torch.equal(a, b)))
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        return (isinstance(a, Mapping) and isinstance(b, Mapping) and a.keys() == b.keys()
                and all(_same(a[k], b[k]) for k in a))
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b)))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


class _Part:
    """Equality by the saved layout (state dicts hold tensors, which have no plain ``==``)."""

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return _same(self.to_dict(), other.to_dict())  # type: ignore[attr-defined]


class _Fields:
    """Reads one dict of the layout, naming the file and the field in every error."""

    def __init__(self, d: Any, source: str, prefix: str = ""):
        if not isinstance(d, Mapping):
            raise CheckpointError(f"{source}: checkpoint field '{prefix.rstrip('.') or '(top level)'}' is "
                                  f"{type(d).__name__}; expected a dict. Retrain, or restore the file from a copy")
        self.d, self.source, self.prefix = d, source, prefix

    def fail(self, name: str, problem: str) -> CheckpointError:
        return CheckpointError(f"{self.source}: checkpoint field '{self.prefix}{name}' {problem}. The file is not a "
                               "complete sonotype checkpoint: retrain it (`sonotype train` / `sonotype train-detector`)"
                               " or restore it from a copy")

    def get(self, name: str, types: type | tuple, what: str, default: Any = ..., *, none: bool = False) -> Any:
        """``d[name]``, checked to be of ``types`` (or None when ``none``); ``default`` when absent (``...``: required)."""
        if name not in self.d:
            if default is ...:
                raise self.fail(name, f"is missing (expected {what})")
            return default
        v = self.d[name]
        if v is None and none:
            return None
        bad_bool = isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,))
        if not isinstance(v, types) or bad_bool:
            raise self.fail(name, f"is {type(v).__name__} {v!r:.60}; expected {what}")
        return v

    def number(self, name: str, what: str, default: Any = ..., *, none: bool = False) -> float | None:
        v = self.get(name, (int, float), what, default, none=none)
        return None if v is None else float(v)

    def strings(self, name: str, default: Any = ()) -> tuple[str, ...]:
        v = self.get(name, (list, tuple), "a list of file paths", default)
        if not all(isinstance(s, str) for s in v):
            raise self.fail(name, "holds non-strings; expected a list of file paths")
        return tuple(v)

    def state(self, name: str, default: Any = ..., *, none: bool = False) -> dict[str, torch.Tensor] | None:
        v = self.get(name, dict, "a state dict (parameter name -> tensor)", default, none=none)
        if v is not None and not all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items()):
            raise self.fail(name, "is not a state dict (parameter name -> tensor)")
        return v

    def records(self, name: str) -> tuple[dict, ...]:
        v = self.get(name, (list, tuple), "a list of per-epoch dicts", ())
        if not all(isinstance(h, dict) for h in v):
            raise self.fail(name, "holds non-dicts; expected a list of per-epoch dicts")
        return tuple(v)

    def part(self, name: str) -> "_Fields | None":
        v = self.d.get(name)
        return None if v is None else _Fields(v, self.source, f"{self.prefix}{name}.")


@dataclass(frozen=True, eq=False)
class TrainingData(_Part):
    """Where the weights' training data came from.

    ``files``: the training audio; ``sample_rate``: their median rate, Hz (None in distilled checkpoints
    and in those written before it was recorded); ``notes``: free-form counts and the caller's note
    (``train_windows``, ``val_windows``, ``train_spans``, ``preset``, ``inputs``, ``corpus``, ...), open
    because each trainer and caller adds its own.
    """

    files: tuple[str, ...] = ()
    sample_rate: float | None = None
    notes: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"files": list(self.files), **({} if self.sample_rate is None else {"sample_rate": self.sample_rate}),
                **self.notes}

    @classmethod
    def _read(cls, f: _Fields) -> "TrainingData":
        return cls(f.strings("files"), f.number("sample_rate", "a sample rate in Hz", None, none=True),
                   {k: v for k, v in f.d.items() if k not in ("files", "sample_rate")})


@dataclass(frozen=True, eq=False)
class EnsembleMember(_Part):
    """A further detector of a seed ensemble: its head, and its own encoder when fine-tuned (else the shared one)."""

    head: StateDict
    encoder: StateDict | None = None

    def to_dict(self) -> dict:
        return {"head": dict(self.head), "encoder": None if self.encoder is None else dict(self.encoder)}

    @classmethod
    def _read(cls, f: _Fields) -> "EnsembleMember":
        return cls(f.state("head"), f.state("encoder", None, none=True))


@dataclass(frozen=True, eq=False)
class ThresholdSpan(_Part):
    """One scored stretch of an annotated recording that a detector's event threshold was chosen on, kept so
    that the detector can later be combined with others on out-of-sample scores (:mod:`sonotype.detection.fusion`).

    ``scores`` ``(N,)`` float32: P(vocalisation) of windows ``first_window .. first_window + N - 1`` of the
    detector's own grid at ``sample_rate`` Hz; ``n_samples``: the recording's length; ``events``: its
    annotated ``(start, end)`` seconds."""

    path: str
    sample_rate: float
    first_window: int
    n_samples: int
    scores: torch.Tensor
    events: tuple[tuple[float, float], ...] = ()

    def to_dict(self) -> dict:
        return {"path": self.path, "sample_rate": self.sample_rate, "first_window": self.first_window,
                "n_samples": self.n_samples, "scores": self.scores, "events": [list(e) for e in self.events]}

    @classmethod
    def _read(cls, f: _Fields) -> "ThresholdSpan":
        scores = f.get("scores", torch.Tensor, "a 1-d tensor of window scores")
        if scores.ndim != 1:
            raise f.fail("scores", f"has shape {tuple(scores.shape)}; expected one score per window (1-d)")
        events = f.get("events", (list, tuple), "a list of [start, end] seconds", ())
        if not all(isinstance(e, (list, tuple)) and len(e) == 2 and all(isinstance(t, (int, float)) for t in e)
                   for e in events):
            raise f.fail("events", "holds something other than [start, end] pairs of seconds")
        return cls(path=f.get("path", str, "a file path"), sample_rate=f.number("sample_rate", "a rate in Hz"),
                   first_window=f.get("first_window", int, "a window index"),
                   n_samples=f.get("n_samples", int, "a length in samples"), scores=scores,
                   events=tuple((float(a), float(b)) for a, b in events))


@dataclass(frozen=True, eq=False)
class DetectorPart(_Part):
    """The detector of a detector checkpoint: head weights and shape, threshold, and how they were chosen.

    ``config``: ``DetectorConfig.to_dict()`` (read it with ``DetectorConfig.from_dict``); ``history``:
    the head's per-epoch dicts; ``validation``: ``metrics.summary`` at the threshold; ``validation_events``:
    the event scores when the threshold was chosen at event level; ``data``: the caller's note. Those
    four are open dicts (metrics reports and notes). ``val_split``, ``threshold_level`` and
    ``window_threshold`` are None in hand-made checkpoints; ``ensemble`` and ``threshold_files`` are
    empty in checkpoints from before seed ensembles. ``backend``: None for the LSTM-V3 encoder (the
    checkpoint's own); for a pretrained backend its ``BackendInfo.to_dict()`` (name, version, rate,
    window, hop, dim, speed-up, key), read back with ``BackendInfo.from_dict``. ``threshold_spans``: the
    scored stretches the event threshold was chosen on (validation tails, threshold recordings or
    cross-validation folds, as ``threshold_source`` says: all outside the head's training data); empty when
    the threshold was chosen at window level, and in checkpoints from before they were kept.
    """

    head: StateDict
    threshold: float
    dropout: float = 0.5
    hidden: int = 0
    config: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[Mapping[str, Any], ...] = ()
    validation: Mapping[str, Any] | None = None
    val_split: str | None = None  # file | time
    threshold_level: str | None = None  # window | event
    window_threshold: float | None = None
    validation_events: Mapping[str, Any] | None = None
    finetuned: bool = False
    ensemble: tuple[EnsembleMember, ...] = ()
    train_files: tuple[str, ...] = ()
    val_files: tuple[str, ...] = ()
    threshold_files: tuple[str, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)
    backend: Mapping[str, Any] | None = None
    threshold_source: str | None = None  # validation | files | folds
    threshold_spans: tuple[ThresholdSpan, ...] = ()

    def to_dict(self) -> dict:
        return {**({} if self.backend is None else {"backend": dict(self.backend)}),
                "head": dict(self.head), "dropout": self.dropout, "hidden": self.hidden, "threshold": self.threshold,
                "config": dict(self.config), "history": [dict(h) for h in self.history],
                "validation": self.validation, "val_split": self.val_split, "threshold_level": self.threshold_level,
                "window_threshold": self.window_threshold, "validation_events": self.validation_events,
                "finetuned": self.finetuned, "ensemble": [m.to_dict() for m in self.ensemble],
                "train_files": list(self.train_files), "val_files": list(self.val_files),
                "threshold_files": list(self.threshold_files), "data": dict(self.data),
                "threshold_source": self.threshold_source,
                "threshold_spans": [sp.to_dict() for sp in self.threshold_spans]}

    @classmethod
    def _read(cls, f: _Fields) -> "DetectorPart":
        members = f.get("ensemble", (list, tuple), "a list of {head, encoder} dicts", ())
        spans = f.get("threshold_spans", (list, tuple), "a list of scored-stretch dicts", ())
        return cls(
            head=f.state("head"), threshold=f.number("threshold", "a score threshold in [0, 1]"),
            dropout=f.number("dropout", "a dropout probability", 0.5), hidden=f.get("hidden", int, "a width", 0),
            config=f.get("config", dict, "a DetectorConfig dict", {}), history=f.records("history"),
            validation=f.get("validation", dict, "a metrics dict", None, none=True),
            val_split=f.get("val_split", str, "'file' or 'time'", None, none=True),
            threshold_level=f.get("threshold_level", str, "'window' or 'event'", None, none=True),
            window_threshold=f.number("window_threshold", "a score threshold", None, none=True),
            validation_events=f.get("validation_events", dict, "an event-scores dict", None, none=True),
            finetuned=f.get("finetuned", bool, "True or False", False),
            ensemble=tuple(EnsembleMember._read(_Fields(m, f.source, f"{f.prefix}ensemble[{i}]."))
                           for i, m in enumerate(members)),
            train_files=f.strings("train_files"), val_files=f.strings("val_files"),
            threshold_files=f.strings("threshold_files"), data=f.get("data", dict, "a dict of notes", {}),
            backend=f.get("backend", dict, "a BackendInfo dict", None, none=True),
            threshold_source=f.get("threshold_source", str, "'validation', 'files' or 'folds'", None, none=True),
            threshold_spans=tuple(ThresholdSpan._read(_Fields(sp, f.source, f"{f.prefix}threshold_spans[{i}]."))
                                  for i, sp in enumerate(spans)))


@dataclass(frozen=True, eq=False)
class DistillPart(_Part):
    """How a distilled encoder was made: the teacher (``BackendInfo.to_dict()``), ``DistillConfig.to_dict()``,
    the student's starting checkpoint, and the projection head with the teacher embeddings' mean and std."""

    teacher: Mapping[str, Any]
    config: Mapping[str, Any]
    head: StateDict
    target_mean: torch.Tensor
    target_std: torch.Tensor
    student_init: str | None = None

    def to_dict(self) -> dict:
        return {"teacher": dict(self.teacher), "config": dict(self.config), "student_init": self.student_init,
                "head": dict(self.head), "target_mean": self.target_mean, "target_std": self.target_std}

    @classmethod
    def _read(cls, f: _Fields) -> "DistillPart":
        return cls(teacher=f.get("teacher", dict, "the teacher's BackendInfo dict"),
                   config=f.get("config", dict, "a DistillConfig dict"), head=f.state("head"),
                   target_mean=f.get("target_mean", torch.Tensor, "a tensor"),
                   target_std=f.get("target_std", torch.Tensor, "a tensor"),
                   student_init=f.get("student_init", str, "a checkpoint path", None, none=True))


@dataclass(frozen=True, eq=False)
class Checkpoint(_Part):
    """An encoder or detector checkpoint: everything needed to rebuild, rerun and describe the model.

    ``kind``: 'encoder' or 'detector' (a detector checkpoint has a :class:`DetectorPart` and, when the
    encoder was fine-tuned, the fine-tuned encoder). ``train_config``: ``TrainConfig.to_dict()`` of the
    self-supervised training (None for distilled encoders). ``history``: per-epoch dicts (``epoch``,
    ``train_loss``, ``val_loss``, ``seconds``, ...; open). ``epoch``: the last epoch written (0-based;
    ``resume`` continues after it). ``optimizer`` and ``rng_torch``: for resuming (absent from best and
    detector checkpoints). ``model_version``: a name the trainer gave. ``encoder_checkpoint``: the
    encoder file a detector was trained on. ``source``: the file it was loaded from (not saved; for messages).
    Equality compares the saved layouts (tensors by value).
    """

    kind: str
    encoder_config: EncoderConfig | None  # None only in a detector on a pretrained backend (no LSTM encoder)
    frontend: FrontEnd | None
    encoder: StateDict
    predictor: StateDict = field(default_factory=dict)
    channel: int | str | None = None
    data: TrainingData = field(default_factory=TrainingData)
    train_config: Mapping[str, Any] | None = None
    history: tuple[Mapping[str, Any], ...] = ()
    epoch: int | None = None
    optimizer: Mapping[str, Any] | None = None
    rng_torch: torch.Tensor | None = None
    model_version: str | None = None
    encoder_checkpoint: str | None = None
    distill: DistillPart | None = None
    detector: DetectorPart | None = None
    fusion: FusionPart | None = None
    sonotype_version: str = __version__
    created: str = field(default_factory=_now)
    source: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"checkpoint kind {self.kind!r}; expected one of {KINDS}")
        if (self.kind == "detector") != (self.detector is not None):
            raise ConfigError(f"a {self.kind} checkpoint {'needs' if self.kind == 'detector' else 'has no'} a "
                              "detector part; give kind='detector' together with detector=DetectorPart(...)")
        if (self.kind == "fusion") != (self.fusion is not None):
            raise ConfigError(f"a {self.kind} checkpoint {'needs' if self.kind == 'fusion' else 'has no'} a fusion "
                              "part; give kind='fusion' together with fusion=FusionPart(...)")
        if (self.encoder_config is None or self.frontend is None) and not (self.on_backend or self.fusion):
            raise ConfigError("a checkpoint without encoder_config or frontend must be a detector on a pretrained "
                              "backend (detector=DetectorPart(..., backend=BackendInfo.to_dict())) or a fusion")
        object.__setattr__(self, "history", tuple(self.history))

    @property
    def on_backend(self) -> bool:
        """A detector on a pretrained embedding backend (no LSTM encoder of its own)."""
        return self.detector is not None and self.detector.backend is not None

    def renewed(self, **changes: Any) -> "Checkpoint":
        """A new checkpoint made from this one: ``changes`` applied, ``created`` and ``sonotype_version`` now."""
        return replace(self, **{"created": _now(), "sonotype_version": __version__, "source": None, **changes})

    def to_dict(self) -> dict:
        """The on-disk layout (without ``format``/``version``, which :meth:`save` adds)."""
        d: dict[str, Any] = {
            "kind": self.kind, "sonotype_version": self.sonotype_version, "created": self.created,
            "encoder_config": None if self.encoder_config is None else self.encoder_config.to_dict(),
            "frontend": None if self.frontend is None else self.frontend.to_dict(),
            "channel": self.channel, "data": self.data.to_dict(), "train_config": self.train_config,
            "history": [dict(h) for h in self.history], "epoch": self.epoch, "model_version": self.model_version,
            "encoder_checkpoint": self.encoder_checkpoint, "encoder": dict(self.encoder),
            "predictor": dict(self.predictor), "optimizer": self.optimizer, "rng_torch": self.rng_torch,
            "distill": None if self.distill is None else self.distill.to_dict(),
            "detector": None if self.detector is None else self.detector.to_dict(),
            "fusion": None if self.fusion is None else self.fusion.to_dict()}
        return {k: v for k, v in d.items() if v is not None or k == "channel"}

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file + rename): an interrupted save never leaves a half checkpoint."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **self.to_dict()}, tmp)
        os.replace(tmp, p)
        return p

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "<checkpoint dict>") -> "Checkpoint":
        """The typed checkpoint of a layout dict; :class:`CheckpointError` naming ``source`` and the field
        when one is missing or of the wrong type."""
        f = _Fields(d, source)
        kind = f.get("kind", str, f"one of {KINDS}")
        if kind not in KINDS:
            raise f.fail("kind", f"is {kind!r}; expected one of {KINDS}")
        det, dis, fus = f.part("detector"), f.part("distill"), f.part("fusion")
        if (kind == "fusion") != (fus is not None):
            raise f.fail("fusion", f"is {'missing' if fus is None else 'present'} in a {kind} checkpoint")
        if (kind == "detector") != (det is not None):
            raise f.fail("detector", f"is {'missing' if det is None else 'present'} in a {kind} checkpoint")
        part = None if det is None else DetectorPart._read(det)
        # a backend detector and a fusion have no encoder of their own
        optional = None if fus is not None or (part is not None and part.backend is not None) else ...
        enc_cfg = f.get("encoder_config", dict, "an EncoderConfig dict", optional)
        try:
            enc_cfg = None if enc_cfg is None else EncoderConfig.from_dict(enc_cfg)
        except (TypeError, ValueError) as e:
            raise f.fail("encoder_config", f"does not make an EncoderConfig ({e})") from e
        fe = f.get("frontend", dict, "a FrontEnd dict", optional)
        try:
            fe = None if fe is None else FrontEnd.from_dict(fe)
        except (TypeError, ValueError) as e:
            raise f.fail("frontend", f"does not make a FrontEnd ({e})") from e
        return cls(
            kind=kind, encoder_config=enc_cfg, frontend=fe, encoder=f.state("encoder"),
            predictor=f.state("predictor", {}), channel=f.get("channel", (int, str), "a channel index or name", None,
                                                              none=True),
            data=TrainingData._read(f.part("data") or _Fields({}, source, "data.")),
            train_config=f.get("train_config", dict, "a TrainConfig dict", None, none=True),
            history=f.records("history"), epoch=f.get("epoch", int, "an epoch index", None, none=True),
            optimizer=f.get("optimizer", dict, "an optimizer state dict", None, none=True),
            rng_torch=f.get("rng_torch", torch.Tensor, "a torch RNG state tensor", None, none=True),
            model_version=f.get("model_version", str, "a name", None, none=True),
            encoder_checkpoint=f.get("encoder_checkpoint", str, "a checkpoint path", None, none=True),
            distill=None if dis is None else DistillPart._read(dis), detector=part,
            fusion=None if fus is None else FusionPart._read(fus),
            sonotype_version=f.get("sonotype_version", str, "a version string", ""),
            created=f.get("created", str, "an ISO time", ""), source=source)


@dataclass(frozen=True, eq=False)
class FusionPart(_Part):
    """Detectors whose window scores are fused, ``s = prod_i s_i ** w_i`` on the first member's window grid
    (:mod:`sonotype.detection.fusion`). ``members``: the detectors' whole checkpoints (no fusion inside a
    fusion); ``weights``: one per member, summing to 1; ``threshold``: on the fused score; ``member_paths``:
    the files the members were read from; ``threshold_source``: 'given', 'files' (annotated recordings
    scored for the choice) or 'members' (the members' own out-of-sample threshold spans);
    ``validation_events``: the event scores at the chosen threshold."""

    members: tuple[Checkpoint, ...]
    weights: tuple[float, ...]
    threshold: float
    member_paths: tuple[str, ...] = ()
    threshold_source: str | None = None
    validation_events: Mapping[str, Any] | None = None
    threshold_files: tuple[str, ...] = ()

    def __post_init__(self):
        if len(self.members) < 2 or len(self.weights) != len(self.members):
            raise ConfigError(f"a fusion needs two or more member detectors and one weight each; got "
                              f"{len(self.members)} member(s) and {len(self.weights)} weight(s)")
        if any(m.kind != "detector" for m in self.members):
            raise ConfigError("fusion members must be detector checkpoints (no encoder-only or nested fusion)")
        if any(not (w >= 0) for w in self.weights) or not math.isclose(sum(self.weights), 1.0, abs_tol=1e-6):
            raise ConfigError(f"fusion weights {list(self.weights)}: expected non-negative weights summing to 1")

    def to_dict(self) -> dict:
        return {"members": [m.to_dict() for m in self.members], "weights": [float(w) for w in self.weights],
                "threshold": self.threshold, "member_paths": list(self.member_paths),
                "threshold_source": self.threshold_source, "validation_events": self.validation_events,
                "threshold_files": list(self.threshold_files)}

    @classmethod
    def _read(cls, f: _Fields) -> "FusionPart":
        members = f.get("members", (list, tuple), "a list of detector checkpoint dicts")
        weights = f.get("weights", (list, tuple), "a list of member weights")
        if not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights):
            raise f.fail("weights", "holds non-numbers; expected one weight per member")
        try:
            return cls(members=tuple(Checkpoint.from_dict(m, source=f"{f.source} ({f.prefix}members[{i}])")
                                     for i, m in enumerate(members)),
                       weights=tuple(float(w) for w in weights),
                       threshold=f.number("threshold", "a score threshold in [0, 1]"),
                       member_paths=f.strings("member_paths"),
                       threshold_source=f.get("threshold_source", str, "'given', 'files' or 'members'", None,
                                              none=True),
                       validation_events=f.get("validation_events", dict, "an event-scores dict", None, none=True),
                       threshold_files=f.strings("threshold_files"))
        except ConfigError as e:
            raise f.fail("members", f"do not make a fusion ({e})") from e


def load_checkpoint(path: str | Path, *, kind: str | None = None) -> Checkpoint:
    """Read and validate a checkpoint. ``kind`` 'detector' checks that it holds a detector ('encoder' or
    None: any checkpoint, since a detector checkpoint holds an encoder too)."""
    if kind not in (None, *KINDS):
        raise ConfigError(f"kind {kind!r}; expected None or one of {KINDS}")
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint; train one with `sonotype train` / `sonotype train-detector`")
    try:
        raw = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # the unpickler fails on foreign bytes with any error (KeyError, EOFError, ...)
        raise CheckpointError(f"{p}: not a readable sonotype checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{p}: not a sonotype checkpoint (no format tag '{CHECKPOINT_FORMAT}'); give a file "
                              "written by `sonotype train`, `sonotype distill` or `sonotype train-detector`")
    if raw.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{p}: checkpoint version {raw.get('version')!r}, this sonotype reads version "
                              f"{CHECKPOINT_VERSION}; retrain or use a matching sonotype release")
    ck = Checkpoint.from_dict({k: v for k, v in raw.items() if k not in ("format", "version")}, source=str(p))
    if kind == "detector" and ck.detector is None and ck.fusion is None:
        raise CheckpointError(f"{p}: holds an encoder only; train a detector on it with `sonotype train-detector`")
    return ck


@dataclass
class LoadedModel:
    """An encoder (and, for detector checkpoints, its head and threshold) ready for inference."""

    path: str
    encoder: Encoder
    frontend: FrontEnd
    channel: int | str | None
    checkpoint: Checkpoint
    head: DetectorHead | None = None
    threshold: float = 0.5
    members: tuple = ()  # further (encoder, head) of a seed ensemble; scores are averaged over all (incl. the first)

    @property
    def version(self) -> str:
        return str(self.checkpoint.model_version or Path(self.path).stem)


def model_version(model: LoadedModel) -> str:
    """A version string that changes whenever the weights change: ``<name>@<sha256 prefix>``."""
    h = hashlib.sha256(Path(model.path).read_bytes()).hexdigest()[:12]
    return f"{model.version}@{h}"


def _load(module: torch.nn.Module, state: StateDict, ck: Checkpoint, name: str) -> torch.nn.Module:
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{ck.source or 'checkpoint'}: field '{name}' does not match the checkpoint's "
                              f"encoder_config / detector shape ({e}); retrain, or restore the file") from e
    return module


def build_encoder(ck: Checkpoint) -> Encoder:
    """The checkpoint's encoder, in eval mode."""
    return _load(Encoder(ck.encoder_config), ck.encoder, ck, "encoder").eval()


def build_predictor(ck: Checkpoint) -> NextFramePredictor:
    """The checkpoint's next-frame predictor (untrained when the checkpoint has none, e.g. distilled)."""
    pred = NextFramePredictor(ck.encoder_config)
    return _load(pred, ck.predictor, ck, "predictor") if ck.predictor else pred


def load_model(path: str | Path, *, kind: str | None = None) -> LoadedModel:
    """Load an encoder or detector checkpoint for inference (eval mode, CPU)."""
    return build_model(load_checkpoint(path, kind=kind), path)


def build_model(ck: Checkpoint, path: str | Path) -> LoadedModel:
    """The encoder (and head) of a checkpoint already read, e.g. a member of a fusion; ``path``: where it came from."""
    if ck.fusion is not None:
        raise CheckpointError(f"{path}: a fusion of {len(ck.fusion.members)} detectors, with no encoder of its own: "
                              "`sonotype detect` and `sonotype evaluate-events` take it; for commands that embed "
                              "with an encoder give an encoder checkpoint (--model ENCODER.pt)")
    if ck.on_backend:
        raise CheckpointError(f"{path}: a detector on the {ck.detector.backend.get('name')!r} embedding backend, with "
                              "no LSTM encoder of its own: `sonotype detect` and `sonotype evaluate` take it; for "
                              "commands that embed with an encoder give an encoder checkpoint (--model ENCODER.pt)")
    enc = build_encoder(ck)
    head, threshold, members = None, 0.5, []
    det = ck.detector
    if det is not None:
        def new_head() -> DetectorHead:
            return DetectorHead(enc.config.embedding_dim, dropout=det.dropout, hidden=det.hidden)

        head = _load(new_head(), det.head, ck, "detector.head").eval()
        threshold = det.threshold
        for i, m in enumerate(det.ensemble):
            e = enc if m.encoder is None else _load(Encoder(enc.config), m.encoder, ck, f"detector.ensemble[{i}].encoder")
            members.append((e.eval(), _load(new_head(), m.head, ck, f"detector.ensemble[{i}].head").eval()))
    return LoadedModel(str(path), enc, ck.frontend, ck.channel, ck, head, threshold, tuple(members))
