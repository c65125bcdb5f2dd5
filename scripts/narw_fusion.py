#!/usr/bin/env python
"""Right-whale upcalls: does fusing BirdNET (A) and LSTM-V3 PCEN (B) window scores beat each alone, at event level?

(A) BirdNET V2.4 at x4 speed-up (12-s windows every 1.5 s of recording) + logistic head (C = 0.001, chosen by
    CV in ``scripts/narw_backends.py``), from the cached embeddings of ``scripts/narw_backends.py``.
(B) the frozen PCEN-pretrained LSTM-V3 encoder, PCEN T = 1.5 s, head with 200 hard negatives (x4), trained on
    the cached stride-8 embeddings and scored on the stride-16 windows, as ``scripts/narw_quality.py``'s
    ``cross_validate``.

Splits as ``scripts/narw_quality.py``: 2-fold CV on the training files (fold = one narw + one background file),
out-of-fold window scores for every training file from heads trained on the other fold. Fusion is on B's window
grid: A's score at each B window's centre (``interp``: linear over A's window centres; ``max``: the highest A
window containing the centre), then ``B^(1-a) A^a`` or a gate ``B * [A > g]``.

Candidates (fixed before any result was seen):
    A alone (its own 12-s grid); B alone; geometric a in {0.25, 0.5, 0.75} x {interp, max}; gate g in {0.5, 0.9}
    (interp).
Scoring (regions by ``find_regions`` with the default ``RegionRule``, as ``sonotype detect``):
    nested CV: the threshold is chosen on one fold's out-of-fold spans (best one-to-one event F1, candidates and
    tie rule as ``choose_event_threshold``) and scored on the other fold; counts summed over both directions.
    Reported under one-to-one (overlap), any-overlap (``sonotype evaluate-events``' default) and the PAM 1.5-s
    rule. Also the optimistic pooled figure: ``choose_event_threshold`` on all four files' spans, scored on them.
Selection rule (fixed beforehand): the best nested-CV one-to-one event F1; ties -> the higher pooled one-to-one F1.

The chosen candidate is then scored once on the held-out third (narw/..._003000 + background/..._00-30-00):
A's head fit on all four training files, B = ``--detector`` (``sonotype train-detector`` on the four training
files), threshold chosen on the pooled out-of-fold spans of the training files (one-to-one F1). A alone and B
alone are scored the same way, and B at its checkpoint's own threshold for reference.

    PYTHONPATH=src python scripts/narw_fusion.py [--out runs/fusion] [--skip-test]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.stats import chi2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from narw_quality import BASE, FOLDS, STRIDE, TEST, Data, cp, train_heads  # noqa: E402

from sonotype.detection.backend import backend_grid, fit_logistic_head  # noqa: E402
from sonotype.detection.events import (  # noqa: E402
    EventScores,
    ScoredSpan,
    choose_event_threshold,
    score_events,
    span_event_scores,
)
from sonotype.detection.regions import RegionRule, find_regions  # noqa: E402
from sonotype.models.backends.base import BackendInfo  # noqa: E402
from sonotype.models.checkpoint import load_model  # noqa: E402
from sonotype.models.embed import file_scores, head_scores  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT  # the checkout whose runs/ holds the cached embeddings and models
A_INFO = BackendInfo(name="birdnet", version="2.4", sample_rate=48000.0, window_s=3.0, hop_s=0.375, dim=1024,
                     speedup=4.0)  # the grid of the cached x4-hop1.5 embeddings
A_C = 0.001
B_SCALE = "pcen1.5"
B_CFG = replace(BASE, stride=STRIDE, scale="pcen", pcen_time=1.5, hard_negatives=200)
CANDIDATES = ([("A alone", "A", None, None), ("B alone", "geo", "interp", 0.0)]
              + [(f"geo a={a:g} {how}", "geo", how, a) for a in (0.25, 0.5, 0.75) for how in ("interp", "max")]
              + [(f"gate A>{g:g}", "gate", "interp", g) for g in (0.5, 0.9)])
PAM_S = 1.5


# --- fusion -------------------------------------------------------------------------------------------------

def a_at(times_s: np.ndarray, a_scores: np.ndarray, grid, *, how: str) -> np.ndarray:
    """A's score at times ``(T,)`` s from A's window scores ``(M,)`` on ``grid``: ``interp`` = linear
    interpolation over A's window centres (held constant beyond the first / last centre); ``max`` = the highest
    score of the A windows ``[start, stop)`` that contain the time (the nearest centre's where none does)."""
    tw = grid.window_times(len(a_scores))  # (M, 2) s
    centres = tw.mean(axis=1)
    t = np.asarray(times_s, np.float64)
    if how == "interp":
        return np.interp(t, centres, a_scores)
    if how != "max":
        raise ValueError(f"how={how!r}; expected 'interp' or 'max'")
    hi = np.searchsorted(tw[:, 0], t, side="right")  # windows [lo, hi) start at or before t ...
    lo = np.searchsorted(tw[:, 1], t, side="right")  # ... and stop after it
    out = np.empty(len(t))
    for i in range(len(t)):
        out[i] = a_scores[lo[i]:hi[i]].max() if hi[i] > lo[i] else a_scores[np.argmin(np.abs(centres - t[i]))]
    return out


def fuse(b: np.ndarray, b_framing, a: np.ndarray, a_grid, *, kind: str, how: str, p: float) -> np.ndarray:
    """Fused scores ``(N,)`` on B's windows: ``geo`` = B^(1-p) A^p; ``gate`` = B where A > p, else 0."""
    t = b_framing.window_times(len(b)).mean(axis=1)
    at = np.clip(a_at(t, a, a_grid, how=how), 0.0, 1.0)
    b = np.asarray(b, np.float64)
    if kind == "geo":
        return b ** (1.0 - p) * at ** p
    return np.where(at > p, b, 0.0)


# --- event scoring ------------------------------------------------------------------------------------------

def span_scores(spans: dict, threshold: float, *, one_to_one: bool = False, tolerance_s: float | None = None
                ) -> EventScores:
    """As ``span_event_scores`` (whole files, first_window 0), with ``one_to_one`` too."""
    rule = RegionRule(threshold=float(threshold))
    regions, events, durations = {}, {}, {}
    for name, sp in spans.items():
        regions[name] = [(g.start_s, g.stop_s) for g in find_regions(sp.scores, sp.framing, rule=rule,
                                                                      n_samples=sp.n_samples)]
        events[name] = list(sp.events)
        durations[name] = sp.n_samples / sp.framing.sample_rate
    return score_events(regions, events, durations, tolerance_s=tolerance_s, one_to_one=one_to_one)


def choose_threshold(spans: dict, candidates: int = 100) -> tuple[float, EventScores]:
    """The threshold with the best one-to-one event F1 on ``spans`` (candidate grid and middle-of-plateau tie
    rule as ``choose_event_threshold``)."""
    allv = np.concatenate([sp.scores for sp in spans.values()])
    grid = np.unique(np.quantile(allv, np.linspace(0.5, 1.0, candidates, endpoint=False)))
    table = [(float(t), span_scores(spans, t, one_to_one=True)) for t in grid]
    top = max(sc.f1 for _, sc in table)
    tied = [ts for ts in table if ts[1].f1 >= top - 1e-12]
    return tied[(len(tied) - 1) // 2]


def add(a: EventScores, b: EventScores) -> EventScores:
    return EventScores(a.events + b.events, a.events_found + b.events_found, a.regions + b.regions,
                       a.regions_matching + b.regions_matching, a.hours + b.hours)


RULES = {"1:1": dict(one_to_one=True), "overlap": {}, "PAM": dict(tolerance_s=PAM_S)}


def nested(spans: dict) -> dict:
    """Threshold chosen on fold k's spans, scored on fold 1-k's, summed over k; per rule."""
    tot: dict = {}
    ths = []
    for k in range(2):
        th, _ = choose_threshold({r: spans[r] for r in FOLDS[k]})
        ths.append(th)
        va = {r: spans[r] for r in FOLDS[1 - k]}
        for name, kw in RULES.items():
            s = span_scores(va, th, **kw)
            tot[name] = add(tot[name], s) if name in tot else s
    return {"thresholds": ths, **tot}


# --- out-of-fold scores -------------------------------------------------------------------------------------

def oof_scores(data: Data, bn_cache: Path, out: Path) -> tuple[dict, dict]:
    """Out-of-fold window scores of each training file: A on its grid, B on the stride-16 windows (cached)."""
    p = out / "oof-scores.npz"
    if p.exists():
        z = np.load(p)
        return ({r: z[f"A|{r}"] for f in FOLDS for r in f}, {r: z[f"B|{r}"] for f in FOLDS for r in f})
    a_sc, b_sc = {}, {}
    for k in range(2):
        tr, va = FOLDS[1 - k], FOLDS[k]
        t0 = time.time()
        h = fit_a_head(data, bn_cache, tr)
        for r in va:
            a_sc[r] = head_scores(h, a_emb(bn_cache, r))
        val = data.labelled(B_SCALE, va)
        heads = train_heads(data, B_SCALE, B_CFG, tr, val)
        for r in va:
            e = data.emb(B_SCALE, r)[::16 // STRIDE]
            b_sc[r] = np.mean([head_scores(hd, e) for hd in heads], axis=0)
        print(f"fold {k}: heads trained on {tr} in {time.time() - t0:.0f} s", flush=True)
    np.savez(p, **{f"A|{r}": v for r, v in a_sc.items()}, **{f"B|{r}": v for r, v in b_sc.items()})
    return a_sc, b_sc


def a_emb(bn_cache: Path, rel: str) -> np.ndarray:
    return np.load(bn_cache / f"x{A_INFO.speedup:g}-hop{A_INFO.hop_s * A_INFO.speedup:g}-{Path(rel).stem}.npy")


def fit_a_head(data: Data, bn_cache: Path, rels):
    grid = backend_grid(A_INFO, 2000)
    xs, ys = [], []
    for r in rels:
        e = a_emb(bn_cache, r)
        lab = data.items[r].window_labels(len(e), grid, min_overlap=B_CFG.min_overlap)
        xs.append(e[lab >= 0]); ys.append(lab[lab >= 0])
    return fit_logistic_head(np.concatenate(xs), np.concatenate(ys), c=A_C, balance=True, seed=0)


def candidate_spans(cand, data: Data, a_sc: dict, b_sc: dict, b_fr, rels) -> dict:
    _, kind, how, p = cand
    a_grid = backend_grid(A_INFO, 2000)
    spans = {}
    for r in rels:
        it = data.items[r]
        if kind == "A":
            spans[r] = ScoredSpan(np.asarray(a_sc[r], np.float64), a_grid, 0, it.frames, tuple(it.events))
        else:
            spans[r] = ScoredSpan(fuse(b_sc[r], b_fr, a_sc[r], a_grid, kind=kind, how=how, p=p), b_fr, 0, it.frames,
                                  tuple(it.events))
    return spans


def interval_row(name: str, rule: str, s: EventScores) -> str:
    rl, rh = cp(s.events_found, s.events)
    pl, ph = cp(s.regions_matching, s.regions)
    fa = s.false_alarms
    flo = 0.5 * chi2.ppf(0.025, 2 * fa) if fa else 0.0
    fhi = 0.5 * chi2.ppf(0.975, 2 * fa + 2)
    return (f"| {name} | {rule} | {s.events_found}/{s.events} = {s.recall:.3f} [{rl:.2f}, {rh:.2f}] | "
            f"{s.regions_matching}/{s.regions} = {s.precision:.3f} [{pl:.2f}, {ph:.2f}] | {s.f1:.3f} | {fa} | "
            f"{s.false_alarms_per_hour:.1f} [{flo / s.hours:.1f}, {fhi / s.hours:.1f}] |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "runs" / "fusion"))
    ap.add_argument("--bn-cache", default=str(MAIN / "runs" / "narw-bn"), help="scripts/narw_backends.py's --out")
    ap.add_argument("--emb-cache", default=str(ROOT / "runs" / "pcenenc"),
                    help="narw_quality.py --out holding cache/emb-pcenenc-pcen1.5-s8-*.npy")
    ap.add_argument("--encoder", default=str(MAIN / "runs" / "narw-pcen" / "encoder.pt"))
    ap.add_argument("--tag", default="pcenenc")
    ap.add_argument("--detector", default=str(MAIN / "runs" / "pcen-folds" / "detector-chosen.pt"))
    ap.add_argument("--skip-test", action="store_true", help="CV table only; do not touch the held-out third")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    bn = Path(a.bn_cache)
    data = Data(Path(a.emb_cache), Path(a.encoder), a.tag)
    b_fr = data.frontend(B_SCALE).at_rate(2000)  # stride 16, as detect windows
    a_sc, b_sc = oof_scores(data, bn, out)
    train = [r for f in FOLDS for r in f]
    lines = ["## 2-fold CV on the training files (out-of-fold scores; 45 upcalls, 1.00 h)", "",
             "nested: threshold chosen on one fold (best one-to-one F1), scored on the other, summed. pooled: "
             "`choose_event_threshold` (any-overlap F1) on all four files, scored on them (optimistic).", "",
             "| candidate | nested 1:1 F1 | R | P | FA/h | nested overlap F1 | nested PAM F1 | thr (fold0, fold1) | "
             "pooled overlap F1 | pooled PAM F1 | pooled 1:1 F1 (own thr) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    res = {}
    for cand in CANDIDATES:
        spans = candidate_spans(cand, data, a_sc, b_sc, b_fr, train)
        ne = nested(spans)
        th, ev = choose_event_threshold(spans, rule=RegionRule())
        pam = span_event_scores(spans, rule=RegionRule(threshold=th), tolerance_s=PAM_S)
        th11, ev11 = choose_threshold(spans)
        res[cand[0]] = dict(nested=ne, pooled_f1=ev.f1, pooled11=ev11.f1, th11=th11)
        s = ne["1:1"]
        lines.append(f"| {cand[0]} | {s.f1:.3f} | {s.recall:.3f} | {s.precision:.3f} | {s.false_alarms_per_hour:.1f} | "
                     f"{ne['overlap'].f1:.3f} | {ne['PAM'].f1:.3f} | {ne['thresholds'][0]:.3f}, "
                     f"{ne['thresholds'][1]:.3f} | {ev.f1:.3f} (R {ev.recall:.2f} P {ev.precision:.2f}, "
                     f"{ev.false_alarms_per_hour:.0f}/h) | {pam.f1:.3f} | {ev11.f1:.3f} @ {th11:.3f} |")
        print(lines[-1], flush=True)
    best = max(CANDIDATES, key=lambda c: (round(res[c[0]]["nested"]["1:1"].f1, 9), res[c[0]]["pooled11"]))
    lines += ["", f"chosen by the rule fixed beforehand (best nested one-to-one F1, ties -> pooled one-to-one F1): "
              f"**{best[0]}**"]
    print(lines[-1], flush=True)
    (out / "cv.json").write_text(json.dumps({k: {"nested": {r: v["nested"][r].to_dict() for r in RULES},
                                                  "thresholds": v["nested"]["thresholds"], "pooled_f1": v["pooled_f1"],
                                                  "pooled11_f1": v["pooled11"], "threshold_1to1": v["th11"]}
                                              for k, v in res.items()}, indent=1))
    if not a.skip_test:
        lines += test_third(data, bn, a, best, res, b_fr)
    text = "\n".join(lines) + "\n"
    (out / "fusion.md").write_text(text)
    print(text)
    return 0


def test_third(data: Data, bn: Path, a, best, res: dict, b_fr) -> list[str]:
    """The held-out third, scored once: the chosen candidate, A alone and B alone."""
    train = [r for f in FOLDS for r in f]
    a_head = fit_a_head(data, bn, train)
    a_te = {r: head_scores(a_head, a_emb(bn, r)) for r in TEST}
    det = load_model(a.detector, kind="detector")
    if det.frontend.at_rate(2000) != b_fr:
        raise SystemExit(f"{a.detector}: front end {det.frontend} differs from the CV's {B_SCALE}")
    b_te = {r: file_scores(det, data.items[r].path, channel=0, sample_rate=2000) for r in TEST}
    lines = ["", f"## held-out third ({', '.join(TEST)}), scored once", "",
             f"thresholds chosen on the pooled out-of-fold spans of the training files (one-to-one F1); A's head "
             f"fit on the four training files; B = {a.detector}. 95 % intervals: Clopper-Pearson "
             f"(recall, precision), exact Poisson (FA/h).", "",
             "| detector | rule | recall [95% CI] | precision [95% CI] | F1 | FA | FA/h [95% CI] | median region s |",
             "|---|---|---|---|---|---|---|---|"]
    rows = [(c, res[c[0]]["th11"]) for c in CANDIDATES if c[0] in ("A alone", "B alone")]
    if best[0] not in ("A alone", "B alone"):
        rows.append((best, res[best[0]]["th11"]))
    rows.append((("B alone, checkpoint threshold", "geo", "interp", 0.0), det.threshold))
    for cand, th in rows:
        spans = candidate_spans(cand, data, a_te, b_te, b_fr, TEST)
        dur = [g.duration_s for sp in spans.values() for g in find_regions(sp.scores, sp.framing, rule=RegionRule(
            threshold=th), n_samples=sp.n_samples)]
        for rule, kw in RULES.items():
            lines.append(interval_row(f"{cand[0]} (thr {th:.3f})", rule, span_scores(spans, th, **kw))
                         + f" {np.median(dur) if dur else float('nan'):.1f} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
