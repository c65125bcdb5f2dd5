"""Fused detectors: the window scores of two or more detectors combined into one, ``s = prod_i s_i ** w_i``.

Detectors fail differently. On right-whale upcalls a pretrained backend played x4 faster (BirdNET, windows of
12 s of recording) tells upcalls from noise well but cannot say where in its window the call is, while the
LSTM-V3 detector (windows of ~1.3 s every 0.5 s) localises calls but raises more false alarms. The weighted
geometric mean, on the first member's window grid, keeps that member's timing and needs the members to agree.

Each member's score at time ``t`` is interpolated linearly between its window centres (held at the end
values beyond them) and read at the centres of the first member's windows. The threshold on the fused score
is chosen at event level (:func:`~sonotype.detection.events.choose_event_threshold`) on scores that none of
the members was fitted on: annotated recordings scored for the purpose (``threshold_items``), or else the
members' own kept threshold spans (their validation tails or cross-validation folds,
:attr:`~sonotype.models.checkpoint.DetectorPart.threshold_spans`) on the recordings they share.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from ..features.frontend import Framing, WindowGrid
from ..models.backends import Backend
from ..models.checkpoint import (
    Checkpoint,
    FusionPart,
    LoadedModel,
    ThresholdSpan,
    TrainingData,
    build_model,
    load_checkpoint,
)
from ..models.embed import file_scores
from ..runtime import keep_default_allocator
from ..training.dataset import Event, Item
from .backend import BackendDetector, load_backend_detector
from .backend import load_detector as load_single_detector
from .events import ScoredSpan, choose_event_threshold, nested_event_scores

#: scores are clipped to [FLOOR, 1] before the logarithm: a member certain of silence (0.0) vetoes, finitely
FLOOR = 1e-6


def window_centres(grid: Framing | WindowGrid, first: int, count: int) -> np.ndarray:
    """Centres ``(count,)`` in seconds of windows ``first .. first + count - 1`` of ``grid``."""
    t = grid.window_times(first + count)[first:]  # (count, 2)
    return t.mean(axis=1)


def fuse_scores(parts: Sequence[tuple[np.ndarray, np.ndarray]], weights: Sequence[float]) -> np.ndarray:
    """Fused scores ``(N,)`` at the first part's window centres.

    ``parts``: one ``(scores (n_i,), centres_s (n_i,))`` per member, the first giving the grid; ``weights``:
    one per member, summing to 1. Each other member is interpolated linearly to the first one's centres."""
    if len(parts) != len(weights) or len(parts) < 2:
        raise ConfigError(f"fusing needs two or more members and one weight each; got {len(parts)} and {len(weights)}")
    s0, t0 = parts[0]
    logs = np.zeros(len(s0), np.float64)
    for (s, t), w in zip(parts, weights):
        if len(s) == 0:
            raise DataError("a fusion member scored no window (the recording is shorter than its window)")
        v = np.asarray(s, np.float64) if s is s0 else np.interp(t0, t, np.asarray(s, np.float64))
        logs += w * np.log(np.clip(v, FLOOR, 1.0))
    return np.exp(logs).astype(np.float32)


def member_grid(member: LoadedModel | BackendDetector, sample_rate: float) -> Framing | WindowGrid:
    """A member detector's window grid on a recording at ``sample_rate`` Hz."""
    if isinstance(member, BackendDetector):
        return member.grid(sample_rate)
    return member.frontend.at_rate(sample_rate)


def member_scores(member: LoadedModel | BackendDetector, path: str | Path, *, channel: int, sample_rate: float,
                  batch: int = 256, wanted: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """A member detector's score ``(N,)`` of every window of its own grid (``wanted``: a backend member scores
    only the windows it accepts, NaN elsewhere)."""
    if isinstance(member, BackendDetector):
        return member.file_scores(path, channel=channel, batch=batch, wanted=wanted)
    return file_scores(member, path, channel=channel, sample_rate=sample_rate)


@dataclass
class FusedDetector:
    """A fusion checkpoint ready to score: its member detectors, weights and threshold (CPU, one process)."""

    path: str
    checkpoint: Checkpoint
    members: tuple[LoadedModel | BackendDetector, ...]
    weights: tuple[float, ...]
    threshold: float

    @property
    def version(self) -> str:
        return str(self.checkpoint.model_version or Path(self.path).stem)

    def grid(self, sample_rate: float) -> Framing | WindowGrid:
        """The fused scores' window grid: the first member's."""
        return member_grid(self.members[0], sample_rate)

    def file_scores(self, path: str | Path, *, channel: int = 0, sample_rate: float, batch: int = 256,
                    threshold: float | None = None) -> np.ndarray:
        """Fused P(vocalisation) ``(N,)`` of every window of the first member's grid.

        ``threshold`` (a cascade, for detection): the other members score only where the fused score can reach
        ``threshold``. Since every score is at most 1, the fused score is at most ``s_0 ** w_0``; windows below
        that bound keep it as their score (it is under the threshold), and the other members' windows are
        computed only around the rest. The windows at or above ``threshold``, hence the regions, are exactly
        those of the full computation; a pretrained backend then embeds only the chunks near candidates."""
        g0 = member_grid(self.members[0], sample_rate)
        s0 = member_scores(self.members[0], path, channel=channel, sample_rate=sample_rate, batch=batch)
        if len(s0) == 0:
            raise DataError(f"{path}: shorter than one window of the fused detector's first member "
                            f"({g0.window_samples / sample_rate:.3g} s); nothing to score")
        t0 = window_centres(g0, 0, len(s0))
        parts = [(s0, t0)]
        cand = None
        if threshold is not None:
            bound = np.exp(self.weights[0] * np.log(np.clip(s0.astype(np.float64), FLOOR, 1.0)))
            cand = bound >= threshold * (1 - 1e-6)  # a hair low: float rounding never drops a region window
        for i, m in enumerate(self.members[1:], start=1):
            g = member_grid(m, sample_rate)
            wanted = None
            if cand is not None:
                def wanted(idx: np.ndarray, g=g) -> np.ndarray:
                    # the windows whose centres bracket a candidate's centre (all interpolation reads), and the
                    # next one (np.interp may read it at an exact hit); a piece's end windows stand for candidates
                    # beyond it, so a bracket split between two pieces is kept in both
                    need = np.zeros(len(idx), bool)
                    if len(idx) == 0 or not cand.any():
                        return need
                    c = window_centres(g, int(idx[0]), len(idx))
                    j = np.searchsorted(c, t0[cand])  # first centre >= each candidate's centre
                    for k in (j - 1, j, j + 1):
                        need[np.clip(k, 0, len(idx) - 1)] = True
                    return need
            s = member_scores(m, path, channel=channel, sample_rate=sample_rate, batch=batch, wanted=wanted)
            parts.append((s, window_centres(g, 0, len(s))))
        if cand is None:
            return fuse_scores(parts, self.weights)
        fused = bound.astype(np.float32)
        if cand.any():
            fused[cand] = fuse_scores([(s0[cand], t0[cand]), *parts[1:]], self.weights)
            if not np.isfinite(fused[cand]).all():  # pragma: no cover - a window the cascade should have asked for
                raise RuntimeError(f"{path}: the fusion cascade skipped a window a candidate needs; report this bug")
        return fused

    def describe(self) -> dict:
        """What a run records about the fusion: its weights and each member's version and backend."""
        return {"weights": list(self.weights),
                "members": [{"version": m.version,
                             "backend": m.info.key if isinstance(m, BackendDetector) else "lstm-v3"}
                            for m in self.members]}


def _member(ck: Checkpoint, source: str, backend: Backend | None) -> LoadedModel | BackendDetector:
    if ck.on_backend:
        mine = backend if backend is not None and backend.info.name == ck.detector.backend.get("name") else None
        return load_backend_detector(source, backend=mine, checkpoint=ck)
    return build_model(ck, source)


def load_detector(path: str | Path, *, backend: Backend | None = None
                  ) -> LoadedModel | BackendDetector | FusedDetector:
    """Any detector checkpoint: LSTM-V3, on a pretrained backend, or a fusion of those (``backend``: an
    already-made backend for the member(s) on it)."""
    ck = load_checkpoint(path, kind="detector")
    if ck.fusion is None:
        return load_single_detector(path, backend=backend)
    f = ck.fusion
    names = f.member_paths or tuple(f"member {i}" for i in range(len(f.members)))
    members = tuple(_member(m, f"{path} ({n})", backend) for m, n in zip(f.members, names))
    if any(isinstance(m, BackendDetector) for m in members):
        # the LSTM members' allocator tuning would keep the backend's large buffers in the heap: with BirdNET
        # the peak RSS of detect went from 4.3 to 9.2 GB (bench/bench_detectors.py)
        keep_default_allocator()
    return FusedDetector(str(path), ck, members, tuple(f.weights), f.threshold)


def _span_scored(sp: ThresholdSpan, grid: Framing | WindowGrid) -> tuple[np.ndarray, np.ndarray]:
    s = sp.scores.numpy().astype(np.float64)
    return s, window_centres(grid, sp.first_window, len(s))


def fused_threshold_spans(members: Sequence[LoadedModel | BackendDetector], weights: Sequence[float]
                          ) -> dict[str, ScoredSpan]:
    """The fused scores of the recordings every member kept threshold spans of (out-of-sample scores), on the
    first member's grid, over the stretch all of them cover."""
    kept = [{sp.path: sp for sp in m.checkpoint.detector.threshold_spans} for m in members]
    common = [p for p in kept[0] if all(p in k for k in kept[1:])]
    out = {}
    for p in common:
        sps = [k[p] for k in kept]
        grids = [member_grid(m, sp.sample_rate) for m, sp in zip(members, sps)]
        parts = [_span_scored(sp, g) for sp, g in zip(sps, grids)]
        # the stretch every member scored: first-member windows whose span starts after every member's start
        start = max(g.window_times(sp.first_window + 1)[sp.first_window, 0] for g, sp in zip(grids, sps))
        t0 = grids[0].window_times(sps[0].first_window + len(parts[0][0]))[sps[0].first_window:, 0]
        skip = int(np.searchsorted(t0, start - 1e-9))
        if skip >= len(t0):
            continue
        fused = fuse_scores(parts, weights)[skip:]
        events = tuple(Event(a, b) for a, b in sps[0].events)
        out[p] = ScoredSpan(fused, grids[0], sps[0].first_window + skip, sps[0].n_samples, events)
    return out


#: the weight of the first member that ``weights='auto'`` tries (two members; the second gets the rest)
AUTO_WEIGHTS = (0.25, 0.5, 0.75)


def fuse_detectors(paths: Sequence[str | Path], *, out: str | Path, weights: Sequence[float] | str | None = None,
                   threshold: float | None = None, threshold_items: Sequence[Item] | None = None,
                   backend: Backend | None = None, log: Callable[[str], None] = print) -> Checkpoint:
    """Write a fusion checkpoint of the detectors at ``paths`` (the first one's windows are the fused grid).

    ``weights``: one per detector (default: equal), summing to 1; or 'auto' (two detectors): the first one's
    weight among :data:`AUTO_WEIGHTS` with the best leave-one-recording-out event F1
    (:func:`~sonotype.detection.events.nested_event_scores`) on the same out-of-sample scores the threshold
    is chosen on (ties: the most equal weights). The threshold: ``threshold`` as given; else chosen at event
    level on ``threshold_items`` (annotated recordings none of the members trained on); else on the members'
    kept threshold spans of the recordings they share (:func:`fused_threshold_spans`)."""
    paths = [str(p) for p in paths]
    if len(paths) < 2:
        raise ConfigError(f"fusing needs two or more detector checkpoints; got {len(paths)}")
    auto = isinstance(weights, str)
    if auto and (weights != "auto" or len(paths) != 2 or threshold is not None):
        given = ", and a given --threshold" if threshold is not None else ""
        raise ConfigError(f"weights {weights!r}: 'auto' chooses the weights of two detectors on out-of-sample scores "
                          f"(got {len(paths)} detectors{given}); give --weights W1 W2 ... instead")
    w = (0.5, 0.5) if auto else tuple(float(x) for x in (weights if weights else [1.0 / len(paths)] * len(paths)))
    if len(w) != len(paths) or any(not (x >= 0) for x in w) or abs(sum(w) - 1.0) > 1e-6:
        raise ConfigError(f"--weights {list(w)}: expected {len(paths)} non-negative weights (one per detector) "
                          "summing to 1, e.g. --weights 0.5 0.5")
    members = []
    for p in paths:
        ck = load_checkpoint(p, kind="detector")
        if ck.fusion is not None:
            raise ConfigError(f"{p}: already a fusion; fuse the detectors it holds instead (give their checkpoints)")
        members.append(_member(ck, p, backend))
    source, files, events = "given", (), None
    if threshold is not None:
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"--threshold {threshold}: expected a score in [0, 1]")
        thr = float(threshold)
    else:
        if threshold_items:
            trained = {f for m in members for f in m.checkpoint.detector.train_files}
            seen = [it.path for it in threshold_items if it.path in trained]
            if seen:
                raise DataError(f"threshold recording(s) {seen[:3]} were training data of a member; choose the "
                                "threshold on recordings none of the detectors trained on")
            if any(it.events is None for it in threshold_items):
                raise DataError("threshold recordings need annotations (events, or none listed)")
            scored = {}  # each member's scores of each recording, once: fused below for each weight tried
            for it in threshold_items:
                parts = []
                for m in members:
                    sc = member_scores(m, it.path, channel=it.channel, sample_rate=it.sample_rate)
                    parts.append((sc, window_centres(member_grid(m, it.sample_rate), 0, len(sc))))
                scored[it.path] = parts

            def spans_at(ws):
                return {it.path: ScoredSpan(fuse_scores(scored[it.path], ws), member_grid(members[0], it.sample_rate),
                                            0, it.frames, tuple(it.events)) for it in threshold_items}
            source, files = "files", tuple(it.path for it in threshold_items)
        else:
            def spans_at(ws):
                return fused_threshold_spans(members, ws)
            spans = spans_at(w)
            if not any(sp.events for sp in spans.values()):
                missing = [p for p, m in zip(paths, members) if not m.checkpoint.detector.threshold_spans]
                raise DataError("cannot choose the fused threshold: the members keep no out-of-sample scores of "
                                "shared annotated recordings"
                                + (f" ({', '.join(missing)} keep none: trained before they were kept, or with a "
                                   "window-level threshold)" if missing else "")
                                + "; give --threshold-file with --threshold-annotations, or --threshold, or retrain "
                                "the members on the same annotated recordings (e.g. both with --threshold-folds)")
            source = "members"
        choice = []
        if auto:
            for a in AUTO_WEIGHTS:
                ws = (a, 1.0 - a)
                choice.append((ws, nested_event_scores(spans_at(ws))))
                log(f"weights {a:g} / {1 - a:g}: leave-one-recording-out event F1 {choice[-1][1].f1:.3f} "
                    f"(recall {choice[-1][1].recall:.3f}, precision {choice[-1][1].precision:.3f})")
            best = max(sc.f1 for _, sc in choice)
            w = min((ws for ws, sc in choice if sc.f1 >= best - 1e-12), key=lambda ws: abs(ws[0] - 0.5))
        thr, ev = choose_event_threshold(spans_at(w))
        events = ev.to_dict()
        if choice:
            events["weight_choice"] = [{"weights": list(ws), "nested": sc.to_dict()} for ws, sc in choice]
        log(f"fused threshold {thr:.3f} chosen at event level on {ev.hours * 60:.1f} min of out-of-sample scores "
            f"({source}): {ev.events_found}/{ev.events} events found, event precision {ev.precision:.3f}, "
            f"{ev.false_alarms_per_hour:.1f} false alarms/h")
    cks = [m.checkpoint for m in members]
    part = FusionPart(members=tuple(cks), weights=w, threshold=thr, member_paths=tuple(paths),
                      threshold_source=source, validation_events=events, threshold_files=files)
    data = TrainingData(tuple(dict.fromkeys(f for ck in cks for f in ck.detector.train_files)), cks[0].data.sample_rate)
    ck = Checkpoint(kind="fusion", encoder_config=None, frontend=None, encoder={}, channel=cks[0].channel, data=data,
                    model_version=f"{Path(out).stem}-fusion", fusion=part)
    ck.save(out)
    log(f"fused detector: {out} ({len(paths)} members, weights {', '.join(f'{x:g}' for x in w)}; threshold {thr:.3f})")
    return ck

