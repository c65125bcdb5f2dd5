"""Detectors on a pretrained embedding backend: train-detector --backend, detect and evaluate with the checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import RMSBackend, birdnet_or_skip

from sonotype import api, cli
from sonotype.audio.io import read_audio, write_audio
from sonotype.detection.backend import (
    backend_grid,
    fit_logistic_head,
    load_backend_detector,
    load_detector,
    train_backend_detector,
)
from sonotype.detection.detector import DetectorConfig
from sonotype.detection.evaluate import evaluate_detector
from sonotype.detection.events import score_events
from sonotype.errors import CheckpointError, ConfigError
from sonotype.models.backends import BackendInfo
from sonotype.models.checkpoint import load_checkpoint, load_model
from sonotype.models.embed import head_scores
from sonotype.runner.batch import detect_many
from sonotype.store import open_store
from sonotype.training.dataset import Event, make_items, read_annotations, span_labels

RATE = 8000


def test_streamed_embeddings_equal_the_whole_file(tmp_path):
    """Backend.iter_embeddings streams the file in bounded pieces that concatenate to embed_span (the chunk
    rule's full chunks, short-file centring and half-hop tail included)."""
    rng = np.random.default_rng(0)
    for n, sr in ((300, 16000), (4000, 8000), (4100, 8000), (16000 * 7 + 123, 16000), (200_000, 44100)):
        p = write_audio(tmp_path / f"a{n}-{sr}.wav", rng.standard_normal(n).astype(np.float32), sample_rate=sr,
                        subtype="FLOAT")
        for b in (RMSBackend(), RMSBackend(speedup=2.0), RMSBackend(window_s=0.1, hop_s=0.3)):
            whole = b.embed_span(p)
            pieces = list(b.iter_embeddings(p, batch=7))
            assert max(len(x) for x in pieces) <= 7
            np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-6)


def test_backend_grid_is_where_the_chunks_fall():
    info = BackendInfo("birdnet", "2.4", 48000.0, window_s=3.0, hop_s=0.375, dim=1024, speedup=16)
    g = backend_grid(info, 2000)  # 48-s windows of the recording every 6 s, in samples at 2 kHz
    assert (g.window_samples, g.stride_samples) == (96000, 12000)
    np.testing.assert_allclose(g.window_times(3), [[0, 48], [6, 54], [12, 60]])
    odd = backend_grid(BackendInfo("x", "1", 8000.0, window_s=0.5, hop_s=1 / 3, dim=3), 44100)
    assert odd.stride_samples == pytest.approx(2667 / 8000 * 44100)  # the chunker's whole samples at 8 kHz


def test_span_labels_follow_the_library_rule():
    """span_labels (the grid rule the scripts used) against a slow per-window reference."""
    events = [Event(10.0, 11.5), Event(19.5, 23.0), Event(30.0, 30.4), Event(31.0, 40.0)]
    n, w, hop = 12, 8.0, 3.0
    got = span_labels(n, window_s=w, hop_s=hop, events=events)
    want = []
    for i in range(n):
        a, b = i * hop, i * hop + w
        lab = 0
        for e in events:
            ov = min(b, e.end) - max(a, e.start)
            if ov >= 0.5 * min(e.end - e.start, w):
                lab = 1
            elif ov > 0 and lab != 1:
                lab = -1
        want.append(lab)
    assert got.tolist() == want and set(want) == {-1, 0, 1}


def test_logistic_head_is_the_regression():
    """The head with the standardisation folded in gives scikit-learn's own probabilities."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 5)) * [1, 10, 0.1, 3, 1] + [0, 5, -2, 1, 100]
    y = (x[:, 0] + 0.2 * x[:, 1] + rng.normal(size=300) > 1).astype(int)
    head = fit_logistic_head(x, y, c=0.5)
    sc = StandardScaler().fit(x)
    ref = LogisticRegression(C=0.5, class_weight="balanced", max_iter=5000).fit(sc.transform(x), y)
    np.testing.assert_allclose(head_scores(head, x.astype(np.float32)), ref.predict_proba(sc.transform(x))[:, 1],
                               atol=2e-4)


def _calls_file(path, *, seconds, calls, seed):
    """Noise with 1.5 kHz tone bursts at the given (start, end) seconds, at 8 kHz."""
    rng = np.random.default_rng(seed)
    x = 0.05 * rng.standard_normal(int(seconds * RATE))
    for a, b in calls:
        t = np.arange(int((b - a) * RATE)) / RATE
        x[int(a * RATE):int(a * RATE) + t.size] += 0.5 * np.sin(2 * np.pi * 1500 * t)
    return write_audio(path, x.astype(np.float32), sample_rate=RATE)


@pytest.fixture
def corpus(tmp_path):
    """Four recordings with calls and two without, an annotation table, and a held-out recording."""
    rows, wavs = ["filename,start,end"], []
    rng = np.random.default_rng(7)
    for i in range(7):
        calls = [] if i in (4, 5) else sorted((s, s + rng.uniform(0.6, 1.2)) for s in rng.choice(np.arange(1, 28, 3),
                                                                                              5, replace=False))
        wavs.append(_calls_file(tmp_path / f"f{i}.wav", seconds=30, calls=calls, seed=i))
        rows += [f"f{i}.wav,{a:.3f},{b:.3f}" for a, b in calls] or [f"f{i}.wav,,"]
    (tmp_path / "ann.csv").write_text("\n".join(rows) + "\n")
    return wavs, tmp_path / "ann.csv"


def test_train_detect_evaluate_on_a_backend(corpus, tmp_path):
    wavs, ann = corpus
    events = read_annotations(ann)
    items = make_items(wavs[:6], annotations=events)
    b = RMSBackend(window_s=0.5, hop_s=0.25)
    ck = train_backend_detector(b, items, out=tmp_path / "det.pt", config=DetectorConfig(head_c=1.0), progress=False,
                                log=lambda s: None)
    # the typed checkpoint round-trips and records the backend; it has no LSTM encoder
    back = load_checkpoint(tmp_path / "det.pt", kind="detector")
    assert back == ck and back.on_backend and back.encoder_config is None and back.frontend is None
    assert back.detector.backend == b.info.to_dict() and back.detector.threshold_level == "event"
    with pytest.raises(CheckpointError, match="rms' embedding backend"):
        load_model(tmp_path / "det.pt")
    with pytest.raises(ConfigError, match="unknown backend 'rms'"):  # rebuilt by name: this package has no 'rms'
        load_detector(tmp_path / "det.pt")
    with pytest.raises(CheckpointError, match=r"trained on embeddings of rms@1/hop0\.25.*rms@1/hop0\.5"):
        load_backend_detector(tmp_path / "det.pt", backend=RMSBackend(hop_s=0.5))
    # streamed scores = the head on the whole file's embeddings
    det = load_backend_detector(tmp_path / "det.pt", backend=b)
    np.testing.assert_allclose(det.file_scores(wavs[6], batch=5), head_scores(det.head, b.embed_span(wavs[6])),
                               atol=1e-6)
    # detect the held-out recording into a store: regions on the backend's grid, the run records the backend
    url = f"sqlite:///{tmp_path / 'r.db'}"
    s = detect_many([wavs[6]], model=tmp_path / "det.pt", db=url, backend=b, progress=False, log=lambda s: None)
    with open_store(url, read_only=True) as store:
        run = store.run(s.run_id)
        regions = [r.region for r in store.regions(run_id=s.run_id)]
    assert run.settings["backend"]["key"] == "rms@1/hop0.25" and run.settings["backend"]["version"] == "1"
    assert "frontend" not in run.settings and regions
    step = RATE * 0.25
    assert all(r.start == r.first_window * step and r.sample_rate == RATE for r in regions)
    found = score_events({"f6": [(r.start_s, r.stop_s) for r in regions]}, {"f6": events["f6.wav"]}, {"f6": 30.0})
    assert found.recall >= 0.8 and found.precision >= 0.8, found
    # window-level evaluation with the same labelling rule
    res = evaluate_detector(det, make_items([wavs[6]], annotations=events), progress=False)
    assert res["n_windows"] > 100 and res["confusion"]["f1"] > 0.7 and res["files_seen_in_training"] == []
    # LSTM-only options are refused by name
    with pytest.raises(ConfigError, match="epochs=3, hidden=8"):
        train_backend_detector(b, items, out=tmp_path / "x.pt", config=DetectorConfig(epochs=3, hidden=8),
                               progress=False, log=lambda s: None)


def test_bad_backend_options_name_the_value(tmp_path):
    wav = _calls_file(tmp_path / "a.wav", seconds=2, calls=[], seed=0)
    for kw, match in ((dict(backend="vggish"), "'vggish'"), (dict(backend="birdnet", speedup=0), "got 0"),
                      (dict(backend="birdnet", speedup=-2.0), "got -2.0"),
                      (dict(encoder="e.pt", speedup=4.0), r"speedup=4\.0: for detectors on a pretrained backend"),
                      (dict(backend="birdnet", epochs=3), "epochs=3: not used by a detector on the birdnet backend"),
                      (dict(), "needs --encoder")):
        with pytest.raises(ConfigError, match=match):
            api.train_detector([wav], out=str(tmp_path / "d.pt"), log=lambda s: None, **kw)
    with pytest.raises(SystemExit) as e:
        cli.parse(["train-detector", str(wav), "--backend", "vggish", "--out", "d.pt"])
    assert e.value.code == 2


def test_birdnet_detector_on_real_right_whale_audio(data_dir, tmp_path):
    """train-detector --backend birdnet --speedup 16 on 5-min clips of real recordings (an upcall-dense stretch
    and a background one), through the command line; the checkpoint round-trips; detect stores regions whose
    run records BirdNET's key and version."""
    birdnet_or_skip()
    d = data_dir / "narw-upcalls"
    clips, rows = [], ["filename,start,end"]
    for name, rel, a in (("narw.wav", "narw/NOPP6_EST_20090328_000000.wav", 540.0),
                         ("bg.wav", "background/GSC_2000-05-19_00-00-00.wav", 0.0)):
        x, sr = read_audio(d / rel, start=int(a * 2000), stop=int((a + 300) * 2000))
        assert sr == 2000
        clips.append(write_audio(tmp_path / name, x, sample_rate=2000, subtype="FLOAT"))
        evs = read_annotations(d / "annotations_train.csv").get(rel.split("/")[1], [])
        rows += [f"{name},{e.start - a:.3f},{e.end - a:.3f}" for e in evs if a <= e.start and e.end <= a + 300]
        rows += [] if evs else [f"{name},,"]
    (tmp_path / "ann.csv").write_text("\n".join(rows) + "\n")
    assert len(rows) > 10  # upcalls in the clip
    det = tmp_path / "det.pt"
    assert cli.main(["train-detector", *map(str, clips), "--backend", "birdnet", "--speedup", "16", "--hop", "1.5",
                     "--annotations", str(tmp_path / "ann.csv"), "--out", str(det), "--quiet"]) == 0
    ck = load_checkpoint(det, kind="detector")
    info = ck.detector.backend
    assert (info["name"], info["version"], info["speedup"], info["hop_s"], info["dim"]) == ("birdnet", "2.4", 16.0,
                                                                                           1.5, 1024)
    assert ck == load_checkpoint(ck.save(tmp_path / "again.pt")) and 0 < ck.detector.threshold < 1
    url = f"sqlite:///{tmp_path / 'r.db'}"
    assert cli.main(["detect", str(clips[0]), "--model", str(det), "--db", url, "--quiet"]) == 0
    with open_store(url, read_only=True) as store:
        (run,) = store.runs()
        regions = [r.region for r in store.regions(run_id=run.id)]
    assert run.settings["backend"]["key"] == "birdnet@2.4/hop1.5/x16" and run.settings["backend"]["version"] == "2.4"
    assert regions and all(r.sample_rate == 2000 and r.start % 48000 == 0 for r in regions)  # 24-s hops at 2 kHz
    # --workers stays with the LSTM path: a clear error (exit 2), not a silent fallback
    assert cli.main(["detect", str(clips[0]), "--model", str(det), "--db", url, "--workers", "2", "--quiet"]) == 2
