"""Exports: Raven, Audacity, CSV/Parquet, joined non-silent audio."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from sonotype.audio.io import read_audio, write_audio
from sonotype.detection.regions import Region
from sonotype.errors import ConfigError
from sonotype.store.export import RegionRecord, audacity_labels, nonsilent_audio, raven_table, regions_table

SR = 8000


@pytest.fixture
def recording(tmp_path):
    x = (np.arange(SR * 5) % 1000 / 1000.0 - 0.5).astype(np.float32)  # a ramp: each sample knows its position
    return write_audio(tmp_path / "rec.wav", x, sample_rate=SR, subtype="FLOAT"), x


def regions():
    return [Region(8000, 12000, SR, 0.9, 0.7, 10, 3), Region(20000, 20800, SR, 0.6, 0.55, 30, 1)]


def test_nonsilent_audio_joins_regions_with_gaps(recording, tmp_path):
    path, x = recording
    out = nonsilent_audio(path, regions(), tmp_path / "ns.wav", gap_s=0.1, subtype="FLOAT")
    y, sr = read_audio(out)
    gap = int(0.1 * SR)
    expected = np.concatenate([x[8000:12000], np.zeros(gap, np.float32), x[20000:20800]])
    assert sr == SR and np.array_equal(y, expected)
    with pytest.raises(ConfigError, match="no regions"):
        nonsilent_audio(path, [], tmp_path / "none.wav")


def test_raven_and_audacity_tables(recording, tmp_path):
    path, _ = recording
    recs = [RegionRecord(str(path), g, i, label="upcall\tweird\nlabel", low_hz=30, high_hz=400)
            for i, g in enumerate(regions())]
    rows = list(csv.DictReader(open(raven_table(recs, tmp_path / "r.txt")), delimiter="\t"))
    assert [float(r["Begin Time (s)"]) for r in rows] == [1.0, 2.5]
    assert [float(r["End Time (s)"]) for r in rows] == [1.5, 2.6]
    assert rows[0]["Low Freq (Hz)"] == "30.0" and rows[0]["High Freq (Hz)"] == "400.0"
    assert rows[0]["Selection"] == "1" and rows[1]["Label"] == "upcall weird label"
    lines = open(audacity_labels(recs, tmp_path / "a.txt")).read().splitlines()
    assert lines == ["1.000000\t1.500000\tupcall weird label", "2.500000\t2.600000\tupcall weird label"]


def test_csv_and_parquet_tables(recording, tmp_path):
    path, _ = recording
    recs = [RegionRecord(str(path), g, i) for i, g in enumerate(regions())]
    rows = list(csv.DictReader(open(regions_table(recs, tmp_path / "t.csv"))))
    assert [float(r["duration_s"]) for r in rows] == pytest.approx([0.5, 0.1])
    assert rows[1]["recording"] == str(path)
    with pytest.raises(ConfigError, match="xlsx"):
        regions_table(recs, tmp_path / "t.xlsx")
    import pyarrow.parquet as pq
    t = pq.read_table(regions_table(recs, tmp_path / "t.parquet")).to_pydict()
    assert t["start_sample"] == [8000, 20000] and t["peak_score"] == [0.9, 0.6]
