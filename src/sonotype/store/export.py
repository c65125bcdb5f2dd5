"""Exports of detected regions: Raven Pro selection tables, Audacity labels, CSV/Parquet, and the
original's "non-silent audio" (every region of a recording joined with short silences).

Inputs are the store's own :class:`~sonotype.store.rows.RegionRow` values (a region with its id and
recording id) and the recordings' paths by id: a region is described once, by
:class:`~sonotype.detection.regions.Region`. Audio is cut through :class:`~sonotype.audio.span.Span`.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..audio.io import AudioWriter, audio_info, iter_blocks, read_audio
from ..audio.span import Span
from ..detection.regions import Region
from ..errors import ConfigError
from .rows import RegionRow

#: what an export calls a detected region unless told otherwise
DEFAULT_LABEL = "vocalisation"

RAVEN_COLUMNS = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
                 "High Freq (Hz)", "Begin Path", "File Offset (s)", "Peak Score", "Mean Score", "Label"]


def raven_table(rows: Sequence[RegionRow], path: str | Path, *, recordings: Mapping[int, str],
                low_hz: float | None = None, high_hz: float | None = None, label: str = DEFAULT_LABEL,
                channel: int = 1) -> Path:
    """Raven Pro selection table (tab-separated). Times are file offsets: open it with the recording
    (one recording per table is what Raven expects; ``Begin Path`` tells them apart otherwise).

    ``recordings``: path by recording id; ``low_hz``/``high_hz``: the band the detector looked at
    (default 0 Hz to the region's Nyquist frequency); ``label``: every region's label."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(RAVEN_COLUMNS)
        for i, r in enumerate(rows, start=1):
            g = r.region
            w.writerow([i, "Spectrogram 1", channel, f"{g.start_s:.6f}", f"{g.stop_s:.6f}",
                        f"{low_hz or 0:.1f}", f"{high_hz or g.sample_rate / 2:.1f}", _path_of(r, recordings),
                        f"{g.start_s:.6f}", f"{g.peak_score:.4f}", f"{g.mean_score:.4f}", _clean(label)])
    return p


def audacity_labels(regions: Sequence[Region], path: str | Path, *, label: str = DEFAULT_LABEL) -> Path:
    """Audacity label track: ``start<TAB>end<TAB>label`` per line, seconds."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", encoding="utf-8") as f:
        f.writelines(f"{g.start_s:.6f}\t{g.stop_s:.6f}\t{_clean(label)}\n" for g in regions)
    return p


TABLE_COLUMNS = ["region_id", "recording", "start_s", "stop_s", "duration_s", "start_sample", "stop_sample",
                 "sample_rate", "peak_score", "mean_score", "label"]


def _table_rows(rows: Sequence[RegionRow], recordings: Mapping[int, str], label: str) -> list[list]:
    return [[r.id, _path_of(r, recordings), g.start_s, g.stop_s, g.duration_s, g.start, g.stop, g.sample_rate,
             g.peak_score, g.mean_score, label] for r in rows for g in (r.region,)]


def regions_table(rows: Sequence[RegionRow], path: str | Path, *, recordings: Mapping[int, str],
                  label: str = DEFAULT_LABEL) -> Path:
    """CSV (``.csv``) or Parquet (``.parquet``) table of regions, one row each; ``recordings``: path by
    recording id; ``label``: every region's label."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    table = _table_rows(rows, recordings, label)
    if p.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        cols = {c: [row[i] for row in table] for i, c in enumerate(TABLE_COLUMNS)}
        pq.write_table(pa.table(cols), p)
        return p
    if p.suffix.lower() != ".csv":
        raise ConfigError(f"{p}: unknown table format {p.suffix!r}; use .csv or .parquet")
    with open(p, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(TABLE_COLUMNS)
        w.writerows(table)
    return p


def join_spans(spans: Sequence[Span], path: str | Path, *, gap_s: float = 0.1, subtype: str = "PCM_16") -> Path:
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
    spans = [g.span(recording, channel=channel) for g in sorted(regions, key=lambda r: r.start)]
    return join_spans(spans, path, gap_s=gap_s, subtype=subtype)


def _path_of(row: RegionRow, recordings: Mapping[int, str]) -> str:
    try:
        return str(recordings[row.recording_id])
    except KeyError:
        raise ConfigError(f"region {row.id} belongs to recording {row.recording_id}, which is not among the "
                          f"recordings given ({sorted(recordings)[:10]}); pass the path of every region's "
                          "recording") from None


def _clean(label: str) -> str:
    """Labels go into tab/line-separated files: no tabs or newlines inside."""
    return " ".join(str(label).split())
