"""Learning curves of runs that differ in ``precision``, side by side, with fp16's skipped steps.

Train the runs first, e.g. the CartPole learning benchmark in each precision:

    python benchmarks/learning.py cartpole --set precision=bf16 --logdir runs/prec-bf16
    python benchmarks/precision_curves.py runs/prec-32/cartpole-seed0 runs/prec-bf16/cartpole-seed0 \\
        --out docs/img/precision.png

Prints one JSON line per run: its precision, the training-episode and eval returns at the end,
the update time the run logged (``time/*``), and for fp16 the loss scale and the optimizer
steps skipped for overflow (``precision/*``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dreamer2.report import read_config, read_metrics


def summary(logdir: Path, metrics: dict) -> dict:
    precision = str(read_config(logdir).get("precision", "32"))
    last = lambda name: round(float(metrics[name][1][-1]), 3) if name in metrics else None
    phases = [float(np.median(v)) for k, (_, v) in metrics.items() if k.startswith("time/")]
    result = {"run": str(logdir), "precision": precision, "frames": int(metrics["episode/return"][0][-1]),
              "episode_return_last": last("episode/return"), "eval_return_last": last("eval/return"),
              "update_s_median": round(sum(phases), 3) if phases else None}
    result.update({k: last(k) for k in sorted(metrics) if k.startswith("precision/")})
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("logdirs", nargs="+")
    parser.add_argument("--out", default=None, help="a .png for the plot")
    args = parser.parse_args()
    runs = {Path(d): read_metrics(Path(d)) for d in args.logdirs}
    summaries = [summary(d, metrics) for d, metrics in runs.items()]
    for line in summaries:
        print(json.dumps(line))
    if args.out:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        for (logdir, metrics), info in zip(runs.items(), summaries):
            label = f"precision {info['precision']}"
            for ax, name in zip(axes, ("episode/return", "eval/return")):
                if name in metrics:
                    ax.plot(*metrics[name], marker="o" if name == "eval/return" else None, label=label)
        for ax, title in zip(axes, ("training episodes (mean per log interval)", "evaluation")):
            ax.set(title=title, xlabel="env frames", ylabel="return")
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.out, dpi=100)


if __name__ == "__main__":
    main()
