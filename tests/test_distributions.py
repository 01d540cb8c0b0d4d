import math

import torch

from dreamer2.distributions import BernoulliDist, OneHotDist, TruncNormalDist, categorical_kl


def test_straight_through_onehot_forward_and_gradient():
    torch.manual_seed(0)
    logits = torch.randn(5, 4, requires_grad=True)
    dist = OneHotDist(logits)
    sample = dist.sample()
    # Forward: exactly one-hot.
    # (exact up to float rounding of probs - sg(probs))
    torch.testing.assert_close(sample.detach(), torch.round(sample.detach()), atol=1e-6, rtol=0)
    assert torch.equal(torch.round(sample.detach()).sum(-1), torch.ones(5))
    # Backward: the gradient equals that of the probabilities.
    weights = torch.randn(5, 4)
    (sample * weights).sum().backward()
    grad_sample = logits.grad.clone()
    logits.grad = None
    (torch.softmax(logits, -1) * weights).sum().backward()
    torch.testing.assert_close(grad_sample, logits.grad)


def test_onehot_sampling_frequencies_match_probabilities():
    torch.manual_seed(0)
    probs = torch.tensor([0.1, 0.2, 0.7])
    dist = OneHotDist(probs.log().expand(20000, 3))
    freq = dist.sample().detach().mean(0)
    torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)


def test_onehot_sampling_never_draws_a_class_of_probability_zero(monkeypatch):
    # Logits 1000 apart underflow the first and last probabilities to exactly 0 in fp32.
    logits = torch.tensor([-1000.0, 0.3, 0.1, -1000.0]).expand(50000, 2, 4)
    counts = OneHotDist(logits).sample().detach().sum((0, 1))
    assert counts[0] == 0 and counts[3] == 0
    assert abs(counts[1] / counts.sum() - torch.sigmoid(torch.tensor(0.2))) < 0.01
    # The extreme uniform draws, 0 and the largest float below 1, where the cumulative sum of the
    # probabilities may round below 1: still only the classes of nonzero probability.
    dist = OneHotDist(torch.tensor([[-1000.0, 0.3, 0.1, -1000.0]]))
    for draw in (0.0, 1.0 - 2.0 ** -24):
        monkeypatch.setattr(torch, "rand", lambda *shape, device=None, draw=draw: torch.full(shape[0], draw))
        assert dist.sample_index().item() == (1 if draw == 0.0 else 2)


def test_categorical_kl_by_hand():
    p = torch.tensor([[[0.5, 0.5]]])
    q = torch.tensor([[[0.25, 0.75]]])
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    torch.testing.assert_close(categorical_kl(p.log(), q.log()), torch.tensor([expected]))


def test_trunc_normal_stays_in_bounds_and_integrates_to_one():
    torch.manual_seed(0)
    loc, scale = torch.tensor([0.8]), torch.tensor([0.5])
    dist = TruncNormalDist(loc.expand(10000, 1), scale.expand(10000, 1))
    x = dist.sample()
    assert x.min() > -1 and x.max() < 1
    grid = torch.linspace(-1, 1, 20001)[:, None]
    density = TruncNormalDist(loc.expand(20001, 1), scale.expand(20001, 1)).log_prob(grid).exp()
    torch.testing.assert_close(torch.trapezoid(density, grid[:, 0]), torch.tensor(1.0), atol=1e-3, rtol=0)
    # Entropy matches -E[log p] estimated from samples.
    ent = TruncNormalDist(loc, scale).entropy()
    torch.testing.assert_close(ent, -dist.log_prob(x).mean(), atol=0.03, rtol=0)


def test_trunc_normal_sample_is_reparameterized():
    loc = torch.tensor([[0.1, -0.2]], requires_grad=True)
    scale = torch.tensor([[0.3, 0.4]], requires_grad=True)
    TruncNormalDist(loc, scale).sample().sum().backward()
    assert loc.grad.abs().sum() > 0 and scale.grad is not None


def test_bernoulli_soft_target_log_prob():
    logits = torch.tensor([0.3])
    target = torch.tensor([0.99])
    p = torch.sigmoid(logits)
    expected = 0.99 * torch.log(p) + 0.01 * torch.log(1 - p)
    torch.testing.assert_close(BernoulliDist(logits).log_prob(target), expected)
