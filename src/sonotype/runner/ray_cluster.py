"""Detection spread over a Ray cluster: ``sonotype detect --ray auto|ADDRESS``.

Each file not yet done is one Ray task (decode -> front end -> encoder -> scores -> regions, on one CPU
of any node); its regions come back to the driver, which is the only writer into the store and commits
each file in one transaction (:func:`sonotype.runner.batch.detect_many`). A task whose worker or node dies is
retried by Ray (``retries`` times); one that still fails is reported as not finished and nothing is
stored for it, so running the same command again detects it, exactly once. Killing the driver loses
only the files in flight, as without Ray.

On a real cluster the recordings must be readable at the same absolute path on every node (a shared
file system); the model travels through Ray's object store. Ray is the optional extra ``sonotype[ray]``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator

from ..errors import ConfigError
from ..models.checkpoint import LoadedModel
from ..runtime import set_threads
from .batch import DetectParams, Executor, FileJob, FileOutcome, run_job

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


def ray_executor(address: str = "auto", *, retries: int = 3, cpus_per_task: float = 1.0) -> Executor:
    """An executor for :func:`sonotype.runner.batch.detect_many` that runs each file as a Ray task.

    ``retries``: how often Ray re-runs a task whose worker process or node died (a Python error in the
    task is not retried: an unreadable file comes back as a failure, a bug stops the run as it would
    without Ray). ``cpus_per_task``: CPUs reserved per file (and torch threads used by it).
    """
    if not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"retries must be an int >= 0, got {retries!r}")
    if not cpus_per_task > 0:
        raise ConfigError(f"cpus_per_task must be > 0, got {cpus_per_task!r}")

    def run(model: LoadedModel, params: DetectParams, jobs: Iterator[FileJob]) -> Iterator[FileOutcome]:
        started = connect(address)
        ray = import_ray()
        pending: dict = {}  # ObjectRef -> FileJob
        try:
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
                try:
                    out = ray.get(ref)
                except ray.exceptions.RayTaskError as e:  # the task raised: a bug, raised here as it is
                    raise e.as_instanceof_cause() from None
                except ray.exceptions.RayError as e:  # its worker or node died (after Ray's retries)
                    yield FileOutcome(job, lost=f"its Ray task was lost ({type(e).__name__}: "
                                                f"{str(e).splitlines()[0] if str(e) else ''})")
                    continue
                yield dataclasses.replace(out, job=job)
        finally:
            for ref in pending:
                ray.cancel(ref)
            if started:
                ray.shutdown()

    return run
