#!/usr/bin/env python
"""Right-whale upcalls: which generalisation aids help, chosen on validation only; the held-out third scored once.

Splits as ``scripts/narw_experiment``: training = two narw + two background files, held out = the third of
each. Every setting (front-end scale dB/PCEN, mixed-in call augmentation and its SNR range, SpecAugment
masks, mixup, hard negatives, ensemble size, event threshold) is chosen by two-fold cross-validation on the
training files only (fold = one narw + one background file; train on one fold, validate on the other).
The path is the frozen self-supervised LSTM-V3 encoder with cached window embeddings (stride 8 frames)
and a detector head (sonotype.detection.detector.train_head), augmented windows embedded once per fold.
Validation score: event F1 of the regions ``sonotype detect`` would make (windows at the front end's
stride 16, overlap rule), pooled over both folds, at the event threshold chosen on those folds.

The chosen settings are then trained on all four training files with ``sonotype train-detector`` (the library
path, threshold chosen on the validation tails of the training files, event level), run with
``sonotype detect`` on the held-out files and scored with ``sonotype evaluate-events`` (overlap and
PAM 1.5-s rules); exact binomial (Clopper-Pearson) 95 % intervals are printed.

    python scripts/narw_quality.py [--out runs/quality] [--encoder runs/narw/encoder.pt]

One setting only, for another encoder (its validation rows and embedding caches keyed by ``--tag``, so rows of
the default encoder in the same cv-cache.json are kept apart), then its held-out score unless --skip-final:

    python scripts/narw_quality.py --encoder runs/narw-pcen/encoder.pt --tag pcenenc \
        --setting pcen1.5 hard_negatives=200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.stats import beta, chi2

from sonotype.detection.crossval import train_detector_cv
from sonotype.detection.detector import DetectorConfig, mixed_windows, train_detector, train_head
from sonotype.detection.events import ScoredSpan, choose_event_threshold, span_event_scores
from sonotype.detection.regions import RegionRule
from sonotype.models.checkpoint import load_model
from sonotype.models.embed import embed_windows, file_embeddings, head_scores
from sonotype.training import metrics
from sonotype.training.dataset import IGNORE, FrameCache, load_items, make_items, read_annotations
from sonotype.training.finetune import Augmentation, LabelledWindows, finetune, label_windows

ROOT = Path(__file__).resolve().parents[1]
D = Path(os.environ.get("SONOTYPE_DATA", ROOT.parent / "shared" / "data")) / "narw-upcalls"
FOLDS = [("narw/NOPP6_EST_20090328_000000.wav", "background/GSC_2000-05-19_00-00-00.wav"),
         ("narw/NOPP6_EST_20090328_001500.wav", "background/GSC_2000-05-19_00-15-00.wav")]
TEST = ("narw/NOPP6_EST_20090328_003000.wav", "background/GSC_2000-05-19_00-30-00.wav")
STRIDE = 8  # training windows, frames (the front end's stride 16 = every second one)
BASE = DetectorConfig(epochs=30, hidden=64, batch_size=128, threshold_level="event")
SCALES = {"log": {"scale": "log"}, "pcen0.4": {"scale": "pcen", "pcen_time": 0.4},
          "pcen1.5": {"scale": "pcen", "pcen_time": 1.5}}


class Data:
    def __init__(self, out: Path, encoder: Path, tag: str = ""):
        self.out, self.model, self.tag = out, load_model(encoder), tag
        ann = read_annotations(D / "annotations_train.csv")
        rels = [r for f in FOLDS for r in f] + list(TEST)
        items = make_items([D / r for r in rels], annotations={k: v for k, v in ann.items()})
        self.items = dict(zip(rels, items))
        self._emb: dict = {}

    def frontend(self, scale: str):
        return replace(self.model.frontend, **SCALES[scale])

    def emb(self, scale: str, rel: str) -> np.ndarray:
        """(N, D) embeddings of every window at stride 8 (cached on disk)."""
        key = (scale, rel)
        if key not in self._emb:
            p = self.out / "cache" / f"emb-{self.tag + '-' if self.tag else ''}{scale}-s{STRIDE}-{Path(rel).stem}.npy"
            if not p.exists():
                p.parent.mkdir(parents=True, exist_ok=True)
                it = self.items[rel]
                np.save(p, file_embeddings(self.model.encoder, it.path, replace(self.frontend(scale), stride=STRIDE),
                                           channel=0, sample_rate=it.sample_rate))
            self._emb[key] = np.load(p)
        return self._emb[key]

    def labelled(self, scale: str, rels) -> LabelledWindows:
        xs, ys = [], []
        for r in rels:
            e = self.emb(scale, r)
            fr = replace(self.frontend(scale), stride=STRIDE).at_rate(2000)
            y = self.items[r].window_labels(len(e), fr, min_overlap=BASE.min_overlap)
            keep = y != IGNORE
            xs.append(e[keep]); ys.append(y[keep].astype(np.int64))
        n = sum(len(y) for y in ys)
        return LabelledWindows(np.concatenate(xs), np.concatenate(ys), np.zeros(n, np.int64), np.zeros(n, np.int64))


def train_heads(data: Data, scale: str, cfg: DetectorConfig, rels, val: LabelledWindows, mixer=None):
    """The heads of an ensemble trained on files ``rels`` (library pieces, as train_detector's frozen path).
    ``mixer(items, frontend, count=, config=, seed=)`` makes the mixed-in windows (default: ``mixed_windows``)."""
    fe = data.frontend(scale)
    tr = data.labelled(scale, rels)
    if cfg.augment > 0:
        w, y = (mixer or mixed_windows)([data.items[r] for r in rels], fe, count=int(round(cfg.augment * tr.y.sum())),
                                        config=cfg, seed=cfg.seed)
        e = embed_windows(data.model.encoder, w)
        tr = LabelledWindows(np.concatenate([tr.data, e]), np.concatenate([tr.y, y]),
                             np.zeros(len(tr.y) + len(y), np.int64), np.zeros(len(tr.y) + len(y), np.int64))
    heads = []
    for m in range(cfg.ensemble):
        head, _ = train_head(tr, val, config=cfg, embedding_dim=tr.data.shape[1], seed=cfg.seed + m, progress=False)
        if cfg.hard_negatives:
            neg = np.nonzero(tr.y == 0)[0]
            hard = neg[np.argsort(-head_scores(head, tr.data[neg]), kind="stable")[:cfg.hard_negatives]]
            wts = np.ones(len(tr.y), np.float32)
            wts[hard] = cfg.hard_negative_weight
            head, _ = train_head(tr, val, config=cfg, embedding_dim=tr.data.shape[1], weights=wts, seed=cfg.seed + m,
                                 progress=False)
        heads.append(head)
    return heads



def summarise(spans, ss, ys) -> dict:
    """Window AP of the pooled scores ``ss`` against labels ``ys``, and the event scores of ``spans`` at the
    event threshold chosen on them (overlap rule; PAM-rule F1 too)."""
    th, ev = choose_event_threshold(spans, rule=RegionRule())
    pam = span_event_scores(spans, rule=RegionRule(threshold=th), tolerance_s=1.5)
    return {"ap": metrics.average_precision(np.concatenate(ss), np.concatenate(ys)), "threshold": th,
            "recall": ev.recall, "precision": ev.precision, "f1": ev.f1, "fa_h": ev.false_alarms_per_hour,
            "pam_f1": pam.f1}

def cross_validate(data: Data, scale: str, cfg: DetectorConfig, mixer=None) -> dict:
    spans, ys, ss = {}, [], []
    for k in range(2):
        tr_rels, va_rels = FOLDS[1 - k], FOLDS[k]
        val = data.labelled(scale, va_rels)
        heads = train_heads(data, scale, cfg, tr_rels, val, mixer=mixer)
        ys.append(val.y); ss.append(np.mean([head_scores(h, val.data) for h in heads], axis=0))
        fr = data.frontend(scale).at_rate(2000)  # stride 16, as detect windows
        for r in va_rels:
            e = data.emb(scale, r)[::16 // STRIDE]
            sc = np.mean([head_scores(h, e) for h in heads], axis=0)
            it = data.items[r]
            spans[r] = ScoredSpan(sc, fr, 0, it.frames, tuple(it.events))
    return summarise(spans, ss, ys)


FT_EPOCHS = 6


def cross_validate_finetune(data: Data, scale: str, cfg: DetectorConfig) -> dict:
    """As :func:`cross_validate`, the encoder fine-tuned too (library ``finetune``; epochs picked on a seeded
    subsample of the validation fold's windows: every vocal one and 1,500 noise ones)."""
    fe = data.frontend(scale)
    cache = FrameCache(data.out / "cache" / f"frames-{scale}", fe)
    spans, ys, ss = {}, [], []
    for k in range(2):
        rels = list(FOLDS[1 - k]) + list(FOLDS[k])
        items = [data.items[r] for r in rels]
        lw = label_windows(items, cache, fe, stride=STRIDE, min_overlap=cfg.min_overlap)
        tr, va = lw.subset(lw.file < 2), lw.subset(lw.file >= 2)
        rng = np.random.default_rng(cfg.seed)
        neg = np.nonzero(va.y == 0)[0]
        keep = np.zeros(len(va.y), bool)
        keep[va.y == 1] = True
        keep[rng.choice(neg, size=min(1500, neg.size), replace=False)] = True
        aug = Augmentation(time_mask=cfg.time_mask, freq_mask=cfg.freq_mask, mixup=cfg.mixup)
        if cfg.augment > 0:
            w, y = mixed_windows(items[:2], fe, count=int(round(cfg.augment * tr.y.sum())), config=cfg, seed=cfg.seed)
            aug = replace(aug, extra=w, extra_y=y)
        enc, head, _ = finetune(data.model.encoder, items, tr, va.subset(keep), cache, fe, epochs=cfg.epochs,
                                lr=cfg.lr, encoder_lr=cfg.encoder_lr, batch_size=cfg.batch_size, dropout=cfg.dropout,
                                hidden=0, negatives_per_positive=cfg.negatives_per_positive, seed=cfg.seed,
                                augmentation=aug, progress=False)
        fr = fe.at_rate(2000)
        for r in FOLDS[k]:
            it = data.items[r]
            e = file_embeddings(enc, it.path, fe, channel=0, sample_rate=2000)  # stride 16, as detect
            sc = head_scores(head, e)
            lab = it.window_labels(len(sc), fr, min_overlap=cfg.min_overlap)
            ys.append(lab[lab != IGNORE]); ss.append(sc[lab != IGNORE])
            spans[r] = ScoredSpan(sc, fr, 0, it.frames, tuple(it.events))
    return summarise(spans, ss, ys)


def cp(k: int, n: int) -> tuple[float, float]:
    """Exact (Clopper-Pearson) 95 % interval of a proportion k/n."""
    if n == 0:
        return float("nan"), float("nan")
    lo = 0.0 if k == 0 else beta.ppf(0.025, k, n - k + 1)
    hi = 1.0 if k == n else beta.ppf(0.975, k + 1, n - k)
    return float(lo), float(hi)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/quality")
    ap.add_argument("--encoder", default=str(ROOT / "runs" / "narw" / "encoder.pt"))
    ap.add_argument("--skip-final", action="store_true", help="validation ablation only")
    ap.add_argument("--no-finetune", action="store_true", help="frozen encoder only (no fine-tuning rows)")
    ap.add_argument("--tag", default="", help="names the encoder: keys its validation rows and embedding caches "
                    "(default '': the rows of runs/narw/encoder.pt)")
    ap.add_argument("--setting", nargs="+", metavar="SCALE [KEY=VALUE ...]",
                    help="validate only this setting (and its scale's base row), e.g. 'pcen1.5 hard_negatives=200'; "
                    "then score it on the held-out third unless --skip-final")
    ap.add_argument("--threshold-folds", type=int, default=None, metavar="K",
                    help="final detector: choose its event threshold by K-fold CV over the four training files "
                    "(sonotype.detection.crossval) instead of on its own 15-min validation tails")
    a = ap.parse_args(argv)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    data = Data(out, Path(a.encoder), a.tag)
    t0 = time.time()
    rows = []

    cache_path = out / "cv-cache.json"  # validation results per setting, so that a rerun skips what is done
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}

    def run(name, scale, **kw):
        cfg = replace(BASE, **kw)
        if cfg.finetune:
            cfg = replace(cfg, epochs=FT_EPOCHS, hidden=0, batch_size=64)
        ck = json.dumps(([a.tag] if a.tag else []) + [scale, sorted(kw.items()), cfg.epochs, cfg.hidden])
        if ck not in cache:
            cache[ck] = (cross_validate_finetune if cfg.finetune else cross_validate)(data, scale, cfg)
            cache_path.write_text(json.dumps(cache, indent=1))
        r = cache[ck]
        rows.append((name, scale, kw, r))
        print(f"{name:<34} {scale:<8} AP {r['ap']:.3f}  F1 {r['f1']:.3f}  R {r['recall']:.3f}  P {r['precision']:.3f}  "
              f"FA/h {r['fa_h']:5.1f}  PAM-F1 {r['pam_f1']:.3f}  thr {r['threshold']:.3f}   [{time.time() - t0:.0f} s]",
              flush=True)
        return r

    key = lambda r: (round(r["f1"], 6), r["ap"])  # noqa: E731  validation event F1, then window AP
    if a.setting:
        scale, kw = a.setting[0], {}
        if scale not in SCALES:
            ap.error(f"--setting: scale {scale!r} is not one of {sorted(SCALES)}")
        for t in a.setting[1:]:
            k, _, v = t.partition("=")
            if k not in DetectorConfig.__dataclass_fields__ or getattr(BASE, k) is None or not v:
                ap.error(f"--setting: {t!r} is not KEY=VALUE with KEY a DetectorConfig field")
            t0v = getattr(BASE, k)
            kw[k] = v.lower() in ("1", "true", "yes") if isinstance(t0v, bool) else type(t0v)(v)
        print(f"== validation (2-fold CV on the training files), encoder {a.encoder} [{a.tag or 'default'}]")
        run(f"{scale} base", scale)
        if kw:
            run(" ".join(a.setting[1:]), scale, **kw)
        return 0 if a.skip_final else final(out, Path(a.encoder), {**kw, **SCALES[scale]}, folds=a.threshold_folds)
    print("== validation (2-fold CV on the training files); one component at a time on the base")
    base = run("base (dB, no aid)", "log")
    best_scale = max(["log", "pcen0.4", "pcen1.5"], key=lambda s: key(base if s == "log" else run(f"PCEN T={s[4:]} s", s)))
    chosen: dict = {}
    groups = {
        "augment": [("augment x4, SNR 0..15 dB", dict(augment=4.0)),
                    ("augment x4, SNR -5..10 dB", dict(augment=4.0, snr_low=-5.0, snr_high=10.0)),
                    ("augment x4 + masks (6 frames, 40 bins)", dict(augment=4.0, time_mask=6, freq_mask=40))],
        "mixup": [("mixup 0.2", dict(mixup=0.2))],
        "hard": [("hard negatives 200 (x4)", dict(hard_negatives=200))],
    }
    ref = [r for r in rows if r[1] == best_scale and not r[2]][0][3]
    print(f"-- on the chosen scale ({best_scale})")
    for g, opts in groups.items():
        res = [(kw, run(name, best_scale, **kw)) for name, kw in opts]
        kw, r = max(res, key=lambda t: key(t[1]))
        if key(r) > key(ref):
            chosen.update(kw)
    comb = run("combined: " + (", ".join(f"{k}={v}" for k, v in chosen.items()) or "none"), best_scale, **chosen) \
        if chosen else ref
    if len(chosen) > 1:  # the combination must beat its best single component, else keep that one
        singles = [r for r in rows if r[1] == best_scale and r[2] and set(r[2].items()) <= set(chosen.items())]
        best_single = max(singles, key=lambda t: key(t[3]))
        if key(best_single[3]) > key(comb):
            chosen, comb = dict(best_single[2]), best_single[3]
    ens = run("+ ensemble of 3 seeds", best_scale, ensemble=3, **chosen)
    if key(ens) > key(comb):
        chosen["ensemble"] = 3
        comb = ens
    if not a.no_finetune:
        print("-- the encoder fine-tuned too (a few epochs); the same aids on and off")
        pack = dict(augment=4.0, time_mask=6, freq_mask=40, mixup=0.2)
        fts = [({"finetune": True}, run("fine-tuned", best_scale, finetune=True)),
               ({"finetune": True, **pack}, run("fine-tuned + augment x4, masks, mixup", best_scale, finetune=True,
                                                **pack))]
        kw, r = max(fts, key=lambda t: key(t[1]))
        if key(r) > key(comb):
            chosen, comb = dict(kw), r
    chosen.update(SCALES[best_scale])
    print(f"chosen on validation: {chosen}   ({time.time() - t0:.0f} s)")
    (out / "validation.json").write_text(json.dumps({"rows": [dict(name=n, scale=s, options=kw, **r) for n, s, kw, r in rows],
                                                      "chosen": chosen}, indent=2))
    if a.skip_final:
        return 0
    return final(out, Path(a.encoder), chosen, folds=a.threshold_folds)


def final_config(chosen: dict) -> DetectorConfig:
    """The DetectorConfig the validation rows used for ``chosen`` (scale options included)."""
    cfg = replace(BASE, stride=STRIDE, **chosen)
    return replace(cfg, epochs=FT_EPOCHS, hidden=0, batch_size=64) if cfg.finetune else cfg


def final(out: Path, encoder: Path, chosen: dict, *, folds: int | None = None) -> int:
    st = [sys.executable, "-m", "sonotype.cli"]
    train = [str(D / r) for f in FOLDS for r in f]
    test = [str(D / r) for r in TEST]
    ann_all = (D / "annotations_train.csv").read_text().splitlines()
    tr_ann, te_ann = out / "annotations-train-files.csv", out / "annotations-test-files.csv"
    tr_ann.write_text("\n".join([ann_all[0]] + [ln for ln in ann_all[1:] if ln.split(",")[0] in
                      {Path(r).name for f in FOLDS for r in f}] + [f"{Path(f[1]).name},," for f in FOLDS]) + "\n")
    te_ann.write_text("\n".join([ann_all[0]] + [ln for ln in ann_all[1:] if ln.split(",")[0] == Path(TEST[0]).name]
                                + [f"{Path(TEST[1]).name},,"]) + "\n")
    cfg = final_config(chosen)
    det, db = out / "detector-chosen.pt", out / "detect-chosen.db"
    print(f"training the chosen detector on the four training files: {cfg}", flush=True)
    items = load_items(train, annotations=tr_ann)
    note = {"inputs": train, "annotations": str(tr_ann)}
    if folds:
        train_detector_cv(encoder, items, out=det, folds=folds, config=cfg, cache_dir=out / "cache" / "frames-final",
                          progress=False, data_note=note)
    else:
        train_detector(encoder, items, out=det, config=cfg, cache_dir=out / "cache" / "frames-final", progress=False,
                       data_note=note)
    db.unlink(missing_ok=True)
    subprocess.run(st + ["detect", *test, "--model", str(det), "--db", f"sqlite:///{db}", "--quiet"], check=True)
    res = out / "events-chosen.json"
    subprocess.run(st + ["evaluate-events", "--db", f"sqlite:///{db}", "--annotations", str(te_ann), "--json",
                         str(res)], check=True, stdout=subprocess.DEVNULL)
    r = json.loads(res.read_text())
    print(f"\n== held-out third ({r['events']} upcalls, {r['hours']:.2f} h): scored once, settings chosen on validation")
    print(f"{'rule':<10} {'recall [95% CI]':<24} {'precision [95% CI]':<24} {'F1':>5} {'FA':>3} {'FA/h [95% CI]':<20}")
    for name, s in (("overlap", r), ("PAM 1.5 s", r["pam_rule"])):
        rl, rh = cp(s["events_found"], s["events"]); pl, ph = cp(s["regions_matching"], s["regions"])
        fa = s["false_alarms"]
        flo = 0.5 * chi2.ppf(0.025, 2 * fa) if fa else 0.0  # exact Poisson interval of the false-alarm count
        fhi = 0.5 * chi2.ppf(0.975, 2 * fa + 2)
        print(f"{name:<10} {s['recall']:.3f} [{rl:.2f}, {rh:.2f}]{'':<6} {s['precision']:.3f} [{pl:.2f}, {ph:.2f}]{'':<6} "
              f"{s['f1']:5.3f} {fa:3d} {s['false_alarms_per_hour']:.1f} [{flo / s['hours']:.1f}, {fhi / s['hours']:.1f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
