#!/usr/bin/env python
"""Detectors on real right-whale recordings: detection speed next to event quality, so a user can choose.

Runs each detector checkpoint given (an LSTM-V3 one, one on a pretrained backend, a fusion of them: e.g. the
three ``scripts/narw_fused`` writes) over the held-out third of the right-whale set (one narw and one
background recording, 0.5 h at 2 kHz), each in a fresh worker process on ``--threads`` CPU threads, through
``sonotype.runner.batch.detect_many`` into a fresh SQLite database, then scores the stored regions against
the annotations (``evaluate-events``: overlap, PAM 1.5-s and one-to-one rules). A fused detector is timed twice
in the same run: as ``detect`` runs it (the cascade: its other members score only near windows that can
pass the threshold) and, as the baseline, with every member scoring every window; the two must store the
same regions.

    .venv/bin/python bench/bench_detectors.py runs/fused/lstm.pt runs/fused/bn4.pt runs/fused/fused.pt --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import load1, peak_rss_mb, run_json_worker

DATA = Path(os.environ.get("SONOTYPE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "narw-upcalls"
TEST = ("narw/NOPP6_EST_20090328_003000.wav", "background/GSC_2000-05-19_00-30-00.wav")


def annotations(folder: Path) -> Path:
    """The held-out files' events as an annotation table (the background file listed with none)."""
    rows = (DATA / "annotations_train.csv").read_text().splitlines()
    keep = [rows[0]] + [r for r in rows[1:] if r.split(",")[0] == Path(TEST[0]).name] + [f"{Path(TEST[1]).name},,"]
    p = folder / "annotations-test.csv"
    p.write_text("\n".join(keep) + "\n")
    return p


def worker(a) -> dict:
    from sonotype import api
    from sonotype.detection.fusion import FusedDetector, load_detector
    from sonotype.detection.regions import find_regions
    from sonotype.runner.batch import detect_many
    files = [str(DATA / r) for r in TEST]
    db = f"sqlite:///{a.db}"
    t = time.perf_counter()
    if a.no_cascade:  # the baseline: every member scores every window (what detect did before the cascade)
        from sonotype.audio.io import open_recording
        m = load_detector(a.model)
        assert isinstance(m, FusedDetector), f"{a.model}: --no-cascade is for fused detectors"
        regions = []
        for f in files:
            rec = open_recording(f)
            s = m.file_scores(f, channel=0, sample_rate=rec.sample_rate)
            regions.append([(r.start, r.stop) for r in find_regions(s, m.grid(rec.sample_rate),
                                                                     rule=_rule(m), n_samples=rec.frames)])
        dt = time.perf_counter() - t
        return {"seconds": dt, "regions": sorted(r for r in regions if r), "peak_mb": peak_rss_mb()}
    s = detect_many(files, model=a.model, db=db, progress=False, log=lambda m: None)
    dt = time.perf_counter() - t
    ev = api.evaluate_events(db=db, annotations=str(a.annotations), log=lambda m: None)
    from sonotype.store import open_store
    with open_store(db, read_only=True) as store:
        rows = store.regions(run_id=s.run_id)
        regions = [[(r.region.start, r.region.stop) for r in rows if r.recording_id == rid]
                   for rid in sorted({r.recording_id for r in rows})]
    return {"seconds": dt, "audio_s": s.audio_seconds, "events": ev, "regions": sorted(regions),
            "peak_mb": peak_rss_mb()}


def _rule(m):
    from sonotype.detection.detect import default_rule
    return default_rule(m)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", help="detector checkpoints (LSTM-V3, backend or fused)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", dest="model")
    ap.add_argument("--db")
    ap.add_argument("--annotations")
    ap.add_argument("--no-cascade", action="store_true")
    a = ap.parse_args(argv)
    if a.model:
        print(json.dumps(worker(a)))
        return 0
    if not a.models:
        ap.error("give detector checkpoints, e.g. the three scripts/narw_fused writes")
    from sonotype.models.checkpoint import load_checkpoint
    tmp = Path(tempfile.mkdtemp(prefix="bench-detectors-"))
    ann = annotations(tmp)
    rows = []
    for i, m in enumerate(a.models):
        print(f"detecting with {m} ...", file=sys.stderr, flush=True)
        base = [sys.executable, __file__, "--worker", m, "--db", str(tmp / f"r{i}.db"), "--annotations", str(ann)]
        r = run_json_worker(base, threads=a.threads)
        kind = load_checkpoint(m).kind
        rows.append((m, kind, "detect", r))
        if kind == "fusion":
            full = run_json_worker(base + ["--no-cascade"], threads=a.threads)
            rows.append((m, kind, "every member on every window (baseline)", full))
            assert full["regions"] == r["regions"], f"{m}: the cascade changed the regions"
    hours = rows[0][3]["audio_s"] / 3600
    print(f"\nheld-out right-whale third ({hours:.2f} h at 2 kHz, 8 upcalls), {a.threads} threads, "
          f"load {load1():.1f}\n")
    print("| detector | how | wall s | x real time | peak RSS MiB | overlap R / P, FA/h | PAM 1.5 s R / P | "
          "one-to-one R / P |")
    print("|---|---|---:|---:|---:|---|---|---|")
    for m, kind, how, r in rows:
        x = hours * 3600 / r["seconds"]
        ev = r.get("events")
        if ev:
            o, p, one = ev, ev["pam_rule"], ev["one_to_one"]
            q = (f"{o['recall']:.3f} / {o['precision']:.3f}, {o['false_alarms_per_hour']:.0f} | "
                 f"{p['recall']:.3f} / {p['precision']:.3f} | {one['recall']:.3f} / {one['precision']:.3f}")
        else:
            q = "same regions | | "
        print(f"| {Path(m).name} ({kind}) | {how} | {r['seconds']:.1f} | {x:.0f} | {r['peak_mb']:.0f} | {q} |")
    fused = [(r, rows[k + 1][3]) for k, (m, kind, how, r) in enumerate(rows) if kind == "fusion" and how == "detect"]
    for r, full in fused:
        print(f"\ncascade speed-up over every member on every window: {full['seconds'] / r['seconds']:.2f}x "
              "(the same regions, checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
