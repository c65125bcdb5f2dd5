"""Distillation: the LSTM-V3 student learns to reproduce a teacher backend's span embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import RMSBackend, placeholder_model

from sonotype.audio.io import write_audio
from sonotype.audio.synth import whistle
from sonotype.errors import ConfigError
from sonotype.features.frontend import PRESETS
from sonotype.models.checkpoint import load_checkpoint, load_model
from sonotype.training.dataset import FrameCache, load_items
from sonotype.training.distill import DistillConfig, distill, pooled, span_batch, teacher_spans


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three 6-s files at 16 kHz: noise with whistles of changing loudness (the teacher hears RMS)."""
    d = tmp_path_factory.mktemp("distil")
    rng = np.random.default_rng(0)
    for i in range(3):
        x = 0.02 * rng.standard_normal(16000 * 6).astype(np.float32)
        for t in range(0, 6):
            w = whistle(10 * i + t, duration_s=0.5, f_low_hz=3000, f_high_hz=6000, sample_rate=16000)
            a = int(t * 16000 + 2000)
            x[a:a + w.size] += (0.1 + 0.15 * ((t + i) % 3)) * w
        write_audio(d / f"f{i}.wav", x, sample_rate=16000)
    return d


def test_spans_cover_the_teachers_windows(corpus, tmp_path):
    items = load_items([corpus])
    teacher = RMSBackend(window_s=1.0, hop_s=0.5)  # 1-s windows every 0.5 s at 8 kHz
    fe = PRESETS["dolphin"]
    cache = FrameCache(tmp_path / "c", fe)
    spans, targets = teacher_spans(items, teacher, cache, progress=False)
    assert targets.shape == (len(spans), 3)
    s = spans[5]
    assert s.item == 0 and s.row == 5
    assert s.first * 256 >= 2.5 * 16000 and (s.last - 1) * 256 + 512 <= 3.5 * 16000  # frames inside [2.5, 3.5) s
    assert (s.first - 1) * 256 < 2.5 * 16000 and s.last * 256 + 512 > 3.5 * 16000    # and all of them
    x, owner = span_batch(spans[:3], items, cache, stride=4)
    assert x.shape[1:] == (32, 256) and owner.max().item() == 2


def test_distillation_lowers_the_held_out_loss_and_writes_an_encoder(corpus, tmp_path):
    items = load_items([corpus])
    init = load_model(placeholder_model(tmp_path / "init.pt"))
    cfg = DistillConfig(epochs=4, batch_spans=4, lr=3e-3, stride=8, val_fraction=0.3, seed=1)
    ck = distill(items, RMSBackend(window_s=1.0, hop_s=0.5), student=init, out=tmp_path / "s.pt", cache_dir=tmp_path / "c", config=cfg,
                 progress=False, log=lambda s: None)
    h = ck.history
    assert len(h) == 4 and h[-1]["val_loss"] < h[0]["val_loss"] and h[-1]["train_loss"] < h[0]["train_loss"]
    student = load_model(tmp_path / "s.pt")
    assert student.checkpoint.distill.teacher["name"] == "rms"
    # the student's weights moved away from its initialisation, its config and front end did not
    assert student.frontend == init.frontend and student.encoder.config == init.encoder.config
    assert any(not torch.equal(a, b) for a, b in zip(student.encoder.state_dict().values(),
                                                     init.encoder.state_dict().values()))
    assert (tmp_path / "s.best.pt").is_file() and load_checkpoint(tmp_path / "s.best.pt").kind == "encoder"


def test_pooled_is_the_mean_of_each_spans_windows():
    torch.manual_seed(0)
    from sonotype.models.lstm_v3 import Encoder, EncoderConfig
    enc = Encoder(EncoderConfig()).eval()
    head = torch.nn.Identity()
    x = torch.randn(5, 32, 256)
    owner = torch.tensor([0, 0, 1, 1, 1])
    with torch.no_grad():
        got = pooled(enc, head, x, owner, 2)
        e = enc(x)
    torch.testing.assert_close(got, torch.stack([e[:2].mean(0), e[2:].mean(0)]))


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="distillation settings out of range"):
        DistillConfig(epochs=0)
