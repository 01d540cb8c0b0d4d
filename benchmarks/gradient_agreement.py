"""How much of the actor's gradient is signal: its agreement across replay batches, read from a run.

From a run's checkpoint and replay, the actor's loss gradient is computed on several independent
replay batches (the world model and critics frozen, no step taken), once per estimator:

- ``reinforce`` at several λ (``behavior.discount_lambda``): the score-function estimator;
- ``dynamics``: the return backpropagated through the imagined dynamics (straight-through one-hot
  actions for discrete spaces).

It prints the median cosine similarity between the gradients of two different batches, the
cosine of two draws of imagination noise on the same batch, and the cosine of each estimator's
mean gradient with the dynamics one. A cosine near 0 across batches means a single update moves
the actor in a random direction: its step is noise, whatever its size.

    python benchmarks/gradient_agreement.py runs/cartpole --batches 6 --lambdas 0.95 0.5 0.0
"""
from __future__ import annotations

import argparse
import itertools
import json

import numpy as np
import torch

import dreamer2
from dreamer2.replay import Replay


def actor_gradient(agent, batch: dict, grad: str) -> torch.Tensor:
    """The flattened gradient of the actor loss on one replay batch under estimator ``grad``."""
    agent.ac.grad = grad
    data = agent.wm.preprocess(batch, agent.device)
    with torch.no_grad():
        _, post, _ = agent.wm.loss(data)
    loss, _, _ = agent.behavior_losses(post, data["is_terminal"])
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(agent.ac.actor.parameters()))])


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, 0))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("logdir")
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--lambdas", type=float, nargs="+", default=[0.95, 0.5, 0.0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    agent = dreamer2.load(args.logdir)
    cfg = agent.cfg
    replay = Replay(f"{args.logdir}/episodes", cfg.replay.capacity, cfg.replay.length, cfg.replay.prioritize_ends,
                    seed=args.seed, uniform=cfg.replay.uniform)
    batches = [replay.sample(cfg.replay.batch) for _ in range(args.batches)]
    default_lambda = cfg.behavior.discount_lambda
    estimators = [("dynamics", default_lambda)] + [("reinforce", lam) for lam in args.lambdas]
    dynamics_mean = None
    for grad, lam in estimators:
        cfg.behavior.discount_lambda = lam
        torch.manual_seed(args.seed)
        grads = [actor_gradient(agent, batch, grad) for batch in batches]
        torch.manual_seed(args.seed + 1)
        redraw = actor_gradient(agent, batches[0], grad)
        mean = torch.stack(grads).mean(0)
        dynamics_mean = mean if dynamics_mean is None else dynamics_mean
        print(json.dumps({
            "estimator": grad, "lambda": lam,
            "cos_across_batches_median": round(float(np.median([cosine(a, b) for a, b in itertools.combinations(grads, 2)])), 3),
            "cos_same_batch_new_noise": round(cosine(grads[0], redraw), 3),
            "cos_mean_with_dynamics_mean": round(cosine(mean, dynamics_mean), 3),
            "grad_norm_median": round(float(np.median([g.norm() for g in grads])), 4),
        }), flush=True)
    cfg.behavior.discount_lambda = default_lambda


if __name__ == "__main__":
    main()
