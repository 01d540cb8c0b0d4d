"""Does a run's world model know the states that a better policy visits? Models x policies, from logdirs.

Each run's agent plays ``--episodes`` episodes in the env with its actor's mode (as evaluation
does). Then every run's model predicts the rewards of every run's episodes open loop: it observes
the episode up to a step, then imagines ``--horizon`` steps fed the actions that were really taken,
from every ``--every``-th step. One JSON line per (model, policy) pair gives the policy's real
return, the model's mean absolute reward error and its mean predicted reward beside the real one.

A model that is accurate on its own run's episodes but underrates a better run's is a model of the
data it was trained on: under it, the better policy looks little better than its own, so its actor
has nothing to climb towards (docs/diagnostics.md, "Seeds that plateau").

    python benchmarks/model_transfer.py runs/cartpole_seed2 runs/cartpole_seed3
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

import dreamer2
from dreamer2.envs import make_env


def play(agent, episodes: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Episodes of the actor's mode as [1, T, ...] batches with the actions taken (zeros at the reset)."""
    batches = []
    for episode in range(episodes):
        env = make_env(agent.cfg.env.task, agent.cfg, seed=seed + episode)
        obs, state = env.reset(), None
        steps, actions = [obs], [np.zeros(agent.action_dim, np.float32)]
        while not obs["is_last"]:
            action, state = agent.act(obs, state)
            obs = env.step(action)
            steps.append(obs)
            actions.append(np.asarray(action, np.float32))
        env.close()
        batch = {key: np.stack([np.asarray(step[key]) for step in steps])[None] for key in steps[0]}
        batch["action"] = np.stack(actions)[None]
        batches.append(batch)
    return batches


@torch.no_grad()
def open_loop_rewards(agent, batch: dict[str, np.ndarray], horizon: int, every: int, samples: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Predicted (mean over ``samples`` latent rollouts) and real rewards [starts, horizon]."""
    wm = agent.wm
    data = wm.preprocess(batch, agent.device)
    post, _ = wm.rssm.observe(wm.encode(data), data["action"], data["is_first"])
    starts = range(every, data["reward"].shape[1] - horizon, every)
    predicted, real = [], []
    for start in starts:
        state = {key: value[:, start].repeat_interleave(samples, 0) for key, value in post.items()}
        rewards = []
        for t in range(horizon):
            state = wm.rssm.img_step(state, data["action"][:, start + 1 + t].repeat_interleave(samples, 0))
            rewards.append(wm.reward(wm.rssm.feat(state)).mode().mean())
        predicted.append(torch.stack(rewards).cpu().numpy())
        real.append(data["reward"][0, start + 1:start + 1 + horizon].cpu().numpy())
    return np.stack(predicted), np.stack(real)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("logdirs", nargs="+")
    parser.add_argument("--checkpoint", default="last", choices=("last", "best"))
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--horizon", type=int, default=15, help="imagined steps (the preset's behavior.horizon is 15)")
    parser.add_argument("--every", type=int, default=10, help="an open-loop start every this many steps")
    parser.add_argument("--samples", type=int, default=16, help="latent rollouts averaged per start")
    parser.add_argument("--seed", type=int, default=1200, help="env seed of the first episode")
    args = parser.parse_args()
    agents = {logdir: dreamer2.load(logdir, checkpoint=args.checkpoint) for logdir in args.logdirs}
    tasks = {agent.cfg.env.task for agent in agents.values()}
    if len(tasks) > 1:
        raise SystemExit(f"the runs trained different tasks: {sorted(tasks)}")
    episodes = {logdir: play(agent, args.episodes, args.seed) for logdir, agent in agents.items()}
    for model, agent in agents.items():
        for policy, batches in episodes.items():
            pairs = [open_loop_rewards(agent, batch, args.horizon, args.every, args.samples) for batch in batches]
            predicted, real = np.concatenate([p for p, _ in pairs]), np.concatenate([r for _, r in pairs])
            print(json.dumps({"model": model, "policy": policy,
                              "policy_return": round(float(np.mean([b["reward"].sum() for b in batches])), 1),
                              "reward_abs_error": round(float(np.abs(predicted - real).mean()), 3),
                              "predicted_mean_reward": round(float(predicted.mean()), 3),
                              "real_mean_reward": round(float(real.mean()), 3)}), flush=True)


if __name__ == "__main__":
    main()
