"""Spectrogram pictures: the colour table, column pooling, orientation and PNG bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from helpers import tone_with_gaps
from PIL import Image

from sonotype.audio.io import read_audio
from sonotype.errors import ConfigError
from sonotype.features.frontend import PRESETS, FrontEnd, spectrogram
from sonotype.features.render import (
    ColumnPooler,
    colour_table,
    levels,
    png_bytes,
    render_span,
    span_columns,
    to_rgb,
)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    lin = (rgb / 255.0) ** 2.2
    return lin @ np.array([0.2126, 0.7152, 0.0722])


def test_colour_table_is_dark_to_bright_and_monotone():
    t = colour_table(256)
    assert t.shape == (256, 3) and t.dtype == np.uint8
    lum = _luminance(t.astype(float))
    assert np.all(np.diff(lum) > -1e-3), "lightness must not go down"
    assert lum[0] < 0.02 and lum[-1] > 0.7
    assert len({tuple(c) for c in t}) > 200  # distinct colours, not a few bands
    with pytest.raises(ConfigError):
        colour_table(1)


@pytest.mark.parametrize("total,width", [(1000, 37), (37, 37), (10, 100), (1, 5), (513, 512)])
def test_column_pooler_streamed_equals_whole(total, width):
    rng = np.random.default_rng(total)
    frames = rng.normal(size=(total, 4)).astype(np.float32)
    pool = ColumnPooler(total, width=width, bins=4)
    for a in range(0, total, 7):  # odd chunks
        pool.add(a, frames[a:a + 7])
    got = pool.result()
    assert got.shape == (width, 4)
    if total > width:
        cols = np.arange(total) * width // total
        want = np.stack([frames[cols == j].max(axis=0) for j in range(width)])
    else:
        want = frames[np.minimum(((np.arange(width) + 0.5) * total / width).astype(int), total - 1)]
    np.testing.assert_array_equal(got, want)


def test_column_pooler_marks_missing_frames_nan():
    pool = ColumnPooler(100, width=10, bins=2)
    pool.add(0, np.ones((50, 2), np.float32))
    got = pool.result()
    assert np.all(got[:5] == 1) and np.all(np.isnan(got[5:]))


def test_levels_and_bad_floor_ceiling():
    lo, hi = levels(np.array([0.0, 1.0, 2.0, np.nan, -np.inf]), min_range=30)
    assert np.isfinite(lo) and hi - lo >= 30
    assert levels(np.array([np.nan])) == (-100.0, -70.0)
    with pytest.raises(ConfigError, match="floor < ceiling"):
        to_rgb(np.zeros((3, 3)), floor=1.0, ceiling=1.0, height=4)
    with pytest.raises(ConfigError, match="height"):
        to_rgb(np.zeros((3, 3)), floor=0.0, ceiling=1.0, height=100000)


def test_high_frequencies_are_drawn_at_the_top():
    cols = np.zeros((20, 64), np.float32)
    cols[:, 60] = 100.0  # a loud high bin
    rgb = to_rgb(cols, floor=0, ceiling=100, height=64)
    bright = _luminance(rgb.astype(float)).mean(axis=1)
    assert np.argmax(bright) < 8  # near the top row
    assert np.array_equal(rgb[0], rgb[0])  # NaN-free


def test_png_bytes_decode_to_the_picture():
    rgb = to_rgb(np.linspace(-50, 0, 30 * 8, dtype=np.float32).reshape(30, 8), floor=-50, ceiling=0, height=17)
    img = Image.open(io.BytesIO(png_bytes(rgb)))
    assert img.format == "PNG" and img.size == (30, 17)
    np.testing.assert_array_equal(np.asarray(img.convert("RGB")), rgb)


def test_span_columns_match_the_whole_spectrogram(tmp_path):
    wav = tone_with_gaps(tmp_path / "t.wav", seconds=3)
    fe = PRESETS["dolphin"]
    framing = fe.at_rate(48000)
    x, _ = read_audio(wav, start=12000, stop=100000)
    whole = spectrogram(x, framing)
    pic = span_columns(wav, frontend=fe, channel=0, sample_rate=48000, start=12000, stop=100000, width=50)
    cols = np.arange(whole.shape[0]) * 50 // whole.shape[0]
    want = np.stack([whole[cols == j].max(axis=0) for j in range(50)])
    np.testing.assert_allclose(pic.columns, want, atol=1e-4)
    assert (pic.fmin, pic.fmax) == (2000.0, 24000.0)


def test_band_above_nyquist_falls_back_to_the_full_band(tmp_path):
    wav = tone_with_gaps(tmp_path / "low.wav", seconds=1, sr=8000)
    pic = span_columns(wav, frontend=FrontEnd(fmin=5000.0), channel=0, sample_rate=8000, start=0, stop=8000,
                       width=20)
    assert (pic.fmin, pic.fmax) == (0.0, 4000.0) and pic.columns.shape == (20, 256)
    with pytest.raises(ConfigError, match="start < stop"):
        span_columns(wav, frontend=None, channel=0, sample_rate=8000, start=10, stop=10, width=5)


def test_render_span_gives_png_of_the_asked_size(tmp_path):
    wav = tone_with_gaps(tmp_path / "t.wav", seconds=2)
    body, pic = render_span(wav, frontend=None, channel=0, sample_rate=48000, start=0, stop=96000, width=123,
                            height=45, floor=-40, ceiling=40)
    assert Image.open(io.BytesIO(body)).size == (123, 45) and pic.stop == 96000


def test_web_and_report_colour_a_spectrogram_alike():
    """The report's imshow style (colour map + levels) maps every dB value to the colour the web picture uses."""
    from matplotlib.colors import Normalize

    from sonotype.report._plot import spectrogram_style

    rng = np.random.default_rng(4)
    spec = (rng.normal(-60, 15, size=(50, 24))).astype(np.float32)  # (F, B) dB
    spec[3, 5], spec[7, 1] = np.nan, -np.inf
    style = spectrogram_style(spec)
    assert (style["vmin"], style["vmax"]) == levels(spec)
    report = style["cmap"](Normalize(style["vmin"], style["vmax"])(np.ma.masked_invalid(spec.astype(np.float64))))
    web = to_rgb(spec, floor=style["vmin"], ceiling=style["vmax"], height=spec.shape[1])  # (B, F, 3), top = high
    assert np.array_equal(np.round(report[..., :3] * 255).astype(np.uint8), web[::-1].transpose(1, 0, 2))
    assert len(np.unique(web.reshape(-1, 3), axis=0)) > 100  # many colours compared, not one
