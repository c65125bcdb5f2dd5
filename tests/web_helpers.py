"""A small real database for the web tests: synthetic recordings run through the real detector
pipeline (placeholder model), plus cluster assignments, map points and embedding sequences."""

from __future__ import annotations

import csv
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from helpers import placeholder_model, tone_with_gaps

from sonotype.audio.io import write_audio
from sonotype.models.checkpoint import load_model
from sonotype.models.embed import file_scores
from sonotype.runner.batch import detect_many
from sonotype.store import open_store

ALGORITHM = "test-kmeans"
PARAMS = {"k": 3, "encoder": "placeholder"}


@dataclass(frozen=True)
class WebDB:
    root: Path
    db_path: Path
    files: dict[str, Path]  # name -> wav
    run_id: int

    @property
    def url(self) -> str:
        return f"sqlite:///{self.db_path}"

    def copy(self, dest: Path) -> str:
        """A private copy of the database (for tests that change it); returns its URL."""
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / "copy.db"
        src, dst = sqlite3.connect(self.db_path), sqlite3.connect(target)
        try:
            src.backup(dst)  # consistent even while the original is open in WAL mode
        finally:
            src.close()
            dst.close()
        return f"sqlite:///{target}"


def build_web_db(root: Path) -> WebDB:
    root.mkdir(parents=True, exist_ok=True)
    data = root / "audio"
    files = {
        "a.wav": tone_with_gaps(data / "a.wav", seconds=6, seed=1),
        "b.wav": tone_with_gaps(data / "b.wav", seconds=8, seed=2, calls=((0.5, 1.5), (4.0, 5.5), (6.5, 7.2))),
    }
    # a 24-bit file: served as float WAV, still sample-exact
    rng = np.random.default_rng(3)
    x = (0.05 * rng.standard_normal(5 * 48000)).astype(np.float32)
    t = np.arange(48000) / 48000
    x[48000:96000] += (0.4 * np.sin(2 * np.pi * (9000 * t + 3000 * t ** 2))).astype(np.float32)
    files["c24.wav"] = write_audio(data / "c24.wav", x, sample_rate=48000, subtype="PCM_24")
    meta = root / "meta.csv"
    with open(meta, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "encounter", "site", "date"])
        w.writerow(["a.wav", "E1", "Bimini", "2019-10-28"])
        w.writerow(["b.wav", "E2", "Bimini", "2019-10-29"])
        w.writerow(["c24.wav", "E2", "Azores", "2020-06-01T10:00:00"])
    model = placeholder_model(root / "placeholder.pt")
    thr = float(np.median(file_scores(load_model(model), files["a.wav"], channel=0, sample_rate=48000)))
    db_path = root / "web.db"
    s = detect_many([data], model=model, db=f"sqlite:///{db_path}", threshold=thr, metadata_table=meta,
                    progress=False, log=lambda m: None)
    assert s.processed == 3 and s.regions >= 4, s.report()
    with open_store(f"sqlite:///{db_path}") as st:
        regions = st.regions(run_id=s.run_id)
        ids = [g.id for g in regions]
        st.add_cluster_assignments(s.run_id, ALGORITHM, PARAMS, {rid: i % 3 for i, rid in enumerate(ids)})
        rng = np.random.default_rng(0)
        st.put_map_points(s.run_id, "tsne", {"perplexity": 5},
                          {rid: (float(rng.normal()), float(rng.normal())) for rid in ids})
        st.put_sequences("placeholder@test", {rid: rng.normal(size=(2 + i % 3, 8)).astype(np.float32)
                                              for i, rid in enumerate(ids)})
    return WebDB(root, db_path, files, s.run_id)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """The real application under uvicorn in a background thread (``with LiveServer(app) as base_url``)."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


_BUILT: dict[str, WebDB] = {}


def cached_web_db(tmp_path_factory) -> WebDB:
    """The database of :func:`build_web_db`, built once per test session (tests must not change it:
    use :meth:`WebDB.copy` for that)."""
    if "db" not in _BUILT:
        _BUILT["db"] = build_web_db(tmp_path_factory.mktemp("webdb"))
    return _BUILT["db"]
