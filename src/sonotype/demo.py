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
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .api import cluster, evaluate_events, export
from .audio.span import Span
from .audio.synth import make_clip_corpus, make_long_recording
from .detection.detector import DetectorConfig, train_detector
from .detection.evaluate import evaluate_detector, format_report, save_json
from .discovery.agreement import agreement
from .discovery.clustereval import cluster_eval, format_table
from .discovery.discover import DiscoverConfig
from .features.frontend import PRESETS
from .models.checkpoint import load_model
from .models.lstm_v3 import EncoderConfig
from .report.build import build_model_report
from .runner.batch import detect_many
from .store import open_store
from .training.dataset import make_items, read_annotations, split_by_file
from .training.train import TrainConfig, train_encoder

#: the demo's settings (``quick``: the smallest that still runs every stage, for tests)
FULL = dict(per_class=24, encoder_epochs=20, detector_epochs=10, finetune_stride=8, long_seconds=120)
QUICK = dict(per_class=8, encoder_epochs=3, detector_epochs=3, finetune_stride=4, long_seconds=30)


class _Stages:
    """One console line per stage (its number, name, seconds and key numbers); every detail line of
    the stages goes to ``demo.log``. Wall and CPU seconds per stage go to ``timings.json``.

    With ``live`` (a terminal), the line of the running stage shows its latest detail message and is
    replaced by the stage's summary when it ends: the console never holds more than one line a stage."""

    def __init__(self, out: Path, n: int, log: Callable[[str], None], *, live: bool = False):
        self.out, self.n, self.log, self.i, self.live = out, n, log, 0, live
        self.path = out / "demo.log"
        self.path.write_text("", encoding="utf-8")
        self.t0, self.rows = time.perf_counter(), []
        self._mark = (self.t0, time.process_time())
        self._name = ""

    def start(self, name: str) -> None:
        self._name = name
        self._show("...")

    def _show(self, text: str) -> None:
        if self.live and self._name:
            head = f"[{self.i + 1}/{self.n}] {self._name:<12} {time.perf_counter() - self._mark[0]:5.0f} s  "
            width = shutil.get_terminal_size((100, 20)).columns - 1
            sys.stdout.write("\r\x1b[K" + (head + " ".join(text.split()))[:width])
            sys.stdout.flush()

    def detail(self, msg: str) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(msg + "\n")
        if msg.strip():
            self._show(msg.strip().splitlines()[-1])

    def done(self, name: str, summary: str) -> None:
        wall, cpu = time.perf_counter() - self._mark[0], time.process_time() - self._mark[1]
        self.i += 1
        self.rows.append({"stage": self.i, "name": name, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2)})
        line = f"[{self.i}/{self.n}] {name:<12} {wall:5.0f} s  {summary}"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + f" (CPU {cpu:.0f} s)\n")
        if self.live:
            sys.stdout.write("\r\x1b[K")
        self.log(line)
        self._mark = (time.perf_counter(), time.process_time())
        self._name = ""

    def close(self) -> float:
        total = time.perf_counter() - self.t0
        (self.out / "timings.json").write_text(json.dumps({"total_wall_s": round(total, 2), "stages": self.rows},
                                                          indent=1))
        return total


def run_demo(out: str | Path = "sonotype-demo", *, seed: int = 0, quick: bool = False, progress: bool = True,
             log: Callable[[str], None] = print) -> dict:
    """Run the demo into folder ``out``; returns a dict of output paths and the test metrics.

    ``log`` gets one line per stage and the closing summary; the stages' own messages (training
    epochs, tables) go to ``out/demo.log``, the seconds of each stage to ``out/timings.json``. With
    ``progress`` and a terminal, the running stage's line shows its latest message as it goes."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = QUICK if quick else FULL
    log(f"sonotype demo: the whole pipeline on a synthetic corpus, into {out}/ (details: {out / 'demo.log'})")
    # the stages' own progress bars stay off: in a terminal the running stage's line shows its progress
    st = _Stages(out, 8, log, live=progress and log is print and sys.stdout.isatty())
    st.start("corpus")
    detail = st.detail
    corpus = make_clip_corpus(out / "corpus", seed=seed, per_class=s["per_class"])
    # the corpus's label table gives each call's start/end: windows outside calls are noise
    items = make_items(corpus.files, annotations=read_annotations(corpus.labels_path))
    train_items, test_items = split_by_file(items, fraction=0.25, seed=seed)
    (out / "split.json").write_text(json.dumps({"train": [i.path for i in train_items],
                                                "test": [i.path for i in test_items]}, indent=1))
    st.done("corpus", f"{len(items)} synthetic 1-s clips (whistles, burst pulses, click trains, noise): "
                      f"{len(train_items)} to train on, {len(test_items)} held out")
    st.start("encoder")

    fe = PRESETS["dolphin"]
    enc_path = out / "models" / "encoder.pt"
    ck = train_encoder(train_items, frontend=fe, out=enc_path, cache_dir=out / "cache", encoder_config=EncoderConfig(),
                       config=TrainConfig(epochs=s["encoder_epochs"], batch_size=32, seed=seed),
                       data_note={"corpus": str(corpus.root), "synthetic_seed": seed}, progress=False, log=detail)
    last = ck.history[-1]
    st.done("encoder", f"self-supervised (next-frame prediction), {s['encoder_epochs']} epochs, "
                       f"validation loss {last['val_loss']:.3f}")
    st.start("detector")

    # a long recording of its own (another seed than the test recording) on which the threshold is chosen at
    # event level: the clips say little about false alarms per hour of mostly empty ocean
    val_long = make_long_recording(out / "validation" / "validation_recording.wav", seconds=s["long_seconds"],
                                   seed=seed + 2)
    threshold_items = make_items([val_long.path], annotations=read_annotations(val_long.annotations_path))
    det_path = out / "models" / "detector.pt"
    dck = train_detector(enc_path, train_items, out=det_path, cache_dir=out / "cache", progress=False, log=detail,
                         threshold_items=threshold_items,
                         config=DetectorConfig(epochs=s["detector_epochs"], stride=s["finetune_stride"], finetune=True,
                                               seed=seed))
    d = dck.detector
    st.done("detector", f"encoder fine-tuned with a sigmoid head, {s['detector_epochs']} epochs; threshold "
                        f"{d.threshold:.3f} chosen at {d.threshold_level} level on a {val_long.seconds:.0f}-s "
                        "validation recording")
    st.start("evaluation")

    result = evaluate_detector(load_model(det_path, kind="detector"), test_items, progress=False)
    detail(format_report(result))
    eval_path = save_json(result, out / "evaluation.json")
    c = result["confusion"]
    st.done("evaluation", f"{len(test_items)} held-out clips, window level: precision {c['precision']:.3f}, "
                          f"recall {c['recall']:.3f}, F1 {c['f1']:.3f}")
    st.start("detection")

    long = make_long_recording(out / "long" / "long_recording.wav", seconds=s["long_seconds"], seed=seed + 1)
    db = f"sqlite:///{(out / 'sonotype.db').resolve()}"
    (out / "sonotype.db").unlink(missing_ok=True)
    detect_many([long.path.resolve()], model=det_path, db=db, metadata={"encounter": "demo", "site": "synthetic"},
                progress=False, log=detail)
    with open_store(db) as store:
        n_regions = sum(1 for _ in store.regions())
    st.done("detection", f"{n_regions} regions in a {long.seconds:.0f}-s recording with {len(long.events)} calls, "
                         "stored in the database")
    st.start("events")

    exported = export(db=db, out=out / "exports", fmt="raven", log=detail) + \
        export(db=db, out=out / "exports", fmt="wav", log=detail) + \
        export(db=db, out=out / "exports" / "regions.csv", fmt="csv", log=detail)
    events = evaluate_events(db=db, annotations=long.annotations_path, json_out=out / "events.json", log=detail)
    st.done("events", f"event recall {events['recall']:.3f} ({events['events_found']}/{events['events']}), "
                      f"precision {events['precision']:.3f}, {events['false_alarms_per_hour']:.0f} false alarms/h "
                      f"(PAM rule: {events['pam_rule']['false_alarms_per_hour']:.0f}/h); "
                      "Raven table, WAV and CSV exported")
    st.start("sound types")

    config = DiscoverConfig(k=8, maps=("tsne",), seed=seed)
    found = cluster(db=db, model=enc_path, config=config, progress=False, log=detail)
    truth = _region_truth(db, found.region_ids, long.events)
    scores = []
    for name, cl in found.clusterings.items():
        a = agreement(truth, cl.labels)
        detail(f"  {name}: {cl.n_clusters} clusters vs the {a['n_types']} true kinds of region (call types and "
               f"'noise' for false alarms): NMI {a['nmi']:.3f}, ARI {a['ari']:.3f}, purity {a['purity']:.3f}")
        scores.append(f"{name} {cl.n_clusters} clusters (NMI {a['nmi']:.2f} with the true call types)")
    st.done("sound types", "DTW clustering of the regions: " + ", ".join(scores) + "; t-SNE map")
    st.start("report")

    catalog = _call_clips(corpus, test_items)
    ev = cluster_eval(catalog, load_model(det_path), seed=seed, log=detail)
    detail(format_table(ev))
    with open_store(db) as store:
        readme = build_model_report(load_model(det_path), out / "reports", evaluation=result, catalog=ev,
                                    store=store, run_id=found.run_id, log=detail)
    nn = {name: r.nn_accuracy for name, r in ev.results.items()}
    st.done("report", "calls of the held-out clips, DTW nearest-neighbour accuracy: "
                      + ", ".join(f"{k} {v:.2f}" for k, v in nn.items()) + "; figures, galleries, cluster WAVs")

    outputs = {"corpus": str(corpus.root), "encoder": str(enc_path), "detector": str(det_path),
               "evaluation": str(eval_path), "database": db, "exports": str(out / "exports"),
               "events": str(out / "events.json"), "report": str(readme.parent / "report.html"),
               "log": str(out / "demo.log")}
    total = st.close()
    log(f"\ndemo finished in {total:.0f} s. Outputs:")
    for k, v in outputs.items():
        log(f"  {k:<11} {v}")
    log(f"\nBrowse the results: {Path(sys.executable).parent / 'sonotype'} serve --db {db}\n"
        "  then open http://127.0.0.1:8000/ in a web browser (add --edit-token SECRET to allow relabelling)")
    return {**outputs, "metrics": result["confusion"], "event_metrics": events, "exported": [str(p) for p in exported],
            "clusters": {k: c.n_clusters for k, c in found.clusterings.items()},
            "cluster_agreement": ev.table_rows(), "timings": st.rows}


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


def _call_clips(corpus, items) -> list[Span]:
    """The calls (their annotated spans) of the held-out clips, labelled with their synthetic call type."""
    held_out = {str(Path(i.path)) for i in items}
    clips = []
    for e in corpus.clips:
        path = str(corpus.root / e.filename)
        if e.start is not None and path in held_out:
            clips.append(Span(path, 0, round(e.start * corpus.sample_rate), round(e.end * corpus.sample_rate),
                              label=e.call_type, key=e.filename))
    return clips
