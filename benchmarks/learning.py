"""Learning benchmark: train, then evaluate over 10 episodes with the actor's mode.

Prints one JSON line per task: eval return of the final agent, the random policy's return (100
episodes), env steps, wall time, and the pass threshold (the spine and Atari issues); beside them
(``best_*``) the agent of the best in-training evaluation (``best.pt``), evaluated on new episodes.
``passed`` is the final agent's. Not part of the default test run (tens of minutes on two CPU cores).

    python benchmarks/learning.py                      # all tasks
    python benchmarks/learning.py cartpole pendulum    # some
    python benchmarks/learning.py cartpole --set train.steps=10000 --seed 1
    python benchmarks/learning.py dmc_cartpole_balance --seed 0 1 2 3 4 5 --jobs 2

With several seeds or ``--jobs N`` every (task, seed) runs in its own process, N at once with
cores / N threads each (its stderr in ``LOGDIR/TASK-seedS.log``), and each task ends with a summary line: every seed's final, how many
passed and the mean of the finals. One seed can pass by luck; the summary says how often it does.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import dreamer2
from dreamer2.config import parse_overrides

ABOVE_RANDOM = "clearly above random"  # a threshold: eval mean - 2 SE > random mean + 2 SE

# name: (task, preset, env steps, extra overrides, threshold); agent steps = env steps / action repeat. Overrides are documented deviations
# from the preset for the task, kept here so that every number printed can be reproduced.
TASKS = {
    "cartpole": ("gym:CartPole-v1", "small", 20_000, {}, 475.0),
    # Pendulum's rewards reach -16 a step, so values run to the thousands, far more than a critic
    # trained with Adam at lr 2e-4 can follow in 1,000 updates (a run with raw rewards stayed at
    # about -1,280). tanh squashing (the reference's option) makes almost every reward -1 (-1,642).
    # The reward target is scaled by 0.1 instead. Pendulum never terminates, so no discount head
    # (as the reference's DMC presets): with every reward negative, its gradient pushed the actor
    # to one constant action the head read as an episode end (docs/diagnostics.md). DreamerV3's
    # return normalization keeps the entropy bonus's weight: without it the actor's std fell to its
    # minimum and its tanh mean saturated at one bound (-911); one update per 5 agent steps is the
    # reference's DMC ratio (2,000 updates instead of 1,000).
    # Pendulum runs on the current small preset (free nats 1, standardized vectors): on seed 0 the
    # settings it was first measured with (kl.free 0, raw vectors) ended at -1,456, these at -339,
    # and with the actor's lr at 2e-4 (the preset's 8e-5 was still climbing at 20k steps) at -185.9.
    # CartPole from pixels keeps the settings it was first measured with.
    "pendulum": ("gym:Pendulum-v1", "small", 20_000,
                 {"env.action_repeat": 2, "actor_opt.lr": 2e-4, "model.reward_scale": 0.1, "model.pred_discount": False,
                  "actor.return_norm": True, "train.train_every": 5}, -250.0),
    # Pixels: an update costs ~3x the vector one, so sequences of 32 and one update per 20 steps
    # keep 50k env steps within the hour (each step is still replayed ~25 times).
    "cartpole_pixels": ("gym:CartPole-v1", "small", 50_000,
                        {"kl.free": 0.0, "model.obs_norm": False, "env.pixels": True, "replay.length": 32,
                         "train.train_every": 20}, 200.0),
    # The Atari issue's pixel benchmark: MinAtar Breakout (10x10 binary channels as a 64x64 image) is
    # the Atari game that can learn on two CPU cores within the hour; full ALE frames at the atari
    # preset cost ~5 s per update here. A random policy scores ~0.4 per episode. The issue asks for
    # "clearly above random": the eval mean less two standard errors must exceed the random mean
    # plus two of its standard errors (an earlier version asked for a fixed 2.0, 5x random).
    "minatar_breakout": ("minatar:breakout", "minatar", 30_000, {}, ABOVE_RANDOM),
    # The suites issue's DMC check: proprio cartpole_balance. The reference's dmc_proprio settings with
    # the small preset's widths collapsed early (the policy pushed to one side; docs/diagnostics.md),
    # so it runs Pendulum's recipe on the current small preset (free nats 1, standardized vectors): no
    # discount head and return normalization. DMC rewards are in [0, 1] a physics step, so no reward
    # scale. Action repeat 8 (PlaNet's for cartpole) instead of the reference's 2: at 2 the model never
    # learned what an action does (its first-step reward was the same for every action), and 25k env
    # steps ended at 262-367; at 8 it ranks the actions as the env does (docs/diagnostics.md). 25k
    # env steps are then 3,125 agent steps: one update per agent step, a prefill of 500 (four random
    # episodes), an evaluation every 250. Discount 0.96 = 0.99^4 per agent step: the reference's 0.99
    # per agent step at action repeat 2, that is the same discount per second of the task (0.99 at
    # action repeat 8 looks 4x as far ahead, and its runs ended at 641-729). Actor lr 2e-4 (Pendulum's)
    # and model lr 1e-3, the settings the discount was measured with (docs/diagnostics.md).
    # Exploration noise 0.3 on the training actions (DreamerV1's Gaussian `expl_amount`; DreamerV2's
    # DMC presets have none): the actor's std sits at its floor, and without the noise seeds 3 and 4
    # learned models of their own swinging policies that underrate better ones (629.2 and 784.9;
    # with it 884.3 and 926.8, docs/diagnostics.md).
    "dmc_cartpole_balance": ("dmc:cartpole_balance", "small", 25_000,
                             {"env.action_repeat": 8, "model.pred_discount": False, "actor.return_norm": True,
                              "train.train_every": 1, "train.prefill": 500, "train.eval_every": 250,
                              "behavior.discount": 0.96, "actor_opt.lr": 2e-4, "model_opt.lr": 1e-3,
                              "train.expl_noise": 0.3}, 800.0),
}


def random_returns(task: str, preset: str, overrides: dict, episodes: int = 100, seed: int = 0) -> np.ndarray:
    """Returns of the uniform random policy over ``episodes`` episodes of the same env."""
    from dreamer2.config import make_config
    from dreamer2.envs import make_env

    cfg = make_config(preset, {**overrides, "env.task": task})
    env, rng, returns = make_env(task, cfg, seed + cfg.env.seed_offset_eval), np.random.default_rng(seed), []
    for _ in range(episodes):
        env.reset()
        total, last = 0.0, False
        while not last:
            step = env.step(env.random_action(rng))
            total, last = total + float(step["reward"]), step["is_last"]
        returns.append(total)
    env.close()
    return np.asarray(returns)


def standard_error(std: float, n: int) -> float:
    """Standard error of a mean from the population std (numpy's default, ddof 0) of n values."""
    return std / np.sqrt(n - 1) if n > 1 else float("inf")


def passes(threshold: float | str, stats: dict, random: np.ndarray) -> bool:
    if threshold == ABOVE_RANDOM:
        low = stats["return_mean"] - 2 * standard_error(stats["return_std"], stats["episodes"])
        return low > random.mean() + 2 * standard_error(random.std(), len(random))
    return stats["return_mean"] >= threshold


def run_one(name: str, seed: int, args: argparse.Namespace, root: str) -> dict:
    """Train and evaluate one task on one seed; returns the JSON line's fields."""
    task, preset, steps, overrides, threshold = TASKS[name]
    overrides = {**overrides, **parse_overrides([f"--{kv}" for kv in args.set])}
    repeat = int(overrides.get("env.action_repeat", 1))
    start = time.time()
    agent = dreamer2.train(task, preset=preset, steps=overrides.pop("train.steps", steps // repeat),
                           logdir=f"{root}/{name}-seed{seed}", overrides=overrides, seed=seed, progress=args.progress)
    train_time = time.time() - start
    stats = dreamer2.evaluate(agent, episodes=args.episodes)
    baseline = random_returns(task, preset, {k: v for k, v in overrides.items() if k.startswith("env.")})
    # The best in-training evaluation's weights (best.pt), evaluated again on episodes of another
    # seed: the in-training evals chose them, so their own scores would be biased upwards.
    best = {}
    if (agent.logdir / "best.pt").exists():
        best_agent = dreamer2.load(agent.logdir, checkpoint="best")
        best_stats = dreamer2.evaluate(best_agent, episodes=args.episodes,
                                       seed=seed + 2 * best_agent.cfg.env.seed_offset_eval)
        best = {"best_step": best_agent.step, "best_eval_return_mean": best_stats["return_mean"],
                "best_eval_return_std": best_stats["return_std"],
                "best_passed": bool(passes(threshold, best_stats, baseline))}
    return {"task": name, "env": task, "preset": preset, "overrides": overrides,
            "seed": seed, "env_steps": int(agent.cfg.train.steps * agent.cfg.env.action_repeat),
            "agent_steps": int(agent.cfg.train.steps), "eval_return_mean": stats["return_mean"],
            "eval_return_std": stats["return_std"], "eval_episodes": stats["episodes"],
            "random_return_mean": float(baseline.mean()),
            "random_return_std": float(baseline.std()), "random_episodes": len(baseline),
            "train_minutes": round(train_time / 60, 2), "threshold": threshold,
            "passed": bool(passes(threshold, stats, baseline)), **best, "logdir": str(agent.logdir)}


def run_in_subprocess(name: str, seed: int, args: argparse.Namespace, root: str, threads: int) -> dict:
    """``run_one`` in a child process with ``threads`` threads, so that runs share the cores evenly.
    Its stderr (progress, warnings, a traceback) goes to ``ROOT/NAME-seedS.log``, not interleaved
    with the other runs'."""
    command = [sys.executable, __file__, name, "--seed", str(seed), "--episodes", str(args.episodes),
               "--logdir", root, *(["--set", *args.set] if args.set else []), *(["--progress"] if args.progress else [])]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log = f"{root}/{name}-seed{seed}.log"
    with open(log, "w") as stderr:
        child = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
    if child.returncode not in (0, 1) or not lines:
        raise RuntimeError(f"{name} seed {seed} failed (exit code {child.returncode}); see {log}")
    return json.loads(lines[-1])


def summary(name: str, results: list[dict]) -> dict:
    """One task over its seeds: every final, how many passed and their mean."""
    finals = {r["seed"]: round(r["eval_return_mean"], 1) for r in results}
    return {"task": name, "summary": True, "finals": finals, "passed": sum(r["passed"] for r in results),
            "seeds": len(results), "mean_final": round(float(np.mean(list(finals.values()))), 1),
            "threshold": results[0]["threshold"]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--seed", type=int, nargs="+", default=[0], help="one or more seeds")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--logdir", default=None, help="parent folder of the runs (default: a temp dir)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], help="extra overrides, key=value")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    unknown = [name for name in args.tasks if name not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; known: {list(TASKS)}")
    root = args.logdir or tempfile.mkdtemp(prefix="dreamer2-bench-")
    os.makedirs(root, exist_ok=True)
    runs = [(name, seed) for name in args.tasks for seed in args.seed]
    several = len(args.seed) > 1 or args.jobs > 1
    results = []
    with ThreadPoolExecutor(args.jobs) as pool:
        if several:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            futures = [pool.submit(run_in_subprocess, name, seed, args, root, max(1, cores // args.jobs))
                       for name, seed in runs]
            done = (future.result() for future in futures)
        else:  # one run at a time in this process, as before --jobs existed
            done = (run_one(name, seed, args, root) for name, seed in runs)
        for result in done:
            results.append(result)
            print(json.dumps(result), flush=True)
    if several:
        for name in args.tasks:
            print(json.dumps(summary(name, [r for r in results if r["task"] == name])), flush=True)
    return 0 if all(r["passed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
