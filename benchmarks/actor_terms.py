"""What drives the actor loss: its terms beside the advantage, entropy, λ-return and value of a run.

The REINFORCE term is ``-mean(w log π(a) sg(A))``. Since ``E[-log π(a)] = H`` it is about
``H * mean(A)`` plus a covariance: it follows the mean advantage, i.e. how far the critic lags
behind the returns, not how good the policy is. This script plots the terms of one or more
logdirs and prints, per run, how well ``entropy * advantage_mean`` predicts the REINFORCE term.

    python benchmarks/actor_terms.py runs/cartpole-pixels --out docs/img/actor_terms.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dreamer2.report import read_metrics

PANELS = (("actor/loss", "actor/reinforce_term", "actor/dynamics_term", "actor/entropy_term"),
          ("actor/advantage_mean",), ("behavior/lambda_return", "behavior/value"), ("actor/entropy",))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("logdirs", nargs="+")
    parser.add_argument("--out", default=None, help="a .png for the plot")
    args = parser.parse_args()
    runs = {Path(d).name: read_metrics(Path(d)) for d in args.logdirs}
    for name, metrics in runs.items():
        term = metrics["actor/reinforce_term"][1]
        predicted = metrics["actor/entropy"][1] * metrics["actor/advantage_mean"][1]
        n = min(len(term), len(predicted))
        corr = float(np.corrcoef(term[-n:], predicted[-n:])[0, 1]) if n > 2 else float("nan")
        print(json.dumps({"run": name, "points": n, "corr_reinforce_vs_entropy_x_advantage": round(corr, 3),
                          "reinforce_term_first_last": [round(float(term[0]), 4), round(float(term[-1]), 4)],
                          "advantage_mean_first_last": [round(float(metrics["actor/advantage_mean"][1][0]), 3),
                                                        round(float(metrics["actor/advantage_mean"][1][-1]), 3)]}))
    if args.out:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.2))
        for ax, keys in zip(axes, PANELS):
            for name, metrics in runs.items():
                for key in keys:
                    if key in metrics:
                        label = key.split("/")[1] + (f" ({name})" if len(runs) > 1 else "")
                        ax.plot(*metrics[key], label=label)
            ax.axhline(0, color="k", lw=0.5)
            ax.set_xlabel("frames")
            ax.legend(fontsize=7)
        fig.tight_layout()
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.out, dpi=90)


if __name__ == "__main__":
    main()
