"""Env-side speed: the driver with a random policy, against the bare simulator and across env counts.

Prints one JSON line: frames/s through dreamer2 (adapter + preprocessing + driver + episode
assembly and replay writes) with one in-process env, with each ``--envs`` count of worker
processes (and its ratio to one env), and, for Atari, of the bare ale-py env stepped with
frameskip 1. Medians of --repeats runs, interleaved in one process.

Two random runs: ``random`` is the prefill's (``Driver.random``: each env picks its own actions,
a worker answers once per chunk of steps), ``policy`` has the driver pick every action as a
trained policy does (one round trip a step per worker; the policy's own cost is not included).

    python benchmarks/env_speed.py --task atari:Breakout --steps 5000
    python benchmarks/env_speed.py --task dmc:walker_walk --preset dmc_vision --steps 1000 --envs 2
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from dreamer2.config import make_config
from dreamer2.driver import Driver, random_policy
from dreamer2.replay import Replay
from dreamer2.training import make_train_envs
from host import describe


def driver_fps(task: str, preset: str, steps: int, envs: int = 1, overrides: dict | None = None,
               mode: str = "random") -> float:
    """Frames/s of the driver; ``envs`` > 1 uses worker processes (their start-up not timed)."""
    cfg = make_config(preset, {**(overrides or {}), "env.task": task, "envs": envs})
    workers = make_train_envs(task, cfg, seed=0)
    replay = Replay(tempfile.mkdtemp(), cfg.replay.capacity, cfg.replay.length)
    driver = Driver(workers, [replay.add])
    rng = np.random.default_rng(0)
    policy = random_policy(workers[0], rng)
    run = (lambda n: driver.random(rng, n)) if mode == "random" else (lambda n: driver(policy, steps=n))
    run(10 * envs)  # warm-up: first resets, imports
    start = time.perf_counter()
    taken, _ = run(steps)
    fps = taken * cfg.env.action_repeat / (time.perf_counter() - start)
    for worker in workers:
        worker.close()
    return fps


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
    parser.add_argument("--envs", type=int, nargs="*", default=[], help="env counts to compare with one env")
    parser.add_argument("--set", nargs="+", action="extend", default=[], help="extra overrides, key=value (e.g. env.dmc.fast_render=true)")
    args = parser.parse_args()
    from dreamer2.config import parse_overrides
    overrides = parse_overrides([f"--{kv}" for kv in args.set])
    modes = ("random", "policy")
    ours, bare = {m: [] for m in modes}, []
    workers = {(m, n): [] for m in modes for n in args.envs}
    for _ in range(args.repeats):
        for m in modes:
            ours[m].append(driver_fps(args.task, args.preset, args.steps, 1, overrides, m))
            for n in args.envs:
                workers[m, n].append(driver_fps(args.task, args.preset, args.steps, n, overrides, m))
        if args.task.startswith("atari:"):
            bare.append(bare_ale_fps(args.task.split(":", 1)[1], 4 * args.steps))
    result = {"task": args.task, "preset": args.preset, "steps": args.steps, "repeats": args.repeats, "overrides": overrides,
              **{f"{m}_frames_per_s": float(np.median(ours[m])) for m in modes}}
    for (m, n), runs in workers.items():
        result[f"{m}_envs{n}_frames_per_s"] = float(np.median(runs))
        result[f"{m}_envs{n}_ratio_to_1"] = float(np.median(runs)) / result[f"{m}_frames_per_s"]
    if bare:
        result["bare_ale_frames_per_s"] = float(np.median(bare))
        result["ratio"] = result["random_frames_per_s"] / result["bare_ale_frames_per_s"]
    print(json.dumps({**result, "host": describe()}))


if __name__ == "__main__":
    main()
