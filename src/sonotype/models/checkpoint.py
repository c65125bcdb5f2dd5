"""Checkpoints that carry their own config, front end, data provenance and version.

A checkpoint is a ``torch.save`` of a plain dict (tensors, numbers, strings, lists, dicts), loaded
with ``weights_only=True`` so that opening a checkpoint never runs code from it::

    format: "sonotype"          version: CHECKPOINT_VERSION     kind: "encoder" | "detector"
    sonotype_version, created, encoder_config, frontend, channel, data, train_config, history,
    encoder (state dict), predictor (state dict), [optimizer], [detector: head config/state, threshold, metrics]
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__
from ..errors import CheckpointError
from ..features.frontend import FrontEnd
from .lstm_v3 import DetectorHead, Encoder, EncoderConfig, NextFramePredictor

CHECKPOINT_FORMAT = "sonotype"
CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | Path, payload: dict) -> Path:
    """Write atomically (temp file + rename): an interrupted save never leaves a half checkpoint."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    body = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "sonotype_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **payload}
    tmp = p.with_name(p.name + ".tmp")
    torch.save(body, tmp)
    os.replace(tmp, p)
    return p


def load_checkpoint(path: str | Path, *, kind: str | None = None) -> dict:
    """Read and validate a checkpoint. ``kind`` ('encoder'/'detector') checks what it holds."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint; train one with `sonotype train` / `sonotype train-detector`")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # the unpickler fails on foreign bytes with any error (KeyError, EOFError, ...)
        raise CheckpointError(f"{p}: not a readable sonotype checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{p}: not a sonotype checkpoint (no format tag)")
    if ck.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{p}: checkpoint version {ck.get('version')!r}, this sonotype reads version "
                              f"{CHECKPOINT_VERSION}; retrain or use a matching sonotype release")
    if kind == "detector" and "detector" not in ck:
        raise CheckpointError(f"{p}: holds an encoder only; train a detector on it with `sonotype train-detector`")
    return ck


@dataclass
class LoadedModel:
    """An encoder (and, for detector checkpoints, its head and threshold) ready for inference."""

    path: str
    encoder: Encoder
    frontend: FrontEnd
    channel: int | str | None
    checkpoint: dict
    head: DetectorHead | None = None
    threshold: float = 0.5
    members: tuple = ()  # further (encoder, head) of a seed ensemble; scores are averaged over all (incl. the first)

    @property
    def version(self) -> str:
        return str(self.checkpoint.get("model_version") or Path(self.path).stem)


def model_version(model: LoadedModel) -> str:
    """A version string that changes whenever the weights change: ``<name>@<sha256 prefix>``."""
    h = hashlib.sha256(Path(model.path).read_bytes()).hexdigest()[:12]
    return f"{model.version}@{h}"


def build_encoder(ck: dict) -> Encoder:
    enc = Encoder(EncoderConfig.from_dict(ck["encoder_config"]))
    enc.load_state_dict(ck["encoder"])
    return enc.eval()


def build_predictor(ck: dict) -> NextFramePredictor:
    pred = NextFramePredictor(EncoderConfig.from_dict(ck["encoder_config"]))
    if ck.get("predictor"):
        pred.load_state_dict(ck["predictor"])
    return pred


def load_model(path: str | Path, *, kind: str | None = None) -> LoadedModel:
    """Load an encoder or detector checkpoint for inference (eval mode, CPU)."""
    ck = load_checkpoint(path, kind=kind)
    try:
        enc = build_encoder(ck)
        head, threshold, members = None, 0.5, []
        if "detector" in ck:
            det = ck["detector"]
            head = DetectorHead(enc.config.embedding_dim, dropout=det.get("dropout", 0.5), hidden=det.get("hidden", 0))
            head.load_state_dict(det["head"])
            head.eval()
            threshold = float(det["threshold"])
            members = []
            for m in det.get("ensemble") or ():  # absent from single-detector checkpoints
                h = DetectorHead(enc.config.embedding_dim, dropout=det.get("dropout", 0.5), hidden=det.get("hidden", 0))
                h.load_state_dict(m["head"])
                e = enc
                if m.get("encoder") is not None:
                    e = Encoder(enc.config)
                    e.load_state_dict(m["encoder"])
                members.append((e.eval(), h.eval()))
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"{path}: checkpoint is incomplete or does not match its config ({e})") from e
    return LoadedModel(str(path), enc, FrontEnd.from_dict(ck["frontend"]), ck.get("channel"), ck, head, threshold,
                       tuple(members))
