"""The DeepMind Control Suite through dm_control, as a gymnasium env for the common adapter.

Two flavours: vision (``env.pixels true``, the ``dmc_vision`` preset: only the 64x64 RGB camera
image) and proprio (the ``dmc_proprio`` preset: the suite's vector observations). Action repeat
is the adapter's (2 in both presets). Episodes end at the suite's time limit (1,000 physics
steps) with ``is_last`` and not ``is_terminal``; a task that ends with discount 0 is terminal.
The camera is the reference's: 2 for quadruped, 0 otherwise.

Headless rendering needs an OpenGL backend chosen before MuJoCo is imported: ``MUJOCO_GL`` as
the user set it, else the first of egl and osmesa that can make a context (probed once in a
subprocess), else a clear error.
"""
from __future__ import annotations

import os
import subprocess
import sys

import gymnasium
import numpy as np
from gymnasium import spaces

from .gym import EnvError, GymAdapter, unknown_name

CAMERAS = {"quadruped": 2}
_PROBE = ("import mujoco; ctx = mujoco.GLContext(64, 64); ctx.make_current(); ctx.free()")


def select_gl() -> str:
    """Pick the headless OpenGL backend for MuJoCo and export it (``MUJOCO_GL``)."""
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    for backend in ("egl", "osmesa"):
        env = {**os.environ, "MUJOCO_GL": backend}
        if backend == "osmesa":
            env["PYOPENGL_PLATFORM"] = "osmesa"
        probe = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, timeout=120)
        if probe.returncode == 0:
            os.environ["MUJOCO_GL"] = backend
            if backend == "osmesa":
                os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
            return backend
    raise EnvError("DMC rendering needs headless OpenGL and neither EGL nor OSMesa works here: install a GPU "
                   "driver with EGL, or Debian's libosmesa6 (apt-get install libosmesa6), or set MUJOCO_GL")


class DMCEnv(gymnasium.Env):
    """One dm_control suite task with gymnasium's API (Dict of float vectors; rgb_array render)."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, domain: str, task: str, size: tuple[int, int] = (64, 64), camera: int = -1,
                 fast_render: bool = False):
        from dm_control import suite

        self._env = suite.load(domain, task)
        self.size = tuple(size)
        self.camera = CAMERAS.get(domain, 0) if camera < 0 else camera
        self.render_mode = "rgb_array"
        if fast_render:  # before the first render creates the context: no 4x multisampling, 256 px shadows
            quality = self._env.physics.model.vis.quality
            quality.offsamples, quality.shadowsize = 0, 256
        self.observation_space = spaces.Dict({
            key: spaces.Box(-np.inf, np.inf, (int(np.prod(spec.shape)) or 1,), np.float32)
            for key, spec in self._env.observation_spec().items()})
        spec = self._env.action_spec()
        self.action_space = spaces.Box(spec.minimum.astype(np.float32), spec.maximum.astype(np.float32),
                                       dtype=np.float32)

    def _obs(self, time_step) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, np.float32).reshape(-1) for k, v in time_step.observation.items()}

    def reset(self, seed: int | None = None, options=None):
        if seed is not None:
            self._env.task._random = np.random.RandomState(seed)  # the suite's own task RNG
        return self._obs(self._env.reset()), {}

    def step(self, action: np.ndarray):
        time_step = self._env.step(action)
        terminated = time_step.last() and time_step.discount == 0
        truncated = time_step.last() and not terminated
        return self._obs(time_step), float(time_step.reward or 0.0), terminated, truncated, {}

    def render(self) -> np.ndarray:
        return self._env.physics.render(*self.size, camera_id=self.camera)

    def close(self) -> None:
        self._env.close()


def make_dmc(name: str, cfg, seed: int) -> GymAdapter:
    try:
        select_gl()
        from dm_control import suite
    except ImportError:
        raise EnvError("dmc tasks need dm_control: pip install 'dreamer2[dmc]'") from None
    tasks = {f"{domain}_{task}": (domain, task) for domain, task in suite.ALL_TASKS}
    if name not in tasks:
        raise unknown_name("DMC task", name, name, list(tasks), fallback=" (DOMAIN_TASK, e.g. walker_walk)")
    d = cfg.env.dmc
    env = DMCEnv(*tasks[name], size=tuple(cfg.env.size), camera=d.camera, fast_render=d.fast_render)
    return GymAdapter(env, pixels=cfg.env.pixels, size=tuple(cfg.env.size), action_repeat=cfg.env.action_repeat,
                      time_limit=cfg.env.time_limit, seed=seed)
