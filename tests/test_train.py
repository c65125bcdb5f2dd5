"""Self-supervised training: real clips at 44.1/48 (stereo)/96 kHz, resume, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sonotype.audio.io import write_audio
from sonotype.errors import CheckpointError, ConfigError, DataError
from sonotype.features.frontend import PRESETS
from sonotype.models.checkpoint import load_checkpoint, load_model
from sonotype.models.embed import file_embeddings
from sonotype.models.lstm_v3 import EncoderConfig
from sonotype.training.dataset import make_items
from sonotype.training.train import TrainConfig, best_path, train_encoder

REAL = {
    "orca 44.1 kHz FLAC": "orca-calls/catalog-2018/FO-S02.flac",
    "orca whistle 48 kHz stereo": "orca-calls/whistles/SW1a_221111_8m35.wav",
    "dolphin 96 kHz 24-bit": "dolphin-clips/silbido_FB272_3_04.wav",
}


@pytest.mark.realdata
@pytest.mark.parametrize("name", list(REAL))
def test_training_on_real_clip_lowers_loss_and_gives_finite_embeddings(name, data_dir, tmp_path):
    path = data_dir / REAL[name]
    items = make_items([path])  # channel: auto (the louder one for the stereo whistle)
    cfg = TrainConfig(epochs=6, batch_size=8, lr=2e-3, val_fraction=0.0, stride=4, seed=1)
    ck = train_encoder(items, frontend=PRESETS["dolphin"], out=tmp_path / "enc.pt", cache_dir=tmp_path / "c",
                       config=cfg, progress=False, log=lambda s: None)
    losses = [h["train_loss"] for h in ck.history]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.8 * losses[0], losses
    model = load_model(tmp_path / "enc.pt")
    emb = file_embeddings(model.encoder, path, model.frontend, channel=items[0].channel,
                          sample_rate=items[0].sample_rate)
    assert emb.shape[1] == 128 and emb.shape[0] >= 3
    assert np.isfinite(emb).all() and emb.std() > 0


@pytest.mark.realdata
def test_stereo_whistle_uses_the_louder_channel(data_dir):
    it = make_items([data_dir / REAL["orca whistle 48 kHz stereo"]])[0]
    assert it.channel == 1 and it.sample_rate == 48000


def _clip(tmp_path, name="a.wav", seconds=2.0, seed=0, sr=48000):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * (6000 + 3000 * t) * t) + 0.01 * rng.standard_normal(t.size)
    return write_audio(tmp_path / name, x.astype(np.float32), sample_rate=sr)


def test_same_seed_same_weights_and_resume_equals_uninterrupted(tmp_path):
    items = make_items([_clip(tmp_path, "a.wav", seed=0), _clip(tmp_path, "b.wav", seed=1)])
    kw = dict(frontend=PRESETS["dolphin"], cache_dir=tmp_path / "c", progress=False, log=lambda s: None)
    full = train_encoder(items, out=tmp_path / "full.pt", config=TrainConfig(epochs=3, batch_size=4, seed=3), **kw)
    again = train_encoder(items, out=tmp_path / "again.pt", config=TrainConfig(epochs=3, batch_size=4, seed=3), **kw)
    part = train_encoder(items, out=tmp_path / "part.pt", config=TrainConfig(epochs=2, batch_size=4, seed=3), **kw)
    resumed = train_encoder(items, out=tmp_path / "resumed.pt", config=TrainConfig(epochs=3, batch_size=4, seed=3),
                            resume=tmp_path / "part.pt", **kw)
    for k, v in full.encoder.items():
        assert torch.equal(v, again.encoder[k]), k
        assert torch.allclose(v, resumed.encoder[k], atol=1e-6), k
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    best = load_checkpoint(best_path(tmp_path / "full.pt"))
    losses = [h["val_loss"] for h in full.history]
    assert best.history[-1]["val_loss"] == min(losses) and best.optimizer is None
    other = train_encoder(items, out=tmp_path / "other.pt", config=TrainConfig(epochs=1, batch_size=4, seed=4), **kw)
    assert not torch.equal(other.encoder["local_conv.weight"], part.encoder["local_conv.weight"])


def test_checkpoint_carries_config_frontend_data_and_version(tmp_path):
    items = make_items([_clip(tmp_path)])
    train_encoder(items, frontend=PRESETS["dolphin"], out=tmp_path / "e.pt", cache_dir=tmp_path / "c",
                  encoder_config=EncoderConfig(batch_norm=True), config=TrainConfig(epochs=1, batch_size=4),
                  progress=False, log=lambda s: None)
    ck = load_checkpoint(tmp_path / "e.pt")
    assert torch.load(tmp_path / "e.pt", weights_only=True)["version"] == 1 and ck.kind == "encoder"
    assert load_checkpoint(best_path(tmp_path / "e.pt")).epoch == 0
    assert ck.encoder_config.batch_norm is True
    assert ck.frontend.fmin == 2000.0 and ck.frontend.n_fft == 512
    assert ck.data.files == (items[0].path,) and ck.data.sample_rate == items[0].sample_rate
    m = load_model(tmp_path / "e.pt")
    assert m.encoder.config.batch_norm and m.head is None
    from sonotype.models.backends import load_backend
    assert load_backend("lstm", model=m).info.sample_rate == items[0].sample_rate  # the rate it declares


def test_bad_checkpoints_are_refused_with_the_path(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_model(junk)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "missing.pt")
    torch.save({"format": "sonotype", "version": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        load_model(tmp_path / "future.pt")


def test_no_usable_windows_and_mismatched_config_are_clear_errors(tmp_path):
    short = make_items([_clip(tmp_path, "short.wav", seconds=0.05)])
    with pytest.raises(DataError, match="no training windows"):
        train_encoder(short, frontend=PRESETS["dolphin"], out=tmp_path / "e.pt", cache_dir=tmp_path / "c",
                      progress=False, log=lambda s: None)
    with pytest.raises(ConfigError, match="256"):
        train_encoder(make_items([_clip(tmp_path)]), frontend=PRESETS["dolphin"], out=tmp_path / "e.pt",
                      cache_dir=tmp_path / "c", encoder_config=EncoderConfig(n_bins=128), progress=False)
    with pytest.raises(DataError):
        train_encoder([], frontend=PRESETS["dolphin"], out=tmp_path / "e.pt", cache_dir=tmp_path / "c")
