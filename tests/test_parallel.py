import os
import signal
from functools import partial

import gymnasium
import numpy as np
import pytest

import dreamer2
from dreamer2.config import ConfigError, make_config
from dreamer2.driver import Driver, random_policy
from dreamer2.envs import make_env
from dreamer2.envs.parallel import ProcessEnv
from dreamer2.training import _worker_env


def _workers(n):
    cfg = make_config("debug")
    return [ProcessEnv(partial(_worker_env, "gym:CartPole-v1", cfg, seed), f"env{seed}") for seed in range(n)]


def test_workers_step_like_the_adapter_they_wrap():
    cfg = make_config("debug")
    local, (worker,) = make_env("gym:CartPole-v1", cfg, seed=0), _workers(1)
    try:
        assert worker.obs_space == local.obs_space and worker.act_space == local.act_space
        for a, b in zip([local.reset()] + [local.step(np.eye(2)[i % 2]) for i in range(10)],
                        [worker.reset()] + [worker.step(np.eye(2)[i % 2]) for i in range(10)]):
            assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    finally:
        worker.close()


def test_a_killed_worker_is_restarted_and_its_partial_episode_never_stored():
    envs = _workers(2)
    episodes, crashes = [], []
    driver = Driver(envs, [episodes.append], on_crash=lambda i, msg: crashes.append(i))
    policy = random_policy(envs[0], np.random.default_rng(0))
    try:
        driver(policy, steps=6)
        while len(driver._episodes[0]) < 3:  # make sure worker 0 is mid-episode
            driver(policy, steps=2)
        partial_start = driver._episodes[0][0]["vector"].copy()
        os.kill(envs[0].pid, signal.SIGKILL)
        envs[0]._process.join(timeout=5)
        steps, _ = driver(policy, steps=200)
        assert crashes == [0] and envs[0].restarts == 1 and envs[1].restarts == 0
        assert steps >= 200  # the run went on
        for episode in episodes:  # only whole episodes were handed on
            assert episode["is_first"][0] and not episode["is_first"][1:].any()
            assert episode["is_last"][-1] and not episode["is_last"][:-1].any()
            assert not np.array_equal(episode["vector"][0], partial_start) or len(episode["reward"]) > 0
        # The killed episode is nowhere, and the restarted worker did not replay it (it is seeded anew).
        assert not any(np.array_equal(e["vector"][0], partial_start) for e in episodes)
    finally:
        for env in envs:
            env.close()


def test_training_with_two_workers_and_a_custom_env_object_is_refused(tmp_path):
    agent = dreamer2.train("gym:CartPole-v1", preset="debug", steps=200, logdir=tmp_path / "two",
                           overrides={"envs": 2}, progress=False)
    assert len(list((agent.logdir / "episodes").glob("*.npz"))) > 0
    with pytest.raises(ConfigError, match="task string"):
        dreamer2.train(gymnasium.make("CartPole-v1"), preset="debug", steps=200, logdir=tmp_path / "obj",
                       overrides={"envs": 2}, progress=False)


def test_random_steps_taken_by_a_worker_are_recorded_as_the_driver_would_take_them():
    """Driver.random lets each env pick its own actions; the episodes must be the ones that
    replaying their stored actions on a fresh env with the same seed produces."""
    cfg = make_config("debug")
    (worker,) = _workers(1)
    local_episodes, worker_episodes = [], []
    try:
        local = Driver([make_env("gym:CartPole-v1", cfg, seed=0)], [local_episodes.append])
        remote = Driver([worker], [worker_episodes.append])
        assert local.random(np.random.default_rng(3), 250) == remote.random(np.random.default_rng(3), 250)
    finally:
        worker.close()
    assert len(worker_episodes) >= 5 and len(worker_episodes) == len(local_episodes)
    replay_env = make_env("gym:CartPole-v1", cfg, seed=0)
    for ours, theirs in zip(local_episodes, worker_episodes):
        assert ours.keys() == theirs.keys() and all(np.array_equal(ours[k], theirs[k]) for k in ours)
        assert not ours["action"][0].any() and (ours["action"][1:].sum(-1) == 1).all()
        obs = [replay_env.reset()] + [replay_env.step(a) for a in ours["action"][1:]]
        assert np.array_equal(np.stack([o["vector"] for o in obs]), ours["vector"])
        assert obs[-1]["is_last"] and not any(o["is_last"] for o in obs[:-1])


def test_a_worker_killed_during_random_steps_is_restarted_and_the_run_goes_on():
    envs = _workers(2)
    episodes, crashes = [], []
    driver = Driver(envs, [episodes.append], on_crash=lambda i, msg: crashes.append(i))
    rng = np.random.default_rng(0)
    try:
        while len(driver._episodes[0]) < 3:
            driver.random(rng, 2)
        partial_start = driver._episodes[0][0]["vector"].copy()
        os.kill(envs[0].pid, signal.SIGKILL)
        envs[0]._process.join(timeout=5)
        steps, _ = driver.random(rng, 400)
        assert crashes == [0] and envs[0].restarts == 1 and envs[1].restarts == 0 and steps >= 400
        assert episodes and not any(np.array_equal(e["vector"][0], partial_start) for e in episodes)
        for episode in episodes:
            assert episode["is_first"][0] and not episode["is_first"][1:].any()
            assert episode["is_last"][-1] and not episode["is_last"][:-1].any()
    finally:
        for env in envs:
            env.close()
