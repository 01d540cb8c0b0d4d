"""MiniGrid (Chevalier-Boisvert et al.) gridworlds, as the agent's partial 7x7 view.

``env.minigrid.view``: ``rgb`` renders that view to pixels (the image, resized to ``env.size``);
``symbolic`` gives the grid's object/colour/state codes as a vector (``grid``, 7x7x3 values)
plus the facing ``direction`` (one-hot). The text mission is dropped: every task's mission is
fixed or implied by the grid, and dreamer2 has no text encoder. ``minigrid:Empty-5x5`` is short
for ``minigrid:MiniGrid-Empty-5x5-v0``.
"""
from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces

from .gym import EnvError, GymAdapter, unknown_name


class SymbolicView(gymnasium.ObservationWrapper):
    """The 7x7x3 code grid as floats (a vector for the MLP encoder) and the direction."""

    def __init__(self, env: gymnasium.Env):
        super().__init__(env)
        grid = env.observation_space["image"]
        self.observation_space = spaces.Dict({
            "grid": spaces.Box(0.0, 255.0, (int(np.prod(grid.shape)),), np.float32),
            "direction": env.observation_space["direction"]})

    def observation(self, obs: dict) -> dict:
        return {"grid": np.asarray(obs["image"], np.float32).reshape(-1), "direction": obs["direction"]}


def env_id(name: str) -> str:
    if name in gymnasium.registry:
        return name
    guess = name if name.startswith(("MiniGrid-", "BabyAI-")) else f"MiniGrid-{name}"
    return guess if guess[-3:-1] == "-v" else f"{guess}-v0"


def make_minigrid(name: str, cfg, seed: int) -> GymAdapter:
    try:
        import minigrid
        from minigrid.wrappers import RGBImgPartialObsWrapper
    except ImportError:
        raise EnvError("minigrid tasks need minigrid: pip install 'dreamer2[minigrid]'") from None
    gymnasium.register_envs(minigrid)
    full = env_id(name)
    if full not in gymnasium.registry:
        ids = [k for k in gymnasium.registry if k.startswith(("MiniGrid-", "BabyAI-"))]
        raise unknown_name("MiniGrid env", name, full, ids)
    view = cfg.env.minigrid.view
    env = gymnasium.make(full, render_mode="rgb_array")
    if view == "rgb":
        env = gymnasium.wrappers.FilterObservation(RGBImgPartialObsWrapper(env, tile_size=9), ["image"])
    else:
        env = SymbolicView(env)
    return GymAdapter(env, size=tuple(cfg.env.size), action_repeat=cfg.env.action_repeat,
                      time_limit=cfg.env.time_limit, seed=seed)
