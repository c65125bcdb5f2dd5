"""Exports of detected regions: Raven Pro selection tables, Audacity labels, CSV/Parquet, and the
original's "non-silent audio" (every region of a recording joined with short silences).

Inputs are plain :class:`RegionRecord` values (a region plus the recording it belongs to), so
exports work the same from the database or straight from a detection run.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.io import AudioWriter, audio_info, iter_blocks, read_audio
from ..detection.regions import Region
from ..errors import ConfigError


@dataclass(frozen=True)
class RegionRecord:
    """A region with where it comes from, for exports."""

    recording: str  # path of the audio file
    region: Region
    region_id: int | None = None
    label: str = "vocalisation"
    low_hz: float | None = None  # band the detector looked at
    high_hz: float | None = None


RAVEN_COLUMNS = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
                 "High Freq (Hz)", "Begin Path", "File Offset (s)", "Peak Score", "Mean Score", "Label"]


def raven_table(records: Sequence[RegionRecord], path: str | Path, *, channel: int = 1) -> Path:
    """Raven Pro selection table (tab-separated). Times are file offsets: open it with the recording
    (one recording per table is what Raven expects; ``Begin Path`` tells them apart otherwise)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(RAVEN_COLUMNS)
        for i, r in enumerate(records, start=1):
            g = r.region
            w.writerow([i, "Spectrogram 1", channel, f"{g.start_s:.6f}", f"{g.stop_s:.6f}",
                        f"{r.low_hz or 0:.1f}", f"{r.high_hz or g.sample_rate / 2:.1f}", r.recording,
                        f"{g.start_s:.6f}", f"{g.peak_score:.4f}", f"{g.mean_score:.4f}", _clean(r.label)])
    return p


def audacity_labels(records: Sequence[RegionRecord], path: str | Path) -> Path:
    """Audacity label track: ``start<TAB>end<TAB>label`` per line, seconds."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", encoding="utf-8") as f:
        f.writelines(f"{r.region.start_s:.6f}\t{r.region.stop_s:.6f}\t{_clean(r.label)}\n" for r in records)
    return p


TABLE_COLUMNS = ["region_id", "recording", "start_s", "stop_s", "duration_s", "start_sample", "stop_sample",
                 "sample_rate", "peak_score", "mean_score", "label"]


def _rows(records: Sequence[RegionRecord]) -> list[list]:
    return [[r.region_id, r.recording, r.region.start_s, r.region.stop_s, r.region.duration_s, r.region.start,
             r.region.stop, r.region.sample_rate, r.region.peak_score, r.region.mean_score, r.label] for r in records]


def regions_table(records: Sequence[RegionRecord], path: str | Path) -> Path:
    """CSV (``.csv``) or Parquet (``.parquet``) table of regions, one row each."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    rows = _rows(records)
    if p.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        cols = {c: [row[i] for row in rows] for i, c in enumerate(TABLE_COLUMNS)}
        pq.write_table(pa.table(cols), p)
        return p
    if p.suffix.lower() != ".csv":
        raise ConfigError(f"{p}: unknown table format {p.suffix!r}; use .csv or .parquet")
    with open(p, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(TABLE_COLUMNS)
        w.writerows(rows)
    return p


@dataclass(frozen=True)
class AudioSpan:
    """Samples ``[start, stop)`` of one channel of one file."""

    path: str
    channel: int
    start: int
    stop: int


def join_spans(spans: Sequence[AudioSpan], path: str | Path, *, gap_s: float = 0.1, subtype: str = "PCM_16") -> Path:
    """One WAV of ``spans`` in the given order, joined by ``gap_s`` of silence, streamed block by block.

    The output takes the first span's sample rate; spans of files at other rates are resampled to it
    (polyphase, scipy) so a cluster's members from different recorders can be heard in one file.
    """
    if not spans:
        raise ConfigError(f"{path}: no regions to join")
    rate = round(audio_info(spans[0].path).sample_rate)
    silence = np.zeros(round(gap_s * rate), np.float32)
    with AudioWriter(path, sample_rate=rate, subtype=subtype) as out:
        for k, sp in enumerate(spans):
            if k and silence.size:
                out.write(silence)
            src = round(audio_info(sp.path).sample_rate)
            if src == rate:
                for block in iter_blocks(sp.path, channel=sp.channel, start=sp.start, stop=sp.stop):
                    out.write(block.samples)
            else:  # a region is short: resample it whole
                from math import gcd

                from scipy.signal import resample_poly
                x, _ = read_audio(sp.path, channel=sp.channel, start=sp.start, stop=sp.stop)
                g = gcd(rate, src)
                out.write(resample_poly(x, rate // g, src // g).astype(np.float32))
    return Path(path)


def nonsilent_audio(recording: str | Path, regions: Sequence[Region], path: str | Path, *, channel: int = 0,
                    gap_s: float = 0.1, subtype: str = "PCM_16") -> Path:
    """One WAV of all ``regions`` of ``recording``, in order, joined by ``gap_s`` of silence.

    Each region is streamed from the file, so the output can be as long as the input.
    """
    if not regions:
        raise ConfigError(f"{recording}: no regions to export")
    spans = [AudioSpan(str(recording), channel, g.start, g.stop) for g in sorted(regions, key=lambda r: r.start)]
    return join_spans(spans, path, gap_s=gap_s, subtype=subtype)


def _clean(label: str) -> str:
    """Labels go into tab/line-separated files: no tabs or newlines inside."""
    return " ".join(str(label).split())
