"""Figures of a detector and an encoder, and of clusters and recordings: plain arrays in, PNG + SVG out.

Every function writes ``<out_stem>.png`` and ``<out_stem>.svg`` (a .png/.svg suffix on
``out_stem`` is dropped; missing folders are made) and returns the written paths, PNG first.
Spectrograms are ``(frames, bins)`` arrays, frequency bins on axis 1, drawn with time to the
right and low frequencies at the bottom. The embedding map lives in :mod:`sonotype.report.maps`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..errors import ConfigError
from ..features.pooling import pool_time
from ..training.metrics import Confusion
from ._plot import (
    array,
    clock,
    finite,
    label_colours,
    new_figure,
    positive_int,
    save,
    spectrogram_style,
    thumbnail,
)

CLASSES = ("vocalisation", "noise")


def _counts(confusion: Confusion | Mapping[str, Any]) -> tuple[int, int, int, int, float | None]:
    get = confusion.get if isinstance(confusion, Mapping) else (lambda k, d=None: getattr(confusion, k, d))
    out = []
    for k in ("tp", "fn", "fp", "tn"):
        v = get(k)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer, float)) or v < 0 or v != int(v):
            raise ConfigError(f"confusion {k}={v!r}: expected a count >= 0; pass a sonotype.training.metrics.Confusion or "
                              "the 'confusion' dict of an evaluation result (keys tp, fn, fp, tn)")
        out.append(int(v))
    thr = get("threshold")
    return out[0], out[1], out[2], out[3], None if thr is None else float(thr)


def confusion_figure(confusion: Confusion | Mapping[str, Any], out_stem: str | Path, *,
                     title: str = "Detector confusion matrix") -> list[Path]:
    """2x2 confusion matrix, rows truth, columns prediction (vocalisation, noise).

    ``confusion``: a :class:`sonotype.training.metrics.Confusion` or a dict with counts ``tp, fn, fp, tn``
    (and optionally ``threshold``), e.g. ``evaluate_detector(...)["confusion"]``. Each cell shows
    the count (thousands separated by commas) and its share of the true class (row-normalised %);
    the colour is that share.
    """
    tp, fn, fp, tn, thr = _counts(confusion)
    m = np.array([[tp, fn], [fp, tn]], dtype=np.float64)
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    with new_figure(5.0, 4.2) as fig:
        ax = fig.add_subplot()
        im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
        for i in range(2):
            for j in range(2):
                pct = f"{100 * frac[i, j]:.1f}%" if rows[i, 0] else "–"
                ax.text(j, i, f"{int(m[i, j]):,}\n{pct}", ha="center", va="center", fontsize=13,
                        color="white" if frac[i, j] > 0.55 else "black")
        ax.set_xticks([0, 1], labels=list(CLASSES))
        ax.set_yticks([0, 1], labels=list(CLASSES))
        ax.set_xlabel("prediction")
        ax.set_ylabel("truth")
        at = f"threshold {thr:.3f}   " if thr is not None else ""
        ax.set_title(f"{at}precision {precision:.3f}   recall {recall:.3f}   F1 {f1:.3f}", fontsize=8)
        fig.colorbar(im, ax=ax, label="share of the true class", shrink=0.8)
        fig.suptitle(title)
        return save(fig, out_stem)


def pr_curve_figure(precision: Any, recall: Any, out_stem: str | Path, *,
                    chosen: tuple[float, float] | None = None, average_precision: float | None = None,
                    title: str = "Precision-recall curve") -> list[Path]:
    """Precision against recall, step-interpolated as in :func:`sonotype.training.metrics.average_precision`.

    ``precision``, ``recall``: (n,) in [0, 1], one point per threshold in descending threshold
    order, as ``metrics.pr_curve`` or ``metrics.summary(...)["pr_curve"]`` give them.
    ``chosen``: the operating point ``(precision, recall)`` of the chosen threshold, marked.
    ``average_precision``: shown in the legend.
    """
    p = finite(array(precision, "precision", ndim=1), "precision")
    r = finite(array(recall, "recall", ndim=1), "recall")
    if p.shape != r.shape:
        raise ConfigError(f"precision has {p.size} points but recall has {r.size}: expected one (precision, recall) "
                          "pair per threshold, as metrics.pr_curve returns them")
    for a, name in ((p, "precision"), (r, "recall")):
        if a.min() < -1e-9 or a.max() > 1 + 1e-9:
            raise ConfigError(f"{name} ranges over [{a.min():g}, {a.max():g}]: expected values in [0, 1]")
    if chosen is not None:
        try:
            cp, cr = (float(v) for v in chosen)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"chosen={chosen!r}: expected a (precision, recall) pair of numbers or None") from e
        if not (0 <= cp <= 1 and 0 <= cr <= 1):
            raise ConfigError(f"chosen={chosen!r}: expected precision and recall in [0, 1]")
    order = np.argsort(r, kind="stable")
    p, r = p[order], r[order]
    with new_figure(5.2, 4.6) as fig:
        ax = fig.add_subplot()
        label = "PR curve" if average_precision is None else f"PR curve (AP {float(average_precision):.3f})"
        ax.plot(np.r_[0.0, r], np.r_[p[0], p], drawstyle="steps-pre", color="tab:blue", lw=1.6, label=label)
        if p.size <= 60:
            ax.plot(r, p, "o", color="tab:blue", ms=3)
        if chosen is not None:
            ax.plot([cr], [cp], "o", ms=9, mfc="none", mec="tab:red", mew=2,
                    label=f"chosen threshold: P {cp:.3f}, R {cr:.3f}")
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.02)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.legend(loc="lower left")
        fig.suptitle(title)
        return save(fig, out_stem)


def training_curve_figure(history: Sequence[Mapping[str, Any]], out_stem: str | Path, *,
                          title: str = "Self-supervised training",
                          ylabel: str = "next-frame loss (MSE)") -> list[Path]:
    """Training and validation loss (next-frame MSE) per epoch; the best validation epoch is marked.

    ``history``: the list stored in encoder checkpoints, one dict per epoch with ``train_loss``
    and optionally ``epoch`` (default: position + 1) and ``val_loss`` (NaN or missing = none).
    A log scale is used when the losses span more than a factor of 30. ``ylabel`` names the loss
    (e.g. ``"loss (binary cross-entropy)"`` for a detector checkpoint's ``detector.history``).
    Entries with ``val_average_precision`` (detector histories) also get that curve, on a
    right-hand 0-1 axis.
    """
    if isinstance(history, Mapping) or not isinstance(history, Sequence) or len(history) == 0:
        raise ConfigError(f"history={history!r:.80}: expected a non-empty list of per-epoch dicts "
                          "({'epoch', 'train_loss', 'val_loss'}) as stored in encoder checkpoints under 'history'")
    ep, tr, va, ap = [], [], [], []
    for i, h in enumerate(history):
        try:
            tr.append(float(h["train_loss"]))
            ep.append(float(h.get("epoch", i + 1)))
            v = h.get("val_loss")
            va.append(float("nan") if v is None else float(v))
            a = h.get("val_average_precision")
            ap.append(float("nan") if a is None else float(a))
        except (TypeError, KeyError, ValueError, AttributeError) as e:
            raise ConfigError(f"history[{i}] = {h!r:.120}: expected a dict with a numeric 'train_loss' (and "
                              f"'epoch', 'val_loss') as stored in encoder checkpoints ({type(e).__name__}: {e})") from e
    ep_a, tr_a, va_a, ap_a = np.array(ep), np.array(tr), np.array(va), np.array(ap)
    has_val = np.isfinite(va_a).any()
    with new_figure(6.4, 4.0) as fig:
        ax = fig.add_subplot()
        marker = "o" if len(ep) <= 60 else None
        ax.plot(ep_a, tr_a, marker=marker, ms=3, color="tab:blue", label="training loss")
        if has_val:
            ax.plot(ep_a, va_a, marker=marker or ".", ms=3, color="tab:orange", label="validation loss")
            b = int(np.nanargmin(va_a))
            ax.plot([ep_a[b]], [va_a[b]], "*", ms=13, color="tab:red",
                    label=f"best: epoch {ep_a[b]:g}, {va_a[b]:.4g}")
        elif not np.isfinite(ap_a).any():
            ax.text(0.98, 0.95, "no validation loss recorded", transform=ax.transAxes, ha="right", va="top",
                    fontsize=8, color="0.4")
        vals = np.r_[tr_a, va_a[np.isfinite(va_a)]]
        vals = vals[np.isfinite(vals)]
        if vals.size and vals.min() > 0 and vals.max() / vals.min() > 30:
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        handles, labels = ax.get_legend_handles_labels()
        if np.isfinite(ap_a).any():
            ax_ap = ax.twinx()
            (line,) = ax_ap.plot(ep_a, ap_a, marker=marker or ".", ms=3, color="tab:green")
            ax_ap.set_ylim(0, 1.02)
            ax_ap.set_ylabel("validation average precision")
            handles, labels = [*handles, line], [*labels, "validation AP"]
        ax.legend(handles, labels)
        fig.suptitle(title)
        return save(fig, out_stem)


def local_filters(encoder: Any) -> np.ndarray:
    """The encoder's local Conv2D kernels as a (filters, 1, time, frequency) float32 array."""
    conv = getattr(encoder, "local_conv", None)
    weight = getattr(conv, "weight", None)
    if weight is None:
        raise ConfigError(f"{type(encoder).__name__} has no local_conv.weight: expected a sonotype.models.lstm_v3.Encoder "
                          "(sonotype.models.checkpoint.build_encoder(checkpoint) makes one from a checkpoint)")
    return weight.detach().cpu().numpy().astype(np.float32, copy=True)


def filters_figure(weights: Any, out_stem: str | Path, *,
                   title: str = "Local Conv2D filters (time →, frequency ↑)") -> list[Path]:
    """The local Conv2D kernels as a grid, one panel per filter (8x8 for 64), each with its own ±max|w| scale.

    ``weights``: (filters, 1, time, frequency), e.g. (64, 1, 8, 8) from :func:`local_filters`,
    or (filters, time, frequency). Red is positive, blue negative; time runs to the right,
    frequency upwards.
    """
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"weights are not numeric ({e}): expected a (64, 1, 8, 8)-like array") from e
    if w.ndim == 4 and w.shape[1] == 1:
        w = w[:, 0]
    if w.ndim != 3 or min(w.shape) < 1 or w.shape[0] > 1024:
        raise ConfigError(f"weights have shape {np.shape(weights)}: expected (filters, 1, time, frequency) like the "
                          "encoder's local Conv2D kernels (64, 1, 8, 8), at most 1024 filters; pass "
                          "local_filters(encoder) or encoder.local_conv.weight.detach().numpy()")
    finite(w, "weights")
    n = w.shape[0]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    with new_figure(0.85 * cols + 0.4, 0.85 * rows + 0.9, layout=None) as fig:
        axes = fig.subplots(rows, cols, squeeze=False, gridspec_kw={"wspace": 0.12, "hspace": 0.3})
        fig.subplots_adjust(left=0.03, right=0.97, bottom=0.4 / (0.85 * rows + 0.9),
                            top=1 - 0.55 / (0.85 * rows + 0.9))
        for k, ax in enumerate(axes.ravel()):
            if k >= n:
                ax.remove()
                continue
            v = float(np.abs(w[k]).max()) or 1.0
            ax.imshow(w[k].T, cmap="RdBu_r", vmin=-v, vmax=v, origin="lower", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(str(k), fontsize=6, pad=1.5)
        fig.suptitle(title)
        fig.text(0.5, 0.12 / (0.85 * rows + 0.9), "each filter on its own scale ±max|w|: red positive, blue negative",
                 ha="center", fontsize=7, color="0.3")
        return save(fig, out_stem)


def gallery_figure(thumbnails: Sequence[Any], out_stem: str | Path, *, title: str = "", max_items: int = 24,
                   labels: Sequence[str] | None = None, columns: int = 6) -> list[Path]:
    """Spectrograms of one cluster's members in a grid, in the order given (the first ``max_items``).

    ``thumbnails``: list of (frames, bins) arrays (any units, e.g. dB; each drawn on its own
    colour scale). ``labels``: optional caption per thumbnail (same length), e.g. file and time.
    """
    max_items = positive_int(max_items, "max_items")
    columns = positive_int(columns, "columns")
    n = len(thumbnails)
    if n == 0:
        raise ConfigError("thumbnails is empty: expected at least one (frames, bins) spectrogram to draw")
    if labels is not None and len(labels) != n:
        raise ConfigError(f"labels has {len(labels)} entries but thumbnails has {n}: expected one caption per "
                          "thumbnail (or labels=None)")
    m = min(n, max_items)
    imgs = [thumbnail(thumbnails[i], i, max_side=160) for i in range(m)]
    cols = min(columns, m)
    rows = math.ceil(m / cols)
    with new_figure(1.75 * cols + 0.3, 1.55 * rows + 0.6) as fig:
        axes = fig.subplots(rows, cols, squeeze=False)
        for k, ax in enumerate(axes.ravel()):
            if k >= m:
                ax.remove()
                continue
            ax.imshow(imgs[k], origin="lower", aspect="auto", **spectrogram_style(imgs[k]))
            ax.set_xticks([])
            ax.set_yticks([])
            if labels is not None:
                text = str(labels[k])
                ax.set_title(text if len(text) <= 40 else text[:39] + "…", fontsize=7)
        shown = (f"{m} of {n}" if m < n else f"{n}") + (" items" if n != 1 else " item")
        fig.suptitle(f"{title}  ({shown})" if title else shown)
        return save(fig, out_stem)


def _regions(regions: Sequence[Sequence[Any]]) -> list[tuple[float, float, str | None]]:
    out = []
    for i, reg in enumerate(regions):
        try:
            if len(reg) not in (2, 3):
                raise ValueError(f"{len(reg)} fields")
            a, b = float(reg[0]), float(reg[1])
        except (TypeError, ValueError) as e:
            raise ConfigError(f"regions[{i}] = {reg!r:.80}: expected (start_s, stop_s) or (start_s, stop_s, label) "
                              f"({e})") from e
        if not (math.isfinite(a) and math.isfinite(b) and b > a):
            raise ConfigError(f"regions[{i}] = {reg!r:.80}: expected finite seconds with stop > start")
        out.append((a, b, None if len(reg) == 2 or reg[2] is None else str(reg[2])))
    return out


def recording_overview_figure(spec: Any, out_stem: str | Path, *, seconds_per_frame: float, freqs_hz: Any,
                              regions: Sequence[Sequence[Any]] = (), scores: Any = None,
                              threshold: float | None = None, title: str = "",
                              max_columns: int = 4000) -> list[Path]:
    """A whole recording's spectrogram with detected/annotated regions shaded, and optionally its scores.

    ``spec``: (frames, bins) dB spectrogram; frame ``f`` starts at ``f * seconds_per_frame`` s.
    ``freqs_hz``: (bins,) centre frequency of each bin in Hz, increasing. Long recordings are
    max-pooled over time to at most ``max_columns`` columns (peaks survive). ``regions``:
    ``(start_s, stop_s)`` or ``(start_s, stop_s, label)`` items, shaded (one colour per label).
    ``scores``: (frames,) e.g. detector probabilities per frame or window, drawn below (also
    max-pooled) with an optional dashed ``threshold`` line.
    """
    s = np.asarray(spec)
    if s.dtype.kind not in "fiu" or s.ndim != 2 or min(s.shape) < 1:
        raise ConfigError(f"spec has shape {s.shape} and dtype {s.dtype}: expected a non-empty 2-D (frames, bins) "
                          "array of numbers (dB)")
    f = finite(array(freqs_hz, "freqs_hz", ndim=1), "freqs_hz")
    frames, bins = s.shape
    if f.size != bins:
        raise ConfigError(f"freqs_hz has {f.size} entries but spec has {bins} frequency bins (axis 1): expected one "
                          "frequency per bin; is spec (frames, bins) or transposed?")
    if f.size > 1 and not (np.diff(f) > 0).all():
        raise ConfigError("freqs_hz is not strictly increasing: expected bin centre frequencies from low to high")
    spf = float(seconds_per_frame)
    if not (math.isfinite(spf) and spf > 0):
        raise ConfigError(f"seconds_per_frame={seconds_per_frame!r}: expected a positive number (hop / sample rate)")
    max_columns = positive_int(max_columns, "max_columns", minimum=10)
    sc = None
    if scores is not None:
        sc = array(scores, "scores", ndim=1)
        if sc.size != frames:
            raise ConfigError(f"scores has {sc.size} entries but spec has {frames} frames: expected one score per frame "
                              "(repeat window scores over their frames first)")
    regs = _regions(regions)
    pooled, factor = pool_time(s, max_columns)  # pooled first: the full spectrogram is never copied
    pooled = pooled.astype(np.float64)
    ok = np.isfinite(pooled)
    if not ok.all():
        pooled[~ok] = pooled[ok].min() if ok.any() else 0.0
    duration = frames * spf
    if f.size > 1:
        edges = (f[0] - (f[1] - f[0]) / 2, f[-1] + (f[-1] - f[-2]) / 2)
    else:
        edges = (f[0] - 0.5, f[0] + 0.5)
    khz = edges[1] >= 2000
    scale = 1e-3 if khz else 1.0
    colours = label_colours([lab for _, _, lab in regs if lab is not None])
    with new_figure(13.0, 5.6 if sc is not None else 4.4) as fig:
        if sc is not None:
            ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[4, 1.3])
        else:
            ax, ax2 = fig.add_subplot(), None
        im = ax.imshow(pooled.T, origin="lower", aspect="auto", **spectrogram_style(pooled),
                       extent=(0.0, duration, edges[0] * scale, edges[1] * scale), interpolation="antialiased")
        ax.set_ylabel("frequency (kHz)" if khz else "frequency (Hz)")
        for i, (a, b, lab) in enumerate(regs):
            c = colours[lab] if lab is not None else "#00e5ff"
            ax.axvspan(a, b, color=c, alpha=0.3, lw=0, gid=f"region-{i}")
            if ax2 is not None:
                ax2.axvspan(a, b, color=c, alpha=0.2, lw=0, gid=f"score-region-{i}")
        if colours:
            handles = [Line2D([], [], marker="s", ls="", mfc=c, mec=c, alpha=0.6, label=lab)
                       for lab, c in list(colours.items())[:30]]
            ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.8)
        last = ax2 if ax2 is not None else ax
        if sc is not None:
            psc, _ = pool_time(sc, max_columns)
            t = (np.arange(psc.size) * factor + factor / 2) * spf
            ax2.plot(t, psc, color="tab:blue", lw=0.8)
            if threshold is not None:
                ax2.axhline(float(threshold), color="tab:red", ls="--", lw=0.8)
            if np.isfinite(sc).all() and sc.min() >= 0 and sc.max() <= 1:
                ax2.set_ylim(0, 1.02)
            ax2.set_ylabel("score")
            ax2.grid(alpha=0.3)
        ax.set_xlim(0.0, duration)
        if duration >= 120:
            last.xaxis.set_major_formatter(FuncFormatter(clock))
            last.set_xlabel("time (h:mm:ss)" if duration >= 3600 else "time (m:ss)")
        else:
            last.set_xlabel("time (s)")
        fig.colorbar(im, ax=[ax] if ax2 is None else [ax, ax2], label="level (dB)", pad=0.01, aspect=30)
        pooled_note = f", max over {factor} frames per column" if factor > 1 else ""
        head = f"{title}  " if title else ""
        fig.suptitle(f"{head}({clock(duration)}, {len(regs)} region{'s' if len(regs) != 1 else ''}{pooled_note})")
        return save(fig, out_stem)
