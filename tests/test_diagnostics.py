import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dreamer2.diagnostics import code_usage, grad_norms, max_entropy, terminal_precision_recall


def test_perplexity_is_classes_for_uniform_codes_and_one_for_collapsed():
    uniform = F.one_hot((torch.arange(64) % 32)[:, None].expand(64, 2), 32)  # every class twice per latent
    perplexity, dead = code_usage(uniform)
    torch.testing.assert_close(perplexity, torch.full((2,), 32.0))
    assert dead.tolist() == [0, 0]
    collapsed = F.one_hot(torch.full((64, 2), 5), 32)
    perplexity, dead = code_usage(collapsed)
    torch.testing.assert_close(perplexity, torch.ones(2))
    assert dead.tolist() == [31, 31]


def test_perplexity_of_two_equally_used_classes_is_two():
    codes = F.one_hot(torch.tensor([[0], [3], [0], [3]]), 8)
    perplexity, dead = code_usage(codes)
    torch.testing.assert_close(perplexity, torch.tensor([2.0]))
    assert dead.tolist() == [6]


def test_terminal_precision_and_recall_by_hand():
    # Predicted terminal where the discount is below 0.495: steps 1, 2, 4. Real terminals: 1, 3, 4.
    pred = torch.tensor([0.99, 0.01, 0.2, 0.98, 0.1])
    real = torch.tensor([False, True, False, True, True])
    precision, recall = terminal_precision_recall(pred, real, 0.99)
    assert precision.item() == pytest.approx(2 / 3) and recall.item() == pytest.approx(2 / 3)
    precision, recall = terminal_precision_recall(torch.full((3,), 0.99), torch.zeros(3, dtype=torch.bool), 0.99)
    assert math.isnan(precision.item()) and math.isnan(recall.item())


def test_max_entropy():
    assert max_entropy(4, True) == math.log(4)
    assert max_entropy(2, False) == 2 * math.log(2)


def test_grad_norms_are_each_modules_l2_norm_and_skip_modules_without_gradients():
    a, b, c = nn.Linear(3, 2), nn.Linear(2, 2, bias=False), nn.Linear(2, 1)
    a.weight.grad, a.bias.grad = torch.full((2, 3), 2.0), torch.tensor([3.0, -4.0])
    b.weight.grad = torch.tensor([[0.0, 3.0], [4.0, 0.0]])
    norms = grad_norms({"a": a, "b": b, "c": c})
    assert set(norms) == {"a", "b"}  # c has no gradient yet
    assert abs(float(norms["a"]) - (6 * 4 + 9 + 16) ** 0.5) < 1e-6 and abs(float(norms["b"]) - 5.0) < 1e-6
