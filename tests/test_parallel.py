"""Parallel detection: ``--workers N`` (a process pool) and ``--ray`` (Ray tasks) store exactly the regions
and failures of the single process; a worker killed mid-file loses nothing (Ray retries it, or the next run
detects it), a killed writer takes its workers with it, and a re-run completes every file exactly once.
Real WAV files, real SQLite/PostgreSQL, real processes and a real local Ray instance."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import placeholder_model, tone_with_gaps

from sonotype.api import detect
from sonotype.errors import ConfigError
from sonotype.models.checkpoint import load_model
from sonotype.models.embed import file_scores
from sonotype.runner.batch import detect_many, run_batched
from sonotype.runner.parallel import executor_for, worker_threads
from sonotype.store import open_store

FILES = 8
quiet = dict(progress=False, log=lambda s: None)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """8 recordings of 40 s with calls, one corrupt file, and the single-process reference database."""
    d = tmp_path_factory.mktemp("parallel")
    model = placeholder_model(d / "placeholder.pt")
    data = d / "data"
    for i in range(FILES):
        tone_with_gaps(data / f"f{i}.wav", seconds=40, seed=i,
                       calls=tuple((a + 0.3 * i, a + 0.3 * i + 1.0 + 0.1 * (a % 3)) for a in range(1, 38, 4)))
    (data / "corrupt.wav").write_bytes(b"RIFF" + bytes(range(256)) * 2)
    thr = float(np.median(file_scores(load_model(model), data / "f0.wav", channel=0, sample_rate=48000)))
    ref = f"sqlite:///{d / 'ref.db'}"
    s = detect_many([data], model=model, db=ref, threshold=thr, **quiet)
    assert s.processed == FILES and len(s.failed) == 1 and s.regions > 2 * FILES
    return SimpleNamespace(dir=d, model=model, data=data, thr=thr, ref=ref)


def stored(url, run_id: int | None = None) -> tuple[list, list, int]:
    """(every region as (file name, start, stop, n_windows, mean, peak), failed file names, files done) of
    a run (default: all)."""
    with open_store(url) as st:
        names = {r.id: Path(r.path).name for r in st.recordings()}
        regions = sorted((names[g.recording_id], g.region.start, g.region.stop, g.region.n_windows,
                          round(g.region.mean_score, 5), round(g.region.peak_score, 5))
                         for g in st.regions(run_id=run_id))
        return (regions, sorted(Path(f.path).name for f in st.failures(run_id)),
                len(st.processed(run_id=run_id, status="done")))


def test_worker_threads_never_oversubscribe_the_cores():
    for cores in (1, 2, 3, 16):
        for workers in (1, 2, 3, 5, 32):
            t = worker_threads(workers, cores)
            assert t >= 1 and (workers * t <= cores or t == 1)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_worker_counts_are_refused_with_the_value(bad):
    with pytest.raises(ConfigError, match="workers must be an int >= 1"):
        executor_for(workers=bad)


def test_workers_and_ray_together_are_refused():
    with pytest.raises(ConfigError, match="not both"):
        executor_for(workers=2, ray="auto")


def test_workers_store_what_one_process_stores_exactly_once(corpus, tmp_path):
    url = f"sqlite:///{tmp_path / 'w2.db'}"
    s = detect([corpus.data], model=corpus.model, db=url, threshold=corpus.thr, workers=2, **quiet)
    assert (s.processed, len(s.failed), s.unfinished) == (FILES, 1, [])
    assert stored(url) == stored(corpus.ref)
    again = detect([corpus.data], model=corpus.model, db=url, threshold=corpus.thr, workers=2, **quiet)
    assert (again.processed, again.skipped) == (0, FILES)
    assert stored(url) == stored(corpus.ref)


def corrupt_flac_part_way(path: Path, *, seconds: float = 6.0) -> Path:
    """A FLAC whose header and first seconds decode, then a stretch of zeroed bytes: it opens and hashes like a
    good file and fails only while it is being decoded (as a damaged recorder card does)."""
    import soundfile as sf
    x = (np.random.default_rng(0).standard_normal(int(48000 * seconds)) * 0.1).astype(np.float32)
    sf.write(path, x, 48000)
    b = bytearray(path.read_bytes())
    cut = int(len(b) * 0.8)
    b[cut:cut + 5000] = bytes(5000)
    path.write_bytes(bytes(b))
    return path


def close_to(a: list, b: list) -> bool:
    """The same regions (file, samples, windows) with scores within float32 rounding of each other."""
    return len(a) == len(b) and all(x[:4] == y[:4] and np.allclose(x[4:], y[4:], atol=1e-4) for x, y in zip(a, b))


def test_batched_executor_stores_what_one_process_stores(corpus, tmp_path):
    """The GPU executor (windows of consecutive files in shared batches), run here on the CPU with batches
    that straddle files: the same regions as file-by-file detection."""
    url = f"sqlite:///{tmp_path / 'b.db'}"
    s = detect_many([corpus.data], model=corpus.model, db=url, threshold=corpus.thr, executor=run_batched,
                    batch=7, **quiet)
    assert (s.processed, len(s.failed), s.unfinished) == (FILES, 1, [])
    got, ref = stored(url), stored(corpus.ref)
    assert close_to(got[0], ref[0]) and got[1:] == ref[1:]


def test_batched_executor_reports_a_file_that_fails_part_way_and_goes_on(corpus, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in (0, 1, 2):
        (data / f"f{i}.wav").symlink_to(corpus.data / f"f{i}.wav")
    corrupt_flac_part_way(data / "f1b.flac")  # between f1 and f2 in file order
    url = f"sqlite:///{tmp_path / 'b.db'}"
    s = detect_many([data], model=corpus.model, db=url, threshold=corpus.thr, executor=run_batched, batch=7,
                    block_frames=64, **quiet)
    assert s.processed == 3 and [Path(f).name for f, _ in s.failed] == ["f1b.flac"]
    assert "f1b.flac" in s.failed[0][1] and "decoding failed" in s.failed[0][1]
    got = stored(url)
    ref = [r for r in stored(corpus.ref)[0] if r[0] in ("f0.wav", "f1.wav", "f2.wav")]
    assert close_to(got[0], ref) and got[1] == ["f1b.flac"]


def _cli(corpus, db, *extra):
    return subprocess.Popen([sys.executable, "-m", "sonotype.cli", "detect", str(corpus.data), "--model",
                             str(corpus.model), "--db", db, "--threshold", str(corpus.thr), "--quiet", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _pool_workers(pid: int) -> list[int]:
    """The process-pool workers of writer ``pid``: its spawned children, or the children of its fork server."""
    out = []
    for child in _children(pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmd:
            out.append(child)
        elif b"forkserver" in cmd:
            out += _children(child)
    return out


def _wait_for_done(proc, db, n: int, *, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
        try:
            with open_store(db) as st:
                if len(st.processed(status="done")) >= n:
                    return
        except Exception:
            continue
    raise AssertionError(f"detection ended or stalled before {n} file(s) were done: make the files longer "
                         f"({proc.poll()}: {proc.stderr.read() if proc.poll() is not None else ''})")


def _two_workers_running(corpus, db):
    """`detect --workers 2` started, once a file is done: (the writer process, its two worker pids)."""
    proc = _cli(corpus, db, "--workers", "2")
    _wait_for_done(proc, db, 1)
    workers = _pool_workers(proc.pid)
    assert len(workers) == 2 and proc.poll() is None
    return proc, workers


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find the worker processes")
def test_a_killed_worker_loses_nothing_and_the_rerun_completes_exactly_once(corpus, tmp_path):
    db = f"sqlite:///{tmp_path / 'killed_worker.db'}"
    proc, workers = _two_workers_running(corpus, db)
    os.kill(workers[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err  # the files in flight were not finished: exit status 1, and it says so
    assert "not finished (run again" in out
    regions, failed, done = stored(db)
    assert 1 <= done < FILES and failed == ["corrupt.wav"]
    rerun = _cli(corpus, db, "--workers", "2")
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 1 and "not finished" not in out  # 1: the corrupt file still fails, as in one process
    assert stored(db) == stored(corpus.ref)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find the worker processes")
def test_a_killed_writer_takes_its_workers_with_it_and_the_rerun_completes(corpus, tmp_path):
    db = f"sqlite:///{tmp_path / 'killed_writer.db'}"
    proc, workers = _two_workers_running(corpus, db)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.2)
    alive = [w for w in workers if Path(f"/proc/{w}").exists()]
    for w in alive:  # do not leave them behind even when the test fails
        os.kill(w, signal.SIGKILL)
    assert alive == [], "orphaned workers kept running after their writer was killed"
    assert 1 <= stored(db)[2] < FILES
    assert _cli(corpus, db, "--workers", "2").wait(600) == 1  # the corrupt file fails, as in one process
    assert stored(db) == stored(corpus.ref)


# ------------------------------------------------------------------------------------------------ Ray


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance on 2 CPUs for this module's tests (skipped without the ray extra, failed when
    SONOTYPE_REQUIRE_RAY=1)."""
    if importlib.util.find_spec("ray") is None:
        msg = "the ray extra is not installed (pip install 'sonotype[ray]'); the Ray tests need it"
        if os.environ.get("SONOTYPE_REQUIRE_RAY") == "1":
            pytest.fail(msg + " (SONOTYPE_REQUIRE_RAY=1 makes this an error)")
        pytest.skip(msg)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_ray_stores_what_one_process_stores_exactly_once(corpus, local_ray, store, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'ray.db'}" if store == "sqlite" else request.getfixturevalue("pg_fresh_url")
    s = detect([corpus.data], model=corpus.model, db=url, threshold=corpus.thr, ray="auto", **quiet)
    assert (s.processed, len(s.failed), s.unfinished) == (FILES, 1, [])
    # (the PostgreSQL database is the session's: other tests' runs may be in it)
    assert stored(url, s.run_id) == stored(corpus.ref)
    again = detect([corpus.data], model=corpus.model, db=url, threshold=corpus.thr, ray="auto", **quiet)
    assert (again.run_id, again.processed, again.skipped) == (s.run_id, 0, FILES)
    assert stored(url, s.run_id) == stored(corpus.ref)


class RayWorkerKiller(threading.Thread):
    """Kills, once, a Ray worker process of this test while it is running a detection task."""

    def __init__(self):
        super().__init__(daemon=True)
        self.killed: int | None = None
        self.stop = threading.Event()

    def run(self):
        me = os.getpid()
        while not self.stop.is_set() and self.killed is None:
            for p in Path("/proc").iterdir():
                if p.name.isdigit() and self._is_task(p) and self._descends(int(p.name), me):
                    os.kill(int(p.name), signal.SIGKILL)
                    self.killed = int(p.name)
                    return
            time.sleep(0.05)

    @staticmethod
    def _is_task(p: Path) -> bool:
        try:
            return (p / "cmdline").read_bytes().startswith(b"ray::_detect_task")
        except OSError:
            return False

    @staticmethod
    def _descends(pid: int, ancestor: int) -> bool:
        while pid > 1:
            try:
                pid = int((Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1]).split()[1])
            except (OSError, ValueError, IndexError):
                return False
            if pid == ancestor:
                return True
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux /proc to find Ray's workers")
@pytest.mark.parametrize("retries", [3, 0])
def test_ray_worker_killed_mid_file_loses_nothing(corpus, local_ray, retries, tmp_path):
    from sonotype.runner.ray_cluster import ray_executor

    url = f"sqlite:///{tmp_path / 'ray_killed.db'}"
    killer = RayWorkerKiller()
    killer.start()
    try:
        s = detect_many([corpus.data], model=corpus.model, db=url, threshold=corpus.thr,
                        executor=ray_executor("auto", retries=retries), **quiet)
    finally:
        killer.stop.set()
        killer.join()
    assert killer.killed is not None, "no Ray worker was seen running a detection task"
    if retries:  # Ray ran the killed task again: the one run stored everything
        assert (s.processed, s.unfinished) == (FILES, [])
    else:  # the killed task's file is reported as not finished and nothing of it is stored ...
        assert len(s.unfinished) == 1 and s.processed == FILES - 1
        assert stored(url)[2] == FILES - 1
        # ... and the re-run detects just that file
        again = detect([corpus.data], model=corpus.model, db=url, threshold=corpus.thr, ray="auto", **quiet)
        assert (again.processed, again.skipped, again.unfinished) == (1, FILES - 1, [])
    assert stored(url) == stored(corpus.ref)


def test_ray_actors_store_what_one_process_stores(corpus, local_ray, tmp_path):
    """Actors that keep the model loaded (GPU actors on a cluster; here 0 GPUs, on the CPU), 3 files a call."""
    from sonotype.runner.ray_cluster import ray_executor

    url = f"sqlite:///{tmp_path / 'actors.db'}"
    s = detect_many([corpus.data], model=corpus.model, db=url, threshold=corpus.thr,
                    executor=ray_executor("auto", gpus_per_actor=0, files_per_call=3), **quiet)
    assert (s.processed, len(s.failed), s.unfinished) == (FILES, 1, [])
    assert stored(url) == stored(corpus.ref)


class RayActorKiller(RayWorkerKiller):
    @staticmethod
    def _is_task(p: Path) -> bool:  # an actor process while it runs a call
        try:
            return (p / "cmdline").read_bytes().startswith(b"ray::_Detector.detect")
        except OSError:
            return False


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux /proc to find Ray's workers")
def test_a_killed_ray_actor_is_restarted_and_its_files_detected(corpus, local_ray, tmp_path):
    from sonotype.runner.ray_cluster import ray_executor

    url = f"sqlite:///{tmp_path / 'actor_killed.db'}"
    killer = RayActorKiller()
    killer.start()
    try:
        s = detect_many([corpus.data], model=corpus.model, db=url, threshold=corpus.thr,
                        executor=ray_executor("auto", gpus_per_actor=0, files_per_call=2, retries=2), **quiet)
    finally:
        killer.stop.set()
        killer.join()
    assert killer.killed is not None, "no Ray actor was seen running a detection call"
    assert (s.processed, s.unfinished) == (FILES, [])
    assert stored(url) == stored(corpus.ref)


@pytest.mark.parametrize("bad", [-1, True, "1"])
def test_bad_gpu_shares_are_refused_with_the_value(bad):
    from sonotype.runner.ray_cluster import ray_executor
    with pytest.raises(ConfigError, match="gpus per actor must be a number"):
        ray_executor("auto", gpus_per_actor=bad)
    with pytest.raises(ConfigError, match="give --ray"):
        executor_for(ray_gpus=1.0)
