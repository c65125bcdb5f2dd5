#!/usr/bin/env python
"""`sonotype train` windows/s: the current code against a baseline checkout, on the right-whale recordings.

Each row runs ``sonotype train DATA --preset narw --epochs 1 --max-windows M --val-fraction 0``
in a fresh subprocess (the frame cache is filled once beforehand, untimed) and reads the epoch's
windows and seconds from the checkpoint's history: windows/s of the training loop alone (batch
assembly, forward, backward, Adam). ``--baseline-src`` is the ``src`` folder of the code to compare
against (e.g. a checkout of the commit before this change), run the same way. On a machine with a
GPU the CUDA rows run too.

    .venv/bin/python bench/bench_train.py --baseline-src ../main/src --threads 2 --max-windows 1024
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import load3

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SONOTYPE_DATA") or ROOT.parent / "shared" / "data")


def run_train(src: Path, data: Path, out: Path, cache: Path, *, threads: int, extra: list[str], windows: int,
              preset: str = "narw") -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [sys.executable, "-c", "import sys; from sonotype.cli import main; sys.exit(main())", "train", str(data), "--preset", preset, "--out", str(out),
           "--cache-dir", str(cache), "--epochs", "1", "--max-windows", str(windows), "--val-fraction", "0",
           "--threads", str(threads), "--quiet", *extra]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    wall = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}")
    # the raw layout, not sonotype.models.checkpoint: the baseline row's checkpoint comes from another src tree
    ck = torch.load(out, map_location="cpu", weights_only=True)
    h = ck["history"][-1]
    return {"windows": h["windows"], "seconds": h["seconds"], "wall": wall, "loss": h["train_loss"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA / "narw-upcalls" / "narw"))
    ap.add_argument("--preset", default="narw")
    ap.add_argument("--baseline-src", help="src folder of the code to compare against (omit: no baseline row)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-windows", type=int, default=1024, dest="max_windows")
    ap.add_argument("--cuda-windows", type=int, default=200_000, dest="cuda_windows")
    args = ap.parse_args()
    cur = ROOT / "src"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"
        print("filling the frame cache (untimed) ...", file=sys.stderr)
        run_train(cur, Path(args.data), tmp / "warm.pt", cache, threads=args.threads, extra=["--device", "cpu"],
                  windows=32, preset=args.preset)
        plan = []
        if args.baseline_src:
            plan.append(("baseline (--baseline-src)", Path(args.baseline_src), ["--device", "cpu"],
                         args.max_windows))
        plan += [("this code, batch 32", cur, ["--device", "cpu"], args.max_windows),
                 ("this code, batch 128, sqrt lr scaling", cur,
                  ["--device", "cpu", "--batch-size", "128", "--lr-scaling", "sqrt"], args.max_windows)]
        if torch.cuda.is_available():
            plan += [("this code, CUDA, batch 32", cur, ["--device", "cuda"], 20_000),
                     ("this code, CUDA, batch 4096, sqrt lr", cur,
                      ["--device", "cuda", "--batch-size", "4096", "--lr-scaling", "sqrt"], args.cuda_windows),
                     ("this code, CUDA, batch 4096, sqrt lr, bf16", cur,
                      ["--device", "cuda", "--batch-size", "4096", "--lr-scaling", "sqrt", "--bf16"],
                      args.cuda_windows)]
        for name, src, extra, windows in plan:
            print(f"{name} ...", file=sys.stderr)
            rows.append((name, run_train(src, Path(args.data), tmp / "e.pt", cache, threads=args.threads,
                                         extra=extra, windows=windows, preset=args.preset)))
    base = rows[0][1]["windows"] / rows[0][1]["seconds"] if args.baseline_src else None
    print(f"## `sonotype train` windows/s, {args.data} (preset {args.preset}), {platform.machine()}, "
          f"{os.cpu_count()} CPUs, --threads {args.threads}, torch {torch.__version__}; load {load3()}\n")
    print("| run | windows | epoch s | windows/s | vs baseline | process wall s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows:
        wps = r["windows"] / r["seconds"]
        print(f"| {name} | {r['windows']:,} | {r['seconds']:.1f} | {wps:,.0f} | "
              f"{'' if base is None else f'{wps / base:.2f}x'} | {r['wall']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
