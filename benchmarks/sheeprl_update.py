"""Times sheeprl's DreamerV2 update at dreamer2's ``atari`` sizes; run by ``update_speed.py --compare sheeprl``.

Runs inside sheeprl's own virtual environment (it imports sheeprl, not dreamer2). It builds the agent
through sheeprl's hydra configs (``exp=dreamer_v2``) with the sizes of the paper's Atari setting,
then serves the parent over stdin/stdout so that the parent can interleave its own updates with
these: each input line ``N`` runs N updates of ``sheeprl.algos.dreamer_v2.dreamer_v2.train`` (world
model, imagination, actor, critic, optimizer steps, as in sheeprl's training loop) on one synthetic
batch and answers one JSON line with the N durations in seconds.

    python sheeprl_update.py --threads 2 --precision 32 --horizon 15
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import gymnasium
import numpy as np
import torch
from hydra import compose, initialize_config_module
from lightning.fabric import Fabric
from omegaconf import OmegaConf

from sheeprl.algos.dreamer_v2.agent import build_agent
from sheeprl.algos.dreamer_v2.dreamer_v2 import train
from sheeprl.algos.dreamer_v2.utils import build_optimizer
from sheeprl.utils.utils import dotdict

FABRIC_PRECISION = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--precision", choices=list(FABRIC_PRECISION), default="32")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--actions", type=int, default=4)
    parser.add_argument("--horizon", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    torch.distributions.Distribution.set_default_validate_args(False)  # as sheeprl's cli (distribution.validate_args)
    # The sizes of the paper's Atari setting (dreamer2's atari preset): deter 600, hidden 600, 4 x 400
    # MLPs, CNN depth 48, a discount head, LayerNorm in the GRU cell.
    overrides = ["exp=dreamer_v2", "env.screen_size=64", "env.frame_stack=1", "env.grayscale=True",
                 "algo.cnn_keys.encoder=[rgb]", "algo.mlp_keys.encoder=[]",
                 f"algo.per_rank_batch_size={args.batch}", f"algo.per_rank_sequence_length={args.length}",
                 f"algo.horizon={args.horizon}", "algo.world_model.use_continues=True",
                 "algo.world_model.recurrent_model.layer_norm=True", "algo.world_model.discount_scale_factor=5.0",
                 "algo.world_model.kl_free_nats=0.0", "algo.world_model.kl_regularizer=0.1",
                 "algo.actor.ent_coef=1e-3", "algo.actor.objective_mix=1.0", "metric.log_level=0"]
    with initialize_config_module(config_module="sheeprl.configs", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    cfg = dotdict(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False))
    torch.set_float32_matmul_precision(cfg.float32_matmul_precision)  # as sheeprl's cli
    fabric = Fabric(accelerator="cpu", devices=1, precision=FABRIC_PRECISION[args.precision])
    obs_space = gymnasium.spaces.Dict({"rgb": gymnasium.spaces.Box(0, 255, (1, 64, 64), np.uint8)})
    actions_dim = (args.actions,)
    world_model, actor, critic, target_critic, _ = build_agent(fabric, actions_dim, False, cfg, obs_space)
    optimizers = fabric.setup_optimizers(build_optimizer(cfg.algo.world_model.optimizer, world_model.parameters()),
                                         build_optimizer(cfg.algo.actor.optimizer, actor.parameters()),
                                         build_optimizer(cfg.algo.critic.optimizer, critic.parameters()))

    rng = np.random.default_rng(0)
    T, B = args.length, args.batch
    batch = {"rgb": torch.from_numpy(rng.integers(0, 256, (T, B, 1, 64, 64)).astype(np.float32)),
             "actions": torch.from_numpy(np.eye(args.actions, dtype=np.float32)[rng.integers(args.actions, size=(T, B))]),
             "rewards": torch.from_numpy(rng.standard_normal((T, B, 1)).astype(np.float32)),
             "terminated": torch.from_numpy((rng.random((T, B, 1)) < 0.01).astype(np.float32)),
             "truncated": torch.zeros(T, B, 1), "is_first": torch.zeros(T, B, 1)}
    print(json.dumps({"ready": True, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        times = []
        for _ in range(int(line)):
            data = {k: v.clone() for k, v in batch.items()}  # train() writes is_first in place
            start = time.perf_counter()
            train(fabric, world_model, actor, critic, target_critic, *optimizers, data, None, cfg, actions_dim)
            times.append(time.perf_counter() - start)
        print(json.dumps({"times": times}), flush=True)


if __name__ == "__main__":
    main()
