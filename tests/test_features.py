"""Tests of sonotype.features.frontend against a slow, obvious reference written here.

The reference takes one frame at a time (Python loop), multiplies it by a Hann window computed
from its formula, takes ``numpy.fft.rfft`` in float64, maps the FFT magnitudes to the band with a
loop over output bins (band_matrix's documented rule: linear interpolation between the two
nearest FFT bins when band bins are finer than FFT bins, otherwise the mean of the FFT bins whose
centre falls in the band bin's cell ``[centre - step/2, centre + step/2)``, or the nearest FFT bin
if the cell holds none), then converts to dB as ``20*log10(max(mag, 1e-5))``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from sonotype import units
from sonotype.audio.io import read_audio, write_audio
from sonotype.errors import AudioError, ConfigError
from sonotype.features.frontend import (
    AMIN,
    PRESETS,
    FrontEnd,
    WindowBatch,
    band_matrix,
    file_windows,
    frames_to_windows,
    iter_frames,
    iter_windows,
    normalise,
    spectrogram,
    stft_magnitude,
    with_overrides,
)

NARW = FrontEnd(n_fft=512, hop=64, fmin=40.0, fmax=1000.0)  # the 2 kHz case of the brief
DOLPHIN = FrontEnd()  # 2 kHz to Nyquist
COARSE = FrontEnd(n_fft=2048, hop=512)  # FFT bins (23.4 Hz at 48 kHz) finer than band bins (86 Hz)

# (sample rate, front end, band bins finer than FFT bins?)
CASES = [
    (2000, NARW, True),
    (44100, DOLPHIN, True),
    (48000, DOLPHIN, True),
    (96000, DOLPHIN, True),
    (48000, COARSE, False),
    (96000, FrontEnd(n_fft=4096, hop=1024, fmin=1000.0, fmax=20000.0, n_bins=64), False),
]
CASE_IDS = [f"{sr}-nfft{fe.n_fft}-{'interp' if fine else 'mean'}" for sr, fe, fine in CASES]


# ------------------------------------------------------------------------------- the reference


def ref_hann(n: int) -> np.ndarray:
    """Periodic Hann window, w[i] = 0.5 - 0.5 cos(2 pi i / n), by formula."""
    return np.array([0.5 - 0.5 * math.cos(2.0 * math.pi * i / n) for i in range(n)])


def ref_band_weights(sr: float, n_fft: int, fmin: float, fmax: float, n_bins: int) -> list[dict[int, float]]:
    """For each output bin, {FFT bin index: weight}, built one output bin at a time."""
    k = n_fft // 2 + 1
    in_step = sr / n_fft
    out_step = (fmax - fmin) / (n_bins - 1)
    out = []
    for b in range(n_bins):
        centre = fmin + b * out_step
        weights: dict[int, float] = {}
        if out_step < in_step:  # finer: interpolate between the FFT bins either side of the centre
            pos = centre / in_step
            lo = min(int(math.floor(pos)), k - 1)
            hi = min(lo + 1, k - 1)
            frac = pos - lo
            weights[lo] = weights.get(lo, 0.0) + (1.0 - frac)
            weights[hi] = weights.get(hi, 0.0) + frac
        else:  # coarser: mean of the FFT bins whose centre frequency falls in this bin's cell
            members = [j for j in range(k) if centre - out_step / 2 <= j * in_step < centre + out_step / 2]
            if not members:
                members = [min(k - 1, max(0, int(round(centre / in_step))))]
            for j in members:
                weights[j] = 1.0 / len(members)
        out.append(weights)
    return out


def ref_magnitudes(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(F, K) float64 FFT magnitudes, one uncentred frame at a time."""
    x = np.asarray(x, dtype=np.float64)
    win = ref_hann(n_fft)
    rows = []
    start = 0
    while start + n_fft <= len(x):
        rows.append(np.abs(np.fft.rfft(x[start:start + n_fft] * win)))
        start += hop
    return np.array(rows).reshape(len(rows), n_fft // 2 + 1)


def ref_spectrogram(x: np.ndarray, sr: float, fe: FrontEnd) -> np.ndarray:
    """(F, B) band spectrogram of ``x`` at ``sr``, dB or linear as ``fe.scale`` says."""
    fmax = sr / 2 if fe.fmax is None else fe.fmax
    mags = ref_magnitudes(x, fe.n_fft, fe.hop)
    weights = ref_band_weights(sr, fe.n_fft, fe.fmin, fmax, fe.n_bins)
    band = np.zeros((mags.shape[0], fe.n_bins))
    for b, wts in enumerate(weights):
        for j, w in wts.items():
            band[:, b] += w * mags[:, j]
    if fe.scale == "log":
        return 20.0 * np.log10(np.maximum(band, 1e-5))
    return band


def ref_normalise(windows: np.ndarray) -> np.ndarray:
    out = np.empty(windows.shape, np.float64)
    for i in range(windows.shape[0]):
        w = windows[i].astype(np.float64)
        out[i] = (w - w.mean()) / (w.std() + 1.0)
    return out


def make_signal(n: int, sr: float, seed: int = 0) -> np.ndarray:
    """float32 noise plus a few tones and a chirp inside every band used here."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    x = 0.2 * rng.standard_normal(n)
    for f, a in ((0.11, 0.3), (0.27, 0.2), (0.41, 0.1)):
        x += a * np.sin(2 * np.pi * f * sr * t + seed)
    x += 0.2 * np.sin(2 * np.pi * (0.05 * sr + 0.1 * sr * t / t[-1]) * t)
    # quiet and loud stretches so the dB range is wide
    x *= np.where((t * 4).astype(int) % 2 == 0, 1.0, 0.01)
    return x.astype(np.float32)


# ------------------------------------------------------------------------------ window, band, spectrogram


def test_reference_hann_is_what_the_front_end_uses():
    # an impulse at position i of a frame has a flat spectrum of height hann[i]: reads the window back
    n_fft = 64
    w = ref_hann(n_fft)
    assert w[0] == 0.0 and w[n_fft // 2] == pytest.approx(1.0)
    # periodic: w[i] == w[n - i]
    assert np.allclose(w[1:], w[1:][::-1])
    x = np.zeros(n_fft, np.float32)
    for i in (1, 5, 17, 32, 50, 63):
        x[:] = 0
        x[i] = 1.0
        mag = stft_magnitude(x, n_fft=n_fft, hop=n_fft)
        assert np.allclose(mag, w[i], atol=1e-6)


@pytest.mark.parametrize("sr,fe,fine", CASES, ids=CASE_IDS)
def test_band_matrix_matches_reference(sr, fe, fine):
    fr = fe.at_rate(sr)
    m = band_matrix(sr, n_fft=fr.n_fft, fmin=fr.fmin, fmax=fr.fmax, n_bins=fr.n_bins)
    k = fr.n_fft // 2 + 1
    assert m.shape == (k, fr.n_bins) and m.dtype == np.float32
    in_step, out_step = sr / fr.n_fft, (fr.fmax - fr.fmin) / (fr.n_bins - 1)
    assert (out_step < in_step) == fine  # the case really exercises the branch it is named after
    ref = np.zeros((k, fr.n_bins))
    for b, wts in enumerate(ref_band_weights(sr, fr.n_fft, fr.fmin, fr.fmax, fr.n_bins)):
        for j, w in wts.items():
            ref[j, b] += w
    np.testing.assert_allclose(m, ref, atol=1e-6)
    np.testing.assert_allclose(m.sum(axis=0), 1.0, atol=1e-6)
    assert (m >= 0).all()
    assert not m.flags.writeable


@pytest.mark.parametrize("sr,fe,fine", CASES, ids=CASE_IDS)
def test_spectrogram_matches_reference(sr, fe, fine):
    fr = fe.at_rate(sr)
    x = make_signal(int(sr * 1.3) + 77, sr, seed=int(sr) % 97)
    got = spectrogram(x, fr)
    want = ref_spectrogram(x, sr, fe)
    assert got.dtype == np.float32
    assert got.shape == want.shape == (units.n_frames(len(x), n_fft=fe.n_fft, hop=fe.hop), fe.n_bins)
    assert got.shape[0] > 10
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    assert want.max() - want.min() > 40  # the signal spans a wide dB range, quiet parts included


@pytest.mark.parametrize("sr,fe,fine", CASES[:1] + CASES[2:5], ids=CASE_IDS[:1] + CASE_IDS[2:5])
def test_linear_scale_matches_reference(sr, fe, fine):
    fe = with_overrides(fe, scale="linear")
    fr = fe.at_rate(sr)
    x = make_signal(int(sr * 0.7), sr, seed=3)
    got = spectrogram(x, fr)
    want = ref_spectrogram(x, sr, fe)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_spectrogram_of_short_signal_is_empty():
    fr = DOLPHIN.at_rate(48000)
    assert spectrogram(np.zeros(511, np.float32), fr).shape == (0, 256)
    assert spectrogram(np.zeros(0, np.float32), fr).shape == (0, 256)
    assert spectrogram(np.zeros(512, np.float32), fr).shape == (1, 256)


def test_silence_floors_at_amin():
    fr = DOLPHIN.at_rate(48000)
    s = spectrogram(np.zeros(48000, np.float32), fr)
    floor = 20 * math.log10(AMIN)  # -100 dB (AMIN is rounded to float32, so -100.00001)
    assert np.all(s == s[0, 0]) and s[0, 0] == pytest.approx(floor, abs=1e-4)


@pytest.mark.parametrize("sr,fe,fine", CASES, ids=CASE_IDS)
def test_pure_tone_peaks_in_nearest_band_bin(sr, fe, fine):
    fr = fe.at_rate(sr)
    centres = np.linspace(fr.fmin, fr.fmax, fr.n_bins)
    in_step = sr / fr.n_fft
    n = fr.n_fft * 8
    t = np.arange(n) / sr
    rng = np.random.default_rng(1)
    # tones exactly on FFT bins (so the FFT peak is at f), spread over the band, away from its edges
    ks = np.arange(math.ceil(fr.fmin / in_step) + 3, math.floor(fr.fmax / in_step) - 3)
    for k in rng.choice(ks, size=min(12, len(ks)), replace=False):
        f = k * in_step
        d = np.abs(centres - f)
        nearest = int(np.argmin(d))
        if np.sort(d)[1] - d[nearest] < 1e-3 * in_step:
            continue  # f halfway between two band centres: no single nearest bin
        x = (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)
        spec = spectrogram(x, fr)
        assert np.all(np.argmax(spec, axis=1) == nearest), (f, nearest, np.argmax(spec, axis=1))
    # off-bin tones: the peak is the nearest band bin or its neighbour
    for f in rng.uniform(fr.fmin + 5 * in_step, fr.fmax - 5 * in_step, 12):
        x = (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)
        peak = np.argmax(spectrogram(x, fr).mean(axis=0))
        assert abs(int(peak) - int(np.argmin(np.abs(centres - f)))) <= 1


def test_flat_spectrum_stays_flat():
    # an impulse per frame has a flat magnitude spectrum; every band bin must read the same
    fe = with_overrides(DOLPHIN, scale="linear")
    for sr, fe_ in ((48000, fe), (48000, with_overrides(COARSE, scale="linear")), (2000, with_overrides(NARW, scale="linear"))):
        fr = fe_.at_rate(sr)
        x = np.zeros(fr.n_fft, np.float32)
        x[fr.n_fft // 2] = 1.0  # window value 1 there
        s = spectrogram(x, fr)
        np.testing.assert_allclose(s, 1.0, rtol=1e-5)


# ------------------------------------------------------------------------------ normalisation


def test_normalise_matches_loop():
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((9, 32, 40)) * rng.uniform(0.1, 30, (9, 1, 1)) + rng.uniform(-90, 10, (9, 1, 1)))
    w = w.astype(np.float32)
    out, mean, scale = normalise(w)
    assert out.dtype == np.float32 and out.shape == w.shape
    assert mean.shape == scale.shape == (9, 1, 1)
    np.testing.assert_allclose(out, ref_normalise(w), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0.0, atol=1e-5)
    for i in range(9):
        assert mean[i, 0, 0] == pytest.approx(float(w[i].astype(np.float64).mean()), rel=1e-5, abs=1e-4)
        assert scale[i, 0, 0] == pytest.approx(float(w[i].astype(np.float64).std()) + 1.0, rel=1e-5)
    # the returned mean/scale normalise another frame the same way
    frame = w[:, :1, :]
    np.testing.assert_allclose((frame - mean) / scale, out[:, :1, :], rtol=1e-5, atol=1e-5)


def test_normalise_constant_windows_are_zero():
    w = np.full((3, 32, 16), -100.0, np.float32)
    w[1] = 0.0
    w[2] = 7.25
    out, mean, scale = normalise(w)
    assert np.all(out == 0.0) and np.isfinite(out).all()
    assert np.all(scale == 1.0)


def test_frames_to_windows_matches_loop():
    rng = np.random.default_rng(6)
    frames = rng.normal(-40, 12, (203, 24)).astype(np.float32)
    for window, stride in ((32, 16), (32, 32), (8, 1), (5, 3), (2, 2)):
        got = frames_to_windows(frames, window=window, stride=stride)
        count = units.n_windows(203, window=window, stride=stride)
        assert got.shape == (count, window, 24) and got.dtype == np.float32
        want = ref_normalise(np.stack([frames[i * stride:i * stride + window] for i in range(count)]))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    empty = frames_to_windows(frames[:31], window=32, stride=16)
    assert empty.shape == (0, 32, 24)


# ------------------------------------------------------------------------------ streaming


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """{rate: (path, samples float32)}: a 48 kHz dolphin-band file and a 2 kHz right-whale file,
    stored as 32-bit float so the file holds exactly the samples."""
    d = tmp_path_factory.mktemp("feat")
    out = {}
    for sr, seconds in ((48000, 3.1), (2000, 41.3)):
        x = make_signal(int(sr * seconds) + 13, sr, seed=sr % 11)
        p = write_audio(d / f"rec{sr}.wav", x, sample_rate=sr, subtype="FLOAT")
        y, rate = read_audio(p)
        assert rate == sr and np.array_equal(x, y)
        out[sr] = (p, x)
    return out


STREAM_CASES = [(48000, DOLPHIN), (2000, NARW)]
BLOCKS = [511, 1000, 4097, 65536, 10**7]  # smaller than a frame, odd, larger than the file


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Identical, or equal to float32 rounding (BLAS may sum a row in another order for another shape)."""
    return a.shape == b.shape and (np.array_equal(a, b) or np.allclose(a, b, rtol=0, atol=1e-5))


@pytest.mark.parametrize("sr,fe", STREAM_CASES, ids=["48k-dolphin", "2k-narw"])
@pytest.mark.parametrize("block", BLOCKS)
def test_iter_frames_equals_whole_signal(recordings, sr, fe, block):
    path, x = recordings[sr]
    whole = spectrogram(x, fe.at_rate(sr))
    firsts, chunks = [], []
    for first, frames in iter_frames(path, fe, sample_rate=sr, block_frames=block):
        assert frames.ndim == 2 and frames.shape[1] == fe.n_bins and frames.shape[0] > 0
        firsts.append(first)
        chunks.append(frames)
    assert firsts == list(np.cumsum([0] + [c.shape[0] for c in chunks[:-1]]))
    got = np.concatenate(chunks)
    assert got.shape[0] == units.n_frames(len(x), n_fft=fe.n_fft, hop=fe.hop)
    assert same(got, whole)


@pytest.mark.parametrize("start,stop", [(0, 20000), (777, None), (12345, 54321), (3, 520)])
def test_iter_frames_range(recordings, start, stop):
    path, x = recordings[48000]
    chunks = [f for _, f in iter_frames(path, DOLPHIN, sample_rate=48000, block_frames=4097, start=start, stop=stop)]
    got = np.concatenate(chunks) if chunks else np.zeros((0, 256), np.float32)
    assert same(got, spectrogram(x[start:stop], DOLPHIN.at_rate(48000)))


@pytest.mark.parametrize("sr,fe", STREAM_CASES, ids=["48k-dolphin", "2k-narw"])
@pytest.mark.parametrize("block,batch", [(511, 1), (1000, 7), (4097, 64), (65536, 5), (10**7, 64), (10**7, 1 << 16)])
def test_iter_windows_equals_whole_signal(recordings, sr, fe, block, batch):
    path, x = recordings[sr]
    fr = fe.at_rate(sr)
    whole = frames_to_windows(spectrogram(x, fr), window=fr.window, stride=fr.stride)
    expected_count = units.n_windows(units.n_frames(len(x), n_fft=fr.n_fft, hop=fr.hop),
                                     window=fr.window, stride=fr.stride)
    assert whole.shape[0] == expected_count == fr.n_windows(len(x)) > 3
    batches = list(iter_windows(path, fe, sample_rate=sr, batch=batch, block_frames=block))
    nxt = 0
    for b in batches:
        assert isinstance(b, WindowBatch)
        assert b.first == nxt  # consecutive
        assert 1 <= len(b) <= batch
        assert b.windows.shape[1:] == (fr.window, fr.n_bins) and b.windows.dtype == np.float32
        nxt += len(b)
    assert nxt == expected_count
    assert same(np.concatenate([b.windows for b in batches]), whole)


@pytest.mark.parametrize("sr,fe", STREAM_CASES, ids=["48k-dolphin", "2k-narw"])
def test_file_windows_equals_whole_signal(recordings, sr, fe):
    path, x = recordings[sr]
    fr = fe.at_rate(sr)
    got = file_windows(path, fe, sample_rate=sr)
    assert same(got, frames_to_windows(spectrogram(x, fr), window=fr.window, stride=fr.stride))
    # and windows really are normalised reference windows of the reference spectrogram
    ref = ref_spectrogram(x, sr, fe)
    for w in (0, got.shape[0] // 2, got.shape[0] - 1):
        a = w * fr.stride
        np.testing.assert_allclose(got[w], ref_normalise(ref[None, a:a + fr.window])[0], atol=2e-4)


def test_streaming_reads_the_requested_channel(tmp_path):
    sr = 48000
    a, b = make_signal(40000, sr, seed=1), make_signal(40000, sr, seed=2)
    p = write_audio(tmp_path / "stereo.wav", np.stack([a, b], axis=1), sample_rate=sr, subtype="FLOAT")
    fr = DOLPHIN.at_rate(sr)
    for ch, x in ((0, a), (1, b)):
        got = np.concatenate([w.windows for w in iter_windows(p, DOLPHIN, channel=ch, sample_rate=sr,
                                                              batch=4, block_frames=3000)])
        assert same(got, frames_to_windows(spectrogram(x, fr), window=32, stride=16))


def test_silent_file_gives_zero_windows(tmp_path):
    p = write_audio(tmp_path / "silence.wav", np.zeros(48000, np.float32), sample_rate=48000)
    w = file_windows(p, DOLPHIN, sample_rate=48000)
    assert w.shape == (DOLPHIN.at_rate(48000).n_windows(48000), 32, 256)
    assert np.isfinite(w).all() and np.all(w == 0.0)
    for b in iter_windows(p, DOLPHIN, sample_rate=48000, batch=3, block_frames=1000):
        assert np.all(b.windows == 0.0)


def test_file_windows_too_short_names_the_file(tmp_path):
    fr = DOLPHIN.at_rate(48000)
    p = write_audio(tmp_path / "tiny_clip.wav", make_signal(fr.window_samples - 1, 48000), sample_rate=48000)
    with pytest.raises(AudioError) as e:
        file_windows(p, DOLPHIN, sample_rate=48000)
    assert str(p) in str(e.value) and e.value.path == str(p)
    assert str(fr.window_samples) in str(e.value)
    # one more sample: exactly one window
    p2 = write_audio(tmp_path / "one.wav", make_signal(fr.window_samples, 48000), sample_rate=48000)
    assert file_windows(p2, DOLPHIN, sample_rate=48000).shape == (1, 32, 256)


# ------------------------------------------------------------------------------ configuration


@pytest.mark.parametrize("kwargs", [
    dict(n_fft=4), dict(hop=0), dict(hop=-1), dict(n_fft=256, hop=257), dict(scale="db"),
    dict(window=1, stride=1), dict(stride=0), dict(window=8, stride=9), dict(n_bins=1),
    dict(fmin=-1.0), dict(fmin=3000.0, fmax=3000.0), dict(fmin=3000.0, fmax=1000.0),
])
def test_frontend_rejects_bad_values(kwargs):
    with pytest.raises(ConfigError):
        FrontEnd(**kwargs)


def test_frontend_accepts_edge_values():
    FrontEnd(n_fft=8, hop=8, window=2, stride=2, n_bins=2, fmin=0.0)
    FrontEnd(hop=1, stride=1)


def test_band_above_nyquist_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="Nyquist"):
        PRESETS["dolphin"].at_rate(2000)
    with pytest.raises(ConfigError, match="Nyquist"):
        FrontEnd(fmin=100.0, fmax=30000.0).at_rate(48000)
    with pytest.raises(ConfigError, match="Nyquist"):
        FrontEnd(fmin=1000.0).at_rate(2000)  # fmax=None -> Nyquist, but fmin is already there
    FrontEnd(fmin=100.0, fmax=24000.0).at_rate(48000)  # exactly Nyquist is fine
    assert FrontEnd(fmin=100.0).at_rate(44100).fmax == 22050.0
    # and the streaming functions say the same for a 2 kHz file
    p = write_audio(tmp_path / "narw.wav", make_signal(20000, 2000), sample_rate=2000)
    with pytest.raises(ConfigError, match="Nyquist"):
        next(iter_windows(p, PRESETS["dolphin"], sample_rate=2000))
    with pytest.raises(ConfigError, match="Nyquist"):
        file_windows(p, PRESETS["dolphin"], sample_rate=2000)
    assert file_windows(p, PRESETS["narw"], sample_rate=2000).shape[0] > 0


def test_iter_windows_rejects_bad_batch(recordings):
    path, _ = recordings[48000]
    with pytest.raises(ConfigError):
        next(iter_windows(path, DOLPHIN, sample_rate=48000, batch=0))


def test_reference_rate_scales_n_fft_and_hop():
    fe = FrontEnd(n_fft=512, hop=256, fmin=40.0, fmax=200.0, reference_rate=48000)
    for sr in (500, 2000, 8000, 24000, 44100, 48000, 96000, 192000):
        fr = fe.at_rate(sr)
        assert fr.n_fft == max(8, round(512 * sr / 48000))
        assert fr.hop == max(1, round(256 * sr / 48000))
        if fr.n_fft > 8:  # frames last the same time whatever the rate (to one sample)
            assert abs(fr.n_fft / sr - 512 / 48000) <= 0.5 / sr + 1e-12
            assert abs(fr.hop / sr - 256 / 48000) <= 0.5 / sr + 1e-12
    assert (fe.at_rate(96000).n_fft, fe.at_rate(96000).hop) == (1024, 512)
    assert (fe.at_rate(24000).n_fft, fe.at_rate(24000).hop) == (256, 128)
    assert (fe.at_rate(44100).n_fft, fe.at_rate(44100).hop) == (470, 235)
    assert fe.at_rate(500).n_fft == 8  # clamped to the minimum
    # without reference_rate, samples stay samples
    plain = FrontEnd(n_fft=512, hop=256, fmin=40.0, fmax=200.0)
    assert (plain.at_rate(96000).n_fft, plain.at_rate(96000).hop) == (512, 256)
    # the scaled framing is what the spectrogram uses
    x = make_signal(30000, 96000)
    assert spectrogram(x, fe.at_rate(96000)).shape == (units.n_frames(30000, n_fft=1024, hop=512), 256)


def test_frontend_dict_round_trip():
    for fe in list(PRESETS.values()) + [FrontEnd(reference_rate=48000.0, scale="linear")]:
        assert FrontEnd.from_dict(fe.to_dict()) == fe
    assert FrontEnd.from_dict({**NARW.to_dict(), "unknown_key": 1}) == NARW


# ------------------------------------------------------------------------------ PCEN


def ref_pcen(band: np.ndarray, sr: float, hop: int, time_constant: float) -> np.ndarray:
    """PCEN one frame and one bin at a time (Lostanlen et al. 2019, eq. 1-2, their default constants),
    smoother started at the first frame, times 10 (the front end's documented PCEN_SCALE)."""
    t = time_constant * sr / hop
    s = (math.sqrt(1 + 4 * t * t) - 1) / (2 * t * t)
    out = np.zeros(band.shape)
    for b in range(band.shape[1]):
        m = band[0, b]
        for f in range(band.shape[0]):
            m = (1 - s) * m + s * band[f, b]
            out[f, b] = 10.0 * ((band[f, b] / (1e-6 + m) ** 0.98 + 2.0) ** 0.5 - 2.0 ** 0.5)
    return out


@pytest.mark.parametrize("sr,fe", [(2000, replace(NARW, scale="pcen", n_bins=32)),
                                   (48000, replace(DOLPHIN, scale="pcen", n_bins=24, pcen_time=0.06))])
def test_pcen_matches_per_frame_reference(sr, fe):
    x = make_signal(int(sr * 1.5) + 7, sr, seed=3)
    fr = fe.at_rate(sr)
    want = ref_pcen(ref_spectrogram(x, sr, replace(fe, scale="linear")), sr, fr.hop, fe.pcen_time)
    got = spectrogram(x, fr)
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.allclose(got, want, rtol=1e-4, atol=1e-4)
    assert np.abs(got - spectrogram(x, replace(fe, pcen_time=4.0).at_rate(sr))).max() > 1e-2  # the time constant acts


def test_pcen_is_gain_insensitive_and_streams(recordings):
    """A 100x louder signal changes PCEN far less than it changes dB frames; block streaming is exact."""
    path, x = recordings[2000]
    fe = replace(NARW, scale="pcen")
    fr = fe.at_rate(2000)
    a, b = spectrogram(x, fr), spectrogram(100 * x, fr)
    db = spectrogram(x, NARW.at_rate(2000))
    assert np.abs(a - b).mean() < 0.2 * np.abs(db - spectrogram(100 * x, NARW.at_rate(2000))).mean()
    got = np.concatenate([f for _, f in iter_frames(path, fe, sample_rate=2000, block_frames=1000)])
    assert same(got, a)


def test_pcen_frontend_round_trip_and_bad_time():
    fe = replace(NARW, scale="pcen", pcen_time=1.5)
    assert FrontEnd.from_dict(fe.to_dict()) == fe
    assert FrontEnd.from_dict({k: v for k, v in NARW.to_dict().items() if k != "pcen_time"}) == NARW  # old checkpoints
    with pytest.raises(ConfigError, match="pcen_time"):
        replace(NARW, pcen_time=0.0)
