"""Update speed: one full training update (world model, imagination, actor, critic, optimizer
steps) on synthetic batches, and the latency of one policy step for one env.

Every precision asked for is timed in the same process, interleaved round by round so that the
machine's noise hits them alike; medians over --updates timed updates after --warmup. Prints one
JSON line per precision with the median seconds per update, its split into phases (time/*), the
policy-step latency, and the ratio to the first precision listed. As in training, glibc's malloc
keeps freed memory for reuse (``keep_freed_memory``); ``--default-malloc`` measures without it.
``--mkl-linear`` computes every Linear layer with F.linear (``nets.use_onednn_linear = False``),
to see which of the two is the faster on a given CPU.
``--compile-policy`` also times the policy step of a copy of the fp32 agent with ``compile_policy``
(same weights, interleaved with the plain one) and prints its compile time.

    python benchmarks/update_speed.py --preset atari --precision 32 bf16 16
    python benchmarks/update_speed.py --preset small --obs vector --updates 20
    python benchmarks/update_speed.py --preset atari --compare sheeprl

``--compare sheeprl`` creates a virtual environment for sheeprl (PyPI, version SHEEPRL below, with
this process's torch version) on first use, starts ``sheeprl_update.py`` in it with the same torch
threads, and times one sheeprl update after each round of ours, at the first precision listed;
its line adds ``sheeprl_update_s_median`` and ``ratio_to_sheeprl``. sheeprl runs as it ships, with
glibc's malloc as it is; ``--sheeprl-keep-freed-memory`` gives its process the allocator settings
that ours uses (``keep_freed_memory``, through ``GLIBC_TUNABLES``), to compare the code alone.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import venv
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces

from dreamer2 import nets
from dreamer2.agent import Agent
from dreamer2.config import make_config
from dreamer2.training import KEEP_FREED_MALLOC, keep_freed_memory
from host import describe

SHEEPRL = "0.8.4"


def sheeprl_python(root: Path) -> Path:
    """The python of a venv with sheeprl and this process's torch, made on first use."""
    python = root / "bin" / "python"
    marker = root / f"sheeprl-{SHEEPRL}-torch-{torch.__version__}"
    if not marker.exists():
        print(f"creating {root} (sheeprl {SHEEPRL}, torch {torch.__version__}); minutes on first use", file=sys.stderr)
        venv.create(root, with_pip=True, clear=True)
        torch_pin = f"torch=={torch.__version__.split('+')[0]}"  # first alone, so that pip takes this build
        for packages in ([torch_pin], [f"sheeprl=={SHEEPRL}", torch_pin]):
            subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
        marker.touch()
    return python


class SheeprlWorker:
    """sheeprl's update in its own venv and process, driven one batch of updates at a time."""

    def __init__(self, python: Path, threads: int, precision: str, cfg, keep_freed: bool):
        env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
        if keep_freed:  # what keep_freed_memory's mallopt calls set, as glibc's start-up tunables
            env["GLIBC_TUNABLES"] = ":".join(f"glibc.malloc.{name}={value}" for name, (_, value) in KEEP_FREED_MALLOC.items())
        script = Path(__file__).with_name("sheeprl_update.py")
        self.process = subprocess.Popen(
            [str(python), str(script), "--threads", str(threads), "--precision", precision,
             "--batch", str(cfg.replay.batch), "--length", str(cfg.replay.length),
             "--horizon", str(cfg.behavior.horizon)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self._read()

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"sheeprl worker exited with {self.process.wait()} (its stderr is above)")
        return json.loads(line)

    def update(self, n: int = 1) -> list[float]:
        self.process.stdin.write(f"{n}\n")
        self.process.stdin.flush()
        return self._read()["times"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def synthetic_batch(obs_space: dict, actions: int, batch: int, length: int, rng: np.random.Generator) -> dict:
    data = {}
    for key, (shape, dtype) in obs_space.items():
        if np.dtype(dtype) == np.uint8:
            data[key] = rng.integers(0, 256, (batch, length, *shape), dtype=np.uint8)
        else:
            data[key] = rng.standard_normal((batch, length, *shape)).astype(np.float32)
    data["action"] = np.eye(actions, dtype=np.float32)[rng.integers(actions, size=(batch, length))]
    data["reward"] = rng.standard_normal((batch, length)).astype(np.float32)
    data["is_first"] = np.zeros((batch, length), bool)
    data["is_first"][:, 0] = True
    data["is_last"] = np.zeros((batch, length), bool)
    data["is_terminal"] = rng.random((batch, length)) < 0.01
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="atari")
    parser.add_argument("--precision", nargs="+", default=["32"])
    parser.add_argument("--obs", choices=["image", "vector"], default="image",
                        help="image: 64x64 with the preset's channels (1 for atari); vector: 8 floats")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--actions", type=int, default=4)
    parser.add_argument("--updates", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], help="extra overrides, key=value")
    parser.add_argument("--compare", choices=["sheeprl"], default=None)
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc as it is (training calls keep_freed_memory)")
    parser.add_argument("--mkl-linear", action="store_true",
                        help="every Linear layer as F.linear, not large products as oneDNN's 1x1 convolution")
    parser.add_argument("--compile-policy", action="store_true",
                        help="also time the fp32 policy step compiled (compile_policy)")
    parser.add_argument("--sheeprl-keep-freed-memory", action="store_true",
                        help="sheeprl's process with the malloc settings of keep_freed_memory (default: as it ships)")
    parser.add_argument("--sheeprl-venv", default=str(Path.home() / ".cache" / "dreamer2" / f"sheeprl-{SHEEPRL}"))
    args = parser.parse_args()
    if args.compare and (args.preset != "atari" or args.set or args.device != "cpu" or args.obs != "image"
                         or args.channels != 1):
        parser.error("--compare sheeprl builds sheeprl at the atari preset's sizes (sheeprl_update.py): "
                     "use --preset atari, 64x64x1 images, the CPU, and no --set")
    if args.threads:
        torch.set_num_threads(args.threads)
    kept = False if args.default_malloc else keep_freed_memory()
    nets.use_onednn_linear = not args.mkl_linear
    from dreamer2.config import parse_overrides
    overrides = parse_overrides([f"--{kv}" for kv in args.set])
    obs_space = ({"image": ((64, 64, args.channels), np.uint8)} if args.obs == "image"
                 else {"vector": ((8,), np.float32)})
    rng = np.random.default_rng(0)
    agents = {}
    for precision in args.precision:
        torch.manual_seed(0)
        cfg = make_config(args.preset, {**overrides, "precision": precision})
        agents[precision] = Agent(cfg, obs_space, spaces.Discrete(args.actions), args.device)
    cfg = next(iter(agents.values())).cfg
    batch = synthetic_batch(obs_space, args.actions, cfg.replay.batch, cfg.replay.length, rng)
    obs = {k: v[:1, 0] for k, v in batch.items() if k in obs_space}
    obs["is_first"] = np.array([False])
    sheeprl = (SheeprlWorker(sheeprl_python(Path(args.sheeprl_venv)), torch.get_num_threads(), args.precision[0], cfg,
                             args.sheeprl_keep_freed_memory)
               if args.compare else None)
    sheeprl_times = []

    times = {p: [] for p in agents}
    phases = {p: [] for p in agents}
    for round_ in range(args.warmup + args.updates):
        for precision, agent in agents.items():
            if agent.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            metrics = agent.update(batch)
            if agent.device.type == "cuda":
                torch.cuda.synchronize()
            if round_ >= args.warmup:
                times[precision].append(time.perf_counter() - start)
                phases[precision].append({k: v for k, v in metrics.items() if k.startswith("time/")})
        if sheeprl:
            taken = sheeprl.update(1)
            if round_ >= args.warmup:
                sheeprl_times += taken
    if sheeprl:
        sheeprl.close()

    actors = dict(agents)  # who acts: each precision's agent, and the compiled copy of the fp32 one
    compiled = {}
    if args.compile_policy and "32" in agents:
        twin = Agent(make_config(args.preset, {**overrides, "precision": "32", "compile_policy": True}), obs_space,
                     spaces.Discrete(args.actions), args.device)
        twin.load_state_dict(agents["32"].state_dict())
        start = time.perf_counter()
        twin.policy({**obs, "is_first": np.array([True])}, None, "train")  # a reset step and a plain one:
        twin.policy(obs, None, "train")  # the two graphs a run compiles first
        actors["32 compiled"], compiled["compile_s"] = twin, round(time.perf_counter() - start, 1)
    states, samples = dict.fromkeys(actors), {name: [] for name in actors}
    for round_ in range(1 + 4):  # a warm-up round, then 4 rounds of 50 steps each, interleaved
        for name, actor in actors.items():
            for _ in range(50):
                start = time.perf_counter()
                _, states[name] = actor.policy(obs, states[name], "train")
                if round_:
                    samples[name].append(time.perf_counter() - start)
    latency = {name: statistics.median(times) for name, times in samples.items()}
    if compiled:
        compiled["policy_step_ms_median"] = round(1000 * latency["32 compiled"], 3)

    base = statistics.median(times[args.precision[0]])
    for precision in agents:
        median = statistics.median(times[precision])
        split = {k: round(statistics.median(p[k] for p in phases[precision]), 4) for k in phases[precision][0]}
        compared = {}
        if sheeprl_times and precision == args.precision[0]:
            compared = {"sheeprl_version": SHEEPRL, "sheeprl_keep_freed_memory": args.sheeprl_keep_freed_memory,
                        "sheeprl_update_s_median": round(statistics.median(sheeprl_times), 4),
                        "ratio_to_sheeprl": round(median / statistics.median(sheeprl_times), 3)}
        print(json.dumps({"preset": args.preset, "precision": precision, "device": args.device, "obs": args.obs,
                          "batch": [cfg.replay.batch, cfg.replay.length], "threads": torch.get_num_threads(), "keep_freed_memory": kept,
                          "onednn_linear": nets.use_onednn_linear,
                          "update_s_median": round(median, 4), "updates": len(times[precision]),
                          "ratio_to_first": round(median / base, 3), "phases_s": split,
                          "policy_step_ms_median": round(1000 * latency[precision], 3), **compared,
                          **({"compiled_policy": compiled} if compiled and precision == "32" else {}),
                          "host": describe()}), flush=True)


if __name__ == "__main__":
    main()
