"""Command line: a thin table of subcommands over library functions. No logic lives here."""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .errors import SonotypeError


def _frontend_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("front end (defaults: the preset's)")
    g.add_argument("--preset", default="dolphin", help="dolphin (2 kHz-Nyquist), narw (40-1000 Hz), orca")
    g.add_argument("--fmin", type=float, help="lowest frequency of the band, Hz")
    g.add_argument("--fmax", type=float, help="highest frequency of the band, Hz (default Nyquist)")
    g.add_argument("--n-fft", type=int, dest="n_fft", help="STFT window length, samples")
    g.add_argument("--hop", type=int, help="STFT hop, samples")
    g.add_argument("--scale", choices=["log", "linear"], help="magnitude scale")
    g.add_argument("--reference-rate", type=float, dest="reference_rate",
                   help="give n_fft/hop at this rate and scale them to each file's rate")


def _data_args(p: argparse.ArgumentParser, *, labels: bool) -> None:
    p.add_argument("paths", nargs="+", help="audio files, folders (recursive), globs or @filelist.txt")
    p.add_argument("--channel", default=None,
                   help="channel of multi-channel files: an index, or 'auto' (default: the louder channel)")
    if labels:
        p.add_argument("--annotations", help="CSV of events (filename,start,end in s): windows overlapping "
                                             "no event are noise; without it, labels come from file names")
        p.add_argument("--negative-pattern", action="append", dest="negative_patterns",
                       help="file-name glob of noise files (default: noise*)")
        p.add_argument("--negative-dir", action="append", dest="negative_dirs",
                       help="folder name whose files are noise (default: noise, background, silence)")
        p.add_argument("--min-overlap", type=float, default=0.5, dest="min_overlap",
                       help="share of an event (or window) a window must cover to count as vocal")


def _channel(v):
    return None if v in (None, "auto") else int(v)


def cmd_train(a) -> int:
    from .api import train
    train(a.paths, out=a.out, preset=a.preset, frontend_overrides=_fe(a), channel=_channel(a.channel),
          epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=a.seed, val_fraction=a.val_fraction,
          batch_norm=a.batch_norm, resume=a.resume, cache_dir=a.cache_dir, threads=a.threads, device=a.device,
          max_windows_per_epoch=a.max_windows, progress=not a.quiet)
    return 0


def cmd_train_detector(a) -> int:
    from .api import train_detector
    train_detector(a.paths, encoder=a.encoder, out=a.out, channel=_channel(a.channel), annotations=a.annotations,
                   negative_patterns=a.negative_patterns, negative_dirs=a.negative_dirs, min_overlap=a.min_overlap,
                   epochs=a.epochs, lr=a.lr, hidden=a.hidden, seed=a.seed, val_fraction=a.val_fraction,
                   val_split=a.val_split, target_precision=a.target_precision, stride=a.stride, finetune=a.finetune, encoder_lr=a.encoder_lr,
                   cache_dir=a.cache_dir, threads=a.threads,
                   progress=not a.quiet)
    return 0


def cmd_evaluate(a) -> int:
    from .api import evaluate
    evaluate(a.paths, model=a.model, channel=_channel(a.channel), annotations=a.annotations,
             negative_patterns=a.negative_patterns, negative_dirs=a.negative_dirs, min_overlap=a.min_overlap,
             threshold=a.threshold, json_out=a.json, progress=not a.quiet)
    return 0


def cmd_detect(a) -> int:
    from .api import detect
    summary = detect(a.paths, model=a.model, db=a.db, threshold=a.threshold, merge_gap=a.merge_gap,
                     min_duration=a.min_duration, channel=_channel(a.channel), metadata=dict(a.meta or []),
                     metadata_table=a.metadata, batch=a.batch, progress=not a.quiet)
    return 1 if summary.failed else 0


def cmd_export(a) -> int:
    from .api import export
    export(db=a.db, out=a.out, fmt=a.format, run=a.run, gap_s=a.gap)
    return 0


def cmd_evaluate_events(a) -> int:
    from .api import evaluate_events
    evaluate_events(db=a.db, annotations=a.annotations, run=a.run, json_out=a.json)
    return 0


def _meta(v: str) -> tuple[str, str]:
    if "=" not in v:
        raise argparse.ArgumentTypeError(f"--meta takes key=value, got {v!r}")
    k, _, val = v.partition("=")
    return k.strip(), val.strip()


def cmd_demo(a) -> int:
    from .demo import run_demo
    run_demo(a.out, seed=a.seed, quick=a.quick, progress=not a.quiet)
    return 0


def cmd_info(a) -> int:
    from .api import info
    info(a.paths)
    return 0


def _fe(a) -> dict:
    return {k: getattr(a, k) for k in ("fmin", "fmax", "n_fft", "hop", "scale", "reference_rate")}


def build_parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="sonotype", description=__doc__.splitlines()[0] if __doc__ else None)
    top.add_argument("--version", action="version", version=f"sonotype {__version__}")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="self-supervised encoder training (next-frame prediction)")
    _data_args(p, labels=False); _frontend_args(p)
    p.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32, dest="batch_size")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.1, dest="val_fraction")
    p.add_argument("--max-windows", type=int, dest="max_windows", help="random windows per epoch (large corpora)")
    p.add_argument("--batch-norm", action="store_true", dest="batch_norm")
    p.add_argument("--resume", help="checkpoint to continue from")
    p.add_argument("--cache-dir", dest="cache_dir", help="where spectrogram frames are cached (default: beside --out)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("train-detector", help="vocalisation-vs-noise detector on a frozen encoder")
    _data_args(p, labels=True)
    p.add_argument("--encoder", required=True, help="encoder checkpoint from `sonotype train`")
    p.add_argument("--out", required=True, help="detector checkpoint to write (.pt)")
    p.add_argument("--epochs", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=0, help="hidden layer width of the head (0: linear, as the seed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.25, dest="val_fraction")
    p.add_argument("--val-split", default="auto", choices=["auto", "file", "time"], dest="val_split",
                   help="validation by whole files, or by the tail of each file (auto: files if >= 3 per class)")
    p.add_argument("--stride", type=int, help="frames between training windows (default: the front end's 16); "
                                              "smaller draws more, overlapping, windows")
    p.add_argument("--finetune", action="store_true",
                   help="train the encoder too (starting from the self-supervised one), not only the head")
    p.add_argument("--encoder-lr", type=float, default=1e-4, dest="encoder_lr", help="encoder learning rate (--finetune)")
    p.add_argument("--cache-dir", dest="cache_dir", help="spectrogram frame cache (--finetune; default beside --out)")
    p.add_argument("--target-precision", type=float, dest="target_precision",
                   help="choose the threshold with the most recall at this validation precision (default: max F1)")
    p.add_argument("--threads", type=int)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train_detector)

    p = sub.add_parser("evaluate", help="window-level confusion matrix, precision, recall, F1, PR curve")
    _data_args(p, labels=True)
    p.add_argument("--model", required=True, help="detector checkpoint")
    p.add_argument("--threshold", type=float, help="override the threshold stored in the model")
    p.add_argument("--json", help="write the full result (incl. PR curve) here")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("detect", help="find non-silent regions in long recordings into a database (resumable)")
    _data_args(p, labels=False)
    p.add_argument("--model", required=True, help="detector checkpoint")
    p.add_argument("--db", default="sqlite:///sonotype.db", help="database URL (sqlite:///file.db or postgresql://...)")
    p.add_argument("--threshold", type=float, help="score threshold (default: the model's, chosen on validation)")
    p.add_argument("--merge-gap", type=float, default=0.1, dest="merge_gap", help="merge regions closer than this, s")
    p.add_argument("--min-duration", type=float, default=0.0, dest="min_duration", help="drop shorter regions, s")
    p.add_argument("--meta", action="append", type=_meta, help="metadata key=value for every file (encounter, site, date)")
    p.add_argument("--metadata", help="CSV with a filename column and metadata columns")
    p.add_argument("--batch", type=int, default=64, help="windows per encoder batch")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("export", help="regions as Raven/Audacity tables, CSV/Parquet, or joined non-silent WAVs")
    p.add_argument("--db", default="sqlite:///sonotype.db")
    p.add_argument("--format", required=True, choices=["raven", "audacity", "csv", "parquet", "wav"])
    p.add_argument("--out", required=True, help="folder (raven/audacity/wav) or table file (csv/parquet)")
    p.add_argument("--run", type=int, help="detection run id (default: the latest)")
    p.add_argument("--gap", type=float, default=0.1, help="silence between joined regions (wav), s")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("evaluate-events", help="event precision/recall/F1, false alarms per hour vs annotations")
    p.add_argument("--db", default="sqlite:///sonotype.db")
    p.add_argument("--annotations", required=True, help="CSV of events: filename,start,end (s)")
    p.add_argument("--run", type=int, help="detection run id (default: the latest)")
    p.add_argument("--json", help="write the result here")
    p.set_defaults(func=cmd_evaluate_events)

    p = sub.add_parser("demo", help="synthetic corpus -> encoder -> detector -> evaluation, end to end")
    p.add_argument("--out", default="sonotype-demo", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smallest settings (for tests)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)

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
