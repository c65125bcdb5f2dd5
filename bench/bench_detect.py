#!/usr/bin/env python
"""Benchmark the whole detection pipeline on long recordings: streaming versus the naive way.

Writes synthetic 48 kHz mono 16-bit WAVs of ``--hours`` each (noise, steady tones and gated
frequency-modulated whistles) to a temporary directory, writes a seeded untrained detector
checkpoint (``tests/helpers.placeholder_model``: the weights do not change the speed), then prints
a markdown table:

* **streaming**: ``sonotype.runner.batch.detect_many`` into a fresh SQLite database, for every length:
  decode block by block -> STFT -> band -> dB -> windows -> encoder -> detector head -> regions ->
  SQLite (plus the file's SHA-256 and the run registration). Wall seconds, x real time, peak RSS.
* **naive** (the first length only): ``soundfile.read`` of the whole file, a per-frame Python loop
  (``np.fft.rfft(frame * hann)``, band mapping, dB) into one spectrogram of the whole file, every
  window materialised at once, the encoder over all windows (batches of 64), then regions. The
  per-frame loop is timed on the first ``--naive-minutes`` and scaled to the whole file; the rest
  of the spectrogram is filled by the vectorised front end (untimed) so that the peak RSS is that
  of really holding the whole file's audio, spectrogram and windows.

Every measurement runs in a fresh subprocess (the script re-invokes itself with ``--worker``), so
each row has its own peak RSS (``ru_maxrss``). Everything written is deleted at the end.

    .venv/bin/python bench/bench_detect.py --hours 1 4 --threads 2
    .venv/bin/python bench/bench_detect.py --quick          # 2 and 6 minutes: smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import load1, load3, peak_rss_mb, rss_mb, run_json_worker

ROOT = Path(__file__).resolve().parents[1]
RATE = 48000
GIB = 2**30
MIB = 2**20
#: below this much free disk the lengths are shortened (with a note in the output)
MIN_FREE_DISK = 5 * GIB


# ------------------------------------------------------------------------------------ helpers


def mem_available() -> int | None:
    """MemAvailable in bytes (Linux), else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def fmt_len(seconds: float) -> str:
    if seconds >= 3600 and abs(seconds / 3600 - round(seconds / 3600)) < 1e-6:
        return f"{seconds / 3600:g} h"
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds / 60:.3g} min"


def wav_bytes(hours: float) -> int:
    return round(hours * 3600 * RATE) * 2 + 44


def tonal_template(seconds: int = 30) -> np.ndarray:
    """``seconds`` of steady tones + gated FM whistles + chirps, float32, exactly periodic over its length
    (integer frequencies, 2 Hz modulation, a 3 s gate), so it can be tiled without clicks."""
    t = np.arange(seconds * RATE) / RATE
    x = np.zeros_like(t)
    for freq, amp in ((1000, 0.04), (7000, 0.02), (15000, 0.015)):  # steady tones (1 kHz is below the band)
        x += amp * np.sin(2 * np.pi * freq * t)
    # a whistle around 10 kHz, +-2 kHz at 2 Hz, on for 1 s in every 3 s
    gate = ((t % 3.0) < 1.0).astype(np.float64)
    fc, dev, fm = 10000, 2000, 2.0
    x += 0.12 * gate * np.sin(2 * np.pi * (fc * t - dev / (2 * np.pi * fm) * np.cos(2 * np.pi * fm * t)))
    # upward chirps 5 -> 9 kHz, 0.4 s, at 7 s, 17 s and 23.5 s
    for start in (7.0, 17.0, 23.5):
        i, n = int(start * RATE), int(0.4 * RATE)
        tt = np.arange(n) / RATE
        x[i:i + n] += 0.2 * np.hanning(n) * np.sin(2 * np.pi * (5000 * tt + 0.5 * 4000 / 0.4 * tt ** 2))
    return x.astype(np.float32)


def write_synthetic(path: Path, hours: float, *, seed: int = 0) -> int:
    """Write ``hours`` of 48 kHz mono PCM_16 blockwise (30 s blocks: tiled template + fresh noise).
    Returns the number of samples. Memory stays at a few blocks whatever the length."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    tpl = tonal_template()
    total = round(hours * 3600 * RATE)
    with sf.SoundFile(str(path), "w", samplerate=RATE, channels=1, subtype="PCM_16", format="WAV") as f:
        for a in range(0, total, tpl.size):
            n = min(tpl.size, total - a)
            x = rng.standard_normal(n, dtype=np.float32)
            x *= 0.05
            x += tpl[:n]
            np.clip(x, -1.0, 1.0, out=x)
            f.write((x * 32767.0).astype(np.int16))
    return total


# ------------------------------------------------------------------------------------ workers


def worker_stream(args) -> dict:
    """``detect_many`` over one file into a fresh SQLite database."""
    from sonotype.runner.batch import detect_many
    from sonotype.runtime import set_threads
    from sonotype.store import open_store

    set_threads(args.threads)
    import torch

    load_start = load1()
    base = rss_mb()
    url = f"sqlite:///{args.db}"
    t0 = time.perf_counter()
    summary = detect_many([args.wav], model=args.model, db=url, threshold=args.threshold, progress=False,
                          log=lambda s: print(f"  [stream] {s}", file=sys.stderr))
    wall = time.perf_counter() - t0
    peak = peak_rss_mb()
    with open_store(url) as store:
        rows = store.processed(run_id=summary.run_id)
    if summary.failed or len(rows) != 1 or rows[0].status != "done":
        raise SystemExit(f"streaming run did not finish the file: {summary.failed} {rows}")
    return {"kind": "stream", "wall": wall, "audio_s": summary.audio_seconds, "base_rss_mb": base,
            "peak_rss_mb": peak, "windows": rows[0].n_windows, "regions": rows[0].n_regions,
            "load_start": load_start, "load_end": load1(), "torch_threads": torch.get_num_threads(),
            "db_kib": sum(q.stat().st_size for q in args.db.parent.glob(args.db.name + "*")) / 1024}


def worker_naive(args) -> dict:
    """Everything in memory at once; the per-frame loop timed on a slice and scaled (see the module doc)."""
    import soundfile as sf
    import torch

    from sonotype.detection.detect import default_rule
    from sonotype.detection.regions import find_regions
    from sonotype.features.frontend import AMIN, framing_for, spectrogram
    from sonotype.models.checkpoint import load_model
    from sonotype.runtime import set_threads, tune_allocator

    set_threads(args.threads)
    tuned = tune_allocator()  # the streaming path calls it too (sonotype.models.embed): same allocator on both sides
    load_start = load1()
    base = rss_mb()
    stages = []  # (name, seconds, how, RSS MiB after the stage)

    def stage(name, seconds, how):
        stages.append({"stage": name, "seconds": seconds, "how": how, "rss_mb": rss_mb(), "peak_mb": peak_rss_mb()})

    t = time.perf_counter()
    m = load_model(args.model, kind="detector")
    rule = default_rule(m, threshold=args.threshold)
    stage("load model", time.perf_counter() - t, "measured")

    # 1. the whole file in memory (float32: half of soundfile's float64 default, so this is generous)
    t = time.perf_counter()
    x, sr = sf.read(str(args.wav), dtype="float32", always_2d=False)
    if x.ndim == 2:
        x = np.ascontiguousarray(x[:, 0])
    stage(f"soundfile.read whole file ({x.nbytes / MIB:,.0f} MiB float32)", time.perf_counter() - t, "measured")

    # 2. per-frame loop: rfft(frame * hann) -> |.| -> band -> dB, one frame at a time, into a whole-file array
    framing = framing_for(m.frontend, sr, args.wav)
    n_fft, hop, band = framing.n_fft, framing.hop, framing.band
    hann = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    n_frames = framing.n_frames(x.shape[0])
    spec = np.empty((n_frames, framing.n_bins), np.float32)
    loop_frames = n_frames if args.naive_minutes <= 0 else min(
        n_frames, framing.n_frames(round(args.naive_minutes * 60 * sr)))
    log_scale = framing.scale == "log"
    t = time.perf_counter()
    for f in range(loop_frames):
        frame = x[f * hop:f * hop + n_fft]
        mag = np.abs(np.fft.rfft(frame * hann)).astype(np.float32) @ band
        spec[f] = 20.0 * np.log10(np.maximum(mag, AMIN)) if log_scale else mag
    loop_s = time.perf_counter() - t
    scaled_loop_s = loop_s * n_frames / max(loop_frames, 1)
    stage(f"per-frame loop, frames 0-{loop_frames - 1} of {n_frames}", loop_s, "measured")
    # the rest of the spectrogram: vectorised, a bounded chunk at a time (only to hold the real whole-file
    # array; its time is replaced by the scaled loop time). Checks the loop against the library first.
    max_diff = float("nan")
    if loop_frames:
        k = min(loop_frames, 4096)
        ref = spectrogram(x[:(k - 1) * hop + n_fft], framing)
        max_diff = float(np.abs(ref - spec[:k]).max())
    t = time.perf_counter()
    chunk = 4096
    for a in range(loop_frames, n_frames, chunk):
        b = min(n_frames, a + chunk)
        spec[a:b] = spectrogram(x[a * hop:(b - 1) * hop + n_fft], framing)
    fill_s = time.perf_counter() - t
    if loop_frames < n_frames:
        stage(f"  frames {loop_frames}-{n_frames - 1}: filled by the vectorised front end (not counted)",
              fill_s, "measured, excluded")
        stage(f"  per-frame loop over all {n_frames} frames (scaled x{n_frames / loop_frames:.1f})",
              scaled_loop_s, "scaled")

    # 3. all windows at once, normalised (x - mean) / (std + 1), in place on one contiguous copy
    t = time.perf_counter()
    w, s = framing.window, framing.stride
    n_win = framing.n_windows(x.shape[0])
    view = np.lib.stride_tricks.sliding_window_view(spec, w, axis=0)[::s][:n_win]  # (N, B, W) view
    windows = np.ascontiguousarray(view.transpose(0, 2, 1))  # (N, W, B) materialised
    windows -= windows.mean(axis=1, keepdims=True) if framing.centre_bins else windows.mean(axis=(1, 2), keepdims=True)
    windows /= windows.std(axis=(1, 2), keepdims=True) + 1.0
    stage(f"all {n_win} windows materialised ({windows.nbytes / MIB:,.0f} MiB)", time.perf_counter() - t, "measured")

    # 4. encoder + head over all windows, batches of 64
    t = time.perf_counter()
    emb = []
    with torch.inference_mode():
        for a in range(0, n_win, args.batch):
            emb.append(m.encoder(torch.from_numpy(windows[a:a + args.batch])))
        z = torch.cat(emb) if emb else torch.zeros(0, m.encoder.config.embedding_dim)
        scores = torch.sigmoid(m.head(z)).numpy()
    stage(f"encoder + head, batches of {args.batch}", time.perf_counter() - t, "measured")

    # 5. regions
    t = time.perf_counter()
    regions = find_regions(scores, framing, rule=rule, n_samples=x.shape[0])
    stage("regions", time.perf_counter() - t, "measured")

    peak = peak_rss_mb()
    counted = [st["seconds"] for st in stages if st["how"] in ("measured", "scaled")
               and not (st["stage"].startswith("per-frame loop, frames") and loop_frames < n_frames)]
    return {"kind": "naive", "wall": float(sum(counted)), "audio_s": x.shape[0] / sr, "base_rss_mb": base,
            "peak_rss_mb": peak, "windows": int(n_win), "regions": len(regions), "stages": stages,
            "loop_frames": int(loop_frames), "n_frames": int(n_frames), "loop_s": loop_s,
            "scaled_loop_s": scaled_loop_s, "fill_s": fill_s, "loop_max_abs_diff_db": max_diff,
            "tuned": tuned, "load_start": load_start, "load_end": load1(),
            "array_mb": {"audio": x.nbytes / MIB, "spectrogram": spec.nbytes / MIB, "windows": windows.nbytes / MIB}}


WORKERS = {"stream": worker_stream, "naive": worker_naive}


# ------------------------------------------------------------------------------------ driver


def run_worker(args, kind: str, wav: Path, **extra) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--wav", str(wav),
           "--model", str(args.model), "--threads", str(args.threads),
           "--naive-minutes", str(args.naive_minutes), "--batch", str(args.batch),
           "--threshold", str(args.threshold)]
    for k, v in extra.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    return run_json_worker(cmd, threads=args.threads, omp_wait_policy=args.omp_wait_policy)


def plan_lengths(hours: list[float], free: int) -> tuple[list[float], str | None]:
    """The lengths to write, shortened if the disk is nearly full (with the note to print)."""
    need = sum(wav_bytes(h) for h in hours)
    if free >= MIN_FREE_DISK and need <= free - GIB:
        return hours, None
    budget = max(0.0, 0.4 * free - 64 * MIB)  # leave most of a small disk alone
    scale = min(1.0, budget / need) if need else 1.0
    short = [max(1 / 60, round(h * scale, 4)) for h in hours]
    note = (f"**only {free / GIB:.1f} GiB free disk** (need >= {MIN_FREE_DISK / GIB:.0f} GiB and "
            f"{need / GIB:.2f} GiB for {', '.join(fmt_len(h * 3600) for h in hours)}): lengths shortened to "
            f"{', '.join(fmt_len(h * 3600) for h in short)}; the numbers below are NOT for the requested lengths")
    return short, note


def naive_estimate_bytes(hours: float, framing) -> int:
    """Rough naive working set: float32 audio + (F, B) spectrogram + 1.5 x the (N, W, B) windows."""
    n = round(hours * 3600 * RATE)
    f = framing.n_frames(n)
    nw = framing.n_windows(n)
    return 4 * n + 4 * f * framing.n_bins + int(1.5 * 4 * nw * framing.window * framing.n_bins)


def naive_delta_at(naive: dict, factor: float) -> float:
    """Naive Δ RSS (MiB) at ``factor`` x the measured length: the length-proportional part (audio,
    spectrogram, and twice the windows: ``std`` makes one window-sized temporary) scales, the rest
    (encoder buffers, model) does not."""
    am = naive["array_mb"]
    length_part = am["audio"] + am["spectrogram"] + 2 * am["windows"]
    fixed = max(0.0, naive["peak_rss_mb"] - naive["base_rss_mb"] - length_part)
    return fixed + length_part * factor


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hours", type=float, nargs="+", default=[1.0, 4.0],
                   help="lengths of the synthetic recordings in hours (default 1 4); the naive way runs on the first")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch / BLAS (default 2)")
    p.add_argument("--naive-minutes", type=float, default=5.0,
                   help="minutes of audio timed with the per-frame loop, scaled to the file (default 5; 0 = all)")
    p.add_argument("--batch", type=int, default=64, help="windows per encoder batch on both sides (default 64)")
    p.add_argument("--threshold", type=float, default=0.485,
                   help="region threshold on both sides (default 0.485: the untrained placeholder's scores sit "
                        "around 0.47-0.49, so ~10%% of windows -- mostly the whistles -- make regions and the "
                        "database gets real rows)")
    p.add_argument("--omp-wait-policy", choices=["PASSIVE", "ACTIVE"], default=None,
                   help="set OMP_WAIT_POLICY for the workers (default: inherit the environment). PASSIVE avoids "
                        "the collapse of multi-threaded torch when other processes hold the cores")
    p.add_argument("--no-naive", action="store_true", help="skip the naive run")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 and 6 minutes, naive loop timed on 1 minute")
    p.add_argument("--tmpdir", type=Path, default=None, help="where to write the temporary files (default: system tmp)")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--wav", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return 0

    if args.quick:
        args.hours, args.naive_minutes = [2 / 60, 6 / 60], 1.0
    if any(h <= 0 for h in args.hours):
        p.error("--hours must be > 0")

    sys.path.insert(0, str(ROOT / "tests"))
    import torch
    from helpers import placeholder_model

    from sonotype import __version__
    from sonotype.features.frontend import PRESETS

    framing = PRESETS["dolphin"].at_rate(RATE)  # placeholder_model's default front end
    notes = []
    t_start = time.perf_counter()
    load_before = load3()
    tmp_parent = str(args.tmpdir) if args.tmpdir else None
    if args.tmpdir:
        args.tmpdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sonotype-bench-detect-", dir=tmp_parent) as tmp:
        tmp = Path(tmp)
        free = shutil.disk_usage(tmp).free
        hours, note = plan_lengths(list(args.hours), free)
        if note:
            notes.append(note)
            print(note, file=sys.stderr)
        args.model = placeholder_model(tmp / "placeholder.pt")
        wavs = []
        for i, h in enumerate(hours):
            wav = tmp / f"synthetic_{i}_{h:g}h.wav"
            t0 = time.perf_counter()
            write_synthetic(wav, h, seed=i)
            print(f"wrote {fmt_len(h * 3600)} ({wav.stat().st_size / MIB:,.0f} MiB) to {wav} in "
                  f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
            wavs.append((h, wav))

        rows = []
        for i, (h, wav) in enumerate(wavs):
            print(f"streaming detect_many: {fmt_len(h * 3600)} ...", file=sys.stderr)
            rows.append(run_worker(args, "stream", wav, db=tmp / f"results_{i}.db"))

        naive = None
        h0, wav0 = wavs[0]
        est = naive_estimate_bytes(h0, framing)
        avail = mem_available()
        if args.no_naive:
            notes.append("naive run skipped (--no-naive)")
        elif avail is not None and est > 0.8 * avail:
            notes.append(f"naive run on {fmt_len(h0 * 3600)} skipped: its arrays alone need ~{est / GIB:.1f} GiB, "
                         f"more than 80% of the {avail / GIB:.1f} GiB available")
        else:
            print(f"naive (whole file in memory): {fmt_len(h0 * 3600)} ...", file=sys.stderr)
            naive = run_worker(args, "naive", wav0)
        avail_end = mem_available()
    load_after = load3()

    # ---------------------------------------------------------------------------- table
    def xrt(r):
        return r["audio_s"] / r["wall"]

    by_len = {round(r["audio_s"]): r for r in rows}
    stream0 = rows[0]
    out = [f"## sonotype {__version__}: detection pipeline on long recordings, streaming vs naive\n"]
    out.append(f"- audio: synthetic {RATE} Hz mono 16-bit WAV (noise, steady tones, gated FM whistles, chirps), "
               f"{', '.join(fmt_len(h * 3600) for h in hours)}; model: seeded untrained placeholder detector "
               f"(`tests/helpers.placeholder_model`, front end `dolphin`: n_fft {framing.n_fft}, hop {framing.hop}, "
               f"{framing.n_bins} bins {framing.fmin:g}-{framing.fmax:g} Hz, windows of {framing.window} frames "
               f"every {framing.stride} frames)")
    out.append(f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, "
               f"{(avail_end or 0) / GIB:.1f} GiB RAM available, Python {platform.python_version()}, "
               f"numpy {np.__version__}, torch {torch.__version__}; `--threads {args.threads}` (torch + "
               f"OMP/OpenBLAS/MKL), OMP_WAIT_POLICY={args.omp_wait_policy or os.environ.get('OMP_WAIT_POLICY', 'unset')}; "
               f"encoder batch {args.batch}; region threshold {args.threshold:g}")
    out.append(f"- load average (1/5/15 min): before {load_before}, after {load_after}. Per row: 1-min load at "
               f"the start -> end of that worker. A load above {os.cpu_count()} (the CPU count) means other "
               "processes were competing for the cores and that row's times are pessimistic.")
    out.append("- every row is a fresh subprocess; peak RSS = its `ru_maxrss` (the whole process: Python, torch, "
               "model, buffers); Δ RSS = peak minus the RSS just before the pipeline started (imports and torch "
               "already loaded)")
    for n in notes:
        out.append(f"- {n}")
    out.append("")
    out.append("| pipeline | audio | wall s | x real time | speed ratio (stream / naive) | peak RSS MiB | Δ RSS MiB "
               "| RSS ratio (naive / stream, peak · Δ) | windows | regions | load start -> end |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        ratio, rss_ratio = "", ""
        if naive is not None and abs(r["audio_s"] - naive["audio_s"]) < 1:
            ratio = f"**{xrt(r) / xrt(naive):.2f}x**"
        out.append(f"| streaming `detect_many` -> SQLite | {fmt_len(r['audio_s'])} | {r['wall']:.1f} | "
                   f"{xrt(r):,.1f} | {ratio} | {r['peak_rss_mb']:,.0f} | {r['peak_rss_mb'] - r['base_rss_mb']:,.0f} | "
                   f"{rss_ratio} | {r['windows']:,} | {r['regions']:,} | {r['load_start']:.2f} -> {r['load_end']:.2f} |")
    if naive is not None:
        s = by_len.get(round(naive["audio_s"]), stream0)
        out.append(f"| naive: whole file in memory, per-frame loop (scaled) | {fmt_len(naive['audio_s'])} | "
                   f"{naive['wall']:.1f} | {xrt(naive):,.1f} | 1.00x | {naive['peak_rss_mb']:,.0f} | "
                   f"{naive['peak_rss_mb'] - naive['base_rss_mb']:,.0f} | "
                   f"**{naive['peak_rss_mb'] / s['peak_rss_mb']:.1f}x** · "
                   f"{(naive['peak_rss_mb'] - naive['base_rss_mb']) / max(s['peak_rss_mb'] - s['base_rss_mb'], 1):.1f}x"
                   f" | {naive['windows']:,} | {naive['regions']:,} | "
                   f"{naive['load_start']:.2f} -> {naive['load_end']:.2f} |")
    for h, _ in wavs[1:]:
        if naive is None:
            break
        est_delta = naive_delta_at(naive, h / hours[0])
        est_wall = naive["wall"] * h / hours[0]
        out.append(f"| naive (not run, estimate) | {fmt_len(h * 3600)} | ~{est_wall:.0f} | | | "
                   f"~{naive['base_rss_mb'] + est_delta:,.0f} | ~{est_delta:,.0f} | | | | not run |")
    out.append("")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        out.append(f"Streaming peak RSS: {a['peak_rss_mb']:,.0f} MiB for {fmt_len(a['audio_s'])} vs "
                   f"{b['peak_rss_mb']:,.0f} MiB for {fmt_len(b['audio_s'])} "
                   f"({b['audio_s'] / a['audio_s']:.0f}x the audio, {b['peak_rss_mb'] / a['peak_rss_mb']:.2f}x the "
                   f"peak): memory does not grow with the recording's length. SQLite database (+ WAL) files: "
                   f"{', '.join(format(r['db_kib'], ',.0f') for r in rows)} KiB.")
        out.append("")
    if naive is not None:
        out.append(f"### naive run, {fmt_len(naive['audio_s'])}: stages\n")
        out.append("| stage | seconds | measured / scaled | RSS after MiB | peak so far MiB |")
        out.append("|---|---:|---|---:|---:|")
        for st in naive["stages"]:
            out.append(f"| {st['stage']} | {st['seconds']:.2f} | {st['how']} | {st['rss_mb']:,.0f} | "
                       f"{st['peak_mb']:,.0f} |")
        out.append(f"| **total counted** (wall s in the table) | **{naive['wall']:.1f}** | | | "
                   f"**{naive['peak_rss_mb']:,.0f}** |")
        out.append("")
        am = naive["array_mb"]
        scaled = naive["loop_frames"] < naive["n_frames"]
        out.append(
            f"Measured vs scaled: the per-frame loop (`np.fft.rfft(frame * hann)`, `@ band`, dB) ran on "
            f"{naive['loop_frames']:,} of {naive['n_frames']:,} frames "
            + (f"(first {naive['loop_frames'] * framing.hop / RATE / 60:.1f} min) in {naive['loop_s']:.2f} s; its "
               f"time for the whole file is scaled linearly to {naive['scaled_loop_s']:.1f} s. The remaining frames "
               f"were computed by the vectorised front end ({naive['fill_s']:.1f} s, not counted) into the same "
               f"whole-file array, so the **peak RSS is real**: the whole file's audio ({am['audio']:,.0f} MiB "
               f"float32), spectrogram ({am['spectrogram']:,.0f} MiB) and normalised windows "
               f"({am['windows']:,.0f} MiB) were all held at once. "
               if scaled else "(all of them: nothing scaled). ")
            + f"Every other stage was timed for the whole file. Loop vs library spectrogram on the first frames: "
            f"max |diff| = {naive['loop_max_abs_diff_db']:.1e} dB. The naive wall time excludes hashing and the "
            f"database (the streaming rows include both) and uses `tune_allocator()` like the streaming path"
            + ("" if naive["tuned"] else " (no-op here: not glibc)") + ".")
        out.append("")
        if len(wavs) > 1:
            h = wavs[-1][0]
            est = naive_delta_at(naive, h / hours[0])
            day = naive_delta_at(naive, 24 / hours[0])
            out.append(
                f"Naive {fmt_len(h * 3600)} not run (memory): its working set grows linearly with length, so it "
                f"would need ~{est / 1024:.1f} GiB on top of the {naive['base_rss_mb'] / 1024:.1f} GiB process "
                f"(~{(naive['base_rss_mb'] + est) / 1024:.1f} GiB peak; {(avail_end or 0) / GIB:.1f} GiB RAM "
                f"available here, shared with other processes), and ~{day / 1024:.0f} GiB for a 24 h recording. "
                f"Estimate: the measured {fmt_len(naive['audio_s'])} arrays (audio + spectrogram + 2 x windows = "
                f"{am['audio'] + am['spectrogram'] + 2 * am['windows']:,.0f} MiB) scaled by length, plus the rest "
                f"of its Δ RSS unscaled; its wall time scaled by length.")
            out.append("")
    out.append(f"Total benchmark time {time.perf_counter() - t_start:.0f} s (including writing the audio). "
               "Reads come from the page cache (the files were just written).")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
