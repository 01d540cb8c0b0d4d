import json

import numpy as np
import pytest

import dreamer2
from dreamer2.config import make_config
from dreamer2.envs import EnvError, make_env
from dreamer2.replay import load_episode

pytest.importorskip("dm_control")


def dmc(task="cartpole_balance", preset="dmc_proprio", **overrides):
    cfg = make_config(preset, {"env.task": f"dmc:{task}", **overrides})
    return make_env(cfg.env.task, cfg, seed=0)


def test_proprio_vectors_and_the_time_limit_is_last_not_terminal():
    env = dmc()
    assert env.obs_space == {"position": ((3,), np.dtype(np.float32)), "velocity": ((2,), np.dtype(np.float32))}
    assert env.act_space.shape == (1,)
    env.reset()
    rng, steps = np.random.default_rng(0), 0
    while True:
        obs = env.step(env.random_action(rng))
        steps += 1
        if obs["is_last"]:
            break
    assert steps == 500  # 1,000 physics steps at action repeat 2
    assert not obs["is_terminal"]


def test_vision_is_the_camera_image_only_and_seeded():
    env = dmc(preset="dmc_vision")
    assert env.obs_space == {"image": ((64, 64, 3), np.dtype(np.uint8))}
    first = env.reset()["image"]
    assert first.std() > 0  # a rendered scene, not a blank frame
    again = dmc(preset="dmc_vision").reset()["image"]
    assert np.array_equal(first, again)


def test_camera_choice_and_fast_render_option():
    assert dmc("quadruped_walk").env.camera == 2 and dmc().env.camera == 0
    quality = dmc(**{"env.dmc.fast_render": True}).env._env.physics.model.vis.quality
    assert quality.offsamples == 0 and quality.shadowsize == 256


def test_unknown_task_names_close_matches():
    with pytest.raises(EnvError, match="walker_walk"):
        dmc("walker_wlak")


def test_smoke_training_proprio(tmp_path):
    agent = dreamer2.train("dmc:cartpole_balance", preset=["dmc_proprio", "debug"], steps=300,
                           logdir=tmp_path / "run", overrides={"env.action_repeat": 2}, progress=False)
    assert len(list((agent.logdir / "episodes").glob("*.npz"))) >= 1


def test_smoke_training_vision(tmp_path):
    """The vision flavour end to end: rendered frames reach replay, the CNN encoder and decoder train."""
    agent = dreamer2.train("dmc:cartpole_balance", preset=["dmc_vision", "debug"], steps=200, logdir=tmp_path / "run",
                           overrides={"env.action_repeat": 2, "env.dmc.fast_render": True, "train.videos": False},
                           progress=False)
    assert agent.wm.enc_cnn == ["image"]
    episode = load_episode(next((agent.logdir / "episodes").glob("*.npz")))
    assert episode["image"].shape[1:] == (64, 64, 3) and episode["image"].dtype == np.uint8
    assert episode["image"].std() > 0
    metrics = [json.loads(line) for line in open(agent.logdir / "metrics.jsonl")]
    assert any(np.isfinite(row.get("world_model/image_loss", np.nan)) for row in metrics)
