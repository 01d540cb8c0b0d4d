"""Train one Atari game with the `atari` preset (meant for a GPU) and compare with the paper.

    python benchmarks/atari_curve.py Boxing 2e6      # reference: 85 at 2M frames
    python benchmarks/atari_curve.py Pong 5e6        # reference: 11 at 5M frames

Prints one JSON line: the eval return at FRAMES (mean of --episodes episodes) beside the reference
DreamerV2 curve's mean, std, min and max over its seeds at the same frame count.
"""
from __future__ import annotations

import argparse
import json
import time

import dreamer2
from dreamer2.scores import human_normalized, reference_curve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("game")
    parser.add_argument("frames", type=float)
    parser.add_argument("--logdir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    task = f"atari:{args.game}"
    steps = int(args.frames) // 4  # agent steps at frame skip 4
    logdir = args.logdir or f"runs/atari-{args.game.lower()}-seed{args.seed}"
    start = time.time()
    agent = dreamer2.train(task, preset="atari", steps=steps, logdir=logdir, seed=args.seed,
                           overrides={"device": args.device})
    minutes = (time.time() - start) / 60
    try:
        reference: dict | str = reference_curve(task, args.frames)
    except ValueError as err:  # below the first recorded point of the published curve
        reference = str(err)
    stats = dreamer2.evaluate(agent, episodes=args.episodes)
    print(json.dumps({"task": task, "frames": args.frames, "eval_return": stats["return_mean"],
                      "eval_return_std": stats["return_std"],
                      "human_normalized": human_normalized(task, stats["return_mean"]),
                      "reference": reference, "train_minutes": round(minutes, 1),
                      "logdir": logdir}))


if __name__ == "__main__":
    main()
