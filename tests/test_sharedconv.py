"""The local conv shared between overlapping windows equals the plain per-window forward."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sonotype.audio.io import open_recording
from sonotype.features.frontend import PRESETS, file_windows
from sonotype.models.lstm_v3 import Encoder, EncoderConfig
from sonotype.models.sharedconv import iter_window_frames, shared_forward

CLIPS = {"dolphin 96 kHz": ("dolphin-clips/silbido_FB272_3_04.wav", "dolphin"),
         "right whale 2 kHz, per-bin offsets": ("narw-upcalls/narw/NOPP6_EST_20090328_000000.wav", "narw")}


def _compare(encoder, path, fe, rec, *, batch, limit=None):
    seen = 0
    for first, frames, wins, off, sc in iter_window_frames(path, fe, channel=rec.channel, sample_rate=rec.sample_rate,
                                                           batch=batch, block_frames=100_003):
        with torch.inference_mode():
            plain = encoder(torch.from_numpy(wins))  # (n, D) the per-window forward
            shared = shared_forward(encoder, *(torch.from_numpy(a) for a in (frames, wins, off, sc)),
                                    stride=fe.stride)
        torch.testing.assert_close(shared, plain, atol=1e-5, rtol=1e-4)  # float32 rounding
        seen += len(wins)
        if limit and seen >= limit:
            break
    return seen


@pytest.mark.realdata
@pytest.mark.parametrize("name", list(CLIPS))
@pytest.mark.parametrize("stride", [16, 5])
def test_shared_local_conv_equals_the_per_window_forward(name, stride, data_dir):
    rel, preset = CLIPS[name]
    path, fe = data_dir / rel, dataclasses.replace(PRESETS[preset], stride=stride)
    rec = open_recording(path)
    torch.manual_seed(1)
    enc = Encoder(EncoderConfig()).eval()
    n = _compare(enc, path, fe, rec, batch=37, limit=300)
    assert n >= min(300, len(file_windows(path, fe, channel=rec.channel, sample_rate=rec.sample_rate)))


def test_other_kernels_silence_and_a_single_window(tmp_path):
    from sonotype.audio.io import write_audio
    rng = np.random.default_rng(0)
    x = 0.1 * rng.standard_normal(48000 * 2).astype(np.float32)
    x[20000:40000] = 0.0  # digital silence: constant windows (scale 1)
    path = write_audio(tmp_path / "a.wav", x, sample_rate=48000)
    rec = open_recording(path)
    for kernel, stride, window in (((5, 3), 7, 32), ((8, 8), 32, 32), ((3, 8), 2, 16)):
        fe = dataclasses.replace(PRESETS["dolphin"], stride=stride, window=window)
        torch.manual_seed(2)
        enc = Encoder(EncoderConfig(local_kernel=kernel, window=window)).eval()
        assert _compare(enc, path, fe, rec, batch=11) > 0
