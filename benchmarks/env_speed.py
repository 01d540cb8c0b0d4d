"""Env-side speed: the driver with a random policy on one env, against the bare simulator.

Prints one JSON line: frames/s through dreamer2 (adapter + preprocessing + driver + episode
assembly and replay writes) and of the bare ale-py env stepped with frameskip 1, and their ratio.
Medians of --repeats runs, side by side in one process.

    python benchmarks/env_speed.py --task atari:Breakout --steps 5000
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

import dreamer2
from dreamer2.config import make_config
from dreamer2.driver import Driver
from dreamer2.replay import Replay
from dreamer2.training import random_policy


def driver_fps(task: str, preset: str, steps: int) -> float:
    cfg = make_config(preset, {"env.task": task})
    env = dreamer2.make_env(task, cfg, seed=0)
    replay = Replay(tempfile.mkdtemp(), cfg.replay.capacity, cfg.replay.length)
    driver = Driver([env], [replay.add])
    policy = random_policy(env, np.random.default_rng(0))
    start = time.perf_counter()
    driver(policy, steps=steps)
    return steps * cfg.env.action_repeat / (time.perf_counter() - start)


def bare_ale_fps(game: str, frames: int) -> float:
    import ale_py
    import gymnasium
    from dreamer2.envs.atari import game_id

    gymnasium.register_envs(ale_py)
    env = gymnasium.make(game_id(game), frameskip=1, repeat_action_probability=0.25)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(frames):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            env.reset()
    return frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="atari:Breakout")
    parser.add_argument("--preset", default="atari")
    parser.add_argument("--steps", type=int, default=5000, help="agent steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ours, bare = [], []
    for _ in range(args.repeats):
        ours.append(driver_fps(args.task, args.preset, args.steps))
        if args.task.startswith("atari:"):
            bare.append(bare_ale_fps(args.task.split(":", 1)[1], 4 * args.steps))
    result = {"task": args.task, "preset": args.preset, "driver_frames_per_s": float(np.median(ours))}
    if bare:
        result["bare_ale_frames_per_s"] = float(np.median(bare))
        result["ratio"] = result["driver_frames_per_s"] / result["bare_ale_frames_per_s"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
