"""Detection spread over a Ray cluster: ``sonotype detect --ray auto|ADDRESS``.

Each file not yet done is one Ray task (decode -> front end -> encoder -> scores -> regions, on one CPU
of any node); its regions come back to the driver, which is the only writer into the store and commits
each file in one transaction (:func:`sonotype.runner.batch.detect_many`). A task whose worker or node dies is
retried by Ray (``retries`` times); one that still fails is reported as not finished and nothing is
stored for it, so running the same command again detects it, exactly once. Killing the driver loses
only the files in flight, as without Ray.

With ``gpus_per_actor`` (``--ray-gpus G``) the files go instead to Ray actors that each hold ``G`` GPUs
(0.5: two actors share one) and keep the model loaded: each call hands an actor a few files, whose
windows share the GPU's batches (:func:`sonotype.runner.batch.run_batched`). An actor that dies is restarted
by Ray and its call re-run (``retries`` times); past that, its files are reported as not finished.

On a real cluster the recordings must be readable at the same absolute path on every node (a shared
file system); the model travels through Ray's object store. Ray is the optional extra ``sonotype[ray]``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
from typing import Iterator

from ..errors import ConfigError
from ..models.checkpoint import LoadedModel
from ..runtime import set_threads
from .batch import DetectParams, Executor, FileJob, FileOutcome, run_batched, run_in_process, run_job, scorer_for

#: at most this many tasks per cluster CPU are submitted and not yet committed (bounds the driver's memory)
IN_FLIGHT_PER_CPU = 2


def import_ray():
    """The ``ray`` module, or a clear error naming the extra to install."""
    try:
        import ray
    except ImportError as e:
        raise ConfigError(f"--ray needs the optional Ray package ({e}); install it with "
                          "`pip install 'sonotype[ray]'` (or run without --ray)") from e
    return ray


def connect(address: str) -> bool:
    """Join the Ray cluster at ``address``; ``auto``: the cluster this machine belongs to (``RAY_ADDRESS`` or a
    ``ray start`` here), else a new local Ray on this machine's CPUs. Returns whether this call started Ray
    (then the caller shuts it down); an already initialised Ray is used as it is."""
    ray = import_ray()
    if not isinstance(address, str) or not address.strip():
        raise ConfigError(f"ray address must be 'auto' or a cluster address such as 10.0.0.5:6379 or "
                          f"ray://10.0.0.5:10001, got {address!r}")
    if ray.is_initialized():
        return False
    if address == "auto":
        try:
            ray.init(address="auto", logging_level="WARNING")
        except ConnectionError:  # no cluster here: start one on this machine
            ray.init(include_dashboard=False, logging_level="WARNING")
        return True
    try:
        ray.init(address=address, logging_level="WARNING")
    except (ConnectionError, ValueError) as e:
        raise ConfigError(f"cannot join the Ray cluster at {address!r} ({e}); expected the address printed by "
                          "`ray start --head` on the head node (host:6379, or ray://host:10001)") from e
    return True


def _detect_task(model: LoadedModel, params: DetectParams, job: FileJob) -> FileOutcome:
    """One file on a Ray worker, with as many torch threads as CPUs the task was given."""
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    set_threads(max(1, int(cpus)))
    return run_job(model, params, job)


class _Detector:
    """A Ray actor: one model kept loaded on its device, detecting the files it is handed."""

    def __init__(self, model: LoadedModel, params: DetectParams, cpus: float):
        set_threads(max(1, int(cpus)))
        self.model, self.params = model, params
        self.gpu = scorer_for(model, params).device.type != "cpu"

    def detect(self, jobs: list[FileJob]) -> list[FileOutcome]:
        run = run_batched if self.gpu else run_in_process
        return list(run(self.model, self.params, iter(jobs)))


@contextlib.contextmanager
def _session(address: str, pending: dict):
    """Ray joined (or started) for one run; on the way out the calls still ``pending`` are cancelled and a
    Ray this run started is shut down."""
    started = connect(address)
    ray = import_ray()
    try:
        yield ray
    finally:
        for ref in pending:
            ray.cancel(ref)
        if started:
            ray.shutdown()


def _result(ray, ref):
    """``(value, None)`` of a finished call, or ``(None, error)`` when its worker, actor or node died (after Ray's
    retries); an exception the call itself raised (a bug) is raised here as it is."""
    try:
        return ray.get(ref), None
    except ray.exceptions.RayTaskError as e:
        raise e.as_instanceof_cause() from None
    except ray.exceptions.RayError as e:
        return None, e


def _lost(job: FileJob, what: str, e: Exception) -> FileOutcome:
    return FileOutcome(job, lost=f"its Ray {what} was lost ({type(e).__name__}: "
                                 f"{str(e).splitlines()[0] if str(e) else ''})")


def ray_executor(address: str = "auto", *, retries: int = 3, cpus_per_task: float = 1.0,
                 gpus_per_actor: float | None = None, files_per_call: int = 8) -> Executor:
    """An executor for :func:`sonotype.runner.batch.detect_many` that runs each file as a Ray task.

    ``retries``: how often Ray re-runs a task whose worker process or node died (a Python error in the
    task is not retried: an unreadable file comes back as a failure, a bug stops the run as it would
    without Ray). ``cpus_per_task``: CPUs reserved per file (and torch threads used by it).
    ``gpus_per_actor``: None = one CPU task per file; a number = actors holding that many GPUs each, as many
    as the cluster's GPUs allow (0: actors on ``cpus_per_task`` CPUs each, as many as the CPUs allow), each
    handed ``files_per_call`` files at a time.
    """
    if gpus_per_actor is not None:
        if isinstance(gpus_per_actor, bool) or not isinstance(gpus_per_actor, (int, float)) or gpus_per_actor < 0:
            raise ConfigError(f"gpus per actor must be a number >= 0 (1: one GPU each, 0.5: two actors share "
                              f"one), got {gpus_per_actor!r}")
        if not isinstance(files_per_call, int) or files_per_call < 1:
            raise ConfigError(f"files_per_call must be an int >= 1, got {files_per_call!r}")
    if not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"retries must be an int >= 0, got {retries!r}")
    if not cpus_per_task > 0:
        raise ConfigError(f"cpus_per_task must be > 0, got {cpus_per_task!r}")

    def run(model: LoadedModel, params: DetectParams, jobs: Iterator[FileJob]) -> Iterator[FileOutcome]:
        if gpus_per_actor is not None:
            yield from run_actors(model, params, jobs)
            return
        pending: dict = {}  # ObjectRef -> FileJob
        with _session(address, pending) as ray:
            task = ray.remote(_detect_task).options(num_cpus=cpus_per_task, max_retries=retries,
                                                    retry_exceptions=False)
            model_ref, params_ref = ray.put(model), ray.put(params)
            cpus = ray.cluster_resources().get("CPU", 1)
            limit = max(1, int(IN_FLIGHT_PER_CPU * cpus / cpus_per_task))
            jobs = iter(jobs)
            more = True
            while True:
                while more and len(pending) < limit:
                    job = next(jobs, None)
                    if job is None:
                        more = False
                        break
                    # workers on other nodes have other working directories
                    portable = dataclasses.replace(job, path=os.path.abspath(job.path))
                    pending[task.remote(model_ref, params_ref, portable)] = job
                if not pending:
                    return
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(ref)
                out, died = _result(ray, ref)
                yield _lost(job, "task", died) if died else dataclasses.replace(out, job=job)

    def run_actors(model: LoadedModel, params: DetectParams, jobs: Iterator[FileJob]) -> Iterator[FileOutcome]:
        pending: dict = {}  # ObjectRef -> (actor, [FileJob])
        with _session(address, pending) as ray:
            res = ray.cluster_resources()
            if gpus_per_actor:
                n = int(res.get("GPU", 0) / gpus_per_actor)
                if n < 1:
                    raise ConfigError(f"--ray-gpus {gpus_per_actor:g}: the Ray cluster has {res.get('GPU', 0):g} "
                                      "GPU(s); give a smaller share, or leave --ray-gpus out for CPU tasks")
            else:
                n = max(1, int(res.get("CPU", 1) / cpus_per_task))
            actor_cls = ray.remote(_Detector).options(num_cpus=cpus_per_task, num_gpus=gpus_per_actor,
                                                      max_restarts=retries, max_task_retries=retries)
            model_ref, params_ref = ray.put(model), ray.put(params)
            idle = [actor_cls.remote(model_ref, params_ref, cpus_per_task) for _ in range(n)]
            jobs = iter(jobs)
            more = True
            while True:
                while more and idle:
                    chunk = list(itertools.islice(jobs, files_per_call))
                    if not chunk:
                        more = False
                        break
                    actor = idle.pop()  # workers on other nodes have other working directories:
                    portable = [dataclasses.replace(j, path=os.path.abspath(j.path)) for j in chunk]
                    pending[actor.detect.remote(portable)] = (actor, chunk)
                if not pending:
                    return
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                actor, chunk = pending.pop(ref)
                outs, died = _result(ray, ref)
                if died:  # the actor died (after Ray's restarts and retries): a fresh one takes its place
                    for job in chunk:
                        yield _lost(job, "actor", died)
                    idle.append(actor_cls.remote(model_ref, params_ref, cpus_per_task))
                    continue
                idle.append(actor)
                for job, out in zip(chunk, outs):
                    yield dataclasses.replace(out, job=job)

    return run
