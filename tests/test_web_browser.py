"""The real pages in headless Chromium (Playwright, the system ``chromium``) against the real app under
uvicorn: regions drawn over the spectrogram, a click plays the right bytes, relabelling through the
page reaches the database, cluster galleries and the embedding map. Screenshots of every page go to
``test-output/screenshots/``.

Without Playwright or Chromium these tests skip, unless SONOTYPE_REQUIRE_BROWSER=1 (CI): then they fail.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from web_helpers import LiveServer, cached_web_db

from sonotype.store import open_store
from sonotype.web import create_app

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "test-output" / "screenshots"
TOKEN = "browser-token"


def _missing(msg: str):
    if os.environ.get("SONOTYPE_REQUIRE_BROWSER") == "1":
        pytest.fail(msg + " (SONOTYPE_REQUIRE_BROWSER=1 makes this an error)")
    pytest.skip(msg)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed; pip install playwright (the system chromium is used)")
    exe = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if exe is None:
        _missing("no chromium found; install it (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        except Exception as e:  # noqa: BLE001 - any launch failure means no usable browser here
            _missing(f"chromium at {exe} did not start: {e}")
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(base URL, store) of the app with an edit token over a private copy of the test database."""
    web = cached_web_db(tmp_path_factory)
    with open_store(web.copy(tmp_path_factory.mktemp("browserdb"))) as st, \
            LiveServer(create_app(st, edit_token=TOKEN)) as base:
        yield base, st


@pytest.fixture
def page(browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(15000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))

    def on_console(m):
        expected = "403" in m.text and (m.location or {}).get("url", "").endswith("/api/token")  # a wrong token
        if m.type == "error" and not expected:
            errors.append(f"console: {m.text} ({(m.location or {}).get('url')})")

    pg.on("console", on_console)
    yield pg
    ctx.close()
    assert errors == [], errors  # no script error, no refused resource (CSP), no failed request


def _shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _recording(st, name):
    return next(r for r in st.recordings() if r.path.endswith(name))


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def test_recordings_page_lists_and_searches(page, site):
    base, _ = site
    page.goto(base + "/")
    assert page.locator("#recordings tbody tr").count() == 3
    _shot(page, "recordings")
    page.fill("input[name=q]", "b.wav")
    page.click("form.search button[type=submit]")
    page.wait_for_url(re.compile(r".*q=b\.wav.*"))
    assert page.locator("#recordings tbody tr").count() == 1
    assert page.locator("#recordings tbody a").inner_text() == "b.wav"


def test_recording_page_draws_regions_and_a_click_plays_the_right_bytes(page, site):
    base, st = site
    rec = _recording(st, "b.wav")
    regions = st.regions(recording_id=rec.id, run_id=st.latest_run_id(rec.id))
    page.goto(f"{base}/recordings/{rec.id}")
    page.wait_for_selector("#recording[data-loaded=true]")
    assert page.locator("#track .region").count() == len(regions)
    assert page.locator("#region-table tbody tr").count() == len(regions)
    page.wait_for_function("() => [...document.querySelectorAll('#track img.tile')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    _shot(page, "recording")
    g = regions[1]
    with page.expect_response(lambda r: f"/api/regions/{g.id}/audio.wav" in r.url) as info:
        page.click(f"#track .region[data-region-id='{g.id}']")
    resp = info.value
    assert resp.status in (200, 206)
    full = _fetch(resp.url)  # the same URL in one piece
    x, sr = sf.read(io.BytesIO(full), dtype="float32")
    pad = round(0.1 * sr)
    want, _ = sf.read(rec.path, dtype="float32", start=max(0, g.region.start - pad),
                      stop=min(rec.frames, g.region.stop + pad))
    np.testing.assert_array_equal(x, want)
    body = resp.body()
    if resp.status == 206:
        first, last, total = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", resp.headers["content-range"]).groups())
        assert total == len(full) and body == full[first:last + 1]
    else:
        assert body == full
    page.wait_for_selector("#panel .region-controls")
    assert page.locator("#panel h3").inner_text() == f"Region {g.id}"
    with page.expect_response(lambda r: f"/api/recordings/{rec.id}/audio.wav?start=" in r.url) as info:
        page.click("#play-view")
    assert info.value.status in (200, 206)
    page.click("[data-zoom='200']")
    assert page.locator("#track .region").count() == len(regions)


def test_relabel_a_region_through_the_page(page, site):
    base, st = site
    rec = _recording(st, "a.wav")
    g = st.regions(recording_id=rec.id, run_id=st.latest_run_id(rec.id))[0]
    page.goto(f"{base}/recordings/{rec.id}")
    page.wait_for_selector("#recording[data-loaded=true]")
    page.click(f"#track .region[data-region-id='{g.id}']")
    page.click("#panel button.set-noise")
    page.wait_for_selector("#token-dialog[open]")
    page.fill("#token-input", "wrong")
    page.click("#token-ok")
    page.wait_for_function("() => document.getElementById('token-error').textContent.length > 0")
    assert st.region_label(g.id) is None
    page.fill("#token-input", TOKEN)
    page.fill("#author-input", "tester")
    _shot(page, "token-dialog")
    page.click("#token-ok")
    page.wait_for_selector(f"#track .region.noise[data-region-id='{g.id}']")
    label = st.region_label(g.id)
    assert (label.label, label.author) == ("noise", "tester")
    (edit,) = st.edits(target="region", target_id=g.id)
    assert (edit.field, edit.old_value, edit.new_value, edit.author) == ("label", None, "noise", "tester")
    # the token is kept for the tab: the next change does not ask again
    page.fill("#panel textarea.note", "faint, overlaps a ship")
    page.click("#panel button.save-note")
    page.wait_for_function(f"() => document.querySelector(\"#region-table tr[data-region-id='{g.id}']\")"
                           ".textContent.includes('overlaps a ship')")
    assert st.region_label(g.id).note == "faint, overlaps a ship"
    assert page.locator("#edit-state").inner_text() == "editing as tester"
    _shot(page, "recording-relabelled")


def test_clusters_page_galleries_map_and_play_all(page, site):
    base, st = site
    run = st.latest_run_id()
    (clustering,) = st.clusterings()
    members = st.cluster_members(run, clustering["algorithm"], clustering["params"])
    page.goto(base + "/clusters")
    page.wait_for_selector("#clustering[data-loaded=true]")
    page.wait_for_selector("#map[data-loaded=true]")
    # the clustering selector reads as words, not JSON parameters
    options = page.locator("#clustering-select option").all_inner_texts()
    assert len(options) == 1 and not any(ch in options[0] for ch in "{}\"")
    assert options[0].startswith(f"run {run} · {clustering['algorithm']} · ") and "LSTM-V3" in options[0]
    assert page.locator("section.cluster").count() == len(members)
    assert page.locator("#map circle.point").count() == len(st.map_points(run_id=run, method="tsne"))
    dot = page.locator("#map circle.point").last
    dot.hover()
    page.wait_for_selector("#map-tip:not([hidden]) img")
    page.wait_for_function("() => { const i = document.querySelector('#map-tip img'); "
                           "return i && i.complete && i.naturalWidth === 160; }")
    rid = dot.get_attribute("data-region-id")
    with page.expect_response(lambda r: f"/api/regions/{rid}/audio.wav" in r.url) as info:
        dot.click()
    assert info.value.status in (200, 206)
    first = page.locator("section.cluster").first
    ids = [t.get_attribute("data-region-id") for t in first.locator(".thumb").all()[:2]]
    assert rid not in ids
    with page.expect_response(lambda r: f"/api/regions/{ids[0]}/audio.wav" in r.url) as info:
        first.locator("button.play-all").click()
    assert info.value.status in (200, 206)
    with page.expect_response(lambda r: f"/api/regions/{ids[1]}/audio.wav" in r.url) as info:
        pass  # the next member plays when the first one ends
    assert info.value.status in (200, 206)
    page.wait_for_function("() => [...document.querySelectorAll('.thumb img')].every(i => i.complete && i.naturalWidth)")
    _shot(page, "clusters")
    # rename a cluster through the page (the token is asked for in this new tab)
    sec = page.locator("section.cluster").nth(1)
    number = int(sec.get_attribute("data-cluster"))
    sec.locator("input.name-input").fill("buzz")
    sec.locator("button.save-name").click()
    page.fill("#token-input", TOKEN)
    page.click("#token-ok")
    page.wait_for_selector(f"section.cluster[data-cluster='{number}'] h3:has-text('buzz')")
    assert st.cluster_names(run, clustering["algorithm"], clustering["params"])[number].name == "buzz"


def test_region_page_and_search_by_example(page, site):
    base, st = site
    rec = _recording(st, "a.wav")
    g = st.regions(recording_id=rec.id, run_id=st.latest_run_id(rec.id))[2]
    page.goto(f"{base}/recordings/{rec.id}")
    page.wait_for_selector("#recording[data-loaded=true]")
    page.click(f"#track .region[data-region-id='{g.id}']")
    page.click("#panel a.similar-link")
    page.wait_for_url(f"{base}/regions/{g.id}#similar")
    page.wait_for_selector("#similar-results[data-loaded=true]")
    page.wait_for_selector("#panel .region-controls")
    if importlib.util.find_spec("sonotype.discovery.search") is None or importlib.util.find_spec("faiss") is None:
        assert "unavailable" in page.locator("#similar-results").inner_text()
    else:
        n = min(12, len(st.regions()) - 1)
        assert page.locator("#similar-results .thumb").count() == n
        page.wait_for_function("() => [...document.querySelectorAll('.thumb img')].every(i => i.complete && i.naturalWidth)")
    _shot(page, "region-similar")


def test_api_page(page, site):
    base, _ = site
    page.goto(base + "/api-docs")
    assert page.locator("table.api tbody tr").count() >= 15
    _shot(page, "api")
