#!/usr/bin/env python
"""Encoder and end-to-end detection speed per device and variant, against the plain-PyTorch baseline.

One table, every row measured in this run on the same windows / the same file:

* **encoder** rows: windows/s of the encoder alone on real-shaped windows (cut from a synthetic
  48 kHz recording, front end ``dolphin``), and x real time at 48 kHz (11.72 windows per second
  of audio at n_fft 512, hop 256, windows of 32 frames every 16). Baseline: ``Encoder.forward``
  eager float32, batch 64, ``tune_allocator()`` (the plain path of ``embed.file_scores``).
  Variants: shared local conv (:mod:`sonotype.models.sharedconv`, exact), channels_last, bf16 autocast,
  ``torch.compile`` (``--compile``), and on CUDA eager / bf16 / compiled at batch 8192.
* **end to end** rows: decode -> front end -> encoder -> head -> regions of one synthetic
  recording of ``--minutes`` (``detect.detect_file`` with a :class:`sonotype.models.infer.Scorer`), and
  ``batch.detect_many`` into SQLite (hashing, registration, commit) with the defaults.

The model is the seeded untrained placeholder (``tests/helpers.placeholder_model``): weights do not
change the speed. The ceiling for the encoder on 2 AVX2 cores is ~2,800 windows/s (the local conv's
~67 MFLOP per window at ~190 GFLOP/s).

    .venv/bin/python bench/bench_gpu.py --threads 2 --minutes 10
    .venv/bin/python bench/bench_gpu.py --device cuda --minutes 120 --compile     # on a GPU machine
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import load3, peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
RATE = 48000
WINDOWS_PER_AUDIO_S = RATE / (16 * 256)  # dolphin front end: one window per 16 hops of 256 samples


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_it(fn, *, device: torch.device, n: int, min_s: float = 2.0) -> float:
    """Windows/s of ``fn()`` (which handles ``n`` windows): one warm-up call, then calls for >= ``min_s``."""
    fn(); sync(device)
    t0, calls = time.perf_counter(), 0
    while True:
        fn(); calls += 1
        sync(device)
        el = time.perf_counter() - t0
        if el >= min_s:
            return calls * n / el


def encoder_rows(args, model, frames: np.ndarray, wins: np.ndarray, off: np.ndarray, sc: np.ndarray) -> list:
    from sonotype.models.sharedconv import shared_forward

    enc = model.encoder.eval()
    rows = []
    x64 = torch.from_numpy(wins[:64])
    n_shared_frames = 16 * 63 + 32
    f64, o64, s64 = (torch.from_numpy(a) for a in (frames[:n_shared_frames], off[:64], sc[:64]))
    cpu = torch.device("cpu")
    with torch.inference_mode():
        ref = enc(x64)

        def row(name, fn, n, device=cpu, err=None):
            wps = time_it(fn, device=device, n=n, min_s=args.min_s)
            rows.append({"what": f"encoder: {name}", "wps": wps, "err": err})
            print(f"  {name}: {wps:,.0f} windows/s", file=sys.stderr)

        row("plain PyTorch eager fp32, batch 64 (baseline)", lambda: enc(x64), 64)
        err = float((shared_forward(enc, f64, x64, o64, s64, stride=16) - ref).abs().max())
        row("shared local conv (exact), batch 64", lambda: shared_forward(enc, f64, x64, o64, s64, stride=16), 64,
            err=err)
        for b in (16, 256):
            xb = torch.from_numpy(wins[:b])
            row(f"plain eager fp32, batch {b}", lambda xb=xb: enc(xb), b)
        if args.bf16_cpu:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                err = float((enc(x64).float() - ref).abs().max())
                row("bf16 autocast, batch 64", lambda: enc(x64), 64, err=err)
        if args.compile:
            comp = torch.compile(enc)
            t0 = time.perf_counter(); comp(x64); ct = time.perf_counter() - t0
            err = float((comp(x64) - ref).abs().max())
            row(f"torch.compile (compile {ct:.0f} s), batch 64", lambda: comp(x64), 64, err=err)
        if torch.cuda.is_available() and args.device == "cuda":
            dev = torch.device("cuda")
            genc = model.encoder.to(dev)
            xg = torch.from_numpy(np.resize(wins, (args.gpu_batch,) + wins.shape[1:])).to(dev)
            gref = genc(xg[:64]).cpu()
            row(f"CUDA eager fp32, batch {args.gpu_batch}", lambda: genc(xg), args.gpu_batch, dev,
                err=float((gref - ref).abs().max()))
            with torch.autocast("cuda", dtype=torch.bfloat16):
                err = float((genc(xg[:64]).float().cpu() - ref).abs().max())
                row(f"CUDA bf16 autocast, batch {args.gpu_batch}", lambda: genc(xg), args.gpu_batch, dev, err=err)
                if args.compile:
                    gcomp = torch.compile(genc, mode="max-autotune-no-cudagraphs")
                    gcomp(xg)
                    row(f"CUDA bf16 compiled, batch {args.gpu_batch}", lambda: gcomp(xg), args.gpu_batch, dev)
            model.encoder.to("cpu")
    return rows


def e2e_rows(args, model_path: Path, wav: Path, tmp: Path) -> list:
    from sonotype.detection.detect import detect_file
    from sonotype.detection.regions import RegionRule
    from sonotype.models.checkpoint import load_model
    from sonotype.models.infer import Scorer
    from sonotype.runner.batch import detect_many

    rows = []
    m = load_model(model_path)
    rule = RegionRule(threshold=0.5)
    audio_s = args.minutes * 60
    plan = [("plain path (embed.file_scores, batch 64) (baseline)", None),
            ("Scorer cpu: shared local conv (default)", dict(device="cpu")),
            ("Scorer cpu: torch front end (the GPU path, on the CPU)", dict(device="cpu", torch_frontend=True,
                                                                           shared_conv=False))]
    if torch.cuda.is_available() and args.device == "cuda":
        plan += [("Scorer cuda fp32", dict(device="cuda")), ("Scorer cuda bf16", dict(device="cuda", bf16=True))]
    base = None
    for name, kw in plan:
        sc = Scorer(m, **kw) if kw is not None else None
        detect_file(m, wav, rule=rule, scorer=sc)  # warm-up (page cache, allocator, cuDNN)
        t0 = time.perf_counter()
        det = detect_file(m, wav, rule=rule, scorer=sc)
        wall = time.perf_counter() - t0
        if base is None:
            base = det.scores
        err = float(np.abs(det.scores - base).max())
        rows.append({"what": f"end to end detect_file: {name}", "wps": det.n_windows / wall, "xrt": audio_s / wall,
                     "err": err})
        print(f"  {name}: {audio_s / wall:,.0f}x real time", file=sys.stderr)
    for dev in ["cpu"] + (["cuda"] if torch.cuda.is_available() and args.device == "cuda" else []):
        url = f"sqlite:///{tmp / f'r_{dev}.db'}"
        s = detect_many([wav], model=model_path, db=url, rule=rule, device=dev, progress=False, log=lambda _: None)
        rows.append({"what": f"end to end `detect_many` -> SQLite, device {dev} (defaults)",
                     "wps": None, "xrt": s.realtime_factor, "err": None})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the synthetic recording")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile on 2 cores)")
    ap.add_argument("--bf16-cpu", action="store_true", dest="bf16_cpu",
                    help="also time bf16 autocast on the CPU (emulated without AVX-512 BF16: very slow)")
    ap.add_argument("--gpu-batch", type=int, default=8192, dest="gpu_batch")
    ap.add_argument("--min-s", type=float, default=2.0, dest="min_s", help="seconds per timing")
    args = ap.parse_args()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(args.threads)
    from bench_detect import write_synthetic
    from helpers import placeholder_model

    from sonotype.features.frontend import PRESETS
    from sonotype.models.sharedconv import iter_window_frames
    from sonotype.runtime import tune_allocator

    tune_allocator()
    load_before = load3()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wav = tmp / "synthetic.wav"
        write_synthetic(wav, args.minutes / 60)
        model_path = placeholder_model(tmp / "placeholder.pt")
        from sonotype.models.checkpoint import load_model
        model = load_model(model_path)
        first = next(iter_window_frames(wav, PRESETS["dolphin"], sample_rate=RATE, batch=256))
        _, frames, wins, off, sc = first
        print("encoder:", file=sys.stderr)
        rows = encoder_rows(args, model, frames, wins, off, sc)
        print("end to end:", file=sys.stderr)
        rows += e2e_rows(args, model_path, wav, tmp)
    base_enc = rows[0]["wps"]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"## encoder and end-to-end detection, {platform.machine()} {os.cpu_count()} CPUs (--threads "
          f"{args.threads}), GPU: {gpu}, torch {torch.__version__}\n")
    print(f"- audio: synthetic {RATE} Hz mono, {args.minutes:g} min; x real time = windows/s / "
          f"{WINDOWS_PER_AUDIO_S:.2f}; load average before {load_before}, after {load3()}; peak RSS "
          f"{peak_rss_mb():,.0f} MiB")
    print("- max |diff|: encoder rows against the baseline's embeddings of the same windows; end-to-end rows "
          "against the baseline's scores\n")
    print("| what | windows/s | x real time @48 kHz | vs baseline | vs 2,800 windows/s CPU ceiling | max abs diff |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        wps = r["wps"]
        xrt = r.get("xrt") or (wps / WINDOWS_PER_AUDIO_S if wps else None)
        vs = f"{wps / base_enc:.2f}x" if wps and r["what"].startswith("encoder") else ""
        if r["what"].startswith("end to end") and "baseline" not in r["what"]:
            b = next(x for x in rows if x["what"].startswith("end to end") and "baseline" in x["what"])
            vs = f"{xrt / b['xrt']:.2f}x"
        ceil = f"{wps / 2800:.0%}" if wps and "CUDA" not in r["what"] and "cuda" not in r["what"] else ""
        err = "" if r["err"] is None else f"{r['err']:.1e}"
        print(f"| {r['what']} | {'' if not wps else f'{wps:,.0f}'} | {'' if not xrt else f'{xrt:,.0f}'} | {vs} | "
              f"{ceil} | {err} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
