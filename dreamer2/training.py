"""The training loop: prefill, collect, train every N steps, evaluate, checkpoint, log.

A logdir is the whole state of a run: ``config.yaml``, ``episodes/*.npz``, ``checkpoint.pt``,
``best.pt`` (the weights of the best evaluation), ``metrics.jsonl`` and TensorBoard files. Running on an existing logdir resumes it; the step
counter is the number of env steps in finished episodes on disk, as in the reference, so an
episode that finished after the last checkpoint is neither lost nor counted twice.
"""
from __future__ import annotations

import ctypes
import io
import math
import random
import sys
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from omegaconf import DictConfig

from . import config as config_lib
from .agent import Agent
from .driver import Driver
from .envs import GymAdapter, make_env
from .envs.parallel import ProcessEnv
from .logger import Logger
from .replay import Replay, atomic_write
from .scores import Achievements, human_normalized


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read, phrased for the user."""


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise config_lib.ConfigError(f"device '{name}' asked for, but torch sees no CUDA device")
    return name


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# keep_freed_memory's settings, named as glibc's tunables name them (``GLIBC_TUNABLES=glibc.malloc.NAME=V``
# sets the same at a process's start) with the mallopt parameter that sets each at run time.
KEEP_FREED_MALLOC = {"mmap_max": (-4, 0), "trim_threshold": (-1, 2**31 - 1), "top_pad": (-2, 64 << 20)}


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse instead of handing it back to the kernel.

    CPU tensors come straight from malloc, which by default serves large blocks with a fresh
    ``mmap`` and unmaps them on free: every update then faults in and zeroes its activations
    anew. Measured here, that was ~15% of a MinAtar run's CPU time, spent in the kernel. With
    mmap off and no trimming the heap stays at its peak size and blocks are reused, as PyTorch's
    GPU allocator does. Returns whether it applied (glibc only; elsewhere nothing changes).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, ...)
        return False
    return all(libc.mallopt(param, value) for param, value in KEEP_FREED_MALLOC.values())


def prepare_logdir(logdir: Path, preset: str | list[str] | None, overrides: dict[str, Any] | None) -> DictConfig:
    """The run's config: from the preset and overrides, or from ``logdir/config.yaml`` on resume.

    Resuming with settings that differ from the saved ones (other than how long or how often
    to run, ``config.RESUMABLE_KEYS``) is an error that names every differing key.
    """
    path = logdir / "config.yaml"
    if not path.exists():
        cfg = config_lib.make_config(preset or "defaults", overrides)
        logdir.mkdir(parents=True, exist_ok=True)
        atomic_write(path, config_lib.to_yaml(cfg).encode())
        return cfg
    saved = config_lib.from_yaml(path.read_text(), str(path))
    cfg = config_lib.make_config(preset, overrides) if preset else config_lib.make_config([], overrides, base=saved)
    conflicts = {k: v for k, v in config_lib.diff(saved, cfg).items() if k not in config_lib.RESUMABLE_KEYS}
    if conflicts:
        listed = "; ".join(f"{k}: {a!r} (saved) vs {b!r} (now)" for k, b_a in conflicts.items() for a, b in [b_a])
        raise config_lib.ConfigError(f"logdir {logdir} was made with a different config: {listed}")
    if config_lib.diff(saved, cfg):
        atomic_write(path, config_lib.to_yaml(cfg).encode())
    return cfg


def save_checkpoint(path: Path, agent: Agent, step: int, replay: Replay,
                    achievements: Achievements | None = None) -> None:
    state = {
        "achievements": achievements.state_dict() if achievements is not None else None,
        "agent": agent.state_dict(),
        "model_opt": agent.model_opt.state_dict(),
        "actor_opt": agent.actor_opt.state_dict(),
        "critic_opt": agent.critic_opt.state_dict(),
        "step": step,
        "replay": replay.state_dict(),
        "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, buffer.getvalue())


def save_best(path: Path, agent: Agent, step: int, eval_return: float) -> None:
    """The weights alone (no optimizers, replay or RNGs) of the best evaluation so far."""
    buffer = io.BytesIO()
    torch.save({"agent": agent.state_dict(), "step": step, "eval_return": eval_return}, buffer)
    atomic_write(path, buffer.getvalue())


def best_return(path: Path) -> float:
    """The eval return saved in ``best.pt``, or -inf when there is none yet."""
    if not path.exists():
        return -math.inf
    try:
        return float(torch.load(path, map_location="cpu", weights_only=False)["eval_return"])
    except Exception as err:
        raise CheckpointError(f"{path} cannot be loaded ({type(err).__name__}: {str(err)[:200]}); it is corrupt") from None


def load_checkpoint(path: Path, agent: Agent, replay: Replay | None = None, restore_rng: bool = True,
                    achievements: Achievements | None = None) -> int:
    """Restore weights, optimizer moments, slow critic, counters and RNGs; returns the step."""
    try:
        state = torch.load(path, map_location=agent.device, weights_only=False)
        agent.load_state_dict(state["agent"])
        if "model_opt" not in state:  # best.pt: weights only
            return int(state["step"])
        agent.model_opt.load_state_dict(state["model_opt"])
        agent.actor_opt.load_state_dict(state["actor_opt"])
        agent.critic_opt.load_state_dict(state["critic_opt"])
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} cannot be loaded ({type(err).__name__}: {str(err)[:200]}); "
                              "it is corrupt or from another config") from None
    if replay is not None:
        replay.load_state_dict(state["replay"])
    if achievements is not None and state.get("achievements"):
        achievements.load_state_dict(state["achievements"])
    if restore_rng:
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])
        torch.set_rng_state(state["rng"]["torch"])
    return int(state["step"])


def episode_stats(episode: dict[str, np.ndarray]) -> dict[str, float]:
    return {"return": float(episode["reward"][1:].sum()), "length": float(len(episode["reward"]) - 1)}


def evaluate(agent: Agent, env: GymAdapter, episodes: int, record: bool = False
             ) -> dict[str, float] | tuple[dict[str, float], np.ndarray]:
    """Run ``episodes`` episodes with the actor's mode; return mean/std of return and length.

    With ``record``, also return the first episode's frames [T, H, W, C]: the env's own
    rendering where it has one (the full Atari screen), else the image observations.
    """
    results: list[dict[str, float]] = []
    frames: list[np.ndarray] = []
    recording = [record]

    def on_episode(episode: dict[str, np.ndarray]) -> None:
        results.append(episode_stats(episode))
        if recording[0] and not frames:
            frames.extend(episode["image"] if "image" in episode else [])
        recording[0] = False

    def policy(obs: dict[str, np.ndarray], state: Any):
        if recording[0]:
            frame = env.render()
            if isinstance(frame, np.ndarray) and frame.ndim == 3:
                frames.append(frame)
        return agent.policy(obs, state, "eval")

    Driver([env], [on_episode])(policy, episodes=episodes)
    returns = np.array([r["return"] for r in results])
    lengths = np.array([r["length"] for r in results])
    stats = {"return_mean": float(returns.mean()), "return_std": float(returns.std()),
             "length_mean": float(lengths.mean()), "episodes": len(results)}
    if not record:
        return stats
    return stats, np.stack(frames) if frames else np.zeros((0, 1, 1, 3), np.uint8)


def train(cfg: DictConfig, logdir: Path, env: Any = None, progress: bool = True) -> Agent:
    """Train (or resume) the run in ``logdir``; ``env`` overrides ``cfg.env.task`` when given."""
    logdir = Path(logdir)
    seed_everything(cfg.seed)
    keep_freed_memory()
    device = resolve_device(cfg.device)
    replay = Replay(logdir / "episodes", cfg.replay.capacity, cfg.replay.length, cfg.replay.prioritize_ends,
                    seed=cfg.seed, uniform=cfg.replay.uniform)
    task = env if env is not None else cfg.env.task
    train_envs = make_train_envs(task, cfg, seed=cfg.seed + replay.total_episodes)
    train_env = train_envs[0]
    if not isinstance(task, gymnasium.Env):
        eval_env = make_env(task, cfg, seed=cfg.seed + cfg.env.seed_offset_eval)
    else:
        eval_env = train_env  # one env instance: evaluation borrows it between training chunks
    agent = Agent(cfg, train_env.obs_space, train_env.act_space, device)
    checkpoint = logdir / "checkpoint.pt"
    resumed = checkpoint.exists()
    achievements = Achievements()
    if resumed:
        load_checkpoint(checkpoint, agent, replay, achievements=achievements)
    step = replay.total_steps
    tc = cfg.train
    best = {"path": logdir / "best.pt", "return": best_return(logdir / "best.pt")}
    logger = Logger(logdir, tc.steps, step, cfg.env.action_repeat, progress)

    last_episode: dict[str, dict[str, np.ndarray]] = {}

    def on_episode(episode: dict[str, np.ndarray]) -> None:
        replay.add(episode)
        last_episode["train"] = episode
        stats = episode_stats(episode)
        logger.scalars(stats, "episode/")
        logger.scalars(achievements.add(episode), last=True)  # rates over all episodes so far
        logger.progress(step, **{"return": stats["return"]})

    def on_step(count: int) -> None:
        """The one step counter: advanced by the driver as it steps the env."""
        nonlocal step
        step += count
        if step % 100 == 0:
            logger.progress(step)

    def run_eval(at: int) -> None:
        """Evaluation episodes, their scores, and the videos: eval_policy, train_policy, openl."""
        if tc.videos:
            stats, frames = evaluate(agent, eval_env, tc.eval_episodes, record=True)
        else:
            stats = evaluate(agent, eval_env, tc.eval_episodes)
        scores = {"return": stats["return_mean"], "length": stats["length_mean"]}
        if cfg.env.task.startswith("atari:"):
            scores["human_normalized"] = human_normalized(cfg.env.task, stats["return_mean"])
        logger.scalars(scores, "eval/")
        logger.write(at)  # at the step it measured (as the reference), not averaged into the next interval
        logger.progress(at, eval=stats["return_mean"])
        if tc.keep_best and stats["return_mean"] > best["return"]:
            best["return"] = stats["return_mean"]
            save_best(best["path"], agent, at, stats["return_mean"])
        if not tc.videos:
            return
        if len(frames):
            logger.video("eval_policy", frames, at)
        if "image" in last_episode.get("train", {}):
            logger.video("train_policy", last_episode["train"]["image"], at)
        if agent.wm.dec_cnn:
            logger.video("openl", agent.openl_video(replay.sample(6)), at)

    def on_crash(index: int, message: str) -> None:
        """A worker died: it was restarted, its running episode dropped; the run goes on."""
        logger.scalars({"env/restarts": 1.0})
        print(f"dreamer2: {message}; restarted it (its unfinished episode is dropped)", file=sys.stderr)

    driver = Driver(train_envs, [on_episode], [on_step], on_crash)
    rng = np.random.default_rng(cfg.seed + replay.total_episodes)
    try:
        if step < tc.prefill or not len(replay):
            logger.stage("prefill")
            # Prefill steps are part of train.steps, so a run shorter than the prefill stops at its length.
            driver.random(rng, steps=max(min(tc.prefill, tc.steps) - step, 1))
            while not len(replay):  # sampling needs one finished episode
                driver.random(rng, steps=1)
            logger.write(step)
        if not resumed:
            logger.stage("pretrain")
            for i in range(tc.pretrain):
                logger.scalars(agent.update(replay.sample(cfg.replay.batch)))
                logger.progress(step, pretrain=i + 1)
        logger.stage("train")
        policy = lambda obs, state: agent.policy(obs, state, "train")
        next_log = step + tc.log_every
        next_eval = step + tc.eval_every if resumed else step
        next_ckpt = step + tc.checkpoint_every
        while step < tc.steps:
            if step >= next_eval:
                next_eval += tc.eval_every
                run_eval(step)
                if eval_env is train_env:
                    driver.reset()
            driver(policy, steps=min(tc.train_every, tc.steps - step))
            logger.progress(step)
            for _ in range(tc.train_steps):
                logger.scalars(agent.update(replay.sample(cfg.replay.batch)))
            if step >= next_log:
                next_log += tc.log_every
                logger.write(step)
            if step >= next_ckpt:
                next_ckpt += tc.checkpoint_every
                save_checkpoint(checkpoint, agent, step, replay, achievements)
        run_eval(step)  # writes everything logged up to here
        save_checkpoint(checkpoint, agent, step, replay, achievements)
    finally:
        logger.close()
        for worker in train_envs:
            if isinstance(worker, ProcessEnv):
                worker.close()
    return agent


def make_train_envs(task: Any, cfg: DictConfig, seed: int) -> list[GymAdapter | ProcessEnv]:
    """``cfg.envs`` training envs: the adapter itself for one, worker processes for more, each
    seeded apart (worker i: seed + i * 1,000,000, plus 1,000 per restart) and each handing its
    own episodes to replay."""
    if cfg.envs == 1:
        return [make_env(task, cfg, seed=seed)]
    if not isinstance(task, str):
        raise config_lib.ConfigError("envs > 1 needs a task string (e.g. 'atari:Breakout'): each worker process makes "
                          "its own env, and an env object cannot be shared between processes")
    return [ProcessEnv(partial(_worker_env, task, cfg, seed + i * 1_000_000), f"env{i}") for i in range(cfg.envs)]


def _worker_env(task: str, cfg: DictConfig, seed: int, restarts: int) -> GymAdapter:
    """A worker's env; a restarted worker is seeded apart from its predecessors."""
    return make_env(task, cfg, seed=seed + restarts * 1_000)
