"""``sonotype demo``: the whole pipeline on a built-in synthetic corpus, no download needed.

synthetic clips (whistles, burst pulses, click trains, ocean noise) -> held-out test files ->
self-supervised encoder -> frozen-encoder detector (threshold chosen on validation) ->
window-level evaluation on the held-out files -> detection over a long synthetic recording into
the SQLite store -> Raven table and non-silent WAV export -> event-level evaluation.
Ends by printing where every output is.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from .api import evaluate_events, export
from .batch import detect_many
from .checkpoint import load_model
from .dataset import make_items, read_annotations, split_by_file
from .detector import DetectorConfig, train_detector
from .evaluate import evaluate_detector, format_report, save_json
from .features import PRESETS
from .model import EncoderConfig
from .synth import make_clip_corpus, make_long_recording
from .train import TrainConfig, train_encoder


def run_demo(out: str | Path = "sonotype-demo", *, seed: int = 0, quick: bool = False, progress: bool = True,
             log: Callable[[str], None] = print) -> dict:
    """Run the demo into folder ``out``; returns a dict of output paths and the test metrics."""
    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    per_class = 8 if quick else 24
    log(f"[1/6] synthetic corpus: {per_class} clips per class -> {out / 'corpus'}")
    corpus = make_clip_corpus(out / "corpus", seed=seed, per_class=per_class)
    # the corpus's label table gives each call's start/end: windows outside calls are noise
    items = make_items(corpus.files, annotations=read_annotations(corpus.labels_path))
    train_items, test_items = split_by_file(items, fraction=0.25, seed=seed)
    (out / "split.json").write_text(json.dumps({"train": [i.path for i in train_items],
                                                "test": [i.path for i in test_items]}, indent=1))
    fe = PRESETS["dolphin"]
    log(f"[2/6] self-supervised encoder on {len(train_items)} training clips")
    enc_path = out / "models" / "encoder.pt"
    train_encoder(train_items, frontend=fe, out=enc_path, cache_dir=out / "cache",
                  encoder_config=EncoderConfig(), config=TrainConfig(epochs=3 if quick else 20, batch_size=32,
                                                                     seed=seed),
                  data_note={"corpus": str(corpus.root), "synthetic_seed": seed}, progress=progress, log=log)
    log("[3/6] detector: encoder fine-tuned with a sigmoid head (threshold chosen on validation files)")
    det_path = out / "models" / "detector.pt"
    train_detector(enc_path, train_items, out=det_path, cache_dir=out / "cache", progress=progress, log=log,
                   config=DetectorConfig(epochs=3 if quick else 10, stride=4, finetune=True, seed=seed))
    log(f"[4/6] evaluation on {len(test_items)} held-out clips")
    result = evaluate_detector(load_model(det_path, kind="detector"), test_items, progress=progress)
    log(format_report(result))
    eval_path = save_json(result, out / "evaluation.json")
    long = make_long_recording(out / "long" / "long_recording.wav", seconds=30 if quick else 120, seed=seed + 1)
    db = f"sqlite:///{(out / 'sonotype.db').resolve()}"
    log(f"[5/6] detection over a {long.seconds:.0f} s recording into {db}")
    (out / "sonotype.db").unlink(missing_ok=True)
    detect_many([long.path], model=det_path, db=db, metadata={"encounter": "demo", "site": "synthetic"},
                progress=progress, log=log)
    log("[6/6] exports and event-level evaluation")
    exported = export(db=db, out=out / "exports", fmt="raven", log=log) + \
        export(db=db, out=out / "exports", fmt="wav", log=log) + \
        export(db=db, out=out / "exports" / "regions.csv", fmt="csv", log=log)
    events = evaluate_events(db=db, annotations=long.annotations_path, json_out=out / "events.json", log=log)
    outputs = {"corpus": str(corpus.root), "encoder": str(enc_path), "detector": str(det_path),
               "evaluation": str(eval_path), "database": db, "exports": str(out / "exports"),
               "events": str(out / "events.json")}
    log(f"\ndemo finished in {time.time() - t0:.0f} s. Outputs:")
    for k, v in outputs.items():
        log(f"  {k:<11} {v}")
    return {**outputs, "metrics": result["confusion"], "event_metrics": events, "exported": [str(p) for p in exported]}
