"""Policy-step latency for one env, with acting's shortcuts on and off, side by side.

Acting (no gradient) takes shortcuts that keep the math: layers over the sampled one-hot
latents gather the 32 rows they select from a cached weight table (``rssm.gather_onehot``,
``nets.onehot_table``), encoder convolutions with few output positions run as one GEMM of
their patches (``nets.conv_as_gemm``), and under mixed precision the weights' casts are cached
between updates (``Agent.cast_acting_weights``; varied only when ``--precision`` is not 32). This times every combination in one process, interleaved
round by round so that the machine's noise hits them alike, and prints one JSON line each with
the median over rounds of each round's median step time. ``--compile`` adds an agent with the
same weights and ``compile_policy`` (every shortcut on, compiled; its compile time is printed).

    python benchmarks/policy_speed.py --preset atari --rounds 8 [--compile]
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time

import numpy as np
import torch
from gymnasium import spaces

import dreamer2.nets as nets
from dreamer2.agent import Agent
from dreamer2.config import make_config
from host import describe


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="atari")
    parser.add_argument("--precision", default="32")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--actions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=150, help="policy steps per round and setting")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--compile", action="store_true", help="also time the compiled step (compile_policy)")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    agent = Agent(make_config(args.preset, {"precision": args.precision}),
                  {"image": ((64, 64, args.channels), np.uint8)}, spaces.Discrete(args.actions), "cpu")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (args.steps, 1, 64, 64, args.channels), dtype=np.uint8)
    few_outputs = nets.few_outputs

    def round_ms(gather: bool, gemm: bool, cast: bool, compiled: bool = False) -> float:
        acting = compiled_agent if compiled else agent
        if not compiled:  # the compiled step was traced with every shortcut on, and stays so
            agent.wm.rssm.gather_onehot, agent.cast_acting_weights = gather, cast
            nets.few_outputs = few_outputs if gemm else (lambda *_, **__: False)
        state, times = None, []
        for i, frame in enumerate(frames):
            obs = {"image": frame, "is_first": np.array([i == 0])}
            start = time.perf_counter()
            _, state = acting.policy(obs, state, "train")
            times.append(time.perf_counter() - start)
        return statistics.median(times[10:]) * 1e3

    casts = (False, True) if agent.amp_dtype is not None else (False,)
    settings = [(*s, False) for s in itertools.product((False, True), (False, True), casts)]
    compile_s = None
    if args.compile:
        compiled_agent = Agent(make_config(args.preset, {"precision": args.precision, "compile_policy": True}),
                               {"image": ((64, 64, args.channels), np.uint8)}, spaces.Discrete(args.actions), "cpu")
        compiled_agent.load_state_dict(agent.state_dict())
        start = time.perf_counter()
        round_ms(True, True, casts[-1], compiled=True)  # compiles the two graphs: a reset step and the others
        compile_s = round(time.perf_counter() - start, 1)
        settings.append((True, True, casts[-1], True))
    results = {s: [] for s in settings}
    for _ in range(args.rounds + 1):  # the first round warms up
        for setting in settings:
            results[setting].append(round_ms(*setting))
    base = statistics.median(results[(False, False, False, False)][1:])
    for (gather, gemm, cast, compiled), times in results.items():
        median = statistics.median(times[1:])
        print(json.dumps({"preset": args.preset, "precision": args.precision, "gather_onehot": gather,
                          "small_convs_as_gemm": gemm, "cast_acting_weights": cast, "compile_policy": compiled,
                          **({"compile_s": compile_s} if compiled else {}),
                          "policy_step_ms_median": round(median, 3),
                          "ratio_to_none": round(median / base, 3), "rounds": args.rounds,
                          "threads": torch.get_num_threads(), "host": describe()}), flush=True)


if __name__ == "__main__":
    main()
