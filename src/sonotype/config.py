"""The configuration of each command: one frozen dataclass per ``sonotype`` subcommand, the single
definition of its parameters (name, default, help, allowed values, check; see :mod:`sonotype.params`).

The command line is generated from these classes (:mod:`sonotype.cli`), ``--config FILE.toml`` loads
them, the library's entry points (:mod:`sonotype.api`) take them, and a run writes its own beside its
outputs (``<out>.config.toml``) so that ``sonotype COMMAND --config that.toml`` repeats it. Stage
configs (:class:`~sonotype.training.train.TrainConfig`, :class:`~sonotype.detection.detector.DetectorConfig`,
:class:`~sonotype.training.distill.DistillConfig`, :class:`~sonotype.discovery.discover.DiscoverConfig`) are nested as
tables and keep living beside the code they configure; a field added to one of them becomes an option.
This module is long on purpose: it is the one table of every command's parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from .detection.detector import THRESHOLD_LEVELS, DetectorConfig
from .discovery.clustereval import DEFAULT_LABEL_PATTERN, POOLINGS
from .discovery.discover import DiscoverConfig
from .errors import ConfigError
from .features.frontend import PRESETS, SCALES, FrontEnd, with_overrides
from .models.backends import BACKENDS
from .models.lstm_v3 import EncoderConfig
from .params import (
    COUNT,
    FRACTION,
    PROBABILITY,
    RATE,
    RUN,
    SECONDS,
    SHARE,
    SIZE,
    Number,
    Param,
    channel,
    describe,
    param,
    same_as,
)
from .training.dataset import LabelRule
from .training.distill import DistillConfig
from .training.train import DEVICES, TrainConfig

#: the database of every command that reads or writes one, unless ``--db`` says otherwise
DEFAULT_DB = "sqlite:///sonotype.db"
#: ``report_dir`` value for "a ``reports`` folder beside the checkpoint"
BESIDE = "beside"
#: ``sonotype export --format``
EXPORT_FORMATS = ("raven", "audacity", "csv", "parquet", "wav")
#: backends that can teach the LSTM student (``sonotype distill --teacher``)
TEACHERS = tuple(b for b in BACKENDS if b != "lstm")
#: how train-detector holds out validation windows: whole files, or the tail of each file
VAL_SPLITS = ("auto", "file", "time")

# ---------------------------------------------------------------------------- fields shared by commands


def _paths(help: str = "audio files, folders (recursive), globs or @filelist.txt"):
    return param(positional=True, metavar="PATH", help=help)


def _channel():
    return param(None, check=channel,
                 help="channel of multi-channel files: an index, or 'auto' (default: the louder channel)")


def _db(help: str = "database URL (sqlite:///file.db or postgresql://...)"):
    return param(DEFAULT_DB, help=help)


def _run(**more):
    return param(None, check=RUN, help="detection run id (default: the latest)", **more)


def _progress():
    return param(True, flag="--quiet", negate=True, help="no progress bars")


def _json(help: str):
    return param(None, flag="--json", metavar="FILE", help=help)


def _cache_dir(help: str = "where spectrogram frames are cached (default: beside --out)"):
    return param(None, help=help)


def _report_dir():
    return param(BESIDE, help="write the model's report folder (weights, config, figures, README.md, report.html) "
                              "under this folder, as <version>/ (default: reports/ beside --out; '' for none)")


def _annotations():
    return param(None, help="CSV of events (filename,start,end in s): windows overlapping no event are noise; "
                            "without it, labels come from file names")


def _allow_unmatched():
    return param(False, help="go on when some annotation file names match no input file or recording (they are "
                             "listed and left out); without it such a partial match is an error")


def _negative_patterns():
    return same_as(LabelRule, "negative_patterns", flag="--negative-pattern", repeat=True,
                   help="file-name glob of noise files (repeatable)")


def _negative_dirs():
    return same_as(LabelRule, "negative_dirs", flag="--negative-dir", repeat=True,
                   help="folder name whose files are noise (repeatable)")


def _band(fe: FrontEnd) -> str:
    return f"{fe.fmin:g} Hz-{'Nyquist' if fe.fmax is None else f'{fe.fmax:g} Hz'}, hop {fe.hop}"


#: the presets' bands, from the presets themselves
_PRESETS_HELP = ", ".join(f"{k} ({_band(v)})" for k, v in PRESETS.items())


# ---------------------------------------------------------------------------- stage configs kept elsewhere


describe(
    DetectorConfig,
    epochs=Param(check=COUNT, help="passes over the training windows"),
    batch_size=Param(check=COUNT, help="windows per step"),
    lr=Param(check=RATE, help="learning rate of the head"),
    dropout=Param(check=FRACTION, help="dropout before the head"),
    hidden=Param(check=SIZE, help="hidden layer width of the head (0: linear, as the seed)"),
    val_fraction=Param(check=FRACTION, help="share of the data held out for validation"),
    val_split=Param(choices=VAL_SPLITS, help="validation by whole files, or by the tail of each file "
                                             "(auto: files if >= 3 per class)"),
    min_overlap=Param(check=SHARE, help="share of an event (or window) a window must cover to count as vocal"),
    stride=Param(check=COUNT, flag="--train-stride", aliases=("--stride",),
                 help="frames between training windows (default: the front end's window stride); smaller draws "
                      "more, overlapping, windows"),
    finetune=Param(help="train the encoder too (starting from the self-supervised one), not only the head"),
    encoder_lr=Param(check=RATE, help="encoder learning rate (--finetune)"),
    negatives_per_positive=Param(check=COUNT, help="noise windows drawn per vocal window each epoch (--finetune)"),
    balance=Param(help="weight vocal windows by the noise/vocal ratio"),
    target_precision=Param(check=Number(lo=0, hi=1, lo_open=True, what="a precision"),
                           help="choose the threshold with the most recall at this validation precision "
                                "(default: max F1)"),
    threshold_level=Param(choices=THRESHOLD_LEVELS,
                          help="choose the threshold on the regions' events in the validation recordings (event), "
                               "or on windows (window); auto: event when there are annotated events"),
    seed=Param(help="random seed"),
    threads=Param(check=COUNT, help="CPU threads (default: PyTorch's)"),
    device=Param(choices=DEVICES, help="where to train (auto: cuda when there is a GPU)"),
    augment=Param(check=Number(lo=0, what="windows per vocal window"),
                  help="mixed-in call windows per vocal training window (training calls in training backgrounds; 0: off)"),
    snr_low=Param(help="lowest SNR (dB, in the band) of mixed-in calls"),
    snr_high=Param(help="highest SNR (dB) of mixed-in calls"),
    gain_db=Param(check=Number(lo=0, what="dB"), help="random gain of mixed windows, +- dB"),
    time_mask=Param(check=SIZE, help="SpecAugment time mask, up to this many frames"),
    freq_mask=Param(check=SIZE, help="SpecAugment frequency mask, up to this many bins"),
    mixup=Param(check=Number(lo=0, what="a Beta alpha"), help="mixup of training batches, Beta(a, a); 0: off"),
    hard_negatives=Param(check=SIZE, help="second pass with this many of the first pass's highest-scoring noise "
                                          "windows (0: off)"),
    hard_negative_weight=Param(check=Number(lo=0, lo_open=True), help="loss weight of the hard negatives"),
    ensemble=Param(check=COUNT, help="detectors of seeds seed, seed+1, ...; scores averaged"),
    scale=Param(choices=SCALES, help="front-end scale for the detector (e.g. pcen); default: the encoder's"),
    pcen_time=Param(check=Number(lo=0, lo_open=True, what="seconds"),
                    help="PCEN smoothing time constant, s (default: the encoder's front end's)"),
    backend=Param(choices=BACKENDS, help="embeddings the detector reads: lstm (the --encoder checkpoint's) or a "
                                         "pretrained backend, e.g. birdnet (extra sonotype[birdnet], model licence CC "
                                         "BY-NC-SA 4.0; a logistic head on its embeddings, no --encoder)"),
    speedup=Param(check=Number(lo=0, lo_open=True, hi=1000),
                  help="pretrained backends: play the audio this many times faster first (16: 2 kHz right-whale "
                       "audio heard as 32 kHz)"),
    hop=Param(check=Number(lo=0, lo_open=True, what="seconds"),
              help="pretrained backends: seconds between windows as the model hears them, i.e. after --speedup "
                   "(default: the backend's; birdnet 1.0)"),
    head_c=Param(check=Number(lo=0, lo_open=True),
                 help="pretrained backends: inverse L2 strength of the logistic head (scikit-learn's C)"),
)


@dataclass(frozen=True)
class FrontEndChoice:
    """A named front-end preset with some of its fields replaced (None: the preset's)."""

    preset: str = param("dolphin", choices=tuple(PRESETS),
                        help=_PRESETS_HELP)
    fmin: float | None = param(None, check=Number(lo=0, what="Hz"), help="lowest frequency of the band, Hz")
    fmax: float | None = param(None, check=Number(lo=0, lo_open=True, what="Hz"),
                               help="highest frequency of the band, Hz (the presets' None: Nyquist)")
    n_fft: int | None = param(None, check=Number(int, lo=2, what="samples"), help="STFT window length, samples")
    hop: int | None = param(None, check=Number(int, lo=1, what="samples"), help="STFT hop, samples")
    scale: str | None = param(None, choices=SCALES, help="magnitude scale (pcen: per-channel energy normalisation)")
    pcen_time: float | None = param(None, check=Number(lo=0, lo_open=True, what="seconds"),
                                    help="PCEN smoothing time constant, s (the presets': 0.4)")
    window_stride: int | None = param(None, check=COUNT,
                                      help="frames between windows, kept in the model (the presets': half a window)")
    reference_rate: float | None = param(None, check=Number(lo=0, lo_open=True, what="Hz"),
                                         help="give n_fft/hop at this rate and scale them to each file's rate")

    def frontend(self) -> FrontEnd:
        """The preset with the given fields replaced."""
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; expected one of {', '.join(PRESETS)}")
        return with_overrides(PRESETS[self.preset], fmin=self.fmin, fmax=self.fmax, n_fft=self.n_fft, hop=self.hop,
                              scale=self.scale, stride=self.window_stride, reference_rate=self.reference_rate,
                              pcen_time=self.pcen_time)


# ---------------------------------------------------------------------------- one config per command


@dataclass(frozen=True, kw_only=True)
class TrainRun:
    """``sonotype train``: self-supervised encoder training."""

    paths: tuple[str, ...] = _paths()
    out: str = param(help="checkpoint to write (.pt)")
    channel: int | None = _channel()
    frontend: FrontEndChoice = param(default_factory=FrontEndChoice, help="front end (defaults: the preset's)")
    training: TrainConfig = param(default_factory=TrainConfig, help="training")
    batch_norm: bool = same_as(EncoderConfig, "batch_norm", help="batch normalisation in the encoder")
    resume: str | None = param(None, help="checkpoint to continue from")
    cache_dir: str | None = _cache_dir()
    report_dir: str = _report_dir()
    progress: bool = _progress()


@dataclass(frozen=True, kw_only=True)
class DistillRun:
    """``sonotype distill``: the LSTM encoder taught a pretrained backend's embeddings."""

    paths: tuple[str, ...] = _paths()
    out: str = param(help="student encoder checkpoint to write (.pt)")
    channel: int | None = _channel()
    preset: str = same_as(FrontEndChoice, "preset", help="the student's front end without --init: " + _PRESETS_HELP)
    teacher: str = param(TEACHERS[0], choices=TEACHERS, help="pretrained backend to imitate (birdnet: extra "
                                                            "sonotype[birdnet], licence CC BY-NC-SA 4.0)")
    init: str | None = param(None, help="encoder checkpoint to start the student from (e.g. from `sonotype train`)")
    hop: float | None = same_as(DiscoverConfig, "hop")
    speedup: float = same_as(DiscoverConfig, "speedup")
    distill: DistillConfig = param(default_factory=DistillConfig, help="distillation")
    cache_dir: str | None = _cache_dir()
    progress: bool = _progress()


@dataclass(frozen=True, kw_only=True)
class TrainDetectorRun:
    """``sonotype train-detector``: a vocalisation-vs-noise detector on an encoder."""

    paths: tuple[str, ...] = _paths()
    encoder: str | None = param(None, help="encoder checkpoint from `sonotype train` (required with the default "
                                           "--backend lstm)")
    out: str = param(help="detector checkpoint to write (.pt)")
    channel: int | None = _channel()
    annotations: str | None = _annotations()
    allow_unmatched: bool = _allow_unmatched()
    negative_patterns: tuple[str, ...] = _negative_patterns()
    negative_dirs: tuple[str, ...] = _negative_dirs()
    threshold_files: tuple[str, ...] = param((), flag="--threshold-file", repeat=True, metavar="PATH",
                                             help="a long annotated recording, not trained on, on which the "
                                                  "event-level threshold is chosen (repeatable; its events come "
                                                  "from --threshold-annotations)")
    threshold_annotations: str | None = param(None, help="CSV of the events in the --threshold-file recordings "
                                                         "(filename,start,end in s; a file listed with empty times "
                                                         "holds none)")
    threshold_folds: int | None = param(None, check=COUNT,
                                        help="choose the event-level threshold by K-fold cross-validation over the "
                                             "annotated training recordings (K >= 2; LSTM-V3: K + 1 trainings; on a "
                                             "backend: K more logistic fits on the same embeddings) instead of on "
                                             "the validation split")
    detector: DetectorConfig = param(default_factory=DetectorConfig, help="detector")
    cache_dir: str | None = _cache_dir("spectrogram frame cache (--finetune; default beside --out)")
    report_dir: str = _report_dir()
    progress: bool = _progress()


@dataclass(frozen=True, kw_only=True)
class FuseDetectorsRun:
    """``sonotype fuse-detectors``: one detector from several, their window scores combined."""

    paths: tuple[str, ...] = param(positional=True, metavar="DETECTOR",
                                   help="detector checkpoints (two or more); the first one's windows are the fused "
                                        "detector's: put the one that localises calls best first")
    out: str = param(help="fused detector checkpoint to write (.pt)")
    weights: tuple[float, ...] = param((), nargs="+", check=Number(lo=0, hi=1),
                                       help="one weight per detector, summing to 1 (default: equal): the fused score "
                                            "is the product of the members' scores to these powers")
    choose_weights: bool = param(False, help="two detectors: choose the first one's weight among 0.25, 0.5, 0.75 by "
                                             "leave-one-recording-out event F1 on the out-of-sample scores the "
                                             "threshold is chosen on (instead of --weights)")
    threshold: float | None = param(None, check=PROBABILITY,
                                    help="the fused detector's threshold as given (default: chosen at event level "
                                         "on out-of-sample scores, see --threshold-file)")
    threshold_files: tuple[str, ...] = same_as(TrainDetectorRun, "threshold_files", help=(
        "a long annotated recording none of the detectors trained on, on which the fused threshold is chosen "
        "(repeatable; without it: the members' own kept validation or cross-validation scores of the recordings "
        "they share)"))
    threshold_annotations: str | None = same_as(TrainDetectorRun, "threshold_annotations")
    channel: int | None = _channel()


@dataclass(frozen=True, kw_only=True)
class EvaluateRun:
    """``sonotype evaluate``: window-level scores of a detector against labels."""

    paths: tuple[str, ...] = _paths()
    model: str = param(help="detector checkpoint")
    channel: int | None = _channel()
    annotations: str | None = _annotations()
    allow_unmatched: bool = _allow_unmatched()
    negative_patterns: tuple[str, ...] = _negative_patterns()
    negative_dirs: tuple[str, ...] = _negative_dirs()
    min_overlap: float | None = param(None, check=SHARE,
                                      help="share of an event (or window) a window must cover to count as vocal "
                                           "(default: the value the detector was trained with)")
    threshold: float | None = param(None, check=PROBABILITY, help="override the threshold stored in the model")
    json_out: str | None = _json("write the full result (incl. PR curve) here")
    progress: bool = _progress()


@dataclass(frozen=True, kw_only=True)
class DetectRun:
    """``sonotype detect``: regions of long recordings into a database (resumable)."""

    paths: tuple[str, ...] = _paths()
    model: str = param(help="detector checkpoint")
    db: str = _db()
    channel: int | None = _channel()
    threshold: float | None = param(None, check=PROBABILITY,
                                    help="score threshold (default: the model's, chosen on validation)")
    merge_gap: float = param(0.1, check=SECONDS, help="merge regions closer than this, s")
    min_duration: float = param(0.0, check=SECONDS, help="drop shorter regions, s")
    metadata: dict[str, str] = param(default_factory=dict, flag="--meta", repeat=True, metavar="KEY=VALUE",
                                     help="metadata for every file (encounter, site, date; repeatable)")
    metadata_table: str | None = param(None, flag="--metadata",
                                       help="CSV with a filename column and metadata columns")
    batch: int | None = param(None, check=COUNT, help="windows per encoder batch (default: the library's)")
    workers: int = param(1, check=COUNT, help="files detected in parallel")
    ray: str | None = param(None, help="run the workers with Ray: 'auto' or a cluster address")
    ray_gpus: float | None = param(None, flag="--ray-gpus",
                                   help="with --ray: GPU actors holding this many GPUs each (1; 0.5 shares one "
                                        "GPU between two), each keeping the model loaded and batching several "
                                        "files' windows (default: one CPU task per file)")
    device: str = param("auto", choices=DEVICES, help="where the encoder runs (auto: cuda when there is a GPU)")
    bf16: bool = param(False, help="bfloat16 encoder on a GPU")
    progress: bool = _progress()


@dataclass(frozen=True, kw_only=True)
class ExportRun:
    """``sonotype export``: a run's regions as tables or joined audio."""

    db: str = _db()
    fmt: str = param(flag="--format", choices=EXPORT_FORMATS, help="table or audio format")
    out: str = param(help="folder (raven/audacity/wav) or table file (csv/parquet)")
    run: int | None = _run()
    gap_s: float = param(0.1, check=SECONDS, flag="--gap", help="silence between joined regions (wav), s")


@dataclass(frozen=True, kw_only=True)
class RunsRun:
    """``sonotype runs``: a database's detection runs."""

    db: str = _db()
    json_out: str | None = _json("write the list here")


@dataclass(frozen=True, kw_only=True)
class EvaluateEventsRun:
    """``sonotype evaluate-events``: event scores of a run against annotations."""

    db: str = _db()
    annotations: str = param(help="CSV of events: filename,start,end (s)")
    allow_unmatched: bool = _allow_unmatched()
    run: int | None = _run()
    tolerance_s: float = param(1.5, check=SECONDS, flag="--tolerance",
                               help="PAM-challenge rule, also reported: a region whose centre is within this many "
                                    "seconds of an event detects it")
    json_out: str | None = _json("write the result here")


@dataclass(frozen=True, kw_only=True)
class ClusterRun:
    """``sonotype cluster``: sound types and maps of a run's regions, into the database."""

    db: str = _db()
    run: int | None = _run()
    model: str | None = param(None, help="encoder or detector checkpoint to embed with (default: the run's own model)")
    discover: DiscoverConfig = param(default_factory=DiscoverConfig, help="clustering and maps")
    progress: bool = _progress()


@dataclass(frozen=True, kw_only=True)
class ClusterEvalRun:
    """``sonotype cluster-eval``: agreement of DTW clusters with expert labels."""

    paths: tuple[str, ...] = _paths("labelled clips (files, folders, globs, @list)")
    model: str = param(help="encoder or detector checkpoint")
    labels_csv: str | None = param(None, flag="--labels",
                                   help="CSV filename,label (default: the label is --pattern matched in the file name)")
    pattern: str = param(DEFAULT_LABEL_PATTERN, help="regular expression of the label in file names (the default: "
                                                     "Ford's call types)")
    channel: int = param(0, check=Number(int, lo=0, what="a channel index"), help="channel of the clips")
    percentile: float = same_as(DiscoverConfig, "percentile")
    band: float | None = same_as(DiscoverConfig, "band")
    scaling: str = same_as(DiscoverConfig, "scaling")
    stride: int | None = same_as(DiscoverConfig, "stride")
    pooling: str = param("sequence", choices=POOLINGS,
                         help="compare whole embedding sequences by DTW, or their means")
    backends: tuple[str, ...] = param((), flag="--backend", repeat=True, choices=BACKENDS,
                                      help="also score this embedding backend (repeatable; birdnet needs the extra "
                                           "sonotype[birdnet], model licence CC BY-NC-SA 4.0)")
    hop: float | None = same_as(DiscoverConfig, "hop")
    speedup: float = same_as(DiscoverConfig, "speedup")
    select_on: tuple[str, ...] = param((), nargs="+",
                                       help="another labelled set on which each representation's pooling and scaling "
                                            "are chosen (e.g. orca-calls/vocabulary); the reported set then never "
                                            "picks a setting")
    select_nested: bool = param(False, help="choose each representation's pooling, scaling (and --select-speedups) "
                                            "on the reported set itself, nested: clip i's 1-NN uses the setting "
                                            "with the best leave-one-out 1-NN accuracy on the other clips (ties: "
                                            "the earlier); NMI/ARI are of one clustering with the setting chosen "
                                            "most often that way; instead of --select-on")
    select_speedups: tuple[float, ...] = param((), nargs="+", check=Number(lo=0, lo_open=True, hi=1000),
                                               help="with --select-on or --select-nested: speed-ups tried for each "
                                                    "--backend (e.g. 0.5 1 2); the best is used (replaces --speedup)")
    bootstrap: int = param(0, check=SIZE, help="give 95 % intervals: this many bootstrap resamples for 1-NN (e.g. "
                                              "2000); NMI and ARI by a jackknife over types")
    json_out: str | None = _json("write the result here")
    progress: bool = _progress()


@dataclass(frozen=True, kw_only=True)
class SearchRun:
    """``sonotype search``: the regions most similar to a region."""

    region: int = param(positional=True, check=Number(int, lo=1, what="a region id"), help="region id")
    db: str = _db()
    k: int = param(10, check=COUNT, help="how many regions")


@dataclass(frozen=True, kw_only=True)
class ReportRun:
    """``sonotype report``: a model version's report folder."""

    model: str = param(help="encoder or detector checkpoint")
    out: str = param("reports", help="parent folder; the report goes to <out>/<model version>/")
    db: str | None = param(None, help="database with a detection run (maps, cluster galleries and WAVs, overviews)")
    run: int | None = _run()
    evaluation_json: str | None = param(None, flag="--evaluation",
                                        help="JSON from `sonotype evaluate --json` (confusion matrix, PR curve)")
    catalog: tuple[str, ...] = param((), nargs="+",
                                     help="labelled clips: adds cluster-eval agreement, catalog map, galleries")
    pattern: str = same_as(ClusterEvalRun, "pattern", help="label pattern in catalog file names")
    labels_csv: str | None = same_as(ClusterEvalRun, "labels_csv", help="CSV filename,label for the catalog")


@dataclass(frozen=True, kw_only=True)
class DemoRun:
    """``sonotype demo``: the whole pipeline on synthetic data."""

    out: str = param("sonotype-demo", help="output folder")
    seed: int = param(0, help="random seed")
    quick: bool = param(False, help="smallest settings (for tests)")
    progress: bool = _progress()


@dataclass(frozen=True, kw_only=True)
class ServeRun:
    """``sonotype serve``: the web browser over a database."""

    db: str = _db()
    host: str = param("127.0.0.1", help="address to listen on (the default: this machine only)")
    port: int = param(8000, check=Number(int, lo=1, hi=65535, what="a TCP port"), help="TCP port")
    edit_token: str | None = param(None, help="allow edits by requests carrying this token (default: "
                                              "$SONOTYPE_EDIT_TOKEN; none: read-only)")
    audio_root: str | None = param(None, help="folder that relative recording paths in the database start from "
                                              "(default: here); clients without the edit token see paths relative "
                                              "to it, never full server paths")
    allowed_hosts: tuple[str, ...] = param((), flag="--allowed-host", repeat=True, metavar="NAME",
                                           help="also answer requests whose Host header is NAME (repeatable; "
                                                "default: this machine's names and the bound address; other Host "
                                                "headers get 400)")
    any_host: bool = param(False, flag="--allow-any-host",
                           help="answer any Host header (turns off the DNS-rebinding guard; behind a proxy that "
                                "checks it)")
    max_renders: int | None = param(None, check=COUNT,
                                    help="spectrograms and long audio spans made at once (default: the server's "
                                         "limit); more get 503 + Retry-After")


@dataclass(frozen=True, kw_only=True)
class ExportLabelsRun:
    """``sonotype export-labels``: curated region labels as an annotation table."""

    db: str = _db()
    out: str = param(help="CSV to write (filename,start,end,label + provenance columns)")
    run: int | None = _run(aliases=("--run-id",))
    only_reviewed: bool = param(False, help="leave out recordings with regions nobody labelled (default: they "
                                            "count as vocalisations)")


@dataclass(frozen=True, kw_only=True)
class InfoRun:
    """``sonotype info``: what sonotype reads from audio files."""

    paths: tuple[str, ...] = _paths("audio files, folders, globs or @filelist.txt")
