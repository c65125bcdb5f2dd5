"""The model report: what a model was trained on, how big it is, how it trained and how well it detects.

:func:`write_model_report` writes ``README.md`` and ``report.html`` (same content) into a folder
that also holds the figures, referenced by relative path. :func:`report_from_checkpoint`,
:func:`figures_for_checkpoint` and :func:`figures_for_evaluation` fill a :class:`ModelReport`
from a loaded :class:`~sonotype.models.checkpoint.Checkpoint` and an ``evaluate_detector`` result.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import CheckpointError, ConfigError
from ._render import Block, fmt, to_html, to_markdown
from .figures import (
    confusion_figure,
    filters_figure,
    local_filters,
    pr_curve_figure,
    training_curve_figure,
)

if TYPE_CHECKING:  # torch only when a checkpoint is involved
    from ..models.checkpoint import Checkpoint

#: Report sections for figures, in page order: (key, heading). A figure goes to the section named
#: for its title in ``ModelReport.figure_sections``, else to the first in ``FIGURE_KEYWORDS``
#: order whose keywords occur in its title (case-insensitive), else to "other".
SECTIONS = (("training", "Training"), ("detector", "Detector evaluation"), ("embedding", "Embedding maps"),
            ("filters", "Local filters"), ("clusters", "Clusters"), ("other", "Other figures"))
FIGURE_KEYWORDS = (("filters", ("filter", "kernel")), ("embedding", ("embedding", "map", "umap", "t-sne", "tsne")),
                   ("clusters", ("cluster", "gallery")), ("training", ("training", "loss")),
                   ("detector", ("confusion", "precision", "recall", "pr curve", "detector", "score")))
MAX_ROWS = 100  # longest per-file / file-list listing; more are counted, not listed


@dataclass(frozen=True)
class ModelReport:
    """Everything a model report shows. Text may be anything: it is escaped when written.

    ``layers``: (layer name, trainable parameters) rows, or the dict of
    :func:`sonotype.models.lstm_v3.parameter_counts` (a ``total`` row is added when missing).
    ``history``: the per-epoch dicts of an encoder checkpoint. ``evaluation``: an
    :func:`sonotype.detection.evaluate.evaluate_detector` result (held-out). ``detector_validation``: the
    ``metrics.summary`` of the validation split the threshold was chosen on (not held-out).
    ``cluster_agreement``: table rows as dicts (column -> value; columns in first-seen order).
    ``figures``: title -> path of the figure's PNG (or its stem) relative to the report folder;
    the SVG beside it is linked when it exists. ``figure_sections``: title -> one of the
    :data:`SECTIONS` keys, overriding the keyword rule.
    """

    name: str
    version: str = ""
    created: str = ""
    description: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    frontend: Mapping[str, Any] = field(default_factory=dict)
    layers: Sequence[tuple[str, int]] | Mapping[str, int] = ()
    encoder_config: Mapping[str, Any] = field(default_factory=dict)
    train_config: Mapping[str, Any] = field(default_factory=dict)
    history: Sequence[Mapping[str, Any]] = ()
    detector_config: Mapping[str, Any] = field(default_factory=dict)
    detector_validation: Mapping[str, Any] | None = None
    evaluation: Mapping[str, Any] | None = None
    cluster_agreement: Sequence[Mapping[str, Any]] = ()
    figures: Mapping[str, str | Path] = field(default_factory=dict)
    figure_sections: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"ModelReport name={self.name!r}: expected a non-empty string, e.g. the model version")
        rows = list(self.layers.items()) if isinstance(self.layers, Mapping) else list(self.layers)
        for i, row in enumerate(rows):
            if (not isinstance(row, (tuple, list)) or len(row) != 2 or isinstance(row[1], bool)
                    or not isinstance(row[1], int) or row[1] < 0):
                raise ConfigError(f"layers[{i}] = {row!r}: expected (layer name, parameter count >= 0), e.g. from "
                                  "sonotype.models.lstm_v3.parameter_counts(encoder)")
        object.__setattr__(self, "layers", tuple((str(a), int(b)) for a, b in rows))
        for name in ("data", "frontend", "encoder_config", "train_config", "detector_config", "figures",
                     "figure_sections"):
            if not isinstance(getattr(self, name), Mapping):
                raise ConfigError(f"ModelReport {name}={getattr(self, name)!r:.80}: expected a dict")
        for name in ("evaluation", "detector_validation"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, Mapping) and isinstance(v.get("confusion"), Mapping)):
                raise ConfigError(f"ModelReport {name}={v!r:.80}: expected a dict with a 'confusion' dict, as "
                                  "sonotype.detection.evaluate.evaluate_detector / sonotype.training.metrics.summary return, or None")
        bad = {t: s for t, s in self.figure_sections.items() if s not in dict(SECTIONS)}
        if bad:
            raise ConfigError(f"figure_sections {bad!r}: expected section keys among {[k for k, _ in SECTIONS]}")
        for name in ("history", "cluster_agreement"):
            v = getattr(self, name)
            if isinstance(v, Mapping) or not all(isinstance(r, Mapping) for r in v):
                raise ConfigError(f"ModelReport {name}: expected a list of dicts, got {v!r:.80}")
            object.__setattr__(self, name, tuple(v))


# ------------------------------------------------------------------------------------------ sections


def _kv(d: Mapping[str, Any]) -> Block:
    return ("table", ("setting", "value"), [(str(k), fmt(v)) for k, v in d.items()])


def _section_of(title: str, sections: Mapping[str, str]) -> str:
    if title in sections:
        return sections[title]
    t = title.lower()
    for key, words in FIGURE_KEYWORDS:
        if any(w in t for w in words):
            return key
    return "other"


def _figure_files(out_dir: Path, title: str, rel: str | Path) -> tuple[str, str | None]:
    p = Path(rel)
    if p.is_absolute():
        try:
            p = p.resolve().relative_to(out_dir.resolve())
        except ValueError:
            raise ConfigError(f"figure {title!r}: {rel} is outside the report folder {out_dir}: expected a path "
                              "inside it (write the figures into the report folder)") from None
    if ".." in p.parts:
        raise ConfigError(f"figure {title!r}: {rel} leaves the report folder: expected a path relative to {out_dir}")
    stem = p.with_suffix("") if p.suffix.lower() in (".png", ".svg") else p
    png, svg = stem.parent / (stem.name + ".png"), stem.parent / (stem.name + ".svg")
    if not (out_dir / png).is_file():
        raise ConfigError(f"figure {title!r}: {out_dir / png} does not exist: expected a PNG inside the report folder "
                          "(figure paths are relative to out_dir; make them with the sonotype.report figure functions)")
    return png.as_posix(), svg.as_posix() if (out_dir / svg).is_file() else None


def _metrics_table(result: Mapping[str, Any]) -> Block:
    c = result["confusion"]
    rows = [("windows", fmt(result.get("n_windows"))), ("vocalisation windows", fmt(result.get("n_positive"))),
            ("threshold", fmt(result.get("threshold", c.get("threshold")))), ("precision", fmt(c.get("precision"))),
            ("recall", fmt(c.get("recall"))), ("F1", fmt(c.get("f1"))), ("accuracy", fmt(c.get("accuracy"))),
            ("average precision", fmt(result.get("average_precision")))]
    rows += [(k.replace("_", " "), fmt(result[k])) for k in ("min_overlap", "model") if k in result]
    return ("table", ("metric", "value"), rows)


def _confusion_table(c: Mapping[str, Any]) -> Block:
    return ("table", ("truth \\ prediction", "vocalisation", "noise"),
            [("vocalisation", fmt(c.get("tp")), fmt(c.get("fn"))), ("noise", fmt(c.get("fp")), fmt(c.get("tn")))])


def _listing(caption: str, items: Sequence[Any]) -> Block:
    shown = [fmt(i) for i in items[:MAX_ROWS]]
    if len(items) > MAX_ROWS:
        shown.append(f"… and {len(items) - MAX_ROWS:,} more")
    return ("list", f"{caption} ({len(items):,})", shown)


def _blocks(r: ModelReport, figs: Mapping[str, list[Block]]) -> list[Block]:
    b: list[Block] = []
    meta = [f"version {r.version}" if r.version else "", f"created {r.created}" if r.created else "",
            f"report written by sonotype {__version__}"]
    b.append(("p", " · ".join(m for m in meta if m)))
    if r.description:
        b.append(("p", r.description))
    if r.data:
        b += [("h2", "Data used"), _kv(r.data)]
        b += [_listing(str(k), v) for k, v in r.data.items() if isinstance(v, (list, tuple)) and len(v) > 8]
    if r.frontend:
        b += [("h2", "Front end"), _kv(r.frontend)]
    if r.layers or r.encoder_config:
        b.append(("h2", "Encoder"))
        if r.layers:
            rows = [(n, f"{c:,}") for n, c in r.layers if n != "total"]
            total = dict(r.layers).get("total", sum(c for n, c in r.layers if n != "total"))
            b.append(("table", ("layer", "parameters"), rows + [("total", f"{total:,}")]))
        if r.encoder_config:
            b.append(_kv(r.encoder_config))
    if r.history or r.train_config or figs.get("training"):
        b.append(("h2", "Training"))
        if r.train_config:
            b.append(_kv(r.train_config))
        if r.history:
            b += _history(r.history)
        b += figs.get("training", [])
    if r.evaluation or r.detector_validation or r.detector_config or figs.get("detector"):
        b.append(("h2", "Detector evaluation"))
        if r.detector_config:
            b.append(_kv(r.detector_config))
        if r.evaluation:
            b += _evaluation(r.evaluation)
        if r.detector_validation:
            b.append(("p", "Validation split (the data the threshold was chosen on; not held-out):"))
            b += [_metrics_table(r.detector_validation), _confusion_table(r.detector_validation["confusion"])]
        b += figs.get("detector", [])
    for key, heading in (("embedding", "Embedding maps"), ("filters", "Local filters")):
        if figs.get(key):
            b += [("h2", heading), *figs[key]]
    if r.cluster_agreement or figs.get("clusters"):
        b.append(("h2", "Clusters"))
        if r.cluster_agreement:
            cols = list(dict.fromkeys(k for row in r.cluster_agreement for k in row))
            b.append(("table", tuple(str(c) for c in cols),
                      [tuple(fmt(row.get(c)) for c in cols) for row in r.cluster_agreement]))
        b += figs.get("clusters", [])
    if figs.get("other"):
        b += [("h2", "Other figures"), *figs["other"]]
    return b


def _history(history: Sequence[Mapping[str, Any]]) -> list[Block]:
    vals = [(h.get("epoch", i + 1), h.get("val_loss")) for i, h in enumerate(history)]
    vals = [(e, v) for e, v in vals if isinstance(v, (int, float)) and not math.isnan(v)]
    text = f"{len(history)} epoch{'s' if len(history) != 1 else ''}"
    if vals:
        e, v = min(vals, key=lambda ev: ev[1])
        text += f"; lowest validation loss {fmt(v)} at epoch {fmt(e)}"
    cols = list(dict.fromkeys(k for h in history for k in h))
    rows = [tuple(fmt(h.get(c)) for c in cols) for h in history]
    if len(rows) > 2 * 25:
        rows = rows[:25] + [tuple("…" for _ in cols)] + rows[-25:]
    return [("p", text + "."), ("table", tuple(c.replace("_", " ") for c in cols), rows)]


def _evaluation(ev: Mapping[str, Any]) -> list[Block]:
    b: list[Block] = [("p", "Held-out window-level evaluation:"), _metrics_table(ev), _confusion_table(ev["confusion"])]
    seen = ev.get("files_seen_in_training") or []
    if seen:
        b.append(("warn", f"{len(seen)} evaluated file(s) were used in training: these numbers are not held-out."))
    files = [f for f in ev.get("files", []) if isinstance(f, Mapping)]
    if files:
        cols = list(dict.fromkeys(k for f in files for k in f))
        rows = [tuple(fmt(f.get(c)) for c in cols) for f in files[:MAX_ROWS]]
        if len(files) > MAX_ROWS:
            rows.append(tuple(f"… {len(files) - MAX_ROWS} more" if i == 0 else "" for i in range(len(cols))))
        b += [("p", "Per file:"), ("table", tuple(cols), rows)]
    return b


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_model_report(out_dir: str | Path, report: ModelReport) -> Path:
    """Write ``README.md`` and ``report.html`` for ``report`` into ``out_dir``; returns the README path.

    Figure paths in ``report.figures`` are relative to ``out_dir`` and must exist there
    (ConfigError otherwise), so every image link in both files resolves.
    """
    if not isinstance(report, ModelReport):
        raise ConfigError(f"report is a {type(report).__name__}: expected a sonotype.report.ModelReport")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs: dict[str, list[Block]] = {}
    for title, rel in report.figures.items():
        png, svg = _figure_files(out, str(title), rel)
        figs.setdefault(_section_of(str(title), report.figure_sections), []).append(("figure", str(title), png, svg))
    blocks = _blocks(report, figs)
    readme = out / "README.md"
    _write(readme, to_markdown(report.name, blocks))
    _write(out / "report.html", to_html(report.name, blocks))
    return readme


# ------------------------------------------------------------------------------------------ from checkpoints


def _encoder(checkpoint: Checkpoint) -> Any:
    from ..models.checkpoint import Checkpoint, build_encoder  # torch only when a checkpoint is involved

    if not isinstance(checkpoint, Checkpoint):
        raise CheckpointError(f"checkpoint is a {type(checkpoint).__name__}; expected a "
                              "sonotype.models.checkpoint.Checkpoint: pass the result of load_checkpoint(path)")
    return build_encoder(checkpoint)


def figures_for_checkpoint(checkpoint: Checkpoint, out_dir: str | Path, *,
                           subdir: str = "figures") -> dict[str, str]:
    """Training curve(s) and local filters of a loaded checkpoint, written into ``out_dir/subdir``.

    Returns ``{title: PNG path relative to out_dir}`` for :attr:`ModelReport.figures`: "Training
    curve" (when the checkpoint has a history), "Detector head: training loss" (detector
    checkpoints) and "Local Conv2D filters".
    """
    out = Path(out_dir)
    weights = local_filters(_encoder(checkpoint))
    figs: dict[str, str] = {}
    if checkpoint.history:
        training_curve_figure(list(checkpoint.history), out / subdir / "training-curve")
        figs["Training curve"] = f"{subdir}/training-curve.png"
    det_hist = list(checkpoint.detector.history) if checkpoint.detector else []
    if det_hist:
        training_curve_figure(det_hist, out / subdir / "detector-training", title="Detector head",
                              ylabel="loss (binary cross-entropy)")
        figs["Detector head: training loss"] = f"{subdir}/detector-training.png"
    filters_figure(weights, out / subdir / "filters")
    figs["Local Conv2D filters"] = f"{subdir}/filters.png"
    return figs


def figures_for_evaluation(evaluation: Mapping[str, Any], out_dir: str | Path, *,
                           subdir: str = "figures") -> dict[str, str]:
    """Confusion matrix and PR curve of an ``evaluate_detector`` result (or ``metrics.summary``).

    Returns ``{title: PNG path relative to out_dir}``: "Detector confusion matrix" and, when the
    result has a PR curve, "Precision-recall curve".
    """
    if not isinstance(evaluation, Mapping) or not isinstance(evaluation.get("confusion"), Mapping):
        raise ConfigError(f"evaluation={evaluation!r:.80}: expected the dict of sonotype.detection.evaluate.evaluate_detector")
    out = Path(out_dir)
    c = evaluation["confusion"]
    confusion_figure(c, out / subdir / "confusion")
    figs = {"Detector confusion matrix": f"{subdir}/confusion.png"}
    curve = evaluation.get("pr_curve") or {}
    if curve.get("precision"):
        pr_curve_figure(curve["precision"], curve["recall"], out / subdir / "pr-curve",
                        chosen=(c["precision"], c["recall"]) if "precision" in c and "recall" in c else None,
                        average_precision=evaluation.get("average_precision"))
        figs["Precision-recall curve"] = f"{subdir}/pr-curve.png"
    return figs


def report_from_checkpoint(checkpoint: Checkpoint, *, name: str | None = None, version: str | None = None,
                           description: str = "", evaluation: Mapping[str, Any] | None = None,
                           cluster_agreement: Sequence[Mapping[str, Any]] = (),
                           figures: Mapping[str, str | Path] | None = None,
                           figure_sections: Mapping[str, str] | None = None) -> ModelReport:
    """A :class:`ModelReport` from a loaded encoder or detector :class:`~sonotype.models.checkpoint.Checkpoint`.

    Name defaults to the checkpoint's ``model_version`` or its kind; layers come from
    :func:`sonotype.models.lstm_v3.parameter_counts` of the rebuilt encoder; detector checkpoints add
    their head config, training-file lists and validation metrics.
    """
    from ..models.lstm_v3 import parameter_counts

    ck = checkpoint
    layers = parameter_counts(_encoder(ck))
    det = ck.detector
    data = ck.data.to_dict()
    if det is not None:
        data.update({"detector training files": list(det.train_files),
                     "detector validation files": list(det.val_files), **det.data})
    return ModelReport(
        name=name or ck.model_version or f"sonotype {ck.kind}",
        version=str(version if version is not None else ck.model_version or ""),
        created=ck.created, description=description, data=data,
        frontend=ck.frontend.to_dict(), layers=layers,
        encoder_config=ck.encoder_config.to_dict(), train_config=dict(ck.train_config or {}),
        history=list(ck.history), detector_config={} if det is None else dict(det.config),
        detector_validation=None if det is None else det.validation, evaluation=evaluation, cluster_agreement=cluster_agreement,
        figures=dict(figures or {}), figure_sections=dict(figure_sections or {}))
