"""dreamer2: DreamerV2 (Hafner et al., 2021) in PyTorch.

```python
import dreamer2
agent = dreamer2.train("gym:CartPole-v1", preset="small", steps=20_000)
stats = dreamer2.evaluate(agent, "gym:CartPole-v1", episodes=10)
agent = dreamer2.load("runs/cartpole")
action, state = agent.act(obs, state=None, explore=False)
```
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Mapping

from .agent import Agent
from .config import Config, ConfigError, make_config
from .envs import EnvError, make_env
from .replay import ReplayError
from .training import CheckpointError

__version__ = "0.1.0"


def train(env: Any, preset: str | None = "small", steps: int | None = None, logdir: str | Path | None = None,
          overrides: Mapping[str, Any] | None = None, seed: int | None = None, progress: bool = True) -> Agent:
    """Train DreamerV2 and return the agent.

    env: a ``gymnasium.Env``, a zero-argument callable that makes one, or a task string such as
    ``"gym:CartPole-v1"``. ``logdir=None`` uses a fresh temporary directory; an existing logdir
    is resumed. ``overrides`` takes dotted keys, e.g. ``{"rssm.deter": 256}``.
    """
    from . import training

    overrides = dict(overrides or {})
    if isinstance(env, str):
        overrides["env.task"] = env
    elif env is not None:
        overrides.setdefault("env.task", "custom:" + getattr(env, "__name__", type(env).__name__))
    if steps is not None:
        overrides["train.steps"] = int(steps)
    if seed is not None:
        overrides["seed"] = int(seed)
    logdir = Path(logdir) if logdir is not None else Path(tempfile.mkdtemp(prefix="dreamer2-"))
    cfg = training.prepare_logdir(logdir, preset, overrides)
    agent = training.train(cfg, logdir, env=None if isinstance(env, str) else env, progress=progress)
    agent.logdir = logdir
    return agent


def evaluate(agent: Agent, env: Any = None, episodes: int = 10, seed: int | None = None,
             video: str | Path | None = None) -> dict[str, float]:
    """Mean/std return and mean length of ``episodes`` episodes with the actor's mode.

    ``env`` as in ``train``; ``None`` makes the agent's own task again. ``video``: a .mp4 or
    .gif path for the first episode, rendered by the env (the full screen for Atari).
    """
    from . import training

    cfg = agent.cfg
    seed = cfg.seed + cfg.env.seed_offset_eval if seed is None else seed
    adapter = make_env(env if env is not None else cfg.env.task, cfg, seed=seed)
    try:
        if video is None:
            return training.evaluate(agent, adapter, episodes)
        from .logger import write_video
        stats, frames = training.evaluate(agent, adapter, episodes, record=True)
        fps = 30 if cfg.env.task.startswith("atari:") else 16
        write_video(video, frames, fps=fps)
        return stats
    finally:
        adapter.close()


def dream(agent: Agent, video: str | Path, sequences: int = 4, context: int = 5, horizon: int = 45,
          seed: int = 0) -> Path:
    """Write a video of the world model dreaming: ``sequences`` replayed starts from the run's
    episodes, ``context`` observed frames, then ``horizon`` imagined steps with the actor acting,
    beside the replayed continuation (see ``Agent.dream_video``). Returns the video path."""
    from .logger import write_video
    from .replay import Replay

    logdir = getattr(agent, "logdir", None)
    if logdir is None:
        raise ConfigError("dream needs an agent with a logdir (from dreamer2.load or dreamer2.train)")
    replay = Replay(Path(logdir) / "episodes", agent.cfg.replay.capacity, context + horizon,
                    prioritize_ends=False, seed=seed)
    if not len(replay):
        raise ReplayError(f"{logdir} has no finished episodes to start a dream from")
    return write_video(video, agent.dream_video(replay.sample(sequences), context))


def load(logdir: str | Path, device: str | None = None, env: Any = None, checkpoint: str = "last") -> Agent:
    """The agent of a run from its logdir (config.yaml + checkpoint.pt).

    ``checkpoint``: "last" (checkpoint.pt) or "best" (best.pt, the weights of the run's best
    evaluation; ``agent.step`` says when it was). ``env`` is needed only for runs trained on a
    custom env object (task ``custom:...``).
    """
    from . import config as config_lib
    from . import training

    logdir = Path(logdir)
    if checkpoint not in ("last", "best"):
        raise ValueError(f"checkpoint must be 'last' or 'best', got {checkpoint!r}")
    path = logdir / "config.yaml"
    checkpoint = logdir / ("checkpoint.pt" if checkpoint == "last" else "best.pt")
    for needed in (path, checkpoint):
        if not needed.exists():
            raise FileNotFoundError(f"{logdir} is not a dreamer2 logdir: {needed.name} is missing")
    cfg = config_lib.from_yaml(path.read_text(), str(path))
    adapter = make_env(env if env is not None else cfg.env.task, cfg, seed=cfg.seed)
    agent = Agent(cfg, adapter.obs_space, adapter.act_space, training.resolve_device(device or cfg.device))
    adapter.close()
    agent.step = training.load_checkpoint(checkpoint, agent, restore_rng=False)
    agent.eval()
    agent.logdir = logdir
    return agent


__all__ = ["Agent", "Config", "ConfigError", "EnvError", "ReplayError", "CheckpointError", "make_config",
           "make_env", "train", "evaluate", "dream", "load", "__version__"]
