"""High-level entry points, one per CLI subcommand, usable from Python too.

Each takes its command's config (:mod:`sonotype.config`, e.g. ``train(config=TrainRun(...))``) or the
defaults with fields replaced by keyword (``train(paths, out="e.pt", epochs=20)``; a stage setting is
named by its field alone), turns it into the library calls and prints a short account of what it did.
No default is written here: each is its config field's.

(Over 400 lines: one short function per subcommand, eighteen of them; each is a few lines of glue.)
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import MISSING, fields
from pathlib import Path

from .audio.io import open_recording
from .config import (
    BESIDE,
    ClusterEvalRun,
    ClusterRun,
    DetectRun,
    DistillRun,
    EvaluateEventsRun,
    EvaluateRun,
    ExportLabelsRun,
    ExportRun,
    FrontEndChoice,
    FuseDetectorsRun,
    InfoRun,
    ReportRun,
    RunsRun,
    SearchRun,
    TrainDetectorRun,
    TrainRun,
)
from .detection.detector import train_detector as _train_detector
from .detection.evaluate import evaluate_detector, format_report, save_json
from .discovery.discover import DiscoverConfig
from .errors import ConfigError
from .models.checkpoint import Checkpoint, load_model
from .models.lstm_v3 import EncoderConfig
from .params import make
from .training.dataset import LabelRule, find_audio, load_items
from .training.train import train_encoder


def _config(cls, config, paths=None, **kw):
    """``config`` (a ``cls``; None: the defaults) with ``paths`` and the fields named in ``kw`` replaced."""
    if paths is not None:
        kw["paths"] = tuple(str(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths))
    return make(cls, config, **kw)


def _warn_skip(log: Callable[[str], None]):
    def on_error(path, err):
        log(f"skipped {err}")
    return on_error


def _cache(c) -> Path:
    return Path(c.cache_dir) if c.cache_dir else Path(c.out).parent / ".sonotype-cache"


def train(paths: Sequence[str | Path] | None = None, *, config: TrainRun | None = None,
          log: Callable[[str], None] = print, **kw) -> Checkpoint:
    """Self-supervised encoder training (``sonotype train``): ``config``, or the defaults, with any
    :class:`~sonotype.config.TrainRun` field replaced by keyword (``out=``, ``epochs=``, ``preset=``, ...).
    Writes ``out`` and, unless ``report_dir`` is empty, the model's report folder."""
    c = _config(TrainRun, config, paths, **kw)
    fe = c.frontend.frontend()
    items = load_items(c.paths, channel=c.channel, on_error=_warn_skip(log))
    enc = EncoderConfig(window=fe.window, n_bins=fe.n_bins, batch_norm=c.batch_norm)
    ck = train_encoder(items, frontend=fe, out=c.out, cache_dir=_cache(c), encoder_config=enc, config=c.training,
                       resume=c.resume, channel=c.channel,
                       data_note={"preset": c.frontend.preset, "inputs": list(c.paths)}, progress=c.progress, log=log)
    if int(os.environ.get("RANK", "0")) > 0:
        return ck  # torchrun: one process reports
    log(f"encoder checkpoint: {c.out}")
    _model_report(c.out, c.report_dir, log)
    return ck


def distill(paths: Sequence[str | Path] | None = None, *, config: DistillRun | None = None,
            log: Callable[[str], None] = print, **kw) -> Checkpoint:
    """Distil a pretrained backend (``teacher``) into an LSTM-V3 encoder on unlabelled audio
    (``sonotype distill``; fields: :class:`~sonotype.config.DistillRun`). The student starts from
    ``init`` (an encoder checkpoint) or, without it, from scratch with ``preset``."""
    from .models.backends import load_backend
    from .training.distill import distill as _distill
    c = _config(DistillRun, config, paths, **kw)
    tb = load_backend(c.teacher, hop_s=c.hop, speedup=c.speedup)
    student = load_model(c.init) if c.init else None
    items = load_items(c.paths, channel=c.channel, on_error=_warn_skip(log))
    ck = _distill(items, tb, student=student, out=c.out, cache_dir=_cache(c),
                  frontend=None if student else FrontEndChoice(preset=c.preset).frontend(),
                  config=c.distill, channel=c.channel, progress=c.progress, log=log)
    log(f"distilled encoder checkpoint: {c.out} (lowest validation loss: {Path(c.out).with_suffix('.best.pt')})")
    return ck


def _model_report(checkpoint: str | Path, report_dir: str | Path | None, log: Callable[[str], None]) -> None:
    """The freshly trained model's report folder (its best checkpoint when there is one)."""
    if not report_dir:
        return
    if report_dir == BESIDE:
        report_dir = Path(checkpoint).parent / "reports"
    from .report.build import build_model_report
    from .training.train import best_path
    best = best_path(checkpoint)
    build_model_report(load_model(best if Path(best).is_file() else checkpoint), report_dir, log=log)


def _labelled_items(c, log: Callable[[str], None]):
    """The labelled files of a train-detector or evaluate config: from its annotation table, else by name."""
    d = LabelRule()
    rule = LabelRule(tuple(c.negative_patterns or d.negative_patterns), tuple(c.negative_dirs or d.negative_dirs))
    return load_items(c.paths, channel=c.channel, annotations=c.annotations, rule=None if c.annotations else rule,
                      on_error=_warn_skip(log), allow_unmatched=c.allow_unmatched, log=log)


def _threshold_items(c, training, log: Callable[[str], None]):
    """The annotated recordings of ``--threshold-file`` (None without any); never the training files."""
    if not c.threshold_files:
        if c.threshold_annotations:
            raise ConfigError(f"--threshold-annotations {c.threshold_annotations} names the events of recordings "
                              "given with --threshold-file; give those recordings too")
        return None
    if not c.threshold_annotations:
        raise ConfigError(f"--threshold-file {c.threshold_files[0]}: the event-level threshold needs the events in "
                          "it; give --threshold-annotations CSV (a file listed with empty times holds none)")
    both = sorted({str(Path(f).resolve()) for f in find_audio(c.threshold_files)}
                  & {str(Path(i.path).resolve()) for i in training})
    if both:
        raise ConfigError(f"{both[0]} is both a training file and a --threshold-file; the threshold must be chosen "
                          "on recordings the detector was not trained on")
    return load_items(c.threshold_files, channel=c.channel, annotations=c.threshold_annotations, rule=None,
                      on_error=_warn_skip(log), allow_unmatched=False, log=log)


def train_detector(paths: Sequence[str | Path] | None = None, *, config: TrainDetectorRun | None = None,
                   log: Callable[[str], None] = print, **kw) -> Checkpoint:
    """Detector training on a frozen (or fine-tuned) encoder (``sonotype train-detector``; fields:
    :class:`~sonotype.config.TrainDetectorRun`, the detector's own under ``detector``). Every file name
    of ``annotations`` must match an input file, unless ``allow_unmatched``."""
    c = _config(TrainDetectorRun, config, paths, **kw)
    name = c.detector.backend
    if name == "lstm" and not c.encoder:
        raise ConfigError("train-detector needs --encoder ENCODER.pt (from `sonotype train`) with the lstm backend, "
                          "or a pretrained backend: --backend birdnet")
    if name != "lstm" and c.encoder:
        raise ConfigError(f"--encoder {c.encoder!r} is not used with --backend {name} (the detector reads {name}'s "
                          "embeddings); leave it out, or use --backend lstm")
    backend = None
    if name != "lstm":
        from .models.backends import load_backend
        backend = load_backend(name, hop_s=c.detector.hop, speedup=c.detector.speedup)  # a missing extra fails now
    items = _labelled_items(c, log)
    held = _threshold_items(c, items, log)
    note = {"inputs": list(c.paths), "annotations": str(c.annotations) if c.annotations else None,
            "threshold_files": list(c.threshold_files),
            "threshold_annotations": str(c.threshold_annotations) if c.threshold_annotations else None}
    if backend is not None:
        from .detection.backend import train_backend_detector
        ck = train_backend_detector(backend, items, out=c.out, config=c.detector, data_note=note,
                                    progress=c.progress, log=log, threshold_items=held, folds=c.threshold_folds)
        log(f"detector checkpoint: {c.out} (on {backend.info.key})")
        if c.report_dir:
            log("no model report: reports describe an LSTM-V3 encoder, and this detector reads "
                f"{backend.info.label} embeddings")
        return ck
    if c.threshold_folds:
        if held:
            raise ConfigError("give --threshold-folds or --threshold-file, not both: the threshold is chosen on "
                              "the cross-validated training recordings or on the separate ones")
        from .detection.crossval import train_detector_cv
        ck = train_detector_cv(c.encoder, items, out=c.out, folds=c.threshold_folds, config=c.detector,
                               data_note=note, cache_dir=c.cache_dir, progress=c.progress, log=log)
    else:
        ck = _train_detector(c.encoder, items, out=c.out, config=c.detector, progress=c.progress, log=log,
                             cache_dir=c.cache_dir, data_note=note, threshold_items=held)
    log(f"detector checkpoint: {c.out}")
    _model_report(c.out, c.report_dir, log)
    return ck


def fuse_detectors(paths: Sequence[str | Path] | None = None, *, config: FuseDetectorsRun | None = None,
                   log: Callable[[str], None] = print, **kw) -> Checkpoint:
    """One detector from several (``sonotype fuse-detectors``; fields: :class:`~sonotype.config.FuseDetectorsRun`):
    see :mod:`sonotype.detection.fusion`."""
    from .detection.fusion import fuse_detectors as fuse
    c = _config(FuseDetectorsRun, config, paths, **kw)
    held = _threshold_items(c, [], log)
    if held is not None and c.threshold is not None:
        raise ConfigError("give --threshold or --threshold-file, not both: the threshold is either given or chosen")
    if c.choose_weights and c.weights:
        raise ConfigError("give --weights or --choose-weights, not both: the weights are either given or chosen")
    return fuse(c.paths, out=c.out, weights="auto" if c.choose_weights else (c.weights or None), threshold=c.threshold,
                threshold_items=held, log=log)


def evaluate(paths: Sequence[str | Path] | None = None, *, config: EvaluateRun | None = None,
             log: Callable[[str], None] = print, **kw) -> dict:
    """Window-level scores of a detector against labels (``sonotype evaluate``; fields:
    :class:`~sonotype.config.EvaluateRun`). ``min_overlap`` None: the value the detector was trained with."""
    from .detection.fusion import load_detector
    c = _config(EvaluateRun, config, paths, **kw)
    m = load_detector(c.model)
    items = _labelled_items(c, log)
    result = evaluate_detector(m, items, threshold=c.threshold, min_overlap=c.min_overlap, progress=c.progress)
    log(format_report(result))
    if c.json_out:
        log(f"full result: {save_json(result, c.json_out)}")
    return result


def info(paths: Sequence[str | Path] | None = None, *, config: InfoRun | None = None,
         log: Callable[[str], None] = print) -> list:
    """What sonotype reads from each audio file (``sonotype info``)."""
    c = _config(InfoRun, config, paths)
    recs = []
    for f in find_audio(c.paths):
        r = open_recording(f)
        recs.append(r)
        log(f"{f}: {r.sample_rate} Hz, {r.channels} ch (using {r.channel}), {r.duration_s:.2f} s, {r.format}")
    return recs


def detect(paths: Sequence[str | Path] | None = None, *, config: DetectRun | None = None,
           log: Callable[[str], None] = print, **kw):
    """Detect regions in every file under ``paths`` into database ``db`` (resumable, exactly once;
    ``sonotype detect``; fields: :class:`~sonotype.config.DetectRun`). ``workers``: processes detecting files
    at once on this machine; ``ray``: ``auto`` or a Ray cluster's address to spread the files over
    (``sonotype[ray]``). Either way this process alone writes to ``db``."""
    from .runner.batch import detect_many
    from .runner.parallel import executor_for
    c = _config(DetectRun, config, paths, **kw)
    return detect_many(c.paths, **_accepted(detect_many, c, skip=("paths", "workers", "ray", "ray_gpus")),
                       log=log, executor=executor_for(workers=c.workers, ray=c.ray, ray_gpus=c.ray_gpus))


def _accepted(fn: Callable, c, *, skip: tuple[str, ...] = ()) -> dict:
    """The fields of config ``c`` that ``fn`` takes as keywords. A field it does not take must hold its
    default (else a ConfigError: this build cannot do it); None stands for ``fn``'s own default."""
    sig = inspect.signature(fn).parameters
    out = {}
    for f in fields(c):
        v = getattr(c, f.name)
        if f.name in skip:
            continue
        if f.name not in sig:
            if v != (f.default_factory() if f.default_factory is not MISSING else f.default):
                raise ConfigError(f"{f.name}={v!r} is not supported by {fn.__module__}.{fn.__name__} in this "
                                  f"version; leave it at its default")
            continue
        if v is None and sig[f.name].default not in (None, inspect.Parameter.empty):
            continue  # the library's own default
        out[f.name] = v
    return out


def runs(*, config: RunsRun | None = None, log: Callable[[str], None] = print, **kw) -> list[dict]:
    """The detection runs of a database, one line each: id, date, model, threshold, recordings done/failed,
    regions, audio hours, and the clusterings stored for it (read-only; ``sonotype runs``)."""
    from .store import open_store
    c = _config(RunsRun, config, **kw)
    db, json_out = c.db, c.json_out
    out = []
    with open_store(db, read_only=True) as store:
        for r in store.runs():
            m = store.model(r.model_id)
            summ = store.run_summary(r.id)
            rule = (r.settings or {}).get("rule") or {}
            clus = store.clusterings(r.id)
            out.append({"run": r.id, "created_at": r.created_at, "model": m.version if m else None,
                        "threshold": rule.get("threshold"), "done": summ.get("done", 0),
                        "failed": summ.get("failed", 0), "regions": summ.get("regions", 0),
                        "hours": summ.get("seconds", 0.0) / 3600, "clusterings": len(clus)})
    if not out:
        log(f"{db}: no detection run yet; `sonotype detect FILES --model M --db {db}` makes one")
    for o in out:
        th = f"{o['threshold']:.3f}" if isinstance(o["threshold"], (int, float)) else "-"
        log(f"run {o['run']:>3}  {o['created_at'][:19]}  model {o['model']}  threshold {th}  "
            f"{o['done']} recording(s) done, {o['failed']} failed, {o['regions']} regions, "
            f"{o['clusterings']} clustering(s)")
    if json_out:
        save_json({"db": db, "runs": out}, json_out)
    return out


def _run_records(store, run: int | None):
    """(run id, recordings by id, RegionRows by recording id) of a run (default: the latest run with
    results). Grouped by recording id, never by path or name: two recordings may share either."""
    run = store.run_or_latest(run)
    recs = {p.recording_id: store.recording(p.recording_id) for p in store.processed(run_id=run, status="done")}
    by_rec: dict[int, list] = {rid: [] for rid in recs}
    for g in store.regions(run_id=run):
        if g.recording_id in recs:
            by_rec[g.recording_id].append(g)
    return run, recs, by_rec


def export(*, config: ExportRun | None = None, log: Callable[[str], None] = print, **kw) -> list[Path]:
    """Export a run's regions (``sonotype export``; fields: :class:`~sonotype.config.ExportRun`):
    ``raven``/``audacity``/``wav`` write one file per recording into folder ``out``; ``csv``/``parquet``
    write one table to ``out``."""
    from .store import export as ex
    from .store import open_store
    c = _config(ExportRun, config, **kw)
    db, out, fmt, run, gap_s = c.db, c.out, c.fmt, c.run, c.gap_s
    _check_export_out(Path(out), fmt)
    with open_store(db, read_only=True) as store:
        run, recs, by_rec = _run_records(store, run)
        fe = store.run_frontend(run)
    low, high = (None, None) if fe is None else (fe.fmin, fe.fmax)  # the band the detector looked at
    paths = {rid: r.path for rid, r in recs.items()}
    rows = [r for rid in sorted(by_rec) for r in by_rec[rid]]
    written: list[Path] = []
    if fmt in ("csv", "parquet"):
        written.append(ex.regions_table(rows, Path(out) if Path(out).suffix else Path(out) / f"regions.{fmt}",
                                        recordings=paths))
    elif fmt in ("raven", "audacity", "wav"):
        for rec in recs.values():
            mine = by_rec[rec.id]
            stem = Path(out) / f"{Path(rec.path).stem}-r{rec.id}"
            if fmt == "raven":
                written.append(ex.raven_table(mine, stem.with_suffix(".selections.txt"), recordings=paths,
                                              low_hz=low, high_hz=high))
            elif fmt == "audacity":
                written.append(ex.audacity_labels([r.region for r in mine], stem.with_suffix(".labels.txt")))
            elif mine:
                written.append(ex.nonsilent_audio(rec.path, [r.region for r in mine], stem.with_suffix(".nonsilent.wav"),
                                                  channel=rec.channel_used or 0, gap_s=gap_s))
    log(f"run {run}: exported {len(rows)} region(s) from {len(recs)} recording(s) to {len(written)} file(s) "
        f"under {out}")
    return written


def _check_export_out(out: Path, fmt: str) -> None:
    """``--out`` must be a folder (raven, audacity, wav) or a table file (csv, parquet) that can be written."""
    if fmt in ("raven", "audacity", "wav"):
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {str(out)!r} is an existing file; {fmt} export writes one file per "
                              "recording into a folder: give a folder (new or existing)")
        return
    target = out if out.suffix else out / f"regions.{fmt}"
    if out.suffix and out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is an existing folder; give the {fmt} table file to write "
                          f"(e.g. {str(out / f'regions.{fmt}')!r}) or a folder name without a suffix")
    if target.suffix.lower() != f".{fmt}":
        raise ConfigError(f"--out {str(out)!r}: a {fmt} table needs the suffix .{fmt}; got {target.suffix!r}")
    if any(p.exists() and not p.is_dir() for p in target.parents):
        raise ConfigError(f"--out {str(out)!r}: a parent of it is an existing file, not a folder; "
                          "choose another place")


def evaluate_events(*, config: EvaluateEventsRun | None = None, log: Callable[[str], None] = print, **kw) -> dict:
    """Event precision/recall/F1 and false alarms per hour of a run's regions against an annotation table,
    by overlap and by the PAM-challenge rule (a region's centre within ``tolerance_s`` of an event).

    Annotation names are matched to the run's recordings by :func:`~sonotype.training.dataset.match_annotations`
    (a recording under several paths answers to each). Names that match no recording, and recordings
    the table does not list, are refused (they would drop events or count every region as a false
    alarm) unless ``allow_unmatched``: then only the recordings in the table are scored. Fields:
    :class:`~sonotype.config.EvaluateEventsRun` (``sonotype evaluate-events``)."""
    from .detection.events import score_events
    from .errors import DataError
    from .store import open_store
    from .training.dataset import check_unmatched, match_annotations, read_annotations
    c = _config(EvaluateEventsRun, config, **kw)
    db, annotations, run, json_out, allow_unmatched, tolerance_s = \
        c.db, c.annotations, c.run, c.json_out, c.allow_unmatched, c.tolerance_s
    events = read_annotations(annotations, keep_paths=True)
    with open_store(db, read_only=True) as store:
        run, recs, by_rec = _run_records(store, run)
    m = match_annotations(events, {rid: r.paths or (r.path,) for rid, r in recs.items()})
    against = f"the {len(recs)} recording(s) of run {run}"
    check_unmatched(m.unmatched, table=annotations, total=len(events), against=against, allow=allow_unmatched,
                    log=log)
    if m.unannotated:
        missing = [recs[rid].path for rid in m.unannotated]
        shown = ", ".join(repr(p) for p in missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        if not allow_unmatched:
            raise DataError(f"{len(missing)} of {against} are not in {annotations}: {shown}; scoring them as "
                            "holding no event would count each of their regions as a false alarm. List them in "
                            "the table (a row with empty start,end marks a recording without events), or add "
                            "--allow-unmatched to score only the recordings the table lists")
        log(f"warning: {len(missing)} recording(s) of run {run} are not in {annotations} and are not scored: {shown}")
    scored = sorted(m.events)
    durations = {rid: recs[rid].duration_s for rid in scored}
    regions = {rid: [(r.region.start_s, r.region.stop_s) for r in by_rec[rid]] for rid in scored}
    s = score_events(regions, m.events, durations)
    pam = score_events(regions, m.events, durations, tolerance_s=tolerance_s)
    one = score_events(regions, m.events, durations, one_to_one=True)
    log(f"run {run}: {s.events} annotated event(s) in {len(durations)} recording(s), {s.hours:.2f} h")
    for name, sc in (("overlap rule", s), (f"PAM rule ({tolerance_s:g} s)", pam), ("one-to-one", one)):
        log(f"  {name:<16} event recall {sc.recall:.3f} ({sc.events_found}/{sc.events})   precision {sc.precision:.3f} "
            f"({sc.regions_matching}/{sc.regions} regions)   F1 {sc.f1:.3f}   false alarms {sc.false_alarms} "
            f"({sc.false_alarms_per_hour:.2f} per hour)")
    result = {"run": run, **s.to_dict(), "pam_rule": {"tolerance_s": tolerance_s, **pam.to_dict()},
              "one_to_one": one.to_dict(),
              "recordings": sorted(recs[rid].path for rid in scored)}
    if json_out:
        save_json(result, json_out)
    return result


# ---------------------------------------------------------------------------- sound-type discovery


def run_model(store, run: int, model: str | Path | None = None):
    """The model to embed a run's regions with: ``model`` if given, else the one that detected them."""
    if model is None:
        row = store.model(store.run(run).model_id)
        if not row or not row.path or not Path(row.path).is_file():
            raise ConfigError(f"run {run}: its model file {row.path if row else None!r} is not available; "
                              "pass --model with an encoder or detector checkpoint")
        model = row.path
    return load_model(model)


def cluster(*, config: ClusterRun | DiscoverConfig | None = None, log: Callable[[str], None] = print, **kw):
    """Cluster and map a detection run's regions (see :mod:`sonotype.discovery.discover`); results go to ``db``
    (``sonotype cluster``; fields: :class:`~sonotype.config.ClusterRun`; ``config`` may also be just its
    :class:`~sonotype.discovery.discover.DiscoverConfig`)."""
    from .discovery.discover import discover
    from .store import open_store
    if isinstance(config, DiscoverConfig):
        config, kw = None, {**kw, "discover": config}
    c = _config(ClusterRun, config, **kw)
    with open_store(c.db, must_exist=True) as store:
        run = store.run_or_latest(c.run)
        m = run_model(store, run, c.model)
        res = discover(store, run, m, config=c.discover, progress=c.progress, log=log)
    log(f"run {run}: {len(res.region_ids)} regions clustered with encoder {res.model_version}; "
        f"{', '.join(f'{k}: {c.n_clusters} clusters' for k, c in res.clusterings.items())}; "
        f"maps: {', '.join(res.maps) or 'none'}")
    return res


def cluster_eval(paths: Sequence[str | Path] | None = None, *, config: ClusterEvalRun | None = None,
                 log: Callable[[str], None] = print, **kw):
    """Agreement of DTW clusters with expert labels: the trained encoder, the two baselines and each
    named backend (e.g. ``birdnet``); ``sonotype cluster-eval``, fields: :class:`~sonotype.config.ClusterEvalRun`.

    ``select_on``: another labelled set (e.g. ``orca-calls/vocabulary``, cut into its loudest 2-s
    chunks) on which each representation's pooling and scaling are chosen (best ARI at k = types);
    ``paths`` are then scored with those choices only, so no setting is tuned on the reported set.

    ``select_nested`` (instead of ``select_on``): no second set. Every candidate (pooling x scaling x
    each of ``select_speedups`` for a backend) gets its DTW matrix on ``paths`` once; then, per
    representation (a backend's speed-ups together), see :func:`~sonotype.discovery.clustereval.nested_nn`:
    clip i is classified by its nearest neighbour under the candidate with the best leave-one-out 1-NN
    accuracy on the other clips (ties: the earlier candidate), and the reported 1-NN accuracy is the mean
    over the clips whose type occurs twice or more. NMI / ARI are of one clustering of all clips, under the
    candidate chosen most often by those per-clip choices (ties: the earlier); each vote is made without
    its own clip, but the votes together use every clip's label through 1-NN, so NMI / ARI are chosen on
    this set by another score, not nested (their jackknife interval does not cover the choice).
    ``bootstrap``: resamples for 95 % intervals of 1-NN, NMI and ARI (k = types).
    """
    from dataclasses import replace

    import numpy as np

    from .discovery.clustereval import (
        POOLINGS,
        SELECT_CLUSTERING,
        SELECT_SCALINGS,
        ClusterEval,
        best_variants,
        candidate_distances,
        evaluate_representations,
        format_table,
        labelled_clips,
        loudest_chunks,
        nested_select,
        representations,
        score_distance,
        score_intervals,
        select_settings,
    )
    from .models.backends import load_backend
    cfg = _config(ClusterEvalRun, config, paths, **kw)
    model, pat, labels_csv, channel, band, percentile, scaling, pooling, stride, select_on, bootstrap = \
        cfg.model, cfg.pattern, cfg.labels_csv, cfg.channel, cfg.band, cfg.percentile, cfg.scaling, cfg.pooling, \
        cfg.stride, cfg.select_on, cfg.bootstrap
    paths, progress, nested = cfg.paths, cfg.progress, cfg.select_nested
    if nested and select_on:
        raise ConfigError(f"--select-nested chooses settings on the reported set itself, --select-on "
                          f"{' '.join(map(str, select_on))} on another set: give one of them, not both")
    if cfg.select_speedups and not (select_on or nested):
        raise ConfigError("select_speedups are chosen on a selection set: give --select-on SET or --select-nested")
    if cfg.select_speedups and not [b for b in cfg.backends if b != "lstm"]:
        raise ConfigError(f"--select-speedups {' '.join(f'{x:g}' for x in cfg.select_speedups)} are tried for each "
                          "embedding backend: give --backend (e.g. birdnet) too, or leave them out")
    clips = labelled_clips(paths, pattern=pat, labels_csv=labels_csv, channel=channel, log=log)
    loaded = load_model(model)
    bks = [load_backend(b, hop_s=cfg.hop, speedup=s) for b in cfg.backends if b != "lstm"
           for s in (cfg.select_speedups or (cfg.speedup,))]
    choices = nested_choices = None
    if select_on:
        sel = loudest_chunks(labelled_clips(select_on, pattern=pat, labels_csv=labels_csv, channel=channel, log=log))
        sseqs, sreps = representations(sel, loaded, backends=bks, stride=stride, log=log)
        slabels = np.array([c.label for c in sseqs.clips]).astype(str)
        choices = select_settings(sreps, slabels, poolings=POOLINGS, scalings=("zscore-l2", "none"), band=band)
        choices = best_variants(choices, {b.info.label: b.info.name for b in bks})  # one speed-up per backend
        bks = [b for b in bks if b.info.label in choices]
        log(f"settings chosen on {len(slabels)} chunks of {len(set(slabels.tolist()))} types from "
            f"{', '.join(map(str, select_on))} (best ARI at k = types there):")
        for c in choices.values():
            log(f"  {c.representation:<19} pooling {c.pooling:<8} scaling {c.scaling:<9} "
                f"(selection-set ARI {c.select_ari:.3f}, 1-NN {c.select_nn:.3f})")
    seqs, reps = representations(clips, loaded, backends=bks, stride=stride, log=log)
    labels = np.array([c.label for c in seqs.clips]).astype(str)
    if nested:
        family = {b.info.label: replace(b.info, speedup=1.0).label for b in bks}
        cands = candidate_distances(reps, poolings=POOLINGS, scalings=SELECT_SCALINGS, band=band, progress=progress)
        nested_choices = nested_select(cands, labels, family=family)
        results = {}
        log(f"settings chosen by nested leave-one-out on the {len(labels)} reported clips (1-NN of clip i: the "
            f"setting with the best 1-NN accuracy on the other clips; clustering: the setting chosen most often):")
        for fam, ns in nested_choices.items():
            s = ns.clustering_setting
            r = score_distance(fam, cands[s], labels, percentile=percentile)
            results[fam] = replace(r, nn_accuracy=ns.nn_accuracy, nn_scored=int(ns.hits.size))
            log(f"  {fam:<19} clustering with {s}; chosen for the {ns.hits.size} scored clips: "
                + ", ".join(f"{c} x{k}" for c, k in ns.chosen_counts().items()))
    elif choices is None:
        results = evaluate_representations(reps, labels, pooling=pooling, scaling=scaling, band=band,
                                           percentile=percentile, progress=progress)
    else:
        results = {}
        for name, c in choices.items():
            results.update(evaluate_representations({name: reps[name]}, labels, pooling=c.pooling,
                                                    scaling=c.scaling, band=band, percentile=percentile))
    chosen = "chosen per representation" + (" (nested; table: the clustering's setting)" if nested else "")
    ev = ClusterEval(labels, seqs, results, chosen if choices or nested else scaling,
                     chosen if choices or nested else pooling)
    log(format_table(ev))
    from .models.backends.lstm import LSTMBackend
    lstm = LSTMBackend(loaded, stride=stride)
    doc = {"model": str(model), "backends": [lstm.info.to_dict()] + [b.info.to_dict() for b in bks], **ev.to_dict()}
    if choices:
        doc["selection"] = {"on": [str(p) for p in select_on], "criterion": "ARI, agglomerative cut at k = types",
                            "choices": [c.__dict__ for c in choices.values()]}
    if nested_choices:
        doc["selection"] = {"nested": True, "criterion": "1-NN of clip i: best leave-one-out 1-NN accuracy on the "
                                                         "other clips (ties: earlier candidate); clustering: the "
                                                         "candidate chosen most often (ties: earlier)",
                            "representations": [ns.to_dict() for ns in nested_choices.values()]}
    if bootstrap:
        key = SELECT_CLUSTERING.format(n=len(set(labels.tolist())))
        doc["intervals"] = {}
        log(f"95 % intervals (1-NN: bootstrap of the clips, {bootstrap} resamples; NMI, ARI: jackknife over types), "
            f"clustering: {key}")
        for name, r in results.items():
            ci = score_intervals(r, labels, key, n_boot=bootstrap,
                                 hits=nested_choices[name].hits if nested_choices else None)
            s = r.scores[key]
            doc["intervals"][name] = {"clustering": key, "nn_accuracy": [r.nn_accuracy, *ci["nn_accuracy"]],
                                      "nmi": [s["nmi"], *ci["nmi"]], "ari": [s["ari"], *ci["ari"]]}
            log(f"  {name:<19} 1-NN {r.nn_accuracy:.3f} [{ci['nn_accuracy'][0]:.3f}, {ci['nn_accuracy'][1]:.3f}]  "
                f"NMI {s['nmi']:.3f} [{ci['nmi'][0]:.3f}, {ci['nmi'][1]:.3f}]  "
                f"ARI {s['ari']:.3f} [{ci['ari'][0]:.3f}, {ci['ari'][1]:.3f}]")
    if cfg.json_out:
        log(f"full result: {save_json(doc, cfg.json_out)}")
    return ev


def search(*, config: SearchRun | None = None, log: Callable[[str], None] = print, **kw) -> list[tuple[int, float]]:
    """The ``k`` stored regions most similar to ``region`` (needs `sonotype cluster` on its run first;
    ``sonotype search``, fields: :class:`~sonotype.config.SearchRun`)."""
    from .discovery.search import similar_regions
    from .store import open_store
    c = _config(SearchRun, config, **kw)
    with open_store(c.db, read_only=True) as store:
        hits = similar_regions(store, c.region, k=c.k)
        for rid, dist in hits:
            g = store.region(rid)
            rec = store.recording(g.recording_id).path
            log(f"region {rid:>6}  DTW {dist:8.4f}  {rec}  {g.region.start_s:9.2f}-{g.region.stop_s:9.2f} s")
    return hits


def report(*, config: ReportRun | None = None, options=None, log: Callable[[str], None] = print, **kw) -> Path:
    """A model version's folder under ``out``: weights, config, figures and README.md + report.html
    (``sonotype report``; fields: :class:`~sonotype.config.ReportRun`; ``options``: a ReportOptions).

    ``evaluation_json``: a result of `sonotype evaluate --json` (confusion matrix, PR curve);
    ``catalog``: labelled clips to run cluster-eval on (agreement table, catalog map and galleries);
    ``db``: a detection run's stored clusters and maps (galleries, cluster WAVs, recording overviews).
    """
    import json

    from .report.build import ReportOptions, build_model_report
    from .store import open_store
    c = _config(ReportRun, config, **kw)
    model, out, db, run, evaluation_json, catalog = c.model, c.out, c.db, c.run, c.evaluation_json, c.catalog
    m = load_model(model)
    evaluation = json.loads(Path(evaluation_json).read_text(encoding="utf-8")) if evaluation_json else None
    ev = (cluster_eval(catalog, model=model, pattern=c.pattern, labels_csv=c.labels_csv, progress=False, log=log)
          if catalog else None)
    opts = options or ReportOptions()
    if db is None:
        return build_model_report(m, out, evaluation=evaluation, catalog=ev, options=opts, log=log)
    with open_store(db, read_only=True) as store:
        return build_model_report(m, out, evaluation=evaluation, catalog=ev, store=store,
                                  run_id=store.run_or_latest(run), options=opts, log=log)


def export_labels(*, config: ExportLabelsRun | None = None, log: Callable[[str], None] = print, **kw):
    """Curated region labels as an annotation CSV for train-detector (``sonotype export-labels``; fields:
    :class:`~sonotype.config.ExportLabelsRun`)."""
    from .discovery.curation import export_labels as _export_labels
    c = _config(ExportLabelsRun, config, **kw)
    return _export_labels(db=c.db, out=c.out, run_id=c.run, only_reviewed=c.only_reviewed, log=log)
