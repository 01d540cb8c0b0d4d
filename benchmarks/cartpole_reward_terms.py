"""Where does a ``dmc:cartpole_*`` agent lose its return? The reward split into the task's terms.

dm_control's cartpole pays, every physics step, the product of four terms:
``upright`` ((cos + 1) / 2), ``centered`` ((1 + tolerance(cart x, margin 2)) / 2), ``control``
((4 + (1 - a^2)) / 5) and ``velocity`` ((1 + tolerance(angular velocity, margin 5)) / 2). This
plays a run's agent (the actor's mode, as evaluation does) and prints, per episode, the return and
each term's mean over the physics steps, so that a return below 1,000 reads as a pole that falls
(``upright``), a cart that drifts (``centered``) or large actions (``control``). ``--zero`` plays
action 0 instead of the agent (doing nothing). ``--trace`` prints the first episode step by step.

    python benchmarks/cartpole_reward_terms.py runs/cartpole_balance --checkpoint best --episodes 4
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from dm_control.utils import rewards

import dreamer2
from dreamer2.envs import make_env

TERMS = ("upright", "centered", "control", "velocity")


def terms(physics) -> tuple[float, float, float, float]:
    """The four factors of cartpole's smooth reward, as ``dm_control.suite.cartpole`` computes them."""
    upright = (physics.pole_angle_cosine().mean() + 1) / 2
    centered = (1 + rewards.tolerance(physics.cart_position(), margin=2)) / 2
    control = (4 + rewards.tolerance(physics.control(), margin=1, value_at_margin=0, sigmoid="quadratic")[0]) / 5
    velocity = (1 + rewards.tolerance(physics.angular_vel(), margin=5).min()) / 2
    return float(upright), float(centered), float(control), float(velocity)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("logdir")
    parser.add_argument("--checkpoint", default="last", choices=("last", "best"))
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=999)
    parser.add_argument("--zero", action="store_true", help="play action 0 (doing nothing) instead of the agent")
    parser.add_argument("--trace", action="store_true", help="print the first episode step by step")
    args = parser.parse_args()
    agent = dreamer2.load(args.logdir, checkpoint=args.checkpoint)
    if not agent.cfg.env.task.startswith("dmc:cartpole_"):
        raise SystemExit(f"{args.logdir} trained {agent.cfg.env.task}, not a dmc:cartpole_* task")
    adapter = make_env(agent.cfg.env.task, agent.cfg, seed=args.seed)
    dm_env = adapter.env._env
    physics_step = dm_env.step

    def recording_step(action):  # every physics step of the action repeat, after the suite's own step
        time_step = physics_step(action)
        factors.append(terms(dm_env.physics))
        return time_step

    dm_env.step = recording_step
    for episode in range(args.episodes):
        obs, state, factors, total, actions = adapter.reset(), None, [], 0.0, []
        while not obs["is_last"]:
            if args.zero:
                action = np.zeros(adapter.act_space.shape, np.float32)
            else:
                action, state = agent.act(obs, state, explore=False)
            obs = adapter.step(action)
            total += float(obs["reward"])
            actions.append(float(np.abs(action).mean()))
            if args.trace and episode == 0:
                (x, _, sin), (_, omega) = obs["position"], obs["velocity"]
                print(f"  step {len(actions):3d} action {float(np.ravel(action)[0]):+.2f} sin {sin:+.3f} "
                      f"angular velocity {omega:+.2f} x {x:+.2f} reward {float(obs['reward']):.2f}")
        means = np.mean(factors, 0)
        print(json.dumps({"episode": episode, "return": round(total, 1), "agent_steps": len(actions),
                          "mean_abs_action": round(float(np.mean(actions)), 3),
                          **{term: round(float(m), 3) for term, m in zip(TERMS, means)}}), flush=True)
    adapter.close()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
