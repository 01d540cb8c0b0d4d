"""Why does a CartPole-v1 agent's episode end? Does its world model see the end coming?

    python benchmarks/cartpole_edge.py LOGDIR [--episodes 2] [--replayed 30]

1. Rolls out the agent's eval policy (the actor's mode) and prints, along each episode, the cart's
   position x and velocity, the pole's angle, the critic's value, the discount head's continue
   probability and the actor's probability of pushing right. A policy that balances the pole but
   drifts shows |angle| small and x running to the track's edge (2.4).
2. On the run's last replayed episodes that ended in a termination: the discount head's continue
   probability at the terminal step and before it (closed loop, from the posterior), and an
   open-loop rollout of the model with the real actions from 20 steps before the end: predicted
   x and continue probability against the real x. A model that foresees the edge predicts x near
   2.4 and a continue probability near 0 where the real episode ended.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import dreamer2
from dreamer2.replay import load_episode


@torch.no_grad()
def rollouts(agent, episodes: int) -> None:
    wm, ac = agent.wm, agent.ac
    for seed in range(episodes):
        env = dreamer2.make_env("gym:CartPole-v1", agent.cfg, seed=seed)
        obs, state, rows = env.reset(), None, []
        while True:
            action, state = agent.act(obs, state)
            feat = wm.rssm.feat(state[0])
            cont = wm.discount(feat).mean.item() if agent.cfg.model.pred_discount else agent.cfg.behavior.discount
            right = ac.actor(feat).probs[0, 1].item()
            x, velocity, angle = obs["vector"][:3]
            rows.append((len(rows), x, velocity, angle, ac.critic(feat).mode().item(), cont, right))
            obs = env.step(action)
            if obs["is_last"]:
                break
        print(f"episode {seed}: {len(rows)} steps, {'terminated' if obs['is_terminal'] else 'time limit'}")
        for row in rows[:: max(1, len(rows) // 12)] + rows[-4:]:
            print("  t %3d  x %+.2f  velocity %+.2f  angle %+.3f  value %7.2f  continue %.3f  p(right) %.2f" % row)


@torch.no_grad()
def foresight(agent, logdir: Path, count: int) -> None:
    wm = agent.wm
    if not agent.cfg.model.pred_discount:
        print("no discount head (model.pred_discount false): nothing to foresee")
        return
    at_end, before, elsewhere, open_loop = [], {k: [] for k in (1, 3, 5, 10)}, [], []
    for path in sorted((logdir / "episodes").glob("*.npz"))[-count:]:
        episode = load_episode(path)
        if not episode["is_terminal"][-1] or len(episode["reward"]) < 22:
            continue
        data = wm.preprocess({k: v[None] for k, v in episode.items()}, agent.device)
        post, _ = wm.rssm.observe(wm.encode(data), data["action"], data["is_first"])
        cont = wm.discount(wm.rssm.feat(post)).mean[0].numpy()
        at_end.append(cont[-1])
        elsewhere.extend(cont[:-20])
        for k in before:
            before[k].append(cont[-1 - k])
        start = len(cont) - 21
        state, xs, conts = {k: v[:, start] for k, v in post.items()}, [], []
        for t in range(start + 1, len(cont)):
            state = wm.rssm.img_step(state, data["action"][:, t], sample=False)
            feat = wm.rssm.feat(state)
            x = wm.decode(feat)["vector"].mean[0, 0]
            if agent.cfg.model.obs_norm:  # the decoder predicts standardized vectors
                mean, std = wm.obs_scale("vector")
                x = x * std[0] + mean[0]
            xs.append(x.item())
            conts.append(wm.discount(feat).mean.item())
        open_loop.append((episode["vector"][start + 1:, 0], xs, conts))
    if not at_end:
        print("no terminated episode of 22 steps or more among the last", count)
        return
    print(f"{len(at_end)} terminated episodes: continue probability at the terminal step {np.mean(at_end):.3f} "
          f"(min {np.min(at_end):.3f}, max {np.max(at_end):.3f}); "
          + ", ".join(f"{k} before {np.mean(v):.3f}" for k, v in before.items())
          + f"; elsewhere {np.mean(elsewhere):.4f}")
    print("open loop from 20 steps before the end, real x | predicted x | continue, at steps 5, 10, 15, 20:")
    for real, xs, conts in open_loop[:8]:
        print("  " + "   ".join(f"{real[i]:+.2f} | {xs[i]:+.2f} | {conts[i]:.2f}" for i in (4, 9, 14, 19)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logdir", type=Path)
    parser.add_argument("--episodes", type=int, default=2, help="eval episodes to roll out")
    parser.add_argument("--replayed", type=int, default=30, help="last replayed episodes to check")
    args = parser.parse_args()
    agent = dreamer2.load(args.logdir)
    if agent.cfg.env.task != "gym:CartPole-v1" or agent.cfg.env.pixels:
        parser.error(f"{args.logdir} is a run of {agent.cfg.env.task} (pixels: {agent.cfg.env.pixels}); "
                     "this script reads CartPole-v1's vector observations")
    rollouts(agent, args.episodes)
    foresight(agent, args.logdir, args.replayed)


if __name__ == "__main__":
    main()
