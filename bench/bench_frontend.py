#!/usr/bin/env python
"""Benchmark sonotype's CPU inference path: the spectrogram front end and the encoder.

Writes ``--minutes`` of synthetic ``--rate`` Hz audio (noise + tones + whistles) to a temporary
16-bit WAV, then prints markdown tables:

(a) front end -- the vectorised streaming ``features.iter_windows`` over the whole file versus a
    per-frame Python-loop reference (``np.fft.rfft`` of one frame at a time, same output, checked),
    timed on the first ``--ref-seconds`` of the file and scaled; x real time and peak RSS.
(b) encoder -- windows/s in eval/inference mode at several batch sizes, with and without
    ``sonotype.runtime.tune_allocator()``, as x real time = windows/s * stride seconds.

Every measurement runs in a fresh subprocess (the script re-invokes itself with ``--worker``):
glibc's mallopt cannot be undone inside a process, and a fresh process gives each row its own
peak RSS. See bench/README.md.

    .venv/bin/python bench/bench_frontend.py --minutes 10 --rate 48000 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import load1, load3, peak_rss_mb, rss_mb, run_json_worker

# ------------------------------------------------------------------------------------ helpers


def frontend_for(args):
    from sonotype.features.frontend import PRESETS

    return PRESETS[args.preset]


def write_synthetic(path: Path, *, minutes: float, rate: int, seed: int = 0) -> int:
    """Write noise + steady tones + frequency-modulated whistles, 10 s at a time. Returns samples."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    total = int(round(minutes * 60 * rate))
    chunk = 10 * rate
    nyq = rate / 2
    tones = [(0.08 * nyq, 0.05), (0.31 * nyq, 0.03), (0.62 * nyq, 0.02)]
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        for a in range(0, total, chunk):
            n = min(chunk, total - a)
            t = (a + np.arange(n)) / rate
            x = 0.05 * rng.standard_normal(n)
            for fr, amp in tones:
                x += amp * np.sin(2 * np.pi * fr * t)
            # a whistle (sinusoidal FM around 0.4 Nyquist) switched on 1 s in every 3 s
            gate = ((t % 3.0) < 1.0).astype(np.float64)
            phase = 2 * np.pi * (0.4 * nyq * t - 0.1 * nyq / (2 * np.pi * 2.0) * np.cos(2 * np.pi * 2.0 * t))
            x += 0.1 * gate * np.sin(phase)
            f.write(np.clip(x, -1, 1).astype(np.float32))
    return total


# ------------------------------------------------------------------------------------ workers


def worker_frontend(args) -> dict:
    """Vectorised streaming front end over the whole file, ``--repeats`` passes."""
    from sonotype.audio.io import audio_info
    from sonotype.features.frontend import iter_windows

    fe = frontend_for(args)
    info = audio_info(args.wav)
    base = rss_mb()
    walls = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        count = 0
        checksum = 0.0
        for wb in iter_windows(args.wav, fe, sample_rate=info.sample_rate, batch=256):
            count += len(wb)
            checksum += float(wb.windows[:, 0, 0].sum())  # touch the output
        walls.append(time.perf_counter() - t0)
    return {"walls": walls, "audio_s": info.frames / info.sample_rate, "windows": count,
            "base_rss_mb": base, "peak_rss_mb": peak_rss_mb(), "checksum": checksum, "load": load1()}


def reference_windows(x: np.ndarray, framing) -> np.ndarray:
    """The obvious implementation: one frame at a time, one window at a time."""
    from sonotype.features.frontend import AMIN

    n_fft, hop = framing.n_fft, framing.hop
    hann = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    band = framing.band
    frames = []
    f = 0
    while f * hop + n_fft <= len(x):
        seg = x[f * hop:f * hop + n_fft]
        mag = np.abs(np.fft.rfft(seg * hann)).astype(np.float32)
        frames.append(20.0 * np.log10(np.maximum(mag @ band, AMIN)))
        f += 1
    spec = np.array(frames, np.float32)
    wins = []
    w = 0
    while w * framing.stride + framing.window <= len(spec):
        win = spec[w * framing.stride:w * framing.stride + framing.window]
        wins.append((win - win.mean()) / (win.std() + 1.0))
        w += 1
    return np.array(wins, np.float32)


def worker_reference(args) -> dict:
    """Per-frame Python-loop reference on the first --ref-seconds; checks it matches the fast path."""
    from sonotype.audio.io import audio_info, read_audio
    from sonotype.features.frontend import frames_to_windows, spectrogram

    fe = frontend_for(args)
    info = audio_info(args.wav)
    framing = fe.at_rate(info.sample_rate)
    stop = min(info.frames, int(round(args.ref_seconds * info.sample_rate)))
    base = rss_mb()
    walls = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        x, _ = read_audio(args.wav, start=0, stop=stop)
        ref = reference_windows(x, framing)
        walls.append(time.perf_counter() - t0)
    peak = peak_rss_mb()
    fast = frames_to_windows(spectrogram(x, framing), window=framing.window, stride=framing.stride)
    same_shape = ref.shape == fast.shape
    diff = float(np.abs(ref - fast).max()) if same_shape and ref.size else float("nan")
    return {"walls": walls, "audio_s": stop / info.sample_rate, "windows": int(ref.shape[0]),
            "base_rss_mb": base, "peak_rss_mb": peak, "same_shape": same_shape, "max_abs_diff": diff,
            "load": load1()}


def worker_encoder(args) -> dict:
    """Encoder forward passes in inference mode at one batch size, allocator tuned or not."""
    import torch

    from sonotype.models.lstm_v3 import Encoder, EncoderConfig
    from sonotype.runtime import set_threads, tune_allocator

    tuned = tune_allocator() if args.tune else False
    set_threads(args.threads)
    fe = frontend_for(args)
    enc = Encoder(EncoderConfig(window=fe.window, n_bins=fe.n_bins)).eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, fe.window, fe.n_bins, generator=gen)
    base = rss_mb()
    load = load1()
    with torch.inference_mode():
        enc(x)  # warm-up (first call allocates and picks kernels)
        times, wall = [], 0.0
        while len(times) < 2 or wall < args.enc_seconds:
            t0 = time.perf_counter()
            z = enc(x)
            times.append(time.perf_counter() - t0)
            wall += times[-1]
    assert z.shape == (args.batch, enc.config.embedding_dim)
    rates = sorted(args.batch / t for t in times)
    return {"batch": args.batch, "tune": bool(args.tune), "tuned": tuned, "batches": len(times),
            "median_wps": float(np.median(rates)), "best_wps": rates[-1], "base_rss_mb": base,
            "peak_rss_mb": peak_rss_mb(), "torch_threads": torch.get_num_threads(), "load": load}


WORKERS = {"frontend": worker_frontend, "reference": worker_reference, "encoder": worker_encoder}


# ------------------------------------------------------------------------------------ driver


def run_worker(args, kind: str, **extra) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--wav", str(args.wav),
           "--preset", args.preset, "--threads", str(args.threads), "--ref-seconds", str(args.ref_seconds),
           "--enc-seconds", str(args.enc_seconds), "--repeats", str(args.repeats)]
    for k, v in extra.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    return run_json_worker(cmd, threads=args.threads)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="length of the synthetic recording (default 10)")
    p.add_argument("--rate", type=int, default=48000, help="sample rate in Hz (default 48000)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch / BLAS (default 2)")
    p.add_argument("--preset", default="dolphin", help="front-end preset (default dolphin: 2 kHz-Nyquist)")
    p.add_argument("--ref-seconds", type=float, default=60.0,
                   help="audio timed with the slow per-frame reference, scaled to x real time (default 60)")
    p.add_argument("--batches", default="64,256,1024", help="encoder batch sizes (default 64,256,1024)")
    p.add_argument("--enc-seconds", type=float, default=6.0, help="timed seconds per encoder configuration")
    p.add_argument("--repeats", type=int, default=3,
                   help="front-end passes per implementation; the best and the median are reported (default 3)")
    p.add_argument("--wav", type=Path, help="use this WAV instead of generating one")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    p.add_argument("--tune", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return 0

    from sonotype import __version__
    from sonotype.features.frontend import PRESETS

    if args.preset not in PRESETS:
        p.error(f"--preset must be one of {', '.join(PRESETS)}")
    framing = PRESETS[args.preset].at_rate(args.rate)
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    t_start = time.perf_counter()
    load_before = load3()
    with tempfile.TemporaryDirectory(prefix="sonotype-bench-") as tmp:
        if args.wav is None:
            args.wav = Path(tmp) / "synthetic.wav"
            t0 = time.perf_counter()
            write_synthetic(args.wav, minutes=args.minutes, rate=args.rate)
            print(f"wrote {args.minutes:g} min of {args.rate} Hz synthetic audio to {args.wav} "
                  f"in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        print("front end: streaming ...", file=sys.stderr)
        fast = run_worker(args, "frontend")
        print("front end: per-frame reference ...", file=sys.stderr)
        ref = run_worker(args, "reference")
        enc = []
        for tune in (0, 1):
            for b in batches:
                print(f"encoder: batch {b}, tune_allocator={'yes' if tune else 'no'} ...", file=sys.stderr)
                enc.append(run_worker(args, "encoder", batch=b, tune=tune))
    load_after = load3()

    import torch

    fast_best, fast_med = min(fast["walls"]), float(np.median(fast["walls"]))
    ref_best, ref_med = min(ref["walls"]), float(np.median(ref["walls"]))
    fast_x, ref_x = fast["audio_s"] / fast_best, ref["audio_s"] / ref_best
    stride_s = framing.stride_s
    out = []
    out.append(f"## sonotype {__version__} front end + encoder benchmark\n")
    out.append(f"- audio: {fast['audio_s'] / 60:g} min synthetic, {args.rate} Hz, 16-bit WAV; preset "
               f"`{args.preset}`: n_fft {framing.n_fft}, hop {framing.hop}, {framing.n_bins} bins "
               f"{framing.fmin:g}-{framing.fmax:g} Hz, window {framing.window} frames, stride {framing.stride} "
               f"frames = {stride_s * 1000:.2f} ms per window")
    out.append(f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
               f"numpy {np.__version__}, torch {torch.__version__}; --threads {args.threads} "
               f"(torch + OMP/OpenBLAS); load average (1/5/15 min) before {load_before}, after {load_after}")
    out.append("- every row is a fresh subprocess; peak RSS = that process's ru_maxrss (whole process: "
               "interpreter, libraries, data), Δ = peak minus the RSS just before the timed part; "
               "load = 1-min load average when the row started (above the CPU count: other processes "
               "were competing for the cores)\n")
    out.append("### (a) front end: audio file -> normalised windows\n")
    out.append("| implementation | audio timed | best s | median s | x real time (best) | speed-up | "
               "peak RSS MiB | Δ RSS MiB | load |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    out.append(f"| vectorised `iter_windows` (streamed from the file, batch 256) | {fast['audio_s']:.0f} s "
               f"| {fast_best:.2f} | {fast_med:.2f} | {fast_x:,.0f} | {fast_x / ref_x:.1f}x "
               f"| {fast['peak_rss_mb']:.0f} | {fast['peak_rss_mb'] - fast['base_rss_mb']:.0f} | {fast['load']:.1f} |")
    out.append(f"| per-frame loop reference (`np.fft.rfft` per frame; first {ref['audio_s']:.0f} s, "
               f"scaled) | {ref['audio_s']:.0f} s | {ref_best:.2f} | {ref_med:.2f} | {ref_x:,.0f} | 1.0x "
               f"| {ref['peak_rss_mb']:.0f} | {ref['peak_rss_mb'] - ref['base_rss_mb']:.0f} | {ref['load']:.1f} |")
    out.append("")
    out.append(f"{args.repeats} passes each. Windows: {fast['windows']} streamed; the reference made "
               f"{ref['windows']} windows, max |reference - vectorised| = {ref['max_abs_diff']:.2e} on its "
               f"slice (same shape: {ref['same_shape']}). The reference was timed on its first "
               f"{ref['audio_s']:.0f} s only; its x real time is that slice's length over its wall time "
               f"(its cost is linear in length), and its RSS holds only that slice.\n")
    out.append(f"### (b) encoder, eval + `torch.inference_mode`, {enc[0]['torch_threads']} torch threads\n")
    out.append("| batch | `tune_allocator()` | windows/s (median) | x real time | vs untuned | windows/s (best) "
               "| peak RSS MiB | batches timed | load |")
    out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    untuned = {e["batch"]: e["median_wps"] for e in enc if not e["tune"]}
    for e in enc:
        label = "no" if not e["tune"] else ("yes" if e["tuned"] else "yes (no-op: not glibc)")
        rel = e["median_wps"] / untuned[e["batch"]]
        out.append(f"| {e['batch']} | {label} | {e['median_wps']:,.0f} | {e['median_wps'] * stride_s:,.1f} "
                   f"| {rel:.2f}x | {e['best_wps']:,.0f} | {e['peak_rss_mb']:.0f} | {e['batches']} "
                   f"| {e['load']:.1f} |")
    out.append("")
    out.append(f"x real time = windows/s x {stride_s:.5f} s (one window per stride of "
               f"{framing.stride} x {framing.hop} samples at {args.rate} Hz); medians over the timed batches "
               f"(one untimed warm-up batch first). Input: random normal windows (the encoder's cost does not "
               f"depend on the values). Total benchmark time {time.perf_counter() - t_start:.0f} s.")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
