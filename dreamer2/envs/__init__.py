"""Env adapters: every suite is turned into the observation contract of DESIGN.md.

``reset()`` and ``step(action)`` return a dict with the observation keys (``image`` uint8
HxWxC and/or float32 vectors) plus ``reward``, ``is_first``, ``is_last``, ``is_terminal``.
Actions come in as one-hot vectors (discrete) or vectors in [-1, 1] (continuous).
"""
from __future__ import annotations

import os
from typing import Any

# Frames are rendered off-screen (rgb_array); no display or sound device is wanted, and SDL
# would otherwise complain about a missing one on headless machines.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
# SDL (pygame, which gymnasium's classic-control envs render with) would otherwise catch SIGTERM
# and turn it into a quit event nobody reads: `kill` could not stop a training run.
os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")

from .gym import EnvError, GymAdapter

SUITES = ("gym", "atari", "minatar", "dmc", "crafter", "minigrid")


def make_env(task: Any, cfg, seed: int) -> GymAdapter:
    """``task``: a ``"suite:ID"`` string, a ``gymnasium.Env``, or a callable that returns one."""
    import gymnasium

    if isinstance(task, str):
        suite, _, name = task.partition(":")
        if not name or suite not in SUITES:
            raise EnvError(f"unknown task '{task}': expected SUITE:NAME with SUITE one of {', '.join(SUITES)}")
        if suite == "atari":
            from .atari import make_atari
            return make_atari(name, cfg, seed)
        if suite == "dmc":
            from .dmc import make_dmc
            return make_dmc(name, cfg, seed)
        if suite == "crafter":
            from .crafter import make_crafter
            return make_crafter(name, cfg, seed)
        if suite == "minigrid":
            from .minigrid import make_minigrid
            return make_minigrid(name, cfg, seed)
        if suite == "minatar":
            from .minatar import make_minatar
            return make_minatar(name, cfg, seed)
        try:
            env = gymnasium.make(name, render_mode="rgb_array")  # frames for pixels and for videos
        except gymnasium.error.Error as err:
            raise EnvError(f"cannot make gymnasium env '{name}': {err}") from None
    elif isinstance(task, gymnasium.Env):
        env = task
    elif callable(task):
        env = task()
        if not isinstance(env, gymnasium.Env):
            raise EnvError(f"the env factory returned {type(env).__name__}, not a gymnasium.Env")
    else:
        raise EnvError(f"env must be a task string, a gymnasium.Env or a callable, got {type(task).__name__}")
    return GymAdapter(env, pixels=cfg.env.pixels, size=tuple(cfg.env.size),
                      action_repeat=cfg.env.action_repeat, time_limit=cfg.env.time_limit, seed=seed)


__all__ = ["EnvError", "GymAdapter", "make_env", "SUITES"]
