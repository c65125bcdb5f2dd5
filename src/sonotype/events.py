"""Event-level evaluation: detected regions against annotated events.

A region *matches* an event when their time spans overlap (by more than ``min_overlap_s``).
Event recall = annotated events matched by at least one region / events; event precision =
regions matching at least one event / regions; false alarms = regions matching no event, also
given per hour of audio examined.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np

from .dataset import Event
from .metrics import f1_score, ratio


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


def overlaps(regions: np.ndarray, events: np.ndarray, *, min_overlap_s: float = 0.0) -> np.ndarray:
    """``(R, E)`` bool: region i overlaps event j by more than ``min_overlap_s``. Both ``(n, 2)`` start/stop s."""
    r = np.asarray(regions, np.float64).reshape(-1, 2)
    e = np.asarray(events, np.float64).reshape(-1, 2)
    ov = np.minimum(r[:, None, 1], e[None, :, 1]) - np.maximum(r[:, None, 0], e[None, :, 0])
    return ov > min_overlap_s


def score_events(regions: Mapping[str, Sequence[tuple[float, float]]], events: Mapping[str, Sequence[Event]],
                 durations_s: Mapping[str, float], *, min_overlap_s: float = 0.0) -> EventScores:
    """Event scores over files. ``regions``/``events`` are keyed by file name; ``durations_s`` lists
    every file examined (files with no events still count for false alarms and hours)."""
    n_ev = found = n_reg = matching = 0
    for name in durations_s:
        r = np.asarray(regions.get(name, ()), np.float64).reshape(-1, 2)
        e = np.asarray([(ev.start, ev.end) for ev in events.get(name, ())], np.float64).reshape(-1, 2)
        m = overlaps(r, e, min_overlap_s=min_overlap_s)
        n_ev += len(e); n_reg += len(r)
        found += int(m.any(axis=0).sum()) if len(r) else 0
        matching += int(m.any(axis=1).sum()) if len(e) else 0
    return EventScores(n_ev, found, n_reg, matching, sum(durations_s.values()) / 3600.0)
