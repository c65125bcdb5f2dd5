"""The web application's JSON API, audio and pictures, and curation, over a real database filled by the
real detector pipeline (placeholder model) on synthetic recordings."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from PIL import Image
from web_helpers import ALGORITHM, PARAMS, cached_web_db

from sonotype.cli import main as cli_main
from sonotype.detection.regions import Region
from sonotype.discovery.curation import write_label_table
from sonotype.errors import DataError
from sonotype.features.frontend import PRESETS
from sonotype.store import NotFound, open_store
from sonotype.training.dataset import NEGATIVE, POSITIVE, load_items, read_annotations
from sonotype.web import Limits, create_app

TOKEN = "s3cret-token"
AUTH = {"X-Sonotype-Token": TOKEN}


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    return cached_web_db(tmp_path_factory)


@pytest.fixture(scope="module")
def store(web):
    with open_store(web.url) as st:
        yield st


@pytest.fixture(scope="module")
def client(store):
    return TestClient(create_app(store))  # read-only: nothing here can change the shared database


@pytest.fixture
def editor(web, tmp_path):
    """(client with the edit token, its store) over a private copy of the database."""
    with open_store(web.copy(tmp_path)) as st:
        yield TestClient(create_app(st, edit_token=TOKEN)), st


def _recording(store, name):
    return next(r for r in store.recordings() if r.path.endswith(name))


def _source(path, start, stop):
    x, _ = sf.read(path, dtype="float32", start=start, stop=stop)
    return x


def _wav(body: bytes):
    x, sr = sf.read(io.BytesIO(body), dtype="float32")
    return x, sr, sf.info(io.BytesIO(body)).subtype


# ---------------------------------------------------------------------------- listings


def test_info_and_openapi_document_every_endpoint(client):
    assert client.get("/api/info").json()["editing"] is False
    spec = client.get("/openapi.json").json()
    for path in ("/api/recordings", "/api/recordings/{recording_id}", "/api/recordings/{recording_id}/regions",
                 "/api/recordings/{recording_id}/audio.wav", "/api/recordings/{recording_id}/spectrogram.png",
                 "/api/regions/{region_id}/audio.wav", "/api/regions/{region_id}/spectrogram.png",
                 "/api/regions/{region_id}/similar", "/api/clusterings", "/api/clusterings/{cid}",
                 "/api/runs/{run_id}/map", "/api/regions/{region_id}/label", "/api/clusterings/{cid}/merge",
                 "/api/clusterings/{cid}/clusters/{cluster}/split", "/api/clusterings/{cid}/clusters/{cluster}/name"):
        assert path in spec["paths"], path
    assert client.get("/docs").status_code == 200
    page = client.get("/api-docs")
    assert page.status_code == 200 and "/api/regions/{region_id}/audio.wav" in page.text


def test_recordings_filter_by_metadata_and_path(client):
    rows = client.get("/api/recordings").json()
    assert [r["name"] for r in rows] == ["a.wav", "b.wav", "c24.wav"]
    assert all(r["n_regions"] >= 1 and r["latest_run_id"] == 1 for r in rows)
    names = lambda q: [r["name"] for r in client.get("/api/recordings" + q).json()]
    assert names("?encounter=E2") == ["b.wav", "c24.wav"]
    assert names("?site=Bimini&encounter=E2") == ["b.wav"]
    assert names("?date_from=2019-10-29") == ["b.wav", "c24.wav"]
    assert names("?date_to=2019-10-28") == ["a.wav"]
    assert names("?date_from=2020-06-01&date_to=2020-06-01") == ["c24.wav"]  # a bare date_to covers its day
    assert names("?q=c24") == ["c24.wav"] and names("?q=%25") == []  # % is literal, not a wildcard
    assert names("?limit=1&offset=1") == ["b.wav"]
    assert client.get("/api/recordings?limit=100000").status_code == 422
    assert client.get("/api/recordings/1").json()["name"] == "a.wav"
    assert client.get("/api/recordings/999").status_code == 404


def test_regions_of_a_recording_with_scores(client, store, web):
    rec = _recording(store, "b.wav")
    body = client.get(f"/api/recordings/{rec.id}/regions").json()
    want = store.regions(recording_id=rec.id, run_id=web.run_id)
    assert body["run_id"] == web.run_id and body["band_hz"] == [2000.0, 24000.0]
    assert [g["id"] for g in body["regions"]] == [g.id for g in want]
    g0 = body["regions"][0]
    assert g0["start_sample"] == want[0].region.start and g0["peak_score"] == pytest.approx(want[0].region.peak_score)
    assert g0["label"] is None
    assert client.get(f"/api/recordings/{rec.id}/regions?run_id={web.run_id}").json() == body
    assert client.get(f"/api/recordings/{rec.id}/regions?run_id=77").status_code == 404
    detail = client.get(f"/api/regions/{g0['id']}").json()
    assert detail["recording"]["id"] == rec.id and detail["clusters"][0]["algorithm"] == ALGORITHM
    assert client.get("/api/regions/123456").status_code == 404


def test_the_region_schema_is_built_from_the_domain_types(client):
    """Every field of the domain Region (and the ids of RegionRow) is in the API's Region, with its type,
    so a field added to Region reaches the schema and the JSON without being written again."""
    from dataclasses import dataclass, fields
    from typing import get_type_hints

    from sonotype.store import RegionRow
    from sonotype.web import schemas as S
    from sonotype.web.api import region_json
    api, hints = S.Region.model_fields, get_type_hints(Region)
    for f in fields(Region):
        name = S.REGION_NAMES.get(f.name, f.name)
        assert name in api and api[name].annotation is hints[f.name], f.name
    assert {"id", "recording_id", "run_id", "start_s", "stop_s"} <= set(api)
    assert list(api)[-4:] == list(S.REGION_LABEL_FIELDS)  # the label comes last, as the web page shows it

    @dataclass(frozen=True)
    class Wider(Region):
        channel_rms: float = 0.0

    assert S.region_fields(Wider) == {**S.region_fields(), "channel_rms": float}
    row = RegionRow(9, 4, 2, Region(800, 2400, 8000.0, 0.875, 0.5, 3, 5))
    body = region_json(row)
    assert list(body) == list(api) and S.Region.model_validate(body).model_dump() == body
    assert (body["start_sample"], body["stop_sample"], body["start_s"], body["stop_s"]) == (800, 2400, 0.1, 0.3)
    spec = client.get("/openapi.json").json()["components"]["schemas"]["Region"]
    assert list(spec["properties"]) == list(api) and set(spec["required"]) == set(S.region_fields())


# ---------------------------------------------------------------------------- audio


@pytest.mark.parametrize("name,subtype", [("a.wav", "PCM_16"), ("c24.wav", "FLOAT")])
def test_region_wav_holds_exactly_the_source_samples(client, store, web, name, subtype):
    rec = _recording(store, name)
    for g in store.regions(recording_id=rec.id, run_id=web.run_id):
        r = client.get(f"/api/regions/{g.id}/audio.wav")
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
        x, sr, st = _wav(r.content)
        assert sr == 48000 and st == subtype
        np.testing.assert_array_equal(x, _source(rec.path, g.region.start, g.region.stop))
    g = store.regions(recording_id=rec.id, run_id=web.run_id)[0]
    x, _, _ = _wav(client.get(f"/api/regions/{g.id}/audio.wav?pad=0.1").content)
    a, b = max(0, g.region.start - 4800), min(rec.frames, g.region.stop + 4800)
    np.testing.assert_array_equal(x, _source(rec.path, a, b))


def test_recording_span_and_range_requests(client, store):
    rec = _recording(store, "a.wav")
    url = f"/api/recordings/{rec.id}/audio.wav?start=1&stop=2.5"
    full = client.get(url)
    assert full.status_code == 200 and full.headers["accept-ranges"] == "bytes"
    x, _, _ = _wav(full.content)
    np.testing.assert_array_equal(x, _source(rec.path, 48000, 120000))
    body, n = full.content, len(full.content)
    assert n == 44 + 2 * 72000 and int(full.headers["content-length"]) == n
    for first, last in [(0, 43), (10, 99), (44, 45), (45, 46), (1001, 50000), (n - 5, n - 1), (0, n - 1)]:
        r = client.get(url, headers={"Range": f"bytes={first}-{last}"})
        assert r.status_code == 206, (first, last)
        assert r.headers["content-range"] == f"bytes {first}-{last}/{n}"
        assert r.content == body[first:last + 1], (first, last)
    r = client.get(url, headers={"Range": "bytes=-100"})
    assert r.status_code == 206 and r.content == body[-100:]
    r = client.get(url, headers={"Range": "bytes=500-"})
    assert r.status_code == 206 and r.content == body[500:]
    r = client.get(url, headers={"Range": f"bytes={n}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{n}"
    for ignored in ("bytes=abc", "bytes=0-1,5-6", "items=0-5", "bytes=9-3"):
        r = client.get(url, headers={"Range": ignored})
        assert r.status_code == 200 and r.content == body, ignored
    h = client.head(url)
    assert h.status_code == 200 and h.headers["content-length"] == str(n) and h.content == b""
    whole, _, _ = _wav(client.get(f"/api/recordings/{rec.id}/audio.wav").content)
    assert whole.size == rec.frames


def test_a_range_request_decodes_only_its_samples(client, store, monkeypatch):
    from sonotype.web import media
    seen = []
    real = media.iter_blocks

    def spy(path, **kw):
        seen.append((kw["start"], kw["stop"]))
        return real(path, **kw)

    monkeypatch.setattr(media, "iter_blocks", spy)
    rec = _recording(store, "b.wav")
    url = f"/api/recordings/{rec.id}/audio.wav"
    r = client.get(url, headers={"Range": "bytes=200044-200143"})  # 100 bytes = 50 samples from sample 100000
    assert r.status_code == 206 and len(r.content) == 100
    assert seen == [(100000, 100050)]
    full = _source(rec.path, 100000, 100050)
    np.testing.assert_array_equal(np.frombuffer(r.content, "<i2") / 32768.0, full)


@pytest.mark.parametrize("query,status", [
    ("start=nan", 422), ("start=-1", 422), ("start=inf", 422), ("stop=nan", 422), ("start=1e300", 400),
    ("start=3&stop=2", 400), ("start=2&stop=2", 400), ("start=100", 400), ("start=0&stop=1e300", 400),
    ("start=abc", 422)])
def test_bad_spans_are_refused(client, query, status):
    for what in ("audio.wav", "spectrogram.png"):
        r = client.get(f"/api/recordings/1/{what}?{query}")
        assert r.status_code == status, (what, query, r.text)
        assert "detail" in r.json()


def test_span_limits(store):
    c = TestClient(create_app(store, limits=Limits(audio_s=2.0, spectrogram_s=3.0)))
    assert c.get("/api/recordings/1/audio.wav?start=0&stop=2").status_code == 200
    r = c.get("/api/recordings/1/audio.wav?start=0&stop=2.5")
    assert r.status_code == 400 and "longer than the limit of 2 s" in r.json()["detail"]
    assert c.get("/api/recordings/1/spectrogram.png?start=0&stop=4").status_code == 400
    x, _, _ = _wav(c.get("/api/recordings/1/audio.wav").content)  # no stop: at most the limit
    assert x.size == 2 * 48000


# ---------------------------------------------------------------------------- pictures


def test_spectrogram_png_of_a_span(client):
    r = client.get("/api/recordings/1/spectrogram.png?start=0.5&stop=4.5&width=300&height=128")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-sonotype-band-hz"] == "2000-24000"
    img = Image.open(io.BytesIO(r.content))
    assert img.size == (300, 128)
    default = Image.open(io.BytesIO(client.get("/api/recordings/1/spectrogram.png?start=0&stop=4").content))
    assert default.size == (200, 256)  # 50 pixels per second
    a = client.get("/api/recordings/1/spectrogram.png?start=0&stop=1&floor=-80&ceiling=80").content
    assert a != client.get("/api/recordings/1/spectrogram.png?start=0&stop=1").content
    assert client.get("/api/recordings/1/spectrogram.png?start=0&stop=1&floor=5&ceiling=5").status_code == 422
    for bad in ("width=0", "width=5000", "height=2000", "floor=nan"):
        assert client.get(f"/api/recordings/1/spectrogram.png?start=0&stop=1&{bad}").status_code == 422, bad
    thumb = client.get("/api/regions/1/spectrogram.png")
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).size == (160, 96)
    assert client.get("/api/regions/999999/spectrogram.png").status_code == 404


# ---------------------------------------------------------------------------- clusters, map, search


def test_clusterings_clusters_and_map(client, store, web):
    (c,) = client.get("/api/clusterings").json()
    assert (c["algorithm"], c["params"], c["n_clusters"]) == (ALGORITHM, PARAMS, 3)
    assert client.get(f"/api/clusterings?run_id={web.run_id}").json() == [c]
    detail = client.get(f"/api/clusterings/{c['id']}").json()
    members = store.cluster_members(web.run_id, ALGORITHM, PARAMS)
    assert {k["cluster"]: [m["id"] for m in k["members"]] for k in detail["clusters"]} == members
    assert sum(k["size"] for k in detail["clusters"]) == c["n_regions"]
    few = client.get(f"/api/clusterings/{c['id']}?limit=1").json()
    assert all(len(k["members"]) == 1 for k in few["clusters"])
    assert client.get("/api/clusterings/0123456789abcdef").status_code == 404
    m = client.get(f"/api/runs/{web.run_id}/map?method=tsne&clustering={c['id']}").json()
    of = {r: k for k, rs in members.items() for r in rs}
    assert len(m["points"]) == c["n_regions"] and all(p["cluster"] == of[p["region_id"]] for p in m["points"])
    assert client.get(f"/api/runs/{web.run_id}/map?method=umap").json()["points"] == []
    assert client.get(f"/api/runs/{web.run_id}/map?method=pca").status_code == 422
    assert client.get("/api/runs/99/map").status_code == 404


def test_search_by_example(client):
    r = client.get("/api/regions/1/similar?k=3")
    body = r.json()
    assert r.status_code == 200 and body["query"]["id"] == 1 and len(body["hits"]) == 3
    assert all(h["region"]["id"] != 1 for h in body["hits"])
    assert [h["distance"] for h in body["hits"]] == sorted(h["distance"] for h in body["hits"])
    assert client.get("/api/regions/1/similar?k=1000").status_code == 422


# ---------------------------------------------------------------------------- curation


def test_relabel_then_export_labels_for_train_detector(editor, tmp_path, web):
    c, st = editor
    a = _recording(st, "a.wav")
    ga = st.regions(recording_id=a.id, run_id=web.run_id)
    assert len(ga) >= 2
    assert c.put(f"/api/regions/{ga[0].id}/label", json={"label": "vocalisation", "author": "ana"},
                 headers=AUTH).json()["label"] == "vocalisation"
    for g in ga[1:]:
        r = c.put(f"/api/regions/{g.id}/label", json={"label": "noise", "author": "ana"}, headers=AUTH)
        assert r.status_code == 200 and r.json()["labelled_by"] == "ana"
    note = 'odd, "quoted"\nsecond line'
    assert c.put(f"/api/regions/{ga[0].id}/note", json={"note": note}, headers=AUTH).json()["note"] == note
    assert st.region_label(ga[0].id).label == "vocalisation"  # a note keeps the label
    out = tmp_path / "labels.csv"
    res = write_label_table(st, out)
    assert (res.vocalisations, res.noise, res.recordings) == (1, len(ga) - 1, 3)
    events = read_annotations(out)
    assert sorted(events) == ["a.wav", "b.wav", "c24.wav"]
    assert [(e.start, e.end, e.label) for e in events["a.wav"]] == \
        [(pytest.approx(ga[0].region.start_s, abs=1e-6), pytest.approx(ga[0].region.stop_s, abs=1e-6), "vocalisation")]
    # what train-detector makes of the table: the vocal region's windows positive, the noise regions' negative
    with pytest.raises(DataError, match="b.wav"):  # the table lists files it was not given: refused ...
        load_items([a.path], annotations=out)
    [item] = load_items([a.path], annotations=out, allow_unmatched=True)  # ... unless asked for
    framing = PRESETS["dolphin"].at_rate(48000)
    n = framing.n_windows(a.frames)
    y = item.window_labels(n, framing)
    spans = np.array([framing.window_span(i) for i in range(n)])
    inside = [(spans[:, 0] >= g.region.start) & (spans[:, 1] <= g.region.stop) for g in ga]
    assert inside[0].any() and (y[inside[0]] == POSITIVE).all()
    for g, m in zip(ga[1:], inside[1:]):
        assert (y[m] == NEGATIVE).all(), g
    b = _recording(st, "b.wav")
    assert len(events["b.wav"]) == len(st.regions(recording_id=b.id, run_id=web.run_id))  # the detector's call
    reviewed = read_annotations(write_label_table(st, tmp_path / "reviewed.csv", only_reviewed=True).path)
    assert list(reviewed) == ["a.wav"] and len(reviewed["a.wav"]) == 1
    # the same through the command line
    cli_out = tmp_path / "cli.csv"
    assert cli_main(["export-labels", "--db", st.label, "--out", str(cli_out), "--run-id", str(web.run_id)]) == 0
    assert read_annotations(cli_out).keys() == events.keys()
    # withdraw a label; every change is in the edit log with who and when
    assert c.put(f"/api/regions/{ga[0].id}/label", json={"label": None}, headers=AUTH).json()["label"] is None
    log = c.get(f"/api/edits?target=region&target_id={ga[0].id}").json()
    assert [(e["field"], e["old_value"], e["new_value"], e["author"]) for e in reversed(log)] == [
        ("label", None, "vocalisation", "ana"), ("note", None, note, None), ("label", "vocalisation", None, None)]
    assert c.put(f"/api/regions/{ga[0].id}/label", json={"label": "maybe"}, headers=AUTH).status_code == 422
    assert c.put(f"/api/regions/{ga[0].id}/label", json={"label": "noise", "x": 1}, headers=AUTH).status_code == 422
    assert c.put("/api/regions/99999/label", json={"label": "noise"}, headers=AUTH).status_code == 404


def test_rename_merge_and_split_clusters(editor, web):
    c, st = editor
    (cl,) = c.get("/api/clusterings").json()
    base = f"/api/clusterings/{cl['id']}"
    r = c.put(f"{base}/clusters/1/name", json={"name": "upsweep whistle", "author": "bo"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["name"] == "upsweep whistle"
    assert c.put(f"{base}/clusters/1/note", json={"note": "check harmonics"}, headers=AUTH).json()["note"] == \
        "check harmonics"
    assert st.cluster_names(web.run_id, ALGORITHM, PARAMS)[1].name == "upsweep whistle"
    assert c.put(f"{base}/clusters/42/name", json={"name": "x"}, headers=AUTH).status_code == 404
    before = st.cluster_members(web.run_id, ALGORITHM, PARAMS)
    r = c.post(f"{base}/merge", json={"into": 0, "other": 2, "author": "bo"}, headers=AUTH)
    assert r.status_code == 200 and r.json() == {"into": 0, "moved": len(before[2])}
    after = st.cluster_members(web.run_id, ALGORITHM, PARAMS)
    assert sorted(after) == [0, 1] and after[0] == sorted(before[0] + before[2])
    assert c.post(f"{base}/merge", json={"into": 0, "other": 0}, headers=AUTH).status_code == 400
    assert c.post(f"{base}/merge", json={"into": 0, "other": 9}, headers=AUTH).status_code == 404
    moved = after[0][:2]
    r = c.post(f"{base}/clusters/0/split", json={"region_ids": moved}, headers=AUTH)
    assert r.status_code == 200 and r.json() == {"new_cluster": 2, "moved": 2}
    assert st.cluster_members(web.run_id, ALGORITHM, PARAMS)[2] == moved
    assert c.post(f"{base}/clusters/0/split", json={"region_ids": moved}, headers=AUTH).status_code == 400
    assert c.post(f"{base}/clusters/0/split", json={"region_ids": []}, headers=AUTH).status_code == 422
    log = st.edits(target="cluster")
    assert [e.field for e in log] == ["name", "note", "merge", "split"]
    assert log[2].old_value["region_ids"] == before[2] and log[2].author == "bo"
    assert log[3].new_value == {"run_id": web.run_id, "algorithm": ALGORITHM, "params": PARAMS, "cluster": 2}


def test_curation_store_methods_on_sqlite_and_postgresql(store_url):
    with open_store(store_url) as st:
        rec = st.add_recording(path="/x/r.wav", content_hash="h", sample_rate=1000, channels=1, frames=10000,
                               channel_used=0, format="WAV")
        run = st.get_or_create_run(model_id=st.register_model(version="m", path=None, kind="detector"),
                                   settings={"frontend": {}})
        st.save_result(rec, run, [Region(i * 1000, i * 1000 + 500, 1000.0, 0.9, 0.8, i, 2) for i in range(4)],
                       n_windows=40, seconds=0.1)
        ids = [g.id for g in st.regions()]
        assert st.region(ids[0]).region.start == 0 and st.region(10 ** 9) is None
        assert st.latest_run_id() == run == st.latest_run_id(rec) and st.count_regions(rec, run) == 4
        evil = "x'); DROP TABLE regions; --"
        st.set_region_label(ids[0], "noise", author=evil)
        st.set_region_note(ids[0], evil)
        assert st.region_labels(run_id=run)[ids[0]].note == evil and st.region_label(ids[0]).author is None
        with pytest.raises(ValueError):
            st.set_region_label(ids[0], "dolphin")
        with pytest.raises(NotFound):
            st.set_region_label(10 ** 9, "noise")
        st.add_cluster_assignments(run, "a", {"k": 2}, {ids[0]: 0, ids[1]: 0, ids[2]: 1, ids[3]: 1})
        st.set_cluster_name(run, "a", {"k": 2}, 1, evil)
        assert st.cluster_names(run, "a", {"k": 2})[1].name == evil
        assert st.merge_clusters(run, "a", {"k": 2}, into=1, other=0) == 2
        assert st.split_cluster(run, "a", {"k": 2}, 1, [ids[3]]) == 2
        assert st.cluster_members(run, "a", {"k": 2}) == {1: ids[:3], 2: [ids[3]]}
        assert [e.field for e in st.edits()] == ["label", "note", "name", "merge", "split"]
        assert len(st.regions()) == 4


def test_clustering_titles_read_as_words():
    from sonotype.web.context import clustering_title, encoder_title
    c = {"run_id": 3, "algorithm": "agglomerative", "n_clusters": 4, "n_regions": 30,
         "params": {"linkage": "average", "threshold": 0.61, "percentile": 45.0, "encoder": "enc@5dc17955d41a/stride4",
                    "band": None, "scaling": "zscore-l2"}}
    assert clustering_title(c) == ("run 3 · agglomerative · 45th percentile · 4 clusters of 30 regions · "
                                   "LSTM-V3 enc, stride 4")
    assert encoder_title("birdnet@2.4/hop1/x16") == "BirdNET 2.4, hop 1 s, played x16"
    k = {"run_id": 1, "algorithm": "kmeans", "params": {"k": 8, "seed": 0, "on": "windows", "encoder": None}}
    assert clustering_title(k) == "run 1 · kmeans · k 8 · unknown encoder"


def test_the_servers_limits_drive_validation(store):
    """Each bound comes from the app's Limits: a smaller one refuses what the default allows, a larger
    one allows what the default refuses."""
    small = TestClient(create_app(store, limits=Limits(width=50, height=40, pad_s=0.5, k=2, page=3)))
    large = TestClient(create_app(store, limits=Limits(page=5000, k=500, width=6000)))
    default = TestClient(create_app(store))
    for url, ok in [("/api/recordings/1/spectrogram.png?start=0&stop=1&height=10&width={}", 50),
                    ("/api/recordings/1/spectrogram.png?start=0&stop=1&width=10&height={}", 40),
                    ("/api/regions/1/spectrogram.png?width=10&height=10&pad={}", 0.5), ("/api/regions/1/audio.wav?pad={}", 0.5),
                    ("/api/recordings?limit={}", 3), ("/api/edits?limit={}", 3)]:
        assert small.get(url.format(ok)).status_code == 200, url
        r = small.get(url.format(ok * 2))
        assert r.status_code == 422 and "limit" in r.json()["detail"], (url, r.text)
        assert default.get(url.format(ok * 2)).status_code == 200, url
    assert small.get("/api/regions/1/similar?k=3").status_code == 422
    assert default.get("/api/recordings?limit=2000").status_code == 422
    assert large.get("/api/recordings?limit=2000").status_code == 200
    assert default.get("/api/recordings/1/spectrogram.png?start=0&stop=1&width=5000").status_code == 422
    assert large.get("/api/recordings/1/spectrogram.png?start=0&stop=1&width=5000").status_code == 200
    assert large.get("/api/info").json()["limits"]["page"] == 5000


def test_the_servers_limits_bound_edit_bodies(editor):
    _, st = editor
    c = TestClient(create_app(st, edit_token=TOKEN, limits=Limits(text=10, name=3, split=1)))
    rid = st.regions()[0].id
    assert c.put(f"/api/regions/{rid}/note", json={"note": "x" * 10}, headers=AUTH).status_code == 200
    r = c.put(f"/api/regions/{rid}/note", json={"note": "x" * 11}, headers=AUTH)
    assert r.status_code == 422 and "note: 11 characters" in r.json()["detail"]
    assert c.put(f"/api/regions/{rid}/label", json={"label": "noise", "author": "abcd"}, headers=AUTH).status_code == 422
    (cl,) = c.get("/api/clusterings").json()
    members = c.get(f"/api/clusterings/{cl['id']}").json()["clusters"][0]
    ids = [m["id"] for m in members["members"]][:2]
    r = c.post(f"/api/clusterings/{cl['id']}/clusters/{members['cluster']}/split", json={"region_ids": ids},
               headers=AUTH)
    assert len(ids) == 2 and r.status_code == 422 and "2 items" in r.json()["detail"]
    roomy = TestClient(create_app(st, edit_token=TOKEN, limits=Limits(text=10_000)))
    assert roomy.put(f"/api/regions/{rid}/note", json={"note": "x" * 5000}, headers=AUTH).status_code == 200


def test_the_edit_schema_is_the_stored_edit_row():
    """The edit log's API schema is made from the store's row type: a field added there appears here."""
    from dataclasses import fields

    from sonotype.store import EditRow
    from sonotype.web import schemas as S
    assert list(S.Edit.model_fields) == [f.name for f in fields(EditRow)]
    assert S.Edit.model_fields["target_id"].annotation == (int | None)
