"""Detector training on a frozen encoder, threshold choice and held-out evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import placeholder_model, tone_with_gaps

from sonotype.audio.io import write_audio
from sonotype.detection.detector import DetectorConfig, train_detector
from sonotype.detection.evaluate import evaluate_detector, format_report
from sonotype.errors import CheckpointError, DataError
from sonotype.features.frontend import PRESETS
from sonotype.models.checkpoint import load_model
from sonotype.models.embed import file_scores
from sonotype.training.dataset import Event, make_items
from sonotype.training.train import TrainConfig, train_encoder

CALLS = {"a.wav": ((1.0, 2.0), (3.5, 4.2)), "b.wav": ((0.5, 1.5), (4.0, 5.5)), "c.wav": ((2.0, 3.0),),
         "d.wav": ((1.0, 1.8), (3.0, 4.5)), "e.wav": ((0.7, 2.2),)}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("det")
    files = [tone_with_gaps(root / name, calls=calls, seed=i) for i, (name, calls) in enumerate(CALLS.items())]
    ann = {f.name: [Event(a, b) for a, b in CALLS[f.name]] for f in files}
    items = make_items(files, annotations=ann)
    enc = root / "enc.pt"
    train_encoder(items, frontend=PRESETS["dolphin"], out=enc, cache_dir=root / "cache",
                  config=TrainConfig(epochs=2, batch_size=16, seed=0), progress=False, log=lambda s: None)
    return root, items, enc


def test_detector_separates_tones_from_noise_on_held_out_file(corpus, tmp_path):
    root, items, enc = corpus
    train_items, test_items = items[:4], items[4:]
    # judged window by window, so the threshold is chosen window by window (the event-level choice is
    # tested in test_threshold_is_chosen_on_validation_events_of_long_recordings)
    ck = train_detector(enc, train_items, out=tmp_path / "det.pt",
                        config=DetectorConfig(epochs=60, seed=0, threshold_level="window"),
                        progress=False, log=lambda s: None)
    det = ck.detector
    assert det.val_split == "file" and 0 < det.threshold < 1
    model = load_model(tmp_path / "det.pt", kind="detector")
    result = evaluate_detector(model, test_items, progress=False)
    assert result["confusion"]["recall"] >= 0.75 and result["confusion"]["precision"] >= 0.75, format_report(result)
    assert result["files_seen_in_training"] == []
    json.dumps(result)
    # evaluating on a training file is flagged
    leaked = evaluate_detector(model, train_items[:1], progress=False)
    assert leaked["files_seen_in_training"] == [train_items[0].path]


def test_threshold_follows_target_precision(corpus, tmp_path):
    _, items, enc = corpus
    a = train_detector(enc, items, out=tmp_path / "a.pt", config=DetectorConfig(epochs=10), progress=False,
                       log=lambda s: None).detector
    b = train_detector(enc, items, out=tmp_path / "b.pt", config=DetectorConfig(epochs=10, target_precision=1.0),
                       progress=False, log=lambda s: None).detector
    assert b.validation["confusion"]["precision"] >= a.validation["confusion"]["precision"]
    assert b.threshold >= a.threshold


def test_one_class_only_is_a_clear_error(corpus, tmp_path):
    _, items, enc = corpus
    no_events = make_items([items[0].path], annotations={})
    with pytest.raises(DataError, match="one class only"):
        train_detector(enc, no_events, out=tmp_path / "x.pt", progress=False, log=lambda s: None)


def test_scores_of_placeholder_model_are_defined_for_silence(tmp_path):
    m = load_model(placeholder_model(tmp_path / "p.pt"))
    silent = write_audio(tmp_path / "zeros.wav", np.zeros(48000, np.float32), sample_rate=48000)
    s = file_scores(m, silent, channel=0, sample_rate=48000)
    assert s.shape == (PRESETS["dolphin"].at_rate(48000).n_windows(48000),)
    assert np.isfinite(s).all() and np.ptp(s) == 0  # all windows identical (zeros) -> identical scores


def test_encoder_only_checkpoint_cannot_score(corpus, tmp_path):
    root, items, enc = corpus
    with pytest.raises(CheckpointError, match="encoder only"):
        load_model(enc, kind="detector")


def test_finetuning_updates_the_encoder_and_still_detects(corpus, tmp_path):
    root, items, enc = corpus
    ck = train_detector(enc, items[:4], out=tmp_path / "ft.pt", cache_dir=root / "cache",
                        config=DetectorConfig(epochs=4, finetune=True, stride=8, seed=0), progress=False,
                        log=lambda s: None)
    assert ck.detector.finetuned is True
    ssl = load_model(enc).encoder.state_dict()
    tuned = load_model(tmp_path / "ft.pt", kind="detector")
    assert not np.allclose(ssl["local_conv.weight"].numpy(), tuned.encoder.state_dict()["local_conv.weight"].numpy())
    result = evaluate_detector(tuned, items[4:], progress=False)
    assert result["average_precision"] > 0.8, format_report(result)


def test_threshold_is_chosen_on_validation_events_of_long_recordings(corpus, tmp_path):
    _, items, enc = corpus
    ck = train_detector(enc, items[:4], out=tmp_path / "ev.pt", config=DetectorConfig(epochs=20, seed=0),
                        progress=False, log=lambda s: None).detector
    assert ck.threshold_level == "event" and ck.validation_events["events"] > 0
    assert 0 < ck.threshold < 1 and 0 < ck.window_threshold < 1
    win = train_detector(enc, items[:4], out=tmp_path / "w.pt",
                         config=DetectorConfig(epochs=20, seed=0, threshold_level="window"),
                         progress=False, log=lambda s: None).detector
    assert win.threshold_level == "window" and win.threshold == pytest.approx(ck.window_threshold)
    # file-level labels (no annotated events): an event-level threshold cannot be chosen
    from dataclasses import replace
    labelled = [replace(items[0], events=None, label=1), replace(items[1], events=None, label=0)]
    with pytest.raises(DataError, match="needs annotated events"):
        train_detector(enc, labelled, out=tmp_path / "x.pt",
                       config=DetectorConfig(epochs=1, threshold_level="event", val_split="time"),
                       progress=False, log=lambda s: None)


def test_threshold_can_be_chosen_on_separate_long_recordings(corpus, tmp_path):
    _, items, enc = corpus
    ck = train_detector(enc, items[:3], out=tmp_path / "t.pt", config=DetectorConfig(epochs=10, seed=0),
                        threshold_items=items[3:], progress=False, log=lambda s: None).detector
    assert ck.threshold_files == tuple(it.path for it in items[3:]) and ck.threshold_level == "event"
    assert ck.validation_events["events"] == sum(len(it.events) for it in items[3:])
    assert not set(ck.threshold_files) & set(ck.train_files + ck.val_files)
    with pytest.raises(DataError, match="threshold recordings need annotations"):
        from dataclasses import replace
        train_detector(enc, items[:3], out=tmp_path / "u.pt", config=DetectorConfig(epochs=1),
                       threshold_items=[replace(items[3], events=None)], progress=False, log=lambda s: None)


def test_the_command_line_chooses_the_threshold_on_threshold_files(corpus, tmp_path):
    """`train-detector --threshold-file F --threshold-annotations CSV`: the threshold is chosen at event level on
    F, which is never trained on; the half-given or overlapping forms are refused by name."""
    from sonotype.cli import main
    from sonotype.errors import ConfigError
    root, items, enc = corpus
    train = [str(root / n) for n in ("a.wav", "b.wav", "c.wav")]
    table = tmp_path / "events.csv"
    table.write_text("filename,start,end\n" + "".join(f"{n},{a},{b}\n" for n in ("a.wav", "b.wav", "c.wav", "d.wav")
                                                      for a, b in CALLS[n]))
    held = tmp_path / "held.csv"
    held.write_text("filename,start,end\n" + "".join(f"d.wav,{a},{b}\n" for a, b in CALLS["d.wav"]))
    out = tmp_path / "cli.pt"
    assert main(["train-detector", *train, "--annotations", str(table), "--allow-unmatched", "--encoder", str(enc),
                 "--out", str(out), "--epochs", "10", "--threshold-file", str(root / "d.wav"),
                 "--threshold-annotations", str(held), "--report-dir", "", "--quiet"]) == 0
    det = load_model(out, kind="detector").checkpoint.detector
    assert det.threshold_files == (str(root / "d.wav"),) and det.threshold_level == "event"
    assert det.validation_events["events"] == len(CALLS["d.wav"])
    assert str(root / "d.wav") not in det.train_files + det.val_files
    from sonotype import api
    base = dict(encoder=str(enc), out=str(tmp_path / "x.pt"), annotations=str(table), allow_unmatched=True,
                report_dir="", progress=False, log=lambda s: None)
    with pytest.raises(ConfigError, match="needs the events in it"):
        api.train_detector(train, threshold_files=(str(root / "d.wav"),), **base)
    with pytest.raises(ConfigError, match="give those recordings too"):
        api.train_detector(train, threshold_annotations=str(held), **base)
    with pytest.raises(ConfigError, match="both a training file and a --threshold-file"):
        api.train_detector(train, threshold_files=(train[0],), threshold_annotations=str(table), **base)
    with pytest.raises(ConfigError, match="give --threshold-folds or --threshold-file, not both"):
        api.train_detector(train, threshold_files=(str(root / "d.wav"),), threshold_annotations=str(held),
                           threshold_folds=2, **base)


def _heads(ck):
    return [ck.detector.head] + [m.head for m in ck.detector.ensemble]


def test_seed_ensemble_is_carried_and_averaged_by_detect(corpus, tmp_path):
    from sonotype.models.embed import file_embeddings, head_scores
    from sonotype.models.lstm_v3 import DetectorHead
    _, items, enc = corpus
    ck = train_detector(enc, items[:4], out=tmp_path / "ens.pt", config=DetectorConfig(epochs=6, ensemble=3, seed=2),
                        progress=False, log=lambda s: None)
    assert len(ck.detector.ensemble) == 2 and ck.detector.config["ensemble"] == 3
    heads = _heads(ck)
    assert not np.allclose(heads[0]["net.1.weight"].numpy(), heads[1]["net.1.weight"].numpy())  # other seeds
    m = load_model(tmp_path / "ens.pt", kind="detector")
    assert len(m.members) == 2 and all(e is m.encoder for e, _ in m.members)  # frozen: one shared encoder
    it = items[4]
    got = file_scores(m, it.path, channel=it.channel, sample_rate=it.sample_rate)
    z = file_embeddings(m.encoder, it.path, m.frontend, channel=it.channel, sample_rate=it.sample_rate)
    want = []
    for state in heads:  # by hand: each member's head on the shared embeddings, then the mean
        h = DetectorHead(z.shape[1])
        h.load_state_dict(state)
        want.append(head_scores(h, z))
    assert np.allclose(got, np.mean(want, axis=0), atol=1e-6)
    assert not np.allclose(got, want[0], atol=1e-4)
    # the seed-2 single detector is the ensemble's first member
    one = train_detector(enc, items[:4], out=tmp_path / "one.pt", config=DetectorConfig(epochs=6, seed=2),
                         progress=False, log=lambda s: None)
    assert one.detector.ensemble == () and np.allclose(one.detector.head["net.1.weight"].numpy(),
                                                             heads[0]["net.1.weight"].numpy())


def test_augmentation_and_hard_negatives_are_seeded(corpus, tmp_path):
    _, items, enc = corpus
    cfg = DetectorConfig(epochs=4, seed=1, augment=1.0, snr_low=-5.0, snr_high=5.0, time_mask=4, freq_mask=20,
                         mixup=0.3, hard_negatives=10, threshold_level="window")
    logs = []
    a = train_detector(enc, items[:4], out=tmp_path / "a.pt", config=cfg, progress=False, log=logs.append)
    b = train_detector(enc, items[:4], out=tmp_path / "b.pt", config=cfg, progress=False, log=lambda s: None)
    assert any(line.startswith("augmentation:") for line in logs), logs
    assert np.array_equal(a.detector.head["net.1.weight"].numpy(), b.detector.head["net.1.weight"].numpy())
    c = train_detector(enc, items[:4], out=tmp_path / "c.pt", config=DetectorConfig(epochs=4, seed=1,
                       threshold_level="window"), progress=False, log=lambda s: None)
    assert not np.allclose(a.detector.head["net.1.weight"].numpy(), c.detector.head["net.1.weight"].numpy())
    with pytest.raises(DataError, match="annotated calls"):
        from dataclasses import replace
        labelled = [replace(items[0], events=None, label=1), replace(items[1], events=None, label=0),
                    replace(items[2], events=None, label=1), replace(items[3], events=None, label=0)]
        train_detector(enc, labelled, out=tmp_path / "x.pt", config=DetectorConfig(epochs=1, augment=1.0,
                       val_split="time", threshold_level="window"), progress=False, log=lambda s: None)


def test_finetuned_pcen_ensemble_with_augmentation(corpus, tmp_path):
    root, items, enc = corpus
    cfg = DetectorConfig(epochs=1, finetune=True, stride=16, seed=0, ensemble=2, augment=0.5, time_mask=4,
                         freq_mask=16, mixup=0.2, hard_negatives=8, scale="pcen", device="cpu")
    ck = train_detector(enc, items[:4], out=tmp_path / "ftp.pt", cache_dir=root / "cache-pcen", config=cfg,
                        progress=False, log=lambda s: None)
    assert ck.frontend.scale == "pcen" and ck.detector.ensemble[0].encoder is not None
    m = load_model(tmp_path / "ftp.pt", kind="detector")
    assert m.frontend.scale == "pcen" and len(m.members) == 1 and m.members[0][0] is not m.encoder
    it = items[4]
    s = file_scores(m, it.path, channel=it.channel, sample_rate=it.sample_rate)
    assert s.shape == (m.frontend.at_rate(it.sample_rate).n_windows(it.frames),) and np.isfinite(s).all()


def test_detector_config_rejects_bad_values():
    from sonotype.errors import ConfigError
    for kw in ({"ensemble": 0}, {"snr_low": 5.0, "snr_high": 0.0}, {"augment": -1.0}, {"scale": "mel"}):
        with pytest.raises(ConfigError):
            DetectorConfig(**kw)
    import torch
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            from sonotype.training.train import pick_device
            pick_device(DetectorConfig(device="cuda").device)


def test_cli_generalisation_options_are_detector_config_fields(corpus, tmp_path):
    from sonotype import cli
    name, c = cli.parse(["train-detector", "x.wav", "--encoder", "e.pt", "--out", "d.pt", "--augment", "2",
                         "--snr-low", "-3", "--time-mask", "4", "--ensemble", "3", "--scale", "pcen",
                         "--hard-negatives", "50", "--device", "cpu"])
    cfg = c.detector
    given = {k: getattr(cfg, k) for k in ("augment", "snr_low", "time_mask", "ensemble", "scale", "hard_negatives",
                                          "device")}
    assert name == "train-detector" and given == {"augment": 2.0, "snr_low": -3.0, "time_mask": 4, "ensemble": 3,
                                                  "scale": "pcen", "hard_negatives": 50, "device": "cpu"}
    assert cfg.snr_high == DetectorConfig().snr_high  # untouched options keep DetectorConfig's default
    _, items, enc = corpus
    rc = cli.main(["train-detector", *[it.path for it in items[:4]], "--encoder", str(enc), "--out",
                   str(tmp_path / "cli.pt"), "--epochs", "2", "--ensemble", "2", "--report-dir", "", "--quiet",
                   "--annotations", str(_table(items[:4], tmp_path / "ann.csv"))])
    assert rc == 0 and len(load_model(tmp_path / "cli.pt", kind="detector").members) == 1


def _table(items, path):
    rows = ["filename,start,end"] + [f"{it.path},{e.start},{e.end}" for it in items for e in it.events]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_threshold_folds_deal_out_the_annotated_files():
    from dataclasses import dataclass

    from sonotype.detection.crossval import fold_of_files
    from sonotype.errors import ConfigError

    @dataclass(frozen=True)
    class It:  # what fold_of_files reads of an Item
        path: str
        events: tuple | None

    files = [It(f"f{i}.wav", ()) for i in range(7)] + [It("label-only.wav", None)]
    a = fold_of_files(files, folds=3, seed=0)
    assert a == fold_of_files(files, folds=3, seed=0) and a != fold_of_files(files, folds=3, seed=1)
    assert "label-only.wav" not in a and sorted(a) == [f"f{i}.wav" for i in range(7)]
    assert sorted(np.bincount(list(a.values()))) == [2, 2, 3]
    # recordings with calls are dealt first: every fold gets some, whatever the seed
    mixed = [It(f"call{i}.wav", (Event(1.0, 2.0),)) for i in range(3)] + [It(f"quiet{i}.wav", ()) for i in range(5)]
    for seed in range(20):
        f = fold_of_files(mixed, folds=3, seed=seed)
        assert sorted(f[f"call{i}.wav"] for i in range(3)) == [0, 1, 2]
        assert sorted(np.bincount(list(f.values()))) == [2, 3, 3]
    for bad in (1, 0, True, 2.0):
        with pytest.raises(ConfigError, match="threshold folds must be an int >= 2"):
            fold_of_files(files, folds=bad, seed=0)
    with pytest.raises(ConfigError, match="need at least 9 annotated recordings, got 7"):
        fold_of_files(files, folds=9, seed=0)


def test_cross_validated_threshold_scores_each_file_by_a_detector_that_never_saw_it(corpus, tmp_path):
    from sonotype.detection.crossval import cross_validated_spans, fold_of_files, train_detector_cv
    from sonotype.detection.detector import validation_spans
    _, items, enc = corpus
    cfg = DetectorConfig(epochs=5, seed=0, val_split="time", val_fraction=0.5)  # 2-3 files a fold: split in time
    spans = cross_validated_spans(enc, items, folds=2, config=cfg, log=lambda s: None)
    assert sorted(spans) == sorted(it.path for it in items)
    # fold 0 again by hand: a detector trained on the other fold scores fold 0's files exactly as pooled
    fold = fold_of_files(items, folds=2, seed=0)
    held = [it for it in items if fold[it.path] == 0]
    train_detector(enc, [it for it in items if fold[it.path] == 1], out=tmp_path / "f0.pt", config=cfg,
                   progress=False, log=lambda s: None)
    m = load_model(tmp_path / "f0.pt", kind="detector")
    again = validation_spans([(m.encoder, m.head)], m.frontend, held, mode="file",
                             val_files=[it.path for it in held], fraction=0.0)
    for p, sp in again.items():
        np.testing.assert_allclose(spans[p].scores, sp.scores, rtol=0, atol=1e-6)
    ck = train_detector_cv(enc, items, out=tmp_path / "cv.pt", folds=2, config=cfg, progress=False,
                           log=lambda s: None).detector
    assert ck.threshold_level == "event" and ck.data["threshold_folds"] == 2
    assert ck.validation_events["events"] == sum(len(it.events) for it in items)  # every event, not a tail's
    assert 0 < ck.threshold < 1
