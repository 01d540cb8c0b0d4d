"""Adapter from any gymnasium env to the observation contract.

Suite quirks stop here: space conversion (Box/Discrete/MultiBinary/Dict observations,
Discrete/Box actions), rendering state-based envs to pixels, action repeat, and time limits
that end an episode with ``is_last`` but not ``is_terminal``.
"""
from __future__ import annotations

import difflib
from typing import Any

import cv2
import gymnasium
import numpy as np
from gymnasium import spaces


class EnvError(ValueError):
    """An env or space that dreamer2 cannot use, phrased for the user."""


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[:2] != tuple(size):
        channels = image.shape[2]
        image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        image = image.reshape(size[0], size[1], channels)
    return np.ascontiguousarray(image, dtype=np.uint8)


def unknown_name(what: str, name: str, query: str, candidates: list[str], fallback: str = "") -> EnvError:
    """The error for a task name no suite knows, naming up to three close candidates."""
    close = difflib.get_close_matches(query, candidates, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else fallback
    return EnvError(f"unknown {what} '{name}'{hint}")


def random_action(act_space: spaces.Space, rng: np.random.Generator) -> np.ndarray:
    """A uniform random action in the agent's format: one-hot, or a vector in [-1, 1]."""
    if isinstance(act_space, spaces.Discrete):
        return np.eye(act_space.n, dtype=np.float32)[rng.integers(act_space.n)]
    return rng.uniform(-1.0, 1.0, act_space.shape).astype(np.float32)


class GymAdapter:
    """Wraps a ``gymnasium.Env``; exposes ``obs_space`` ({key: (shape, dtype)}) and ``act_space``."""

    def __init__(self, env: gymnasium.Env, pixels: bool = False, size: tuple[int, int] = (64, 64),
                 action_repeat: int = 1, time_limit: int = 0, seed: int | None = None):
        self.env, self.pixels, self.size = env, pixels, tuple(size)
        self.action_repeat, self.time_limit = action_repeat, time_limit
        self._seed, self._step = seed, 0
        self._converters = self._make_converters(env.observation_space)
        if pixels and getattr(env, "render_mode", None) != "rgb_array":
            raise EnvError("env.pixels needs an env made with render_mode='rgb_array'")
        act = env.action_space
        if isinstance(act, spaces.Discrete):
            self.act_space = spaces.Discrete(int(act.n))
        elif isinstance(act, spaces.Box) and len(act.shape) == 1:
            self.act_space = spaces.Box(-1.0, 1.0, act.shape, np.float32)
            low, high = act.low.astype(np.float64), act.high.astype(np.float64)
            self._bounded = np.isfinite(low).all() and np.isfinite(high).all()
            self._low, self._high = low, high
        else:
            raise EnvError(f"unsupported action space {act}: dreamer2 supports Discrete and 1-D Box actions")
        if seed is not None:
            env.action_space.seed(seed)
        obs, _ = self._reset_env()
        self.obs_space = {k: (v.shape, v.dtype) for k, v in self._convert(obs).items()}

    # -- spaces -------------------------------------------------------------------------------
    def _make_converters(self, space: spaces.Space) -> dict[str, Any]:
        if self.pixels:
            return {}
        if isinstance(space, spaces.Dict):
            return {key: self._converter(key, sub) for key, sub in space.spaces.items()}
        return {"": self._converter("", space)}

    def _converter(self, key: str, space: spaces.Space):
        name = key or None
        if isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) in (2, 3):
            return name or "image", lambda x: _resize(np.asarray(x), self.size)
        if isinstance(space, (spaces.Box, spaces.MultiBinary)):
            return name or "vector", lambda x: np.asarray(x, np.float32).reshape(-1)
        if isinstance(space, spaces.Discrete):
            n, start = int(space.n), int(space.start)
            return name or "vector", lambda x: np.eye(n, dtype=np.float32)[int(x) - start]
        where = f" (key '{key}')" if key else ""
        raise EnvError(f"unsupported observation space {space}{where}: dreamer2 supports Box, Discrete, "
                       "MultiBinary and Dict of those")

    def _convert(self, obs: Any) -> dict[str, np.ndarray]:
        if self.pixels:
            return {"image": _resize(self.env.render(), self.size)}
        if "" in self._converters:
            name, fn = self._converters[""]
            return {name: fn(obs)}
        return {name: fn(obs[key]) for key, (name, fn) in self._converters.items()}

    # -- stepping -----------------------------------------------------------------------------
    def _reset_env(self):
        seed, self._seed = self._seed, None  # seed the first reset only; later resets continue its RNG
        return self.env.reset(seed=seed)

    def reset(self) -> dict[str, Any]:
        obs, _ = self._reset_env()
        self._step = 0
        return {**self._convert(obs), "reward": np.float32(0.0), "is_first": True, "is_last": False,
                "is_terminal": False}

    def step(self, action: np.ndarray) -> dict[str, Any]:
        env_action = self._env_action(action)
        reward, terminated, truncated = 0.0, False, False
        for _ in range(self.action_repeat):
            obs, r, terminated, truncated, _ = self.env.step(env_action)
            reward += float(r)
            if terminated or truncated:
                break
        self._step += 1
        limit = bool(self.time_limit) and self._step >= self.time_limit
        return {**self._convert(obs), "reward": np.float32(reward), "is_first": False,
                "is_last": bool(terminated or truncated or limit), "is_terminal": bool(terminated)}

    def _env_action(self, action: np.ndarray):
        action = np.asarray(action)
        if isinstance(self.act_space, spaces.Discrete):
            return int(np.argmax(action)) + int(self.env.action_space.start)
        action = np.clip(action, -1.0, 1.0)
        if self._bounded:
            action = self._low + (action + 1.0) / 2.0 * (self._high - self._low)
        return action.astype(self.env.action_space.dtype)

    def random_action(self, rng: np.random.Generator) -> np.ndarray:
        return random_action(self.act_space, rng)

    def render(self) -> np.ndarray | None:
        """The env's own rgb frame, or None when it was made without render_mode='rgb_array'."""
        return self.env.render() if getattr(self.env, "render_mode", None) == "rgb_array" else None

    def close(self) -> None:
        self.env.close()
