"""``sonotype demo``: the whole pipeline on a built-in synthetic corpus, no download needed.

synthetic clips (whistles, burst pulses, click trains, ocean noise) -> held-out test files ->
self-supervised encoder -> detector fine-tuned from it (threshold chosen at event level on a separate
synthetic long validation recording) ->
window-level evaluation on the held-out files -> detection over a long synthetic recording into
the SQLite store -> Raven table and non-silent WAV export -> event-level evaluation -> sound types
(DTW clustering and maps of the detected regions, stored) -> the model's report folder (figures,
cluster galleries and WAVs, agreement of clusters with the synthetic call types).
Ends by printing where every output is and how to browse it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .api import cluster, evaluate_events, export
from .audio.synth import make_clip_corpus, make_long_recording
from .detection.detector import DetectorConfig, train_detector
from .detection.evaluate import evaluate_detector, format_report, save_json
from .discovery.agreement import agreement
from .discovery.clustereval import cluster_eval, format_table
from .discovery.discover import DiscoverConfig
from .discovery.sequences import Clip
from .features.frontend import PRESETS
from .models.checkpoint import load_model
from .models.lstm_v3 import EncoderConfig
from .report.build import build_model_report
from .runner.batch import detect_many
from .store import open_store
from .training.dataset import make_items, read_annotations, split_by_file
from .training.train import TrainConfig, train_encoder


def run_demo(out: str | Path = "sonotype-demo", *, seed: int = 0, quick: bool = False, progress: bool = True,
             log: Callable[[str], None] = print) -> dict:
    """Run the demo into folder ``out``; returns a dict of output paths and the test metrics."""
    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    per_class = 8 if quick else 24
    log(f"[1/8] synthetic corpus: {per_class} clips per class -> {out / 'corpus'}")
    corpus = make_clip_corpus(out / "corpus", seed=seed, per_class=per_class)
    # the corpus's label table gives each call's start/end: windows outside calls are noise
    items = make_items(corpus.files, annotations=read_annotations(corpus.labels_path))
    train_items, test_items = split_by_file(items, fraction=0.25, seed=seed)
    (out / "split.json").write_text(json.dumps({"train": [i.path for i in train_items],
                                                "test": [i.path for i in test_items]}, indent=1))
    fe = PRESETS["dolphin"]
    log(f"[2/8] self-supervised encoder on {len(train_items)} training clips")
    enc_path = out / "models" / "encoder.pt"
    train_encoder(train_items, frontend=fe, out=enc_path, cache_dir=out / "cache",
                  encoder_config=EncoderConfig(), config=TrainConfig(epochs=3 if quick else 20, batch_size=32,
                                                                     seed=seed),
                  data_note={"corpus": str(corpus.root), "synthetic_seed": seed}, progress=progress, log=log)
    # a long recording of its own (another seed than the test recording) on which the threshold is chosen at
    # event level: the clips say little about false alarms per hour of mostly empty ocean
    val_long = make_long_recording(out / "validation" / "validation_recording.wav", seconds=30 if quick else 120,
                                   seed=seed + 2)
    threshold_items = make_items([val_long.path], annotations=read_annotations(val_long.annotations_path))
    log("[3/8] detector: encoder fine-tuned with a sigmoid head (threshold chosen at event level on a "
        f"{val_long.seconds:.0f} s validation recording)")
    det_path = out / "models" / "detector.pt"
    train_detector(enc_path, train_items, out=det_path, cache_dir=out / "cache", progress=progress, log=log,
                   threshold_items=threshold_items,
                   config=DetectorConfig(epochs=3 if quick else 10, stride=4, finetune=True, seed=seed))
    log(f"[4/8] evaluation on {len(test_items)} held-out clips")
    result = evaluate_detector(load_model(det_path, kind="detector"), test_items, progress=progress)
    log(format_report(result))
    eval_path = save_json(result, out / "evaluation.json")
    long = make_long_recording(out / "long" / "long_recording.wav", seconds=30 if quick else 120, seed=seed + 1)
    db = f"sqlite:///{(out / 'sonotype.db').resolve()}"
    log(f"[5/8] detection over a {long.seconds:.0f} s recording into {db}")
    (out / "sonotype.db").unlink(missing_ok=True)
    detect_many([long.path.resolve()], model=det_path, db=db, metadata={"encounter": "demo", "site": "synthetic"},
                progress=progress, log=log)
    log("[6/8] exports and event-level evaluation")
    exported = export(db=db, out=out / "exports", fmt="raven", log=log) + \
        export(db=db, out=out / "exports", fmt="wav", log=log) + \
        export(db=db, out=out / "exports" / "regions.csv", fmt="csv", log=log)
    events = evaluate_events(db=db, annotations=long.annotations_path, json_out=out / "events.json", log=log)
    log("[7/8] sound types: DTW clustering (self-supervised encoder) and maps of the detected regions, stored")
    config = DiscoverConfig(k=8, maps=("tsne",), seed=seed)
    found = cluster(db=db, model=enc_path, config=config, progress=progress, log=log)
    truth = _region_truth(db, found.region_ids, long.events)
    for name, c in found.clusterings.items():
        a = agreement(truth, c.labels)
        log(f"  {name}: {c.n_clusters} clusters vs the {a['n_types']} true kinds of region (call types and "
            f"'noise' for false alarms): NMI {a['nmi']:.3f}, ARI {a['ari']:.3f}, purity {a['purity']:.3f}")
    log("[8/8] model report: agreement of clusters with the held-out clips' call types, figures, galleries")
    catalog = _call_clips(corpus, test_items)
    ev = cluster_eval(catalog, load_model(det_path), seed=seed, log=log)
    log(format_table(ev))
    with open_store(db) as store:
        readme = build_model_report(load_model(det_path), out / "reports", evaluation=result, catalog=ev,
                                    store=store, run_id=found.run_id, log=log)
    outputs = {"corpus": str(corpus.root), "encoder": str(enc_path), "detector": str(det_path),
               "evaluation": str(eval_path), "database": db, "exports": str(out / "exports"),
               "events": str(out / "events.json"), "report": str(readme.parent / "report.html")}
    log(f"\ndemo finished in {time.time() - t0:.0f} s. Outputs:")
    for k, v in outputs.items():
        log(f"  {k:<11} {v}")
    log(f"\nBrowse the results: {Path(sys.executable).parent / 'sonotype'} serve --db {db}\n"
        "  then open http://127.0.0.1:8000/ in a web browser (add --edit-token SECRET to allow relabelling)")
    return {**outputs, "metrics": result["confusion"], "event_metrics": events, "exported": [str(p) for p in exported],
            "clusters": {k: c.n_clusters for k, c in found.clusterings.items()},
            "cluster_agreement": ev.table_rows()}


def _region_truth(db: str, region_ids, events) -> list[str]:
    """Each region's true kind: the call type of the synthetic event it overlaps most, else 'noise'."""
    with open_store(db) as store:
        spans = {r.id: (r.region.start_s, r.region.stop_s) for r in store.regions()}
    out = []
    for rid in region_ids:
        a, b = spans[int(rid)]
        best = max(((min(b, e.end) - max(a, e.start), e.call_type) for e in events), default=(0.0, "noise"))
        out.append(best[1] if best[0] > 0 else "noise")
    return out


def _call_clips(corpus, items) -> list[Clip]:
    """The calls (their annotated spans) of the held-out clips, labelled with their synthetic call type."""
    held_out = {str(Path(i.path)) for i in items}
    clips = []
    for e in corpus.clips:
        path = str(corpus.root / e.filename)
        if e.start is not None and path in held_out:
            clips.append(Clip(path, 0, round(e.start * corpus.sample_rate), round(e.end * corpus.sample_rate),
                              label=e.call_type, key=e.filename))
    return clips
