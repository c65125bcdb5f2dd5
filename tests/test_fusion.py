"""Fused detectors: members' window scores combined on the first member's grid, the threshold chosen on
out-of-sample scores (the members' kept threshold spans, or threshold recordings), detect/evaluate on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import RMSBackend, placeholder_model, tone_with_gaps

from sonotype import api, cli
from sonotype.detection.backend import fit_logistic_head, train_backend_detector
from sonotype.detection.crossval import fold_of_files, train_detector_cv
from sonotype.detection.detector import DetectorConfig, train_detector, validation_spans
from sonotype.detection.evaluate import evaluate_detector
from sonotype.detection.events import ScoredSpan, choose_event_threshold
from sonotype.detection.fusion import (
    FusedDetector,
    fuse_detectors,
    fuse_scores,
    load_detector,
    member_scores,
    window_centres,
)
from sonotype.detection.regions import RegionRule, find_regions
from sonotype.errors import CheckpointError, ConfigError, DataError
from sonotype.features.frontend import PRESETS
from sonotype.models.checkpoint import load_checkpoint, load_model
from sonotype.models.embed import file_scores, head_scores
from sonotype.runner.batch import detect_many
from sonotype.store import open_store
from sonotype.training.dataset import Event, make_items
from sonotype.training.train import TrainConfig, train_encoder

CALLS = {"a.wav": ((1.0, 2.0), (3.5, 4.2)), "b.wav": ((0.5, 1.5), (4.0, 5.5)), "c.wav": ((2.0, 3.0),),
         "d.wav": ((1.0, 1.8), (3.0, 4.5)), "e.wav": ((0.7, 2.2),), "f.wav": ((1.2, 2.0), (4.1, 5.0))}
QUIET = dict(progress=False, log=lambda s: None)
LOG = dict(log=lambda s: None)


def _slow_interp(t: float, centres: np.ndarray, scores: np.ndarray) -> float:
    if t <= centres[0]:
        return float(scores[0])
    if t >= centres[-1]:
        return float(scores[-1])
    for j in range(len(centres) - 1):
        if centres[j] <= t <= centres[j + 1]:
            a = (t - centres[j]) / (centres[j + 1] - centres[j])
            return float((1 - a) * scores[j] + a * scores[j + 1])
    raise AssertionError("unreachable")


def _slow_fuse(parts, weights) -> np.ndarray:
    s0, t0 = parts[0]
    out = []
    for i, t in enumerate(t0):
        v = 1.0
        for k, ((s, c), w) in enumerate(zip(parts, weights)):
            x = float(s0[i]) if k == 0 else _slow_interp(float(t), c, s)
            v *= max(x, 1e-6) ** w
        out.append(v)
    return np.array(out)


def test_fuse_scores_against_a_slow_reference():
    rng = np.random.default_rng(0)
    fine_t = 0.3 + 0.5 * np.arange(40)
    fine = rng.uniform(0, 1, 40)
    coarse_t = 6.0 + 1.5 * np.arange(9)  # starts after and ends before the fine grid: held at its end values
    coarse = rng.uniform(0, 1, 9)
    coarse[3] = 0.0  # a member certain of silence vetoes (finitely)
    third_t = np.linspace(0, 25, 7)
    third = rng.uniform(0, 1, 7)
    parts = [(fine, fine_t), (coarse, coarse_t), (third, third_t)]
    for w in ((0.5, 0.5, 0.0), (0.25, 0.5, 0.25), (0.0, 1.0, 0.0)):
        np.testing.assert_allclose(fuse_scores(parts, w), _slow_fuse(parts, w), rtol=1e-5, atol=1e-7)
    with pytest.raises(ConfigError, match="one weight each"):
        fuse_scores(parts, (0.5, 0.5))
    with pytest.raises(DataError, match="scored no window"):
        fuse_scores([(fine, fine_t), (np.zeros(0), np.zeros(0))], (0.5, 0.5))


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Six annotated 6-s recordings at 48 kHz, an encoder, an LSTM detector whose threshold was chosen by 2-fold
    cross-validation, and an RMS-backend detector chosen the same way, both on the first five recordings."""
    root = tmp_path_factory.mktemp("fusion")
    files = [tone_with_gaps(root / n, calls=c, seed=i) for i, (n, c) in enumerate(CALLS.items())]
    ann = {f.name: [Event(a, b) for a, b in CALLS[f.name]] for f in files}
    items = make_items(files, annotations=ann)
    enc = root / "enc.pt"
    train_encoder(items[:5], frontend=PRESETS["dolphin"], out=enc, cache_dir=root / "cache",
                  config=TrainConfig(epochs=2, batch_size=16, seed=0), **QUIET)
    cfg = DetectorConfig(epochs=5, seed=0, val_split="time", val_fraction=0.5)
    train_detector_cv(enc, items[:5], out=root / "lstm.pt", folds=2, config=cfg, **QUIET)
    b = RMSBackend(window_s=1.0, hop_s=0.5)
    train_backend_detector(b, items[:5], out=root / "rms.pt", config=DetectorConfig(head_c=1.0), folds=2, **QUIET)
    return root, items, enc, b


def test_members_keep_the_out_of_sample_scores_their_threshold_was_chosen_on(members, tmp_path):
    root, items, enc, b = members
    lstm = load_checkpoint(root / "lstm.pt").detector
    assert lstm.threshold_source == "folds" and sorted(sp.path for sp in lstm.threshold_spans) == \
        sorted(it.path for it in items[:5])
    assert all(sp.first_window == 0 and sp.sample_rate == 48000 for sp in lstm.threshold_spans)
    # the backend's folds: each recording scored by a head fitted by hand without its fold
    rms = load_checkpoint(root / "rms.pt").detector
    assert rms.threshold_source == "folds" and len(rms.threshold_spans) == 5
    fold = fold_of_files(items[:5], folds=2, seed=0)
    emb = {it.path: b.embed_span(it.path) for it in items[:5]}
    grid = b.info
    for sp in rms.threshold_spans:
        rest = [it for it in items[:5] if fold[it.path] != fold[sp.path]]
        xs, ys = [], []
        for it in rest:
            from sonotype.detection.backend import backend_grid
            lab = it.window_labels(len(emb[it.path]), backend_grid(grid, 48000), min_overlap=0.5)
            keep = lab >= 0
            xs.append(emb[it.path][keep]); ys.append(lab[keep])
        head = fit_logistic_head(np.concatenate(xs), np.concatenate(ys), c=1.0)
        np.testing.assert_allclose(sp.scores.numpy(), head_scores(head, emb[sp.path]), atol=1e-6)
        assert [tuple(e) for e in sp.events] == [(e.start, e.end) for e in next(
            it for it in items if it.path == sp.path).events]
    # the validation-tail case: the final model's scores of the tails (what the threshold was chosen on)
    cfg = DetectorConfig(epochs=5, seed=0, val_split="time", val_fraction=0.5)
    tail = train_detector(enc, items[:5], out=tmp_path / "tail.pt", config=cfg, **QUIET).detector
    m = load_model(tmp_path / "tail.pt", kind="detector")
    want = validation_spans([(m.encoder, m.head)], m.frontend, items[:5], mode="time", val_files=[],
                            fraction=0.5)
    assert tail.threshold_source == "validation" and len(tail.threshold_spans) == len(want)
    for sp in tail.threshold_spans:
        assert sp.first_window == want[sp.path].first_window > 0
        np.testing.assert_allclose(sp.scores.numpy(), want[sp.path].scores, atol=1e-6)


def test_fused_detector_detects_and_evaluates_as_fused_by_hand(members, tmp_path):
    root, items, _, b = members
    out = tmp_path / "fused.pt"
    ck = fuse_detectors([root / "lstm.pt", root / "rms.pt"], out=out, weights=[0.6, 0.4], backend=b, **LOG)
    # the threshold: chosen on the members' kept out-of-sample spans, fused by hand
    lstm, rms = (load_checkpoint(root / n).detector for n in ("lstm.pt", "rms.pt"))
    fine = load_model(root / "lstm.pt", kind="detector").frontend.at_rate(48000)
    from sonotype.detection.backend import backend_grid
    coarse = backend_grid(b.info, 48000)
    spans = {}
    for sp in lstm.threshold_spans:
        other = next(o for o in rms.threshold_spans if o.path == sp.path)
        parts = [(sp.scores.numpy(), window_centres(fine, 0, len(sp.scores))),
                 (other.scores.numpy(), window_centres(coarse, 0, len(other.scores)))]
        spans[sp.path] = ScoredSpan(_slow_fuse(parts, (0.6, 0.4)), fine, 0, sp.n_samples,
                                    tuple(Event(a, e) for a, e in sp.events))
    thr, ev = choose_event_threshold(spans)
    assert ck.fusion.threshold == pytest.approx(thr, abs=1e-5) and ck.fusion.threshold_source == "members"
    assert ck.fusion.validation_events["events"] == sum(len(CALLS[n]) for n in list(CALLS)[:5])
    back = load_checkpoint(out, kind="detector")
    assert back == ck and back.kind == "fusion" and back.fusion.weights == (0.6, 0.4)
    # detect the held-out recording: regions = the rule on the by-hand fused scores, on the LSTM's grid
    held = items[5].path
    fused = load_detector(out, backend=b)
    assert isinstance(fused, FusedDetector)
    m = load_model(root / "lstm.pt", kind="detector")
    s_lstm = file_scores(m, held, channel=0, sample_rate=48000)
    s_rms = head_scores(fused.members[1].head, b.embed_span(held))
    want = _slow_fuse([(s_lstm, window_centres(fine, 0, len(s_lstm))),
                       (s_rms, window_centres(coarse, 0, len(s_rms)))], (0.6, 0.4))
    np.testing.assert_allclose(fused.file_scores(held, channel=0, sample_rate=48000), want, atol=2e-5)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    s = detect_many([held], model=out, db=url, backend=b, **QUIET)
    n_samples = 6 * 48000
    from sonotype.detection.detect import default_rule
    rule = default_rule(fused)
    expect = [(r.start, r.stop) for r in find_regions(want.astype(np.float32), fine, rule=rule, n_samples=n_samples)]
    with open_store(url, read_only=True) as store:
        run = store.run(s.run_id)
        got = [(r.region.start, r.region.stop) for r in store.regions(run_id=s.run_id)]
    assert got == expect and got
    assert run.settings["fusion"]["weights"] == [0.6, 0.4]
    assert [x["backend"] for x in run.settings["fusion"]["members"]] == ["lstm-v3", "rms@1/hop0.5"]
    res = evaluate_detector(fused, [items[5]], progress=False)
    assert len(want) // 2 < res["n_windows"] <= len(want) and res["files_seen_in_training"] == []  # ignored: grazing windows
    short = tone_with_gaps(tmp_path / "short.wav", seconds=0.1, seed=1, calls=())  # under one 0.18-s window
    with pytest.raises(DataError, match=r"short\.wav: shorter than one window"):
        fused.file_scores(short, channel=0, sample_rate=48000, threshold=0.5)
    with pytest.raises(ConfigError, match="fused detector runs in this process only"):
        detect_many([held], model=out, db=url, backend=b, executor=lambda *a: iter(()), **QUIET)
    with pytest.raises(CheckpointError, match="a fusion of 2 detectors"):
        load_model(out)


def test_the_command_line_fuses_on_threshold_recordings(members, tmp_path):
    root, items, enc, _ = members
    second = tmp_path / "second.pt"
    train_detector(enc, items[:5], out=second, config=DetectorConfig(epochs=4, seed=3, hidden=8), **QUIET)
    held = tmp_path / "held.csv"
    held.write_text("filename,start,end\n" + "".join(f"f.wav,{a},{e}\n" for a, e in CALLS["f.wav"]))
    out = tmp_path / "f.pt"
    assert cli.main(["fuse-detectors", str(root / "lstm.pt"), str(second), "--weights", "0.7", "0.3", "--out",
                     str(out), "--threshold-file", str(items[5].path), "--threshold-annotations", str(held)]) == 0
    ck = load_checkpoint(out)
    assert ck.fusion.threshold_source == "files" and ck.fusion.threshold_files == (str(items[5].path),)
    fused = load_detector(out)
    sc = fused.file_scores(items[5].path, channel=0, sample_rate=48000)
    thr, _ = choose_event_threshold({items[5].path: ScoredSpan(sc, fused.grid(48000), 0, 6 * 48000,
                                                               items[5].events)})
    assert ck.fusion.threshold == pytest.approx(thr)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    assert cli.main(["detect", str(items[5].path), "--model", str(out), "--db", url, "--quiet"]) == 0
    assert cli.main(["detect", str(items[5].path), "--model", str(out), "--db", url, "--workers", "2",
                     "--quiet"]) == 2


def test_bad_fusions_are_refused_by_name(members, tmp_path):
    root, items, _, b = members
    lstm = root / "lstm.pt"
    with pytest.raises(ConfigError, match="two or more detector checkpoints; got 1"):
        fuse_detectors([lstm], out=tmp_path / "x.pt", **LOG)
    for w, match in (([0.5], "expected 2 non-negative weights"), ([0.7, 0.7], "summing to 1")):
        with pytest.raises(ConfigError, match=match):
            fuse_detectors([lstm, root / "rms.pt"], out=tmp_path / "x.pt", weights=w, backend=b, **LOG)
    placeholder = placeholder_model(tmp_path / "p.pt")
    with pytest.raises(DataError, match=r"p\.pt keep none"):
        fuse_detectors([lstm, placeholder], out=tmp_path / "x.pt", **LOG)
    ok = fuse_detectors([lstm, placeholder], out=tmp_path / "given.pt", threshold=0.3, **LOG)
    assert ok.fusion.threshold == 0.3 and ok.fusion.threshold_source == "given"
    with pytest.raises(ConfigError, match="already a fusion"):
        fuse_detectors([tmp_path / "given.pt", lstm], out=tmp_path / "x.pt", **LOG)
    with pytest.raises(DataError, match="training data of a member"):
        fuse_detectors([lstm, placeholder], out=tmp_path / "x.pt", threshold_items=items[:1], **LOG)
    with pytest.raises(ConfigError, match="give --threshold or --threshold-file, not both"):
        held = tmp_path / "held.csv"
        held.write_text("filename,start,end\nf.wav,1.2,2.0\n")
        api.fuse_detectors([str(lstm), str(placeholder)], out=str(tmp_path / "x.pt"), threshold=0.3,
                           threshold_files=(str(items[5].path),), threshold_annotations=str(held), log=lambda s: None)
    # a damaged member is named
    raw = torch.load(tmp_path / "given.pt", weights_only=True)
    raw["fusion"]["members"][1]["detector"]["threshold"] = "high"
    torch.save(raw, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"members\[1\].*detector\.threshold"):
        load_checkpoint(tmp_path / "bad.pt")


class CountingRMS(RMSBackend):
    """The RMS backend, counting the chunks it embeds."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.embedded = 0

    def embed_chunks(self, chunks):
        self.embedded += len(chunks)
        return super().embed_chunks(chunks)


def test_a_backend_embeds_only_the_wanted_chunks(members):
    _, items, _, _ = members
    b = CountingRMS(window_s=0.5, hop_s=0.25)
    full = np.concatenate(list(b.iter_embeddings(items[0].path, batch=7)))
    n = b.embedded
    b.embedded = 0
    pick = lambda idx: idx % 5 == 2  # noqa: E731
    part = np.concatenate(list(b.iter_embeddings(items[0].path, batch=7, wanted=pick)))
    keep = pick(np.arange(len(full)))
    assert b.embedded == keep.sum() < n and part.shape == full.shape
    np.testing.assert_allclose(part[keep], full[keep], atol=1e-6)
    assert np.isnan(part[~keep]).all()


def test_the_cascade_scores_every_window_that_can_pass_exactly(members, tmp_path):
    """With a threshold, the backend member embeds only chunks near first-member candidates, and every window at
    or above the threshold gets exactly the full computation's fused score (so the regions are the same)."""
    root, items, _, _ = members
    b = CountingRMS(window_s=1.0, hop_s=0.5)
    out = tmp_path / "fused.pt"
    fuse_detectors([root / "lstm.pt", root / "rms.pt"], out=out, weights=[0.5, 0.5], threshold=0.5, backend=b, **LOG)
    fused = load_detector(out, backend=b)
    path = tone_with_gaps(tmp_path / "long.wav", seconds=30, seed=9, calls=((5.0, 6.0), (20.0, 21.5)))
    full = fused.file_scores(path, channel=0, sample_rate=48000)
    n_full, b.embedded = b.embedded, 0
    fine = fused.grid(48000)
    bound = np.sqrt(np.clip(member_scores(fused.members[0], path, channel=0, sample_rate=48000), 1e-6, 1))  # s_0 ** w_0
    b.embedded = 0
    # thresholds that many windows pass, and one that only a tenth of the first member's bounds reach
    for thr, some in ((np.quantile(full, 0.2), True), (np.quantile(full, 0.6), True), (np.quantile(bound, 0.9), False)):
        b.embedded = 0
        casc = fused.file_scores(path, channel=0, sample_rate=48000, threshold=float(thr))
        on = full >= thr
        assert np.array_equal(casc >= thr, on) and (on.any() or not some)
        np.testing.assert_allclose(casc[on], full[on], rtol=1e-6)
        rule = RegionRule(threshold=float(thr))
        assert find_regions(casc, fine, rule=rule) == find_regions(full, fine, rule=rule)
        assert b.embedded <= n_full
    assert 0 < b.embedded < n_full  # the backend embedded only chunks near the few candidates


def test_nested_event_scores_leave_each_recording_out():
    """Each recording is scored at the threshold chosen on the others (a slow loop with the library's choice); the
    recordings' calls sit at different score levels, so the left-out thresholds differ from one another."""
    from sonotype.detection.events import nested_event_scores, span_event_scores
    from sonotype.features.frontend import WindowGrid
    grid = WindowGrid(sample_rate=100.0, window_samples=100.0, stride_samples=50.0)  # 1-s windows every 0.5 s
    rng = np.random.default_rng(3)
    spans = {}
    for k, level in enumerate((0.9, 0.8, 0.6, 0.7)):
        s = rng.uniform(0, 0.5, 120)
        evs = []
        for a in (10, 40, 80):
            s[a:a + 2] = level + rng.uniform(0, 0.05, 2)
            evs.append(Event(a * 0.5, a * 0.5 + 1.0))
        spans[f"r{k}"] = ScoredSpan(s.astype(np.float32), grid, 0, 6100, tuple(evs) if k < 3 else ())
    got = nested_event_scores(spans)
    found = matching = regions = 0
    for name in spans:
        thr, _ = choose_event_threshold({k: v for k, v in spans.items() if k != name})
        sc = span_event_scores({name: spans[name]}, rule=RegionRule(threshold=thr))
        found, matching, regions = found + sc.events_found, matching + sc.regions_matching, regions + sc.regions
    assert (got.events, got.events_found, got.regions_matching, got.regions) == (9, found, matching, regions)
    assert got.hours == pytest.approx(4 * 61 / 3600)
    thresholds = {choose_event_threshold({k: v for k, v in spans.items() if k != n})[0] for n in spans}
    assert len(thresholds) > 1
    with pytest.raises(DataError, match="leaving r0 out leaves no recording with an annotated event"):
        nested_event_scores({"r0": spans["r0"], "r3": spans["r3"]})


def test_choose_weights_takes_the_best_nested_f1(members, tmp_path):
    from sonotype.detection.events import nested_event_scores
    from sonotype.detection.fusion import AUTO_WEIGHTS, fused_threshold_spans
    root, _, _, b = members
    ck = fuse_detectors([root / "lstm.pt", root / "rms.pt"], out=tmp_path / "auto.pt", weights="auto", backend=b,
                        **LOG)
    fused = load_detector(tmp_path / "auto.pt", backend=b)
    table = ck.fusion.validation_events["weight_choice"]
    assert [t["weights"][0] for t in table] == list(AUTO_WEIGHTS)
    f1 = {}
    for a in AUTO_WEIGHTS:
        f1[a] = nested_event_scores(fused_threshold_spans(fused.members, (a, 1 - a))).f1
        assert next(t for t in table if t["weights"][0] == a)["nested"]["f1"] == pytest.approx(f1[a])
    best = max(f1.values())
    assert ck.fusion.weights[0] == min((a for a in AUTO_WEIGHTS if f1[a] >= best - 1e-12), key=lambda a: abs(a - 0.5))
    thr, _ = choose_event_threshold(fused_threshold_spans(fused.members, ck.fusion.weights))
    assert ck.fusion.threshold == pytest.approx(thr)
    with pytest.raises(ConfigError, match="'auto' chooses the weights of two detectors"):
        fuse_detectors([root / "lstm.pt", root / "rms.pt"], out=tmp_path / "x.pt", weights="auto", threshold=0.4,
                       backend=b, **LOG)
    with pytest.raises(ConfigError, match="give --weights or --choose-weights, not both"):
        api.fuse_detectors([str(root / "lstm.pt"), str(root / "lstm.pt")], out=str(tmp_path / "x.pt"),
                           weights=(0.5, 0.5), choose_weights=True, log=lambda s: None)
