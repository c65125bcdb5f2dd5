"""Assemble one model version's folder: weights, config, figures, per-cluster audio and the report.

``<out>/<model version>/``
    ``model.pt``, ``config.json``         the checkpoint as used, and its configuration
    ``figures/*.png|svg``                 training curve, filters, detector confusion and PR curve,
                                          embedding maps, cluster galleries, recording overviews
    ``clusters/cluster-NN.wav``           each cluster's members joined by 0.1 s of silence
    ``README.md``, ``report.html``        the generated report
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..discovery.clustereval import ClusterEval
from ..discovery.sequences import overview_spectrogram, span_frames, thumbnail
from ..models.checkpoint import LoadedModel, model_version
from ..store import Store
from ..store.export import join_spans
from .figures import gallery_figure, recording_overview_figure
from .maps import embedding_map_figure, thumbnail_subset
from .model_report import (
    figures_for_checkpoint,
    figures_for_evaluation,
    report_from_checkpoint,
    write_model_report,
)


@dataclass(frozen=True)
class ReportOptions:
    """How much of a detection run goes into the report."""

    algorithm: str = "agglomerative"   # which stored clustering the maps and galleries show
    max_clusters: int = 12             # galleries and WAVs for the largest clusters
    gallery_items: int = 24
    wav_members: int = 50              # at most this many members per cluster WAV
    max_thumbnails: int = 300
    overview_recordings: int = 2
    seed: int = 0


def version_folder(out: str | Path, version: str) -> Path:
    """``out/<version>`` with characters unsafe in file names replaced."""
    return Path(out) / re.sub(r"[^A-Za-z0-9._@+-]", "_", version)


def build_model_report(model: LoadedModel, out: str | Path, *, evaluation: Mapping[str, Any] | None = None,
                       catalog: ClusterEval | None = None, store: Store | None = None, run_id: int | None = None,
                       options: ReportOptions = ReportOptions(), log: Callable[[str], None] = print) -> Path:
    """Write the model's folder (see the module doc) and return the path of its README.md."""
    version = model_version(model)
    folder = version_folder(out, version)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(model.path, folder / "model.pt")
    ck = model.checkpoint
    det = ck.detector
    (folder / "config.json").write_text(json.dumps(
        {"version": version, "kind": ck.kind, "encoder_config": ck.encoder_config.to_dict(),
         "frontend": ck.frontend.to_dict(), "train_config": ck.train_config,
         "detector": {} if det is None else {"hidden": det.hidden, "threshold": det.threshold, "config": dict(det.config)}},
        indent=2, default=str), encoding="utf-8")
    figs: dict[str, str] = dict(figures_for_checkpoint(ck, folder))
    if evaluation:
        figs.update(figures_for_evaluation(evaluation, folder))
    notes = []
    if catalog is not None:
        figs.update(_catalog_figures(catalog, folder, options))
    if store is not None and run_id is not None:
        f, n = _run_figures(store, run_id, model, folder, options, log)
        figs.update(f)
        notes += n
    rep = report_from_checkpoint(ck, version=version, evaluation=evaluation,
                                 cluster_agreement=catalog.table_rows() if catalog is not None else (),
                                 figures=figs, description=" ".join(notes))
    readme = write_model_report(folder, rep)
    log(f"model report: {readme} (and {folder / 'report.html'})")
    return readme


def _catalog_figures(ev: ClusterEval, folder: Path, options: ReportOptions) -> dict[str, str]:
    """Map and galleries of the labelled catalog, from the trained encoder's DTW distances."""
    from ..discovery.maps import embedding_map
    rep = ev.results["trained encoder"]
    name, clustering = next(iter(rep.clusterings.items()))
    coords = embedding_map(dist=rep.dist, method="tsne", seed=options.seed)
    figs = {}
    stem = folder / "figures" / "catalog-map-tsne"
    zoom = _zoom_box(coords)
    embedding_map_figure(coords, ev.sequences.thumbnails, clustering.labels, stem,
                         title=f"Labelled catalog, t-SNE of trained-encoder DTW; frames: {name}",
                         zoom=zoom, seed=options.seed)
    figs["Embedding map: labelled catalog (t-SNE)"] = "figures/catalog-map-tsne.png"
    if zoom is not None:
        figs["Embedding map: labelled catalog, zoom"] = "figures/catalog-map-tsne-zoom.png"
    for c, idx in list(clustering.members().items())[: options.max_clusters]:
        if idx.size < 2:
            continue
        stem = folder / "figures" / f"catalog-cluster-{c:02d}"
        gallery_figure([ev.sequences.thumbnails[i] for i in idx], stem, max_items=options.gallery_items,
                       labels=[f"{ev.labels[i]} {ev.sequences.clips[i].name}" for i in idx],
                       title=f"Catalog cluster {c} ({idx.size} clips; expert types: "
                             f"{', '.join(sorted(set(ev.labels[idx].tolist())))})")
        figs[f"Cluster gallery: catalog cluster {c}"] = f"figures/catalog-cluster-{c:02d}.png"
    return figs


def _zoom_box(coords: np.ndarray, *, share: float = 0.12, candidates: int = 2000) -> tuple[float, float, float, float] | None:
    """A box ``share`` of the map's extent wide around its densest spot (the point with the most
    others inside such a box; ties: the first). None for maps of fewer than 8 points."""
    if coords.shape[0] < 8:
        return None
    half = share * np.ptp(coords, axis=0) / 2 + 1e-9
    pick = coords[:: max(1, coords.shape[0] // candidates)]
    counts = [(np.abs(coords - c) <= half).all(axis=1).sum() for c in pick]
    cx, cy = pick[int(np.argmax(counts))]
    return (float(cx - half[0]), float(cx + half[0]), float(cy - half[1]), float(cy + half[1]))


def _run_figures(store: Store, run_id: int, model: LoadedModel, folder: Path, options: ReportOptions,
                 log: Callable[[str], None]) -> tuple[dict[str, str], list[str]]:
    """Maps, galleries and cluster WAVs of a detection run's stored clustering, and recording overviews."""
    figs, notes = {}, []
    regions = {r.id: r for r in store.regions(run_id=run_id)}
    recs = {rid: store.recording(rid) for rid in {r.recording_id for r in regions.values()}}
    chosen = [c for c in store.clusterings(run_id) if c["algorithm"] == options.algorithm]
    if chosen:
        params = chosen[-1]["params"]
        rows = [r for r in store.cluster_assignments(run_id=run_id, algorithm=options.algorithm) if r.params == params]
        ids = np.array([r.region_id for r in rows if r.region_id in regions], np.int64)
        labels = np.array([r.cluster for r in rows if r.region_id in regions], np.int64)

        def span_of(rid: int):
            g = regions[rid]
            rec = recs[g.recording_id]
            return g.region.span(rec.path, channel=int(rec.channel_used or 0))

        cache: dict[int, np.ndarray] = {}

        def thumb(rid: int) -> np.ndarray:  # each region's picture is computed once, when first needed
            if rid not in cache:
                cache[rid] = thumbnail(span_frames(span_of(rid), model.frontend)[0])
            return cache[rid]

        # the map draws only the thumbnail_subset it picks itself (same call, same seed); the others are unused
        show = set(thumbnail_subset(labels, options.max_thumbnails, seed=options.seed).tolist())
        thumbs = [thumb(int(rid)) if i in show else np.zeros((1, 1)) for i, rid in enumerate(ids)]
        for method in ("tsne", "umap"):
            pts = store.map_points(run_id=run_id, method=method)
            if ids.size and all(int(i) in pts for i in ids):
                coords = np.array([pts[int(i)] for i in ids])
                stem = folder / "figures" / f"regions-map-{method}"
                zoom = _zoom_box(coords)
                embedding_map_figure(coords, thumbs, labels, stem, max_thumbnails=options.max_thumbnails,
                                     seed=options.seed, zoom=zoom,
                                     title=f"Run {run_id} regions, {method}; frames: {options.algorithm} clusters "
                                           f"(sequences of {params.get('encoder', '?')})")
                figs[f"Embedding map: detected regions ({method})"] = f"figures/regions-map-{method}.png"
                if zoom is not None:
                    figs[f"Embedding map: detected regions ({method}), zoom"] = f"figures/regions-map-{method}-zoom.png"
        members = {c: ids[labels == c] for c in sorted(set(labels.tolist()) - {-1})}
        for c in list(members)[: options.max_clusters]:
            m = members[c]
            stem = folder / "figures" / f"cluster-{c:02d}"
            sub = m[: options.gallery_items]
            gallery_figure([thumb(int(i)) for i in sub], stem,
                           max_items=options.gallery_items,
                           labels=[f"{Path(recs[regions[int(i)].recording_id].path).stem} "
                                   f"{regions[int(i)].region.start_s:.1f}s" for i in sub],
                           title=f"Cluster {c}: {m.size} regions")
            figs[f"Cluster gallery: cluster {c}"] = f"figures/cluster-{c:02d}.png"
            join_spans([span_of(int(i)) for i in m[: options.wav_members]],
                       folder / "clusters" / f"cluster-{c:02d}.wav")
        notes.append(f"Per-cluster audio (members joined by 0.1 s of silence): clusters/cluster-NN.wav, "
                     f"{min(len(members), options.max_clusters)} cluster(s) of run {run_id} "
                     f"({options.algorithm}, {len(set(labels.tolist()) - {-1})} clusters over {ids.size} regions).")
    else:
        log(f"run {run_id} has no stored {options.algorithm} clustering: run `sonotype cluster` for maps and galleries")
    for rec in sorted(recs.values(), key=lambda r: r.id)[: options.overview_recordings]:
        spec, sec_per_col, freqs = overview_spectrogram(rec.path, model.frontend, channel=int(rec.channel_used or 0))
        shade = [(g.region.start_s, g.region.stop_s) for g in regions.values() if g.recording_id == rec.id]
        stem = folder / "figures" / f"overview-recording-{rec.id}"
        recording_overview_figure(spec, stem, seconds_per_frame=sec_per_col, freqs_hz=freqs, regions=shade,
                                  title=f"{Path(rec.path).name}: {len(shade)} detected regions")
        figs[f"Recording overview: {Path(rec.path).name}"] = f"figures/overview-recording-{rec.id}.png"
    return figs, notes
