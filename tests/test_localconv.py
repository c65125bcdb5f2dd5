"""The local conv's max-only backward against plain autograd (conv2d + max_pool2d)."""

import pytest
import torch
import torch.nn.functional as F

from sonotype.models.localconv import local_max
from sonotype.models.lstm_v3 import Encoder, EncoderConfig, NextFramePredictor

PAD = (3, 4, 3, 4)  # the encoder's 'same' padding of an 8x8 kernel


def plain(x, w, b):
    y = F.conv2d(F.pad(x, PAD).unsqueeze(1), w, b)  # (N, C, W, B)
    return F.max_pool2d(y, (1, y.shape[3])).squeeze(3)


def grads(fn, x, w, b, g):
    w = w.detach().clone().requires_grad_(True)
    b = b.detach().clone().requires_grad_(True)
    out = fn(x, w, b)
    out.backward(g)
    return out.detach(), w.grad, b.grad


@pytest.mark.parametrize("shape", [(5, 32, 40), (2, 9, 17), (1, 32, 256)])
def test_values_and_gradients_match_plain_autograd(shape):
    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    w = torch.randn(6, 1, 8, 8, generator=gen, dtype=torch.float64)
    b = torch.randn(6, generator=gen, dtype=torch.float64)
    g = torch.randn(shape[0], 6, shape[1], generator=gen, dtype=torch.float64)
    ref = grads(plain, x, w, b, g)
    got = grads(lambda x, w, b: local_max(x, w, b, pad=PAD), x, w, b, g)
    for r, o in zip(ref, got):
        torch.testing.assert_close(o, r, rtol=1e-10, atol=1e-10)


def test_gradcheck_against_finite_differences():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 10, 12, generator=gen, dtype=torch.float64)
    w = torch.randn(3, 1, 8, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w, b: local_max(x, w, b, pad=PAD), (w, b))


def test_input_gradient_falls_back_to_plain_autograd():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 10, 12, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, 8, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    local_max(x, w, b, pad=PAD).sum().backward()
    gx = x.grad.clone()
    x.grad = None
    plain(x, w, b).sum().backward()
    torch.testing.assert_close(gx, x.grad)


def test_encoder_training_step_matches_plain_path(monkeypatch):
    """A whole encoder + predictor loss: the same gradients for every parameter with either path."""
    torch.manual_seed(0)
    cfg = EncoderConfig()
    enc, pred = Encoder(cfg).double(), NextFramePredictor(cfg).double().eval()
    x = torch.randn(4, cfg.window, cfg.n_bins, dtype=torch.float64)
    target = torch.randn(4, cfg.n_bins, dtype=torch.float64)

    def step():
        enc.zero_grad()
        F.mse_loss(pred(enc(x)), target).backward()
        return {k: p.grad.clone() for k, p in enc.named_parameters()}

    fast = step()
    import sonotype.models.lstm_v3 as lstm_v3
    monkeypatch.setattr(lstm_v3, "local_max", lambda x, w, b, *, pad: plain(x, w, b))
    slow = step()
    assert fast.keys() == slow.keys()
    for k in fast:
        torch.testing.assert_close(fast[k], slow[k], rtol=1e-9, atol=1e-12, msg=k)
    assert fast["local_conv.weight"].abs().sum() > 0
