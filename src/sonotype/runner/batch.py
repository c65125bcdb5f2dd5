"""Detection over many recordings into the result database: exactly once, resumable, failure-tolerant.

For each file: hash its bytes, register it, skip it if this run (same model and settings) already
finished it, else detect and commit its regions in one transaction. A file that cannot be read
is recorded as failed with its error and the batch goes on. Killing the process at any point
loses at most the file in progress; running the same command again completes the batch.
"""

from __future__ import annotations

import itertools
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from tqdm.auto import tqdm

from ..audio.io import DEFAULT_BLOCK, Recording, file_hash, open_recording
from ..detection.backend import BackendDetector
from ..detection.detect import default_rule, detect_file
from ..detection.fusion import FusedDetector, load_detector
from ..detection.regions import Region, RegionRule, find_regions
from ..errors import AudioError, ConfigError, DataError, SonotypeError
from ..features.frontend import framing_for
from ..models.backends import Backend
from ..models.checkpoint import LoadedModel, model_version
from ..models.infer import ScoreJob, Scorer
from ..store import Store, open_store
from ..tables import read_table
from ..training.dataset import canonical_path, find_audio


@dataclass
class BatchSummary:
    run_id: int
    files: int = 0
    processed: int = 0
    skipped: int = 0
    regions: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    failed: list[tuple[str, str]] = field(default_factory=list)
    unfinished: list[tuple[str, str]] = field(default_factory=list)  # (path, why): a worker died; run again
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (path, problem): odd input that was used or passed over

    @property
    def realtime_factor(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else 0.0

    def report(self) -> str:
        lines = [f"run {self.run_id}: {self.files} file(s): {self.processed} processed, {self.skipped} already done, "
                 f"{len(self.failed)} failed"
                 + (f", {len(self.unfinished)} not finished (run again)" if self.unfinished else "")
                 + f"; {self.regions} region(s); {self.audio_seconds / 3600:.2f} h of audio "
                 f"in {self.wall_seconds:.1f} s ({self.realtime_factor:.0f}x real time)"]
        for path, err in self.failed:
            lines.append(f"  FAILED {path}: {err}")
        for path, why in self.unfinished:
            lines.append(f"  NOT FINISHED {path}: {why}")
        for path, problem in self.warnings:
            lines.append(f"  WARNING {path}: {problem}")
        return "\n".join(lines)


#: a header rate above this is taken for a corrupt header (the fastest ultrasound recorders run near 1 MHz)
MAX_SAMPLE_RATE = 4_000_000


def check_sample_rate(path, rate: float) -> None:
    """Refuse a recording whose header claims an impossible sample rate: every time in it would be wrong."""
    if not 0 < rate <= MAX_SAMPLE_RATE:
        raise AudioError(path, f"header claims a sample rate of {rate:,.0f} Hz; expected at most "
                               f"{MAX_SAMPLE_RATE:,} Hz (a corrupt header?): repair or re-export the file")


def wav_truncation(path) -> str | None:
    """A warning when a RIFF/WAVE file holds fewer audio bytes than its header's data chunk declares
    (a copy or recording that was cut off); None when it is whole or not a WAV file."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = Path(path).stat().st_size
            pos = 12
            while pos + 8 <= size:
                f.seek(pos)
                cid, n = struct.unpack("<4sI", f.read(8))
                if cid == b"data":
                    have = size - pos - 8
                    if n != 0xFFFFFFFF and n > have:
                        return (f"truncated: the header declares {n:,} bytes of audio, the file holds {have:,} "
                                f"({have / n:.0%}); only what is there was analysed")
                    return None
                pos += 8 + n + (n & 1)
    except OSError:
        return None
    return None


def read_metadata_table(path: str | Path) -> dict[str, dict]:
    """Table (read by the rules of :mod:`sonotype.tables`) with a ``filename`` column (base name or path)
    and any metadata columns (encounter, site, date, ...) -> {file base name: {column key: value}}; the
    keys are the columns' :func:`~sonotype.tables.column_key` (``Site`` -> ``site``), empty cells left out."""
    table = read_table(path, what="metadata table", required=("filename",), optional=("encounter", "site", "date"))
    return {row.file_name(): {k: v for k, v in row.cells.items() if k != "filename" and v} for row in table.rows}


def register(store: Store, model: LoadedModel | BackendDetector | FusedDetector, rule: RegionRule, *, channel,
             batch: int) -> int:
    """Register the model and the run settings; returns the run id (the same for the same model + settings).
    A detector on a pretrained backend records the backend (``BackendInfo.to_dict()``: name, version, key,
    hop, speed-up) in the model's config and in the run's settings, where an LSTM run records its front end."""
    ck = model.checkpoint
    det = ck.detector
    chan = "auto" if channel in (None, "auto") else int(channel)
    if isinstance(model, FusedDetector):
        fusion = model.describe()
        model_id = store.register_model(
            version=model_version(model), path=str(Path(model.path).resolve()), kind=ck.kind,
            config={"fusion": fusion}, training_data={"detector_train_files": list(ck.data.files),
                                                      "threshold_files": list(ck.fusion.threshold_files)},
            metrics={"validation_events": ck.fusion.validation_events,
                     "threshold_source": ck.fusion.threshold_source})
        return store.get_or_create_run(model_id=model_id, settings={"fusion": fusion, "rule": rule.to_dict(),
                                                                    "channel": chan})
    if isinstance(model, BackendDetector):
        info = model.info.to_dict()
        model_id = store.register_model(
            version=model_version(model), path=str(Path(model.path).resolve()), kind=ck.kind,
            config={"backend": info, "detector": dict(det.config)},
            training_data={"detector_train_files": list(det.train_files), "detector_val_files": list(det.val_files),
                           "detector_threshold_files": list(det.threshold_files)},
            metrics={"validation": det.validation})
        return store.get_or_create_run(model_id=model_id, settings={"backend": info, "rule": rule.to_dict(),
                                                                    "channel": chan})
    model_id = store.register_model(
        version=model_version(model), path=str(Path(model.path).resolve()), kind=ck.kind,
        config={"encoder": ck.encoder_config.to_dict(), "frontend": ck.frontend.to_dict(),
                "detector": None if det is None else dict(det.config)},
        training_data={"encoder": ck.data.to_dict(), "detector_train_files": None if det is None else list(det.train_files),
                       "detector_val_files": None if det is None else list(det.val_files)},
        metrics={"validation": None if det is None else det.validation})
    settings = {"frontend": model.frontend.to_dict(), "rule": rule.to_dict(), "channel": chan}
    return store.get_or_create_run(model_id=model_id, settings=settings)


@dataclass(frozen=True)
class DetectParams:
    """How each file is detected: the same for every file of a run, sent once to each worker."""

    rule: RegionRule
    batch: int | None = None  # windows per encoder batch (None: the device's default)
    block_frames: int = DEFAULT_BLOCK
    device: str = "auto"
    bf16: bool = False


@dataclass(frozen=True)
class FileJob:
    """A file registered in the store and not yet done in this run: what a worker needs to detect it."""

    path: str  # as found (what is opened)
    recording_id: int
    recording: Recording  # header and the channel used, resolved once by the writer


@dataclass(frozen=True)
class FileOutcome:
    """A worker's answer for one job: its regions, or ``error`` (the file is unusable: recorded as failed),
    or ``lost`` (the worker died: nothing is recorded, so the next run detects the file again)."""

    job: FileJob
    regions: tuple[Region, ...] = ()
    n_windows: int = 0
    seconds: float = 0.0
    error: str | None = None
    lost: str | None = None


#: runs the jobs (in this process, worker processes or a cluster) and yields one outcome per job, in any
#: order; it pulls jobs lazily, so the store is read and written only by the caller's thread
Executor = Callable[[LoadedModel, DetectParams, Iterator[FileJob]], Iterator[FileOutcome]]


_SCORERS: dict[tuple[int, DetectParams], Scorer] = {}


def scorer_for(model: LoadedModel, params: DetectParams) -> Scorer:
    """This process's :class:`~sonotype.models.infer.Scorer` for ``model`` and ``params`` (made once, then reused)."""
    key = (id(model), params)
    if key not in _SCORERS:
        _SCORERS.clear()  # one run at a time per process
        _SCORERS[key] = Scorer(model, device=params.device, bf16=params.bf16, batch=params.batch,
                               block_frames=params.block_frames)
    return _SCORERS[key]


def run_job(model: LoadedModel, params: DetectParams, job: FileJob) -> FileOutcome:
    """Detect one job's file (wherever this runs); an unreadable file is an outcome with ``error``."""
    try:
        if isinstance(model, (BackendDetector, FusedDetector)):
            det = detect_file(model, job.path, rule=params.rule, recording=job.recording, batch=params.batch or 256)
        else:
            det = detect_file(model, job.path, rule=params.rule, recording=job.recording,
                              scorer=scorer_for(model, params))
    except (SonotypeError, OSError) as e:
        return FileOutcome(job, error=str(e))
    return FileOutcome(job, det.regions, det.n_windows, det.seconds)


def run_in_process(model: LoadedModel, params: DetectParams, jobs: Iterator[FileJob]) -> Iterator[FileOutcome]:
    """The default executor: one file after the other in this process."""
    for job in jobs:
        yield run_job(model, params, job)


def run_batched(model: LoadedModel, params: DetectParams, jobs: Iterator[FileJob]) -> Iterator[FileOutcome]:
    """The executor for a GPU: the windows of consecutive files share encoder batches
    (:meth:`~sonotype.models.infer.Scorer.score_many`, decoding ahead in a thread), so the GPU gets full
    batches however short the files. Outcomes come in file order; a file that cannot be read is an outcome
    with ``error`` and the files after it go on. ``seconds`` is the wall time from when a file was taken."""
    scorer = scorer_for(model, params)
    source, retry, keys = iter(jobs), [], itertools.count()
    while True:
        taken: dict[int, tuple[FileJob, float]] = {}  # handed to the scorer, not yet answered

        def feed(first: list[FileJob]) -> Iterator[ScoreJob]:
            for job in itertools.chain(first, source):
                k = next(keys)
                taken[k] = (job, time.perf_counter())
                yield ScoreJob(k, job.path, job.recording.channel, job.recording.sample_rate)

        try:
            for k, scores in scorer.score_many(feed(retry)):
                job, t0 = taken.pop(k)
                framing = framing_for(model.frontend, job.recording.sample_rate, job.path)
                regions = find_regions(scores, framing, rule=params.rule, n_samples=job.recording.frames)
                yield FileOutcome(job, tuple(regions), int(scores.shape[0]), time.perf_counter() - t0)
            return
        except (SonotypeError, OSError) as e:
            if not taken:
                raise
            broken = min(taken)  # every file before it was answered: score_many raises in file order
            yield FileOutcome(taken.pop(broken)[0], error=str(e))
            retry = [job for _, (job, _) in sorted(taken.items())]  # taken ahead by the decoding thread


def detect_many(paths: Sequence[str | Path], *, model: str | Path, db: str | Store, rule: RegionRule | None = None,
                threshold: float | None = None, merge_gap: float = 0.1, min_duration: float = 0.0,
                channel=None, metadata: dict | None = None, metadata_table: str | Path | None = None,
                batch: int | None = None, block_frames: int = DEFAULT_BLOCK, progress: bool = True,
                log: Callable[[str], None] = print, device: str = "auto", bf16: bool = False,
                executor: Executor | None = None, backend: Backend | None = None) -> BatchSummary:
    """Detect regions in every file under ``paths`` and store them in ``db`` (URL or open Store).

    This process is the one writer: it registers each file (content hash), skips those done, hands the
    rest to ``executor`` (default :func:`run_in_process`; see :mod:`sonotype.runner.parallel` and
    :mod:`sonotype.runner.ray_cluster`) and commits each outcome in one transaction as it arrives.
    ``device``/``bf16``/``batch``: how windows are scored (:class:`~sonotype.models.infer.Scorer`; batch None: per device).
    A detector on a pretrained backend (``sonotype train-detector --backend birdnet``) gets its backend rebuilt
    from the checkpoint's record (``backend``: one already made instead) and runs in this process on the CPU.
    """
    m = load_detector(model, backend=backend)
    rule = rule or default_rule(m, threshold=threshold, merge_gap=merge_gap, min_duration=min_duration)
    params = DetectParams(rule=rule, batch=batch, block_frames=block_frames, device=device, bf16=bf16)
    if isinstance(m, (BackendDetector, FusedDetector)):  # scored in this process, on the CPU
        what = "a fused detector" if isinstance(m, FusedDetector) else f"a detector on the {m.info.name} backend"
        if executor is not None:
            raise ConfigError(f"{model}: {what} runs in this process only; "
                              "--workers and --ray are for LSTM-V3 detectors: leave --workers 1 and no --ray")
        if device == "cuda" or bf16:
            raise ConfigError(f"{model}: {what} runs on the CPU; "
                              f"got device={device!r}, bf16={bf16}: leave --device auto and no --bf16")
    else:
        scorer_for(m, params)  # device and batch checked here: a missing GPU is one clear error, not one per file
    passed_over: list[tuple[str, str]] = []
    files = find_audio(paths, warn=lambda p, problem: passed_over.append((str(p), problem)))
    if not files:  # before the database is opened: an empty run creates nothing
        raise DataError(f"no audio files in {', '.join(str(p) for p in paths)}"
                        + (f" ({'; '.join(f'{p}: {w}' for p, w in passed_over[:5])})" if passed_over else "")
                        + "; expected WAV/FLAC/... files or folders holding them")
    store = open_store(db) if isinstance(db, str) else db
    per_file = read_metadata_table(metadata_table) if metadata_table else {}
    summary = BatchSummary(run_id=register(store, m, rule, channel=channel, batch=batch), files=len(files),
                           warnings=passed_over)
    t0 = time.perf_counter()
    bar = tqdm(total=len(files), desc="detect", unit="file", disable=not progress)

    def fail(path: str, f, error: str, rec_id: int | None) -> None:
        store.record_failure(run_id=summary.run_id, path=path, error=error, recording_id=rec_id)
        summary.failed.append((str(f), error))
        log(f"failed: {error}")

    def jobs() -> Iterator[FileJob]:
        """Register each file; yield those this run has not finished."""
        for f in files:
            path = canonical_path(f)  # one file, one spelling: kill/x.wav, /abs/kill/x.wav and ./x.wav agree
            rec_id = None
            try:
                rec = open_recording(f, channel=channel)
                check_sample_rate(f, rec.sample_rate)
                cut = wav_truncation(f)
                if cut:
                    summary.warnings.append((str(f), cut))
                digest = file_hash(f)
                meta = {**(metadata or {}), **per_file.get(Path(f).name, {})}
                # the recording is its bytes: the same content under another path is the same recording
                rec_id = store.add_recording(path=path, content_hash=digest, sample_rate=rec.sample_rate,
                                             channels=rec.channels, frames=rec.frames, channel_used=rec.channel,
                                             format=rec.format, metadata=meta)
                done = store.is_processed(rec_id, summary.run_id)
            except (SonotypeError, OSError) as e:
                fail(path, f, str(e), rec_id)
                bar.update(1)
                continue
            if done:
                summary.skipped += 1
                bar.update(1)
                continue
            yield FileJob(str(f), rec_id, rec)

    if executor is None:  # on a GPU, windows of several files share each batch
        gpu = not isinstance(m, (BackendDetector, FusedDetector)) and scorer_for(m, params).device.type != "cpu"
        executor = run_batched if gpu else run_in_process
    for out in executor(m, params, jobs()):
        f, rec = out.job.path, out.job.recording
        bar.update(1)
        if out.lost is not None:
            summary.unfinished.append((f, out.lost))
            log(f"not finished (run again to detect it): {f}: {out.lost}")
            continue
        if out.error is not None:
            fail(canonical_path(f), f, out.error, out.job.recording_id)
            continue
        try:
            store.save_result(out.job.recording_id, summary.run_id, out.regions, n_windows=out.n_windows,
                              seconds=out.seconds)
        except (SonotypeError, OSError) as e:
            fail(canonical_path(f), f, str(e), out.job.recording_id)
            continue
        summary.processed += 1
        summary.regions += len(out.regions)
        summary.audio_seconds += rec.duration_s
        summary.wall_seconds = time.perf_counter() - t0
        bar.set_postfix(regions=summary.regions, rt=f"{summary.realtime_factor:.0f}x")
    bar.close()
    summary.wall_seconds = time.perf_counter() - t0
    log(summary.report())
    return summary
