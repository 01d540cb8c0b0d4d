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

    python benchmarks/state_precision.py runs/cartpole_balance --where position:1>0.9
    python benchmarks/state_precision.py runs/cartpole_balance --where position:1>0.9 --retrain 1200 \\
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

    def raw(key: str, x: torch.Tensor) -> np.ndarray:
        """Undo the observation standardization (``model.obs_norm``) where there is one."""
        if key in wm.norm_slices:
            mean, std = wm.obs_scale(key)
            x = x * std + mean
        return x.float().cpu().numpy()

    keys = list(wm.dec_mlp)
    report: dict[str, dict] = {k: {"truth_std": rounded(batch[k][keep].std(0))} for k in keys}
    decoded = wm.decode(wm.rssm.feat(post))
    for k in keys:
        report[k]["posterior"] = rounded(np.abs(raw(k, decoded[k].mode()) - batch[k])[keep].mean(0))
    reward = wm.reward(wm.rssm.feat(post)).mode().float().cpu().numpy()
    report["reward"] = {"posterior": round(float(np.abs(reward - data["reward"].cpu().numpy())[keep].mean()), 4)}
    length = batch["reward"].shape[1]
    for k_ahead in ahead:
        errors: dict[str, list[np.ndarray]] = {k: [] for k in keys + ["reward"]}
        for start in range(1, length - k_ahead):  # from every observed step (not the reset step)
            state = {k: v[:, start] for k, v in post.items()}
            for t in range(start + 1, start + k_ahead + 1):
                state = wm.rssm.img_step(state, data["action"][:, t])
            feat = wm.rssm.feat(state)
            mask = keep[:, start + k_ahead]
            for k, dist in wm.decode(feat).items():
                errors[k].append(np.abs(raw(k, dist.mode()) - batch[k][:, start + k_ahead])[mask])
            errors["reward"].append(np.abs(wm.reward(feat).mode().float().cpu().numpy()
                                           - data["reward"][:, start + k_ahead].cpu().numpy())[mask])
        for k, parts in errors.items():
            err = np.concatenate(parts)
            report[k][f"ahead_{k_ahead}"] = round(float(err.mean()), 4) if k == "reward" else rounded(err.mean(0))
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
        sample = replay.sample(cfg.replay.batch)
        fresh.wm.update_obs_stats(sample)
        with fresh.autocast():
            loss, _, metrics = fresh.wm.loss(fresh.wm.preprocess(sample, fresh.device))
        fresh.model_opt.step(loss)
        training += time.time() - start
        if update % max(1, args.retrain // 4) == 0 or update == args.retrain:
            print(json.dumps({"overrides": args.set, "updates": update,
                              "seconds_per_update": round(training / update, 3),
                              "kl_loss": round(float(metrics["world_model/kl_loss"]), 3),
                              **precision(fresh, batch, where, args.ahead)}), flush=True)


if __name__ == "__main__":
    main()
