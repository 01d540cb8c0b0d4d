"""Env workers: each env runs in its own process, so N envs step at once.

A ``ProcessEnv`` has the adapter's interface (``obs_space``, ``act_space``, ``reset``, ``step``,
``render``, ``random_action``, ``close``) plus ``step_async`` / ``random_steps_async`` and
``wait``, which the driver uses to step every worker before waiting for any. A worker that dies (a segfaulting simulator, an OOM
kill) raises ``WorkerCrashed`` from the call that finds it dead; ``restart()`` starts a fresh
one, and the driver drops the episode that was running, so no partial episode is stored as
finished.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from typing import Any, Callable

import numpy as np

from .gym import random_action


def random_steps(env: Any, count: int, seed: int, reset_first: bool) -> list[tuple[np.ndarray | None, dict[str, Any]]]:
    """``count`` steps of uniform random actions as (action, obs) pairs, in order; a reset is a
    pair whose action is None, and an episode that ends is reset before the next step (the last
    pair may end one). A worker runs this by itself, so a random-policy prefill costs one round
    trip per chunk instead of one per step: a pipe round trip (~0.16 ms) is a third of an Atari step."""
    rng = np.random.default_rng(seed)
    events: list[tuple[np.ndarray | None, dict[str, Any]]] = []
    obs = None
    for i in range(count):
        if (i == 0 and reset_first) or (obs is not None and obs["is_last"]):
            obs = env.reset()
            events.append((None, obs))
        action = random_action(env.act_space, rng)
        obs = env.step(action)
        events.append((action, obs))
    return events


class WorkerCrashed(RuntimeError):
    """The env worker process died; its running episode is lost."""


def _worker(conn, factory: Callable[[int], Any], restarts: int) -> None:
    # Mesa's software renderer (OSMesa/EGL on a CPU, for DMC) starts one render thread per core in
    # every process; N workers already fill the cores, so each renders on one thread
    # (measured: DMC vision, 2 workers on 2 cores, 133 -> 145 frames/s). A user's setting wins.
    os.environ.setdefault("LP_NUM_THREADS", "1")
    try:
        env = factory(restarts)
        conn.send(("ok", (env.obs_space, env.act_space)))
    except Exception:  # the parent reports it; nothing can be done here
        conn.send(("error", traceback.format_exc()))
        return
    try:
        while True:
            command, arg = conn.recv()
            if command == "close":
                env.close()
                conn.send(("ok", None))
                return
            result = random_steps(env, *arg) if command == "random_steps" else getattr(env, command)(*arg)
            conn.send(("ok", result))
    except (EOFError, KeyboardInterrupt):
        pass
    except Exception:
        conn.send(("error", traceback.format_exc()))


class ProcessEnv:
    """One env adapter in a worker process, made there by ``factory(restarts)``: a picklable
    callable given the number of restarts so far, so that a restarted env can seed itself anew
    rather than replay the episodes its predecessor already collected."""

    def __init__(self, factory: Callable[[int], Any], name: str = "env"):
        self.factory, self.name = factory, name
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        ctx = mp.get_context("spawn")  # no fork: torch threads and simulators do not survive it
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_worker, args=(child, self.factory, self.restarts), daemon=True, name=self.name)
        self._process.start()
        child.close()
        self.obs_space, self.act_space = self._receive()

    def _receive(self) -> Any:
        try:
            status, payload = self._conn.recv()
        except (EOFError, ConnectionResetError, BrokenPipeError):
            raise WorkerCrashed(f"{self.name} worker (pid {self._process.pid}) died") from None
        if status == "error":
            raise RuntimeError(f"{self.name} worker failed:\n{payload}")
        return payload

    def _call(self, command: str, *args: Any) -> Any:
        self._send(command, *args)
        return self._receive()

    def _send(self, command: str, *args: Any) -> None:
        try:
            self._conn.send((command, args))
        except (BrokenPipeError, ConnectionResetError, OSError):
            raise WorkerCrashed(f"{self.name} worker (pid {self._process.pid}) died") from None

    def restart(self) -> None:
        """Replace a dead worker by a fresh one (a new env; its episode starts anew)."""
        self._process.kill()
        self._process.join(timeout=5)
        self._conn.close()
        self.restarts += 1
        self._start()

    def reset(self) -> dict[str, Any]:
        return self._call("reset")

    def step(self, action: np.ndarray) -> dict[str, Any]:
        return self._call("step", action)

    def step_async(self, action: np.ndarray) -> None:
        self._send("step", action)

    def random_steps_async(self, count: int, seed: int, reset_first: bool) -> None:
        """Start ``random_steps`` in the worker; ``wait`` returns its (action, obs) pairs."""
        self._send("random_steps", count, seed, reset_first)

    def wait(self) -> Any:
        """The result of the last ``*_async`` call."""
        return self._receive()

    def render(self) -> np.ndarray | None:
        return self._call("render")

    def random_action(self, rng: np.random.Generator) -> np.ndarray:
        return random_action(self.act_space, rng)

    @property
    def pid(self) -> int:
        return self._process.pid

    def close(self) -> None:
        try:
            self._call("close")
        except (WorkerCrashed, RuntimeError):
            pass
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
