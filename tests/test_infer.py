"""Scoring on a device: the CPU path gives today's scores and regions; the torch front end, cross-file
batches and bf16 stay within stated bounds of it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import placeholder_model, tone_with_gaps

from sonotype.audio.io import open_recording
from sonotype.detection.detect import default_rule, detect_file
from sonotype.detection.regions import RegionRule
from sonotype.errors import AudioError, ConfigError
from sonotype.features.frontend import PRESETS, file_windows
from sonotype.models.checkpoint import load_model
from sonotype.models.embed import file_scores
from sonotype.models.infer import DEFAULT_BATCH, InferConfig, ScoreJob, Scorer
from sonotype.runner.batch import detect_many
from sonotype.store import open_store

NARW = "narw-upcalls/narw/NOPP6_EST_20090328_000000.wav"


@pytest.fixture(scope="module")
def narw(data_dir, tmp_path_factory):
    """A real 15-min right-whale recording, a placeholder detector for its front end, and the plain path's scores."""
    path = data_dir / NARW
    model = load_model(placeholder_model(tmp_path_factory.mktemp("m") / "m.pt", frontend=PRESETS["narw"]))
    rec = open_recording(path)
    return path, model, rec, file_scores(model, path, channel=rec.channel, sample_rate=rec.sample_rate)


@pytest.mark.realdata
def test_cpu_scorer_gives_the_plain_path_scores_exactly(narw, tmp_path):
    path, m, rec, plain = narw
    sc = Scorer(m, device="cpu", shared_conv=False)
    assert sc.batch == DEFAULT_BATCH["cpu"] and not sc.torch_frontend
    np.testing.assert_array_equal(sc.file_scores(path, channel=rec.channel, sample_rate=rec.sample_rate), plain)
    shared = Scorer(m, device="cpu")  # the default on the CPU: the local conv shared between windows
    assert shared.shared_conv
    np.testing.assert_allclose(shared.file_scores(path, channel=rec.channel, sample_rate=rec.sample_rate), plain,
                               atol=1e-6, rtol=0)


@pytest.mark.realdata
def test_torch_front_end_scores_match_the_numpy_path(narw, tmp_path):
    path, m, rec, plain = narw
    tfe = Scorer(m, device="cpu", torch_frontend=True, batch=500).file_scores(
        path, channel=rec.channel, sample_rate=rec.sample_rate)
    assert tfe.shape == plain.shape
    assert np.abs(tfe - plain).max() < 1e-4, np.abs(tfe - plain).max()  # the GPU path's front end, on the CPU


@pytest.mark.realdata
def test_bf16_error_against_float32_is_bounded(narw):
    # 48 real windows from across the file: bf16 autocast on an AVX2 CPU is emulated (~25x slower than float32)
    path, m, rec, plain = narw
    w = file_windows(path, m.frontend, channel=rec.channel, sample_rate=rec.sample_rate)[::36][:48]
    z32, z16 = Scorer(m, device="cpu").embed(w), Scorer(m, device="cpu", bf16=True).embed(w)  # (N, D)
    rel = ((z16 - z32).norm(dim=1) / z32.norm(dim=1)).numpy()  # (N,)
    # bf16 keeps 8 bits of mantissa (2^-8 = 3.9e-3); measured on the H200: rel. error 2.3e-3 vs float64
    assert rel.max() < 3e-2 and np.median(rel) < 1e-2, (rel.max(), np.median(rel))
    assert rel.max() > 0  # bf16 really ran
    with torch.inference_mode():
        err = (torch.sigmoid(m.head(z16)) - torch.sigmoid(m.head(z32))).abs().numpy()  # (N,) score error
    assert err.max() < 1e-2 and err.mean() < 2e-3, (err.max(), err.mean())


def test_score_many_batches_across_files_and_keeps_each_files_scores(tmp_path):
    model = load_model(placeholder_model(tmp_path / "m.pt"))
    wavs = [tone_with_gaps(tmp_path / f"{i}.wav", seconds=s, seed=i) for i, s in enumerate((3.0, 0.05, 1.3, 4.0))]
    sc = Scorer(model, device="cpu", batch=7)  # 7: batches straddle files; 0.05 s: a file with no window
    jobs = [ScoreJob(f"k{i}", w, 0, 48000.0) for i, w in enumerate(wavs)]
    for prefetch in (0, 2):
        got = list(sc.score_many(jobs, prefetch=prefetch))
        assert [k for k, _ in got] == ["k0", "k1", "k2", "k3"]
        for (_, s), w in zip(got, wavs):
            ref = file_scores(model, w, channel=0, sample_rate=48000)
            assert s.shape == ref.shape
            np.testing.assert_allclose(s, ref, atol=1e-5)
    assert got[1][1].shape == (0,) and got[0][1].shape[0] > 7


def test_score_many_raises_a_files_error_after_the_files_before_it(tmp_path):
    model = load_model(placeholder_model(tmp_path / "m.pt"))
    good = tone_with_gaps(tmp_path / "good.wav", seconds=2.0)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not audio")
    for prefetch in (0, 2):
        it = Scorer(model, device="cpu").score_many([ScoreJob(0, good, 0, 48000.0), ScoreJob(1, bad, 0, 48000.0)],
                                                    prefetch=prefetch)
        assert next(it)[0] == 0
        with pytest.raises(AudioError, match="bad.wav"):
            next(it)


@pytest.mark.realdata
def test_detect_on_cpu_gives_todays_regions(narw, tmp_path):
    path, m, rec, plain = narw
    thr = float(np.quantile(plain, 0.8))
    rule = RegionRule(threshold=thr, merge_gap=0.5)
    today = detect_file(m, path, rule=rule)  # the plain path, no scorer
    assert len(today.regions) >= 3
    url = f"sqlite:///{tmp_path / 'r.db'}"
    s = detect_many([path], model=m.path, db=url, rule=rule, device="cpu", progress=False, log=lambda _: None)
    got = [r.region for r in open_store(url).regions(run_id=s.run_id)]
    key = [(r.start, r.stop, r.first_window, r.n_windows) for r in today.regions]
    assert [(r.start, r.stop, r.first_window, r.n_windows) for r in got] == key
    np.testing.assert_allclose([r.peak_score for r in got], [r.peak_score for r in today.regions], rtol=1e-6)
    tfe = detect_file(m, path, rule=rule, scorer=Scorer(m, device="cpu", torch_frontend=True))
    assert [(r.start, r.stop) for r in tfe.regions] == [(r.start, r.stop) for r in today.regions]  # GPU path's front end
    assert default_rule(m).threshold == m.threshold


def test_bad_settings_are_clear_errors(tmp_path):
    model = load_model(placeholder_model(tmp_path / "m.pt"))
    with pytest.raises(ConfigError, match="batch must be >= 1"):
        InferConfig(batch=0)
    with pytest.raises(ConfigError, match="device must be"):
        Scorer(model, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            Scorer(model, device="cuda")


def test_score_many_drops_a_file_that_fails_part_way(tmp_path):
    """A file that decodes for a while and then fails is never handed out with the scores it had so far."""
    from test_parallel import corrupt_flac_part_way
    model = load_model(placeholder_model(tmp_path / "m.pt"))
    good = tone_with_gaps(tmp_path / "good.wav", seconds=2.0)
    bad = corrupt_flac_part_way(tmp_path / "bad.flac")
    for prefetch in (0, 2):
        it = Scorer(model, device="cpu", batch=7, block_frames=64).score_many(
            [ScoreJob(0, good, 0, 48000.0), ScoreJob(1, bad, 0, 48000.0), ScoreJob(2, good, 0, 48000.0)],
            prefetch=prefetch)
        key, scores = next(it)
        assert key == 0
        np.testing.assert_allclose(scores, file_scores(model, good, channel=0, sample_rate=48000), atol=1e-5)
        with pytest.raises(AudioError, match="bad.flac.*decoding failed"):
            next(it)
