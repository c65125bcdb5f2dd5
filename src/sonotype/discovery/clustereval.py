"""``sonotype cluster-eval``: do the encoder's DTW distances group calls the way experts do?

Labelled clips (a catalog: one call per file, the type in the file name or a CSV) are embedded
three ways and compared by the same DTW and the same clustering:

* ``trained encoder`` — window-embedding sequences of the model under test;
* ``untrained encoder`` — the same architecture, randomly initialised (baseline 1);
* ``raw spectrogram`` — the normalised spectrogram frames themselves (baseline 2).

For each: leave-one-out nearest-neighbour accuracy of the DTW matrix, and NMI / ARI / purity
of average-linkage clusterings cut at the number of expert types and at the original's 45th
distance percentile and at the silhouette-best cluster count, and of HDBSCAN.

Pooling, scaling (and a backend's speed-up) are chosen per representation either on another labelled
set (:func:`select_settings`) or by nested leave-one-out on the reported set (:func:`nested_select`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import scipy.stats

from ..audio.io import audio_info, read_audio
from ..audio.span import Span
from ..errors import DataError
from ..models.backends import Backend
from ..models.backends.lstm import LSTMBackend
from ..models.checkpoint import LoadedModel
from ..tables import read_table
from ..training.dataset import find_audio
from .agreement import agreement, loo_nn_accuracy, nn_correct
from .cluster import Clustering, agglomerative, hdbscan, silhouette_cut
from .dtw import dtw_matrix
from .sequences import SEQUENCE_STRIDE, ClipSequences, clip_sequences, scale_sequences

#: Ford's catalogue naming in the Orcasound files: the S-number is the call type (-a/-b, -R/-RJ are variants);
#: ``S01`` (catalog) and ``S_1`` (vocabulary) are the same type, so matches of this pattern become ``S1``
DEFAULT_LABEL_PATTERN = r"S_?\d+"
REPRESENTATIONS = ("trained encoder", "untrained encoder", "raw spectrogram")


def label_from_name(path: str | Path, *, pattern: str = DEFAULT_LABEL_PATTERN) -> str | None:
    """The first match of ``pattern`` in the file's name (without extension), or None (Ford's S-numbers
    under the default pattern are written ``S<n>``, without zeros or underscore)."""
    m = re.search(pattern, Path(path).stem)
    if not m:
        return None
    if pattern == DEFAULT_LABEL_PATTERN:
        return "S" + str(int(m.group(0).lstrip("S_")))
    return m.group(0)


def read_labels(path: str | Path) -> dict[str, str]:
    """A table with columns ``filename,label`` (read by the rules of :mod:`sonotype.tables`) -> {file base
    name: label}; rows with an empty label are left out."""
    table = read_table(path, what="labels table", required=("filename", "label"))
    return {row.file_name(): row["label"] for row in table.rows if row["label"]}


def labelled_clips(paths: Sequence[str | Path], *, pattern: str = DEFAULT_LABEL_PATTERN,
                   labels_csv: str | Path | None = None, channel: int = 0,
                   log: Callable[[str], None] = print) -> list[Span]:
    """Whole-file clips with their expert labels; files without a label are reported and left out."""
    table = read_labels(labels_csv) if labels_csv else None
    clips, unlabelled = [], []
    for f in find_audio(paths):
        label = table.get(f.name) if table is not None else label_from_name(f, pattern=pattern)
        if label:
            clips.append(Span(str(f), channel, label=label))
        else:
            unlabelled.append(f)
    if unlabelled:
        log(f"{len(unlabelled)} file(s) without a label left out, e.g. {unlabelled[0]}")
    if len(clips) < 3:
        raise DataError(f"cluster-eval needs at least 3 labelled clips, found {len(clips)} in {list(map(str, paths))}; "
                        f"labels come from the pattern {pattern!r} in file names or from --labels CSV")
    return clips


def loudest_chunks(clips: Sequence[Span], *, chunk_s: float = 2.0, per_file: int = 4) -> list[Span]:
    """Cut each whole-file clip into its ``per_file`` loudest non-overlapping ``chunk_s`` spans (RMS),
    each keeping the file's label: recordings of several calls of one type (``orca-calls/vocabulary``)
    become a catalog of single calls to choose settings on."""
    if not (chunk_s > 0 and isinstance(per_file, int) and per_file >= 1):
        raise DataError(f"need chunk_s > 0 and per_file >= 1, got {chunk_s!r}, {per_file!r}")
    out = []
    for c in clips:
        x, rate = read_audio(c.path, channel=c.channel, start=c.start, stop=c.stop)
        size = int(round(chunk_s * rate))
        if x.size <= size:
            out.append(replace(c, key=f"{c.name}#0"))
            continue
        hop = max(1, size // 4)
        starts = np.arange(0, x.size - size + 1, hop)
        rms = np.array([np.sqrt(np.mean(np.square(x[a:a + size], dtype=np.float64))) for a in starts])
        taken: list[int] = []
        for j in np.argsort(-rms, kind="stable"):
            a = int(starts[j])
            if all(abs(a - t) >= size for t in taken):
                taken.append(a)
            if len(taken) == per_file:
                break
        for k, a in enumerate(sorted(taken)):
            out.append(replace(c, start=c.start + a, stop=c.start + a + size, key=f"{c.name}#{k}"))
    return out


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
    pooling: str = "sequence"

    def table_rows(self) -> list[dict]:
        rows = []
        for rep in self.results.values():
            for cname, s in rep.scores.items():
                rows.append({"representation": rep.name, "clustering": cname, "nn_accuracy": rep.nn_accuracy,
                             "nmi": s["nmi"], "ari": s["ari"], "purity": s["purity"], "n_clusters": s["n_clusters"]})
        return rows

    def to_dict(self) -> dict:
        return {"items": [c.name for c in self.sequences.clips], "labels": self.labels.tolist(), "scaling": self.scaling,
                "pooling": self.pooling,
                "n_types": len(set(self.labels.tolist())), "rows": self.table_rows()}


def evaluate_representation(name: str, seqs: list[np.ndarray], labels: np.ndarray, *, band=None,
                            percentile: float = 45.0, min_cluster_size: int = 2, progress: bool = False
                            ) -> RepresentationResult:
    """DTW matrix of ``seqs``, its LOO 1-NN accuracy and three clusterings scored against ``labels``."""
    return score_distance(name, dtw_matrix(seqs, band=band, progress=progress), labels, percentile=percentile,
                          min_cluster_size=min_cluster_size)


def score_distance(name: str, dist: np.ndarray, labels: np.ndarray, *, percentile: float = 45.0,
                   min_cluster_size: int = 2) -> RepresentationResult:
    """A ready ``(N, N)`` distance matrix's LOO 1-NN accuracy and clusterings scored against ``labels``."""
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


#: how a clip's embedding sequence is compared: the whole sequence by DTW, or its mean (one vector,
#: where DTW reduces to the Euclidean distance; after ``zscore-l2`` scaling that is a cosine distance)
POOLINGS = ("sequence", "mean")


def pool_sequences(seqs: Sequence[np.ndarray], *, mode: str = "sequence") -> list[np.ndarray]:
    """``sequence``: unchanged; ``mean``: each ``(n, D)`` sequence to its mean ``(1, D)``."""
    if mode not in POOLINGS:
        raise DataError(f"unknown pooling {mode!r}; expected one of {POOLINGS}")
    return list(seqs) if mode == "sequence" else [np.asarray(s, np.float32).mean(axis=0, keepdims=True) for s in seqs]


def collection_rate(clips: Sequence[Span], model: LoadedModel) -> float | None:
    """The rate every clip is converted to for the encoder and the spectrogram baseline: the model's
    declared rate (see :mod:`sonotype.models.backends.lstm`), else, when the clips' rates differ, the most
    common one (ties: the highest); None when all share one rate and the model declares none."""
    declared = LSTMBackend(model).info.sample_rate
    if declared:
        return float(declared)
    rates = [audio_info(c.path).sample_rate for c in clips]
    if len(set(rates)) <= 1:
        return None
    values, counts = np.unique(rates, return_counts=True)
    return float(values[counts == counts.max()].max())


def representations(clips: Sequence[Span], model: LoadedModel, *, backends: Sequence[Backend] = (),
                    stride: int | None = SEQUENCE_STRIDE, seed: int = 0,
                    log: Callable[[str], None] = print) -> tuple[ClipSequences, dict[str, list[np.ndarray]]]:
    """The clips' sequences under every representation: the three of the module doc plus one per
    backend (named by its label). Clips that cannot be read are logged and left out of all."""
    rate = collection_rate(clips, model)
    seqs = clip_sequences(clips, model, stride=stride, untrained_seed=seed, sample_rate=rate,
                          on_error=lambda c, e: log(f"skipped {c.path}: {e}"))
    reps = {"trained encoder": seqs.encoder, "untrained encoder": seqs.untrained, "raw spectrogram": seqs.frames}
    for b in backends:
        reps[b.info.label] = [b.embed_span(c.path, channel=c.channel, start=c.start, stop=c.stop)
                              for c in seqs.clips]
    return seqs, reps


def evaluate_representations(reps: dict[str, list[np.ndarray]], labels: np.ndarray, *, pooling: str = "sequence",
                             scaling: str = "zscore-l2", band=None, percentile: float = 45.0,
                             progress: bool = False) -> dict[str, RepresentationResult]:
    """Pool, scale (each set alike) and score every representation against ``labels``."""
    return {name: evaluate_representation(name, scale_sequences(pool_sequences(s, mode=pooling), mode=scaling),
                                          labels, band=band, percentile=percentile, progress=progress)
            for name, s in reps.items()}


def cluster_eval(clips: Sequence[Span], model: LoadedModel, *, backends: Sequence[Backend] = (),
                 band=None, percentile: float = 45.0, scaling: str = "zscore-l2", pooling: str = "sequence",
                 stride: int | None = SEQUENCE_STRIDE, seed: int = 0, progress: bool = False,
                 log: Callable[[str], None] = print) -> ClusterEval:
    """Embed ``clips`` three ways (see the module doc) and with each backend, pool and scale each
    set alike (``pooling``, ``scaling``, see :func:`sonotype.discovery.sequences.scale_sequences`) and score
    each against the clips' labels."""
    seqs, reps = representations(clips, model, backends=backends, stride=stride, seed=seed, log=log)
    labels = np.array([c.label for c in seqs.clips]).astype(str)
    results = evaluate_representations(reps, labels, pooling=pooling, scaling=scaling, band=band,
                                       percentile=percentile, progress=progress)
    return ClusterEval(labels, seqs, results, scaling, pooling)


#: the clustering whose ARI picks settings on the selection set: the cut at the number of expert types
SELECT_CLUSTERING = "agglomerative, k = {n} types"
#: the scalings tried for every representation when settings are chosen (with :data:`POOLINGS`)
SELECT_SCALINGS = ("zscore-l2", "none")


@dataclass(frozen=True)
class Choice:
    """The setting chosen for one representation on the selection set, and its score there."""

    representation: str
    pooling: str
    scaling: str
    select_ari: float
    select_nn: float


def select_settings(reps: dict[str, list[np.ndarray]], labels: np.ndarray, *,
                    poolings: Sequence[str] = POOLINGS, scalings: Sequence[str] = SELECT_SCALINGS,
                    band=None) -> dict[str, Choice]:
    """For each representation, the (pooling, scaling) with the best ARI of the k = types cut on the
    selection set (ties: the better 1-NN accuracy, then the earlier setting)."""
    best: dict[str, Choice] = {}
    key = SELECT_CLUSTERING.format(n=len(set(labels.tolist())))
    for pooling in poolings:
        for scaling in scalings:
            for name, r in evaluate_representations(reps, labels, pooling=pooling, scaling=scaling,
                                                    band=band).items():
                c = Choice(name, pooling, scaling, float(r.scores[key]["ari"]), float(r.nn_accuracy))
                old = best.get(name)
                if old is None or (c.select_ari, np.nan_to_num(c.select_nn)) > (old.select_ari, np.nan_to_num(old.select_nn)):
                    best[name] = c
    return best


def best_variants(choices: dict[str, Choice], family: dict[str, str]) -> dict[str, Choice]:
    """Of the representations that are variants of one thing (``family``: representation -> family
    name, e.g. BirdNET played at x0.5, x1 and x2), keep the one with the best selection-set score
    (ARI, then 1-NN, then the earlier one); representations not in ``family`` are kept as they are."""
    best: dict[str, Choice] = {}
    for name, c in choices.items():
        key = family.get(name, name)
        old = best.get(key)
        if old is None or (c.select_ari, np.nan_to_num(c.select_nn)) > (old.select_ari, np.nan_to_num(old.select_nn)):
            best[key] = c
    kept = {c.representation for c in best.values()}
    return {name: c for name, c in choices.items() if name in kept}


@dataclass(frozen=True)
class Setting:
    """One candidate of nested selection: a representation (a backend's speed-up is a representation
    of its own, e.g. ``birdnet 2.4 (x0.5)``) with a pooling and a scaling."""

    representation: str
    pooling: str
    scaling: str

    def __str__(self) -> str:
        return f"{self.representation} / {self.pooling} / {self.scaling}"


def candidate_distances(reps: dict[str, list[np.ndarray]], *, poolings: Sequence[str] = POOLINGS,
                        scalings: Sequence[str] = SELECT_SCALINGS, band=None,
                        progress: bool = False) -> dict[Setting, np.ndarray]:
    """The ``(N, N)`` DTW matrix of every (representation, pooling, scaling), each computed once, in the
    order representation, pooling, scaling (the candidate order that breaks ties in nested selection)."""
    return {Setting(name, p, sc): dtw_matrix(scale_sequences(pool_sequences(seqs, mode=p), mode=sc), band=band,
                                             progress=progress)
            for name, seqs in reps.items() for p in poolings for sc in scalings}


@dataclass(frozen=True)
class NestedNN:
    """Nested leave-one-out 1-NN of one set of candidate distances (see :func:`nested_nn`)."""

    choice: np.ndarray = field(repr=False)  # (N,) int: candidate chosen without clip i
    rest_hits: np.ndarray = field(repr=False)  # (S, N) int: correct 1-NN among the other clips, per candidate
    scored: np.ndarray = field(repr=False)  # (n_scored,) int: clips whose type occurs at least twice
    hits: np.ndarray = field(repr=False)  # (n_scored,) bool: clip scored[k] classified right by its choice

    @property
    def accuracy(self) -> float:
        return float(self.hits.mean()) if self.hits.size else float("nan")


def nested_nn(dists: Sequence[np.ndarray], labels) -> NestedNN:
    """Nested leave-one-out 1-NN accuracy over candidate distance matrices ``dists`` (S of ``(N, N)``).

    For each clip i: on the other N - 1 clips, every candidate's LOO 1-NN accuracy (as
    :func:`~sonotype.discovery.agreement.nn_correct` scores it there: only clips whose type occurs at
    least twice among those N - 1, ties for nearest towards the lower index); the best candidate (ties:
    the earlier one) is i's choice; i is then classified by its nearest other clip under that candidate's
    distances, scored when its type occurs at least twice in all N (as in the plain LOO). Clip i's label
    and its distances never take part in its own choice. Index work on each candidate's two nearest
    neighbours only: O(S N^2) after one sort of each matrix.
    """
    lab = np.asarray(labels).astype(str)
    n = lab.size
    if not len(dists):
        raise DataError("nested selection needs at least one candidate distance matrix, got none")
    d = np.stack([np.asarray(x, np.float64) for x in dists])  # (S, N, N)
    if d.shape[1:] != (n, n) or n < 3:
        raise DataError(f"nested selection needs (N, N) distances with N = len(labels) = {n} >= 3, "
                        f"got {d.shape[1:]}")
    idx = np.arange(n)
    d[:, idx, idx] = np.inf
    near = np.argsort(d, axis=2, kind="stable")[:, :, :2]  # (S, N, 2): nearest and second nearest other clip
    _, inv, counts = np.unique(lab, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    cnt = counts[inv]  # (N,)
    # nearest neighbour of j once i is left out: (S, I, J)
    nn_wo = np.where(near[:, None, :, 0] == idx[None, :, None], near[:, None, :, 1], near[:, None, :, 0])
    hit = inv[nn_wo] == inv[None, None, :]  # (S, I, J)
    same = inv[:, None] == inv[None, :]  # (I, J)
    scored_rest = ((cnt[None, :] - same) >= 2) & (idx[:, None] != idx[None, :])  # (I, J): j scored without i
    rest_hits = (hit & scored_rest[None]).sum(axis=2)  # (S, I); one denominator per i, so counts compare
    choice = np.argmax(rest_hits, axis=0)  # (N,) first best
    scored = np.flatnonzero(cnt >= 2)
    hits = inv[near[choice[scored], scored, 0]] == inv[scored]
    return NestedNN(choice, rest_hits, scored, hits)


@dataclass(frozen=True)
class NestedSelection:
    """Settings of one representation (all of a backend's speed-ups together) chosen by nested
    leave-one-out on the reported set itself: the 1-NN figure, how often each setting was chosen, and
    the setting of the one clustering of all clips (the most often chosen)."""

    representation: str
    candidates: tuple[Setting, ...]
    nested: NestedNN = field(repr=False)
    clustering_setting: Setting

    @property
    def nn_accuracy(self) -> float:
        return self.nested.accuracy

    @property
    def hits(self) -> np.ndarray:
        return self.nested.hits

    def chosen_counts(self) -> dict[Setting, int]:
        """How often each candidate was chosen for a scored clip, most often first (ties: candidate order)."""
        c = np.bincount(self.nested.choice[self.nested.scored], minlength=len(self.candidates))
        return {self.candidates[k]: int(c[k]) for k in np.argsort(-c, kind="stable") if c[k]}

    def to_dict(self) -> dict:
        return {"representation": self.representation, "nn_accuracy": self.nn_accuracy,
                "nn_scored": int(self.nested.scored.size),
                "candidates": [s.__dict__ for s in self.candidates],
                "chosen": [{**s.__dict__, "times": k} for s, k in self.chosen_counts().items()],
                "clustering_setting": self.clustering_setting.__dict__}


def nested_select(candidates: dict[Setting, np.ndarray], labels: np.ndarray, *,
                  family: dict[str, str] | None = None) -> dict[str, NestedSelection]:
    """Nested selection for every representation family (``family``: representation -> reported name,
    e.g. each BirdNET speed-up -> ``birdnet 2.4``; others are their own family): :func:`nested_nn` over
    the family's candidates, and for the clustering the candidate chosen most often over the scored clips
    (ties: the earlier candidate; with no clip scored, the first candidate)."""
    family = family or {}
    groups: dict[str, list[Setting]] = {}
    for s in candidates:
        groups.setdefault(family.get(s.representation, s.representation), []).append(s)
    out = {}
    for fam, settings in groups.items():
        nn = nested_nn([candidates[s] for s in settings], labels)
        votes = np.bincount(nn.choice[nn.scored], minlength=len(settings))
        out[fam] = NestedSelection(fam, tuple(settings), nn, settings[int(np.argmax(votes))])
    return out


def score_intervals(result: RepresentationResult, labels: np.ndarray, clustering: str, *, n_boot: int = 2000,
                    level: float = 0.95, seed: int = 0, hits: np.ndarray | None = None
                    ) -> dict[str, tuple[float, float]]:
    """95 % intervals over the clips. 1-NN accuracy (a mean of per-clip hits): percentile bootstrap of
    the scored clips' hits (``hits``, ``(n_scored,)`` bool, e.g. :attr:`NestedSelection.hits`; default:
    those of ``result.dist``). NMI / ARI of ``clustering``: a delete-one-type jackknife (normal interval
    from the jackknife standard error). A bootstrap of clips would put copies of one clip in one
    cluster and inflate these pair-counting scores, so that its intervals miss the estimate itself."""
    rng = np.random.default_rng(seed)
    hits = (nn_correct(result.dist, labels) if hits is None else np.asarray(hits, bool)).astype(np.float64)
    pred = np.asarray(result.clusterings[clustering].labels)
    lab = np.asarray(labels).astype(str)
    nn = [hits[rng.integers(0, hits.size, hits.size)].mean() for _ in range(n_boot)] if hits.size else []
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    nn_iv = tuple(float(x) for x in np.percentile(nn, q)) if nn else (float("nan"), float("nan"))
    types = np.unique(lab)
    z = float(scipy.stats.norm.ppf((1 + level) / 2))
    full = agreement(lab, pred)
    out = {"nn_accuracy": nn_iv}
    for m in ("nmi", "ari"):
        loo = np.array([agreement(lab[lab != t], pred[lab != t])[m] for t in types])
        se = float(np.sqrt((types.size - 1) / types.size * np.sum((loo - loo.mean()) ** 2)))
        out[m] = (float(full[m] - z * se), float(full[m] + z * se))
    return out


def format_table(ev: ClusterEval) -> str:
    """A plain-text table of the scores, one line per (representation, clustering)."""
    scored = next(iter(ev.results.values())).nn_scored
    lines = [(f"{len(ev.labels)} clips, {len(set(ev.labels.tolist()))} expert types; nearest-neighbour accuracy "
              f"over the {scored} clips whose type occurs at least twice; sequences pooled: {ev.pooling}, scaled: {ev.scaling}"),
             f"{'representation':<19} {'NN acc':>6}  {'clustering':<34} {'NMI':>5} {'ARI':>6} {'purity':>6} {'k':>3}"]
    for r in ev.table_rows():
        lines.append(f"{r['representation']:<19} {r['nn_accuracy']:>6.3f}  {r['clustering']:<34} {r['nmi']:>5.3f} "
                     f"{r['ari']:>6.3f} {r['purity']:>6.3f} {r['n_clusters']:>3}")
    return "\n".join(lines)
