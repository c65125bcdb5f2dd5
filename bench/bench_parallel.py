#!/usr/bin/env python
"""Benchmark parallel detection: one process versus worker processes versus a local Ray, end to end.

Writes ``--files`` synthetic 48 kHz mono recordings of ``--minutes`` each (``sonotype.audio.synth.
make_long_recording``: coloured ocean noise with whistles, burst pulses and click trains) and a
seeded untrained detector checkpoint (``tests/helpers.placeholder_model``: the weights do not change
the speed), then runs ``sonotype.runner.batch.detect_many`` over the folder into a fresh SQLite database,
once per row, each row in a fresh subprocess:

* **1 process (baseline)**: the default ``sonotype detect`` (files one after the other in this
  process, ``--threads`` torch threads).
* **pool, 1 worker**: the same work in one worker process (``parallel.process_pool(1)``, the worker
  with ``cores`` torch threads): what the machinery costs.
* **--workers N**: ``N`` worker processes (``cores // N`` torch threads each).
* **--ray auto**: a local Ray started for the row (``--ray-cpus`` CPUs, one per task).

Wall time is the whole ``detect_many`` call (start-up of the pool or of Ray included; the CLI's own
import time is not). Peak memory is the largest sum of the resident sets of the row's process and all
its descendants (workers, Ray's raylet/GCS/workers), sampled every 0.1 s. Every row must store the
same regions as the baseline (checked: count and a digest of every region's start, stop and scores).

    .venv/bin/python bench/bench_parallel.py                       # 6 files x 10 min (1 h), cores = 2
    .venv/bin/python bench/bench_parallel.py --quick               # 4 files x 2 min: smoke run
    .venv/bin/python bench/bench_parallel.py --workers 1 2 4 --files 8
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import load1, load3, peak_rss_mb, run_json_worker

ROOT = Path(__file__).resolve().parents[1]
RATE = 48000
MIB = 2 ** 20
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def tree_rss_mb(root: int) -> float:
    """Resident set of ``root`` and all its descendants, MiB (Linux /proc; 0 elsewhere)."""
    kids: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for p in Path("/proc").iterdir() if Path("/proc/self/stat").exists() else ():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            kids.setdefault(int(fields[1]), []).append(int(p.name))
            rss[int(p.name)] = int(fields[21])  # rss in pages
        except (OSError, ValueError, IndexError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += kids.get(pid, [])
    return total * PAGE / MIB


class TreePeak(threading.Thread):
    """Samples :func:`tree_rss_mb` of this process every ``every`` s; ``peak`` is the largest seen."""

    def __init__(self, every: float = 0.1):
        super().__init__(daemon=True)
        self.every, self.peak, self.done = every, 0.0, threading.Event()

    def run(self):
        while not self.done.is_set():
            self.peak = max(self.peak, tree_rss_mb(os.getpid()))
            self.done.wait(self.every)

    def stop(self) -> float:
        self.done.set()
        self.join()
        self.peak = max(self.peak, tree_rss_mb(os.getpid()))
        return self.peak


# ------------------------------------------------------------------------------------ worker


def worker(args) -> dict:
    """One row: ``detect_many`` over the folder into a fresh database."""
    from sonotype.runner.batch import detect_many
    from sonotype.runner.parallel import process_pool, worker_threads
    from sonotype.runtime import set_threads
    from sonotype.store import open_store

    set_threads(args.threads)
    load_start = load1()
    executor, threads = None, args.threads
    if args.worker == "pool":
        threads = worker_threads(args.n, args.threads)
        executor = process_pool(args.n, threads=threads)
    elif args.worker == "ray":
        import ray

        from sonotype.runner.ray_cluster import ray_executor
        executor = ray_executor("auto")
        os.environ.pop("RAY_ADDRESS", None)
        t = time.perf_counter()
        ray.init(num_cpus=args.n, include_dashboard=False, logging_level="WARNING")
        ray_start = time.perf_counter() - t
        threads = 1
    url = f"sqlite:///{args.db}"
    peak = TreePeak()
    peak.start()
    t0 = time.perf_counter()
    s = detect_many([args.data], model=args.model, db=url, threshold=args.threshold, batch=args.batch,
                    executor=executor, progress=False, log=lambda m: print(f"  [{args.worker}] {m}", file=sys.stderr))
    wall = time.perf_counter() - t0
    tree_peak = peak.stop()
    if args.worker == "ray":
        wall += ray_start  # the whole start-up counts, as it does for the pool
        ray.shutdown()
    if s.failed or s.unfinished or s.processed != args.files:
        raise SystemExit(f"{args.worker}: not every file was detected: {s.report()}")
    with open_store(url) as st:
        regions = sorted((g.recording_id, g.region.start, g.region.stop, round(g.region.mean_score, 5),
                          round(g.region.peak_score, 5)) for g in st.regions(run_id=s.run_id))
        names = {r.id: Path(r.path).name for r in st.recordings()}
    digest = hashlib.sha256(json.dumps([(names[r[0]], *r[1:]) for r in regions]).encode()).hexdigest()[:12]
    return {"wall": wall, "audio_s": s.audio_seconds, "regions": len(regions), "digest": digest,
            "tree_peak_mb": tree_peak, "self_peak_mb": peak_rss_mb(), "threads": threads,
            "load_start": load_start, "load_end": load1()}


# ------------------------------------------------------------------------------------ driver


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=6, help="synthetic recordings (default 6)")
    p.add_argument("--minutes", type=float, default=10.0, help="length of each, at most 10 (default 10)")
    p.add_argument("--workers", type=int, nargs="+", default=[2], help="pool sizes to time besides 1 (default 2)")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count(), help="cores to use: torch threads of the baseline (default: all)")
    p.add_argument("--ray-cpus", type=int, default=None, help="CPUs of the local Ray (default: --threads)")
    p.add_argument("--no-ray", action="store_true", help="skip the Ray row")
    p.add_argument("--batch", type=int, default=64, help="windows per encoder batch (default 64)")
    p.add_argument("--threshold", type=float, default=0.485,
                   help="region threshold (default 0.485, as bench_detect.py: the placeholder's scores sit near it)")
    p.add_argument("--repeats", type=int, default=1,
                   help="rounds over all rows, interleaved (a shared machine's load drifts); the best wall counts")
    p.add_argument("--quick", action="store_true", help="smoke run: 4 files x 2 min")
    p.add_argument("--worker", choices=["plain", "pool", "ray"], help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    if args.quick:
        args.files, args.minutes = 4, 2.0
    if not 0 < args.minutes <= 10:
        p.error("--minutes must be in (0, 10] (make_long_recording builds each file in memory)")

    sys.path.insert(0, str(ROOT / "tests"))
    import torch
    from helpers import placeholder_model

    from sonotype import __version__
    from sonotype.audio.synth import make_long_recording

    have_ray = False
    if not args.no_ray:
        try:
            import ray
            have_ray = True
        except ImportError:
            print("ray is not installed (pip install 'sonotype[ray]'): no Ray row", file=sys.stderr)
    ray_cpus = args.ray_cpus or args.threads
    load_before = load3()
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sonotype-bench-parallel-") as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        model = placeholder_model(tmp / "placeholder.pt")
        t = time.perf_counter()
        for i in range(args.files):
            make_long_recording(data / f"rec{i:02d}.wav", seconds=args.minutes * 60, seed=i)
        print(f"wrote {args.files} x {args.minutes:g} min in {time.perf_counter() - t:.1f} s", file=sys.stderr)

        plan = [("1 process (baseline)", "plain", 1, args.threads), ("pool, 1 worker", "pool", 1, args.threads)]
        plan += [(f"--workers {n}", "pool", n, args.threads) for n in args.workers if n != 1]
        if have_ray:
            plan.append((f"--ray auto (local, {ray_cpus} CPUs)", "ray", ray_cpus, args.threads))
        runs: list[list[dict]] = [[] for _ in plan]
        for rep in range(max(1, args.repeats)):
            for i, (name, kind, n, threads) in enumerate(plan):
                print(f"{name} (round {rep + 1}) ...", file=sys.stderr)
                db = tmp / f"r{i}_{rep}.db"
                cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--n", str(n), "--data",
                       str(data), "--model", str(model), "--db", str(db), "--threads", str(threads), "--batch",
                       str(args.batch), "--threshold", str(args.threshold), "--files", str(args.files)]
                runs[i].append(run_json_worker(cmd, threads=threads))
                db.unlink()
        rows = []
        for (name, _, n, _), rs in zip(plan, runs):
            best = min(rs, key=lambda r: r["wall"])
            best = {**best, "walls": sorted(r["wall"] for r in rs), "tree_peak_mb": max(r["tree_peak_mb"] for r in rs),
                    "same": all((r["regions"], r["digest"]) == (rs[0]["regions"], rs[0]["digest"]) for r in rs)}
            rows.append((name, n, best))
    load_after = load3()

    base = rows[0][2]
    bx = base["audio_s"] / base["wall"]
    out = [f"## sonotype {__version__}: parallel detection, end to end\n",
           f"- audio: {args.files} synthetic {RATE} Hz mono recordings x {args.minutes:g} min "
           f"(`sonotype.audio.synth.make_long_recording`) = {base['audio_s'] / 3600:.2f} h; placeholder detector, "
           f"threshold {args.threshold}, batch {args.batch}; fresh SQLite database per row",
           f"- machine: {platform.machine()}, {os.cpu_count()} CPUs ({args.threads} used), "
           f"Python {platform.python_version()}, torch {torch.__version__}"
           + (f", ray {ray.__version__}" if have_ray else ""),
           f"- load average (1/5/15 min) before: {load_before}; after: {load_after} "
           "(above the CPU count: other processes shared the cores)",
           f"- {max(1, args.repeats)} interleaved round(s); wall = the best round (all rounds listed); "
           f"total bench time {time.perf_counter() - t_all:.0f} s\n",
           "| run | processes x torch threads | wall s (best) | x real time | vs baseline | wall s, every round "
           "| peak RSS, all processes MiB | regions | same regions as baseline | load at start |",
           "|---|---|---:|---:|---:|---|---:|---:|---|---:|"]
    for name, n, r in rows:
        x = r["audio_s"] / r["wall"]
        procs = "1 (this)" if name.startswith("1 process") else f"{n} + writer"
        same = r["same"] and (r["regions"], r["digest"]) == (base["regions"], base["digest"])
        out.append(f"| {name} | {procs} x {r['threads']} | {r['wall']:.1f} | {x:.0f} | {x / bx:.2f} | "
                   f"{', '.join(f'{w:.0f}' for w in r['walls'])} | {r['tree_peak_mb']:,.0f} | {r['regions']} | "
                   f"{'yes' if same else '**NO**'} | {r['load_start']:.1f} |")
    print("\n".join(out))
    return 0 if all(r["same"] and (r["regions"], r["digest"]) == (base["regions"], base["digest"])
                    for _, _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
