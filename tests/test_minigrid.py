import importlib.metadata

import numpy as np
import pytest

import dreamer2
from dreamer2.config import make_config
from dreamer2.envs import EnvError, make_env

pytest.importorskip("minigrid")


def grid(view="rgb", task="minigrid:Empty-5x5"):
    cfg = make_config("small", {"env.minigrid.view": view, "env.task": task})
    return make_env(task, cfg, seed=0)


def test_rgb_view_is_an_image_and_symbolic_view_is_vectors():
    env = grid()
    assert env.obs_space == {"image": ((64, 64, 3), np.dtype(np.uint8))} and env.act_space.n == 7
    assert env.reset()["image"].std() > 0
    sym = grid("symbolic")
    assert sym.obs_space == {"grid": ((147,), np.dtype(np.float32)), "direction": ((4,), np.dtype(np.float32))}
    obs = sym.reset()
    assert obs["direction"].sum() == 1 and obs["grid"].max() > 0


def test_short_and_full_ids_and_a_clear_error():
    assert grid(task="minigrid:MiniGrid-Empty-5x5-v0").obs_space == grid().obs_space
    with pytest.raises(EnvError, match="MiniGrid-Empty-5x5-v0"):
        grid(task="minigrid:Empty-5x6")


def test_pygame_ce_is_installed_and_pygame_is_not():
    assert importlib.metadata.version("pygame-ce")
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("pygame")


def test_smoke_training(tmp_path):
    agent = dreamer2.train("minigrid:Empty-5x5", preset="debug", steps=300, logdir=tmp_path / "run", progress=False)
    assert len(list((agent.logdir / "episodes").glob("*.npz"))) >= 1
