"""The embedding map: every item at its 2-D map position, with its spectrogram thumbnail framed in its cluster colour.

Output files: ``<out_stem>.png/.svg`` (the whole map) and, when ``zoom`` is given, a separate
pair ``<out_stem>-zoom.png/.svg`` with the zoomed region at larger thumbnails; the zoom
rectangle is marked on the whole map.

SVG element ids (stable, for tools and tests): each thumbnail frame is ``thumb-<item>-c<cluster>``
(cluster ``noise`` for -1), its image ``thumbimg-<item>``, the zoom rectangle ``zoom-region``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from ..errors import ConfigError
from ._plot import (
    array,
    cluster_colours,
    finite,
    new_figure,
    positive_int,
    save,
    spectrogram_style,
    stem_path,
    thumbnail,
)

MAX_LEGEND = 60  # legend entries shown; more clusters are summarised in one line


def _check(coords: Any, thumbnails: Sequence[Any], clusters: Any) -> tuple[np.ndarray, np.ndarray]:
    xy = array(coords, "coords", ndim=2)
    if xy.shape[1] != 2:
        raise ConfigError(f"coords has shape {xy.shape}: expected (n, 2) map positions (x, y), one row per item")
    finite(xy, "coords")
    n = xy.shape[0]
    if len(thumbnails) != n:
        raise ConfigError(f"coords has {n} rows but thumbnails has {len(thumbnails)} items: expected one "
                          "(frames, bins) thumbnail per map point, in the same order")
    for i, t in enumerate(thumbnails):  # all of them, not only the ones drawn
        if np.ndim(t) != 2:
            raise ConfigError(f"thumbnails[{i}] has shape {np.shape(t)}: expected a 2-D (frames, bins) spectrogram, "
                              "frequency bins on axis 1")
    lab = np.asarray(clusters)
    if lab.shape != (n,):
        raise ConfigError(f"clusters has shape {lab.shape}: expected ({n},), one cluster id per map point "
                          "(-1 = noise/unassigned)")
    if lab.dtype.kind not in "iu" and not (lab.dtype.kind == "f" and np.isfinite(lab).all()
                                           and (lab == np.round(lab)).all()):
        raise ConfigError(f"clusters has dtype {lab.dtype}: expected integer cluster ids (-1 = noise/unassigned)")
    lab = lab.astype(np.int64)
    if (lab < -1).any():
        raise ConfigError(f"clusters holds {int(lab.min())}: expected ids >= 0, or -1 for noise/unassigned")
    return xy, lab


def _zoom(zoom: Any) -> tuple[float, float, float, float] | None:
    if zoom is None:
        return None
    try:
        x0, x1, y0, y1 = (float(v) for v in zoom)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"zoom={zoom!r}: expected (x0, x1, y0, y1) map coordinates or None") from e
    if not all(math.isfinite(v) for v in (x0, x1, y0, y1)) or x1 <= x0 or y1 <= y0:
        raise ConfigError(f"zoom={zoom!r}: expected finite (x0, x1, y0, y1) with x1 > x0 and y1 > y0")
    return x0, x1, y0, y1


def thumbnail_subset(clusters: np.ndarray, k: int, *, seed: int = 0, among: np.ndarray | None = None) -> np.ndarray:
    """Indices (sorted) of at most ``k`` items to draw as thumbnails, chosen with ``seed``.

    Every cluster present gets one thumbnail first (while ``k`` allows), the rest are drawn at
    random. ``among``: restrict the choice to these indices (default all).
    """
    idx = np.arange(clusters.size) if among is None else np.asarray(among, dtype=np.int64)
    if idx.size <= k:
        return np.sort(idx)
    order = idx[np.random.default_rng(seed).permutation(idx.size)]
    first, seen = [], set()
    for i in order:
        c = int(clusters[i])
        if c >= 0 and c not in seen:
            seen.add(c)
            first.append(int(i))
    first = first[:k]
    taken = set(first)
    rest = [int(i) for i in order if int(i) not in taken][: k - len(first)]
    return np.sort(np.array(first + rest, dtype=np.int64))


def _limits(lo: float, hi: float) -> tuple[float, float]:
    span = hi - lo
    pad = 0.06 * span if span > 0 else 0.5
    return lo - pad, hi + pad


def _draw(fig: Figure, xy: np.ndarray, thumbnails: Sequence[Any], lab: np.ndarray, show: np.ndarray,
          colours: dict[int, str], *, xlim: tuple[float, float], ylim: tuple[float, float], size: float,
          max_side: int, point_size: float) -> Any:
    """Points for all items, framed thumbnails for ``show``; returns the axes."""
    ax = fig.add_subplot()
    ax.scatter(xy[:, 0], xy[:, 1], s=point_size, c=[colours[int(c)] for c in lab], alpha=0.7, lw=0, zorder=2)
    w, h = (xlim[1] - xlim[0]) * size, (ylim[1] - ylim[0]) * size * 0.8
    for i in show:
        img = thumbnail(thumbnails[i], int(i), max_side=max_side)
        x, y = xy[i]
        ax.imshow(img, origin="lower", aspect="auto", **spectrogram_style(img), interpolation="antialiased",
                  extent=(x - w / 2, x + w / 2, y - h / 2, y + h / 2), zorder=3, gid=f"thumbimg-{i}")
        c = int(lab[i])
        ax.add_patch(Rectangle((x - w / 2, y - h / 2), w, h, fill=False, edgecolor=colours[c], lw=1.6, zorder=4,
                               gid=f"thumb-{i}-c{c if c >= 0 else 'noise'}"))
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("auto")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def _legend(fig: Figure, lab: np.ndarray, colours: dict[int, str]) -> None:
    ids, counts = np.unique(lab, return_counts=True)
    items = [(int(c), int(k)) for c, k in zip(ids, counts) if c >= 0] + \
        [(int(c), int(k)) for c, k in zip(ids, counts) if c < 0]
    handles = [Line2D([], [], marker="s", ls="", ms=8, mfc="none", mec=colours[c], mew=2,
                      label=f"cluster {c} ({k})" if c >= 0 else f"unassigned ({k})") for c, k in items[:MAX_LEGEND]]
    if len(items) > MAX_LEGEND:
        handles.append(Line2D([], [], ls="", label=f"… {len(items) - MAX_LEGEND} more"))
    fig.legend(handles=handles, loc="outside right upper", title="clusters (items)",
               ncols=max(1, math.ceil(len(handles) / 30)), fontsize=7)


def embedding_map_figure(coords: Any, thumbnails: Sequence[Any], clusters: Any, out_stem: str | Path, *,
                         title: str = "", zoom: tuple[float, float, float, float] | None = None,
                         max_thumbnails: int = 400, seed: int = 0) -> list[Path]:
    """Items on a 2-D embedding map (e.g. UMAP), each shown by its spectrogram framed in its cluster colour.

    ``coords``: (n, 2) map positions (any units). ``thumbnails``: n arrays (frames, bins), e.g. a
    window's dB spectrogram, drawn greyscale on its own scale, low frequency at the bottom.
    ``clusters``: (n,) integer ids, -1 = noise/unassigned (grey); colours come from tab10 /
    tab20 / tab20+b+c by number of clusters, cycling past 54. All items are drawn as points;
    when n > ``max_thumbnails`` a ``seed``-ed subset (one per cluster first) gets thumbnails.
    ``zoom``: (x0, x1, y0, y1) in map units: also writes ``<out_stem>-zoom.png/.svg`` with that
    region's items at larger size (at most ``max_thumbnails`` of them), and marks the region on
    the map. Returns the written paths: the map's PNG and SVG, then the zoom's if any.
    """
    xy, lab = _check(coords, thumbnails, clusters)
    max_thumbnails = positive_int(max_thumbnails, "max_thumbnails", minimum=0)
    z = _zoom(zoom)
    colours = cluster_colours(lab)
    n = lab.size
    show = thumbnail_subset(lab, max_thumbnails, seed=seed)
    xlim, ylim = _limits(xy[:, 0].min(), xy[:, 0].max()), _limits(xy[:, 1].min(), xy[:, 1].max())
    size = min(max(0.45 / math.sqrt(max(show.size, 1)), 0.025), 0.09)  # thumbnail width, fraction of the span
    k = int((np.unique(lab) >= 0).sum())
    head = f"{title}  " if title else ""
    with new_figure(11.0, 8.5) as fig:
        ax = _draw(fig, xy, thumbnails, lab, show, colours, xlim=xlim, ylim=ylim, size=size, max_side=48,
                   point_size=10 if n > 2000 else 18)
        if z is not None:
            ax.add_patch(Rectangle((z[0], z[2]), z[1] - z[0], z[3] - z[2], fill=False, edgecolor="black", lw=1.2,
                                   ls="--", zorder=5, gid="zoom-region"))
            ax.text(z[0], z[3], " zoom", ha="left", va="bottom", fontsize=8, zorder=5)
        _legend(fig, lab, colours)
        fig.suptitle(f"{head}({n} items, {k} cluster{'s' if k != 1 else ''}, {show.size} thumbnails)")
        paths = save(fig, out_stem)
    if z is None:
        return paths
    inside = np.nonzero((xy[:, 0] >= z[0]) & (xy[:, 0] <= z[1]) & (xy[:, 1] >= z[2]) & (xy[:, 1] <= z[3]))[0]
    zshow = thumbnail_subset(lab, max_thumbnails, seed=seed, among=inside)
    zsize = min(max(0.6 / math.sqrt(max(zshow.size, 1)), 0.06), 0.16)
    stem = stem_path(out_stem)
    with new_figure(11.0, 8.5) as fig:
        ax = _draw(fig, xy, thumbnails, lab, zshow, colours, xlim=(z[0], z[1]), ylim=(z[2], z[3]), size=zsize,
                   max_side=96, point_size=30)
        if inside.size == 0:
            ax.text(0.5, 0.5, "no items in this region", transform=ax.transAxes, ha="center", va="center")
        _legend(fig, lab[inside] if inside.size else lab, colours)
        fig.suptitle(f"{head}zoom x {z[0]:g}…{z[1]:g}, y {z[2]:g}…{z[3]:g} "
                     f"({inside.size} items, {zshow.size} thumbnails)")
        return paths + save(fig, stem.parent / (stem.name + "-zoom"))
