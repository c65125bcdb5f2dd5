#!/usr/bin/env python
"""Orca call types: does fusing two representations' DISTANCE matrices group calls better than each alone?

Representations (as ``sonotype cluster-eval catalog-2018/ --model runs/orca/encoder.pt --backend birdnet
--hop 0.5 --select-on vocabulary/``):

* ``birdnet`` — BirdNET V2.4 at x1, 3-s windows every 0.5 s;
* ``lstm``    — the self-supervised LSTM-V3 encoder (``--model``, sequence stride 4), "trained encoder";
* ``raw``     — the normalised spectrogram frames, "raw spectrogram".

Each one's pooling (sequence / mean) and scaling (zscore-l2 / none) is chosen on the selection set exactly as
cluster-eval does (:func:`select_settings`: best ARI of the average-linkage cut at k = types), and its distance
matrix is the one :func:`evaluate_representation` builds under that setting (DTW, band default).

Normalisations (computed per set from the matrix alone, no labels; diagonal stays 0):

* ``rank``   — each off-diagonal entry replaced by its rank among the N(N-1)/2 pair distances (ties: average
               rank), mapped to [0, 1] by (rank - 1) / (M - 1);
* ``median`` — the matrix divided by the median off-diagonal distance.

Fusion: ``D = w * norm(D_a) + (1 - w) * norm(D_b)``.

Candidates (fixed before any result was seen): pairs (birdnet, lstm), (birdnet, raw), (lstm, raw) x
w in {0.25, 0.5, 0.75} (weight of the first of the pair) x norm in {rank, median}: 18 candidates. Single
representations (un-normalised, as cluster-eval scores them) are reported alongside, not candidates.

Selection set: ``orca-calls/vocabulary`` cut into its 4 loudest 2-s chunks per file (:func:`loudest_chunks`, as
``--select-on``). Selection rule (fixed beforehand): the best ARI of the average-linkage cut at k = number of
types on the selection set; ties -> the higher LOO 1-NN accuracy there; then the earlier in the list above.

The chosen candidate is then scored ONCE on ``orca-calls/catalog-2018`` (45 clips), with each single
representation scored the same way (its vocabulary-chosen setting): LOO 1-NN accuracy, NMI / ARI at k = types,
95 % intervals by :func:`score_intervals` (1-NN: bootstrap of clips, 2000 resamples; NMI, ARI: jackknife over
types). Embeddings are cached under ``runs/orcafuse/``.

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/orca_fusion.py [--vocab-only] [--self-check]

Result (added after the run; ~90 s on 1 CPU thread with cached vocabulary embeddings, ~3.5 min from scratch):
no fusion beats the best single on the selection set (raw alone ARI 0.145; best fused lstm+raw w=0.25 rank
0.143, chosen). On catalog-2018 it scores 1-NN 0.417 [0.208, 0.625], ARI 0.263, below BirdNET alone (0.750
[0.583, 0.917], ARI 0.442) and LSTM alone (0.583, ARI 0.311). The selection set ranks the singles
raw > lstm > birdnet, the catalog birdnet > lstm > raw: it cannot choose fusion weights for the catalog.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import time
from pathlib import Path

import numpy as np
import scipy.stats
import torch

from sonotype.discovery.clustereval import (
    SELECT_CLUSTERING,
    RepresentationResult,
    evaluate_representations,
    labelled_clips,
    loudest_chunks,
    representations,
    score_distance,
    score_intervals,
    select_settings,
)
from sonotype.models.backends.birdnet import BirdNETBackend
from sonotype.models.checkpoint import load_model

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SONOTYPE_DATA", ROOT.parent / "shared" / "data"))
CATALOG = DATA / "orca-calls" / "catalog-2018"
VOCAB = DATA / "orca-calls" / "vocabulary"
MODEL = Path("/work/main/runs/orca/encoder.pt")
OUT = ROOT / "runs" / "orcafuse"
HOP_S = 0.5
N_BOOT = 2000

REPS = {"birdnet": None, "lstm": "trained encoder", "raw": "raw spectrogram"}  # short name -> cluster-eval name
PAIRS = (("birdnet", "lstm"), ("birdnet", "raw"), ("lstm", "raw"))
WEIGHTS = (0.25, 0.5, 0.75)
NORMS = ("rank", "median")
CANDIDATES = [(a, b, w, n) for a, b in PAIRS for w in WEIGHTS for n in NORMS]


# --- normalisation and fusion --------------------------------------------------------------------------------

def normalise(dist: np.ndarray, *, how: str) -> np.ndarray:
    """``(N, N)`` symmetric distances with zero diagonal -> the same shape, normalised (module doc)."""
    d = np.asarray(dist, np.float64)
    iu = np.triu_indices(d.shape[0], 1)
    cond = d[iu]
    if how == "rank":
        vals = (scipy.stats.rankdata(cond, method="average") - 1) / max(cond.size - 1, 1)
    elif how == "median":
        med = float(np.median(cond))
        if not med > 0:
            raise ValueError(f"median off-diagonal distance is {med}; cannot normalise by it")
        vals = cond / med
    else:
        raise ValueError(f"unknown normalisation {how!r}; expected one of {NORMS}")
    out = np.zeros_like(d)
    out[iu] = vals
    return out + out.T


def normalise_slow(dist: np.ndarray, *, how: str) -> np.ndarray:
    """The obvious loop version of :func:`normalise` (reference for ``--self-check``)."""
    n = len(dist)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    vals = [float(dist[i][j]) for i, j in pairs]
    s, m = sorted(vals), len(vals)
    median = s[m // 2] if m % 2 else (s[m // 2 - 1] + s[m // 2]) / 2
    out = np.zeros((n, n))
    for (i, j), v in zip(pairs, vals):
        if how == "rank":
            below = sum(1 for u in vals if u < v)
            equal = sum(1 for u in vals if u == v)
            r = below + (equal - 1) / 2  # 0-based average rank
            out[i, j] = out[j, i] = r / max(m - 1, 1)
        else:
            out[i, j] = out[j, i] = v / median
    return out


def fuse(da: np.ndarray, db: np.ndarray, *, w: float, how: str) -> np.ndarray:
    return w * normalise(da, how=how) + (1 - w) * normalise(db, how=how)


# --- data ----------------------------------------------------------------------------------------------------

def embed_set(name: str, clips, model, backend, log) -> tuple[np.ndarray, dict[str, list[np.ndarray]]]:
    """(labels, {short rep name: sequences}) of ``clips``, cached in ``OUT/<name>.pkl``."""
    path = OUT / f"{name}.pkl"
    if path.exists():
        with path.open("rb") as f:
            doc = pickle.load(f)
        log(f"{name}: cached embeddings {path}")
        return doc["labels"], doc["reps"]
    t = time.perf_counter()
    seqs, reps = representations(clips, model, backends=[backend], log=log)
    labels = np.array([c.label for c in seqs.clips]).astype(str)
    out = {"birdnet": reps[backend.info.label], "lstm": reps["trained encoder"], "raw": reps["raw spectrogram"]}
    OUT.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump({"labels": labels, "items": [c.name for c in seqs.clips], "reps": out}, f)
    log(f"{name}: embedded {len(labels)} clips in {time.perf_counter() - t:.0f} s -> {path}")
    return labels, out


def single_dists(reps, labels, choices) -> dict[str, RepresentationResult]:
    """Each representation's result under its chosen (pooling, scaling), as cluster-eval scores it."""
    return {r: evaluate_representations({r: reps[r]}, labels, pooling=c.pooling, scaling=c.scaling)[r]
            for r, c in choices.items()}


def row(name: str, res: RepresentationResult, key: str) -> dict:
    s = res.scores[key]
    return {"name": name, "nn": res.nn_accuracy, "nmi": s["nmi"], "ari": s["ari"]}


def self_check() -> None:
    rng = np.random.default_rng(1)
    for n in (2, 3, 7, 12):
        x = rng.random((n, n))
        x = np.round(x + x.T, 1)  # ties
        np.fill_diagonal(x, 0)
        for how in NORMS:
            np.testing.assert_allclose(normalise(x, how=how), normalise_slow(x, how=how), atol=1e-12)
    print("self-check: normalise matches the loop reference")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab-only", action="store_true", help="stop after the selection set")
    p.add_argument("--self-check", action="store_true", help="check normalise against the loop reference and exit")
    args = p.parse_args()
    if args.self_check:
        self_check()
        return
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    log_f = (OUT / ("vocab.log" if args.vocab_only else "run.log")).open("w")

    def log(msg: str) -> None:
        print(msg, flush=True)
        log_f.write(msg + "\n")
        log_f.flush()

    t0 = time.perf_counter()
    model = load_model(str(MODEL))
    bk = BirdNETBackend(hop_s=HOP_S, threads=1)
    sel = loudest_chunks(labelled_clips([str(VOCAB)], log=log))
    slab, sreps = embed_set("vocabulary", sel, model, bk, log)
    key = SELECT_CLUSTERING.format(n=len(set(slab.tolist())))
    t = time.perf_counter()
    choices = select_settings(sreps, slab)
    log(f"selection set: {len(slab)} chunks, {len(set(slab.tolist()))} types; settings chosen per representation "
        f"({time.perf_counter() - t:.0f} s):")
    for c in choices.values():
        log(f"  {c.representation:<8} pooling {c.pooling:<8} scaling {c.scaling:<9} ARI {c.select_ari:.3f} "
            f"1-NN {c.select_nn:.3f}")
    sd = single_dists(sreps, slab, choices)
    vrows = [row(f"{r} alone", sd[r], key) for r in REPS]
    for r in REPS:  # references: one representation, normalised (w = 1)
        for n in NORMS:
            vrows.append(row(f"{r} alone, {n}-normalised (ref.)", score_distance(r, normalise(sd[r].dist, how=n),
                                                                                  slab), key))
    cands = []
    for i, (a, b, w, n) in enumerate(CANDIDATES):
        name = f"{a}+{b} w={w:g} {n}"
        res = score_distance(name, fuse(sd[a].dist, sd[b].dist, w=w, how=n), slab)
        r = row(name, res, key)
        r["candidate"] = i
        cands.append(r)
    best = max(cands, key=lambda r: (r["ari"], np.nan_to_num(r["nn"]), -r["candidate"]))
    log(f"\nselection set ({key}); '*' = chosen by the rule (best ARI, then 1-NN, then earlier)")
    log(f"{'':2}{'representation':<40} {'1-NN':>6} {'NMI':>6} {'ARI':>6}")
    for r in vrows + cands:
        log(f"{'*' if r is best else ' ':2}{r['name']:<40} {r['nn']:>6.3f} {r['nmi']:>6.3f} {r['ari']:>6.3f}")
    log(f"chosen: {best['name']}  ({time.perf_counter() - t0:.0f} s so far)")
    doc = {"selection": {"items": len(slab), "types": len(set(slab.tolist())),
                         "settings": {c.representation: c.__dict__ for c in choices.values()},
                         "rows": vrows + cands, "chosen": best}}
    if args.vocab_only:
        (OUT / "vocab.json").write_text(json.dumps(doc, indent=1, default=float))
        return

    a, b, w, n = CANDIDATES[best["candidate"]]
    clips = labelled_clips([str(CATALOG)], log=log)
    clab, creps = embed_set("catalog", clips, model, bk, log)
    ckey = SELECT_CLUSTERING.format(n=len(set(clab.tolist())))
    cd = single_dists(creps, clab, choices)
    results = {f"{r} alone": cd[r] for r in REPS}
    results[best["name"]] = score_distance(best["name"], fuse(cd[a].dist, cd[b].dist, w=w, how=n), clab)
    log(f"\ncatalog-2018: {len(clab)} clips, {len(set(clab.tolist()))} types, 1-NN over "
        f"{results['birdnet alone'].nn_scored} clips; {ckey}; 95 % intervals (1-NN: bootstrap of clips, {N_BOOT} "
        f"resamples; NMI, ARI: jackknife over types)")
    doc["catalog"] = {}
    for name, res in results.items():
        ci = score_intervals(res, clab, ckey, n_boot=N_BOOT)
        s = res.scores[ckey]
        doc["catalog"][name] = {"nn_accuracy": [res.nn_accuracy, *ci["nn_accuracy"]], "nmi": [s["nmi"], *ci["nmi"]],
                                "ari": [s["ari"], *ci["ari"]]}
        log(f"  {name:<28} 1-NN {res.nn_accuracy:.3f} [{ci['nn_accuracy'][0]:.3f}, {ci['nn_accuracy'][1]:.3f}]  "
            f"NMI {s['nmi']:.3f} [{ci['nmi'][0]:.3f}, {ci['nmi'][1]:.3f}]  "
            f"ARI {s['ari']:.3f} [{ci['ari'][0]:.3f}, {ci['ari'][1]:.3f}]")
    log(f"total {time.perf_counter() - t0:.0f} s")
    (OUT / "result.json").write_text(json.dumps(doc, indent=1, default=float))


if __name__ == "__main__":
    main()
