"""Is a run held back by its world model or by its actor? Train a fresh actor against the frozen model.

Loads a run's final agent, freezes its world model, gives it a freshly initialized actor (the
weights a new agent starts from) and trains actor and critic as training does, on imagined
rollouts from replayed posterior states, for ``--updates`` updates. Every ``--every`` updates it
prints the real return of the actor's mode (``--episodes`` episodes) and the imagined λ-return.

If a fresh actor against run A's model reaches A's final return, and against run B's model stays
where B's actor stopped, B's plateau is in B's model (what it knows), not in its actor's history
(docs/diagnostics.md, "Seeds that plateau").

    python benchmarks/frozen_model_actor.py runs/cartpole_seed3 --updates 400
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import dreamer2
from dreamer2.agent import Agent, Optimizer
from dreamer2.replay import Replay
from model_transfer import play


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("logdir")
    parser.add_argument("--updates", type=int, default=400)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="seeds the fresh actor and the replay sampling")
    parser.add_argument("--env-seed", type=int, default=1100, help="env seed of the first evaluation episode")
    args = parser.parse_args()
    agent = dreamer2.load(args.logdir)
    cfg = agent.cfg
    torch.manual_seed(args.seed)
    fresh = Agent(cfg, agent.obs_space, agent.act_space, str(agent.device))
    agent.ac.actor.load_state_dict(fresh.ac.actor.state_dict())
    agent.actor_opt = Optimizer("actor", agent.ac.actor, cfg.actor_opt)
    replay = Replay(Path(args.logdir) / "episodes", cfg.replay.capacity, cfg.replay.length, False, seed=args.seed)
    for update in range(args.updates + 1):
        with torch.no_grad():  # the model stays as the run left it
            data = agent.wm.preprocess(replay.sample(cfg.replay.batch), agent.device)
            post, _ = agent.wm.rssm.observe(agent.wm.encode(data), data["action"], data["is_first"])
        actor_loss, critic_loss, metrics = agent.behavior_losses(post, data["is_terminal"])
        if update % args.every == 0:
            episodes = play(agent, args.episodes, args.env_seed)  # the actor's mode, as evaluation
            print(json.dumps({"update": update, "real_return": round(float(np.mean([e["reward"].sum() for e in episodes])), 1),
                              "lambda_return": round(float(metrics["behavior/lambda_return"]), 2)}), flush=True)
        if update < args.updates:
            agent.actor_opt.step(actor_loss)
            agent.critic_opt.step(critic_loss)
            agent.ac.update_slow_critic()


if __name__ == "__main__":
    main()
