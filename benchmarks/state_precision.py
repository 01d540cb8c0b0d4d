"""How precisely does a run's world model know its vector state, filtered and predicted?

A policy can only correct what its latent state resolves. On ``dmc:cartpole_balance`` the learned
actor holds the pole for ~1.4 s and then lets a slow lean (|sin| ~0.15, angular velocity ~0.2 rad/s)
grow into a fall; this probe says whether the model's state is finer than that drift.

On the run's newest ``--episodes`` episodes it prints, per vector key and dimension, in the env's
units: the truth's std, the posterior reconstruction's mean absolute error, and the error of
open-loop predictions ``K`` steps ahead from the real actions (one latent sample each; ``--ahead``),
plus the reward's. ``--where KEY:INDEX>VALUE`` keeps only the steps where that observation
exceeds the value (``position:1>0.9``: cartpole's pole within ~25 degrees of upright).

``--retrain N`` trains a fresh world model (no actor or critic) on the run's replay for N updates
with the run's config and ``--set`` overrides, and prints the same errors four times on the way:
a quick comparison of model settings (loss scales, learning rate, widths) on the same data,
~0.3 s an update at the small preset on one thread, instead of an hour of training per setting.

    python benchmarks/state_precision.py runs/cartpole_balance --where 'position:1>0.9'
    python benchmarks/state_precision.py runs/cartpole_balance --where 'position:1>0.9' --retrain 1200 \\
        --set loss_scales.vector=10
"""
from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import torch

import dreamer2
from dreamer2.agent import Agent
from dreamer2.config import make_config, parse_overrides
from dreamer2.replay import Replay, load_episode


def parse_where(text: str | None) -> tuple[str, int, float] | None:
    if text is None:
        return None
    match = re.fullmatch(r"(\w+):(\d+)>(-?[\d.]+)", text)
    if not match:
        raise SystemExit(f"--where wants KEY:INDEX>VALUE (e.g. position:1>0.9), got {text!r}")
    return match[1], int(match[2]), float(match[3])


def rounded(x: np.ndarray) -> list[float]:
    return [round(float(v), 4) for v in np.atleast_1d(x)]


@torch.no_grad()
def precision(agent: Agent, batch: dict[str, np.ndarray], where: tuple[str, int, float] | None,
              ahead: list[int]) -> dict[str, dict[str, list[float] | float]]:
    """Mean absolute errors in the env's units, per key and dimension, over the selected steps."""
    wm = agent.wm
    data = wm.preprocess(batch, agent.device)
    post, _ = wm.rssm.observe(wm.encode(data), data["action"], data["is_first"])
    keep = np.ones(batch["reward"].shape, bool)  # [B, T]
    if where is not None:
        key, index, value = where
        keep = batch[key][..., index] > value
    keep[:, 0] = False  # the reset step: its reward is a placeholder, and no action led to it
    keys = list(wm.dec_mlp)
    truth = {**{k: batch[k] for k in keys}, "reward": data["reward"].cpu().numpy()}  # the reward as trained on

    def predict(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        """Decoded observations (standardization undone, ``model.obs_norm``) and reward of states."""
        feat = wm.rssm.feat(state)
        out = {"reward": wm.reward(feat).mode().float().cpu().numpy()}
        for k, dist in wm.decode(feat).items():
            x = dist.mode()
            if k in wm.norm_slices:
                mean, std = wm.obs_scale(k)
                x = x * std + mean
            out[k] = x.float().cpu().numpy()
        return out

    def errors(predicted: dict[str, np.ndarray], first: int) -> dict[str, list[float] | float]:
        """|prediction - truth| averaged over the kept steps from time index ``first`` on."""
        out = {}
        for k, value in predicted.items():
            err = np.abs(value - truth[k][:, first:])[keep[:, first:]].mean(0)
            out[k] = round(float(err), 4) if k == "reward" else rounded(err)
        return out

    report: dict[str, dict] = {k: {"truth_std": rounded(batch[k][keep].std(0))} for k in keys}
    report["reward"] = {}
    for k, err in errors(predict(post), 0).items():
        report[k]["posterior"] = err
    length = batch["reward"].shape[1]
    for k_ahead in ahead:
        # Every observed step (not the reset step) that has k_ahead real actions after it starts one
        # open-loop rollout; all of them run at once, as a batch of B * (T - 1 - k_ahead) states.
        state = {k: v[:, 1:length - k_ahead].flatten(0, 1) for k, v in post.items()}
        for step in range(1, k_ahead + 1):
            state = wm.rssm.img_step(state, data["action"][:, 1 + step:length - k_ahead + step].flatten(0, 1))
        predicted = {k: v.reshape(len(keep), length - 1 - k_ahead, *v.shape[1:]) for k, v in predict(state).items()}
        for k, err in errors(predicted, 1 + k_ahead).items():
            report[k][f"ahead_{k_ahead}"] = err
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("logdir")
    parser.add_argument("--episodes", type=int, default=4, help="the run's newest episodes to measure on")
    parser.add_argument("--where", default=None, help="KEY:INDEX>VALUE: only steps where the observation exceeds it")
    parser.add_argument("--ahead", type=int, nargs="+", default=[1, 5], help="open-loop prediction lengths")
    parser.add_argument("--retrain", type=int, default=0, metavar="N", help="train a fresh world model N updates")
    parser.add_argument("--set", nargs="+", action="extend", default=[], help="overrides for --retrain, key=value")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    where = parse_where(args.where)
    agent = dreamer2.load(args.logdir)
    files = sorted((Path(args.logdir) / "episodes").glob("*.npz"))[-args.episodes:]
    episodes = [load_episode(f) for f in files]
    length = min(len(e["reward"]) for e in episodes)
    batch = {k: np.stack([e[k][:length] for e in episodes]) for k in episodes[0]}
    if where is not None and where[0] not in batch:
        raise SystemExit(f"--where names {where[0]!r}; the episodes hold {sorted(batch)}")
    torch.manual_seed(args.seed)
    if not args.retrain:
        print(json.dumps({"agent_step": agent.step, **precision(agent, batch, where, args.ahead)}))
        return
    cfg = make_config("defaults", parse_overrides([f"--{kv}" for kv in args.set]), base=agent.cfg)
    fresh = Agent(cfg, agent.obs_space, agent.act_space, agent.device)
    replay = Replay(Path(args.logdir) / "episodes", cfg.replay.capacity, cfg.replay.length,
                    cfg.replay.prioritize_ends, seed=args.seed, uniform=cfg.replay.uniform)
    training = 0.0  # seconds spent in updates, not in measuring
    for update in range(1, args.retrain + 1):
        start = time.time()
        _, _, metrics = fresh.update_world_model(replay.sample(cfg.replay.batch))
        training += time.time() - start
        if update % max(1, args.retrain // 4) == 0 or update == args.retrain:
            print(json.dumps({"overrides": args.set, "updates": update,
                              "seconds_per_update": round(training / update, 3),
                              "kl_loss": round(float(metrics["world_model/kl_loss"]), 3),
                              **precision(fresh, batch, where, args.ahead)}), flush=True)


if __name__ == "__main__":
    main()
