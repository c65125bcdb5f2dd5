"""Command line: a thin table of subcommands over library functions (sonotype.api). No logic lives here."""

from __future__ import annotations

import argparse
import math
import sys

from . import __version__
from .errors import SonotypeError

DESCRIPTION = """\
sonotype finds animal vocalisations in hours of underwater and field recordings, groups them into
sound types and lets you look at and listen to them (first of all dolphins; any species, any rate)."""

EPILOG = """\
typical order:
  sonotype demo                                   the whole pipeline on built-in synthetic data (start here)
  sonotype train RECORDINGS --out enc.pt          self-supervised encoder (or: sonotype distill, from BirdNET)
  sonotype train-detector LABELLED --encoder enc.pt --out det.pt
  sonotype detect FIELD --model det.pt --db sqlite:///field.db     regions in long recordings, resumable
  sonotype cluster --db sqlite:///field.db        sound types (DTW + average linkage), maps
  sonotype serve --db sqlite:///field.db          browse, listen, curate at http://127.0.0.1:8000/
  sonotype export / evaluate-events / cluster-eval / report        tables, scores, model reports

`sonotype COMMAND --help` for each command; the README has the details and the real-data figures."""


class _Parser(argparse.ArgumentParser):
    """argparse with sonotype's error style: one line on stderr (the bad value, what was expected), exit 2."""

    def error(self, message: str):
        command = self.prog.partition(" ")[2]
        where = f"{command}: " if command else ""
        self.exit(2, f"sonotype: error: {where}{' '.join(message.split())} (see `{self.prog} --help`)\n")


def _number(kind=float, *, lo=None, hi=None, lo_open: bool = False, hi_open: bool = False, what: str = ""):
    """An argparse type: a finite ``kind`` (float or int) within the bounds, else a message naming the value."""
    lo_s = "" if lo is None else f"{'>' if lo_open else '>='} {lo:g}"
    hi_s = "" if hi is None else f"{'<' if hi_open else '<='} {hi:g}"
    rng = " and ".join(x for x in (lo_s, hi_s) if x)
    want = f"{'an integer' if kind is int else 'a number'}{' ' + rng if rng else ''}{' (' + what + ')' if what else ''}"

    def parse(v: str):
        try:
            x = kind(v)
        except (TypeError, ValueError):
            x = None
        if x is None or not math.isfinite(x) or (lo is not None and (x <= lo if lo_open else x < lo)) or \
                (hi is not None and (x >= hi if hi_open else x > hi)):
            raise argparse.ArgumentTypeError(f"got {v!r}, expected {want}")
        return x
    parse.__name__ = want
    return parse


_PROBABILITY = _number(lo=0, hi=1, what="a score between 0 and 1")
_SECONDS = _number(lo=0, what="seconds")
_COUNT = _number(int, lo=1)
_SIZE = _number(int, lo=0)
_RATE = _number(lo=0, lo_open=True)
_RUN = _number(int, lo=1, what="a detection run id")
_FRACTION = _number(lo=0, hi=1, hi_open=True, what="a fraction")


def _channel_arg(v: str):
    """'auto' or a channel index >= 0."""
    if v == "auto":
        return v
    try:
        c = int(v)
    except ValueError:
        c = -1
    if c < 0:
        raise argparse.ArgumentTypeError(f"got {v!r}, expected a channel index (0, 1, ...) or 'auto'")
    return c


def _frontend_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("front end (defaults: the preset's)")
    g.add_argument("--preset", default="dolphin", help="dolphin (2 kHz-Nyquist), narw (30-400 Hz at 2 kHz), orca (300 Hz-12 kHz)")
    g.add_argument("--fmin", type=_number(lo=0, what="Hz"), help="lowest frequency of the band, Hz")
    g.add_argument("--fmax", type=_number(lo=0, lo_open=True, what="Hz"),
                   help="highest frequency of the band, Hz (default Nyquist)")
    g.add_argument("--n-fft", type=_number(int, lo=2, what="samples"), dest="n_fft", help="STFT window length, samples")
    g.add_argument("--hop", type=_number(int, lo=1, what="samples"), help="STFT hop, samples")
    g.add_argument("--scale", choices=["log", "linear"], help="magnitude scale")
    g.add_argument("--window-stride", type=_COUNT, dest="stride", help="frames between windows (default 16: 50 %% overlap)")
    g.add_argument("--reference-rate", type=_number(lo=0, lo_open=True, what="Hz"), dest="reference_rate",
                   help="give n_fft/hop at this rate and scale them to each file's rate")


def _data_args(p: argparse.ArgumentParser, *, labels: bool) -> None:
    p.add_argument("paths", nargs="+", help="audio files, folders (recursive), globs or @filelist.txt")
    p.add_argument("--channel", default=None, type=_channel_arg,
                   help="channel of multi-channel files: an index, or 'auto' (default: the louder channel)")
    if labels:
        p.add_argument("--annotations", help="CSV of events (filename,start,end in s): windows overlapping "
                                             "no event are noise; without it, labels come from file names")
        _allow_unmatched_arg(p)
        p.add_argument("--negative-pattern", action="append", dest="negative_patterns",
                       help="file-name glob of noise files (default: noise*)")
        p.add_argument("--negative-dir", action="append", dest="negative_dirs",
                       help="folder name whose files are noise (default: noise, background, silence)")
        p.add_argument("--min-overlap", type=_number(lo=0, hi=1, lo_open=True, what="a share"), default=0.5,
                       dest="min_overlap",
                       help="share of an event (or window) a window must cover to count as vocal")


def _allow_unmatched_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-unmatched", action="store_true", dest="allow_unmatched",
                   help="go on when some annotation file names match no input file or recording (they are "
                        "listed and left out); without it such a partial match is an error")


def _cluster_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--percentile", type=_number(lo=0, hi=100, what="a percentile"), default=45.0,
                   help="agglomerative cut: this percentile of all pair distances (the original used 40-50)")
    p.add_argument("--band", type=_number(lo=0, lo_open=True, what="a fraction"),
                   help="DTW band: a fraction of the longer sequence (default (n+m)/4)")
    p.add_argument("--scaling", default="zscore-l2", choices=["none", "zscore", "zscore-l2"],
                   help="embedding scaling before DTW")
    p.add_argument("--stride", type=_SIZE, default=4,
                   help="frames between the windows of a sequence (default 4; 0: the detector's own windows)")


def _backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hop", type=_number(lo=0, lo_open=True, hi=3, what="seconds"),
                   help="seconds between a pretrained backend's windows (birdnet default 1.0)")
    p.add_argument("--speedup", type=_number(lo=0, lo_open=True, hi=1000), default=1.0,
                   help="play the audio this many times faster before a backend hears it (for low-frequency species)")


def _report_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--report-dir", dest="report_dir", default="beside",
                   help="write the model's report folder (weights, config, figures, README.md, report.html) "
                        "under this folder, as <version>/ (default: reports/ beside --out; '' for none)")


def _channel(v):
    return None if v in (None, "auto") else int(v)


def cmd_train(a) -> int:
    from .api import train
    train(a.paths, out=a.out, preset=a.preset, frontend_overrides=_fe(a), channel=_channel(a.channel),
          epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=a.seed, val_fraction=a.val_fraction,
          batch_norm=a.batch_norm, resume=a.resume, cache_dir=a.cache_dir, threads=a.threads, device=a.device,
          max_windows_per_epoch=a.max_windows, progress=not a.quiet, report_dir=a.report_dir or None)
    return 0


def cmd_distill(a) -> int:
    from .api import distill
    distill(a.paths, out=a.out, teacher=a.teacher, init=a.init, preset=a.preset, channel=_channel(a.channel),
            hop_s=a.hop, speedup=a.speedup, epochs=a.epochs, batch_spans=a.batch_spans, lr=a.lr, stride=a.stride,
            val_fraction=a.val_fraction, seed=a.seed, cache_dir=a.cache_dir, threads=a.threads, device=a.device,
            progress=not a.quiet)
    return 0


def cmd_train_detector(a) -> int:
    from .api import train_detector
    train_detector(a.paths, encoder=a.encoder, out=a.out, channel=_channel(a.channel), annotations=a.annotations,
                   negative_patterns=a.negative_patterns, negative_dirs=a.negative_dirs, min_overlap=a.min_overlap,
                   epochs=a.epochs, lr=a.lr, hidden=a.hidden, seed=a.seed, val_fraction=a.val_fraction,
                   val_split=a.val_split, target_precision=a.target_precision, threshold_level=a.threshold_level,
                   stride=a.stride, finetune=a.finetune, encoder_lr=a.encoder_lr,
                   cache_dir=a.cache_dir, threads=a.threads, progress=not a.quiet, report_dir=a.report_dir or None,
                   allow_unmatched=a.allow_unmatched)
    return 0


def cmd_evaluate(a) -> int:
    from .api import evaluate
    evaluate(a.paths, model=a.model, channel=_channel(a.channel), annotations=a.annotations,
             negative_patterns=a.negative_patterns, negative_dirs=a.negative_dirs, min_overlap=a.min_overlap,
             threshold=a.threshold, json_out=a.json, progress=not a.quiet, allow_unmatched=a.allow_unmatched)
    return 0


def cmd_detect(a) -> int:
    from .api import detect
    summary = detect(a.paths, model=a.model, db=a.db, threshold=a.threshold, merge_gap=a.merge_gap,
                     min_duration=a.min_duration, channel=_channel(a.channel), metadata=dict(a.meta or []),
                     metadata_table=a.metadata, batch=a.batch, workers=a.workers, ray=a.ray, progress=not a.quiet)
    return 1 if summary.failed or summary.unfinished else 0


def cmd_export(a) -> int:
    from .api import export
    export(db=a.db, out=a.out, fmt=a.format, run=a.run, gap_s=a.gap)
    return 0


def cmd_runs(a) -> int:
    from .api import runs
    runs(db=a.db, json_out=a.json)
    return 0


def cmd_evaluate_events(a) -> int:
    from .api import evaluate_events
    evaluate_events(db=a.db, annotations=a.annotations, run=a.run, json_out=a.json, allow_unmatched=a.allow_unmatched,
                    tolerance_s=a.tolerance)
    return 0


def _meta(v: str) -> tuple[str, str]:
    if "=" not in v:
        raise argparse.ArgumentTypeError(f"--meta takes key=value, got {v!r}")
    k, _, val = v.partition("=")
    return k.strip(), val.strip()


def cmd_cluster(a) -> int:
    from .api import cluster
    from .discover import DiscoverConfig
    lists = {k: tuple(v) for k, v in (("algorithms", a.algorithms), ("maps", a.maps)) if v}  # else the defaults
    cfg = DiscoverConfig(**lists, cut=a.cut, percentile=a.percentile, n_clusters=a.n_clusters, k=a.k,
                         min_cluster_size=a.min_cluster_size, band=a.band, scaling=a.scaling,
                         max_full=a.max_full, seed=a.seed, stride=a.stride or None, backend=a.backend,
                         hop=a.hop, speedup=a.speedup)
    cluster(db=a.db, run=a.run, model=a.model, config=cfg, progress=not a.quiet)
    return 0


def cmd_cluster_eval(a) -> int:
    from .api import cluster_eval
    cluster_eval(a.paths, model=a.model, labels_csv=a.labels, pattern=a.pattern, channel=a.channel,
                 band=a.band, percentile=a.percentile, scaling=a.scaling, pooling=a.pooling,
                 stride=a.stride or None, backends=a.backends or (), hop_s=a.hop, speedup=a.speedup,
                 select_on=a.select_on, bootstrap=a.bootstrap, json_out=a.json, progress=not a.quiet)
    return 0


def cmd_search(a) -> int:
    from .api import search
    search(db=a.db, region=a.region, k=a.k)
    return 0


def cmd_report(a) -> int:
    from .api import report
    report(model=a.model, out=a.out, db=a.db, run=a.run, evaluation_json=a.evaluation, catalog=a.catalog,
           pattern=a.pattern, labels_csv=a.labels)
    return 0


def cmd_demo(a) -> int:
    from .demo import run_demo
    run_demo(a.out, seed=a.seed, quick=a.quick, progress=not a.quiet)
    return 0


def cmd_info(a) -> int:
    from .api import info
    info(a.paths)
    return 0


def cmd_serve(a) -> int:
    from .web import Limits, serve
    serve(a.db, host=a.host, port=a.port, edit_token=a.edit_token, audio_root=a.audio_root,
          allowed_hosts=a.allowed_hosts, any_host=a.any_host, limits=Limits(renders=a.max_renders))
    return 0


def cmd_export_labels(a) -> int:
    from .curation import export_labels
    export_labels(db=a.db, out=a.out, run_id=a.run_id, only_reviewed=a.only_reviewed)
    return 0


def _fe(a) -> dict:
    return {k: getattr(a, k) for k in ("fmin", "fmax", "n_fft", "hop", "scale", "reference_rate", "stride")}


def build_parser() -> argparse.ArgumentParser:
    top = _Parser(prog="sonotype", description=DESCRIPTION, epilog=EPILOG,
                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"sonotype {__version__}")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="self-supervised encoder training (next-frame prediction)")
    _data_args(p, labels=False); _frontend_args(p)
    p.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    p.add_argument("--epochs", type=_COUNT, default=10)
    p.add_argument("--batch-size", type=_COUNT, default=32, dest="batch_size")
    p.add_argument("--lr", type=_RATE, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=_FRACTION, default=0.1, dest="val_fraction")
    p.add_argument("--max-windows", type=_COUNT, dest="max_windows", help="random windows per epoch (large corpora)")
    p.add_argument("--batch-norm", action="store_true", dest="batch_norm")
    p.add_argument("--resume", help="checkpoint to continue from")
    p.add_argument("--cache-dir", dest="cache_dir", help="where spectrogram frames are cached (default: beside --out)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=_COUNT)
    _report_arg(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("distill", help="teach the LSTM-V3 encoder a pretrained backend's embeddings on unlabelled audio")
    _data_args(p, labels=False)
    p.add_argument("--preset", default="dolphin", choices=["dolphin", "narw", "orca"], help="student front end without --init")
    p.add_argument("--teacher", default="birdnet", choices=["birdnet"],
                   help="pretrained backend to imitate (birdnet: extra sonotype[birdnet], licence CC BY-NC-SA 4.0)")
    p.add_argument("--init", help="encoder checkpoint to start the student from (e.g. from `sonotype train`)")
    p.add_argument("--out", required=True, help="student encoder checkpoint to write (.pt)")
    _backend_args(p)
    p.add_argument("--epochs", type=_COUNT, default=10)
    p.add_argument("--batch-spans", type=_COUNT, default=8, dest="batch_spans", help="teacher windows per step")
    p.add_argument("--lr", type=_RATE, default=1e-3)
    p.add_argument("--stride", type=_COUNT, default=16, help="frames between the student's windows in a span")
    p.add_argument("--val-fraction", type=_FRACTION, default=0.15, dest="val_fraction")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", dest="cache_dir", help="where spectrogram frames are cached (default: beside --out)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=_COUNT)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("train-detector", help="vocalisation-vs-noise detector on a frozen encoder")
    _data_args(p, labels=True)
    p.add_argument("--encoder", required=True, help="encoder checkpoint from `sonotype train`")
    p.add_argument("--out", required=True, help="detector checkpoint to write (.pt)")
    p.add_argument("--epochs", type=_COUNT, default=64)
    p.add_argument("--lr", type=_RATE, default=1e-3)
    p.add_argument("--hidden", type=_SIZE, default=0, help="hidden layer width of the head (0: linear, as the seed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=_FRACTION, default=0.25, dest="val_fraction")
    p.add_argument("--val-split", default="auto", choices=["auto", "file", "time"], dest="val_split",
                   help="validation by whole files, or by the tail of each file (auto: files if >= 3 per class)")
    p.add_argument("--stride", type=_COUNT, help="frames between training windows (default: the front end's 16); "
                                              "smaller draws more, overlapping, windows")
    p.add_argument("--finetune", action="store_true",
                   help="train the encoder too (starting from the self-supervised one), not only the head")
    p.add_argument("--encoder-lr", type=_RATE, default=1e-4, dest="encoder_lr", help="encoder learning rate (--finetune)")
    p.add_argument("--cache-dir", dest="cache_dir", help="spectrogram frame cache (--finetune; default beside --out)")
    p.add_argument("--target-precision", type=_number(lo=0, hi=1, lo_open=True, what="a precision"),
                   dest="target_precision",
                   help="choose the threshold with the most recall at this validation precision (default: max F1)")
    p.add_argument("--threshold-level", default="auto", choices=["auto", "event", "window"], dest="threshold_level",
                   help="choose the threshold on the regions' events in the validation recordings (event), or on "
                        "windows (window); auto: event when there are annotated events")
    p.add_argument("--threads", type=_COUNT)
    _report_arg(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train_detector)

    p = sub.add_parser("evaluate", help="window-level confusion matrix, precision, recall, F1, PR curve")
    _data_args(p, labels=True)
    p.add_argument("--model", required=True, help="detector checkpoint")
    p.add_argument("--threshold", type=_PROBABILITY, help="override the threshold stored in the model")
    p.add_argument("--json", help="write the full result (incl. PR curve) here")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("detect", help="find non-silent regions in long recordings into a database (resumable)")
    _data_args(p, labels=False)
    p.add_argument("--model", required=True, help="detector checkpoint")
    p.add_argument("--db", default="sqlite:///sonotype.db", help="database URL (sqlite:///file.db or postgresql://...)")
    p.add_argument("--threshold", type=_PROBABILITY,
                   help="score threshold (default: the model's, chosen on validation)")
    p.add_argument("--merge-gap", type=_SECONDS, default=0.1, dest="merge_gap", help="merge regions closer than this, s")
    p.add_argument("--min-duration", type=_SECONDS, default=0.0, dest="min_duration", help="drop shorter regions, s")
    p.add_argument("--meta", action="append", type=_meta, help="metadata key=value for every file (encounter, site, date)")
    p.add_argument("--metadata", help="CSV with a filename column and metadata columns")
    p.add_argument("--batch", type=_COUNT, default=64, help="windows per encoder batch")
    p.add_argument("--workers", type=_COUNT, default=1, help="processes detecting files at once (default 1)")
    p.add_argument("--ray", help="spread the files over a Ray cluster: auto or its address (sonotype[ray])")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("export", help="regions as Raven/Audacity tables, CSV/Parquet, or joined non-silent WAVs")
    p.add_argument("--db", default="sqlite:///sonotype.db")
    p.add_argument("--format", required=True, choices=["raven", "audacity", "csv", "parquet", "wav"])
    p.add_argument("--out", required=True, help="folder (raven/audacity/wav) or table file (csv/parquet)")
    p.add_argument("--run", type=_RUN, help="detection run id (default: the latest)")
    p.add_argument("--gap", type=_SECONDS, default=0.1, help="silence between joined regions (wav), s")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("runs", help="list a database's detection runs (model, threshold, recordings, regions)")
    p.add_argument("--db", default="sqlite:///sonotype.db")
    p.add_argument("--json", help="write the list here")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("evaluate-events", help="event precision/recall/F1, false alarms per hour vs annotations")
    p.add_argument("--db", default="sqlite:///sonotype.db")
    p.add_argument("--annotations", required=True, help="CSV of events: filename,start,end (s)")
    _allow_unmatched_arg(p)
    p.add_argument("--run", type=_RUN, help="detection run id (default: the latest)")
    p.add_argument("--tolerance", type=_SECONDS, default=1.5,
                   help="PAM-challenge rule, also reported: a region whose centre is within this many seconds of an "
                        "event detects it (default 1.5)")
    p.add_argument("--json", help="write the result here")
    p.set_defaults(func=cmd_evaluate_events)

    p = sub.add_parser("cluster", help="sound types: cluster and map a detection run's regions (DTW), into the database")
    p.add_argument("--db", default="sqlite:///sonotype.db")
    p.add_argument("--run", type=_RUN, help="detection run id (default: the latest)")
    p.add_argument("--model", help="encoder or detector checkpoint to embed with (default: the run's own model)")
    p.add_argument("--algorithm", action="append", dest="algorithms", choices=["agglomerative", "kmeans", "hdbscan"],
                   help="repeatable (default: agglomerative and kmeans)")
    p.add_argument("--backend", default="lstm", choices=["lstm", "birdnet"],
                   help="embeddings of the regions: lstm (the run's or --model's encoder, default) or birdnet (extra "
                        "sonotype[birdnet], model licence CC BY-NC-SA 4.0)")
    _backend_args(p)
    _cluster_args(p)
    p.add_argument("--cut", default="percentile", choices=["percentile", "silhouette"],
                   help="agglomerative cut: at --percentile of pair distances (default, as the original), or at "
                        "the cluster count with the best mean silhouette")
    p.add_argument("--n-clusters", type=_COUNT, dest="n_clusters", help="agglomerative: cut at this many clusters")
    p.add_argument("--k", type=_COUNT, default=24, help="k-means clusters (on window embeddings)")
    p.add_argument("--min-cluster-size", type=_number(int, lo=2), default=5, dest="min_cluster_size", help="HDBSCAN")
    p.add_argument("--map", action="append", dest="maps", choices=["tsne", "umap"], help="repeatable (default: both)")
    p.add_argument("--max-full", type=_COUNT, default=3000, dest="max_full",
                   help="above this many regions use a kNN DTW graph instead of all pairs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_cluster, algorithms=None, maps=None)

    p = sub.add_parser("cluster-eval", help="agreement of DTW clusters with expert labels, vs two baselines")
    p.add_argument("paths", nargs="+", help="labelled clips (files, folders, globs, @list)")
    p.add_argument("--model", required=True, help="encoder or detector checkpoint")
    p.add_argument("--labels", help="CSV filename,label (default: the label is --pattern matched in the file name)")
    p.add_argument("--pattern", help="regular expression of the label in file names (default: S_?\\d+, Ford's call types)")
    p.add_argument("--channel", default=0, type=_number(int, lo=0, what="a channel index"))
    _cluster_args(p)
    p.add_argument("--pooling", default="sequence", choices=["sequence", "mean"],
                   help="compare whole embedding sequences by DTW (default) or their means")
    p.add_argument("--backend", action="append", dest="backends", choices=["lstm", "birdnet"],
                   help="also score this embedding backend (repeatable; birdnet needs the extra sonotype[birdnet], "
                        "model licence CC BY-NC-SA 4.0)")
    _backend_args(p)
    p.add_argument("--select-on", nargs="+", dest="select_on",
                   help="another labelled set on which each representation's pooling and scaling are chosen "
                        "(e.g. orca-calls/vocabulary); the reported set then never picks a setting")
    p.add_argument("--bootstrap", type=_SIZE, default=0,
                   help="give 95%% intervals: this many bootstrap resamples for 1-NN (e.g. 2000); NMI and ARI by a "
                        "jackknife over types")
    p.add_argument("--json", help="write the result here")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_cluster_eval)

    p = sub.add_parser("search", help="regions most similar to a region (vector index + DTW re-rank)")
    p.add_argument("region", type=_number(int, lo=1, what="a region id"), help="region id")
    p.add_argument("--db", default="sqlite:///sonotype.db")
    p.add_argument("--k", type=_COUNT, default=10)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("report", help="a model version's folder: weights, config, figures, README.md + report.html")
    p.add_argument("--model", required=True, help="encoder or detector checkpoint")
    p.add_argument("--out", default="reports", help="parent folder; the report goes to <out>/<model version>/")
    p.add_argument("--db", help="database with a detection run (maps, cluster galleries and WAVs, overviews)")
    p.add_argument("--run", type=_RUN, help="detection run id (default: the latest)")
    p.add_argument("--evaluation", help="JSON from `sonotype evaluate --json` (confusion matrix, PR curve)")
    p.add_argument("--catalog", nargs="+", help="labelled clips: adds cluster-eval agreement, catalog map, galleries")
    p.add_argument("--pattern", help="label pattern in catalog file names (default S\\d+)")
    p.add_argument("--labels", help="CSV filename,label for the catalog")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="synthetic corpus -> encoder -> detector -> evaluation, end to end")
    p.add_argument("--out", default="sonotype-demo", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smallest settings (for tests)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="web browser over a database: recordings, regions, sound types, curation")
    p.add_argument("--db", default="sqlite:///sonotype.db", help="database URL (sqlite:///file.db or postgresql://...)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=_number(int, lo=1, hi=65535, what="a TCP port"), default=8000)
    p.add_argument("--edit-token", dest="edit_token",
                   help="allow edits by requests carrying this token (default: $SONOTYPE_EDIT_TOKEN; none: read-only)")
    p.add_argument("--audio-root", dest="audio_root",
                   help="folder that relative recording paths in the database start from (default: here); "
                        "clients without the edit token see paths relative to it, never full server paths")
    p.add_argument("--allowed-host", action="append", dest="allowed_hosts", metavar="NAME",
                   help="also answer requests whose Host header is NAME (repeatable; default: this machine's "
                        "names and the bound address; other Host headers get 400)")
    p.add_argument("--allow-any-host", action="store_true", dest="any_host",
                   help="answer any Host header (turns off the DNS-rebinding guard; behind a proxy that checks it)")
    p.add_argument("--max-renders", type=_COUNT, default=4, dest="max_renders",
                   help="spectrograms and long audio spans made at once (default 4); more get 503 + Retry-After")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("export-labels", help="curated region labels as an annotation CSV for train-detector")
    p.add_argument("--db", default="sqlite:///sonotype.db")
    p.add_argument("--out", required=True, help="CSV to write (filename,start,end,label + provenance columns)")
    p.add_argument("--run-id", type=_RUN, dest="run_id", help="detection run id (default: the latest)")
    p.add_argument("--only-reviewed", action="store_true", dest="only_reviewed",
                   help="leave out recordings with regions nobody labelled (default: they count as vocalisations)")
    p.set_defaults(func=cmd_export_labels)

    p = sub.add_parser("info", help="what sonotype reads from audio files (rate, channels, length, channel used)")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=cmd_info)
    return top


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SonotypeError as e:
        print(f"sonotype: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sonotype: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
