"""Training data: finding files, labels (file rules and annotation tables), splits, a frame cache.

A training corpus is a list of :class:`Item` (one audio file with its resolved channel, sample
rate and, for the detector, a file label or the annotated events inside it). Spectrogram frames
of each file are computed once, streamed, and kept on disk (``.npy``, float16) so that training
over corpora larger than memory samples windows from memory-mapped arrays.

(Over 400 lines: file finding, label rules, annotation tables, splits and the frame cache are read together by
every training entry point.)
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence

import numpy as np

from ..audio.io import open_recording
from ..errors import AudioError, DataError
from ..features.frontend import Framing, FrontEnd, WindowGrid, framing_for, iter_frames
from ..tables import read_table

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".aif", ".aiff", ".opus", ".wma", ".mp4")

#: window label values
POSITIVE, NEGATIVE, IGNORE = 1, 0, -1


def find_audio(paths: Iterable[str | Path], *, extensions: Sequence[str] = AUDIO_EXTENSIONS,
               warn=None) -> list[Path]:
    """Expand files, folders (recursive), glob patterns and ``@list.txt`` file lists into audio files.

    The result is sorted and free of duplicates: one file reached under two spellings (``kill/x.wav``,
    ``/abs/kill/x.wav``, ``./kill/../kill/x.wav``, a symlink) is listed once, under the first spelling
    met. A path that matches nothing raises :class:`DataError`. ``warn(path, problem)``, if given, hears
    of what is passed over: folders holding no audio file, dangling or looping symlinks, symlinked
    folders (not followed).
    """
    found: dict[str, Path] = {}
    for f in _find_audio(paths, extensions=extensions, warn=warn):
        found.setdefault(canonical_path(f), f)
    return sorted(found.values())


def canonical_path(path: str | Path) -> str:
    """The one spelling of a file's path: absolute, normalised, symlinks resolved (where resolvable)."""
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):  # a symlink loop: keep the absolute, normalised spelling
        return os.path.abspath(path)


def _find_audio(paths: Iterable[str | Path], *, extensions: Sequence[str], warn=None) -> set[Path]:
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
            found.update(_find_audio([p if Path(p).is_absolute() else base / p
                                      for p in lines if _listed(p)], extensions=extensions, warn=warn))
            continue
        p = Path(s)
        if p.is_dir():
            inside = {f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts}
            if warn is not None:
                _passed_over(p, exts, warn, empty=not inside)
            found.update(inside)
        elif p.is_file():
            found.add(p)
        elif any(ch in s for ch in "*?["):
            found.update(Path(m) for m in glob.glob(s, recursive=True)
                         if Path(m).is_file() and Path(m).suffix.lower() in exts)
        else:
            raise DataError(f"{s}: no such file, folder or glob match; expected audio files or folders of them")
    return found


def _passed_over(folder: Path, exts: tuple[str, ...], warn, *, empty: bool) -> None:
    """Tell ``warn`` of the symlinks under ``folder`` that lead nowhere, and whether it held no audio."""
    for f in folder.rglob("*"):
        if not f.is_symlink():
            continue
        try:
            target = f.resolve(strict=True)
        except RuntimeError:
            warn(f, "symlink loop: skipped")
            continue
        except OSError as e:
            if "loop" in str(e).lower() or getattr(e, "errno", None) == 40:
                warn(f, "symlink loop: skipped")
            elif f.suffix.lower() in exts or not f.suffix:
                warn(f, f"dangling symlink to {os.readlink(f)!r} (no such file): skipped")
            continue
        if target.is_dir():
            here = f.parent.resolve()
            if target == here or target in here.parents:
                warn(f, f"symlink loop (leads back to {str(target)!r}): not followed")
            else:
                warn(f, "symlinked folder: not followed (pass it as its own argument to include it)")
    if empty:
        warn(folder, "folder holds no audio file (" + ", ".join(sorted({e.lstrip('.') for e in exts})[:6]) + ", ...)")


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


def read_annotations(path: str | Path, *, keep_paths: bool = False) -> dict[str, list[Event]]:
    """Annotation table (columns ``filename,start,end`` and optionally ``label``; read by the rules of
    :mod:`sonotype.tables`) -> events per file *base name* (``keep_paths``: per file name as written,
    folders kept, for :func:`match_annotations`). Times are seconds from the start of the file; a row
    with empty start and end lists a file that was annotated and holds no event."""
    table = read_table(path, what="annotation table", required=("filename", "start", "end"), optional=("label",),
                       units="start and end in seconds from the start of the file")
    events: dict[str, list[Event]] = {}
    for row in table.rows:
        name = row.file_name("filename", keep_paths=keep_paths)
        if not row["start"] and not row["end"]:
            events.setdefault(name, [])  # listed with no times: annotated, holds no event
            continue
        start, end = row.number("start", expected="seconds"), row.number("end", expected="seconds")
        if not 0 <= start < end:
            raise DataError(f"{row.where}: need 0 <= start < end, got start={start}, end={end}")
        events.setdefault(name, []).append(Event(start, end, row["label"]))
    for evs in events.values():
        evs.sort(key=lambda e: e.start)
    return events


def _parts(path: str | Path) -> tuple[str, ...]:
    return tuple(PurePosixPath(str(path).replace("\\", "/")).parts)


def _common_tail(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


@dataclass(frozen=True)
class AnnotationMatch:
    """Which file each name of an annotation table stands for (:func:`match_annotations`)."""

    events: dict  # file key -> its events (sorted), for the files some table name matched
    names: dict  # table name -> the file key it matched
    unmatched: tuple[str, ...]  # table names that match no file
    unannotated: tuple  # file keys that no table name matches


def match_annotations(annotations: dict[str, list[Event]], files: dict) -> AnnotationMatch:
    """Match the names of an annotation table (:func:`read_annotations` with ``keep_paths``) to files.

    ``files`` maps a key (a path, a recording id) to the path(s) of that file. A name matches by its
    base name when exactly one file has that base name and no other name in the table shares it;
    otherwise the folders written in the name must single out one file (``site1/0001.wav`` against
    ``site1/0001.wav`` and ``site2/0001.wav``). Two files that share a base name are never merged:
    a name that fits both raises :class:`DataError`.
    """
    by_base: dict[str, list[tuple[object, list[tuple[str, ...]]]]] = {}
    for key, paths in files.items():
        spellings = [paths] if isinstance(paths, (str, Path)) else list(paths)
        tails = {_parts(p) for p in spellings} | {_parts(canonical_path(p)) for p in spellings}
        for base in {t[-1] for t in tails if t}:
            by_base.setdefault(base, []).append((key, [t for t in tails if t and t[-1] == base]))
    names_per_base: dict[str, int] = {}
    for name in annotations:
        names_per_base[PurePosixPath(name).name] = names_per_base.get(PurePosixPath(name).name, 0) + 1
    events: dict = {}
    matched: dict = {}
    unmatched = []
    for name, evs in annotations.items():
        base, want = PurePosixPath(name).name, _parts(name)
        cands = by_base.get(base, [])
        if len(cands) == 1 and names_per_base[base] == 1:
            key = cands[0][0]
        else:
            score = {k: max(_common_tail(want, t) for t in tails) for k, tails in cands}
            best = max(score.values(), default=0)
            top = [k for k, v in score.items() if v == best]
            if best < 2 or len(top) > 1:
                if len(cands) > 1 and (best < 2 or len(top) > 1):
                    shown = sorted(str(files[k] if isinstance(files[k], (str, Path)) else list(files[k])[0])
                                   for k, _ in cands)
                    raise DataError(f"annotation file name {name!r} fits {len(cands)} different files "
                                    f"({', '.join(shown[:4])}); their events would mix: write the folders "
                                    "that tell them apart in the table's filename column (e.g. "
                                    f"{'/'.join(_parts(shown[0])[-2:])!r})")
                unmatched.append(name)
                continue
            key = top[0]
        matched[name] = key
        events.setdefault(key, []).extend(evs)
    for evs in events.values():
        evs.sort(key=lambda e: e.start)
    unannotated = tuple(k for k in files if k not in events)
    return AnnotationMatch(events, matched, tuple(unmatched), unannotated)


def window_labels(n_windows: int, framing: Framing | WindowGrid, events: Sequence[Event], *,
                  min_overlap: float = 0.5) -> np.ndarray:
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


def span_labels(n_windows: int, *, window_s: float, hop_s: float, events: Sequence[Event],
                min_overlap: float = 0.5) -> np.ndarray:
    """:func:`window_labels` of ``n_windows`` windows of ``window_s`` seconds every ``hop_s`` seconds from the
    start of the recording (an embedding backend's grid, in seconds of the recording)."""
    return window_labels(n_windows, WindowGrid(1.0, float(window_s), float(hop_s)), events, min_overlap=min_overlap)


@dataclass(frozen=True)
class Item:
    """One training file: where it is, how to read it and what its windows are."""

    path: str
    sample_rate: int
    channel: int
    frames: int  # samples per channel
    label: int | None = None  # file-level label (LabelRule), or None
    events: tuple[Event, ...] | None = None  # annotated events (annotation table), or None

    def window_labels(self, n_windows: int, framing: Framing | WindowGrid, *, min_overlap: float = 0.5) -> np.ndarray:
        if self.events is not None:
            return window_labels(n_windows, framing, self.events, min_overlap=min_overlap)
        if self.label is None:
            raise DataError(f"{self.path}: has no label; give a label rule or an annotation table")
        return np.full(n_windows, self.label, np.int8)


def make_items(files: Sequence[Path], *, channel=None, rule: LabelRule | None = None,
               annotations: dict[str, list[Event]] | None = None, on_error=None) -> list[Item]:
    """Open each file's header (resolving the channel) and attach labels.

    With ``annotations`` (names as :func:`match_annotations` matches them), files listed there get
    their events and every other file gets none (all its windows are negatives). Unreadable files
    call ``on_error(path, error)`` and are skipped, or raise if ``on_error`` is None.
    """
    matched = match_annotations(annotations, {str(f): f for f in files}).events if annotations is not None else {}
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
        events = tuple(matched.get(str(f), ())) if annotations is not None else None
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
               rule: LabelRule | None = None, on_error=None, allow_unmatched: bool = False,
               log=None) -> list[Item]:
    """``find_audio`` + ``make_items``: labelled items from paths, an optional annotation table or a name rule.

    Every file name of the annotation table must match one of the files found (else its events
    would be dropped and that file's calls taught as noise): a name that matches none raises
    :class:`DataError` naming it, unless ``allow_unmatched`` (then ``log`` is told and the rows are
    left out). Files found but absent from the table are annotated as holding no event (``log`` lists them).
    """
    files = find_audio(paths)
    ann = read_annotations(annotations, keep_paths=True) if annotations else None
    if ann is not None:
        m = match_annotations(ann, {str(f): f for f in files})
        check_unmatched(m.unmatched, table=annotations, total=len(ann), against="the given audio files",
                        allow=allow_unmatched, log=log)
        if m.unannotated and log is not None:
            log(f"warning: {len(m.unannotated)} file(s) are not in {annotations} and count as holding no event "
                f"(all windows noise): {_listing(m.unannotated)}")
    return make_items(files, channel=channel, rule=rule, annotations=ann, on_error=on_error)


def _listing(names, limit: int = 10) -> str:
    names = [str(n) for n in names]
    return ", ".join(repr(n) for n in names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_unmatched(unmatched: Sequence[str], *, table, total: int, against: str, allow: bool, log=None) -> None:
    """Refuse an annotation table with names that match nothing: all of them always, some of them
    unless ``allow`` (then ``log`` names them)."""
    if not unmatched:
        return
    if len(unmatched) == total:
        raise DataError(f"none of the {total} file name(s) in {table} matches {against} "
                        f"({_listing(sorted(unmatched), 5)}); check the filename column, or pass the folders "
                        "that hold those files")
    if not allow:
        raise DataError(f"{len(unmatched)} of the {total} file name(s) in {table} match none of {against}: "
                        f"{_listing(sorted(unmatched))}; their events would be dropped. Fix the names (or pass "
                        "the files), or add --allow-unmatched to go on without them")
    if log is not None:
        log(f"warning: {len(unmatched)} file name(s) in {table} match none of {against} and are left out: "
            f"{_listing(sorted(unmatched))}")
