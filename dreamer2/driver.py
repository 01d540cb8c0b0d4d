"""Steps envs with a policy and hands every finished episode to its callbacks.

Each stored step holds an observation and the action that *led to* it (zeros at reset), as
the paper's replay does. An unfinished episode is never handed on, so a crash can only lose
the episode that was running.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .envs import GymAdapter
from .envs.parallel import ProcessEnv, WorkerCrashed

Policy = Callable[[dict[str, np.ndarray], Any], tuple[np.ndarray, Any]]
EpisodeCallback = Callable[[dict[str, np.ndarray]], None]
StepCallback = Callable[[int], None]
_CRASHED = object()


class Driver:
    """Envs are adapters or ``ProcessEnv`` workers; workers are all stepped before any is waited
    for. A crashed worker is restarted and reported to ``on_crash``; its running episode is dropped."""

    def __init__(self, envs: list[GymAdapter | ProcessEnv], on_episode: list[EpisodeCallback] | None = None,
                 on_step: list[StepCallback] | None = None, on_crash: Callable[[int, str], None] | None = None):
        self.envs = envs
        self.on_episode = list(on_episode or [])
        self.on_step = list(on_step or [])  # called with the number of env steps just taken
        self.on_crash = on_crash
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
                    obs = self._guard(i, env.reset)
                    self._obs[i] = obs
                    self._episodes[i] = [{**obs, "action": np.zeros(env.act_space.shape or (env.act_space.n,), np.float32)}]
            batch = {k: np.stack([o[k] for o in self._obs]) for k in self._obs[0]}
            actions, self._state = policy(batch, self._state)
            results = self._step_all(actions)
            for i, env in enumerate(self.envs):
                obs = results[i]
                if obs is None:  # the worker crashed: its episode is gone, the next round resets it
                    self._obs[i] = None
                    continue
                self._obs[i] = obs
                self._episodes[i].append({**obs, "action": np.asarray(actions[i], np.float32)})
                if obs["is_last"]:
                    done = {k: np.stack([t[k] for t in self._episodes[i]]) for k in self._episodes[i][0]}
                    for callback in self.on_episode:
                        callback(done)
                    episode += 1
            taken = sum(obs is not None for obs in results)
            step += taken
            for callback in self.on_step:
                callback(taken)
        return step, episode

    def _step_all(self, actions: np.ndarray) -> list[dict[str, Any] | None]:
        asynchronous = [isinstance(env, ProcessEnv) for env in self.envs]
        sent = [False] * len(self.envs)
        for i, env in enumerate(self.envs):
            if asynchronous[i]:
                sent[i] = self._guard(i, env.step_async, actions[i]) is not _CRASHED
        results: list[dict[str, Any] | None] = []
        for i, env in enumerate(self.envs):
            if asynchronous[i]:
                result = self._guard(i, env.step_wait) if sent[i] else _CRASHED
            else:
                result = env.step(actions[i])
            results.append(None if result is _CRASHED else result)
        return results

    def _guard(self, i: int, call: Callable, *args: Any) -> Any:
        """Run a worker call; on a crash restart the worker, report it, and return ``_CRASHED``
        (or, for a reset, reset the fresh worker)."""
        try:
            return call(*args)
        except WorkerCrashed as err:
            env = self.envs[i]
            env.restart()
            if self.on_crash:
                self.on_crash(i, str(err))
            return env.reset() if call.__name__ == "reset" else _CRASHED
