"""The torch front end against the numpy one (the reference) on real clips at 2, 44.1, 48 and 96 kHz."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sonotype.audio.io import open_recording, read_audio
from sonotype.errors import ConfigError
from sonotype.features.frontend import AMIN, PRESETS, file_windows, frames_to_windows, framing_for, spectrogram
from sonotype.features.torch_frontend import TorchFraming, iter_windows_torch, resolve_device

CLIPS = {
    "dolphin 96 kHz 24-bit": ("dolphin-clips/silbido_FB272_3_04.wav", "dolphin"),
    "dolphin 48 kHz": ("dolphin-clips/pamguard_dolphin_whistle.wav", "dolphin"),
    "orca 44.1 kHz FLAC": ("orca-calls/catalog-2018/FO-S02.flac", "orca"),
    "right whale 2 kHz, per-bin centring": ("narw-upcalls/narw/NOPP6_EST_20090328_000000.wav", "narw"),
}


def _float64_spectrogram(x: np.ndarray, framing) -> np.ndarray:
    """The obvious slow reference: float64 per-frame rfft of Hann-windowed frames, band, dB."""
    f = framing.n_frames(x.shape[0])
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(framing.n_fft) / framing.n_fft)
    rows = [np.abs(np.fft.rfft(x[i * framing.hop:i * framing.hop + framing.n_fft].astype(np.float64) * w))
            for i in range(f)]
    return 20 * np.log10(np.maximum(np.stack(rows) @ framing.band.astype(np.float64), AMIN))


@pytest.mark.realdata
@pytest.mark.parametrize("name", list(CLIPS))
def test_torch_windows_match_the_numpy_front_end(name, data_dir):
    rel, preset = CLIPS[name]
    path = data_dir / rel
    rec = open_recording(path)
    fe = PRESETS[preset]
    ref = file_windows(path, fe, channel=rec.channel, sample_rate=rec.sample_rate)  # (N, W, B)
    # small odd blocks: frames and windows straddle block boundaries
    got = torch.cat([b.windows for b in iter_windows_torch(path, fe, channel=rec.channel, sample_rate=rec.sample_rate,
                                                           batch=37, block_frames=30011)]).numpy()
    assert got.shape == ref.shape and got.dtype == np.float32
    diff = np.abs(got - ref)
    # float32 FFTs differ in the last bits; in dB that is largest for bins near the -100 dB floor
    assert np.quantile(diff, 0.99) < 1e-3 and np.quantile(diff, 0.999) < 5e-3, np.quantile(diff, [0.99, 0.999])
    assert diff.max() < 0.05, diff.max()
    # and the torch front end is as close to float64 truth as the numpy one is
    x, _ = read_audio(path, channel=rec.channel)
    fr = framing_for(fe, rec.sample_rate, path)
    truth = frames_to_windows(_float64_spectrogram(x, fr).astype(np.float32), window=fr.window, stride=fr.stride,
                              centre_bins=fr.centre_bins)
    err_torch, err_numpy = np.abs(got - truth).max(), np.abs(ref - truth).max()
    assert err_torch <= 1.5 * err_numpy + 1e-3, (err_torch, err_numpy)


@pytest.mark.realdata
def test_torch_spectrogram_is_blockwise_exact_and_matches_numpy_frames(data_dir):
    path = data_dir / CLIPS["dolphin 96 kHz 24-bit"][0]
    x, sr = read_audio(path)
    fr = framing_for(PRESETS["dolphin"], sr, path)
    tf = TorchFraming(fr)
    whole = tf.spectrogram(torch.from_numpy(x)).numpy()  # (F, B)
    np.testing.assert_allclose(whole, spectrogram(x, fr), atol=0.7)  # dB; float32 noise at the floor
    assert np.median(np.abs(whole - spectrogram(x, fr))) < 1e-4
    # frames of a prefix are the first frames of the whole: frames never depend on where the signal stops
    cut = 40 * fr.hop + fr.n_fft
    np.testing.assert_allclose(tf.spectrogram(torch.from_numpy(x[:cut])).numpy(), whole[:41], atol=1e-4)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="device must be"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU.*--device cpu"):
            resolve_device("cuda")


def test_short_input_gives_no_frames_and_no_windows():
    fr = PRESETS["dolphin"].at_rate(48000)
    tf = TorchFraming(fr)
    assert tf.spectrogram(torch.zeros(fr.n_fft - 1)).shape == (0, fr.n_bins)
    assert tf.windows(torch.zeros(fr.window - 1, fr.n_bins)).shape == (0, fr.window, fr.n_bins)
    silent = tf.windows(torch.full((fr.window, fr.n_bins), -100.0))  # digital silence: zeros, never NaN
    assert torch.equal(silent, torch.zeros_like(silent))
