"""Steps envs with a policy and hands every finished episode to its callbacks.

Each stored step holds an observation and the action that *led to* it (zeros at reset), as
the paper's replay does. An unfinished episode is never handed on, so a crash can only lose
the episode that was running.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .envs import GymAdapter
from .envs.parallel import ProcessEnv, WorkerCrashed, random_steps

Policy = Callable[[dict[str, np.ndarray], Any], tuple[np.ndarray, Any]]
EpisodeCallback = Callable[[dict[str, np.ndarray]], None]
StepCallback = Callable[[int], None]
_CRASHED = object()
RANDOM_CHUNK = 100  # random steps an env takes by itself per round (a worker: one round trip)


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
                    self._begin(i, self._guard(i, env.reset))
            batch = {k: np.stack([o[k] for o in self._obs]) for k in self._obs[0]}
            actions, self._state = policy(batch, self._state)
            results = self._step_all(actions)
            for i, obs in enumerate(results):
                if obs is None:  # the worker crashed: its episode is gone, the next round resets it
                    self._obs[i] = None
                    continue
                episode += self._record(i, obs, actions[i])
            taken = sum(obs is not None for obs in results)
            step += taken
            for callback in self.on_step:
                callback(taken)
        return step, episode

    def random(self, rng: np.random.Generator, steps: int) -> tuple[int, int]:
        """``steps`` env steps of uniform random actions (the prefill), with the same records and
        callbacks as ``__call__``. Each env acts by itself for up to ``RANDOM_CHUNK`` steps a round,
        so a worker costs one round trip per chunk, not one per step; a worker that crashes loses
        the episodes of its chunk that it had not handed back yet."""
        step = episode = 0
        while step < steps:
            count = min(RANDOM_CHUNK, -(-(steps - step) // len(self.envs)))
            seeds = [int(seed) for seed in rng.integers(2**31, size=len(self.envs))]
            resets = [obs is None or obs["is_last"] for obs in self._obs]
            sent = [isinstance(env, ProcessEnv)
                    and self._guard(i, env.random_steps_async, count, seeds[i], resets[i]) is not _CRASHED
                    for i, env in enumerate(self.envs)]
            for i, env in enumerate(self.envs):
                if not isinstance(env, ProcessEnv):
                    events = random_steps(env, count, seeds[i], resets[i])
                else:
                    events = self._guard(i, env.wait) if sent[i] else _CRASHED
                if events is _CRASHED:
                    self._obs[i] = None
                    continue
                for action, obs in events:
                    if action is None:
                        self._begin(i, obs)
                        continue
                    episode += self._record(i, obs, action)
                    step += 1
                    for callback in self.on_step:
                        callback(1)
        return step, episode

    def _begin(self, i: int, obs: dict[str, Any]) -> None:
        """A new episode of env ``i``; its first step holds a zero action."""
        self._obs[i] = obs
        space = self.envs[i].act_space
        self._episodes[i] = [{**obs, "action": np.zeros(space.shape or (space.n,), np.float32)}]

    def _record(self, i: int, obs: dict[str, Any], action: np.ndarray) -> bool:
        """Append a step to env ``i``'s episode; a finished episode goes to the callbacks."""
        self._obs[i] = obs
        self._episodes[i].append({**obs, "action": np.asarray(action, np.float32)})
        if not obs["is_last"]:
            return False
        done = {k: np.stack([t[k] for t in self._episodes[i]]) for k in self._episodes[i][0]}
        for callback in self.on_episode:
            callback(done)
        return True

    def _step_all(self, actions: np.ndarray) -> list[dict[str, Any] | None]:
        asynchronous = [isinstance(env, ProcessEnv) for env in self.envs]
        sent = [False] * len(self.envs)
        for i, env in enumerate(self.envs):
            if asynchronous[i]:
                sent[i] = self._guard(i, env.step_async, actions[i]) is not _CRASHED
        results: list[dict[str, Any] | None] = []
        for i, env in enumerate(self.envs):
            if asynchronous[i]:
                result = self._guard(i, env.wait) if sent[i] else _CRASHED
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


def random_policy(env: GymAdapter | ProcessEnv, rng: np.random.Generator) -> Policy:
    """Uniform random actions chosen in the driver: the policy-shaped random run, one round trip
    a step for a worker (``Driver.random`` lets the envs choose their own)."""
    def policy(obs: dict[str, np.ndarray], state: Any):
        return np.stack([env.random_action(rng) for _ in obs["is_first"]]), None
    return policy
