"""What drives a continuous actor trained by dynamics backpropagation, read from a run's logdir.

For ~50 replayed posterior states it prints:
- the actor's statistics (mean |loc|, share of saturated means, std) and the critic's spread;
- the imagined return (rewards over the horizon plus the slow critic's bootstrap) of the actor's
  mode and of fixed actions, and on what share of states the actor beats the best fixed action;
- the derivative of the imagined return along the first action of a random open-loop plan
  (every action dimension moved together), by autograd (straight-through, as the actor is trained) and by finite differences of the
  expected return (64 samples per state), once with the discount head's predicted discounts (as
  the actor's λ-return uses them when ``model.pred_discount``) and once with the constant one.

With ``--open-loop K`` it also asks whether the model knows what each fixed action does from a
state the agent should keep: in 4 real episodes it observes the first K steps (action 0), then
compares the model's open-loop rewards over the next 30 steps of each fixed action (32 latent
samples each) with the env's rewards for the same actions, and reports the posterior's reward
error along the observed steps.

With ``--real`` it also plays the actor's mode and each fixed action for one episode in the env,
so that the model's ranking of the fixed actions can be read against the env's (a collapsed
policy that the model ranks above an action the env scores higher is model exploitation).

A gradient whose sign flips with the discount head means the actor is pushed towards actions the
discount head reads as episode ends: with negative rewards (Pendulum) a predicted end cuts off
the negative future, so the actor learns to "end" an episode that never ends.

    python benchmarks/action_gradient.py runs/pendulum
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import dreamer2
from dreamer2.replay import Replay


FIXED = (-1.0, -0.5, 0.0, 0.5, 1.0)  # the fixed actions compared with the actor (every dimension)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("logdir")
    parser.add_argument("--samples", type=int, default=64, help="imagined rollouts per state for the expectation")
    parser.add_argument("--eps", type=float, default=0.1, help="finite-difference step of the first action")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", action="store_true", help="also play the actor and each fixed action in the env")
    parser.add_argument("--open-loop", type=int, default=0, metavar="K",
                        help="also compare open-loop model rewards of fixed actions with the env's after K observed steps")
    args = parser.parse_args()
    agent = dreamer2.load(args.logdir)
    cfg, wm, ac = agent.cfg, agent.wm, agent.ac
    if agent.discrete:
        parser.error("this probe is for continuous actions")
    wm.requires_grad_(False)
    ac.requires_grad_(False)
    replay = Replay(Path(args.logdir) / "episodes", cfg.replay.capacity, cfg.replay.length, False, seed=args.seed)
    torch.manual_seed(args.seed)
    with torch.no_grad():
        data = wm.preprocess(replay.sample(4), agent.device)
        post, _ = wm.rssm.observe(wm.encode(data), data["action"], data["is_first"])
    start = {k: v.flatten(0, 1)[::4] for k, v in post.items()}  # [n, ...]
    n, horizon, gamma = start["deter"].shape[0], cfg.behavior.horizon, cfg.behavior.discount
    has_head = cfg.model.pred_discount

    def imagined_return(actions, predicted_discount: bool, samples: int = 1, seed: int = 0) -> torch.Tensor:
        """Mean over ``samples`` of the discounted imagined return [n]; ``actions(t, feat)`` acts."""
        torch.manual_seed(seed)
        state = {k: v.repeat_interleave(samples, 0) for k, v in start.items()}
        total, weight = 0.0, 1.0
        for t in range(horizon):
            state = wm.rssm.img_step(state, actions(t, wm.rssm.feat(state)))
            feat = wm.rssm.feat(state)
            total = total + weight * wm.reward(feat).mode()
            weight = weight * (wm.discount(feat).mean if predicted_discount else gamma)
        total = total + weight * ac.slow_critic(wm.rssm.feat(state)).mode()
        return total.reshape(n, samples).mean(1)

    report = {}
    with torch.no_grad():
        feat = wm.rssm.feat(start)
        dist, value = ac.actor(feat), ac.critic(feat).mode()
        report["actor"] = {"abs_loc_mean": dist.loc.abs().mean().item(),
                           "saturated_share": (dist.loc.abs() > 0.95).float().mean().item(),
                           "loc_mean": dist.loc.mean().item(), "std_mean": dist.scale.mean().item()}
        report["critic"] = {"value_mean": value.mean().item(), "value_std": value.std().item()}
        returns = {"actor_mode": imagined_return(lambda t, f: ac.actor(f).mode(), has_head)}
        for c in FIXED:
            returns[f"fixed_{c:+.1f}"] = imagined_return(lambda t, f, c=c: torch.full((n, agent.action_dim), c), has_head)
        best_fixed = torch.stack([v for k, v in returns.items() if k.startswith("fixed")]).max(0).values
        report["imagined_return"] = {k: v.mean().item() for k, v in returns.items()}
        report["actor_beats_best_fixed_share"] = (returns["actor_mode"] > best_fixed).float().mean().item()

    plan = torch.rand(n, horizon, agent.action_dim) - 0.5  # open loop, inside the bounds

    def planned(delta):
        return lambda t, f: (plan[:, t] + delta).repeat_interleave(args.samples, 0) if t == 0 else \
            plan[:, t].repeat_interleave(args.samples, 0)

    for label, predicted in (("discount_head", True), ("constant_discount", False)):
        if predicted and not has_head:
            continue
        delta = torch.zeros(n, agent.action_dim, requires_grad=True)
        grad = torch.autograd.grad(imagined_return(planned(delta), predicted, args.samples, 1).sum(), delta)[0].sum(-1)
        with torch.no_grad():
            step = torch.full((n, agent.action_dim), args.eps)
            fd = sum((imagined_return(planned(step), predicted, args.samples, s)
                      - imagined_return(planned(-step), predicted, args.samples, s)) / (2 * args.eps)
                     for s in range(2, 6)) / 4
        report[f"gradient_{label}"] = {"autograd_mean": grad.mean().item(), "finite_difference_mean": fd.mean().item(),
                                       "sign_agreement": (grad.sign() == fd.sign()).float().mean().item(),
                                       "correlation": torch.corrcoef(torch.stack([grad, fd]))[0, 1].item()}
    if args.real:
        report["real_return"] = real_returns(agent, args.seed)
    if args.open_loop:
        report["open_loop"] = open_loop_rewards(agent, args.open_loop, args.seed)
    print(json.dumps(report))


def open_loop_rewards(agent, context: int, seed: int, horizon: int = 30, episodes: int = 4, samples: int = 32
                      ) -> dict[str, dict[str, float | list[float]]]:
    """Per fixed action: the summed reward over ``horizon`` steps in the env and in the model's
    open-loop rollout (mean of ``samples``), after ``context`` real steps of action 0 that the
    model observes; the rewards every 5 steps; and the posterior's mean absolute reward error
    along the observed steps (how well the model knows these states at all)."""
    from dreamer2.envs import make_env

    wm, zero = agent.wm, np.zeros(agent.action_dim, np.float32)
    report = {}
    for fixed in FIXED:
        real, imagined, posterior_error = [], [], []
        for episode in range(episodes):
            env = make_env(agent.cfg.env.task, agent.cfg, seed=seed + agent.cfg.env.seed_offset_eval + episode)
            steps = [env.reset()] + [env.step(zero) for _ in range(context)]
            batch = {k: np.stack([np.asarray(step[k]) for step in steps])[None] for k in steps[0]}
            batch["action"] = np.zeros((1, len(steps), agent.action_dim), np.float32)
            with torch.no_grad():
                data = wm.preprocess(batch, agent.device)
                post, _ = wm.rssm.observe(wm.encode(data), data["action"], data["is_first"])
                posterior_error.append((wm.reward(wm.rssm.feat(post)).mode() - data["reward"])[0, 1:].abs().mean().item())
                state = {k: v[:, -1].repeat_interleave(samples, 0) for k, v in post.items()}
                rewards = []
                for _ in range(horizon):
                    state = wm.rssm.img_step(state, torch.full((samples, agent.action_dim), fixed))
                    rewards.append(wm.reward(wm.rssm.feat(state)).mode().mean().item())
            imagined.append(rewards)
            real.append([float(env.step(np.full(agent.action_dim, fixed, np.float32))["reward"]) for _ in range(horizon)])
            env.close()
        real_mean, imagined_mean = np.mean(real, 0), np.mean(imagined, 0)
        report[f"fixed_{fixed:+.1f}"] = {
            "real_sum": float(real_mean.sum()), "model_sum": float(imagined_mean.sum()),
            "real_every_5": [round(float(r), 3) for r in real_mean[::5]],
            "model_every_5": [round(float(r), 3) for r in imagined_mean[::5]],
            "posterior_reward_abs_error": float(np.mean(posterior_error))}
    return report


def real_returns(agent, seed: int) -> dict[str, float]:
    """One episode's return in the env for the actor's mode and for each fixed action."""
    from dreamer2.envs import make_env

    env = make_env(agent.cfg.env.task, agent.cfg, seed=seed + agent.cfg.env.seed_offset_eval)
    policies = {"actor_mode": None, **{f"fixed_{c:+.1f}": c for c in FIXED}}
    returns = {}
    for name, fixed in policies.items():
        obs, state, total = env.reset(), None, 0.0
        while not obs["is_last"]:
            if fixed is None:
                action, state = agent.act(obs, state)
            else:
                action = np.full(agent.action_dim, fixed, np.float32)
            obs = env.step(action)
            total += float(obs["reward"])
        returns[name] = total
    env.close()
    return returns


if __name__ == "__main__":
    main()
