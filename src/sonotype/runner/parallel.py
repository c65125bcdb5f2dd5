"""Detection in worker processes on one machine: ``sonotype detect --workers N``.

N processes (a standard :class:`~concurrent.futures.ProcessPoolExecutor`; workers are forked from a
``forkserver`` that has imported sonotype and torch once, or started with ``spawn`` where there is none) each
decode a file, run the front end, the encoder and the detector head, and send back only its regions;
this process stays the one writer into the store (:func:`sonotype.runner.batch.detect_many`). At most
``2 N`` files are in flight at once. Each worker runs ``cores // N`` torch threads, so the workers
together never ask for more threads than the machine has cores.

A worker that dies (killed, out of memory) takes down the pool: the files then in flight are reported
as not finished (nothing is stored for them), a new pool carries on with the rest, and running the same
command again detects the unfinished ones, exactly once.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Iterator

from ..errors import ConfigError
from ..models.checkpoint import LoadedModel
from ..runtime import set_threads
from .batch import DetectParams, Executor, FileJob, FileOutcome, run_job

#: files in flight (submitted, not yet committed) per worker
IN_FLIGHT_PER_WORKER = 2

_state: tuple[LoadedModel, DetectParams] | None = None  # set in each worker by _start_worker


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_threads(workers: int, cores: int | None = None) -> int:
    """Torch threads per worker so that ``workers x threads <= cores`` (at least 1)."""
    return max(1, (cores or available_cores()) // workers)


def _exit_with_writer() -> None:
    """End this worker when the writer that started it is gone (its sentinel pipe closes, whether the
    worker was spawned or forked by the fork server): a killed writer would otherwise leave its workers
    running with no one to read their results."""
    writer = multiprocessing.parent_process()
    if writer is not None:
        writer.join()
        os._exit(1)


def _start_worker(model: LoadedModel, params: DetectParams, threads: int) -> None:
    global _state
    set_threads(threads)
    _state = (model, params)
    threading.Thread(target=_exit_with_writer, daemon=True).start()


def _context() -> multiprocessing.context.BaseContext:
    """Never a plain fork of a process that holds torch threads and a database connection."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["sonotype.runner.batch"])  # torch and the detection code, imported once
        return ctx
    return multiprocessing.get_context("spawn")


def _detect(job: FileJob) -> FileOutcome:
    model, params = _state
    return run_job(model, params, job)


def check_workers(workers) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an int >= 1 (processes detecting files at once), got {workers!r}")
    return workers


def process_pool(workers: int, *, threads: int | None = None) -> Executor:
    """An executor for :func:`sonotype.runner.batch.detect_many` that detects files in ``workers`` processes,
    each with ``threads`` torch threads (default :func:`worker_threads`)."""
    check_workers(workers)
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be an int >= 1, got {threads!r}")

    def run(model: LoadedModel, params: DetectParams, jobs: Iterator[FileJob]) -> Iterator[FileOutcome]:
        ctx = _context()
        initargs = (model, params, threads or worker_threads(workers))
        jobs = iter(jobs)
        pending: dict[Future, FileJob] = {}
        pool: ProcessPoolExecutor | None = None
        more, broken = True, False
        try:
            while True:
                if broken and not pending:  # every job of the dead pool is answered: a fresh pool goes on
                    pool.shutdown(wait=True)
                    pool, broken = None, False
                while more and not broken and len(pending) < IN_FLIGHT_PER_WORKER * workers:
                    job = next(jobs, None)
                    if job is None:
                        more = False
                        break
                    if pool is None:
                        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start_worker,
                                                   initargs=initargs)
                    pending[pool.submit(_detect, job)] = job
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    job = pending.pop(fut)
                    try:
                        out = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        yield FileOutcome(job, lost="a worker process died (killed, or out of memory?) while the "
                                                    "file was in flight; nothing was stored for it")
                        continue
                    yield out
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    return run


def executor_for(*, workers: int = 1, ray: str | None = None, ray_gpus: float | None = None) -> Executor | None:
    """The executor for ``sonotype detect --workers N`` / ``--ray ADDRESS [--ray-gpus G]`` (None: in this process)."""
    check_workers(workers)
    if ray_gpus is not None and ray is None:
        raise ConfigError(f"--ray-gpus {ray_gpus:g} places GPU actors on a Ray cluster; give --ray auto|ADDRESS too")
    if ray is not None:
        if workers != 1:
            raise ConfigError(f"use --workers or --ray, not both (got workers={workers}, ray={ray!r}): "
                              "with --ray the cluster's CPUs set how many files run at once")
        from .ray_cluster import ray_executor
        return ray_executor(ray, gpus_per_actor=ray_gpus)
    return process_pool(workers) if workers > 1 else None
