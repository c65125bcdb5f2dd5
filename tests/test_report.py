"""Tests of sonotype.report: every figure is a readable PNG + SVG and shows what it was given; reports escape and link.

SVG text stays text (svg.fonttype none) and artists carry ids (thumb-<i>-c<cluster>, region-<i>,
zoom-region), so the tests read what was drawn from the SVG itself.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from sonotype.errors import ConfigError, SonotypeError
from sonotype.features.pooling import pool_time as max_pool
from sonotype.report import (
    ModelReport,
    confusion_figure,
    embedding_map_figure,
    figures_for_checkpoint,
    figures_for_evaluation,
    filters_figure,
    gallery_figure,
    pr_curve_figure,
    recording_overview_figure,
    report_from_checkpoint,
    thumbnail_subset,
    training_curve_figure,
    write_model_report,
)
from sonotype.report._plot import NOISE_COLOUR
from sonotype.training.metrics import Confusion, summary

SVG = "{http://www.w3.org/2000/svg}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_pair(paths: list[Path], stem: Path) -> ET.Element:
    """Both files written where promised; the PNG opens at a sane size; the SVG parses. Returns the SVG root."""
    assert paths[:2] == [stem.parent / (stem.name + ".png"), stem.parent / (stem.name + ".svg")]
    png, svg = paths[:2]
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(png) as im:
        im.verify()
    with Image.open(png) as im:
        assert im.format == "PNG"
        assert 200 <= im.width <= 6000 and 200 <= im.height <= 6000, im.size
    root = ET.parse(svg).getroot()
    assert root.tag == SVG + "svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(SVG + "text")]


def ids(root: ET.Element, pattern: str) -> list[str]:
    rx = re.compile(pattern)
    return [e.get("id") for e in root.iter() if e.get("id") and rx.fullmatch(e.get("id"))]


def stroke_of(root: ET.Element, gid: str) -> str:
    group = next(e for e in root.iter(SVG + "g") if e.get("id") == gid)
    style = next(p.get("style") for p in group.iter(SVG + "path"))
    return re.search(r"stroke: (#[0-9a-f]{6})", style).group(1)


def spectrogram(rng: np.random.Generator, frames: int = 32, bins: int = 64, *, tone: int | None = None) -> np.ndarray:
    s = rng.normal(-60.0, 3.0, size=(frames, bins))
    if tone is not None:
        s[:, tone] += 30.0
    return s


# ------------------------------------------------------------------------------------------ figures


def test_confusion_figure_shows_counts_and_row_percentages(tmp_path):
    cm = Confusion(tp=37, fn=5, fp=1234, tn=300, threshold=0.42)
    root = check_pair(confusion_figure(cm, tmp_path / "cm"), tmp_path / "cm")
    shown = texts(root)
    for want in ("37", "5", "1,234", "300", "88.1%", "11.9%", "80.4%", "19.6%", "vocalisation", "noise"):
        assert want in shown, want
    assert any("threshold 0.420" in t for t in shown)
    # the 'confusion' dict of an evaluation result works the same; a .png suffix on the stem is dropped
    root2 = check_pair(confusion_figure(cm.to_dict(), tmp_path / "cm2.png"), tmp_path / "cm2")
    assert sorted(texts(root2)) == sorted(shown)
    # same input, same SVG bytes (no date, fixed ids)
    again = confusion_figure(cm, tmp_path / "cm3")
    assert again[1].read_bytes() == (tmp_path / "cm.svg").read_bytes()
    # an empty true class shows a dash, not a division by zero
    assert "–" in texts(check_pair(confusion_figure(Confusion(0, 0, 3, 7, 0.5), tmp_path / "e"), tmp_path / "e"))


def test_confusion_figure_rejects_bad_counts(tmp_path):
    with pytest.raises(ConfigError, match=r"fp=-1.*count >= 0"):
        confusion_figure({"tp": 1, "fn": 2, "fp": -1, "tn": 3}, tmp_path / "x")
    with pytest.raises(ConfigError, match="tn=None"):
        confusion_figure({"tp": 1, "fn": 2, "fp": 1}, tmp_path / "x")


def test_pr_curve_figure_from_metrics_summary(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    scores = np.clip(0.3 * labels + rng.normal(0.35, 0.2, 300), 0, 1)
    res = summary(scores, labels, threshold=0.5)
    c, curve = res["confusion"], res["pr_curve"]
    root = check_pair(pr_curve_figure(curve["precision"], curve["recall"], tmp_path / "pr",
                                      chosen=(c["precision"], c["recall"]),
                                      average_precision=res["average_precision"]), tmp_path / "pr")
    shown = " ".join(texts(root))
    assert f"AP {res['average_precision']:.3f}" in shown
    assert f"P {c['precision']:.3f}, R {c['recall']:.3f}" in shown
    with pytest.raises(ConfigError, match="precision has 3 points but recall has 2"):
        pr_curve_figure([1, 0.5, 0.4], [0.1, 0.2], tmp_path / "bad")
    with pytest.raises(ConfigError, match=r"precision ranges over \[0.5, 2\]"):
        pr_curve_figure([2, 0.5], [0.1, 0.2], tmp_path / "bad")
    with pytest.raises(ConfigError, match="chosen"):
        pr_curve_figure([1, 0.5], [0.1, 0.2], tmp_path / "bad", chosen=(1.5, 0.2))


def test_training_curve_marks_the_best_validation_epoch(tmp_path):
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": v, "seconds": 1.0}
               for e, v in zip(range(1, 7), [0.9, float("nan"), 0.5, 0.31, 0.4, 0.45])]
    root = check_pair(training_curve_figure(history, tmp_path / "tc"), tmp_path / "tc")
    assert any("best: epoch 4, 0.31" in t for t in texts(root))
    root = check_pair(training_curve_figure([{"train_loss": 2.0, "val_loss": float("nan")}], tmp_path / "one"),
                      tmp_path / "one")
    assert "no validation loss recorded" in texts(root)
    detector = [{"epoch": e, "train_loss": 0.7 / e, "val_average_precision": 0.5 + 0.1 * e} for e in (1, 2, 3)]
    root = check_pair(training_curve_figure(detector, tmp_path / "det", ylabel="loss (binary cross-entropy)"),
                      tmp_path / "det")
    shown = texts(root)
    assert "validation AP" in shown and "loss (binary cross-entropy)" in shown
    assert "no validation loss recorded" not in shown
    with pytest.raises(ConfigError, match="non-empty list"):
        training_curve_figure([], tmp_path / "x")
    with pytest.raises(ConfigError, match=r"history\[1\].*train_loss"):
        training_curve_figure([{"train_loss": 1.0}, {"epoch": 2}], tmp_path / "x")


def test_filters_figure_has_one_panel_per_filter(tmp_path):
    from sonotype.models.lstm_v3 import Encoder
    from sonotype.report import local_filters

    w = local_filters(Encoder())
    assert w.shape == (64, 1, 8, 8) and w.dtype == np.float32
    root = check_pair(filters_figure(w, tmp_path / "f"), tmp_path / "f")
    assert len(ids(root, r"axes_\d+")) == 64
    assert {str(k) for k in range(64)} <= set(texts(root))
    root = check_pair(filters_figure(np.ones((10, 8, 8)), tmp_path / "f10"), tmp_path / "f10")  # zero-free, 3-D
    assert len(ids(root, r"axes_\d+")) == 10
    for bad in (np.zeros((64, 2, 8, 8)), np.zeros((8, 8)), np.zeros((0, 1, 8, 8))):
        with pytest.raises(ConfigError, match=r"\(64, 1, 8, 8\)"):
            filters_figure(bad, tmp_path / "bad")
    with pytest.raises(ConfigError, match="local_conv"):
        local_filters(object())


def test_embedding_map_frames_thumbnails_in_cluster_colours(tmp_path):
    rng = np.random.default_rng(2)
    n = 60
    clusters = rng.integers(-1, 5, n)
    clusters[:6] = [-1, 0, 1, 2, 3, 4]  # every cluster present
    coords = rng.normal(size=(n, 2)) + clusters[:, None] * 2.0
    thumbs = [spectrogram(rng, tone=int(c) * 10 + 10) for c in clusters]
    zoom = (1.0, 5.0, 1.0, 5.0)
    paths = embedding_map_figure(coords, thumbs, clusters, tmp_path / "map", title="test map", zoom=zoom,
                                 max_thumbnails=12, seed=3)
    assert len(paths) == 4
    root = check_pair(paths, tmp_path / "map")
    frames = ids(root, r"thumb-\d+-c(\d+|noise)")
    assert len(frames) == 12 == len(ids(root, r"thumbimg-\d+"))
    drawn = {int(f.split("-")[1]): f for f in frames}
    for i, gid in drawn.items():  # each frame names its item's cluster ...
        assert gid.endswith(f"-c{clusters[i]}" if clusters[i] >= 0 else "-cnoise")
    colour = {}
    for i, gid in drawn.items():  # ... and is drawn in one colour per cluster, grey for noise
        colour.setdefault(int(clusters[i]), set()).add(stroke_of(root, gid))
    assert all(len(c) == 1 for c in colour.values())
    assert set(colour) == {-1, 0, 1, 2, 3, 4}  # one thumbnail per cluster first
    assert colour[-1] == {NOISE_COLOUR}
    assert len({next(iter(c)) for c in colour.values()}) == 6
    assert ids(root, "zoom-region") == ["zoom-region"]
    assert any("cluster 3" in t for t in texts(root)) and any("unassigned" in t for t in texts(root))
    # the zoom pair: only items inside the region get thumbnails
    zroot = check_pair(paths[2:], tmp_path / "map-zoom")
    inside = {i for i in range(n) if zoom[0] <= coords[i, 0] <= zoom[1] and zoom[2] <= coords[i, 1] <= zoom[3]}
    zdrawn = {int(f.split("-")[1]) for f in ids(zroot, r"thumb-\d+-c(\d+|noise)")}
    assert zdrawn and zdrawn <= inside and len(zdrawn) == min(12, len(inside))
    # the subset is seeded: same seed same items, and all items when they fit
    assert np.array_equal(thumbnail_subset(clusters, 12, seed=3), sorted(drawn))
    few = embedding_map_figure(coords[:9], thumbs[:9], clusters[:9], tmp_path / "few", max_thumbnails=400)
    assert len(ids(check_pair(few, tmp_path / "few"), r"thumb-\d+-c(\d+|noise)")) == 9


def test_embedding_map_rejects_inconsistent_input(tmp_path):
    rng = np.random.default_rng(0)
    thumbs = [spectrogram(rng) for _ in range(5)]
    coords, clusters = rng.normal(size=(5, 2)), np.arange(5)
    with pytest.raises(ConfigError, match="coords has 5 rows but thumbnails has 4 items"):
        embedding_map_figure(coords, thumbs[:4], clusters, tmp_path / "x")
    with pytest.raises(ConfigError, match=r"coords has shape \(5, 3\).*\(n, 2\)"):
        embedding_map_figure(rng.normal(size=(5, 3)), thumbs, clusters, tmp_path / "x")
    with pytest.raises(ConfigError, match=r"clusters has shape \(4,\): expected \(5,\)"):
        embedding_map_figure(coords, thumbs, clusters[:4], tmp_path / "x")
    with pytest.raises(ConfigError, match="-2"):
        embedding_map_figure(coords, thumbs, [0, 1, -2, 0, 1], tmp_path / "x")
    with pytest.raises(ConfigError, match=r"thumbnails\[2\] has shape \(64,\)"):
        embedding_map_figure(coords, thumbs[:2] + [np.zeros(64)] + thumbs[3:], clusters, tmp_path / "x")
    with pytest.raises(ConfigError, match="x1 > x0"):
        embedding_map_figure(coords, thumbs, clusters, tmp_path / "x", zoom=(1, 0, 0, 1))
    with pytest.raises(SonotypeError, match="NaN"):
        embedding_map_figure(np.full((5, 2), np.nan), thumbs, clusters, tmp_path / "x")


def test_gallery_figure_caps_items_and_captions_them(tmp_path):
    rng = np.random.default_rng(4)
    thumbs = [spectrogram(rng, frames=20, bins=40, tone=k) for k in range(30)]
    thumbs[0][0, 0] = -np.inf  # silence in dB must not break the colour scale
    labels = [f"clip{k:02d}.wav @ {k * 0.5:.1f} s" for k in range(30)]
    root = check_pair(gallery_figure(thumbs, tmp_path / "g", title="cluster 7", max_items=8, labels=labels),
                      tmp_path / "g")
    shown = texts(root)
    assert len(ids(root, r"axes_\d+")) == 8
    assert set(labels[:8]) <= set(shown) and labels[8] not in shown
    assert any("cluster 7" in t and "8 of 30" in t for t in shown)
    with pytest.raises(ConfigError, match="labels has 2 entries but thumbnails has 30"):
        gallery_figure(thumbs, tmp_path / "x", labels=labels[:2])
    with pytest.raises(ConfigError, match="thumbnails is empty"):
        gallery_figure([], tmp_path / "x")
    with pytest.raises(ConfigError, match="max_items=0"):
        gallery_figure(thumbs, tmp_path / "x", max_items=0)


def lower_half_brighter(png: Path, *, x: float = 0.5) -> bool:
    """In the column at ``x`` (fraction of the width), is the band 55-80 % down brighter than the band 20-45 %?"""
    with Image.open(png) as im:
        g = np.asarray(im.convert("L"), dtype=float)
    col = g[:, int(x * g.shape[1])]
    h = g.shape[0]
    return col[int(0.55 * h):int(0.8 * h)].mean() > col[int(0.2 * h):int(0.45 * h)].mean() + 50


def test_spectrograms_are_drawn_low_frequencies_at_the_bottom(tmp_path):
    spec = np.full((20, 40), -60.0)
    spec[:, :20] = 0.0  # loud low half of the bins
    assert lower_half_brighter(gallery_figure([spec], tmp_path / "g")[0])
    assert not lower_half_brighter(gallery_figure([spec[:, ::-1]], tmp_path / "g2")[0])
    long = np.repeat(spec, 10, axis=0)
    png = recording_overview_figure(long, tmp_path / "r", seconds_per_frame=0.01,
                                    freqs_hz=np.arange(40) * 100.0 + 50)[0]
    assert lower_half_brighter(png, x=0.4)


def test_recording_overview_shades_regions_and_pools_long_spectrograms(tmp_path):
    rng = np.random.default_rng(5)
    frames, bins, spf = 6000, 32, 256 / 48000
    spec = rng.normal(-70, 3, size=(frames, bins))
    freqs = np.linspace(2000, 24000, bins)
    kw = {"seconds_per_frame": spf, "freqs_hz": freqs, "max_columns": 2000}
    regions = [(1.0, 2.5, "whistle"), (10.0, 11.0, "click"), (30.0, 31.0)]
    scores = rng.random(frames)
    root = check_pair(recording_overview_figure(spec, tmp_path / "rec", regions=regions, scores=scores, threshold=0.5,
                                                title="rec.wav", **kw),
                      tmp_path / "rec")
    assert len(ids(root, r"region-\d+")) == 3 and len(ids(root, r"score-region-\d+")) == 3
    shown = " ".join(texts(root))
    assert "max over 3 frames per column" in shown and "whistle" in shown and "click" in shown
    root = check_pair(recording_overview_figure(spec[:500], tmp_path / "short", **kw), tmp_path / "short")
    assert ids(root, r"region-\d+") == [] and "max over" not in " ".join(texts(root))
    with pytest.raises(ConfigError, match="freqs_hz has 31 entries but spec has 32"):
        recording_overview_figure(spec, tmp_path / "x", seconds_per_frame=spf, freqs_hz=freqs[:-1])
    with pytest.raises(ConfigError, match=r"regions\[0\].*stop > start"):
        recording_overview_figure(spec, tmp_path / "x", seconds_per_frame=spf, freqs_hz=freqs, regions=[(3, 2)])
    with pytest.raises(ConfigError, match="scores has 10 entries but spec has 6000 frames"):
        recording_overview_figure(spec, tmp_path / "x", seconds_per_frame=spf, freqs_hz=freqs, scores=scores[:10])
    with pytest.raises(ConfigError, match="seconds_per_frame=0"):
        recording_overview_figure(spec, tmp_path / "x", seconds_per_frame=0, freqs_hz=freqs)


def test_max_pool_keeps_peaks_and_fits():
    a = np.zeros((10001, 3))
    a[9999, 1] = 5.0
    pooled, factor = max_pool(a, 4000)
    assert factor == 3 and pooled.shape == (math.ceil(10001 / 3), 3) and pooled.shape[0] <= 4000
    assert pooled[9999 // 3, 1] == 5.0 and pooled.sum() == 5.0
    same, one = max_pool(a[:50], 4000)
    assert one == 1 and same.shape == (50, 3)


def test_report_package_uses_no_pyplot_and_no_torch():
    code = ("import sys, numpy as np, tempfile, pathlib; import sonotype.report as r; "
            "d = pathlib.Path(tempfile.mkdtemp()); r.filters_figure(np.ones((4, 1, 2, 2)), d / 'f'); "
            "print('matplotlib.pyplot' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


# ------------------------------------------------------------------------------------------ model report


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("src", "href") and v]


def assert_links_exist(out: Path) -> tuple[list[str], list[str]]:
    md = (out / "README.md").read_text()
    md_links = re.findall(r"\]\(([^)]+)\)", md)
    parser = _Links()
    parser.feed((out / "report.html").read_text())
    for link in md_links + parser.links:
        assert (out / unquote(link)).is_file(), link
    return md_links, parser.links


def test_model_report_escapes_text_and_links_existing_figures(tmp_path):
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 2, 200)
    scores = np.clip(0.4 * labels + rng.normal(0.3, 0.2, 200), 0, 1)
    ev = {**summary(scores, labels, threshold=0.5), "model": "det.pt", "threshold": 0.5, "min_overlap": 0.5,
          "files": [{"path": "a <b>.wav", "windows": 120, "vocal": 40, "tp": 30, "fn": 10, "fp": 5, "tn": 75}],
          "files_seen_in_training": ["a <b>.wav"]}
    out = tmp_path / "report dir"
    figs = figures_for_evaluation(ev, out)
    check_pair(filters_figure(rng.normal(size=(4, 1, 8, 8)), out / "figures" / "my filters"),
               out / "figures" / "my filters")
    figs["Local filters <i>"] = "figures/my filters.svg"
    hostile = "<script>alert('x')</script>"
    report = ModelReport(
        name=hostile, version="enc@123 & co", created="2026-01-01T00:00:00+00:00", description="a | pipe",
        data={"files": [f"f{k}.wav" for k in range(20)], "note": hostile}, layers={"conv2d": 4160, "lstm": 98816},
        encoder_config={"window": 32}, train_config={"epochs": 3, "lr": 1e-3},
        history=[{"epoch": 1, "train_loss": 0.5, "val_loss": float("nan")}, {"epoch": 2, "train_loss": 0.4,
                                                                              "val_loss": 0.45}],
        evaluation=ev, cluster_agreement=[{"clustering": "hdbscan", "nmi": 0.61}, {"clustering": "kmeans", "ari": 0.3}],
        figures=figs)
    readme = write_model_report(out, report)
    assert readme == out / "README.md"
    page = (out / "report.html").read_text()
    md = readme.read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<script>" not in md and "<b>" not in md and "<b>" not in page and "<i>" not in page
    assert "&lt;i&gt;" in page and "enc@123 &amp; co" in page
    for heading in ("Data used", "Encoder", "Training", "Detector evaluation", "Local filters", "Clusters"):
        assert f"<h2>{heading}</h2>" in page and f"## {heading}" in md
    assert "102,976" in page and "102,976" in md  # total added to the layer table
    assert "not held-out" in page and "lowest validation loss 0.45 at epoch 2" in page
    assert "a \\| pipe" in md
    md_links, html_links = assert_links_exist(out)
    assert {"figures/confusion.png", "figures/pr-curve.png", "figures/my%20filters.png"} <= set(md_links)
    assert "figures/my%20filters.svg" in md_links and "figures/my%20filters.png" in html_links
    # the filters figure goes to its section by keyword; the confusion matrix to the detector section
    assert md.index("figures/confusion.png") < md.index("## Local filters") < md.index("figures/my%20filters.png")
    with pytest.raises(ConfigError, match="does not exist"):
        write_model_report(out, ModelReport(name="m", figures={"Training curve": "figures/missing.png"}))
    with pytest.raises(ConfigError, match="leaves the report folder"):
        write_model_report(out, ModelReport(name="m", figures={"x": "../elsewhere.png"}))
    with pytest.raises(ConfigError, match="non-empty string"):
        ModelReport(name="")
    with pytest.raises(ConfigError, match=r"layers\[0\]"):
        ModelReport(name="m", layers=[("conv", -1)])


def test_report_from_a_saved_encoder_checkpoint(tmp_path):
    import torch

    from sonotype.features.frontend import FrontEnd
    from sonotype.models.checkpoint import Checkpoint, TrainingData, load_checkpoint
    from sonotype.models.lstm_v3 import Encoder, EncoderConfig

    torch.manual_seed(0)
    enc = Encoder(EncoderConfig())
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "seconds": 2.0, "windows": 100}
               for e in (1, 2, 3)]
    path = Checkpoint(kind="encoder", encoder_config=enc.config, frontend=FrontEnd(n_fft=512, hop=256),
                      train_config={"epochs": 3}, history=history, data=TrainingData(("a.wav", "b.wav")),
                      encoder=enc.state_dict()).save(tmp_path / "enc.pt")
    ck = load_checkpoint(path)
    out = tmp_path / "model"
    figs = figures_for_checkpoint(ck, out)
    assert figs == {"Training curve": "figures/training-curve.png", "Local Conv2D filters": "figures/filters.png"}
    report = report_from_checkpoint(ck, name="enc-v1", figures=figs)
    assert dict(report.layers)["total"] == 275_328 and report.created == ck.created
    write_model_report(out, report)
    md = (out / "README.md").read_text()
    assert "275,328" in md and "a.wav, b.wav" in md and "## Training" in md and "## Local filters" in md
    md_links, html_links = assert_links_exist(out)
    assert "figures/training-curve.png" in md_links and "figures/filters.png" in html_links
    with pytest.raises(SonotypeError, match="expected a sonotype.models.checkpoint.Checkpoint"):
        figures_for_checkpoint({"encoder_config": enc.config.to_dict()}, out)  # a dict, not a loaded checkpoint
