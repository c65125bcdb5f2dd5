"""The LSTM-V3 encoder, its next-frame predictor and the vocalisation detector head.

Encoder (seed report, 275,328 parameters without batch norm)::

    x (N, W=32, B=256)
      local : Conv2D 64 x (8x8), ReLU, 'same' -> max over frequency -> (N, 32, 64)
      global: Conv1D 256 -> 64, kernel 8, ReLU, 'same' over time     -> (N, 32, 64)
      concat -> (N, 32, 128) -> [BatchNorm] -> BiLSTM(32) -> (N, 32, 64) -> LSTM(128), last step -> (N, 128)

The LSTMs carry one bias vector per gate, as in the seed (Keras) model: PyTorch's LSTM has two,
so ours run without bias and read a constant 1 appended to their input; that input's weight
column is the bias. Same function, same parameter count, cuDNN-compatible.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .localconv import local_max


@dataclass(frozen=True)
class EncoderConfig:
    window: int = 32  # frames per window
    n_bins: int = 256  # frequency bins per frame
    local_filters: int = 64
    local_kernel: tuple[int, int] = (8, 8)  # (time, frequency)
    global_filters: int = 64
    global_kernel: int = 8
    batch_norm: bool = False
    bilstm_units: int = 32  # per direction
    lstm_units: int = 128  # = embedding size

    @property
    def embedding_dim(self) -> int:
        return self.lstm_units

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EncoderConfig":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "local_kernel" in d:
            d["local_kernel"] = tuple(d["local_kernel"])
        return cls(**d)


class BiasInputLSTM(nn.Module):
    """``nn.LSTM`` (batch first) with a single bias per gate, folded in as a weight on a constant-1 input."""

    def __init__(self, input_size: int, hidden_size: int, *, bidirectional: bool = False):
        super().__init__()
        self.lstm = nn.LSTM(input_size + 1, hidden_size, batch_first=True, bias=False, bidirectional=bidirectional)
        with torch.no_grad():  # Keras-like start: forget-gate bias 1, other biases 0
            for name, p in self.lstm.named_parameters():
                if name.startswith("weight_ih"):
                    p[:, -1] = 0.0
                    p[hidden_size:2 * hidden_size, -1] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = x.new_ones(x.shape[0], x.shape[1], 1)
        out, _ = self.lstm(torch.cat([x, ones], dim=2))  # (N, T, H * directions)
        return out


class Encoder(nn.Module):
    def __init__(self, config: EncoderConfig = EncoderConfig()):
        super().__init__()
        c = self.config = config
        self.local_conv = nn.Conv2d(1, c.local_filters, c.local_kernel)
        self.global_conv = nn.Conv1d(c.n_bins, c.global_filters, c.global_kernel)
        kt, kf = c.local_kernel  # 'same' padding as in Keras: the extra pad of an even kernel goes after
        self._pad2d = ((kf - 1) // 2, kf // 2, (kt - 1) // 2, kt // 2)
        self._pad1d = ((c.global_kernel - 1) // 2, c.global_kernel // 2)
        width = c.local_filters + c.global_filters
        self.norm = nn.BatchNorm1d(width) if c.batch_norm else nn.Identity()
        self.bilstm = BiasInputLSTM(width, c.bilstm_units, bidirectional=True)
        self.lstm = BiasInputLSTM(2 * c.bilstm_units, c.lstm_units)

    def sequence(self, x: torch.Tensor, local: torch.Tensor | None = None) -> torch.Tensor:
        """Per-frame features before the last LSTM: x (N, W, B) -> (N, W, 2*bilstm_units).

        ``local``: the local conv's features (N, 64, W) when computed elsewhere (:mod:`sonotype.models.sharedconv`)."""
        if local is None:
            # conv, then max over frequency (ReLU commutes with max); training backpropagates through the maxima only
            local = F.relu(local_max(x, self.local_conv.weight, self.local_conv.bias, pad=self._pad2d))  # (N, 64, W)
        glob = F.relu(self.global_conv(F.pad(x.transpose(1, 2), self._pad1d)))  # (N, 64, W) bins as channels
        h = self.norm(torch.cat([local, glob], dim=1))  # (N, 128, W)
        return self.bilstm(h.transpose(1, 2))  # (N, W, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, W, B) normalised windows -> (N, embedding_dim) embeddings."""
        return self.lstm(self.sequence(x))[:, -1]  # (N, 128) last step


class NextFramePredictor(nn.Module):
    """Self-supervised head: embedding -> dropout 0.5 -> linear -> the frame after the window (N, B)."""

    def __init__(self, config: EncoderConfig = EncoderConfig(), *, dropout: float = 0.5):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(config.embedding_dim, config.n_bins)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(z))  # (N, B)


class DetectorHead(nn.Module):
    """Frozen-encoder detector head: embedding -> dropout -> linear -> logit of 'vocalisation' (N,)."""

    def __init__(self, embedding_dim: int = 128, *, dropout: float = 0.5, hidden: int = 0):
        super().__init__()
        d = embedding_dim
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(d, hidden), nn.ReLU(), nn.Dropout(dropout)]
            d = hidden
        layers.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(1)  # (N,) logits; sigmoid gives P(vocalisation)


def parameter_counts(encoder: Encoder) -> dict[str, int]:
    """Trainable parameters per layer, named as in the seed report."""
    def n(m: nn.Module) -> int:
        return sum(p.numel() for p in m.parameters() if p.requires_grad)

    counts = {"conv2d": n(encoder.local_conv), "conv1d": n(encoder.global_conv)}
    if encoder.config.batch_norm:
        counts["batch_normalization"] = n(encoder.norm)
    counts["bidirectional"] = n(encoder.bilstm)
    counts["lstm"] = n(encoder.lstm)
    counts["total"] = n(encoder)
    return counts
