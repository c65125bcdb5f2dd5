#!/usr/bin/env python
"""Embedding throughput of each backend, x real time, next to its quality, so a user can choose.

Embeds ``--seconds`` of real 44.1 kHz orca audio (the vocabulary recordings, concatenated and
looped; converted to each backend's rate as in use) with each backend on ``--threads`` CPU threads,
each in a fresh worker process, and prints a markdown table: windows/s, x real time (seconds of
audio embedded per second), the resampling cost included, and peak RSS. The quality column is the
catalog-2018 1-NN accuracy of ``sonotype cluster-eval --select-on`` given by ``--quality JSON``
(its ``intervals``), when passed.

    .venv/bin/python bench/bench_backends.py --seconds 120 --threads 2 \
        --model runs/orca/encoder.best.pt [--quality runs/orca/cluster-eval-ssl.json runs/orca/cluster-eval-student.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from _common import load1, peak_rss_mb, run_json_worker

DATA = Path(os.environ.get("SONOTYPE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def audio(seconds: float) -> tuple[np.ndarray, int]:
    from sonotype.audio.io import read_audio
    parts, rate = [], 44100
    for f in sorted((DATA / "orca-calls" / "vocabulary").glob("*.wav")):
        x, rate = read_audio(f)
        parts.append(x)
    x = np.concatenate(parts)
    n = int(seconds * rate)
    return np.resize(x, n).astype(np.float32), rate


def worker(a) -> dict:
    from sonotype.models.backends import load_backend
    from sonotype.models.checkpoint import load_model
    from sonotype.runtime import tune_allocator
    x, rate = audio(a.seconds)
    if a.backend == "lstm":
        tune_allocator()
        b = load_backend("lstm", model=load_model(a.model), stride=a.stride)
    else:
        b = load_backend("birdnet", hop_s=a.hop)
    b.embed(x[: rate * 5], rate)  # warm-up (allocations, XNNPACK)
    t = time.perf_counter()
    e = b.embed(x, rate)
    dt = time.perf_counter() - t
    return {"backend": b.info.label, "key": b.info.key, "windows": int(e.shape[0]), "dim": int(e.shape[1]),
            "hop_s": b.info.hop_s, "window_s": b.info.window_s, "windows_s": e.shape[0] / dt, "x_real_time": a.seconds / dt,
            "peak_mb": peak_rss_mb()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", help="LSTM-V3 encoder checkpoint (default: an untrained orca-preset one)")
    ap.add_argument("--stride", type=int, default=4, help="LSTM-V3 frames between windows (cluster-eval's 4)")
    ap.add_argument("--hop", type=float, default=0.5, help="BirdNET seconds between 3-s windows")
    ap.add_argument("--quality", nargs="+", default=[],
                    help="cluster-eval --json results with intervals (1-NN of each backend; the first file that has "
                         "a representation gives its figure)")
    ap.add_argument("--worker", choices=["lstm", "birdnet"], dest="backend")
    a = ap.parse_args(argv)
    if a.backend:
        print(json.dumps(worker(a)))
        return 0
    model = a.model
    if not model:
        import tempfile

        import torch

        from sonotype.features.frontend import PRESETS
        from sonotype.models.checkpoint import Checkpoint
        from sonotype.models.lstm_v3 import Encoder, EncoderConfig
        torch.manual_seed(0)
        fe = PRESETS["orca"]
        cfg = EncoderConfig(window=fe.window, n_bins=fe.n_bins)
        model = str(Path(tempfile.mkdtemp()) / "untrained.pt")
        Checkpoint(kind="encoder", model_version="untrained", encoder_config=cfg, frontend=fe,
                   encoder=Encoder(cfg).state_dict()).save(model)
    quality: dict = {}
    for q in a.quality:
        for k, v in json.loads(Path(q).read_text()).get("intervals", {}).items():
            quality.setdefault(k, v["nn_accuracy"])
    base = [sys.executable, __file__, "--seconds", str(a.seconds), "--model", model, "--stride", str(a.stride),
            "--hop", str(a.hop), "--worker"]
    rows = [run_json_worker(base + [b], threads=a.threads) for b in ("lstm", "birdnet")]
    print(f"\n{a.seconds:g} s of real 44.1 kHz orca audio, {a.threads} threads, load {load1():.1f}\n")
    print("| backend | window / hop | D | windows/s | x real time | peak RSS MiB | catalog 1-NN [95% CI] |")
    print("|---|---|---|---|---|---|---|")
    names = {"lstm": "trained encoder", "birdnet": "birdnet 2.4"}
    for r, b in zip(rows, ("lstm", "birdnet")):
        q = quality.get(names[b])
        qs = f"{q[0]:.3f} [{q[1]:.3f}, {q[2]:.3f}]" if q else "-"
        print(f"| {r['backend']} | {r['window_s'] * 1000:.0f} ms / {r['hop_s'] * 1000:.0f} ms | {r['dim']} | {r['windows_s']:.0f} | "
              f"{r['x_real_time']:.1f} | {r['peak_mb']:.0f} | {qs} |")
    print(f"\nratio LSTM-V3 / BirdNET, x real time: {rows[0]['x_real_time'] / rows[1]['x_real_time']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
