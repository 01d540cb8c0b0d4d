"""Crafter (Hafner, 2021) through the crafter package, whose API is the old gym one.

``crafter:reward`` gives the achievement rewards, ``crafter:noreward`` none (for unsupervised
agents). The 64x64 RGB view is the image; each of the 22 achievements becomes a
``log_achievement_NAME`` key (its count so far in the episode), which the model never sees
(keys starting with ``log_`` are for logging only) and from which training logs success rates
and the Crafter score. An episode ends as terminal when the player dies, and with ``is_last``
only at the 10,000-step limit.
"""
from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces

from .gym import EnvError, GymAdapter

ACHIEVEMENTS = (
    "collect_coal", "collect_diamond", "collect_drink", "collect_iron", "collect_sapling", "collect_stone",
    "collect_wood", "defeat_skeleton", "defeat_zombie", "eat_cow", "eat_plant", "make_iron_pickaxe",
    "make_iron_sword", "make_stone_pickaxe", "make_stone_sword", "make_wood_pickaxe", "make_wood_sword",
    "place_furnace", "place_plant", "place_stone", "place_table", "wake_up")


class CrafterEnv(gymnasium.Env):
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, reward: bool, size: tuple[int, int] = (64, 64)):
        import crafter

        self._env = crafter.Env(size=tuple(size), reward=reward)
        self._reward = reward
        self.render_mode = "rgb_array"
        self.action_space = spaces.Discrete(self._env.action_space.n)
        self.observation_space = spaces.Dict({
            "image": spaces.Box(0, 255, (*size, 3), np.uint8),
            **{f"log_achievement_{name}": spaces.Box(0, np.inf, (1,), np.float32) for name in ACHIEVEMENTS}})
        self._last = None

    def _obs(self, image: np.ndarray, achievements: dict[str, int]) -> dict[str, np.ndarray]:
        self._last = image
        return {"image": image, **{f"log_achievement_{k}": np.array([achievements.get(k, 0)], np.float32)
                                   for k in ACHIEVEMENTS}}

    def reset(self, seed: int | None = None, options=None):
        if seed is not None:
            self._env._seed = seed  # crafter draws each episode's world from this seed and its episode count
        return self._obs(self._env.reset(), {}), {}

    def step(self, action: int):
        image, reward, done, info = self._env.step(int(action))
        terminated = done and info["discount"] == 0  # the player died
        return self._obs(image, info["achievements"]), float(reward), terminated, done and not terminated, {}

    def render(self) -> np.ndarray:
        return self._last


def make_crafter(name: str, cfg, seed: int) -> GymAdapter:
    if name not in ("reward", "noreward"):
        raise EnvError(f"unknown Crafter task '{name}': use crafter:reward or crafter:noreward")
    try:
        import crafter  # noqa: F401
    except ImportError:
        raise EnvError("crafter tasks need crafter: pip install 'dreamer2[crafter]'") from None
    env = CrafterEnv(name == "reward", tuple(cfg.env.size))
    return GymAdapter(env, size=tuple(cfg.env.size), action_repeat=cfg.env.action_repeat,
                      time_limit=cfg.env.time_limit, seed=seed)
