"""Regions -> stored embedding sequences -> clusterings and maps in the store; search by example."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import RMSBackend, birdnet_or_skip, detected_store

from sonotype.audio.io import read_audio
from sonotype.cli import main as cli_main
from sonotype.discovery.discover import DiscoverConfig, discover
from sonotype.discovery.dtw import dtw_distance
from sonotype.discovery.search import SequenceIndex, similar_regions
from sonotype.discovery.sequences import region_sequences, scale_sequences, sequence_key
from sonotype.errors import ConfigError, DataError
from sonotype.models.checkpoint import load_model, model_version
from sonotype.models.embed import file_embeddings
from sonotype.store import open_store


@pytest.fixture(scope="module")
def detected(tmp_path_factory):
    """A SQLite store with regions detected by the placeholder model in three synthetic files."""
    return detected_store(tmp_path_factory.mktemp("disc"), files=3)


def test_region_sequences_are_the_detectors_own_windows_and_are_stored_once(detected, monkeypatch):
    url, model_path, _ = detected
    m = load_model(model_path)
    with open_store(url) as s:
        run = s.regions()[0].run_id
        seqs = region_sequences(s, run, m, stride=None, log=lambda x: None)
        rows = s.regions(run_id=run)
        assert len(rows) >= 6 and sorted(seqs) == sorted(r.id for r in rows)
        by_rec = {}
        for r in rows:
            rec = s.recording(r.recording_id)
            if rec.path not in by_rec:
                by_rec[rec.path] = file_embeddings(m.encoder, rec.path, m.frontend, channel=0, sample_rate=48000)
            want = by_rec[rec.path][r.region.first_window:r.region.first_window + r.region.n_windows]
            assert np.allclose(seqs[r.id], want, atol=1e-5)
        assert sorted(s.sequences(sequence_key(m, None))) == sorted(seqs)
        # stored: a second call computes nothing
        import sonotype.discovery.sequences as sq
        monkeypatch.setattr(sq, "embed_windows", lambda *a, **k: pytest.fail("re-ran the encoder"))
        again = region_sequences(s, run, m, stride=None)
        assert all(np.array_equal(again[k], seqs[k]) for k in seqs)


def test_region_sequences_under_a_backend_are_its_embeddings_of_the_span(detected):
    url, model_path, _ = detected
    m, b = load_model(model_path), RMSBackend()
    with open_store(url) as s:
        run = s.regions()[0].run_id
        seqs = region_sequences(s, run, m, backend=b, log=lambda x: None)
        rows = s.regions(run_id=run)
        assert sorted(seqs) == sorted(r.id for r in rows)
        r = rows[0]
        rec = s.recording(r.recording_id)
        x, rate = read_audio(rec.path)
        # the region's span (its detector windows), converted to the backend's 8 kHz, chunked
        a, z = r.region.start, r.region.stop
        assert np.allclose(seqs[r.id], b.embed(x[a:z], rate), atol=1e-4)
        assert sorted(s.sequences(b.info.key)) == sorted(seqs)  # stored under the backend's key


def test_cli_cluster_with_the_birdnet_backend_stores_its_sequences(tmp_path):
    birdnet_or_skip()
    url, model_path, _ = detected_store(tmp_path, files=2)
    assert cli_main(["cluster", "--db", url, "--backend", "birdnet", "--hop", "1.0", "--map", "tsne", "--quiet"]) == 0
    with open_store(url) as s:
        run = s.regions()[0].run_id
        params = [c["params"] for c in s.clusterings(run)]
        assert any(p["encoder"] == "birdnet@2.4/hop1" for p in params)
        seqs = s.sequences("birdnet@2.4/hop1")
        assert len(seqs) == len(s.regions(run_id=run))
        assert all(v.shape[1] == 1024 and np.isfinite(v).all() for v in seqs.values())
    with pytest.raises(ConfigError, match="unknown backend 'vggish'"):
        DiscoverConfig(backend="vggish")


def test_discover_stores_clusterings_and_maps(detected):
    url, model_path, _ = detected
    m = load_model(model_path)
    with open_store(url) as s:
        run = s.regions()[0].run_id
        cfg = DiscoverConfig(algorithms=("agglomerative", "kmeans", "hdbscan"), k=4, min_cluster_size=2,
                             maps=("tsne", "umap"))
        res = discover(s, run, m, config=cfg, log=lambda x: None)
        n = len(res.region_ids)
        assert res.dist.shape == (n, n)
        names = {c["algorithm"] for c in s.clusterings(run)}
        assert names == {"agglomerative", "kmeans", "hdbscan"}
        for c in res.clusterings.values():
            rows = s.cluster_assignments(run_id=run, algorithm=c.algorithm)
            got = {r.region_id: r.cluster for r in rows}
            assert got == dict(zip(res.region_ids.tolist(), c.labels.tolist()))
            assert rows[0].params["encoder"] == sequence_key(m) == f"{model_version(m)}/stride4"
        for method in ("tsne", "umap"):
            pts = s.map_points(run_id=run, method=method)
            assert sorted(pts) == sorted(res.region_ids.tolist())
            assert np.allclose([pts[i] for i in res.region_ids.tolist()], res.maps[method])


def test_graph_path_for_many_regions_gives_a_clustering(detected):
    url, model_path, _ = detected
    with open_store(url) as s:
        run = s.regions()[0].run_id
        cfg = DiscoverConfig(algorithms=("agglomerative",), max_full=2, knn=2, candidates=3, maps=("tsne",))
        res = discover(s, run, load_model(model_path), config=cfg, log=lambda x: None)
        assert res.dist is None and res.clusterings["agglomerative"].params["graph"] == "knn"
        assert 1 <= res.clusterings["agglomerative"].n_clusters <= len(res.region_ids)


def test_silhouette_cut_is_stored_with_its_parameters(detected):
    url, model_path, _ = detected
    with open_store(url) as s:
        run = s.regions()[0].run_id
        cfg = DiscoverConfig(algorithms=("agglomerative",), cut="silhouette", maps=())
        res = discover(s, run, load_model(model_path), config=cfg, log=lambda x: None)
        c = res.clusterings["agglomerative"]
        assert c.params["cut"] == "silhouette" and c.n_clusters == c.params["n_clusters"] >= 1
        [row] = [x for x in s.clusterings(run) if x["params"].get("cut") == "silhouette"]
        assert row["n_clusters"] == c.n_clusters
    with pytest.raises(ConfigError, match="cut"):
        DiscoverConfig(cut="elbow")


def test_discover_refuses_unknown_runs_and_algorithms(detected):
    url, model_path, _ = detected
    with pytest.raises(ConfigError, match="spectral"):
        DiscoverConfig(algorithms=("spectral",))
    with open_store(url) as s, pytest.raises(DataError, match="no detection run 999"):
        discover(s, 999, load_model(model_path))


def test_search_by_example_reranks_by_exact_dtw(detected):
    url, model_path, _ = detected
    m = load_model(model_path)
    with open_store(url) as s:
        run = s.regions()[0].run_id
        seqs = region_sequences(s, run, m)
        q = min(seqs)
        got = similar_regions(s, q, k=3, n_candidates=1000)
        ids = sorted(seqs)
        scaled = dict(zip(ids, scale_sequences([seqs[i] for i in ids])))
        brute = sorted(((rid, dtw_distance(scaled[q], v)) for rid, v in scaled.items() if rid != q),
                       key=lambda t: (t[1], t[0]))[:3]
        assert [g[0] for g in got] == [b[0] for b in brute]
        assert np.allclose([g[1] for g in got], [b[1] for b in brute])
        with pytest.raises(DataError, match="no stored embedding"):
            similar_regions(s, 10 ** 9)


def test_scalings():
    rng = np.random.default_rng(2)
    seqs = [rng.normal(size=(int(rng.integers(1, 6)), 5)) * [1, 10, 100, 1, 1] + 3 for _ in range(6)]
    z = np.concatenate(scale_sequences(seqs, mode="zscore"))
    assert np.allclose(z.mean(0), 0, atol=1e-5) and np.allclose(z.std(0), 1, atol=1e-3)
    zl2 = scale_sequences(seqs)
    assert [a.shape for a in zl2] == [a.shape for a in seqs]
    assert np.allclose(np.linalg.norm(np.concatenate(zl2), axis=1), 1, atol=1e-4)
    assert np.array_equal(scale_sequences(seqs, mode="none")[0], seqs[0].astype(np.float32))
    with pytest.raises(ConfigError, match="scaling"):
        scale_sequences(seqs, mode="pca")


def test_sequence_index_candidates_come_from_mean_embeddings():
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(4, 8)) + 10 * (i % 2) for i in range(20)]
    ix = SequenceIndex(np.arange(20) + 100, seqs)
    hits = ix.similar(seqs[0], k=5, n_candidates=9, exclude=100)
    assert len(hits) == 5 and all((rid - 100) % 2 == 0 for rid, _ in hits)
    with pytest.raises(ConfigError):
        ix.similar(seqs[0], k=0)


def test_cli_cluster_and_search(detected, tmp_path, capsys):
    url = detected[0]
    assert cli_main(["cluster", "--db", url, "--quiet"]) == 0  # the defaults: the run's own model, both maps
    with open_store(url) as s:
        run = s.regions()[0].run_id
        assert {"agglomerative", "kmeans"} <= {c["algorithm"] for c in s.clusterings(run)}
        assert s.map_points(run_id=run, method="umap")
        rid = s.regions(run_id=run)[0].id
    assert cli_main(["search", str(rid), "--db", url, "--k", "2"]) == 0
    assert capsys.readouterr().out.count("DTW") == 2
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    assert cli_main(["cluster", "--db", empty, "--quiet"]) == 2  # a typo'd --db creates nothing
    assert "no such database file" in capsys.readouterr().err and not (tmp_path / "empty.db").exists()
    open_store(empty).close()
    assert cli_main(["cluster", "--db", empty, "--quiet"]) == 2
    assert "no finished detection run" in capsys.readouterr().err


def test_cli_runs_lists_each_run_with_its_counts(detected, tmp_path, capsys):
    url, _, wavs = detected
    out = tmp_path / "runs.json"
    assert cli_main(["runs", "--db", url, "--json", str(out)]) == 0
    import json
    doc = json.loads(out.read_text())
    with open_store(url) as s:
        run = s.regions()[0].run_id
        assert [r["run"] for r in doc["runs"]] == [r.id for r in s.runs()]
        row = next(r for r in doc["runs"] if r["run"] == run)
        assert row["done"] == len(wavs) and row["regions"] == len(s.regions(run_id=run))
    assert f"run {run:>3}" in capsys.readouterr().out
    missing = tmp_path / "none.db"
    assert cli_main(["runs", "--db", f"sqlite:///{missing}"]) == 2 and not missing.exists()
