#!/usr/bin/env python
"""Right-whale upcalls with ``sonotype train-detector --backend birdnet``: a check and a CV threshold.

Splits as ``scripts/narw_experiment`` (train on two narw + two background files, test on the third of each).
Works from the embeddings ``scripts/narw_backends.py`` cached (``x{speedup}-hop{hop of recording}-{stem}.npy``),
so it embeds nothing itself:

1. consistency: the checkpoint's head on the cached embeddings of the held-out files, through the region
   rule at the checkpoint's threshold, gives exactly the regions ``sonotype detect`` stored in ``--db``
   (i.e. the command line embeds, labels and localises what the script embedded);
2. the event threshold by two-fold cross-validation on the training files only (fold = one narw + one
   background file, as ``scripts/narw_quality2.py``): a head with the checkpoint's settings trained on one
   fold scores the other fold's whole files; ``choose_event_threshold`` over both folds. Prints the
   threshold for ``sonotype detect --threshold``.

    PYTHONPATH=src python scripts/narw_backend_detector.py --model runs/narw-bdet/det-bn16.pt \
        --db sqlite:///runs/narw-bdet/bn16.db --cache runs/narw-bn
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from sonotype.detection.backend import backend_grid, fit_logistic_head
from sonotype.detection.detector import DetectorConfig
from sonotype.detection.events import ScoredSpan, choose_event_threshold
from sonotype.detection.regions import RegionRule, find_regions
from sonotype.models.backends import BackendInfo
from sonotype.models.checkpoint import load_checkpoint
from sonotype.models.embed import head_scores
from sonotype.models.lstm_v3 import DetectorHead
from sonotype.store import open_store
from sonotype.training.dataset import make_items, read_annotations

D = Path(os.environ.get("SONOTYPE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "narw-upcalls"
FOLDS = [("narw/NOPP6_EST_20090328_000000.wav", "background/GSC_2000-05-19_00-00-00.wav"),
         ("narw/NOPP6_EST_20090328_001500.wav", "background/GSC_2000-05-19_00-15-00.wav")]
TEST = ("narw/NOPP6_EST_20090328_003000.wav", "background/GSC_2000-05-19_00-30-00.wav")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--db", required=True, help="the database `sonotype detect` wrote the held-out files into")
    ap.add_argument("--cache", required=True, help="scripts/narw_backends.py's --out folder")
    a = ap.parse_args(argv)
    ck = load_checkpoint(a.model, kind="detector")
    info, cfg = BackendInfo.from_dict(ck.detector.backend), DetectorConfig.from_dict(dict(ck.detector.config))
    head = DetectorHead(info.dim, dropout=0.0)
    head.load_state_dict(ck.detector.head)
    events = read_annotations(D / "annotations_train.csv")
    rel = [r for f in FOLDS for r in f] + list(TEST)
    items = {r: it for r, it in zip(rel, make_items([D / r for r in rel], annotations=events))}
    emb = {r: np.load(Path(a.cache) / f"x{info.speedup:g}-hop{info.hop_s * info.speedup:g}-{Path(r).stem}.npy")
           for r in rel}
    grid = {r: backend_grid(info, items[r].sample_rate) for r in rel}

    # 1. the stored regions = the head on the script's cached embeddings
    with open_store(a.db, read_only=True) as store:
        run = store.run_or_latest(None)
        by_path = {}
        for g in store.regions(run_id=run):
            by_path.setdefault(Path(store.recording(g.recording_id).path).name, []).append((g.region.start, g.region.stop))
    rule = RegionRule(threshold=ck.detector.threshold)
    for r in TEST:
        mine = [(g.start, g.stop) for g in find_regions(head_scores(head, emb[r]), grid[r], rule=rule,
                                                         n_samples=items[r].frames)]
        stored = sorted(by_path.get(Path(r).name, []))
        print(f"{r}: {len(stored)} stored regions, {len(mine)} from the cached embeddings: "
              f"{'identical' if mine == stored else 'DIFFERENT'}")

    # 2. event threshold by two-fold CV on the training files
    spans = {}
    for k in range(2):
        tr, va = FOLDS[1 - k], FOLDS[k]
        xs, ys = [], []
        for r in tr:
            lab = items[r].window_labels(len(emb[r]), grid[r], min_overlap=cfg.min_overlap)
            xs.append(emb[r][lab >= 0]); ys.append(lab[lab >= 0])
        h = fit_logistic_head(np.concatenate(xs), np.concatenate(ys), c=cfg.head_c, balance=cfg.balance, seed=cfg.seed)
        for r in va:
            spans[r] = ScoredSpan(head_scores(h, emb[r]), grid[r], 0, items[r].frames, tuple(items[r].events))
    th, sc = choose_event_threshold(spans, rule=RegionRule(), target_precision=cfg.target_precision)
    print(f"2-fold CV on the training files: event threshold {th:.4f} (recall {sc.recall:.3f}, precision "
          f"{sc.precision:.3f}, {sc.false_alarms_per_hour:.1f} false alarms/h on {sc.hours:.2f} h); the checkpoint's, "
          f"chosen on the validation tails: {ck.detector.threshold:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
