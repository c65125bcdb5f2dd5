"""Shared by the bench scripts: each measurement runs in a fresh worker process."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

MIB = 2 ** 20


def rss_mb() -> float:
    """Current resident set size of this process, MiB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB
    except (OSError, ValueError, IndexError):
        return 0.0


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / MIB if sys.platform == "darwin" else r / 1024


def load1() -> float:
    """1-minute load average (NaN where unknown)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def run_json_worker(cmd: list[str], *, threads: int, omp_wait_policy: str | None = None) -> dict:
    """Run ``cmd`` with BLAS/OpenMP limited to ``threads``; its last stdout line is a JSON result."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env.pop("SONOTYPE_NO_MALLOPT", None)
    if omp_wait_policy:
        env["OMP_WAIT_POLICY"] = omp_wait_policy
    r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, check=False)  # stderr passes through
    if r.returncode != 0:
        raise SystemExit(f"worker {' '.join(cmd[2:5])} failed with exit status {r.returncode}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def load3() -> str:
    """1/5/15-minute load average, for the tables (above the CPU count: the cores were shared)."""
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"

