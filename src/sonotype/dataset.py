"""Training data: finding files, labels (file rules and annotation tables), splits, a frame cache.

A training corpus is a list of :class:`Item` (one audio file with its resolved channel, sample
rate and, for the detector, a file label or the annotated events inside it). Spectrogram frames
of each file are computed once, streamed, and kept on disk (``.npy``, float16) so that training
over corpora larger than memory samples windows from memory-mapped arrays.
"""

from __future__ import annotations

import csv
import fnmatch
import glob
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import AudioError, DataError
from .features import Framing, FrontEnd, framing_for, iter_frames
from .io import open_recording

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".aif", ".aiff", ".opus", ".wma", ".mp4")

#: window label values
POSITIVE, NEGATIVE, IGNORE = 1, 0, -1


def find_audio(paths: Iterable[str | Path], *, extensions: Sequence[str] = AUDIO_EXTENSIONS) -> list[Path]:
    """Expand files, folders (recursive), glob patterns and ``@list.txt`` file lists into audio files.

    The result is sorted and free of duplicates. A path that matches nothing raises :class:`DataError`.
    """
    found: set[Path] = set()
    exts = tuple(e.lower() for e in extensions)
    for raw in paths:
        s = str(raw)
        if s.startswith("@"):
            listing = Path(s[1:])
            if not listing.is_file():
                raise DataError(f"file list {listing} does not exist; expected a text file with one path per line")
            base = listing.parent
            lines = [ln.strip() for ln in listing.read_text().splitlines()]
            found.update(find_audio([p if Path(p).is_absolute() else base / p
                                     for p in lines if _listed(p)], extensions=extensions))
            continue
        p = Path(s)
        if p.is_dir():
            found.update(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts)
        elif p.is_file():
            found.add(p)
        elif any(ch in s for ch in "*?["):
            found.update(Path(m) for m in glob.glob(s, recursive=True)
                         if Path(m).is_file() and Path(m).suffix.lower() in exts)
        else:
            raise DataError(f"{s}: no such file, folder or glob match; expected audio files or folders of them")
    return sorted(found)


def _listed(line: str) -> bool:
    """A line of a file list that names a path (not blank, not a # comment)."""
    return bool(line) and not line.startswith("#")


@dataclass(frozen=True)
class LabelRule:
    """File-level labels from names: a file is *negative* (noise/silence) when its name matches one of
    ``negative_patterns`` (glob on the file name, case-insensitive; the original's rule is ``noise*``)
    or one of its parent folders is named in ``negative_dirs``; otherwise it is a vocalisation.
    """

    negative_patterns: tuple[str, ...] = ("noise*",)
    negative_dirs: tuple[str, ...] = ("noise", "background", "silence")

    def label(self, path: str | Path) -> int:
        p = Path(path)
        name = p.name.lower()
        if any(fnmatch.fnmatch(name, pat.lower()) for pat in self.negative_patterns):
            return NEGATIVE
        if any(part.lower() in {d.lower() for d in self.negative_dirs} for part in p.parent.parts):
            return NEGATIVE
        return POSITIVE


@dataclass(frozen=True)
class Event:
    start: float  # seconds
    end: float  # seconds
    label: str = ""


def read_annotations(path: str | Path) -> dict[str, list[Event]]:
    """Annotation table (CSV/TSV with columns ``filename,start,end`` and optionally ``label``) ->
    events per file *base name*. Times are seconds from the start of the file; a row with empty
    start and end lists a file that was annotated and holds no event."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"annotation table {p} does not exist")
    text = p.read_text(encoding="utf-8-sig")
    dialect = "excel-tab" if text.split("\n", 1)[0].count("\t") > text.split("\n", 1)[0].count(",") else "excel"
    reader = csv.DictReader(text.splitlines(), dialect=dialect)
    numbered = [(reader.line_num, row) for row in reader]  # line numbers in the file (blank lines skipped)
    if not numbered:
        raise DataError(f"annotation table {p} has no rows")
    header = list(numbered[0][1].keys())
    cols = {c.strip().lower(): c for c in header if c}
    missing = [c for c in ("filename", "start", "end") if c not in cols]
    if missing:
        raise DataError(f"annotation table {p} lacks column(s) {missing}; found {header}, "
                        "expected at least filename,start,end (seconds)")
    events: dict[str, list[Event]] = {}
    for n, row in numbered:
        name = Path(row[cols["filename"]]).name
        if not (row[cols["start"]] or "").strip() and not (row[cols["end"]] or "").strip():
            events.setdefault(name, [])  # listed with no times: annotated, holds no event
            continue
        try:
            start, end = float(row[cols["start"]]), float(row[cols["end"]])
        except (TypeError, ValueError):
            raise DataError(f"{p}, line {n}: start/end must be numbers (seconds), got "
                            f"{row[cols['start']]!r}, {row[cols['end']]!r}") from None
        if not 0 <= start < end:
            raise DataError(f"{p}, line {n}: need 0 <= start < end, got start={start}, end={end}")
        label = row[cols["label"]] if "label" in cols else ""
        events.setdefault(name, []).append(Event(start, end, str(label)))
    for evs in events.values():
        evs.sort(key=lambda e: e.start)
    return events


def window_labels(n_windows: int, framing: Framing, events: Sequence[Event], *, min_overlap: float = 0.5) -> np.ndarray:
    """Label each window from annotated events: ``(n_windows,)`` int8 of POSITIVE/NEGATIVE/IGNORE.

    A window is POSITIVE when an event covers at least ``min_overlap`` of the event's own length or of
    the window (whichever is shorter) — so a short call wholly inside a window counts; NEGATIVE when
    it overlaps no event at all; IGNORE when it only grazes an event (too little to say either way).
    """
    labels = np.full(n_windows, NEGATIVE, np.int8)
    if n_windows == 0 or not events:
        return labels
    t = framing.window_times(n_windows)  # (N, 2) seconds
    win_len = t[:, 1] - t[:, 0]  # (N,) per window: equal up to rounding, and exact for a covered window
    for ev in events:
        ov = np.minimum(t[:, 1], ev.end) - np.maximum(t[:, 0], ev.start)  # (N,) seconds of overlap
        touched = ov > 0
        enough = ov >= min_overlap * np.minimum(ev.end - ev.start, win_len)
        labels[touched & (labels != POSITIVE)] = IGNORE
        labels[enough] = POSITIVE
    return labels


@dataclass(frozen=True)
class Item:
    """One training file: where it is, how to read it and what its windows are."""

    path: str
    sample_rate: int
    channel: int
    frames: int  # samples per channel
    label: int | None = None  # file-level label (LabelRule), or None
    events: tuple[Event, ...] | None = None  # annotated events (annotation table), or None

    def window_labels(self, n_windows: int, framing: Framing, *, min_overlap: float = 0.5) -> np.ndarray:
        if self.events is not None:
            return window_labels(n_windows, framing, self.events, min_overlap=min_overlap)
        if self.label is None:
            raise DataError(f"{self.path}: has no label; give a label rule or an annotation table")
        return np.full(n_windows, self.label, np.int8)


def make_items(files: Sequence[Path], *, channel=None, rule: LabelRule | None = None,
               annotations: dict[str, list[Event]] | None = None, on_error=None) -> list[Item]:
    """Open each file's header (resolving the channel) and attach labels.

    With ``annotations``, files listed there get their events and every other file gets none
    (all its windows are negatives). Unreadable files call ``on_error(path, error)`` and are
    skipped, or raise if ``on_error`` is None.
    """
    items = []
    for f in files:
        try:
            rec = open_recording(f, channel=channel)
        except AudioError as e:
            if on_error is None:
                raise
            on_error(f, e)
            continue
        label = rule.label(f) if rule is not None else None
        events = tuple(annotations.get(Path(f).name, ())) if annotations is not None else None
        items.append(Item(str(f), rec.sample_rate, rec.channel, rec.frames, label, events))
    return items


def split_by_file(items: Sequence[Item], *, fraction: float, seed: int) -> tuple[list[Item], list[Item]]:
    """Hold out about ``fraction`` of the files (at least one of each label group where possible,
    leaving at least one of each group of two or more files for training)."""
    rng = np.random.default_rng(seed)
    groups: dict[object, list[Item]] = {}
    for it in items:
        key = it.label if it.events is None else bool(it.events)
        groups.setdefault(key, []).append(it)
    train, held = [], []
    for key in sorted(groups, key=str):
        g = list(groups[key])
        rng.shuffle(g)
        k = int(round(fraction * len(g)))
        if fraction > 0 and k == 0 and len(g) > 1:
            k = 1
        if len(g) > 1:
            k = min(k, len(g) - 1)  # and at least one stays for training
        held += g[:k]
        train += g[k:]
    return train, held


@dataclass
class FrameCache:
    """Band spectrogram frames per (file, channel, front end), stored as float16 ``.npy`` in ``root``."""

    root: Path
    frontend: FrontEnd
    _mem: dict = field(default_factory=dict, repr=False)

    def key(self, item: Item) -> str:
        st = Path(item.path).stat()
        ident = json.dumps([str(Path(item.path).resolve()), st.st_size, st.st_mtime_ns, item.channel,
                            self.frontend.to_dict()], sort_keys=True)
        return hashlib.sha1(ident.encode()).hexdigest()[:20]

    def frames(self, item: Item) -> np.ndarray:
        """``(F, B)`` frames of the item, memory-mapped float16 (computed and stored on first use)."""
        k = self.key(item)
        if k in self._mem:
            return self._mem[k]
        path = Path(self.root) / f"{k}.npy"
        if not path.exists():
            Path(self.root).mkdir(parents=True, exist_ok=True)
            framing = framing_for(self.frontend, item.sample_rate, item.path)
            total = framing.n_frames(item.frames)
            tmp = path.with_suffix(".tmp.npy")
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(total, framing.n_bins))
            n = 0
            for first, fr in iter_frames(item.path, self.frontend, channel=item.channel, sample_rate=item.sample_rate):
                m = min(fr.shape[0], total - first)  # header frame counts can overestimate (ffmpeg)
                out[first:first + m] = fr[:m]
                n = first + m
            out.flush()
            del out
            if n < total:  # decoded fewer samples than the header promised: keep what is real
                arr = np.load(tmp)[:n]
                np.save(tmp, arr)
            tmp.replace(path)
        arr = np.load(path, mmap_mode="r")
        self._mem[k] = arr
        return arr


def load_items(paths: Iterable[str | Path], *, channel=None, annotations: str | Path | None = None,
               rule: LabelRule | None = None, on_error=None) -> list[Item]:
    """``find_audio`` + ``make_items``: labelled items from paths, an optional annotation table or a name rule."""
    ann = read_annotations(annotations) if annotations else None
    items = make_items(find_audio(paths), channel=channel, rule=rule, annotations=ann, on_error=on_error)
    if ann is not None:
        names = {Path(it.path).name for it in items}
        unknown = sorted(set(ann) - names)
        if unknown and len(unknown) == len(ann):
            raise DataError(f"none of the {len(ann)} file name(s) in {annotations} is among the given audio "
                            f"files (e.g. {unknown[0]!r}); pass the folders that hold them")
    return items
