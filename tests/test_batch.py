"""Batch detection into the database: block boundaries, exactly-once resume after kill -9, corrupt
files, hostile names, and SQLite vs PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import placeholder_model, tone_with_gaps

from sonotype.detection.detect import detect_file
from sonotype.detection.regions import RegionRule
from sonotype.models.checkpoint import load_model
from sonotype.models.embed import file_scores
from sonotype.runner.batch import detect_many
from sonotype.store import open_store


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return placeholder_model(tmp_path_factory.mktemp("m") / "placeholder.pt")


def median_threshold(model_path, wav):
    m = load_model(model_path)
    return float(np.median(file_scores(m, wav, channel=0, sample_rate=48000)))


def test_streamed_blocks_give_the_same_scores_and_regions_as_whole_file(model, tmp_path):
    wav = tone_with_gaps(tmp_path / "long.wav", seconds=20)
    m = load_model(model)
    rule = RegionRule(threshold=median_threshold(model, wav), merge_gap=0.1)
    whole = detect_file(m, wav, rule=rule, block_frames=10 ** 8)
    assert len(whole.regions) > 1
    for block in (4096, 10007, 65536):
        part = detect_file(m, wav, rule=rule, block_frames=block)
        assert np.allclose(part.scores, whole.scores, atol=1e-6), block
        # same spans exactly; scores equal up to float rounding (batches split differently)
        assert [(r.start, r.stop, r.n_windows) for r in part.regions] == \
            [(r.start, r.stop, r.n_windows) for r in whole.regions]
        assert np.allclose([r.mean_score for r in part.regions], [r.mean_score for r in whole.regions], atol=1e-6)


def test_corrupt_file_is_recorded_and_the_batch_goes_on(model, tmp_path):
    data = tmp_path / "data"
    for i in range(3):
        tone_with_gaps(data / f"good{i}.wav", seconds=4, seed=i)
    (data / "corrupt.wav").write_bytes(b"RIFF" + os.urandom(500))
    db = f"sqlite:///{tmp_path / 'r.db'}"
    s = detect_many([data], model=model, db=db, threshold=0.0, progress=False, log=lambda m: None)
    assert s.processed == 3 and [p for p, _ in s.failed] == [str(data / "corrupt.wav")]
    assert "corrupt.wav" in s.report()
    with open_store(db) as st:
        assert [f.path for f in st.failures()] == [str(data / "corrupt.wav")]
        assert len(st.recordings()) == 3
    again = detect_many([data], model=model, db=db, threshold=0.0, progress=False, log=lambda m: None)
    assert again.skipped == 3 and again.processed == 0


def test_hostile_file_names_and_metadata_are_stored_verbatim(model, tmp_path):
    evil = "x'); DROP TABLE regions; --"
    wav = tone_with_gaps(tmp_path / f"{evil}.wav", seconds=4)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    meta = {"encounter": "' OR '1'='1", "site": 'Robert"); DELETE FROM recordings; --', "date": "2019-10-28"}
    s = detect_many([wav], model=model, db=db, threshold=0.0, metadata=meta, progress=False, log=lambda m: None)
    assert s.processed == 1
    with open_store(db) as st:
        (rec,) = st.recordings(encounter="' OR '1'='1")
        assert rec.path == str(wav) and rec.site == meta["site"]
        assert st.recordings(encounter="anything") == []
        assert len(st.regions()) >= 1  # the regions table is still there


def _run_detect(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "sonotype.cli", "detect", *args, "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_killed_run_resumes_with_no_region_lost_or_duplicated(model, tmp_path):
    data = tmp_path / "data"
    for i in range(10):
        tone_with_gaps(data / f"f{i:02d}.wav", seconds=20, seed=i)
    thr = str(median_threshold(model, data / "f00.wav"))
    ref_db = f"sqlite:///{tmp_path / 'ref.db'}"
    db = f"sqlite:///{tmp_path / 'killed.db'}"
    assert _run_detect([str(data), "--model", str(model), "--db", ref_db, "--threshold", thr]).wait(600) == 0
    proc = _run_detect([str(data), "--model", str(model), "--db", db, "--threshold", thr])
    deadline = time.time() + 300
    done = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            with open_store(db) as st:
                done = len(st.processed(status="done"))
        except Exception:
            continue
        if done >= 2:
            break
    assert proc.poll() is None, "detection finished before it could be killed; make the files longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open_store(db) as st:
        assert 2 <= len(st.processed(status="done")) < 10
    assert _run_detect([str(data), "--model", str(model), "--db", db, "--threshold", thr]).wait(600) == 0

    def regions_by_file(url):
        with open_store(url) as st:
            paths = {r.id: r.path for r in st.recordings()}
            assert len(st.processed(status="done")) == 10
            return sorted((paths[g.recording_id], g.region.start, g.region.stop, round(g.region.peak_score, 6))
                          for g in st.regions())

    assert regions_by_file(db) == regions_by_file(ref_db)


def test_sqlite_and_postgresql_store_the_same_regions(model, tmp_path, pg_fresh_url):
    data = tmp_path / "data"
    for i in range(2):
        tone_with_gaps(data / f"g{i}.wav", seconds=6, seed=i)
    thr = median_threshold(model, data / "g0.wav")
    out = []
    for url in (f"sqlite:///{tmp_path / 'a.db'}", pg_fresh_url):
        detect_many([data], model=model, db=url, threshold=thr, progress=False, log=lambda m: None)
        with open_store(url) as st:
            paths = {r.id: r.path for r in st.recordings()}
            out.append([r for _, r in sorted(((paths[g.recording_id], g.region.start), g.region) for g in st.regions())])
    assert out[0] == out[1] and len(out[0]) > 0
