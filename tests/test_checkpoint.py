"""The typed checkpoint: save/load round trips, clear errors for bad files, and no string-keyed reads elsewhere."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from sonotype.errors import CheckpointError
from sonotype.features.frontend import PRESETS
from sonotype.models.checkpoint import (
    CHECKPOINT_VERSION,
    Checkpoint,
    DetectorPart,
    DistillPart,
    EnsembleMember,
    TrainingData,
    load_checkpoint,
    load_model,
)
from sonotype.models.lstm_v3 import DetectorHead, Encoder, EncoderConfig, NextFramePredictor

SRC = Path(__file__).resolve().parents[1] / "src" / "sonotype"
FE = PRESETS["dolphin"]
CFG = EncoderConfig(window=FE.window, n_bins=FE.n_bins)


def _encoder_checkpoint(seed: int = 0) -> Checkpoint:
    """Every field of an encoder checkpoint filled, as `sonotype train` fills them (plus a distill part)."""
    torch.manual_seed(seed)
    enc, pred = Encoder(CFG), NextFramePredictor(CFG)
    opt = torch.optim.Adam(list(enc.parameters()) + list(pred.parameters()), lr=1e-3)
    pred(enc(torch.randn(2, CFG.window, CFG.n_bins))).pow(2).sum().backward()  # x (2, W, B) -> (2, B)
    opt.step()  # an optimizer state with moments, as after one batch
    head = torch.nn.Linear(CFG.embedding_dim, 3)
    return Checkpoint(
        kind="encoder", encoder_config=CFG, frontend=FE, channel=1, model_version="enc-v1",
        data=TrainingData(("a.wav", "b.wav"), 48000.0, {"train_windows": 10, "val_windows": 2, "preset": "dolphin"}),
        train_config={"epochs": 2, "batch_size": 4}, epoch=1,
        history=({"epoch": 1, "train_loss": 0.5, "val_loss": float("nan")}, {"epoch": 2, "train_loss": 0.4, "val_loss": 0.3}),
        encoder=enc.state_dict(), predictor=pred.state_dict(), optimizer=opt.state_dict(),
        rng_torch=torch.get_rng_state(),
        distill=DistillPart(teacher={"name": "rms", "dim": 3}, config={"epochs": 4}, head=head.state_dict(),
                            target_mean=torch.zeros(3), target_std=torch.ones(3), student_init="init.pt"))


def _detector_checkpoint() -> Checkpoint:
    """A detector with a two-member seed ensemble (one fine-tuned member with its own encoder)."""
    base = _encoder_checkpoint()
    heads = [DetectorHead(CFG.embedding_dim, hidden=8).state_dict() for _ in range(3)]
    part = DetectorPart(
        head=heads[0], threshold=0.37, dropout=0.25, hidden=8, config={"epochs": 3, "min_overlap": 0.3},
        history=({"epoch": 1, "train_loss": 0.6, "val_loss": 0.5},), validation={"confusion": {"f1": 0.8}},
        val_split="file", threshold_level="event", window_threshold=0.41, validation_events={"events": 5},
        finetuned=True, ensemble=(EnsembleMember(heads[1], Encoder(CFG).state_dict()), EnsembleMember(heads[2])),
        train_files=("a.wav",), val_files=("b.wav",), threshold_files=("long.wav",), data={"inputs": ["x"]})
    return base.renewed(kind="detector", detector=part, encoder_checkpoint="enc.pt", optimizer=None, rng_torch=None)


@pytest.mark.parametrize("make", [_encoder_checkpoint, _detector_checkpoint], ids=["encoder", "detector"])
def test_save_then_load_gives_the_same_checkpoint(make, tmp_path):
    ck = make()
    back = load_checkpoint(ck.save(tmp_path / "m.pt"))
    assert back == ck and back.source == str(tmp_path / "m.pt")
    assert back.encoder_config == CFG and back.frontend == FE and back.data.sample_rate == 48000.0
    assert back.history[0]["val_loss"] != back.history[0]["val_loss"]  # NaN kept
    # the comparison sees a change anywhere: a tensor, a nested note, a member
    w = dict(ck.encoder)
    w["local_conv.weight"] = w["local_conv.weight"] + 1e-6
    assert replace(ck, encoder=w) != ck
    assert replace(ck, data=replace(ck.data, notes={**ck.data.notes, "preset": "orca"})) != ck
    if ck.detector is not None:
        assert replace(ck, detector=replace(ck.detector, ensemble=ck.detector.ensemble[:1])) != ck
    # on disk: a plain dict with the format tag and version, readable without sonotype's classes
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert raw["format"] == "sonotype" and raw["version"] == CHECKPOINT_VERSION and isinstance(raw["frontend"], dict)
    assert not (tmp_path / "m.pt.tmp").exists()


def test_a_detector_checkpoint_loads_as_a_model_with_its_ensemble(tmp_path):
    ck = _detector_checkpoint()
    m = load_model(ck.save(tmp_path / "d.pt"), kind="detector")
    assert m.threshold == 0.37 and m.head.net[1].out_features == 8 and m.checkpoint == ck
    (e1, h1), (e2, h2) = m.members
    assert e1 is not m.encoder and e2 is m.encoder  # the fine-tuned member has its own encoder, the other shares
    for got, want in ((h1, ck.detector.ensemble[0].head), (h2, ck.detector.ensemble[1].head)):
        assert all(torch.equal(got.state_dict()[k], v) for k, v in want.items())
    assert not m.encoder.training and not h1.training
    assert m.version == "enc-v1"


def _write(path: Path, d: dict) -> Path:
    torch.save(d, path)
    return path


def _layout(ck: Checkpoint) -> dict:
    return {"format": "sonotype", "version": CHECKPOINT_VERSION, **ck.to_dict()}


@pytest.mark.parametrize("field, change, says", [
    ("encoder", lambda d: d.pop("encoder"), "'encoder' is missing"),
    ("kind", lambda d: d.update(kind="decoder"), "'kind' is 'decoder'"),
    ("encoder_config", lambda d: d.update(encoder_config=[1, 2]), "'encoder_config' is list"),
    ("detector.threshold", lambda d: d["detector"].update(threshold="high"), "'detector.threshold' is str"),
    ("detector.head", lambda d: d["detector"].pop("head"), "'detector.head' is missing"),
    ("detector.ensemble", lambda d: d["detector"]["ensemble"][0].update(head={"w": 1.0}),
     "'detector.ensemble[0].head' is not a state dict"),
    ("detector", lambda d: d.pop("detector"), "'detector' is missing in a detector checkpoint"),
    ("data.files", lambda d: d["data"].update(files="a.wav"), "'data.files' is str"),
])
def test_a_missing_or_wrong_field_names_the_file_and_the_field(field, change, says, tmp_path):
    d = _layout(_detector_checkpoint())
    change(d)
    p = _write(tmp_path / f"{field}.pt", d)
    with pytest.raises(CheckpointError, match=re.escape(says)) as e:
        load_checkpoint(p)
    assert str(p) in str(e.value) and "retrain" in str(e.value)


def test_wrong_version_foreign_files_and_code_are_refused_naming_the_file(tmp_path):
    d = _layout(_encoder_checkpoint())
    cases = {
        "v2.pt": ({**d, "version": 2}, r"checkpoint version 2, this sonotype reads version 1; retrain"),
        "untagged.pt": ({k: v for k, v in d.items() if k != "format"}, "not a sonotype checkpoint"),
        "list.pt": ([1, 2, 3], "not a sonotype checkpoint"),
    }
    for name, (obj, says) in cases.items():
        with pytest.raises(CheckpointError, match=says) as e:
            load_checkpoint(_write(tmp_path / name, obj))
        assert str(tmp_path / name) in str(e.value)
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable sonotype checkpoint"):
        load_checkpoint(tmp_path / "text.pt")
    # a pickled object (code to run on load) is never unpickled: weights_only refuses it
    torch.save({**d, "payload": TrainingData()}, tmp_path / "code.pt")
    with pytest.raises(CheckpointError, match=r"code\.pt: not a readable sonotype checkpoint"):
        load_checkpoint(tmp_path / "code.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match="holds an encoder only"):
        load_checkpoint(_encoder_checkpoint().save(tmp_path / "e.pt"), kind="detector")


def test_weights_that_do_not_fit_the_config_name_the_field(tmp_path):
    ck = _detector_checkpoint()
    small = Encoder(replace(CFG, lstm_units=64)).state_dict()
    with pytest.raises(CheckpointError, match=r"d\.pt: field 'encoder' does not match"):
        load_model(replace(ck, encoder=small).save(tmp_path / "d.pt"))
    bad = replace(ck.detector, ensemble=(EnsembleMember(DetectorHead(64).state_dict()),))
    with pytest.raises(CheckpointError, match=r"field 'detector.ensemble\[0\].head' does not match"):
        load_model(replace(ck, detector=bad).save(tmp_path / "d.pt"))


def test_a_version_1_file_from_the_dict_writers_still_loads(tmp_path):
    """The layout the earlier dict writers produced (no ensemble, no threshold_files, optimizer None, a
    front end without pcen_time): loads, with the documented defaults for what it lacks."""
    torch.manual_seed(0)
    enc, head = Encoder(CFG), DetectorHead(CFG.embedding_dim)
    fe = {k: v for k, v in FE.to_dict().items() if k != "pcen_time"}
    old = {"format": "sonotype", "version": 1, "sonotype_version": "0.0.9", "created": "2025-01-01T00:00:00+00:00",
           "kind": "detector", "encoder_config": CFG.to_dict(), "frontend": fe, "channel": None,
           "data": {"files": ["a.wav"], "train_windows": 7}, "history": [], "epoch": 3, "optimizer": None,
           "encoder": enc.state_dict(), "predictor": {},
           "detector": {"head": head.state_dict(), "dropout": 0.5, "hidden": 0, "threshold": 0.6, "config": {},
                        "train_files": ["a.wav"], "val_files": []}}
    ck = load_checkpoint(_write(tmp_path / "old.pt", old))
    assert ck.detector.ensemble == () and ck.detector.threshold_files == () and ck.optimizer is None
    assert ck.data == TrainingData(("a.wav",), None, {"train_windows": 7}) and ck.created == old["created"]
    assert ck.frontend == FE and ck.epoch == 3
    m = load_model(tmp_path / "old.pt", kind="detector")
    assert m.threshold == 0.6 and m.members == () and m.version == "old"


#: reading a checkpoint through string keys: ck["encoder"], ck.get("history"), model.checkpoint["detector"],
#: and the keys only a checkpoint has, however the variable is called
STRING_KEYED = [
    re.compile(r"\b(ck|dck|ckpt|checkpoint)\s*(\[\s*['\"]|\.get\(\s*['\"])"),
    re.compile(r"\.checkpoint\s*(\[|\.get\()"),
    re.compile(r"(\[\s*|\.get\(\s*)['\"](encoder_config|train_config|rng_torch|encoder_checkpoint|model_version|"
               r"predictor|optimizer|distill|window_threshold|threshold_files|sonotype_version)['\"]"),
    re.compile(r"\btorch\.load\("),  # a raw load bypasses the typed loader
]


def string_keyed_reads(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if any(p.search(line) for p in STRING_KEYED)]


def test_no_module_reads_a_checkpoint_through_string_keys():
    # the patterns catch what they are for (so the test below can fail)
    for bad in ('det = ck.get("detector", {})', 'h = checkpoint["history"]', 'x = model.checkpoint.get("data")',
                'cfg = raw["encoder_config"]', 'last = dck["history"][-1]', 'd = torch.load(p, weights_only=True)'):
        assert string_keyed_reads(bad), bad
    for fine in ('det = ck.detector', 'mo = trained_with.min_overlap', 'fe = run.settings.get("frontend")',
                 'last = ck.history[-1]["val_loss"]'):
        assert not string_keyed_reads(fine), fine
    offenders = {}
    for path in sorted(SRC.rglob("*.py")):
        if path.relative_to(SRC).as_posix() == "models/checkpoint.py":
            continue
        found = string_keyed_reads(path.read_text(encoding="utf-8"))
        if found:
            offenders[path.relative_to(SRC).as_posix()] = found
    assert not offenders, f"read checkpoints through Checkpoint's attributes, not string keys: {offenders}"
