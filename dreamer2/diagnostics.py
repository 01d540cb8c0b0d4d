"""Small pure functions behind the diagnostics that explain training (see docs/diagnostics.md).

They only measure; nothing here changes what is learned.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def code_usage(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Usage of each categorical latent over a batch of one-hot codes [N, latents, classes].

    Returns the perplexity ``exp(H(p))`` of the empirical code distribution ``p`` of each latent
    [latents] (``classes`` when every class is used equally, 1 when the latent has collapsed to
    one class) and the number of classes never used [latents] (dead codes).
    """
    freq = codes.float().mean(0)  # [latents, classes]
    entropy = -(freq * torch.log(freq.clamp_min(1e-12))).sum(-1)
    return entropy.exp(), (freq == 0).sum(-1)


def terminal_precision_recall(pred_discount: torch.Tensor, is_terminal: torch.Tensor, discount: float
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Precision and recall of the discount head on terminal steps.

    The head predicts ``(1 - terminal) * discount``; a step counts as predicted terminal where
    its prediction is below half the discount. NaN where a ratio has no denominator (no
    predicted or no real terminal in the batch; then its numerator is 0 too, and 0 / 0 is NaN):
    the logger skips those. No branch on the counts, so nothing waits for the device.
    """
    predicted = pred_discount < 0.5 * discount
    actual = is_terminal.bool()
    hits = (predicted & actual).sum().float()
    return hits / predicted.sum(), hits / actual.sum()


def grad_norms(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """L2 norm of the current gradients of each named module (before clipping)."""
    norms = {}
    for name, module in modules.items():
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if grads:
            norms[name] = nn.utils.get_total_norm(grads)
    return norms


def max_entropy(action_dim: int, discrete: bool) -> float:
    """Entropy of the uniform policy: log(actions) over one-hot actions, dims * log 2 on [-1, 1]^dims."""
    return math.log(action_dim) if discrete else action_dim * math.log(2.0)
