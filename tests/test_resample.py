"""Sample-rate conversion: streamed equals one-shot, against analytic sines and scipy's polyphase filter."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from sonotype.audio.io import audio_info, write_audio
from sonotype.audio.resample import iter_resampled, read_resampled, resample
from sonotype.errors import ConfigError


def _tone(freq, rate, seconds, phase=0.3):
    t = np.arange(int(rate * seconds)) / rate
    return np.sin(2 * np.pi * freq * t + phase).astype(np.float32)


@pytest.mark.parametrize("orig,target", [(22050, 48000), (96000, 44100), (2000, 32000), (48000, 16000)])
def test_resampled_tone_matches_the_analytic_tone(orig, target):
    f = min(orig, target) / 8
    y = resample(_tone(f, orig, 1.0), orig_rate=orig, target_rate=target)
    assert y.shape == (target,) and y.dtype == np.float32
    ref = _tone(f, target, 1.0)
    inner = slice(target // 20, -target // 20)  # away from the edges, where the filter sees zeros
    assert np.max(np.abs(y[inner] - ref[inner])) < 2e-3


def test_agrees_with_scipy_polyphase():
    rng = np.random.default_rng(0)
    x = scipy.signal.lfilter(*scipy.signal.butter(8, 0.4), rng.standard_normal(22050)).astype(np.float32)
    y = resample(x, orig_rate=22050, target_rate=48000)
    ref = scipy.signal.resample_poly(x, 320, 147).astype(np.float32)
    inner = slice(2000, -2000)
    assert y.shape == ref.shape
    assert np.sqrt(np.mean((y[inner] - ref[inner]) ** 2)) < 1e-2 * np.sqrt(np.mean(ref[inner] ** 2))


def test_streamed_blocks_equal_one_shot():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(50_000).astype(np.float32)
    cuts = np.sort(rng.choice(np.arange(1, x.size), 17, replace=False))
    streamed = np.concatenate(list(iter_resampled(np.split(x, cuts), orig_rate=44100, target_rate=48000)))
    whole = resample(x, orig_rate=44100, target_rate=48000)
    assert abs(streamed.size - whole.size) <= 1
    n = min(streamed.size, whole.size)
    assert np.max(np.abs(streamed[:n] - whole[:n])) < 1e-4


def test_speedup_multiplies_frequencies_and_divides_durations():
    x = _tone(100.0, 2000, 4.0)  # a 100 Hz tone at 2 kHz, played 16x faster, heard at 32 kHz
    y = resample(x, orig_rate=2000, target_rate=32000, speedup=16)
    assert y.size == 8000  # 4 s -> 0.25 s at 32 kHz
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    assert np.fft.rfftfreq(y.size, 1 / 32000)[np.argmax(spec)] == pytest.approx(1600, abs=8)


def test_read_resampled_on_a_real_recording(data_dir):
    f = sorted((data_dir / "narw-upcalls" / "narw").glob("*.wav"))[0]
    assert audio_info(f).sample_rate == 2000
    y, rate = read_resampled(f, target_rate=48000, start=2000, stop=4000, speedup=16)
    assert rate == 48000 and y.size == 3000 and np.isfinite(y).all()


def test_bad_rates_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="orig_rate must be a positive"):
        resample(np.zeros(10), orig_rate=0, target_rate=100)
    with pytest.raises(ConfigError, match="speedup"):
        resample(np.zeros(10), orig_rate=10, target_rate=100, speedup=float("nan"))
    write_audio(tmp_path / "a.wav", np.zeros(100, np.float32), sample_rate=8000)
    y, rate = read_resampled(tmp_path / "a.wav", target_rate=None)
    assert rate == 8000 and y.size == 100
