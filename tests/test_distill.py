"""Distillation: the LSTM-V3 student learns to reproduce a teacher backend's span embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import RMSBackend, placeholder_model

from sonotype.audio.io import write_audio
from sonotype.audio.synth import whistle
from sonotype.errors import ConfigError
from sonotype.features.frontend import PRESETS, frames_to_windows
from sonotype.models.checkpoint import load_checkpoint, load_model
from sonotype.training.dataset import FrameCache, load_items
from sonotype.training.distill import (
    DistillConfig,
    distill,
    pooled,
    split,
    stretch_batch,
    stretches,
    teacher_embeddings,
    teacher_spans,
)


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


class CountingRMS(RMSBackend):
    """The RMS teacher, counting the files it embeds."""

    calls = 0

    def embed_span(self, *a, **kw):
        CountingRMS.calls += 1
        return super().embed_span(*a, **kw)


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


@pytest.mark.parametrize("offset", [0, 3])
def test_each_target_is_the_mean_of_the_student_windows_inside_it(corpus, tmp_path, offset):
    """The batch's averaging matrix against a slow reference: every grid window lying inside the teacher
    window, cut from the frames one by one."""
    items = load_items([corpus])
    fe = PRESETS["dolphin"]
    cache = FrameCache(tmp_path / "c", fe)
    spans, _ = teacher_spans(items, RMSBackend(window_s=1.0, hop_s=0.25), cache, progress=False)
    st = stretches(spans, items, fe, max_s=2.5)
    assert all((s.last - s.first) * 256 / 16000 <= 2.5 for s in st)
    assert sorted(t.row for s in st for t in s.spans) == list(range(len(spans)))  # each target once
    batch = st[:3]
    x, member, rows = stretch_batch(batch, items, cache, stride=5, offsets=[offset] * 3)
    assert member.shape == (len(rows), x.shape[0]) and x.shape[1:] == (fe.window, fe.n_bins)
    torch.testing.assert_close(member.sum(1), torch.ones(len(rows)))
    got = (member @ x.reshape(x.shape[0], -1)).reshape(len(rows), fe.window, fe.n_bins)
    j = 0
    for s in batch:
        frames = np.asarray(cache.frames(items[s.item]), np.float32)
        for t in s.spans:
            assert rows[j] == t.row
            starts = [a for a in range(s.first + offset, s.last - fe.window + 1, 5)
                      if t.first <= a and a + fe.window <= t.last]
            assert starts, "a 1-s teacher window holds several student windows"
            ref = np.mean([frames_to_windows(frames[a:a + fe.window], window=fe.window, stride=1)[0]
                           for a in starts], axis=0)
            np.testing.assert_allclose(got[j].numpy(), ref, atol=1e-5)
            j += 1
    assert j == len(rows)


def test_teacher_embeddings_are_cached_per_file_and_backend_key(corpus, tmp_path):
    items = load_items([corpus])
    store = tmp_path / "teacher"
    CountingRMS.calls = 0
    first = teacher_embeddings(items[0], CountingRMS(window_s=1.0, hop_s=0.5), store=store)
    again = teacher_embeddings(items[0], CountingRMS(window_s=1.0, hop_s=0.5), store=store)
    assert CountingRMS.calls == 1 and np.array_equal(first, again)
    np.testing.assert_array_equal(first, RMSBackend(window_s=1.0, hop_s=0.5).embed_span(items[0].path))
    finer = teacher_embeddings(items[0], CountingRMS(window_s=1.0, hop_s=0.25), store=store)  # another key
    assert CountingRMS.calls == 2 and finer.shape[0] > first.shape[0]
    teacher_embeddings(items[1], CountingRMS(window_s=1.0, hop_s=0.5), store=store)       # another file
    assert CountingRMS.calls == 3 and len(list(store.glob("*.npy"))) == 3


def test_files_holdout_keeps_each_file_on_one_side(corpus, tmp_path):
    items = load_items([corpus])
    cache = FrameCache(tmp_path / "c", PRESETS["dolphin"])
    spans, _ = teacher_spans(items, RMSBackend(window_s=1.0, hop_s=0.5), cache, progress=False)
    train, val, how = split(spans, len(items), DistillConfig(val_fraction=0.3, seed=2))
    assert len({s.item for s in val}) == 1 and not {s.item for s in val} & {s.item for s in train}
    assert len(train) + len(val) == len(spans) and "1 of 3 files" in how
    train, val, _ = split(spans, len(items), DistillConfig(val_fraction=0.3, holdout="tail"))
    assert {s.item for s in val} == {0, 1, 2}
    for i in range(3):  # no training window overlaps its file's held-out end
        assert max(s.last for s in train if s.item == i) <= min(s.first for s in val if s.item == i)


def test_distillation_lowers_the_held_out_loss_and_writes_an_encoder(corpus, tmp_path):
    items = load_items([corpus])
    init = load_model(placeholder_model(tmp_path / "init.pt"))
    cfg = DistillConfig(epochs=4, batch_s=2.0, lr=3e-3, stride=8, val_fraction=0.3, seed=1, shift=True,
                        time_mask=4, freq_mask=16)
    seen = []
    ck = distill(items, RMSBackend(window_s=1.0, hop_s=0.25), student=init, out=tmp_path / "s.pt",
                 cache_dir=tmp_path / "c", config=cfg, progress=False, log=lambda s: None,
                 on_epoch=lambda e, c: seen.append((e, c.epoch)))
    assert seen == [(1, 0), (2, 1), (3, 2), (4, 3)]
    h = ck.history
    assert len(h) == 4 and h[-1]["val_loss"] < h[0]["val_loss"] and h[-1]["train_loss"] < h[0]["train_loss"]
    assert len(list((tmp_path / "c" / "teacher").glob("*.npy"))) == 3  # the teacher's embeddings were kept
    student = load_model(tmp_path / "s.pt")
    assert student.checkpoint.distill.teacher["name"] == "rms"
    assert student.checkpoint.distill.config["shift"] is True
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
    member = torch.tensor([[0.5, 0.5, 0, 0, 0], [0, 0, 1 / 3, 1 / 3, 1 / 3]])
    with torch.no_grad():
        got = pooled(enc, head, x, member)
        e = enc(x)
    torch.testing.assert_close(got, torch.stack([e[:2].mean(0), e[2:].mean(0)]))


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="distillation settings out of range"):
        DistillConfig(epochs=0)
    with pytest.raises(ConfigError, match="distillation settings out of range"):
        DistillConfig(holdout="random")
