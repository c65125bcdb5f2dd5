"""Tests of sonotype.models.lstm_v3: the seed report's parameter counts, shapes, the single-bias LSTM,
Keras-style 'same' padding, gradients and determinism."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from sonotype.models.lstm_v3 import (
    BiasInputLSTM,
    DetectorHead,
    Encoder,
    EncoderConfig,
    NextFramePredictor,
    parameter_counts,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is fastest and does not fight other processes for the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SEED_COUNTS = {"conv2d": 4160, "conv1d": 131136, "bidirectional": 41216, "lstm": 98816, "total": 275328}


def formula_counts(c: EncoderConfig) -> dict[str, int]:
    """Parameter counts from the layer shapes (Keras LSTM: one bias per gate)."""
    kt, kf = c.local_kernel
    width = c.local_filters + c.global_filters
    out = {
        "conv2d": c.local_filters * (kt * kf * 1 + 1),
        "conv1d": c.global_filters * (c.n_bins * c.global_kernel + 1),
        "bidirectional": 2 * 4 * c.bilstm_units * (width + c.bilstm_units + 1),
        "lstm": 4 * c.lstm_units * (2 * c.bilstm_units + c.lstm_units + 1),
    }
    if c.batch_norm:
        out["batch_normalization"] = 2 * width  # gamma and beta (running stats are buffers)
    out["total"] = sum(out.values())
    return out


def test_seed_parameter_counts():
    enc = Encoder()
    counts = parameter_counts(enc)
    assert counts == SEED_COUNTS
    assert formula_counts(EncoderConfig()) == SEED_COUNTS
    assert sum(p.numel() for p in enc.parameters()) == 275328


def test_batch_norm_adds_its_parameters():
    enc = Encoder(EncoderConfig(batch_norm=True))
    counts = parameter_counts(enc)
    assert counts["batch_normalization"] == 256
    assert counts == {**SEED_COUNTS, "batch_normalization": 256, "total": 275328 + 256}
    assert list(counts) == ["conv2d", "conv1d", "batch_normalization", "bidirectional", "lstm", "total"]


@pytest.mark.parametrize("config", [
    EncoderConfig(lstm_units=256, local_filters=128),
    EncoderConfig(n_bins=64, window=16, global_filters=32, global_kernel=5, bilstm_units=48, batch_norm=True),
    EncoderConfig(local_kernel=(3, 5), lstm_units=64),
])
def test_other_configs_count_by_formula(config):
    counts = parameter_counts(Encoder(config))
    assert counts == formula_counts(config)
    assert counts != SEED_COUNTS


def test_bigger_config_numbers():
    c = EncoderConfig(lstm_units=256, local_filters=128)
    counts = parameter_counts(Encoder(c))
    assert counts["conv2d"] == 128 * 65 == 8320
    assert counts["conv1d"] == 131136
    assert counts["bidirectional"] == 2 * 4 * 32 * (192 + 32 + 1) == 57600
    assert counts["lstm"] == 4 * 256 * (64 + 256 + 1) == 328704
    assert counts["total"] == 8320 + 131136 + 57600 + 328704


@pytest.mark.parametrize("n", [1, 3, 17])
def test_output_shapes(n):
    enc = Encoder().eval()
    x = torch.randn(n, 32, 256)
    with torch.no_grad():
        z = enc(x)
        seq = enc.sequence(x)
    assert z.shape == (n, 128) and z.dtype == torch.float32
    assert seq.shape == (n, 32, 64)
    assert torch.isfinite(z).all()
    assert Encoder().config.embedding_dim == 128
    pred = NextFramePredictor().eval()(z)
    assert pred.shape == (n, 256)
    assert DetectorHead(128).eval()(z).shape == (n,)
    assert DetectorHead(128, hidden=32).eval()(z).shape == (n,)


def test_output_shapes_other_config():
    c = EncoderConfig(window=20, n_bins=48, lstm_units=40, bilstm_units=8, global_kernel=5, local_kernel=(3, 6))
    enc = Encoder(c).eval()
    with torch.no_grad():
        assert enc(torch.randn(4, 20, 48)).shape == (4, 40)


# ------------------------------------------------------------------ single-bias LSTM


def standard_lstm_from(m: BiasInputLSTM, *, split_seed: int) -> nn.LSTM:
    """An ordinary two-bias nn.LSTM with the same weights, whose b_ih + b_hh equals the bias column."""
    src = m.lstm
    ref = nn.LSTM(src.input_size - 1, src.hidden_size, batch_first=True, bias=True, bidirectional=src.bidirectional)
    g = torch.Generator().manual_seed(split_seed)
    with torch.no_grad():
        for sfx in [""] + (["_reverse"] if src.bidirectional else []):
            w_ih = getattr(src, f"weight_ih_l0{sfx}")
            bias = w_ih[:, -1]
            getattr(ref, f"weight_ih_l0{sfx}").copy_(w_ih[:, :-1])
            getattr(ref, f"weight_hh_l0{sfx}").copy_(getattr(src, f"weight_hh_l0{sfx}"))
            part = torch.randn(bias.shape, generator=g)  # any split of the bias between the two vectors
            getattr(ref, f"bias_ih_l0{sfx}").copy_(bias - part)
            getattr(ref, f"bias_hh_l0{sfx}").copy_(part)
    return ref


@pytest.mark.parametrize("bidirectional", [False, True])
def test_single_bias_lstm_equals_standard_lstm(bidirectional):
    torch.manual_seed(0)
    m = BiasInputLSTM(12, 7, bidirectional=bidirectional)
    with torch.no_grad():  # non-trivial biases, not just the initial 0/1
        for name, p in m.lstm.named_parameters():
            if name.startswith("weight_ih"):
                p[:, -1] = torch.randn(p.shape[0])
    ref = standard_lstm_from(m, split_seed=1)
    x = torch.randn(5, 9, 12)
    with torch.no_grad():
        got = m(x)
        want, _ = ref(x)
    assert got.shape == (5, 9, 7 * (2 if bidirectional else 1))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # one bias per gate: 4*H per direction, i.e. one weight column, and no bias parameters at all
    assert all("bias" not in name for name, _ in m.named_parameters())
    assert sum(p.numel() for p in m.parameters()) == (2 if bidirectional else 1) * 4 * 7 * (12 + 1 + 7)


def test_single_bias_lstm_keras_initial_bias():
    m = BiasInputLSTM(10, 6, bidirectional=True)
    for name, p in m.lstm.named_parameters():
        if name.startswith("weight_ih"):
            col = p[:, -1]
            # PyTorch gate order i, f, g, o: forget-gate bias 1, the others 0
            assert torch.equal(col[6:12], torch.ones(6))
            assert torch.equal(torch.cat([col[:6], col[12:]]), torch.zeros(18))


def test_encoder_lstms_are_standard_lstms():
    """The whole encoder computed with ordinary two-bias LSTMs gives the same embeddings."""
    torch.manual_seed(1)
    enc = Encoder().eval()
    bi, uni = standard_lstm_from(enc.bilstm, split_seed=2), standard_lstm_from(enc.lstm, split_seed=3)
    x = torch.randn(3, 32, 256)
    with torch.no_grad():
        captured = {}
        h = enc.bilstm.register_forward_hook(lambda mod, inp, out: captured.update(inp=inp[0]))
        z = enc(x)
        h.remove()
        seq, _ = bi(captured["inp"])
        want, _ = uni(seq)
    torch.testing.assert_close(z, want[:, -1], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ 'same' padding


def conv_outputs(enc: Encoder, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Raw (pre-ReLU) outputs of the two convolutions during a forward pass. The local conv runs inside
    :func:`~sonotype.models.localconv.local_max` (fused with the max over frequency): its full map is
    recomputed from the input and the padding the encoder passed it."""
    import sonotype.models.lstm_v3 as lstm_v3
    out = {}
    fused = lstm_v3.local_max

    def spy(x, weight, bias, *, pad):
        out["local"] = F.conv2d(F.pad(x, pad).unsqueeze(1), weight, bias)  # (N, C, W, B)
        return fused(x, weight, bias, pad=pad)

    hook = enc.global_conv.register_forward_hook(lambda m, i, o: out.update(glob=o))
    lstm_v3.local_max = spy
    try:
        with torch.no_grad():
            enc(x)
    finally:
        lstm_v3.local_max = fused
        hook.remove()
    return out


@pytest.mark.parametrize("kt,kf,kg", [(8, 8, 8), (4, 6, 2), (5, 3, 7), (1, 2, 1)])
def test_same_padding_keeps_lengths(kt, kf, kg):
    c = EncoderConfig(window=13, n_bins=21, local_kernel=(kt, kf), global_kernel=kg, local_filters=4,
                      global_filters=5, bilstm_units=3, lstm_units=6)
    out = conv_outputs(Encoder(c).eval(), torch.randn(2, 13, 21))
    assert out["local"].shape == (2, 4, 13, 21)
    assert out["glob"].shape == (2, 5, 13)


@pytest.mark.parametrize("kt,kf,kg", [(8, 8, 8), (4, 6, 2), (5, 3, 7)])
def test_same_padding_is_keras_convention(kt, kf, kg):
    """Keras 'same': total padding k-1, floor((k-1)/2) before and the rest after. An impulse at
    input position t therefore reaches outputs t-(k//2) .. t+(k-1)//2; for k=8 that is t-4..t+3."""
    torch.manual_seed(2)
    c = EncoderConfig(window=24, n_bins=30, local_kernel=(kt, kf), global_kernel=kg, local_filters=6,
                      global_filters=6, bilstm_units=3, lstm_units=6)
    enc = Encoder(c).eval()
    with torch.no_grad():  # strictly positive kernels so every in-reach output changes
        enc.local_conv.weight.uniform_(0.5, 1.0)
        enc.global_conv.weight.uniform_(0.5, 1.0)
    base = conv_outputs(enc, torch.zeros(1, 24, 30))
    t, b = 11, 17
    x = torch.zeros(1, 24, 30)
    x[0, t, b] = 1.0
    hit = conv_outputs(enc, x)

    def reach(k, pos, n):
        return [i for i in range(n) if pos - k // 2 <= i <= pos + (k - 1) // 2]

    glob_changed = (hit["glob"] - base["glob"]).abs().amax(dim=(0, 1)) > 0  # (W,)
    assert glob_changed.nonzero().flatten().tolist() == reach(kg, t, 24)
    local_changed = (hit["local"] - base["local"]).abs().amax(dim=(0, 1)) > 0  # (W, B)
    times = local_changed.any(dim=1).nonzero().flatten().tolist()
    freqs = local_changed.any(dim=0).nonzero().flatten().tolist()
    assert times == reach(kt, t, 24)
    assert freqs == reach(kf, b, 30)
    if (kt, kf, kg) == (8, 8, 8):
        assert times == list(range(t - 4, t + 4)) and freqs == list(range(b - 4, b + 4))


def test_same_padding_impulse_at_edges():
    """At the ends the reach is clipped, nothing wraps around."""
    enc = Encoder().eval()
    with torch.no_grad():
        enc.global_conv.weight.uniform_(0.5, 1.0)
    base = conv_outputs(enc, torch.zeros(1, 32, 256))["glob"]
    for t, want in ((0, list(range(0, 4))), (31, list(range(27, 32)))):
        x = torch.zeros(1, 32, 256)
        x[0, t, 100] = 1.0
        changed = (conv_outputs(enc, x)["glob"] - base).abs().amax(dim=(0, 1)) > 0
        assert changed.nonzero().flatten().tolist() == want


# ------------------------------------------------------------------ training and inference


@pytest.mark.parametrize("batch_norm", [False, True])
def test_gradient_reaches_every_parameter(batch_norm):
    torch.manual_seed(3)
    enc = Encoder(EncoderConfig(batch_norm=batch_norm)).train()
    head = NextFramePredictor().train()
    x = torch.randn(6, 32, 256)
    target = torch.randn(6, 256)
    loss = ((head(enc(x)) - target) ** 2).mean()
    loss.backward()
    for name, p in list(enc.named_parameters()) + list(head.named_parameters()):
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("batch_norm", [False, True])
def test_eval_forward_is_deterministic_and_batch_independent(batch_norm):
    torch.manual_seed(4)
    enc = Encoder(EncoderConfig(batch_norm=batch_norm))
    if batch_norm:  # give the running statistics non-trivial values
        enc.train()
        with torch.no_grad():
            enc(torch.randn(8, 32, 256) * 2 + 1)
    enc.eval()
    x = torch.randn(9, 32, 256)
    with torch.inference_mode():
        a, b = enc(x), enc(x)
        singles = torch.cat([enc(x[i:i + 1]) for i in range(9)])
    assert torch.equal(a, b)
    torch.testing.assert_close(singles, a, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(enc(x), a)


def test_config_round_trip():
    c = EncoderConfig(local_kernel=(4, 6), batch_norm=True, lstm_units=64)
    d = c.to_dict()
    d["local_kernel"] = list(d["local_kernel"])  # as it comes back from JSON
    assert EncoderConfig.from_dict({**d, "unknown": 1}) == c


def test_inference_and_training_paths_of_the_frequency_max_agree():
    torch.manual_seed(0)
    enc = Encoder().eval()
    x = torch.randn(3, 32, 256)
    with torch.no_grad():
        fast = enc(x)  # amax path
    slow = enc(x)  # max_pool2d path (grad enabled)
    assert torch.allclose(fast, slow.detach(), atol=1e-6)
