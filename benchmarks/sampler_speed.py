"""Drawing the RSSM's categorical latents: inverse CDF (``OneHotDist.sample_index``) against Gumbel-max.

Both draw the same distribution. Gumbel-max, which dreamer2 used before, needs a uniform, two
logs and an argmax per class; the inverse CDF needs one uniform per categorical and a cumulative
sum. Timed interleaved in one process (the machine is noisy), median of ``--rounds``; the shape is
one imagination step of the atari and small presets (batch 16 x 50 starts, 32 x 32 latents).

    python benchmarks/sampler_speed.py --threads 1
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from dreamer2.distributions import OneHotDist
from host import describe


def gumbel_max(logits: torch.Tensor) -> torch.Tensor:
    uniform = torch.rand_like(logits).clamp_(1e-20, 1.0)
    return (logits - torch.log(-torch.log(uniform))).argmax(-1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", type=int, nargs=3, default=[800, 32, 32])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.rounds < 25:
        parser.error("--rounds must be at least 25: the second block times 25 calls of each in a row")
    if args.threads:
        torch.set_num_threads(args.threads)
    dist = OneHotDist(torch.randn(*args.shape))
    draws = {"gumbel_max": lambda: gumbel_max(dist.logits), "inverse_cdf": dist.sample_index}
    # block 1: the two alternate call by call, so each starts with the other's data in the caches
    # (as between the GEMMs of an imagination step); block 25: 25 calls of one, then of the other.
    for block in (1, 25):
        times = {name: [] for name in draws}
        for _ in range(args.rounds // block):
            for name, draw in draws.items():
                for _ in range(block):
                    start = time.perf_counter()
                    draw()
                    times[name].append(time.perf_counter() - start)
        median = {name: statistics.median(t) * 1e3 for name, t in times.items()}
        print(json.dumps({"shape": args.shape, "threads": torch.get_num_threads(), "block": block,
                          **{f"{name}_ms_median": round(ms, 3) for name, ms in median.items()},
                          "ratio": round(median["inverse_cdf"] / median["gumbel_max"], 3), "host": describe()}))


if __name__ == "__main__":
    main()
