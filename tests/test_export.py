"""Exports: Raven, Audacity, CSV/Parquet, joined non-silent audio."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from sonotype.audio.io import read_audio, write_audio
from sonotype.detection.regions import Region
from sonotype.errors import ConfigError
from sonotype.store import RegionRow
from sonotype.store.export import audacity_labels, join_spans, nonsilent_audio, raven_table, regions_table

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
    recs = [RegionRow(i, 7, 1, g) for i, g in enumerate(regions())]
    label = "upcall\tweird\nlabel"
    rows = list(csv.DictReader(open(raven_table(recs, tmp_path / "r.txt", recordings={7: str(path)}, low_hz=30,
                                                high_hz=400, label=label)), delimiter="\t"))
    assert [float(r["Begin Time (s)"]) for r in rows] == [1.0, 2.5]
    assert [float(r["End Time (s)"]) for r in rows] == [1.5, 2.6]
    assert rows[0]["Low Freq (Hz)"] == "30.0" and rows[0]["High Freq (Hz)"] == "400.0"
    assert rows[0]["Selection"] == "1" and rows[1]["Label"] == "upcall weird label"
    assert [r["Begin Path"] for r in rows] == [str(path)] * 2
    with pytest.raises(ConfigError, match="recording 7"):
        raven_table(recs, tmp_path / "r2.txt", recordings={8: str(path)})
    lines = open(audacity_labels(regions(), tmp_path / "a.txt", label=label)).read().splitlines()
    assert lines == ["1.000000\t1.500000\tupcall weird label", "2.500000\t2.600000\tupcall weird label"]


def test_csv_and_parquet_tables(recording, tmp_path):
    path, _ = recording
    recs = [RegionRow(i, 7, 1, g) for i, g in enumerate(regions())]
    paths = {7: str(path)}
    rows = list(csv.DictReader(open(regions_table(recs, tmp_path / "t.csv", recordings=paths))))
    assert [float(r["duration_s"]) for r in rows] == pytest.approx([0.5, 0.1])
    assert rows[1]["recording"] == str(path) and [r["region_id"] for r in rows] == ["0", "1"]
    assert {r["label"] for r in rows} == {"vocalisation"}
    with pytest.raises(ConfigError, match="xlsx"):
        regions_table(recs, tmp_path / "t.xlsx", recordings=paths)
    import pyarrow.parquet as pq
    t = pq.read_table(regions_table(recs, tmp_path / "t.parquet", recordings=paths)).to_pydict()
    assert t["start_sample"] == [8000, 20000] and t["peak_score"] == [0.9, 0.6]


def test_a_region_is_one_span_of_its_recording(recording, tmp_path):
    """Region.span: [start, stop) without a framing, its windows' samples with one; the span is what
    join_spans cuts (the same samples as nonsilent_audio)."""
    from sonotype.audio.span import Span
    from sonotype.features.frontend import FrontEnd
    path, x = recording
    g = regions()[0]
    assert g.span(path, channel=0) == Span(str(path), 0, 8000, 12000)
    framing = FrontEnd(n_fft=256, hop=128, window=8, stride=4).at_rate(SR)
    a, b = framing.window_span(g.first_window)[0], framing.window_span(g.first_window + g.n_windows - 1)[1]
    assert g.span(path, framing=framing) == Span(str(path), 0, a, b) and (a, b) != (g.start, g.stop)
    y, _ = read_audio(join_spans([g.span(path)], tmp_path / "one.wav", subtype="FLOAT"))
    assert np.array_equal(y, x[8000:12000])
    with pytest.raises(ConfigError, match="stop"):
        Span(str(path), 0, 10, 5)
    with pytest.raises(ConfigError, match="integers"):
        Span(str(path), 0, 1.5, 5)
