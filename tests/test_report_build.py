"""A model version's report folder from a detection run with stored clusters, and a labelled catalog."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from helpers import detected_store, placeholder_model, tone_with_gaps
from PIL import Image

from sonotype.cli import main
from sonotype.discovery.discover import DiscoverConfig, discover
from sonotype.discovery.sequences import overview_spectrogram
from sonotype.features.frontend import PRESETS, spectrogram
from sonotype.models.checkpoint import load_model, model_version
from sonotype.report.build import ReportOptions, build_model_report, version_folder
from sonotype.store import open_store


@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    url, model, _ = detected_store(tmp_path_factory.mktemp("rep"), files=2)
    with open_store(url) as s:
        run = s.regions()[0].run_id
        discover(s, run, load_model(model), config=DiscoverConfig(k=3, maps=("tsne",)), log=lambda s: None)
    return url, model, run


def png_ok(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as im:
        assert 100 <= im.width <= 8000 and 100 <= im.height <= 8000, (path, im.size)


def test_report_folder_has_weights_config_figures_and_cluster_audio(clustered, tmp_path):
    url, model_path, run = clustered
    m = load_model(model_path)
    with open_store(url) as s:
        readme = build_model_report(m, tmp_path / "reports", store=s, run_id=run,
                                    options=ReportOptions(max_clusters=3), log=lambda x: None)
        rows = s.cluster_assignments(run_id=run, algorithm="agglomerative")
        regions = {r.id: r.region for r in s.regions(run_id=run)}
    folder = version_folder(tmp_path / "reports", model_version(m))
    assert readme == folder / "README.md" and (folder / "report.html").is_file()
    assert (folder / "model.pt").read_bytes() == model_path.read_bytes()
    assert json.loads((folder / "config.json").read_text())["version"] == model_version(m)
    html = (folder / "report.html").read_text()
    for name in ("filters", "regions-map-tsne", "cluster-00", "overview-recording-1"):  # no history: no curve
        hits = sorted((folder / "figures").glob(f"*{name}*.png"))
        assert hits, name
        for p in hits:
            png_ok(p)
            assert p.with_suffix(".svg").is_file()
        assert f"figures/{hits[0].name}" in html
    # the largest cluster's WAV: its members (up to the limit) in order, 0.1 s apart
    members = [r.region_id for r in rows if r.cluster == 0]
    x, sr = sf.read(folder / "clusters" / "cluster-00.wav")
    want = sum(regions[i].stop - regions[i].start for i in members[:50]) + round(0.1 * sr) * (len(members[:50]) - 1)
    assert x.shape[0] == want


def test_overview_spectrogram_is_a_pooled_full_spectrogram(tmp_path):
    wav = tone_with_gaps(tmp_path / "o.wav", seconds=6)
    x, _ = sf.read(wav, dtype="float32")
    fe = PRESETS["dolphin"]
    full = spectrogram(x, fe.at_rate(48000))
    spec, sec, freqs = overview_spectrogram(str(wav), fe, max_columns=100)
    pool = -(-full.shape[0] // 100)
    assert spec.shape == (-(-full.shape[0] // pool), 256) and sec == pytest.approx(pool * 256 / 48000)
    assert np.allclose(spec[3], full[3 * pool:4 * pool].max(axis=0), atol=1e-4)
    assert freqs[0] == 2000 and freqs[-1] == 24000


def test_cli_report_from_a_checkpoint_alone(tmp_path):
    model = placeholder_model(tmp_path / "p.pt")
    assert main(["report", "--model", str(model), "--out", str(tmp_path / "r")]) == 0
    [folder] = (tmp_path / "r").iterdir()
    assert (folder / "README.md").is_file() and (folder / "figures" / "filters.png").is_file()


def test_zoom_box_frames_the_densest_spot():
    from sonotype.report.build import _zoom_box
    rng = np.random.default_rng(0)
    coords = np.vstack([rng.normal(size=(5, 2)) * 5 + [50, 50], rng.normal(size=(30, 2)) * 0.2 + [-40, 10],
                        [[-60, -60], [60, 60]]])
    x0, x1, y0, y1 = _zoom_box(coords)
    inside = (coords[:, 0] >= x0) & (coords[:, 0] <= x1) & (coords[:, 1] >= y0) & (coords[:, 1] <= y1)
    assert inside[5:35].all() and not inside[:5].any()
    assert _zoom_box(coords[:7]) is None
