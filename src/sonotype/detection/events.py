"""Event-level evaluation: detected regions against annotated events, and the event-level threshold.

A region *matches* an event when their time spans overlap (by more than ``min_overlap_s``), or,
under the PAM-challenge rule (``tolerance_s``, e.g. 1.5 s), when the region's centre lies within
``tolerance_s`` of the event.
Event recall = annotated events matched by at least one region / events; event precision =
regions matching at least one event / regions; false alarms = regions matching no event, also
given per hour of audio examined. With ``one_to_one``, each region may stand for one event only and each
event for one region (a maximum bipartite matching): one long region over five calls finds one of them,
and a call split into two regions counts one of them as a false alarm.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from ..errors import DataError
from ..features.frontend import Framing, WindowGrid
from ..training.dataset import Event
from ..training.metrics import f1_score, ratio
from .regions import RegionRule, find_regions


@dataclass(frozen=True)
class EventScores:
    events: int
    events_found: int
    regions: int
    regions_matching: int
    hours: float

    @property
    def recall(self) -> float:
        return ratio(self.events_found, self.events)

    @property
    def precision(self) -> float:
        return ratio(self.regions_matching, self.regions)

    @property
    def f1(self) -> float:
        return f1_score(self.precision, self.recall)

    @property
    def false_alarms(self) -> int:
        return self.regions - self.regions_matching

    @property
    def false_alarms_per_hour(self) -> float:
        return ratio(self.false_alarms, self.hours)

    def to_dict(self) -> dict:
        return {**asdict(self), "recall": self.recall, "precision": self.precision, "f1": self.f1,
                "false_alarms": self.false_alarms, "false_alarms_per_hour": self.false_alarms_per_hour}

    def __add__(self, other: "EventScores") -> "EventScores":
        """The counts of two sets of recordings together."""
        return EventScores(self.events + other.events, self.events_found + other.events_found,
                           self.regions + other.regions, self.regions_matching + other.regions_matching,
                           self.hours + other.hours)


def overlaps(regions: np.ndarray, events: np.ndarray, *, min_overlap_s: float = 0.0) -> np.ndarray:
    """``(R, E)`` bool: region i overlaps event j by more than ``min_overlap_s``. Both ``(n, 2)`` start/stop s."""
    r = np.asarray(regions, np.float64).reshape(-1, 2)
    e = np.asarray(events, np.float64).reshape(-1, 2)
    ov = np.minimum(r[:, None, 1], e[None, :, 1]) - np.maximum(r[:, None, 0], e[None, :, 0])
    return ov > min_overlap_s


def matches(regions: np.ndarray, events: np.ndarray, *, min_overlap_s: float = 0.0,
            tolerance_s: float | None = None) -> np.ndarray:
    """``(R, E)`` bool: region i matches event j (overlap, or centre within ``tolerance_s`` of the event)."""
    if tolerance_s is None:
        return overlaps(regions, events, min_overlap_s=min_overlap_s)
    r = np.asarray(regions, np.float64).reshape(-1, 2)
    e = np.asarray(events, np.float64).reshape(-1, 2)
    c = r.mean(axis=1)[:, None]
    return (c >= e[None, :, 0] - tolerance_s) & (c <= e[None, :, 1] + tolerance_s)


def matched_pairs(m: np.ndarray) -> int:
    """Size of a maximum matching in the ``(R, E)`` bool match matrix ``m``: the most (region, event) pairs
    with no region and no event used twice."""
    m = np.asarray(m, bool)
    if m.size == 0 or not m.any():
        return 0
    pairs = maximum_bipartite_matching(csr_matrix(m.astype(np.int8)), perm_type="column")  # (R,) event or -1
    return int((pairs >= 0).sum())


def score_events(regions: Mapping[str, Sequence[tuple[float, float]]], events: Mapping[str, Sequence[Event]],
                 durations_s: Mapping[str, float], *, min_overlap_s: float = 0.0,
                 tolerance_s: float | None = None, one_to_one: bool = False) -> EventScores:
    """Event scores over files. ``regions``/``events`` are keyed by file name; ``durations_s`` lists
    every file examined (files with no events still count for false alarms and hours). ``one_to_one``:
    count a maximum matching of regions to events (see the module docstring), not any overlap."""
    n_ev = found = n_reg = matching = 0
    for name in durations_s:
        r = np.asarray(regions.get(name, ()), np.float64).reshape(-1, 2)
        e = np.asarray([(ev.start, ev.end) for ev in events.get(name, ())], np.float64).reshape(-1, 2)
        m = matches(r, e, min_overlap_s=min_overlap_s, tolerance_s=tolerance_s)
        n_ev += len(e); n_reg += len(r)
        if one_to_one:
            k = matched_pairs(m)
            found += k
            matching += k
            continue
        found += int(m.any(axis=0).sum()) if len(r) else 0
        matching += int(m.any(axis=1).sum()) if len(e) else 0
    return EventScores(n_ev, found, n_reg, matching, sum(durations_s.values()) / 3600.0)


@dataclass(frozen=True)
class ScoredSpan:
    """Consecutive window scores of one validation stretch of a recording, for threshold choice."""

    scores: np.ndarray   # (N,) P(vocalisation) of windows first_window .. first_window + N - 1
    framing: Framing | WindowGrid  # the detector's windows (WindowGrid: a pretrained backend's)
    first_window: int
    n_samples: int       # the recording's length, samples
    events: tuple[Event, ...]

    @property
    def span_s(self) -> tuple[float, float]:
        a = self.framing.window_span(self.first_window)[0] / self.framing.sample_rate
        return a, self.n_samples / self.framing.sample_rate


def span_event_scores(spans: Mapping[str, ScoredSpan], *, rule: RegionRule, min_overlap_s: float = 0.0,
                      tolerance_s: float | None = None) -> EventScores:
    """Event scores of the regions ``rule`` makes from each span's scores, against the span's events
    (those ending after the span starts) over the span's duration."""
    regions, events, durations = {}, {}, {}
    for name, sp in spans.items():
        a, b = sp.span_s
        found = find_regions(sp.scores, sp.framing, rule=rule, n_samples=sp.n_samples, first_window=sp.first_window)
        regions[name] = [(g.start_s, g.stop_s) for g in found]
        events[name] = [e for e in sp.events if e.end > a]
        durations[name] = b - a
    return score_events(regions, events, durations, min_overlap_s=min_overlap_s, tolerance_s=tolerance_s)


def choose_event_threshold(spans: Mapping[str, ScoredSpan], *, rule: RegionRule = RegionRule(),
                           target_precision: float | None = None, candidates: int = 100
                           ) -> tuple[float, EventScores]:
    """The region threshold with the best event F1 on validation stretches of long recordings; with
    ``target_precision``, the most event recall at that event precision when some threshold reaches
    it. Candidates: ``candidates`` quantiles of the upper half of the scores. Where several candidates
    tie (small validation sets often give a plateau), the middle one of the tied candidates is taken,
    not an edge of the plateau, which is where a new recording's scores flip the decision. Returns the
    threshold and its event scores."""
    allv = np.concatenate([sp.scores for sp in spans.values()]) if spans else np.zeros(0)
    if not any(sp.events for sp in spans.values()) or allv.size == 0:
        raise DataError("cannot choose an event-level threshold: the validation recordings hold no annotated event")
    grid = np.unique(np.quantile(allv, np.linspace(0.5, 1.0, candidates, endpoint=False)))
    table = [(float(t), span_event_scores(spans, rule=RegionRule(**{**rule.to_dict(), "threshold": float(t)})))
             for t in grid]
    pool, key = table, (lambda sc: sc.f1)
    if target_precision is not None:
        ok = [ts for ts in table if ts[1].regions and ts[1].precision >= target_precision]
        if ok:
            pool, key = ok, (lambda sc: sc.recall)
    top = max(key(sc) for _, sc in pool)
    tied = [ts for ts in pool if key(ts[1]) >= top - 1e-12]
    return tied[(len(tied) - 1) // 2]  # the middle of the best plateau: an edge is where new data flips


def nested_event_scores(spans: Mapping[str, ScoredSpan], *, rule: RegionRule = RegionRule()) -> EventScores:
    """Leave one recording out: each recording's regions at the threshold :func:`choose_event_threshold` picks on
    the others, the counts summed. An estimate of how a threshold chosen this way does on a new recording,
    which the pooled choice (chosen and scored on the same recordings) overstates."""
    total = EventScores(0, 0, 0, 0, 0.0)
    for name in spans:
        rest = {k: sp for k, sp in spans.items() if k != name}
        if not any(sp.events for sp in rest.values()):
            raise DataError(f"leaving {name} out leaves no recording with an annotated event to choose a threshold "
                            "on; nested scores need events in two or more recordings")
        thr, _ = choose_event_threshold(rest, rule=rule)
        total = total + span_event_scores({name: spans[name]}, rule=RegionRule(**{**rule.to_dict(), "threshold": thr}))
    return total
