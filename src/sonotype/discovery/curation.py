"""Curated labels out of the database: an annotation table that ``sonotype train-detector
--annotations`` reads, closing the loop detection -> listening -> relabelling -> a better detector.

The table (CSV) has the columns ``filename,start,end,label`` that
:func:`sonotype.training.dataset.read_annotations` reads, plus provenance columns it ignores
(``region_id,region_start,region_end,source,author,note``). Times are seconds.

How each region of the run becomes training labels:

* labelled ``vocalisation`` by a person -> an event row (``start``/``end`` = the region): its
  windows are positives;
* labelled ``noise`` -> a row with *empty* ``start``/``end`` (the reader's "annotated file, no event")
  and the region's times in ``region_start``/``region_end``: it adds no event, so the region's windows
  are negatives like every other window of an annotated file outside its events;
* not reviewed -> by default the detector's call stands (an event row, ``source=detector``); with
  ``only_reviewed`` recordings that still have unreviewed regions are left out entirely.

Every recording the run processed gets at least one row, so a recording whose regions were all
noise (or that had none) still counts as annotated, all-negative.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..store import Store, open_store

COLUMNS = ["filename", "start", "end", "label", "region_id", "region_start", "region_end", "source", "author", "note"]


@dataclass(frozen=True)
class LabelExport:
    """What :func:`write_label_table` wrote."""

    path: Path
    run_id: int
    recordings: int  # recordings in the table
    vocalisations: int  # event rows labelled by a person
    noise: int  # regions a person labelled noise (negatives)
    unreviewed: int  # regions without a label exported as the detector's vocalisation
    skipped_recordings: int  # left out because of unreviewed regions (only_reviewed)
    warnings: tuple[str, ...] = ()

    def report(self) -> str:
        lines = [f"run {self.run_id}: {self.recordings} recording(s) -> {self.path}: {self.vocalisations} "
                 f"vocalisation(s) and {self.noise} noise region(s) labelled by people, {self.unreviewed} "
                 f"unreviewed region(s) kept as the detector's vocalisations"
                 + (f", {self.skipped_recordings} recording(s) left out (not fully reviewed)"
                    if self.skipped_recordings else "")]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _clean(text: str | None) -> str:
    """One line of text (one row per line: a table that reads and diffs well line by line)."""
    return "" if text is None else " ".join(str(text).split())


def write_label_table(store: Store, out: str | Path, *, run_id: int | None = None,
                      only_reviewed: bool = False) -> LabelExport:
    """Write the curated labels of detection run ``run_id`` (default: the latest finished one) to the
    CSV ``out``; see the module docstring for the format."""
    run = store.run_or_latest(run_id)
    labels = store.region_labels(run_id=run)
    by_rec: dict[int, list] = {}
    for g in store.regions(run_id=run):
        by_rec.setdefault(g.recording_id, []).append(g)
    done = sorted({p.recording_id for p in store.processed(run_id=run, status="done")})
    rows, warnings = [], []
    counts = Counter()
    names: dict[str, list[str]] = {}
    for rid in done:
        rec = store.recording(rid)
        regions = by_rec.get(rid, [])
        if only_reviewed and (not regions or any(labels.get(g.id) is None or labels[g.id].label is None
                                                 for g in regions)):
            counts["skipped"] += 1
            continue
        names.setdefault(rec.path, []).append(str(rec.id))
        mine = []
        for g in regions:
            lab = labels.get(g.id)
            label = lab.label if lab is not None else None
            a, b = g.region.start_s, g.region.stop_s
            if not 0 <= a < b:
                warnings.append(f"region {g.id} of {rec.path} is empty ({a:.6f}-{b:.6f} s); left out")
                continue
            base = {"filename": rec.path, "region_id": g.id, "region_start": f"{a:.6f}", "region_end": f"{b:.6f}",
                    "author": _clean(lab.author if lab else None), "note": _clean(lab.note if lab else None)}
            if label == "noise":
                mine.append({**base, "start": "", "end": "", "label": "noise", "source": "curated"})
                counts["noise"] += 1
            else:
                curated = label == "vocalisation"
                mine.append({**base, "start": f"{a:.6f}", "end": f"{b:.6f}", "label": "vocalisation",
                             "source": "curated" if curated else "detector"})
                counts["vocalisation" if curated else "unreviewed"] += 1
        rows += mine or [{"filename": rec.path, "start": "", "end": "", "label": "", "source": "detector"}]
        counts["recordings"] += 1
    for path, ids in sorted(names.items()):  # the table names files by full path: only one path can clash
        if len(ids) > 1:
            warnings.append(f"{len(ids)} recordings (ids {', '.join(ids[:3])}) were read from the same path {path!r} "
                            "with different contents (the file changed between runs), so their labels would mix: "
                            "export their runs separately")
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return LabelExport(p, run, counts["recordings"], counts["vocalisation"], counts["noise"], counts["unreviewed"],
                       counts["skipped"], tuple(warnings))


def export_labels(*, db: str, out: str | Path, run_id: int | None = None, only_reviewed: bool = False,
                  log: Callable[[str], None] = print) -> LabelExport:
    """``sonotype export-labels``: open ``db``, write the label table, print what was written."""
    with open_store(db, read_only=True) as store:
        result = write_label_table(store, out, run_id=run_id, only_reviewed=only_reviewed)
    log(result.report())
    return result
