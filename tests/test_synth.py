"""Tests of the synthetic cetacean corpus (sonotype.audio.synth)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import find_peaks

from sonotype.audio import synth
from sonotype.audio.io import audio_info, file_hash, read_audio
from sonotype.errors import ConfigError

SR = 48000
GENERATORS = {
    "whistle": lambda rng, **kw: synth.whistle(rng, **kw),
    "burst_pulse": lambda rng, **kw: synth.burst_pulse(rng, **kw),
    "click_train": lambda rng, **kw: synth.click_train(rng, **kw),
    "ocean_noise": lambda rng, **kw: synth.ocean_noise(rng, duration_s=0.5, **kw),
}


def _peak_track(x: np.ndarray, *, n_fft: int = 512, hop: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Frame centres (samples) and the frequency (Hz) of the loudest bin of each Hann-windowed frame."""
    m = 1 + (len(x) - n_fft) // hop
    frames = np.stack([x[i * hop:i * hop + n_fft] for i in range(m)]) * np.hanning(n_fft)
    mag = np.abs(np.fft.rfft(frames, axis=1))
    return np.arange(m) * hop + n_fft / 2, mag.argmax(axis=1) * SR / n_fft


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# ------------------------------------------------------------------------------------------- signals
@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_are_deterministic(name):
    gen = GENERATORS[name]
    a, b, c = gen(7), gen(np.random.default_rng(7)), gen(8)
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_are_bounded_finite_float32(name):
    for seed in range(6):
        x = GENERATORS[name](seed)
        assert x.dtype == np.float32 and x.ndim == 1 and len(x) > 0
        assert np.all(np.isfinite(x))
        assert np.max(np.abs(x)) <= 1.0
        if name != "ocean_noise":
            assert np.max(np.abs(x)) == pytest.approx(0.8, rel=1e-5)  # default peak amplitude


def test_call_durations_within_documented_ranges():
    for seed in range(10):
        assert 0.3 <= len(synth.whistle(seed)) / SR <= 1.2
        assert len(synth.burst_pulse(seed)) / SR <= 0.6
        assert len(synth.click_train(seed)) / SR <= 2.0
    assert len(synth.whistle(0, duration_s=0.5)) == SR // 2


@pytest.mark.parametrize("shape", synth.WHISTLE_SHAPES)
def test_whistle_follows_requested_contour(shape):
    kw = dict(shape=shape, f_low_hz=6000.0, f_high_hz=14000.0, cycles=1.5)
    x = synth.whistle(3, duration_s=0.8, harmonics=2, **kw)
    centres, f_peak = _peak_track(x)
    expected = synth.whistle_contour(centres / (len(x) - 1), **kw)
    inside = (centres > 0.04 * SR) & (centres < len(x) - 0.04 * SR)  # skip the onset/offset ramps
    bin_hz = SR / 512
    assert np.all(np.abs(f_peak[inside] - expected[inside]) <= 2 * bin_hz)


def test_whistle_harmonics_kept_below_and_dropped_above_nyquist():
    def band_energy(x, lo, hi):
        spec = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(len(x), 1 / SR)
        return spec[(f >= lo) & (f < hi)].sum()

    low = synth.whistle(1, duration_s=0.5, shape="upsweep", f_low_hz=6000, f_high_hz=7000, harmonics=1)
    assert band_energy(low, 11500, 14500) > 1e-3 * band_energy(low, 5500, 7500)
    high = synth.whistle(1, duration_s=0.5, shape="upsweep", f_low_hz=13000, f_high_hz=15000, harmonics=2)
    # a 2nd harmonic at 26-30 kHz would alias to 18-22 kHz at 48 kHz sampling
    assert band_energy(high, 17000, 23000) < 1e-4 * band_energy(high, 12500, 15500)


def test_whistle_rejects_bad_parameters():
    with pytest.raises(ConfigError):
        synth.whistle(0, shape="zigzag")
    with pytest.raises(ConfigError):
        synth.whistle(0, f_low_hz=5000, f_high_hz=30000)
    with pytest.raises(ConfigError):
        synth.whistle(None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        synth.click_train(0, amplitude=1.5)


def test_click_train_count_matches_inter_click_interval():
    x = synth.click_train(0, duration_s=1.0, ici_ms=40.0, ici_end_ms=40.0, click_us=80.0)
    peaks, _ = find_peaks(np.abs(x), height=0.3 * np.abs(x).max(), distance=int(0.02 * SR))
    in_window = peaks[(peaks >= 0.2 * SR) & (peaks < 0.7 * SR)]
    assert len(in_window) in (12, 13)  # 0.5 s / 40 ms = 12.5
    assert np.all(np.abs(np.diff(peaks) - 0.04 * SR) <= 1)
    assert len(peaks) == 25


def test_click_train_interval_slides_between_start_and_end():
    x = synth.click_train(2, duration_s=2.0, ici_ms=30.0, ici_end_ms=60.0)
    peaks, _ = find_peaks(np.abs(x), height=0.3 * np.abs(x).max(), distance=int(0.015 * SR))
    ici = np.diff(peaks) / SR * 1e3
    assert 29 < ici[0] < 33 and 55 < ici[-1] < 61
    assert np.all(np.diff(ici) > -0.5)  # monotonically lengthening (to within rounding)


def test_burst_pulse_inter_click_interval():
    x = synth.burst_pulse(4, duration_s=0.3, ici_ms=2.0, ici_end_ms=2.0)
    peaks, _ = find_peaks(np.abs(x), height=0.15 * np.abs(x).max(), distance=int(0.001 * SR))
    assert np.median(np.diff(peaks)) / SR * 1e3 == pytest.approx(2.0, abs=0.1)
    assert abs(len(peaks) - 150) <= 8


def test_ocean_noise_level_colour_and_shrimp():
    quiet = synth.ocean_noise(5, duration_s=1.0, rms=0.02, shrimp_per_s=0.0)
    assert len(quiet) == SR and _rms(quiet) == pytest.approx(0.02, rel=1e-3)
    spec = np.abs(np.fft.rfft(quiet)) ** 2
    f = np.fft.rfftfreq(len(quiet), 1 / SR)
    assert spec[(f > 200) & (f < 1000)].mean() > 5 * spec[(f > 10000) & (f < 20000)].mean()  # pink, not white
    assert np.abs(quiet).max() < 6 * 0.02
    snappy = synth.ocean_noise(5, duration_s=1.0, rms=0.02, shrimp_per_s=40.0)
    assert np.abs(snappy).max() > 8 * 0.02  # impulsive snaps well above the Gaussian background


# ------------------------------------------------------------------------------------------- corpora
def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_clip_corpus_layout_and_labels(tmp_path):
    corpus = synth.make_clip_corpus(tmp_path / "c", seed=3, per_class=3, clip_seconds=0.6, snr_db=(10.0, 20.0))
    root = tmp_path / "c"
    assert corpus.root == root and corpus.labels_path == root / "labels.csv"
    for cls in synth.CLASSES:
        names = sorted(p.name for p in (root / cls).iterdir())
        assert len(names) == 3 and all(n.endswith(".wav") for n in names)
        assert all(n.startswith("noise") for n in names) == (cls == "noise")
    rows = _read_csv(corpus.labels_path)
    assert list(rows[0]) == ["filename", "class", "call_type", "start", "end", "snr_db"]
    assert len(rows) == len(corpus.clips) == 12
    for row, clip in zip(rows, corpus.clips):
        path = root / row["filename"]
        assert path.is_file() and path.parent.name == row["class"] == clip.label
        assert row["filename"] == clip.filename
        assert Path(row["filename"]).name.startswith("noise") == (row["class"] == "noise")
        info = audio_info(path)
        assert info.sample_rate == SR and info.channels == 1 and info.frames == int(0.6 * SR)
        if row["class"] == "noise":
            assert row["call_type"] == "noise" and row["start"] == row["end"] == row["snr_db"] == ""
            continue
        start, end = float(row["start"]), float(row["end"])
        assert 0.0 < start < end < 0.6 and (start, end) == (clip.start, clip.end)
        assert row["call_type"] in (synth.WHISTLE_SHAPES if row["class"] == "whistle" else (row["class"],))
        assert 10.0 - 1e-6 <= float(row["snr_db"]) <= 20.0 + 1e-6  # peak limiting only ever lowers it
        x, _ = read_audio(path)
        assert _rms(x[int(start * SR):int(end * SR)]) > _rms(np.concatenate([x[:int(start * SR)], x[int(end * SR):]]))
    assert corpus.files == tuple(root / r["filename"] for r in rows)


def test_clip_corpus_is_deterministic(tmp_path):
    a = synth.make_clip_corpus(tmp_path / "a", seed=1, per_class=2, clip_seconds=0.5)
    b = synth.make_clip_corpus(tmp_path / "b", seed=1, per_class=2, clip_seconds=0.5)
    c = synth.make_clip_corpus(tmp_path / "c", seed=2, per_class=2, clip_seconds=0.5)
    ha, hb, hc = ([file_hash(p) for p in k.files] for k in (a, b, c))
    assert ha == hb and a.clips == b.clips
    assert all(x != y for x, y in zip(ha, hc))


def test_clip_corpus_whistle_types_are_distinct(tmp_path):
    """Two instances of a contour type have closer frequency tracks than instances of different types."""
    corpus = synth.make_clip_corpus(tmp_path, seed=0, per_class=10, clip_seconds=1.0, snr_db=(5.0, 20.0))
    tracks, types = [], []
    for clip, path in zip(corpus.clips, corpus.files):
        if clip.label != "whistle":
            continue
        x, _ = read_audio(path)
        centres, f = _peak_track(x[int(clip.start * SR):int(clip.end * SR)])
        tracks.append(np.interp(np.linspace(0.1, 0.9, 16), centres / centres[-1], f))
        types.append(clip.call_type)
    assert sorted(set(types)) == sorted(synth.WHISTLE_SHAPES)
    dist = np.array([[np.median(np.abs(a - b)) for b in tracks] for a in tracks])
    same = np.array([[s == t for t in types] for s in types])
    np.fill_diagonal(same, False)
    np.fill_diagonal(dist, np.inf)
    nearest = dist.argmin(axis=1)
    assert np.mean([types[i] == types[j] for i, j in enumerate(nearest)]) >= 0.9
    assert dist[same].max() < np.median(dist[~same & np.isfinite(dist)])


def test_clip_corpus_rejects_bad_config(tmp_path):
    with pytest.raises(ConfigError):
        synth.make_clip_corpus(tmp_path, per_class=0)
    with pytest.raises(ConfigError):
        synth.make_clip_corpus(tmp_path, clip_seconds=0.2)
    with pytest.raises(ConfigError):
        synth.make_clip_corpus(tmp_path, snr_db=(10.0, 0.0))


def test_long_recording_annotations(tmp_path):
    rec = synth.make_long_recording(tmp_path / "long.wav", seconds=30.0, seed=4, rate_per_min=24.0,
                                    snr_db=(10.0, 20.0))
    assert rec.annotations_path == tmp_path / "long_annotations.csv"
    rows = _read_csv(rec.annotations_path)
    assert list(rows[0]) == ["filename", "start", "end", "label"]
    assert len(rows) == len(rec.events) == 12
    x, sr = read_audio(rec.path)
    assert sr == SR and len(x) == 30 * SR and rec.seconds == 30.0
    spans = [(float(r["start"]), float(r["end"])) for r in rows]
    for row, (start, end), ev in zip(rows, spans, rec.events):
        assert row["filename"] == "long.wav" and row["label"] in synth.VOCAL_CLASSES
        assert 0.0 <= start < end <= 30.0 and (start, end, row["label"]) == (ev.start, ev.end, ev.label)
    assert all(e0 + 0.3 - 1e-6 <= s1 for (_, e0), (s1, _) in zip(spans, spans[1:]))  # ordered, gapped
    assert {r["label"] for r in rows} == set(synth.VOCAL_CLASSES)
    mask = np.zeros(len(x), bool)
    for start, end in spans:
        mask[int(start * SR):int(end * SR)] = True
    background = _rms(x[~mask])
    for start, end in spans:
        assert _rms(x[int(start * SR):int(end * SR)]) > 1.2 * background


def test_long_recording_deterministic_and_limits(tmp_path):
    a = synth.make_long_recording(tmp_path / "a.wav", seconds=10.0, seed=1)
    b = synth.make_long_recording(tmp_path / "b.wav", seconds=10.0, seed=1)
    c = synth.make_long_recording(tmp_path / "c.wav", seconds=10.0, seed=2)
    assert file_hash(a.path) == file_hash(b.path) != file_hash(c.path)
    assert [(e.start, e.end, e.label) for e in a.events] == [(e.start, e.end, e.label) for e in b.events]
    with pytest.raises(ConfigError):
        synth.make_long_recording(tmp_path / "x.wav", seconds=synth.MAX_LONG_SECONDS + 1)
    with pytest.raises(ConfigError):
        synth.make_long_recording(tmp_path / "x.wav", seconds=5.0, rate_per_min=600.0)
    empty = synth.make_long_recording(tmp_path / "q.wav", seconds=2.0, rate_per_min=0.0)
    assert empty.events == () and len(_read_csv(empty.annotations_path)) == 0
