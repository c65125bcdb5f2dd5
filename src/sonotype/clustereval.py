"""``sonotype cluster-eval``: do the encoder's DTW distances group calls the way experts do?

Labelled clips (a catalog: one call per file, the type in the file name or a CSV) are embedded
three ways and compared by the same DTW and the same clustering:

* ``trained encoder`` — window-embedding sequences of the model under test;
* ``untrained encoder`` — the same architecture, randomly initialised (baseline 1);
* ``raw spectrogram`` — the normalised spectrogram frames themselves (baseline 2).

For each: leave-one-out nearest-neighbour accuracy of the DTW matrix, and NMI / ARI / purity
of average-linkage clusterings cut at the number of expert types and at the original's 45th
distance percentile and at the silhouette-best cluster count, and of HDBSCAN.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .agreement import agreement, loo_nn_accuracy
from .checkpoint import LoadedModel
from .cluster import Clustering, agglomerative, hdbscan, silhouette_cut
from .dataset import find_audio
from .dtw import dtw_matrix
from .errors import DataError
from .sequences import (
    SEQUENCE_STRIDE,
    Clip,
    ClipSequences,
    clip_sequences,
    scale_sequences,
)

#: Ford's catalogue naming in the Orcasound files: the S-number is the call type (-a/-b, -R/-RJ are variants)
DEFAULT_LABEL_PATTERN = r"S\d+"
REPRESENTATIONS = ("trained encoder", "untrained encoder", "raw spectrogram")


def label_from_name(path: str | Path, *, pattern: str = DEFAULT_LABEL_PATTERN) -> str | None:
    """The first match of ``pattern`` in the file's name (without extension), or None."""
    m = re.search(pattern, Path(path).stem)
    return m.group(0) if m else None


def read_labels(path: str | Path) -> dict[str, str]:
    """A CSV with columns ``filename,label`` -> {file name: label}."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"labels table {p} does not exist")
    rows = list(csv.DictReader(p.read_text(encoding="utf-8-sig").splitlines()))
    if not rows or not {"filename", "label"} <= set(rows[0]):
        raise DataError(f"labels table {p} needs columns 'filename' and 'label' and at least one row")
    return {Path(r["filename"]).name: r["label"] for r in rows if r.get("label")}


def labelled_clips(paths: Sequence[str | Path], *, pattern: str = DEFAULT_LABEL_PATTERN,
                   labels_csv: str | Path | None = None, channel: int = 0,
                   log: Callable[[str], None] = print) -> list[Clip]:
    """Whole-file clips with their expert labels; files without a label are reported and left out."""
    table = read_labels(labels_csv) if labels_csv else None
    clips, unlabelled = [], []
    for f in find_audio(paths):
        label = table.get(f.name) if table is not None else label_from_name(f, pattern=pattern)
        if label:
            clips.append(Clip(str(f), channel, label=label))
        else:
            unlabelled.append(f)
    if unlabelled:
        log(f"{len(unlabelled)} file(s) without a label left out, e.g. {unlabelled[0]}")
    if len(clips) < 3:
        raise DataError(f"cluster-eval needs at least 3 labelled clips, found {len(clips)} in {list(map(str, paths))}; "
                        f"labels come from the pattern {pattern!r} in file names or from --labels CSV")
    return clips


@dataclass(frozen=True)
class RepresentationResult:
    """Distances and clusterings of one representation, with their agreement scores."""

    name: str
    dist: np.ndarray = field(repr=False)
    clusterings: dict[str, Clustering] = field(repr=False)
    scores: dict[str, dict]  # clustering name -> agreement dict
    nn_accuracy: float
    nn_scored: int


@dataclass(frozen=True)
class ClusterEval:
    labels: np.ndarray
    sequences: ClipSequences = field(repr=False)
    results: dict[str, RepresentationResult]
    scaling: str = "none"

    def table_rows(self) -> list[dict]:
        rows = []
        for rep in self.results.values():
            for cname, s in rep.scores.items():
                rows.append({"representation": rep.name, "clustering": cname, "nn_accuracy": rep.nn_accuracy,
                             "nmi": s["nmi"], "ari": s["ari"], "purity": s["purity"], "n_clusters": s["n_clusters"]})
        return rows

    def to_dict(self) -> dict:
        return {"items": [c.name for c in self.sequences.clips], "labels": self.labels.tolist(), "scaling": self.scaling,
                "n_types": len(set(self.labels.tolist())), "rows": self.table_rows()}


def evaluate_representation(name: str, seqs: list[np.ndarray], labels: np.ndarray, *, band=None,
                            percentile: float = 45.0, min_cluster_size: int = 2, progress: bool = False
                            ) -> RepresentationResult:
    """DTW matrix of ``seqs``, its LOO 1-NN accuracy and three clusterings scored against ``labels``."""
    dist = dtw_matrix(seqs, band=band, progress=progress)
    n_types = len(set(labels.tolist()))
    clusterings = {
        f"agglomerative, k = {n_types} types": agglomerative(dist, n_clusters=n_types),
        f"agglomerative, {percentile:g}th percentile": agglomerative(dist, percentile=percentile),
        "agglomerative, silhouette-best k": silhouette_cut(dist),
        f"hdbscan, min size {min_cluster_size}": hdbscan(dist, min_cluster_size=min_cluster_size),
    }
    acc, scored = loo_nn_accuracy(dist, labels)
    return RepresentationResult(name, dist, clusterings,
                                {k: agreement(labels, c.labels) for k, c in clusterings.items()}, acc, scored)


def cluster_eval(clips: Sequence[Clip], model: LoadedModel, *, band=None, percentile: float = 45.0,
                 scaling: str = "zscore-l2", stride: int | None = SEQUENCE_STRIDE, seed: int = 0,
                 progress: bool = False,
                 log: Callable[[str], None] = print) -> ClusterEval:
    """Embed ``clips`` three ways (see the module doc), scale each set alike (``scaling``, see
    :func:`sonotype.sequences.scale_sequences`) and score each against the clips' labels."""
    seqs = clip_sequences(clips, model, stride=stride, untrained_seed=seed,
                          on_error=lambda c, e: log(f"skipped {c.path}: {e}"))
    labels = np.array([c.label for c in seqs.clips]).astype(str)
    reps = {"trained encoder": seqs.encoder, "untrained encoder": seqs.untrained, "raw spectrogram": seqs.frames}
    results = {name: evaluate_representation(name, scale_sequences(s, mode=scaling), labels, band=band,
                                             percentile=percentile, progress=progress)
               for name, s in reps.items()}
    return ClusterEval(labels, seqs, results, scaling)


def format_table(ev: ClusterEval) -> str:
    """A plain-text table of the scores, one line per (representation, clustering)."""
    scored = next(iter(ev.results.values())).nn_scored
    lines = [(f"{len(ev.labels)} clips, {len(set(ev.labels.tolist()))} expert types; nearest-neighbour accuracy "
              f"over the {scored} clips whose type occurs at least twice; sequences scaled: {ev.scaling}"),
             f"{'representation':<19} {'NN acc':>6}  {'clustering':<34} {'NMI':>5} {'ARI':>6} {'purity':>6} {'k':>3}"]
    for r in ev.table_rows():
        lines.append(f"{r['representation']:<19} {r['nn_accuracy']:>6.3f}  {r['clustering']:<34} {r['nmi']:>5.3f} "
                     f"{r['ari']:>6.3f} {r['purity']:>6.3f} {r['n_clusters']:>3}")
    return "\n".join(lines)
