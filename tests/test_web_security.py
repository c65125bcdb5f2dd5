"""Hostile requests against every endpoint: path traversal never serves a file the database does not
register, SQL injection is inert (tables intact, strings stored verbatim), edits need the token, limits
hold, pages escape what they show."""

from __future__ import annotations

import http.client
import re
import sqlite3
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from web_helpers import ALGORITHM, PARAMS, LiveServer, cached_web_db

from sonotype.audio.io import write_audio
from sonotype.store import open_store
from sonotype.web import create_app

TOKEN = "t0ken-for-security-tests"
MARKER = b"TOPSECRET-NOT-IN-THE-DATABASE"
PASSWD = b"root:x:0:"
INJECTIONS = ["' OR '1'='1", "1; DROP TABLE regions; --", "x'); DELETE FROM recordings; --", "%' OR 1=1 --",
              '" OR ""="', "1 UNION SELECT path, 1, 1 FROM recordings --", "\\'; DROP TABLE edits; --"]


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    return cached_web_db(tmp_path_factory)


@pytest.fixture(scope="module")
def secrets(web):
    """Files next to the registered audio that must never be served: a WAV and a text file."""
    folder = web.files["a.wav"].parent
    (folder.parent / "secret.txt").write_bytes(MARKER * 4)
    x = np.tile(np.array([0.123, -0.456, 0.789, -0.321], np.float32), 4000)
    wav = write_audio(folder / "secret.wav", x, sample_rate=8000)  # not registered in the database
    return {"txt": folder.parent / "secret.txt", "wav": wav, "wav_bytes": wav.read_bytes()[44:400]}


@pytest.fixture
def editable(web, tmp_path):
    with open_store(web.copy(tmp_path)) as st:
        yield TestClient(create_app(st, edit_token=TOKEN)), st


def _snapshot(st) -> dict:
    """Every row of the tables the application could touch (read straight from the SQLite file)."""
    con = sqlite3.connect(st.label.removeprefix("sqlite:///"))
    try:
        return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall())  # fixed table names
                for t in ("recordings", "regions", "clusters", "region_labels", "cluster_names", "edits", "runs")}
    finally:
        con.close()


def _attacks(secrets) -> list[str]:
    raw = ["../../../../etc/passwd", "/etc/passwd", "....//....//etc/passwd", "..\\..\\etc\\passwd",
           "file:///etc/passwd", "1/../../../etc/passwd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%252f..%252fetc",
           str(secrets["wav"]), str(secrets["txt"]), "../secret.txt", "../audio/secret.wav", "secret.wav",
           "1%00.wav", "~/.ssh/id_rsa"]
    return raw + [quote(a, safe="") for a in raw] + ["1%00", "%00"]


def _walk(routes, prefix: str = ""):
    """(path, route) of every route, also inside included routers (newer FastAPI nests them)."""
    for r in routes:
        sub = getattr(r, "original_router", None)
        if sub is not None:
            yield from _walk(sub.routes, prefix + (getattr(getattr(r, "include_context", None), "prefix", "") or ""))
        elif hasattr(r, "path"):
            yield prefix + r.path, r


def _routes(app):
    """(path, methods, query parameter names) of every endpoint of the app, pages and static files included."""
    for path, r in _walk(app.routes):
        if isinstance(r, APIRoute):
            yield path, sorted(r.methods), [p.name for p in r.dependant.query_params]
        elif path.startswith("/static"):
            yield path, ["GET"], []


def _fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda _: value, path)


def _assert_harmless(r, secrets, what):
    body = r.content
    assert r.status_code < 500, (what, r.status_code, r.text[:300])
    assert MARKER not in body and PASSWD not in body and secrets["wav_bytes"] not in body, what


def test_path_traversal_in_every_parameter_of_every_endpoint(editable, secrets):
    client, st = editable
    before = _snapshot(st)
    routes = list(_routes(client.app))
    assert len(routes) >= 25
    seen = set()
    for attack in _attacks(secrets):
        for path, methods, query in routes:
            url = _fill(path, attack)
            qs = "&".join(f"{q}={attack}" for q in query)
            for method in methods:
                for u in {url, f"{url}?{qs}" if qs else url, _fill(path, "1") + (f"?{qs}" if qs else "")}:
                    if (method, u) in seen:
                        continue
                    seen.add((method, u))
                    r = client.request(method, u, headers={"X-Sonotype-Token": TOKEN},
                                       json={"label": "noise", "note": attack, "name": attack, "into": 0, "other": 1,
                                             "region_ids": [1]} if method in ("PUT", "POST") else None)
                    _assert_harmless(r, secrets, (method, u))
    # a query string may not name a file either: audio is chosen by id only
    for u in ("/api/recordings/1/audio.wav?path=/etc/passwd", f"/api/regions/1/audio.wav?file={secrets['wav']}"):
        r = client.get(u)
        assert r.status_code == 200 and secrets["wav_bytes"] not in r.content and PASSWD not in r.content
    assert _snapshot(st)["recordings"] == before["recordings"] and _snapshot(st)["regions"] == before["regions"]


def test_raw_traversal_paths_on_the_live_server(web, secrets):
    """Paths sent byte for byte (no client-side normalisation) to the real server."""
    with open_store(web.url) as st, LiveServer(create_app(st)) as base:
        port = int(base.rsplit(":", 1)[1])
        for path in ("/static/../../../../etc/passwd", "/static/..%2f..%2f..%2fetc%2fpasswd", "/static/%2e%2e/app.py",
                     "/static/../templates/base.html", "/static/..\\..\\web\\app.py", "/api/recordings/../../etc/passwd",
                     "/api/recordings/1/../../../secret.txt", "/api/regions/%2e%2e%2fsecret.wav/audio.wav",
                     f"/static/{quote(str(secrets['txt']), safe='')}", "//etc/passwd", "/static//etc/passwd"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.putrequest("GET", path, skip_accept_encoding=True)
            conn.endheaders()
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            assert resp.status in (400, 404, 405, 422), (path, resp.status)
            assert MARKER not in body and PASSWD not in body and b"def create_app" not in body, path


def test_sql_injection_in_every_text_parameter_is_inert(editable):
    client, st = editable
    before = _snapshot(st)
    (c,) = client.get("/api/clusterings").json()
    for s in INJECTIONS:
        q = quote(s, safe="")
        for u in (f"/api/recordings?encounter={q}", f"/api/recordings?site={q}", f"/api/recordings?q={q}",
                  f"/api/recordings?date_from={q}", f"/api/recordings?date_to={q}",
                  f"/?q={q}&encounter={q}&site={q}&date_from={q}&date_to={q}"):
            r = client.get(u)
            assert r.status_code in (200, 422), u  # 422: longer than a date may be
            if u.startswith("/api") and r.status_code == 200:
                assert r.json() == [] or "date_to" in u or "date_from" in u, (u, r.json())
        for u in (f"/api/clusterings/{q}", f"/api/runs/1/map?method={q}", f"/api/runs/1/map?clustering={q}",
                  f"/api/edits?target={q}", f"/clusters?c={q}", f"/api/recordings/{q}", f"/api/regions/{q}/audio.wav",
                  f"/api/recordings/1/regions?run_id={q}"):
            assert client.get(u).status_code in (404, 422), u
    after = _snapshot(st)
    assert after == before
    # hostile text through the curation endpoints is stored verbatim
    auth = {"X-Sonotype-Token": TOKEN}
    for i, s in enumerate(INJECTIONS):
        assert client.put(f"/api/regions/{i + 1}/note", json={"note": s, "author": s}, headers=auth).status_code == 200
        assert st.region_label(i + 1).note == s and st.region_label(i + 1).author == s.strip()
    r = client.put(f"/api/clusterings/{c['id']}/clusters/0/name", json={"name": INJECTIONS[1]}, headers=auth)
    assert r.status_code == 200
    assert st.cluster_names(c["run_id"], ALGORITHM, PARAMS)[0].name == INJECTIONS[1]
    after = _snapshot(st)
    for t in ("recordings", "regions", "clusters", "runs"):
        assert after[t] == before[t], t
    assert len(after["edits"]) == len(INJECTIONS) + 1


MUTATIONS = [("PUT", "/api/regions/{region_id}/label", {"label": "noise"}),
             ("PUT", "/api/regions/{region_id}/note", {"note": "x"}),
             ("PUT", "/api/clusterings/{cid}/clusters/{cluster}/name", {"name": "n"}),
             ("PUT", "/api/clusterings/{cid}/clusters/{cluster}/note", {"note": "n"}),
             ("POST", "/api/clusterings/{cid}/merge", {"into": 0, "other": 1}),
             ("POST", "/api/clusterings/{cid}/clusters/{cluster}/split", {"region_ids": [1]}),
             ("POST", "/api/token", {})]


def _mutations(cid: str) -> list[tuple[str, str, dict]]:
    return [(m, t.format(region_id=1, cid=cid, cluster=0), body) for m, t, body in MUTATIONS]


def test_edits_without_the_right_token_are_refused_and_change_nothing(editable, web):
    client, st = editable
    (c,) = client.get("/api/clusterings").json()
    changing = {(m, p) for p, methods, _ in _routes(client.app) for m in methods if m not in ("GET", "HEAD")}
    assert changing == {(m, t) for m, t, _ in MUTATIONS}  # every endpoint that may change something is tried
    before = _snapshot(st)
    for method, url, body in _mutations(c["id"]):
        for headers in ({}, {"X-Sonotype-Token": "wrong"}, {"X-Sonotype-Token": TOKEN.upper()},
                        {"X-Sonotype-Token": TOKEN + " "}, {"X-Sonotype-Token": ""}, {"Authorization": f"Bearer {TOKEN}"}):
            r = client.request(method, url, json=body, headers=headers)
            assert r.status_code == 403, (method, url, headers, r.status_code)
            assert "token" in r.json()["detail"]
    with open_store(web.url) as ro_store:
        read_only = TestClient(create_app(ro_store))
        for method, url, body in _mutations(c["id"]):
            r = read_only.request(method, url, json=body, headers={"X-Sonotype-Token": TOKEN})
            assert r.status_code == 403 and "read-only" in r.json()["detail"]
        assert 'data-editing="false"' in read_only.get("/").text
    assert _snapshot(st) == before
    assert client.post("/api/token", headers={"X-Sonotype-Token": TOKEN}).status_code == 204


@pytest.mark.parametrize("url", [
    "/api/recordings/1/spectrogram.png?start=0&stop=1000000000", "/api/recordings/1/spectrogram.png?width=1000000000",
    "/api/recordings/1/spectrogram.png?height=99999", "/api/regions/1/spectrogram.png?width=100000",
    "/api/regions/1/audio.wav?pad=100", "/api/regions/1/audio.wav?pad=-1", "/api/regions/1/audio.wav?pad=nan",
    "/api/regions/1/similar?k=1000000", "/api/recordings?limit=1000000", "/api/recordings?offset=-1",
    f"/api/recordings/{2 ** 70}", "/api/recordings/-1", "/api/regions/1.5/audio.wav", "/api/clusterings/" + "a" * 500,
    "/api/recordings?q=" + "x" * 5000, "/api/recordings/1/audio.wav?start=0&stop=1e308",
    "/api/recordings/1/audio.wav?start=-0.0001"])
def test_oversized_or_malformed_requests_are_refused(web, url):
    with open_store(web.url) as st:
        r = TestClient(create_app(st)).get(url)
    assert 400 <= r.status_code < 500, (url, r.status_code)


def test_oversized_bodies_are_refused(editable):
    client, _ = editable
    auth = {"X-Sonotype-Token": TOKEN}
    assert client.put("/api/regions/1/note", json={"note": "x" * 5000}, headers=auth).status_code == 422
    assert client.put("/api/regions/1/label", json={"label": "noise", "author": "a" * 500},
                      headers=auth).status_code == 422
    (c,) = client.get("/api/clusterings").json()
    r = client.post(f"/api/clusterings/{c['id']}/clusters/0/split", json={"region_ids": list(range(20000))},
                    headers=auth)
    assert r.status_code == 422


def test_pages_escape_what_they_show_and_send_safety_headers(web, tmp_path):
    evil = '<script>alert("x")</script>'
    with open_store(web.copy(tmp_path)) as st:
        st.add_recording(path=str(web.files["a.wav"]) + "?<b>", content_hash="evil", sample_rate=48000, channels=1,
                         frames=288000, channel_used=0, format="WAV", metadata={"site": evil, "encounter": evil})
        client = TestClient(create_app(st))
        page = client.get("/?site=" + quote(evil))
        assert page.status_code == 200 and evil not in page.text and "&lt;script&gt;" in page.text
        for u in ("/", "/recordings/1", "/clusters", "/regions/1", "/api/recordings", "/static/common.js"):
            r = client.get(u)
            assert r.headers["x-content-type-options"] == "nosniff", u
            assert "script-src 'self'" in r.headers["content-security-policy"], u
        assert "<script>" not in client.get("/recordings/4").text.split("</head>")[1]
    with open_store(web.url) as st:
        strict = TestClient(create_app(st, allowed_hosts=["127.0.0.1", "localhost"]), base_url="http://evil.example")
        assert strict.get("/api/recordings").status_code == 400  # DNS-rebinding guard


def test_unknown_ids_are_404(web):
    with open_store(web.url) as st:
        c = TestClient(create_app(st))
        for u in ("/api/recordings/999", "/api/recordings/999/regions", "/api/recordings/999/audio.wav",
                  "/api/recordings/999/spectrogram.png", "/api/regions/999", "/api/regions/999/audio.wav",
                  "/api/regions/999/spectrogram.png", "/api/regions/999/similar", "/api/runs/999/map",
                  "/recordings/999", "/regions/999", "/clusters?c=ffffffffffffffff", "/static/nope.js"):
            assert c.get(u).status_code == 404, u
