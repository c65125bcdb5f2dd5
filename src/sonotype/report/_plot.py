"""Matplotlib plumbing shared by the figure functions: figures without pyplot, output files, checks, colours.

Figures are built with the object-oriented API (``matplotlib.figure.Figure`` on a
``FigureCanvasAgg``), so no global pyplot state is touched and nothing is left registered
anywhere once a function returns. SVGs keep their text as ``<text>`` elements
(``svg.fonttype = none``) and carry no date, so equal inputs give equal files.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap, to_hex, to_rgb
from matplotlib.figure import Figure

from ..errors import ConfigError
from ..features.pooling import pool_time
from ..features.render import N_COLOURS, colour_table, levels

DPI = 120
NOISE_COLOUR = "#9e9e9e"  # cluster -1 (noise / unassigned)
_RC = {
    "svg.fonttype": "none",  # text stays text: searchable, small
    "svg.hashsalt": "sonotype",  # stable element ids
    "image.composite_image": False,  # one SVG <image> per artist (thumbnails stay separate, keep their ids)
    "font.size": 9,
    "axes.titlesize": 9,
    "figure.titlesize": 11,
    "legend.fontsize": 8,
}


@contextlib.contextmanager
def new_figure(width: float, height: float, *, layout: str | None = "constrained") -> Iterator[Figure]:
    """A Figure of ``width`` x ``height`` inches on an Agg canvas, inside sonotype's rc settings.

    Save it inside the block. There is nothing to close: the figure is not registered with pyplot
    (which is never imported), so it is freed with its last reference. (``fig.clear()`` would
    only cost time: it re-initialises every axes before dropping it.)
    """
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height), layout=layout)
        FigureCanvasAgg(fig)
        yield fig


def stem_path(out_stem: str | Path) -> Path:
    """``out_stem`` as a Path without a .png/.svg suffix; its folder is created."""
    p = Path(out_stem)
    if p.suffix.lower() in (".png", ".svg"):
        p = p.with_suffix("")
    if not p.name or p.name in (".", ".."):
        raise ConfigError(f"out_stem {str(out_stem)!r} has no file name: expected a path such as "
                          "'figures/confusion' (the .png and .svg suffixes are added)")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def save(fig: Figure, out_stem: str | Path, *, dpi: int = DPI) -> list[Path]:
    """Write ``<out_stem>.png`` and ``<out_stem>.svg``; returns both paths."""
    stem = stem_path(out_stem)
    png, svg = stem.parent / (stem.name + ".png"), stem.parent / (stem.name + ".svg")
    fig.savefig(png, format="png", dpi=dpi)
    fig.savefig(svg, format="svg", metadata={"Date": None})
    return [png, svg]


# ------------------------------------------------------------------------------------------ checks


def array(x: Any, name: str, *, ndim: int, min_len: int = 1) -> np.ndarray:
    """``x`` as a float64 array of ``ndim`` dimensions with at least ``min_len`` entries along each axis."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name} is not numeric ({e}): expected a {ndim}-D array of numbers") from e
    if a.ndim != ndim or min(a.shape, default=0) < min_len:
        raise ConfigError(f"{name} has shape {a.shape}: expected a {ndim}-D array with at least {min_len} "
                          f"entr{'y' if min_len == 1 else 'ies'} along each axis")
    return a


def finite(a: np.ndarray, name: str) -> np.ndarray:
    if not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).sum())
        raise ConfigError(f"{name} holds {bad} NaN/infinite value(s): expected finite numbers; drop or fill them first")
    return a


def positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name}={value!r}: expected an integer >= {minimum}")
    return int(value)


def thumbnail(a: Any, index: int, *, max_side: int, name: str = "thumbnails") -> np.ndarray:
    """One (frames, bins) spectrogram -> an image (bins, frames) for ``origin='lower'``, max-pooled to fit.

    Non-finite values (e.g. -inf dB of silence) become the smallest finite value.
    """
    try:
        t = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name}[{index}] is not numeric ({e}): expected a 2-D (frames, bins) array") from e
    if t.ndim != 2 or min(t.shape) < 1:
        raise ConfigError(f"{name}[{index}] has shape {t.shape}: expected a non-empty 2-D (frames, bins) "
                          "spectrogram, frequency bins on axis 1")
    ok = np.isfinite(t)
    if not ok.all():
        t = np.where(ok, t, t[ok].min() if ok.any() else 0.0)
    t = pool_time(pool_time(t, max_side)[0].T, max_side)[0]  # (bins, frames)
    return t


# ------------------------------------------------------------------------------------------ colours


@functools.lru_cache(maxsize=1)
def spectrogram_cmap() -> ListedColormap:
    """The web pictures' colour table (:func:`sonotype.features.render.colour_table`) as a matplotlib colour map;
    NaN drawn as its first colour, as there."""
    table = colour_table(N_COLOURS) / 255.0
    return ListedColormap(table, name="sonotype").with_extremes(bad=table[0])


def spectrogram_style(img: np.ndarray) -> dict[str, Any]:
    """``imshow`` keywords for a dB spectrogram: the shared colour map and the shared level rule
    (:func:`sonotype.features.render.levels`), so a report figure colours a level as the web picture does."""
    lo, hi = levels(img)
    return {"cmap": spectrogram_cmap(), "vmin": lo, "vmax": hi}



def _palette(k: int) -> list[str]:
    """Qualitative colours without greys (grey means noise): tab10, tab20 or tab20+tab20b+tab20c."""
    names = ("tab10",) if k <= 9 else ("tab20",) if k <= 18 else ("tab20", "tab20b", "tab20c")
    out = []
    for n in names:
        for c in matplotlib.colormaps[n].colors:
            r, g, b = to_rgb(c)
            if max(r, g, b) - min(r, g, b) > 0.08:
                out.append(to_hex(c))
    return out


def cluster_colours(ids: Sequence[int]) -> dict[int, str]:
    """Hex colour per cluster id: qualitative colours in sorted id order (cycling past 54), -1 grey."""
    uniq = sorted({int(i) for i in ids if int(i) >= 0})
    pal = _palette(len(uniq))
    colours = {c: pal[i % len(pal)] for i, c in enumerate(uniq)}
    colours[-1] = NOISE_COLOUR
    return colours


def label_colours(labels: Sequence[str]) -> dict[str, str]:
    """Hex colour per distinct label, in order of first appearance."""
    uniq = list(dict.fromkeys(labels))
    pal = _palette(len(uniq))
    return {lab: pal[i % len(pal)] for i, lab in enumerate(uniq)}


def clock(seconds: float, _pos: Any = None) -> str:
    """Tick label: m:ss, or h:mm:ss from an hour on."""
    s = round(float(seconds))
    sign, s = ("-" if s < 0 else ""), abs(s)
    h, m, sec = s // 3600, s // 60 % 60, s % 60
    return f"{sign}{h}:{m:02d}:{sec:02d}" if h else f"{sign}{m}:{sec:02d}"
