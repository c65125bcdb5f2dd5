"""The server beyond localhost (issue 11, item 7): a loud warning on a non-local bind, a Host allow-list
on every bind, a cap on heavy renders (503 + Retry-After), no absolute server paths for anonymous
clients, and error messages that do not echo large input."""

from __future__ import annotations

import sqlite3

import pytest
import uvicorn
from fastapi.testclient import TestClient
from web_helpers import cached_web_db, free_port

from sonotype.cli import main
from sonotype.store import open_store
from sonotype.web import Limits, create_app

TOKEN = "t0ken-for-exposure-tests"


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    return cached_web_db(tmp_path_factory)


@pytest.fixture
def served(monkeypatch):
    """``sonotype serve`` through the real command line, with uvicorn.run replaced: the app it would run."""
    got = {}

    def fake_run(app, **kw):
        got.update(app=app, **kw)
    monkeypatch.setattr(uvicorn, "run", fake_run)
    return got


# ---------------------------------------------------------------------------- bind and Host


def test_a_non_local_bind_warns_loudly_and_says_how_to_protect_it(web, served, capsys):
    assert main(["serve", "--db", web.url, "--host", "127.0.0.1", "--port", str(free_port())]) == 0
    assert "WARNING" not in capsys.readouterr().err
    assert main(["serve", "--db", web.url, "--host", "0.0.0.0", "--port", str(free_port())]) == 0
    err = capsys.readouterr().err
    assert "WARNING" in err and "every network interface" in err and "download the audio" in err
    assert "--edit-token" in err and "reverse proxy" in err and "--allowed-host" in err
    assert served["host"] == "0.0.0.0"


def _get(app, host: str):
    return TestClient(app, base_url=f"http://{host}").get("/api/info")


def test_a_foreign_host_header_is_refused_on_a_wildcard_bind(web, served, capsys):
    assert main(["serve", "--db", web.url, "--host", "0.0.0.0", "--port", "8123"]) == 0
    app = served["app"]
    for bad in ("evil.example", "evil.example:8123", "attacker.test"):
        assert _get(app, bad).status_code in (400, 421), bad
    for good in ("localhost:8123", "127.0.0.1:8123"):
        assert _get(app, good).status_code == 200, good
    # names the user lists are answered; an explicit opt-out answers any
    assert main(["serve", "--db", web.url, "--host", "0.0.0.0", "--allowed-host", "sonotype.lab.example",
                 "--allowed-host", "10.1.2.3"]) == 0
    assert _get(served["app"], "sonotype.lab.example").status_code == 200
    assert _get(served["app"], "10.1.2.3:8000").status_code == 200
    assert _get(served["app"], "evil.example").status_code in (400, 421)
    assert main(["serve", "--db", web.url, "--host", "0.0.0.0", "--allow-any-host"]) == 0
    assert _get(served["app"], "evil.example").status_code == 200
    assert "any Host header is accepted" in capsys.readouterr().err


# ---------------------------------------------------------------------------- heavy renders


def test_heavy_renders_beyond_the_cap_get_503_with_retry_after(web):
    with open_store(web.url, read_only=True) as st:
        app = create_app(st, limits=Limits(renders=2, render_wait_s=0.0, heavy_audio_s=1.0))
        c, slots = TestClient(app), app.state.ctx.renders
        rec = st.recordings()[0].id
        region = st.regions(run_id=web.run_id)[0].id
        png = f"/api/recordings/{rec}/spectrogram.png?start=0&stop=2&width=200"
        assert c.get(png).status_code == 200
        assert slots.acquire(blocking=False) and slots.acquire(blocking=False)  # two renders in progress
        try:
            for url in (png, f"/api/regions/{region}/spectrogram.png", f"/api/recordings/{rec}/audio.wav"):
                r = c.get(url)
                assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0, url
                assert "busy" in r.json()["detail"]
            # light responses still answer: JSON, a short audio span, a range of a long one
            assert c.get("/api/recordings").status_code == 200
            assert c.get(f"/api/regions/{region}/audio.wav").status_code == 200
            assert c.get(f"/api/recordings/{rec}/audio.wav", headers={"Range": "bytes=0-999"}).status_code == 206
        finally:
            slots.release()
        assert c.get(png).status_code == 200  # one slot free again
        r = c.get(f"/api/recordings/{rec}/audio.wav")  # a long span holds a slot while it streams...
        assert r.status_code == 200 and len(r.content) > 48000
        assert slots.acquire(blocking=False)  # ...and gives it back when done
        slots.release()
        slots.release()


# ---------------------------------------------------------------------------- paths


def _anonymous_pages(c, st, web) -> dict[str, str]:
    rec = st.recordings()[0].id
    region = st.regions(run_id=web.run_id)[0].id
    cid = c.get("/api/clusterings").json()[0]["id"]
    urls = ["/api/info", "/api/recordings", f"/api/recordings/{rec}", f"/api/recordings/{rec}/regions",
            f"/api/regions/{region}", f"/api/clusterings/{cid}", "/api/runs", "/", f"/recordings/{rec}",
            f"/regions/{region}", f"/clusters?c={cid}", f"/api/recordings/{rec}/audio.wav?start=999",
            f"/api/recordings/{rec}/spectrogram.png?start=0&stop=1", "/api/recordings/999999"]
    return {u: c.get(u).text for u in urls}


@pytest.mark.parametrize("root", ["data-root", "elsewhere"])
def test_anonymous_clients_never_see_an_absolute_server_path(web, tmp_path, root):
    url = web.copy(tmp_path)
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    with con:  # one recording's file has gone: its error message names it
        con.execute("UPDATE recordings SET path = ? WHERE id = (SELECT MIN(id) FROM recordings)",
                    (str(web.root / "audio" / "moved-away.wav"),))
    con.close()
    audio_root = web.root if root == "data-root" else tmp_path
    with open_store(url) as st:
        app = create_app(st, edit_token=TOKEN, audio_root=audio_root)
        anon = TestClient(app)
        bodies = _anonymous_pages(anon, st, web)
        for u, body in bodies.items():
            assert str(web.root) not in body and str(tmp_path) not in body, (u, body[:400])
        shown = {r["path"] for r in anon.get("/api/recordings").json()}
        assert shown == ({"audio/moved-away.wav", "audio/b.wav", "audio/c24.wav"} if root == "data-root"
                         else {"moved-away.wav", "b.wav", "c24.wav"})
        assert "moved-away.wav" in bodies[f"/api/recordings/{st.recordings()[0].id}/spectrogram.png?start=0&stop=1"]
        assert anon.get("/api/info").json()["database"] == "copy.db"
        # the edit token shows the full paths
        editor = TestClient(app, headers={"X-Sonotype-Token": TOKEN})
        assert all(p.startswith(str(web.root)) for p in (r["path"] for r in editor.get("/api/recordings").json()))
        assert editor.get("/api/info").json()["database"] == url
        wrong = TestClient(app, headers={"X-Sonotype-Token": "wrong"})
        assert str(web.root) not in wrong.get("/api/recordings").text


# ---------------------------------------------------------------------------- no large echoes


def test_a_70_kb_bad_parameter_gets_a_short_error(web, tmp_path):
    big = "A" * 70_000
    q = big[:60_000]  # a query string this long is as far as the HTTP client goes (its URL limit is 64 KiB)
    with open_store(web.copy(tmp_path)) as st:
        c = TestClient(create_app(st, edit_token=TOKEN), headers={"X-Sonotype-Token": TOKEN})
        region = st.regions(run_id=web.run_id)[0].id
        answers = [c.put(f"/api/regions/{region}/note", json={"note": big}),
                   c.get("/api/recordings", params={"q": q}), c.get("/api/recordings", params={"limit": q}),
                   c.get("/", params={"site": q}), c.get(f"/api/runs/{web.run_id}/map", params={"method": q}),
                   c.put(f"/api/regions/{region}/label", json={"label": big, big[:5000]: 1}),
                   c.post("/api/clusterings/x/merge", json={"into": big, "other": [big] * 3}),
                   c.get(f"/api/clusterings/{big[:5000]}")]
        for r in answers:
            assert r.status_code in (404, 414, 422), (r.status_code, r.text[:300])
            assert len(r.content) < 1024, (r.request.url.path, len(r.content), r.text[:300])
        assert "70,000 characters" in answers[0].text and "60,000 characters" in answers[1].text  # says so
        assert st.region_label(region) is None or st.region_label(region).note != big
