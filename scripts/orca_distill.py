"""Distilling BirdNET into the LSTM-V3 encoder, every setting chosen on orca-calls/vocabulary, never the catalog.

Unlabelled audio: every orca file except catalog-2018 (vocabulary/, whistles/) plus dolphin-clips/ (39
files, about 4.3 min). The student starts from the self-supervised encoder (``--init``, from
scripts/orca_experiment) and is taught BirdNET V2.4 (extra sonotype[birdnet]) on 3-s windows.

1. One run per teacher hop (``--hops``, no augmentation), snapshots at ``--snapshots`` epochs. Each
   snapshot is scored on the vocabulary's loudest 2-s chunks exactly as `cluster-eval --select-on`
   scores the trained encoder there (best pooling x scaling by the ARI of the k = types cut, then 1-NN).
2. At the hop of the best snapshot, one run with augmentation (``--augment``: random window-grid shift
   and SpecAugment masks); its snapshots are scored alike.
3. The best snapshot of all (vocabulary ARI, then 1-NN) is scored once on catalog-2018 with
   `cluster-eval --select-on vocabulary --bootstrap 2000`, and so is the self-supervised encoder; both
   runs carry the BirdNET x1 row (hop 0.5 s), so all rows are measured the same way.

    SONOTYPE_DATA=../shared/data PYTHONPATH=src python scripts/orca_distill.py [--out runs/orca-distill]

Everything is cached under ``--out`` (frames, teacher embeddings, checkpoints, scores): a rerun skips
what is done.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from sonotype.api import cluster_eval
from sonotype.discovery.clustereval import collection_rate, labelled_clips, loudest_chunks, select_settings
from sonotype.discovery.sequences import SEQUENCE_STRIDE, sequence_frontend, span_frames
from sonotype.features.frontend import span_windows
from sonotype.models.backends import load_backend
from sonotype.models.checkpoint import load_model
from sonotype.models.embed import embed_windows
from sonotype.training.dataset import load_items
from sonotype.training.distill import DistillConfig, distill


def unlabelled_files(data: Path) -> list[Path]:
    """The distillation audio: orca vocabulary + whistles and the dolphin clips; never the catalog."""
    files = sorted(p for d in (data / "orca-calls" / "vocabulary", data / "orca-calls" / "whistles",
                               data / "dolphin-clips") for p in d.iterdir() if p.suffix.lower() in (".wav", ".flac"))
    assert not any("catalog" in str(p) for p in files)
    return files


class Selection:
    """The vocabulary's chunks and their windows, embedded by each candidate as cluster-eval does."""

    def __init__(self, vocabulary: Path, model):
        self.clips = loudest_chunks(labelled_clips([vocabulary], log=lambda s: None))
        fe = sequence_frontend(model.frontend, SEQUENCE_STRIDE)
        rate = collection_rate(self.clips, model)
        self.windows = [span_windows(*span_frames(c, fe, sample_rate=rate)) for c in self.clips]
        self.labels = np.array([c.label for c in self.clips]).astype(str)
        self.frontend = model.frontend

    def score(self, path: Path) -> dict:
        model = load_model(path)
        assert model.frontend == self.frontend
        seqs = [embed_windows(model.encoder, w) for w in self.windows]
        c = select_settings({"trained encoder": seqs}, self.labels)["trained encoder"]
        return {"ari": c.select_ari, "nn": c.select_nn, "pooling": c.pooling, "scaling": c.scaling}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--init", default="runs/orca/encoder.best.pt", help="self-supervised encoder to start from")
    ap.add_argument("--out", default="runs/orca-distill")
    ap.add_argument("--hops", type=float, nargs="+", default=[0.5, 0.1], help="teacher hops to compare, seconds")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--snapshots", type=int, nargs="+", default=[4, 8, 12], help="epochs scored on the vocabulary")
    ap.add_argument("--batch-seconds", type=float, default=12.0)
    ap.add_argument("--augment", default="shift=1,time_mask=4,freq_mask=32",
                    help="augmentation of stage 2, as DistillConfig fields")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-catalog", action="store_true")
    a = ap.parse_args()
    data = Path(os.environ.get("SONOTYPE_DATA", "../shared/data"))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    files = unlabelled_files(data)
    print(f"unlabelled audio: {len(files)} files: " + ", ".join(f"{p.parent.name}/{p.name}" for p in files))
    items = load_items([str(p) for p in files])
    init = load_model(a.init)
    sel = Selection(data / "orca-calls" / "vocabulary", init)
    scores_path = out / "selection.json"
    scores = json.loads(scores_path.read_text()) if scores_path.is_file() else {}

    def scored(name: str, path: Path, **extra) -> dict:
        if name not in scores:
            t = time.perf_counter()
            scores[name] = {**sel.score(path), **extra, "path": str(path)}
            scores_path.write_text(json.dumps(scores, indent=1))
            print(f"  {name}: vocabulary ARI {scores[name]['ari']:.3f}, 1-NN {scores[name]['nn']:.3f} "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
        return scores[name]

    scored("init (self-supervised)", Path(a.init), run="init", epoch=0, val_loss=float("nan"))

    def run(name: str, hop: float, **aug) -> None:
        folder = out / name
        cfg = DistillConfig(epochs=a.epochs, batch_s=a.batch_seconds, seed=0, threads=a.threads, **aug)
        if not all((folder / f"e{e}.pt").is_file() for e in a.snapshots):
            folder.mkdir(parents=True, exist_ok=True)
            teacher = load_backend("birdnet", hop_s=hop)
            t = time.perf_counter()

            def keep(epoch, ck):
                if epoch in a.snapshots:
                    shutil.copy(folder / "student.pt", folder / f"e{epoch}.pt")
            distill(items, teacher, student=init, out=folder / "student.pt", cache_dir=out / "cache", config=cfg,
                    progress=False, log=lambda s: print(f"  [{name}] {s}", flush=True), on_epoch=keep)
            print(f"  [{name}] {time.perf_counter() - t:.0f} s", flush=True)
        hist = {h["epoch"]: h["val_loss"] for h in load_model(folder / f"e{max(a.snapshots)}.pt").checkpoint.history}
        for e in a.snapshots:
            scored(f"{name} e{e}", folder / f"e{e}.pt", run=name, hop=hop, epoch=e, val_loss=hist[e], **aug)

    def best(names) -> tuple[str, dict]:
        return max(((k, v) for k, v in scores.items() if v.get("run") in names), key=lambda kv: (kv[1]["ari"], kv[1]["nn"]))

    print("== stage 1: teacher hop (no augmentation)", flush=True)
    for hop in a.hops:
        run(f"hop{hop:g}", hop)
    _, b1 = best({f"hop{h:g}" for h in a.hops})
    hop = b1["hop"]
    print(f"== stage 2: augmentation at the chosen hop {hop:g} s", flush=True)
    aug = {k: (bool(int(v)) if k == "shift" else int(v)) for k, v in (kv.split("=") for kv in a.augment.split(","))}
    run(f"hop{hop:g}-aug", hop, **aug)
    name, chosen = best({v["run"] for v in scores.values()} - {"init"})
    print(f"{'candidate':<22} {'val 1-cos':>9} {'ARI':>6} {'1-NN':>6}  pooling/scaling (vocabulary, {len(sel.labels)} "
          f"chunks of {len(set(sel.labels.tolist()))} types)")
    for k, v in scores.items():
        print(f"{k:<22} {v['val_loss']:>9.4f} {v['ari']:>6.3f} {v['nn']:>6.3f}  {v['pooling']}/{v['scaling']}")
    print(f"chosen on the vocabulary (best ARI at k = types, then 1-NN): {name}")
    if a.skip_catalog:
        return 0
    voc = str(data / "orca-calls" / "vocabulary")
    rows = {}
    for label, model in (("distilled", chosen["path"]), ("self-supervised", a.init)):
        print(f"== catalog-2018: {label} encoder ({model}) and BirdNET x1, hop 0.5 s", flush=True)
        js = out / f"cluster-eval-{label}.json"
        cluster_eval([str(data / "orca-calls" / "catalog-2018")], model=str(model), backends=("birdnet",), hop=0.5,
                     select_on=(voc,), bootstrap=2000, json_out=str(js), progress=False)
        iv = json.loads(js.read_text())["intervals"]
        rows[f"LSTM-V3 {label}"] = iv["trained encoder"]
        rows[f"BirdNET x1 (with the {label} run)"] = iv["birdnet 2.4"]
    print("catalog-2018, 95 % intervals (1-NN: bootstrap of clips; NMI, ARI: jackknife over types), k = types cut")
    for k, r in rows.items():
        print(f"  {k:<42} 1-NN {r['nn_accuracy'][0]:.3f} [{r['nn_accuracy'][1]:.3f}, {r['nn_accuracy'][2]:.3f}]  "
              f"NMI {r['nmi'][0]:.3f} [{r['nmi'][1]:.3f}, {r['nmi'][2]:.3f}]  "
              f"ARI {r['ari'][0]:.3f} [{r['ari'][1]:.3f}, {r['ari'][2]:.3f}]")
    (out / "catalog.json").write_text(json.dumps({"chosen": name, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
