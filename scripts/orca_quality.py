"""Killer-whale call grouping with every setting chosen on orca-calls/vocabulary, never on the catalog.

1. The selection table: BirdNET V2.4 (extra sonotype[birdnet]) played at x0.5 / x1 / x2, each with
   every pooling and scaling, scored on the vocabulary (its loudest 2-s chunks, as `cluster-eval
   --select-on` cuts it): ARI of the average-linkage cut at k = types, and leave-one-out 1-NN.
2. The catalog (45 clips), scored once with 95 % intervals: `sonotype cluster-eval --select-on
   vocabulary --bootstrap 2000` with the distilled LSTM-V3 encoder and BirdNET at the speed-up that
   table 1 picks (`--select-speedups 0.5 1 2`), then with the self-supervised encoder and BirdNET at
   real speed (x1, the default: no choice made).

    PYTHONPATH=src python scripts/orca_quality.py [--runs runs/orca] [--out runs/orca-quality] [--skip-catalog]

Needs the encoders of scripts/orca_experiment (RUNS/encoder.best.pt, RUNS/student.best.pt).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from sonotype.api import cluster_eval
from sonotype.discovery.clustereval import (
    POOLINGS,
    SELECT_CLUSTERING,
    evaluate_representations,
    labelled_clips,
    loudest_chunks,
)
from sonotype.models.backends import load_backend

SPEEDUPS = (0.5, 1.0, 2.0)
SCALINGS = ("zscore-l2", "none")


def selection_table(vocabulary: Path, *, hop: float) -> list[dict]:
    """Every (speed-up, pooling, scaling) of BirdNET scored on the vocabulary chunks."""
    sel = loudest_chunks(labelled_clips([vocabulary], log=lambda s: None))
    labels = np.array([c.label for c in sel]).astype(str)
    key = SELECT_CLUSTERING.format(n=len(set(labels.tolist())))
    rows = []
    for s in SPEEDUPS:
        b = load_backend("birdnet", hop_s=hop, speedup=s)
        t = time.perf_counter()
        seqs = [b.embed_span(c.path, channel=c.channel, start=c.start, stop=c.stop) for c in sel]
        took = time.perf_counter() - t
        for pooling in POOLINGS:
            for scaling in SCALINGS:
                r = evaluate_representations({"x": seqs}, labels, pooling=pooling, scaling=scaling)["x"]
                rows.append({"speedup": s, "pooling": pooling, "scaling": scaling, "ari": r.scores[key]["ari"],
                             "nmi": r.scores[key]["nmi"], "nn_accuracy": r.nn_accuracy, "embed_s": took})
    print(f"selection set: {len(sel)} chunks of {len(set(labels.tolist()))} types from {vocabulary}")
    print(f"{'speed-up':>8} {'pooling':<9} {'scaling':<10} {'ARI':>6} {'NMI':>6} {'1-NN':>6}")
    for r in rows:
        print(f"{r['speedup']:>8g} {r['pooling']:<9} {r['scaling']:<10} {r['ari']:>6.3f} {r['nmi']:>6.3f} "
              f"{r['nn_accuracy']:>6.3f}")
    best = max(rows, key=lambda r: (r["ari"], r["nn_accuracy"]))
    print(f"chosen (best ARI, then 1-NN): x{best['speedup']:g}, {best['pooling']}, {best['scaling']}")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", default="runs/orca", help="folder with encoder.best.pt and student.best.pt")
    ap.add_argument("--out", default="runs/orca-quality")
    ap.add_argument("--hop", type=float, default=0.5, help="BirdNET hop, seconds")
    ap.add_argument("--skip-catalog", action="store_true", help="only the selection table")
    a = ap.parse_args()
    data = Path(os.environ.get("SONOTYPE_DATA", "../shared/data")) / "orca-calls"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = selection_table(data / "vocabulary", hop=a.hop)
    (out / "selection.json").write_text(json.dumps(rows, indent=1))
    if a.skip_catalog:
        return 0
    # the distilled encoder, with BirdNET's speed-up chosen on the vocabulary; the self-supervised encoder,
    # with BirdNET at real speed (the default, chosen by nobody); pooling and scaling chosen on the vocabulary
    for name, speedups in (("student", SPEEDUPS), ("encoder", ())):
        what = "speed-up chosen on the vocabulary" if speedups else "speed-up x1 (default)"
        print(f"== catalog-2018, {name}.best.pt, BirdNET {what}")
        cluster_eval([str(data / "catalog-2018")], model=str(Path(a.runs) / f"{name}.best.pt"), backends=("birdnet",),
                     hop=a.hop, select_on=(str(data / "vocabulary"),), select_speedups=speedups, bootstrap=2000,
                     json_out=str(out / f"cluster-eval-{name}.json"), progress=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
