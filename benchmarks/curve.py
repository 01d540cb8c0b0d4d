"""Shared by atari_curve.py and dmc_curve.py: train one task with its preset, then print the eval
return at FRAMES beside the reference DreamerV2 curve's mean, std, min and max over its seeds."""
from __future__ import annotations

import argparse
import json
import time

import dreamer2
from dreamer2.config import parse_overrides
from dreamer2.scores import human_normalized, reference_curve


def run(suite: str, preset: str, action_repeat: int, examples: str) -> None:
    parser = argparse.ArgumentParser(description=examples, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", help=f"the name after '{suite}:'")
    parser.add_argument("frames", type=float, help="env frames (agent steps x action repeat)")
    parser.add_argument("--logdir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="32")
    parser.add_argument("--set", nargs="+", action="extend", default=[], help="extra overrides, key=value (e.g. train.videos=false)")
    args = parser.parse_args()
    task = f"{suite}:{args.task}"
    logdir = args.logdir or f"runs/{suite}-{args.task.lower()}-seed{args.seed}"
    start = time.time()
    agent = dreamer2.train(task, preset=preset, steps=int(args.frames) // action_repeat, logdir=logdir, seed=args.seed,
                           overrides={"device": args.device, "precision": args.precision,
                                      **parse_overrides([f"--{kv}" for kv in args.set])})
    minutes = (time.time() - start) / 60
    try:
        reference: dict | str = reference_curve(task, args.frames)
    except ValueError as err:  # outside the published curve's frames
        reference = str(err)
    stats = dreamer2.evaluate(agent, episodes=args.episodes)
    result = {"task": task, "preset": preset, "frames": args.frames, "eval_return": stats["return_mean"],
              "eval_return_std": stats["return_std"], "reference": reference, "train_minutes": round(minutes, 1),
              "overrides": args.set, "logdir": logdir}
    try:
        result["human_normalized"] = human_normalized(task, stats["return_mean"])
    except KeyError:  # no human baseline for this task (only Atari has them)
        pass
    print(json.dumps(result))
