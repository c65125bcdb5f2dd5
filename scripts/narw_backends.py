#!/usr/bin/env python
"""Right-whale upcalls with a pretrained backend: does playing the 2 kHz audio faster help BirdNET?

Splits as ``scripts/narw_experiment``: train on two narw + two background files, test on the held-out
third of each. For each speed-up ``f`` every file is embedded on a grid (one 3-s BirdNET window =
``3 f`` s of recording, one window per ``--hop`` s of recording). A logistic-regression head is
trained on the windows (positive: holds at least half of an annotated upcall; negative: touches
none). Speed-up, regularisation and the event threshold are chosen by two-fold cross-validation
on the training files only (fold = one narw + one background file); the test files are scored
once. Event rule (PAM challenge): a detection (centre of a window at a local score maximum above
the threshold, at most one per window length) is true if within 1.5 s of an annotated upcall.

    .venv/bin/python scripts/narw_backends.py [--speedups 1 4 16] [--hop 1.0] [--out runs/narw-bn]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.preprocessing import StandardScaler

from sonotype.audio.io import audio_info
from sonotype.models.backends import load_backend
from sonotype.training.dataset import read_annotations
from sonotype.training.dataset import span_labels as dataset_span_labels

D = Path(os.environ.get("SONOTYPE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "narw-upcalls"
FOLDS = [("narw/NOPP6_EST_20090328_000000.wav", "background/GSC_2000-05-19_00-00-00.wav"),
         ("narw/NOPP6_EST_20090328_001500.wav", "background/GSC_2000-05-19_00-15-00.wav")]
TEST = ("narw/NOPP6_EST_20090328_003000.wav", "background/GSC_2000-05-19_00-30-00.wav")
TOLERANCE_S = 1.5


def embeddings(f: float, hop: float, rel: str, out: Path) -> np.ndarray:
    cache = out / f"x{f:g}-hop{hop:g}-{Path(rel).stem}.npy"
    if cache.exists():
        return np.load(cache)
    b = load_backend("birdnet", hop_s=hop / f, speedup=f)
    t = time.time()
    e = b.embed_span(D / rel)
    print(f"  embedded {rel} at x{f:g}: {e.shape[0]} windows in {time.time() - t:.0f} s", flush=True)
    np.save(cache, e)
    return e


def window_labels(n: int, f: float, hop: float, events) -> np.ndarray:
    """Labels of BirdNET's 3-s windows at speed-up ``f`` (``3 f`` s of recording, every ``hop`` s)."""
    return span_labels(n, 3.0 * f, hop, events)


def span_labels(n: int, w: float, hop: float, events) -> np.ndarray:
    """Labels of ``n`` spans of ``w`` s every ``hop`` s: 1 = holds >= half of an upcall, 0 = touches none,
    -1 = ignore (the library's rule, :func:`sonotype.training.dataset.span_labels`, which
    ``sonotype train-detector --backend`` uses too)."""
    return dataset_span_labels(n, window_s=w, hop_s=hop, events=events)


def detections(scores: np.ndarray, f: float, hop: float, threshold: float) -> np.ndarray:
    """Centres (s) of windows at local maxima above ``threshold``, at least one window length apart."""
    w = 3.0 * f
    order = np.argsort(-scores, kind="stable")
    taken: list[float] = []
    for i in order:
        if scores[i] < threshold:
            break
        c = i * hop + w / 2
        if all(abs(c - t) >= w for t in taken):
            taken.append(c)
    return np.array(sorted(taken))


def event_counts(det: np.ndarray, events) -> tuple[int, int, int]:
    """(upcalls found, detections matching an upcall, detections) under the 1.5-s rule."""
    iv = np.array([(e.start - TOLERANCE_S, e.end + TOLERANCE_S) for e in events]).reshape(-1, 2)
    hit = (det[:, None] >= iv[None, :, 0]) & (det[:, None] <= iv[None, :, 1]) if len(det) else np.zeros((0, len(iv)), bool)
    return int(hit.any(0).sum()), int(hit.any(1).sum()), len(det)


def event_table(per_file, f, hop, thresholds):
    """Per threshold: recall, precision, F1, false alarms/h over ``per_file`` = [(scores, events, hours)]."""
    rows = []
    for th in thresholds:
        n_ev = found = match = n_det = 0
        hours = 0.0
        for s, evs, h in per_file:
            a, b, c = event_counts(detections(s, f, hop, th), evs)
            n_ev += len(evs); found += a; match += b; n_det += c; hours += h
        r = found / n_ev if n_ev else float("nan")
        p = match / n_det if n_det else 1.0
        rows.append((th, r, p, 2 * p * r / (p + r) if p + r else 0.0, (n_det - match) / hours))
    return rows


def fit(xs, ys, c, *, max_iter: int = 2000):
    """A standardised, class-balanced logistic regression on the labelled rows (label >= 0); returns P(call)."""
    x, y = np.concatenate(xs), np.concatenate(ys)
    keep = y >= 0
    sc = StandardScaler().fit(x[keep])
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=max_iter).fit(sc.transform(x[keep]), y[keep])
    return lambda z: clf.predict_proba(sc.transform(z))[:, 1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speedups", type=float, nargs="+", default=[1.0, 4.0, 16.0])
    ap.add_argument("--hop", type=float, default=1.0,
                    help="seconds of recording between windows at speed-up 1; at speed-up f, max(hop, 3 f / 8) "
                         "(eight windows per window length)")
    ap.add_argument("--out", default="runs/narw-bn")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    ann = read_annotations(D / "annotations_train.csv")
    files = [r for fold in FOLDS for r in fold] + list(TEST)
    hours = {r: audio_info(D / r).duration_s / 3600 for r in files}
    grid = np.round(np.linspace(0.05, 0.99, 95), 3)
    results = []
    for f in a.speedups:
        hop = max(a.hop, 3.0 * f / 8)
        emb = {r: embeddings(f, hop, r, out) for r in files}
        ev = {r: ann.get(Path(r).name, []) for r in files}
        lab = {r: window_labels(len(emb[r]), f, hop, ev[r]) for r in files}
        best = None
        for c in (0.001, 0.01, 0.1, 1.0):
            cv_scores, aps = [], []
            for k in range(2):
                tr, va = FOLDS[1 - k], FOLDS[k]
                model = fit([emb[r] for r in tr], [lab[r] for r in tr], c)
                for r in va:
                    cv_scores.append((model(emb[r]), ev[r], hours[r]))
                y = np.concatenate([lab[r] for r in va]); s = np.concatenate([cv_scores[-2][0], cv_scores[-1][0]])
                aps.append(average_precision_score(y[y >= 0], s[y >= 0]))
            rows = event_table(cv_scores, f, hop, grid)
            th_row = max(rows, key=lambda t: (t[3], t[0]))  # best event F1 on the validation folds
            cand = (th_row[3], float(np.mean(aps)), c, th_row)
            if best is None or cand[:2] > best[:2]:
                best = cand
        cv_f1, cv_ap, c, th_row = best
        model = fit([emb[r] for fold in FOLDS for r in fold], [lab[r] for fold in FOLDS for r in fold], c)
        test = [(model(emb[r]), ev[r], hours[r]) for r in TEST]
        y = np.concatenate([lab[r] for r in TEST]); s = np.concatenate([t[0] for t in test])
        ap_test = average_precision_score(y[y >= 0], s[y >= 0])
        th, r, p, f1, fa = event_table(test, f, hop, [th_row[0]])[0]
        results.append((f, c, cv_ap, cv_f1, th, ap_test, r, p, f1, fa, hop))
        curve = event_table(test, f, hop, grid)
        np.savetxt(out / f"test-pr-x{f:g}.csv", np.array(curve), delimiter=",",
                   header="threshold,recall,precision,f1,false_alarms_per_h", comments="")
    chosen = max(results, key=lambda t: (t[3], t[2]))
    print(f"\nBirdNET V2.4 + logistic head, right-whale upcalls; settings by 2-fold CV on the training "
          f"files; test = {TEST[0]} + {TEST[1]} ({sum(len(ann.get(Path(r).name, [])) for r in TEST)} upcalls, "
          f"{sum(hours[r] for r in TEST):.2f} h)")
    print(f"{'speed-up':>8} {'hop s':>5} {'C':>6} {'CV AP':>6} {'CV F1':>6} {'thresh':>6} | {'test AP':>7} {'recall':>6} "
          f"{'prec.':>6} {'F1':>6} {'FA/h':>6}")
    for t in results:
        mark = "  <- chosen on CV" if t is chosen else ""
        print(f"{t[0]:>8g} {t[10]:>5g} {t[1]:>6g} {t[2]:>6.3f} {t[3]:>6.3f} {t[4]:>6.2f} | {t[5]:>7.3f} {t[6]:>6.3f} {t[7]:>6.3f} "
              f"{t[8]:>6.3f} {t[9]:>6.1f}{mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
