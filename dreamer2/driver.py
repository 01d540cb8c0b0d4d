"""Steps envs with a policy and hands every finished episode to its callbacks.

Each stored step holds an observation and the action that *led to* it (zeros at reset), as
the paper's replay does. An unfinished episode is never handed on, so a crash can only lose
the episode that was running.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .envs import GymAdapter

Policy = Callable[[dict[str, np.ndarray], Any], tuple[np.ndarray, Any]]
EpisodeCallback = Callable[[dict[str, np.ndarray]], None]
StepCallback = Callable[[int], None]


class Driver:
    def __init__(self, envs: list[GymAdapter], on_episode: list[EpisodeCallback] | None = None,
                 on_step: list[StepCallback] | None = None):
        self.envs = envs
        self.on_episode = list(on_episode or [])
        self.on_step = list(on_step or [])  # called with the number of env steps just taken
        self.reset()

    def reset(self) -> None:
        """Forget running episodes; the next call starts each env afresh."""
        self._obs: list[dict[str, Any] | None] = [None] * len(self.envs)
        self._episodes: list[list[dict[str, Any]]] = [[] for _ in self.envs]
        self._state = None

    def __call__(self, policy: Policy, steps: int = 0, episodes: int = 0) -> tuple[int, int]:
        """Run until ``steps`` env steps or ``episodes`` finished episodes; returns both counts."""
        step = episode = 0
        while (steps and step < steps) or (episodes and episode < episodes):
            for i, env in enumerate(self.envs):
                if self._obs[i] is None or self._obs[i]["is_last"]:
                    obs = env.reset()
                    self._obs[i] = obs
                    self._episodes[i] = [{**obs, "action": np.zeros(env.act_space.shape or (env.act_space.n,), np.float32)}]
            batch = {k: np.stack([o[k] for o in self._obs]) for k in self._obs[0]}
            actions, self._state = policy(batch, self._state)
            for i, env in enumerate(self.envs):
                obs = env.step(actions[i])
                self._obs[i] = obs
                self._episodes[i].append({**obs, "action": np.asarray(actions[i], np.float32)})
                if obs["is_last"]:
                    done = {k: np.stack([t[k] for t in self._episodes[i]]) for k in self._episodes[i][0]}
                    for callback in self.on_episode:
                        callback(done)
                    episode += 1
            step += len(self.envs)
            for callback in self.on_step:
                callback(len(self.envs))
        return step, episode
